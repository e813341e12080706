"""``nakama-replay diff`` on the arena example: --against, --determinism and --recorded, exit codes 0/1/2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from recorder import Header, InitCall, LoopCall, Outcome, RecordingWriter, open_recording
from recorder.format import JoinCall, canonical_bytes, state_digest
from replay.cli import main
from tests.common.paths import ROOT

REC = str(ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec")
HANDLERS = ROOT / "fixtures" / "handlers"
ARENA, FIXED = str(HANDLERS / "arena.py"), str(HANDLERS / "arena_fixed.py")
RANDOM, SET_ORDER = str(HANDLERS / "arena_nondeterministic.py"), str(HANDLERS / "arena_set_order.py")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["diff", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def reconnect() -> tuple[int, str]:
    """The tick of bob's reconnect in the fixture and the session it overtakes (read from the recording)."""
    with open_recording(REC) as rec:
        joins = [e for e in rec.events() if isinstance(e, JoinCall)]
    bob = [(j.tick, p.session_id) for j in joins for p in j.presences if p.username == "bob"]
    (_, old_session), (tick, _) = bob[0], bob[-1]
    return tick, old_session


def test_fixed_against_buggy_finds_the_reconnect(capsys: pytest.CaptureFixture[str]) -> None:
    tick, old_session = reconnect()
    code, out = run(capsys, REC, "--handler", ARENA, "--against", FIXED)
    assert code == 1
    assert (out["diverged"], out["tick"], out["callback"]) == (True, tick, "match_join")
    # the buggy handler deletes bob's old session, the fixed one marks it None
    assert out["paths"] == [{"path": f'sessions["{old_session}"]', "a": None, "b": None, "missing": "a"}]
    assert out["inputs"]["presences"][0]["username"] == "bob"


def test_a_handler_against_itself_does_not_diverge(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, REC, "--handler", ARENA, "--against", ARENA)
    assert (code, out["diverged"], out["paths"]) == (0, False, [])
    assert out["calls_compared"] > 60


def test_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    tick, old_session = reconnect()
    assert main(["diff", REC, "--handler", ARENA, "--against", FIXED]) == 1
    text = capsys.readouterr().out
    assert f"match_join at tick {tick}" in text
    assert f'sessions["{old_session}"]' in text and "<missing>" in text


def test_determinism_catches_the_global_random_module(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, REC, "--handler", RANDOM, "--determinism", "--no-hash-seed-pass")
    assert code == 1
    assert (out["tick"], out["callback"]) == (0, "match_loop")
    assert [p["path"] for p in out["paths"]] == ["wind"]
    assert out["paths"][0]["a"] != out["paths"][0]["b"]


def test_determinism_catches_set_order_only_across_hash_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, REC, "--handler", SET_ORDER, "--determinism", "--no-hash-seed-pass")
    assert (code, out["diverged"]) == (0, False)  # inside one process a set iterates the same way twice
    code, out = run(capsys, REC, "--handler", SET_ORDER, "--determinism", "--limit", "1")
    assert code == 1
    assert (out["tick"], out["callback"]) == (0, "match_loop")
    assert "PYTHONHASHSEED" in out["a"] and "PYTHONHASHSEED" in out["b"]
    assert out["path_count"] >= 2 and len(out["paths"]) == 1  # --limit: the first path, then a count
    assert out["paths"][0]["path"].startswith("roster[")


def test_determinism_passes_for_the_fixed_handler(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, REC, "--handler", FIXED, "--determinism")
    assert (code, out["diverged"]) == (0, False)
    assert out["calls_compared"] > 60


def test_recorded_reproduction_is_not_a_divergence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, REC, "--handler", ARENA, "--recorded")  # the buggy one: crash as recorded
    assert (code, out["diverged"]) == (0, False)
    assert "as recorded" in out["note"]


def test_recorded_against_the_fixed_handler(capsys: pytest.CaptureFixture[str]) -> None:
    tick, _ = reconnect()
    code, out = run(capsys, REC, "--handler", FIXED, "--recorded")
    assert code == 1
    assert (out["tick"], out["callback"]) == (tick, "match_join")
    assert "no state snapshot" in out["note"]  # the fixture keeps snapshots every 10 ticks only


def test_recorded_names_paths_where_snapshots_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(ROOT / "fixtures"))
    try:
        from make_recordings import arena_header, play_arena
    finally:
        sys.path.remove(str(ROOT / "fixtures"))
    from replay.runtime import MatchDriver

    rec = tmp_path / "arena-snapshots.nkrec"
    with MatchDriver(ARENA, arena_header(handler=ARENA), capture=str(rec), snapshot_every=1) as d:
        play_arena(d, ticks=5, reconnect_race_at=None)
    code, out = run(capsys, str(rec), "--handler", RANDOM, "--recorded")
    assert code == 1
    assert (out["tick"], out["callback"]) == (0, "match_loop")
    assert out["paths"] == [{"path": "wind", "a": None, "b": out["paths"][0]["b"], "missing": "a"}]


HANDLER_WITH_NOISE = """
def match_init(ctx, logger, nk, params):
    return {"x": 0.0, "n": 0}, 10, ""
def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):
    state["x"] = (tick + 1) * 0.1 * (1 + 1e-13)   # the recording has (tick + 1) * 0.1
    state["n"] = tick + 1
    return state
def match_join_attempt(ctx, logger, nk, dispatcher, tick, state, presence, metadata): return state, True, ""
def match_join(ctx, logger, nk, dispatcher, tick, state, presences): return state
def match_leave(ctx, logger, nk, dispatcher, tick, state, presences): return state
def match_terminate(ctx, logger, nk, dispatcher, tick, state, grace_seconds): return state
def match_signal(ctx, logger, nk, dispatcher, tick, state, data): return state, ""
"""


def test_recorded_with_float_tolerance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = tmp_path / "noisy.py"
    handler.write_text(HANDLER_WITH_NOISE)
    rec = tmp_path / "floats.nkrec"
    with RecordingWriter(str(rec), Header(match_id="m.n", module="noisy", tick_rate=10)) as w:
        init = {"x": 0.0, "n": 0}
        w.append(InitCall({}, Outcome(tick_rate=10, label="", digest=state_digest(init))))
        for t in range(5):
            state = {"x": (t + 1) * 0.1, "n": t + 1}
            w.append(LoopCall(t, (), Outcome(digest=state_digest(state), snapshot=canonical_bytes(state))))
    code, out = run(capsys, str(rec), "--handler", str(handler), "--recorded")
    assert code == 1 and (out["tick"], out["callback"]) == (0, "match_loop")
    assert [p["path"] for p in out["paths"]] == ["x"]
    code, out = run(capsys, str(rec), "--handler", str(handler), "--recorded", "--float-tolerance", "rel=1e-9")
    assert (code, out["diverged"]) == (0, False)


@pytest.mark.parametrize(
    "argv",
    [
        ["/no/such/file.nkrec", "--recorded"],
        [REC, "--handler", str(HANDLERS / "missing.py"), "--against", FIXED],
        [REC, "--handler", FIXED, "--determinism", "--float-tolerance", "rel=x"],
        [REC, "--handler", FIXED],  # no mode
    ],
)
def test_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["diff", *argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    assert code == 2
    assert capsys.readouterr().err.strip()
