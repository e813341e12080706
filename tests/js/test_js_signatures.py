"""JavaScript crash signatures against real goja texts. tests/data/nakama-3.40-js-crash-lines.log holds the crash
lines a real Nakama 3.40 logged for fixtures/nakama/js/crash_probe.js (one match per way to crash, created by its
RPC in the order of KINDS below); the same bundle replayed in QuickJS must give each crash the signature of
Nakama's line, except where QuickJS cannot know what goja knows (said per row)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recorder.format import InitCall, LoopCall
from replay.js import JsHandler
from replay.runtime import CrashSignature, MatchRuntime, parse_crash_log_line
from tests.common.paths import DATA, ROOT

PROBE = ROOT / "fixtures" / "nakama" / "js" / "crash_probe.js"
LINES = DATA / "nakama-3.40-js-crash-lines.log"  # logged by a real Nakama 3.40 running crash_probe.js

# kind (params.kind), the match id the RPC returned for it (first 8 digits), the key and frames of Nakama's line
KINDS = {
    "read property in a helper": (
        "15ad4cec",
        "match_loop|js:read property 'team'|index.js:readTeam",
        ("index.js:readTeam",),
    ),
    "throw a string": ("ebe61e82", "match_loop|js:throw boom|index.js:probeLoop", ("index.js:probeLoop",)),
    "throw a string in a helper": ("1dbb730e", "match_loop|js:throw boom|index.js:throwBoom", ("index.js:throwBoom",)),
    "throw an object": ("67b34b81", "match_loop|js:throw [object Object]|index.js:probeLoop", ("index.js:probeLoop",)),
    "error of several lines": ("810ec2d8", "match_loop|js:Error bad state|index.js:probeLoop", ("index.js:probeLoop",)),
    "in an anonymous function": ("bd330690", "match_loop|js:read property 'x'|index.js", ("index.js",)),
    "in a native function": (
        "af297748",
        "match_loop|js:SyntaxError invalid character '<q>' looking for beginning of value|native:parse",
        ("native:parse",),
    ),
}
# QuickJS keeps no position for a thrown non-Error: the replay names the callback's function, not the helper
REPLAY_FRAMES = {"throw a string in a helper": ("index.js:probeLoop",)}


def nakama_lines() -> dict[str, CrashSignature]:
    """Match id prefix -> the signature of Nakama's crash line for it."""
    out = {}
    for line in LINES.read_text(encoding="utf-8").splitlines():
        crash = parse_crash_log_line(line)
        assert crash is not None and (crash.callback, crash.tick) == ("match_loop", 0), line
        out[crash.mid[:8]] = crash.signature
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe under the name Nakama ran it as (its js_entrypoint): frames name the bundle's file."""
    return Path(shutil.copy(PROBE, tmp_path_factory.mktemp("probe") / "index.js"))


def replayed(bundle: Path, kind: str) -> CrashSignature:
    rt = MatchRuntime(JsHandler(bundle))
    rt.apply(InitCall({"kind": kind}))
    rt.apply(LoopCall(0, ()))
    assert rt.crash is not None and rt.crash.tick == 0, kind
    return CrashSignature.from_crash(rt.crash)


def test_nakamas_lines_get_their_pinned_signatures() -> None:
    lines = nakama_lines()
    assert len(lines) == len(KINDS)
    for kind, (mid, key, frames) in KINDS.items():
        assert (lines[mid].key, lines[mid].frames) == (key, frames), kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_replay_crashes_with_nakamas_signature(bundle: Path, kind: str) -> None:
    mid, key, frames = KINDS[kind]
    ours, logged = replayed(bundle, kind), nakama_lines()[mid]
    assert ours.error_type == logged.error_type  # what a verdict compares
    if kind in REPLAY_FRAMES:
        assert ours.frames[:1] == REPLAY_FRAMES[kind] and not ours.same_crash(logged)
    else:
        assert ours.key == key and ours.frames[:1] == frames and ours.same_crash(logged)
