"""The JS capture wrapper (recorder/capture/modules/nkreplay_capture.js) and `ingest`: the wrapped TypeScript arena
bundle -> Nakama log lines -> ingest -> reproduce with the unwrapped bundle, in CI without a Nakama; the
wrapper changes nothing the handler sees or returns; sampling, redaction, long lines; the pytest plugin."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from pathlib import Path

import pytest

from recorder.capture import Ingest, write_match
from recorder.capture._nakama_log import format_log_line
from recorder.format import LoopCall, open_recording, read_events, write_recording
from replay.js import CAPTURE_JS, JsHandler, wrap_bundle
from replay.runtime import CrashSignature, MatchDriver
from replay.runtime import reproduce as replay
from tests.common.paths import ROOT

BUNDLE = ROOT / "fixtures" / "handlers" / "ts" / "arena" / "build" / "index.js"
TS_REC = ROOT / "fixtures" / "recordings" / "arena-ts-reconnect-crash.nkrec"
CALLBACKS = {
    "matchInit": "arenaInit",
    "matchJoinAttempt": "arenaJoinAttempt",
    "matchJoin": "arenaJoin",
    "matchLeave": "arenaLeave",
    "matchLoop": "arenaLoop",
    "matchTerminate": "arenaTerminate",
    "matchSignal": "arenaSignal",
}

sys.path.insert(0, str(ROOT / "fixtures"))
import make_recordings  # noqa: E402


def nakama_log(driver: MatchDriver, started_ms: int = 1_764_000_000_000) -> list[str]:
    """The lines Nakama prints for this match: the handler's logger lines and, for a crash, Nakama's crash
    line (for JS its `error` field is the thrown value and the top frame, no traceback)."""
    mid = driver.header.match_id.split(".", 1)[0]
    out = [
        format_log_line(level, msg, ts_ms=started_ms + i, mid=mid)
        for i, (level, msg) in enumerate(driver.runtime.logger.lines)
    ]
    crash = driver.runtime.crash
    if crash is not None:
        out.append(
            format_log_line(
                "warn",
                f"Stopping match after error from {crash.callback} execution",
                ts_ms=started_ms + len(out),
                caller="server/match_handler.go:292",
                mid=mid,
                tick=crash.tick,
                error=crash.error,
            )
        )
    return out


def wrapped(tmp_path: Path, options: dict | None = None) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "captured" / "index.js"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        wrap_bundle(BUNDLE.read_text(), CALLBACKS, {"module": "arena", "snapshotEvery": 10, **(options or {})})
    )
    return path


def play(handler: Path | JsHandler, **kw):  # type: ignore[no-untyped-def]
    with MatchDriver(
        handler if isinstance(handler, JsHandler) else JsHandler(handler), make_recordings.arena_header()
    ) as d:
        make_recordings.play_arena(d, **kw)
        return d


def ingest(lines):  # type: ignore[no-untyped-def]
    ing = Ingest()
    ing.feed(lines, "log")
    return ing, ing.matches()


def test_capture_ingest_reproduce_round_trip(tmp_path: Path) -> None:
    d = play(wrapped(tmp_path))
    ing, [match] = ingest(nakama_log(d))
    assert ing.stats.damaged == [] and match.problems == []
    assert (match.header.module, match.header.tick_rate, match.header.source) == ("arena", 10, "js-capture")
    assert match.header.match_id == make_recordings.MATCH_ID
    path = write_match(match, tmp_path, handler=str(BUNDLE))
    result = replay(path, str(BUNDLE))  # the unwrapped bundle
    assert result.reproduced and result.divergence_count == 0, result.verdict
    assert (result.crash.callback, result.crash.tick) == ("match_loop", 58)
    assert CrashSignature.from_result(result).key == CrashSignature.from_crash(d.runtime.crash).key
    _, events = read_events(path)
    loops = [e for e in events if isinstance(e, LoopCall) and e.outcome is not None]
    assert sum(1 for e in loops if e.outcome.digest is not None) == 6  # snapshots every 10 ticks were compared
    assert sum(len(e.outcome.broadcasts) for e in loops) > 10
    assert any(e.nondeterministic for e in events if hasattr(e, "nondeterministic"))  # Math.random, Date.now
    # the comparison can fail: the fixed arena does not reproduce
    fixed = tmp_path / "fixed.js"
    fixed.write_text(
        BUNDLE.read_text().replace("delete state.sessions[sessionId];", "state.sessions[sessionId] = null;")
    )
    assert not replay(path, str(fixed)).reproduced


def test_wrapped_bundle_behaves_like_the_unwrapped_one(tmp_path: Path) -> None:
    w = play(wrapped(tmp_path), ticks=45, reconnect_race_at=40)
    plain = play(BUNDLE, ticks=45, reconnect_race_at=40)
    assert [s.outcome for s in w.steps] == [s.outcome for s in plain.steps]
    assert [s.nondeterministic for s in w.steps] == [s.nondeterministic for s in plain.steps]
    # the error passes through untouched (the wrapped file's lines are shifted by the wrapper in front)
    assert w.runtime.crash.error.split(" (index.js:")[0] == plain.runtime.crash.error.split(" (index.js:")[0]
    assert CrashSignature.from_crash(w.runtime.crash).key == CrashSignature.from_crash(plain.runtime.crash).key
    assert [line for line in w.runtime.logger.lines if "nkreplay:1" not in line[1]] == plain.runtime.logger.lines


def test_sampling_redaction_and_long_lines(tmp_path: Path) -> None:
    none = play(wrapped(tmp_path, {"sample": 0}))
    assert not [m for _, m in none.runtime.logger.lines if m.startswith("nkreplay:1")]
    (tmp_path / "b").mkdir()
    d = play(wrapped(tmp_path / "b", {"redact": ["client_version"], "redactOpCodes": [2], "maxLine": 300}))
    lines = nakama_log(d)
    assert any("nkreplay:1 P " in line for line in lines)  # split records
    assert not any("1.4.0" in line for line in lines)
    ing, [match] = ingest(lines)
    assert match.problems == [] and ing.stats.damaged == []
    assert match.header.redactions == ("key:client_version", "op:2")
    chats = [m for e in match.events if isinstance(e, LoopCall) for m in e.messages if m.op_code == 2]
    assert chats and all(m.data is None for m in chats)


def test_a_lost_line_is_reported(tmp_path: Path) -> None:
    lines = nakama_log(play(wrapped(tmp_path)))
    _ing, [match] = ingest(lines[:10] + lines[11:])
    assert any("missing" in p for p in match.problems)


def test_the_capture_source_is_read_and_checked(tmp_path: Path) -> None:
    lines = nakama_log(play(wrapped(tmp_path)))
    src = r"\"src\":\"js-capture\""  # inside the log line's JSON msg
    assert src in lines[0]
    _ing, [match] = ingest([lines[0].replace(src, src.replace("js-", "lua-")), *lines[1:]])
    assert match.header.source == "lua-capture" and match.problems == []
    ing, _matches = ingest([lines[0].replace(src, src.replace("js-capture", "evil")), *lines[1:]])
    assert [d.problem.split(": ", 1)[1] for d in ing.stats.damaged][:1] == [
        'h.src: must be one of lua-capture, js-capture, got "evil"'
    ]


def test_capture_file_is_es5_for_goja() -> None:
    code = re.sub(r"//[^\n]*", "", CAPTURE_JS.read_text())  # comments may say anything
    for later in ("=>", "let ", "const ", "class ", "`", "...", "async ", "Symbol", "Proxy"):
        assert later not in code, later


pytest_plugins = ["pytester"]


def test_pytest_plugin_runs_a_js_regression(pytester: pytest.Pytester) -> None:
    regs = pytester.path / "regs"
    (regs / "handlers").mkdir(parents=True)
    shutil.copy(BUNDLE, regs / "handlers" / "index.js")
    fixed = regs / "handlers" / "fixed.js"
    fixed.write_text(
        BUNDLE.read_text().replace("delete state.sessions[sessionId];", "state.sessions[sessionId] = null;")
    )
    with open_recording(TS_REC) as rec:
        header, events = rec.header, list(rec.events())
    write_recording(regs / "crash.nkrec", dataclasses.replace(header, handler="handlers/index.js"), events)
    (regs / "crash.expect.toml").write_text(
        'handler = "handlers/index.js"\n[crash]\ncallback = "match_loop"\ntick = 58\n'
        "signature = \"match_loop|js:read property 'pos'|index.js:handleInput\"\n"
    )
    shutil.copy(regs / "crash.nkrec", regs / "guard.nkrec")
    (regs / "guard.expect.toml").write_text('handler = "handlers/fixed.js"\nno_crash = true\n')
    pytester.makepyprojecttoml('[tool.nakama-replay]\nregression_dirs = ["regs"]\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2)
