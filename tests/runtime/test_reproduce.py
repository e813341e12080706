"""`nakama-replay reproduce` on the bundled arena recording, and capture -> replay round trips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.format import CrashMarker, LoopCall, read_events
from replay.cli import main
from replay.runtime import MatchDriver, reproduce
from tests.common.paths import ROOT, TEST_HANDLERS

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
ARENA = ROOT / "fixtures" / "handlers" / "arena.py"
ARENA_FIXED = ROOT / "fixtures" / "handlers" / "arena_fixed.py"

sys.path.insert(0, str(ROOT / "fixtures"))
import make_recordings  # noqa: E402


def test_bundled_recording_reproduces_the_crash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", str(CRASH_REC), "--handler", str(ARENA)]) == 0
    out = capsys.readouterr().out
    assert "CRASHED in match_loop at tick 58: KeyError" in out
    assert 'user_id = state["sessions"][m.sender.session_id]' in out  # the traceback's handler line
    assert "REPRODUCED" in out


def test_fixed_handler_does_not_reproduce(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", str(CRASH_REC), "--handler", str(ARENA_FIXED)]) == 1
    out = capsys.readouterr().out
    assert "ran to the end" in out and "DID NOT REPRODUCE" in out


def test_json_output_is_byte_identical_across_processes() -> None:
    cmd = [sys.executable, "-m", "replay.cli", "reproduce", str(CRASH_REC), "--handler", str(ARENA), "--json"]
    runs = [subprocess.run(cmd, capture_output=True, cwd=ROOT, check=False) for _ in range(2)]
    assert runs[0].returncode == 0 and runs[0].stdout == runs[1].stdout
    doc = json.loads(runs[0].stdout)
    assert doc["outcome"] == "crashed" and doc["callback"] == "match_loop" and doc["tick"] == 58
    assert doc["reproduced"] is True and doc["ticks_replayed"] == 59
    assert doc["error"].startswith("KeyError") and "Traceback" in doc["traceback"]
    assert doc["recorded_crash"]["tick"] == 58


def test_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", str(tmp_path / "missing.nkrec")]) == 2
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("def match_init(:\n")
    assert main(["reproduce", str(CRASH_REC), "--handler", str(broken)]) == 2
    assert "syntax error at line 1" in capsys.readouterr().err


def test_fixture_script_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # tracebacks name handler files relative to the working directory
    first = make_recordings.make(tmp_path / "a")
    second = make_recordings.make(tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    assert first[0].read_bytes() == CRASH_REC.read_bytes()  # the committed fixture is what the script makes


def test_capture_records_outcomes_and_replay_matches_them(tmp_path: Path) -> None:
    out = tmp_path / "clean.nkrec"
    with MatchDriver(
        str(ARENA_FIXED), make_recordings.arena_header(str(ARENA_FIXED)), capture=str(out), snapshot_every=5
    ) as d:
        make_recordings.play_arena(d, ticks=30, reconnect_race_at=25)
    _header, events = read_events(out)
    loops = [e for e in events if isinstance(e, LoopCall)]
    assert all(e.outcome is not None and e.outcome.digest is not None for e in loops)
    assert sum(1 for e in loops if e.outcome.snapshot is not None) == len([e for e in loops if e.tick % 5 == 0])
    assert any(e.outcome.broadcasts for e in loops)
    assert not any(isinstance(e, CrashMarker) for e in events)
    result = reproduce(out, str(ARENA_FIXED))
    assert result.reproduced and result.divergence_count == 0, [d.describe() for d in result.divergences]
    # the buggy handler crashes on the same inputs (the race is in this scenario too)
    crashed = reproduce(out, str(ARENA))
    assert crashed.outcome == "crashed" and crashed.crash.error_type == "KeyError" and not crashed.reproduced


def test_killed_capture_keeps_every_finished_tick(tmp_path: Path) -> None:
    out = tmp_path / "killed.nkrec"
    with MatchDriver(str(ARENA_FIXED), make_recordings.arena_header(str(ARENA_FIXED)), capture=str(out)) as d:
        make_recordings.play_arena(d, ticks=20, reconnect_race_at=None)
        size = out.stat().st_size
    data = out.read_bytes()
    cut = tmp_path / "cut.nkrec"
    cut.write_bytes(data[: size - 7])  # the recorder died while writing the last frame
    with pytest.warns(UserWarning, match="truncated"):
        _, events = read_events(cut)
    assert len([e for e in events if isinstance(e, LoopCall)]) >= 20


def test_bundled_lua_recording_shows_the_lua_error_line_and_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    rec = ROOT / "fixtures" / "recordings" / "arena-lua-reconnect-crash.nkrec"
    assert main(["reproduce", str(rec), "--handler", str(rec.parent.parent / "handlers" / "arena.lua"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["outcome"], doc["callback"], doc["tick"], doc["reproduced"]) == ("crashed", "match_loop", 58, True)
    assert doc["error"].endswith("arena.lua:54: attempt to index local 'player' (a nil value)")
    assert "stack traceback:" in doc["traceback"] and "in function 'handle_input'" in doc["traceback"]
    fixed = ROOT / "fixtures" / "handlers" / "arena_fixed.lua"
    assert main(["reproduce", str(rec), "--handler", str(fixed)]) == 1


def _stop_recording(path: Path, *, recorded_stop: bool, calls_after: int) -> Path:
    """A probe match whose loop 0 carries op code 6 (the probe returns no state: the match stops quietly),
    with ``calls_after`` loops recorded after it."""
    from recorder.format import (
        Header,
        InitCall,
        JoinAttemptCall,
        JoinCall,
        MatchMessage,
        Outcome,
        Presence,
        write_recording,
    )

    alice = Presence("2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c", "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918", "alice", "nakama1")
    stop = LoopCall(
        0, (MatchMessage(alice, 6, None, True, 0),), outcome=Outcome(stopped=True) if recorded_stop else None
    )
    events = [InitCall({}), JoinAttemptCall(0, alice, {}), JoinCall(0, (alice,)), stop]
    events += [LoopCall(t, ()) for t in range(1, 1 + calls_after)]
    shutil.copy(TEST_HANDLERS / "probe.py", path.parent / "probe.py")  # inside: the header may name it
    header = Header(match_id="m.nakama1", tick_rate=10, handler="probe.py")
    write_recording(path, header, events)
    return path


def test_calls_recorded_after_the_stop_are_counted_and_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #14, item 8: a replay that stops no longer passes over the calls recorded after the stop."""
    clean = reproduce(_stop_recording(tmp_path / "clean.nkrec", recorded_stop=True, calls_after=0))
    assert clean.reproduced and clean.verdict == "stopped as recorded" and clean.after_stop is None

    # the recording says the match stopped at loop 0 and still holds 2 loops: Nakama could not have made them
    inconsistent = reproduce(_stop_recording(tmp_path / "odd.nkrec", recorded_stop=True, calls_after=2))
    a = inconsistent.after_stop
    assert a is not None and (a.count, a.first_callback, a.first_tick, a.nakama_could_make) == (
        2,
        "match_loop",
        1,
        False,
    )
    assert not inconsistent.reproduced and "could not have made" in inconsistent.verdict
    assert inconsistent.calls_replayed == 4

    # the recording does not say it stopped (an older handler went on): Nakama made the later calls
    went_on = reproduce(_stop_recording(tmp_path / "on.nkrec", recorded_stop=False, calls_after=3))
    assert went_on.after_stop is not None and went_on.after_stop.nakama_could_make and went_on.after_stop.count == 3
    assert not went_on.reproduced and "had not stopped there" in went_on.verdict

    assert main(["reproduce", str(tmp_path / "odd.nkrec")]) == 1
    out = capsys.readouterr().out
    assert "after stop 2 calls after the stop in match_loop at tick 0" in out
    assert out.rstrip().splitlines()[-1].startswith("DID NOT REPRODUCE: the replay stopped in match_loop at tick 0")
    assert main(["reproduce", str(tmp_path / "on.nkrec"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["calls_after_stop"]["count"] == 3 and doc["calls_after_stop"]["nakama_could_make"] is True
