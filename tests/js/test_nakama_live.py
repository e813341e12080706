"""The JS runtime against Nakama 3.40's goja: the fidelity probe (answers a real server gave, kept in
tests/data, compared in CI; re-asked of a live server when NAKAMA_URL is set) and, opt-in, the TypeScript
arena crashing in a real Nakama: its crash line's signature equals the replay's, and its capture-wrapper
log lines ingest into a recording that the unwrapped bundle reproduces.

Opt-in: NAKAMA_URL (e.g. http://127.0.0.1:7390) of a server whose JS entry file is the bundle
`python fixtures/nakama/js/make_live_bundle.py MODULES` writes, NAKAMA_LOG its JSON log file,
NAKAMA_SERVER_KEY (default defaultkey), NAKAMA_HTTP_KEY (default defaulthttpkey). With the bundle
`make_live_bundle.py MODULES lean` writes (the capture wrapper's lean mode), set NAKAMA_JS_CAPTURE_MODE=lean:
the crash test then checks that the log holds lean records and reproduces from them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from recorder.capture import Ingest, write_match
from replay.js import JsHandler
from replay.runtime import CrashSignature, Nk, js_error_class, parse_crash_log_line
from replay.runtime import reproduce as replay
from replay.runtime._nk import DerivedSources
from tests.common.paths import ROOT

DATA = ROOT / "tests" / "data"
BUNDLE = ROOT / "fixtures" / "handlers" / "ts" / "arena" / "build" / "index.js"
PROBE_ANSWERS = DATA / "js-fidelity-nakama-3.40.json"  # what a real Nakama 3.40 answered
REAL_LOG = DATA / "nakama-3.40-js-capture-arena.log"  # a real Nakama 3.40 log of the arena crashing
sys.path.insert(0, str(ROOT / "fixtures" / "nakama" / "js"))
from make_live_bundle import live_bundle  # noqa: E402

NAKAMA_URL = os.environ.get("NAKAMA_URL", "")
NAKAMA_LOG = os.environ.get("NAKAMA_LOG", "")
CAPTURE_MODE = os.environ.get("NAKAMA_JS_CAPTURE_MODE", "full")  # the mode of the server's bundle
LIVE_REASON = "set NAKAMA_URL (and NAKAMA_LOG) to a Nakama 3.40 running fixtures/nakama/js/make_live_bundle.py's bundle"

# rows where QuickJS answers differently from goja, and what makes a crash signature equal anyway
ENGINE_WORDING = {  # goja's text vs QuickJS's: the error class normalises them
    "read property of undefined",
    "read property of null",
    "call a missing method",
    "call a non-function",
    "stack format",
}


def our_answers(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "index.js"
    path.write_text(live_bundle())
    return json.loads(JsHandler(path).rpc("js_fidelity_probe", {"node": "nakama-replay"}, Nk(DerivedSources()), ""))


def test_probe_answers_like_nakama_340_except_engine_wording(tmp_path: Path) -> None:
    real = json.loads(PROBE_ANSWERS.read_text(encoding="utf-8"))
    ours = our_answers(tmp_path)
    assert [name for name, _ in ours] == [name for name, _ in real]
    differ = {name for (name, a), (_, b) in zip(real, ours) if a != b}
    assert differ == ENGINE_WORDING, differ
    for (name, goja), (_, quickjs) in zip(real, ours):
        if name in ENGINE_WORDING:
            goja_text, quickjs_text = goja.removeprefix("throws: "), quickjs.removeprefix("throws: ")
            assert js_error_class(goja_text) == js_error_class(quickjs_text), name


@pytest.mark.skipif(not NAKAMA_URL, reason=LIVE_REASON)
def test_live_server_still_answers_the_recorded_probe() -> None:
    key = os.environ.get("NAKAMA_HTTP_KEY", "defaulthttpkey")
    request = urllib.request.Request(f"{NAKAMA_URL}/v2/rpc/js_fidelity_probe?http_key={key}&unwrap", data=b'""')
    with urllib.request.urlopen(request, timeout=30) as response:
        live = json.loads(response.read())
    assert live == json.loads(PROBE_ANSWERS.read_text(encoding="utf-8"))


def _ingest_and_reproduce(lines: list[str], tmp_path: Path) -> tuple[object, object]:
    ing = Ingest()
    ing.feed(lines, "nakama.log")
    matches = [m for m in ing.matches() if m.crash is not None]
    assert matches, "no crashed match in the log"
    match = matches[-1]
    assert match.header.source == "js-capture" and match.problems == [], match.problems
    path = write_match(match, tmp_path, handler=str(BUNDLE))
    return match, replay(path, str(BUNDLE))


def test_real_nakama_js_crash_log_reproduces_with_the_same_signature(tmp_path: Path) -> None:
    lines = REAL_LOG.read_text(encoding="utf-8").splitlines()
    logged = [c for c in (parse_crash_log_line(line) for line in lines) if c is not None]
    assert logged and logged[-1].error.startswith(
        "TypeError: Cannot read property 'pos' of undefined at handleInput (index.js:"
    )
    _match, result = _ingest_and_reproduce(lines, tmp_path)
    assert result.reproduced, result.verdict
    ours = CrashSignature.from_result(result)
    assert ours.key == logged[-1].signature.key == "match_loop|js:read property 'pos'|index.js:handleInput"
    assert result.crash.tick == logged[-1].tick


@pytest.mark.skipif(not (NAKAMA_URL and NAKAMA_LOG), reason=LIVE_REASON)
def test_typescript_arena_crash_in_a_real_nakama_reproduces(tmp_path: Path) -> None:
    from replay.live import LiveOptions, analyse, load_script, run_live
    from tests.common.matches import make_crash_recording

    start = Path(NAKAMA_LOG).stat().st_size if Path(NAKAMA_LOG).exists() else 0
    rec = make_crash_recording(tmp_path / "ts-crash.nkrec", BUNDLE)
    script = load_script(rec)
    options = LiveOptions(
        nakama=NAKAMA_URL,
        server_key=os.environ.get("NAKAMA_SERVER_KEY", "defaultkey"),
        create_rpc="create_arena",
        signal_rpc="signal_match",
        out_dir=str(tmp_path / "wire"),
        tail_ticks=3,
    )
    live = asyncio.run(run_live(script, options))
    report = analyse(script, live, server_log=NAKAMA_LOG)
    why = json.dumps(report.to_json(), indent=1, default=str)[:3000]
    assert report.outcome == "crashed" and report.reproduced, why
    with open(NAKAMA_LOG, encoding="utf-8") as f:
        f.seek(start)
        lines = f.read().splitlines()
    logged = [c for c in (parse_crash_log_line(line) for line in lines) if c is not None]
    assert logged, "no crash line in the server log"
    ours = CrashSignature.from_result(replay(rec, str(BUNDLE)))
    assert logged[-1].signature.key == ours.key, (logged[-1].error, ours.key)
    match, result = _ingest_and_reproduce(lines, tmp_path)
    assert match.header.tags["capture_mode"] == CAPTURE_MODE
    if CAPTURE_MODE == "lean":  # several loops per record, the crashing one written before Nakama's line
        mid = match.header.log_match_id
        kinds = [
            json.loads(json.loads(line)["msg"].split(" ", 1)[1])["k"]
            for line in lines
            if mid in line and '"nkreplay:1 {' in line
        ]
        assert "loops" in kinds and "loop" not in kinds, kinds
        assert result.crash is not None and result.crash.tick == logged[-1].tick
    assert result.reproduced, result.verdict
    if os.environ.get("NKREPLAY_SAVE_LOG"):  # how tests/data/nakama-3.40-js-capture-arena.log was made
        mid = match.header.log_match_id
        Path(os.environ["NKREPLAY_SAVE_LOG"]).write_text(
            "\n".join(line for line in lines if mid in line) + "\n", encoding="utf-8"
        )
