"""The JS capture wrapper's lean mode (as nkreplay_capture.lua's): loops recorded by their inputs and
nondeterministic values, empty ticks folded into a count, several ticks per log line. Round trips wrapped
bundle (lean) -> Nakama log lines -> ingest -> reproduce of the unwrapped bundle; the same inputs as the full
mode; with outcomes, the full mode's recording."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from recorder.capture import write_match
from recorder.format import Header, LoopCall
from replay.errors import HandlerLoadError
from replay.js import JsHandler, wrap_bundle
from replay.runtime import MatchDriver
from replay.runtime import reproduce as replay
from tests.js.test_capture import BUNDLE, CALLBACKS, ingest, nakama_log, play, wrapped


def records(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        msg = json.loads(line)["msg"]
        if msg.startswith("nkreplay:1 {"):
            out.append(json.loads(msg.split(" ", 1)[1]))
    return out


def folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def inputs(events: list[Any]) -> list[Any]:
    """The calls without their outcomes (what a lean recording holds of every loop)."""
    return [dataclasses.replace(e, outcome=None) if hasattr(e, "outcome") else e for e in events]


def test_lean_round_trip_holds_the_full_modes_inputs_and_reproduces(tmp_path: Path) -> None:
    full = play(wrapped(folder(tmp_path / "full"), {"snapshotEvery": 0}))
    lean = play(wrapped(folder(tmp_path / "lean"), {"snapshotEvery": 0, "mode": "lean"}))
    assert lean.runtime.crash.error == full.runtime.crash.error  # the wrapped handler is unchanged
    full_lines, lean_lines = nakama_log(full), nakama_log(lean)
    _, [f] = ingest(full_lines)
    ing, [m] = ingest(lean_lines)
    assert ing.stats.damaged == [] and m.problems == []
    assert m.header.tags["capture_mode"] == "lean" and f.header.tags["capture_mode"] == "full"
    assert m.ticks == f.ticks and m.calls == f.calls
    assert inputs(m.events) == inputs(f.events)  # every input and nondeterministic value, in order
    loops = [e for e in m.events if isinstance(e, LoopCall)]
    assert loops and all(e.outcome is None for e in loops)
    assert any(e.nondeterministic for e in loops)  # Math.random, Date.now inside loops
    assert len(records(lean_lines)) < len(records(full_lines)) // 2  # several ticks per line
    # the crash: its tick's record is the last of ours, Nakama's crash line right after it
    assert json.loads(lean_lines[-1])["msg"].startswith("Stopping match after error from match_loop")
    last = records(lean_lines)[-1]
    assert last["k"] == "loops" and "e" in last["x"][-1]
    assert last["t"] + last["n"] - 1 == lean.runtime.crash.tick
    path = write_match(m, tmp_path / "out", handler=str(BUNDLE))
    result = replay(path, str(BUNDLE))  # the unwrapped bundle
    assert result.reproduced, result.verdict
    assert (result.crash.callback, result.crash.tick) == ("match_loop", lean.runtime.crash.tick)
    fixed = tmp_path / "fixed.js"
    fixed.write_text(
        BUNDLE.read_text().replace("delete state.sessions[sessionId];", "state.sessions[sessionId] = null;")
    )
    assert not replay(path, str(fixed)).reproduced


def test_lean_with_outcomes_is_the_full_recording(tmp_path: Path) -> None:
    full = play(wrapped(folder(tmp_path / "full"), {"snapshotEvery": 10}))
    lean = play(wrapped(folder(tmp_path / "lean"), {"snapshotEvery": 10, "mode": "lean", "outcomes": True}))
    _, [f] = ingest(nakama_log(full))
    _, [m] = ingest(nakama_log(lean))
    assert m.events[:-1] == f.events[:-1]  # broadcasts, kicks, labels, stops and snapshot digests alike
    assert inputs(m.events[-1:]) == inputs(f.events[-1:])  # the crash
    assert sum(1 for e in m.events if isinstance(e, LoopCall) and e.outcome and e.outcome.digest) == 6
    result = replay(write_match(m, tmp_path / "out"), str(BUNDLE))
    assert result.reproduced and result.divergence_count == 0, result.verdict


IDLE = """
function InitModule(ctx, logger, nk, initializer) {
  initializer.registerMatch("idle", { matchInit: idleInit, matchJoinAttempt: idleJoinAttempt, matchJoin: idleJoin,
    matchLeave: idleLeave, matchLoop: idleLoop, matchTerminate: idleTerminate, matchSignal: idleSignal });
}
function idleInit(ctx, logger, nk, params) { return { state: {}, tickRate: 10, label: "" }; }
function idleJoinAttempt(ctx, logger, nk, d, tick, state, p, md) { return { state: state, accept: true }; }
function idleJoin(ctx, logger, nk, d, tick, state, ps) { return { state: state }; }
function idleLeave(ctx, logger, nk, d, tick, state, ps) { return { state: state }; }
function idleLoop(ctx, logger, nk, d, tick, state, ms) {
  if (tick === 25) state.now = Date.now(); // a nondeterministic value amid empty ticks
  return { state: state };
}
function idleTerminate(ctx, logger, nk, d, tick, state, g) { return { state: state }; }
function idleSignal(ctx, logger, nk, d, tick, state, data) { return { state: state, data: data }; }
"""
IDLE_CALLBACKS = {cb: "idle" + name[len("arena") :] for cb, name in CALLBACKS.items()}


def idle_match(tmp_path: Path, options: dict[str, Any], ticks: int) -> tuple[MatchDriver, Path]:
    path = tmp_path / "idle" / "index.js"
    path.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "plain.js").write_text(IDLE)
    path.write_text(wrap_bundle(IDLE, IDLE_CALLBACKS, options))
    header = Header(match_id="1d1e0000-0000-4000-8000-000000000001.n1", node="n1", tick_rate=10)
    with MatchDriver(JsHandler(path), header) as d:
        d.init({})
        d.tick(ticks)
        d.terminate(5)
        return d, tmp_path / "plain.js"


def test_empty_ticks_fold_into_a_count_and_inputs_wait_at_most_flush_seconds(tmp_path: Path) -> None:
    d, plain = idle_match(tmp_path, {"mode": "lean"}, 95)
    lines = nakama_log(d)
    recs = records(lines)
    loops = [r for r in recs if r["k"] == "loops"]
    # empty ticks are only counted; the tick with a value is written at once, its 1 s (10 ticks) being over
    assert [(r["t"], r["n"]) for r in loops] == [(0, 26), (26, 69)]
    assert [r["x"] for r in loops] == [[{"i": 25, "nd": [["time", d.steps[26].nondeterministic[0].value]]}], []]
    assert [r["k"] for r in recs][-1] == "terminate"  # the pending ticks were written before it
    assert recs[0]["h"]["mode"] == "lean" and recs[0]["h"]["flush"] == 10
    _, [m] = ingest(lines)
    assert m.ticks == 95 and m.problems == []
    result = replay(write_match(m, tmp_path / "out", handler=str(plain)), str(plain))
    assert result.reproduced and result.ticks_replayed == 95, result.verdict
    # with 5 s (50 ticks) the value waits for the 50th tick
    d2, _ = idle_match(tmp_path / "five", {"mode": "lean", "flushSeconds": 5}, 95)
    assert [(r["t"], r["n"]) for r in records(nakama_log(d2)) if r["k"] == "loops"] == [(0, 50), (50, 45)]


def test_a_bad_mode_is_refused_when_the_bundle_loads(tmp_path: Path) -> None:
    path = tmp_path / "index.js"
    path.write_text(wrap_bundle(IDLE, IDLE_CALLBACKS, {"mode": "fast"}))
    with pytest.raises(HandlerLoadError, match='mode must be "full" or "lean", got fast'):
        JsHandler(path)
