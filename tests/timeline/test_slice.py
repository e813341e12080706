"""`nakama-replay slice`: ticks A..B as a complete recording that starts from the state at A (from the
recording's snapshot, or replayed into the handler), which `reproduce` replays to the same crash."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import msgpack
import pytest

from recorder import Header, InitCall, LoopCall, Outcome, read_events, verify, write_recording
from recorder.errors import RecordingError
from replay.cli import main
from replay.runtime import reproduce
from replay.runtime._resume import resume_point
from replay.timeline import build_timeline
from tests.common.paths import ROOT

CRASH = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
LUA_CRASH = ROOT / "fixtures" / "recordings" / "arena-lua-reconnect-crash.nkrec"
ARENA = ROOT / "fixtures" / "handlers" / "arena.py"
ARENA_LUA = ROOT / "fixtures" / "handlers" / "arena.lua"


def _slice(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["slice", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_slice_from_a_snapshot_reproduces_the_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "last.nkrec"
    s = _slice(capsys, str(CRASH), "--from-tick", "51", "--to-tick", "58", "-o", str(out))
    assert s["state_from"] == "the recording's snapshot after the loop of tick 50" and s["crash"]["tick"] == 58
    header, events = read_events(out)
    assert isinstance(events[0], InitCall) and events[0].tick == 51 and events[0].outcome.digest is not None
    assert {e.tick for e in events[1:]} == set(range(51, 59))
    point = resume_point(header)
    assert point is not None and point.tick == 51
    assert sorted(p.username for p in point.presences) == ["alice", "bob", "cho"]
    assert header.tags["slice"]["of_match"] == "4c2f7d0e-8a51-4b8e-9c3d-2e7f6a1b9d40.nakama1"
    result = reproduce(out, str(ARENA))
    assert (
        result.reproduced
        and result.crash is not None
        and (result.crash.callback, result.crash.tick) == ("match_loop", 58)
    )
    assert result.divergence_count == 0 and result.calls_replayed == len(events) - 1
    assert main(["reproduce", str(out), "--handler", str(ARENA), "--in-process"]) == 0


def test_slice_by_replaying_the_handler_up_to_a(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.nkrec"
    s = _slice(capsys, str(CRASH), "--from-tick", "45", "--to-tick", "58", "-o", str(out), "--handler", str(ARENA))
    assert s["state_from"] == (
        "the recording's snapshot after the loop of tick 40, then a replay into arena.py of ticks 41..44"
    )
    # from the nearest snapshot, the same match at 45 as a replay from the start gives
    whole = tmp_path / "whole.nkrec"
    argv = ["--from-tick", "45", "--to-tick", "58", "-o", str(whole), "--handler", str(ARENA), "--replay-state"]
    assert _slice(capsys, str(CRASH), *argv)["state_from"] == "a replay into arena.py up to tick 45"
    (near_header, near_events), (whole_header, whole_events) = read_events(out), read_events(whole)
    assert near_header.tags["slice"]["resume"] == whole_header.tags["slice"]["resume"]
    assert near_events == whole_events
    result = reproduce(out, str(ARENA))
    assert result.reproduced and result.crash is not None and result.crash.tick == 58 and result.divergence_count == 0
    # a handler that does something else from the resumed state diverges (the slice carries outcomes)
    fixed = reproduce(out, str(ROOT / "fixtures" / "handlers" / "arena_fixed.py"))
    assert not fixed.reproduced


def test_a_snapshot_that_does_not_fit_falls_back_to_a_replay_from_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, events = read_events(CRASH)
    bogus = msgpack.packb({"not": "the arena"})
    events = [
        dataclasses.replace(e, outcome=dataclasses.replace(e.outcome, snapshot=bogus))
        if isinstance(e, LoopCall) and e.tick == 40
        else e
        for e in events
    ]
    source = tmp_path / "bad-snapshot.nkrec"
    write_recording(source, header, events)
    out = tmp_path / "s.nkrec"
    s = _slice(capsys, str(source), "--from-tick", "45", "--to-tick", "58", "-o", str(out), "--handler", str(ARENA))
    assert s["state_from"].startswith("a replay into arena.py up to tick 45 (from the snapshot after tick 40 it ")
    assert "digest" in s["state_from"], s["state_from"]
    assert reproduce(out, str(ARENA)).reproduced


def test_slice_of_a_lua_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--from-tick", "41"], ["--from-tick", "37", "--handler", str(ARENA_LUA)]):
        out = tmp_path / f"lua{args[1]}.nkrec"
        _slice(capsys, str(LUA_CRASH), *args, "--to-tick", "60", "-o", str(out))
        result = reproduce(out, str(ARENA_LUA))
        assert result.reproduced and result.crash is not None and result.crash.tick == 58, result.verdict


def test_a_slice_from_the_start_is_the_recording_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "head.nkrec"
    _slice(capsys, str(CRASH), "--from-tick", "0", "--to-tick", "20", "-o", str(out))
    _, events = read_events(out)
    _, source = read_events(CRASH)
    assert events == [e for e in source if e.tick <= 20 and e.kind != "crash"]
    assert reproduce(out, str(ARENA)).reproduced


def test_slice_view_and_timeline_show_the_presences_at_its_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "last.nkrec"
    _slice(capsys, str(CRASH), "--from-tick", "51", "--to-tick", "58", "-o", str(out))
    tl = build_timeline(out)
    assert (tl.first_tick, tl.last_tick) == (51, 58) and tl.crash is not None
    assert [lane.username for lane in tl.lanes] == ["alice", "bob", "cho"]
    assert tl.slice is not None and tl.slice["from_tick"] == 51
    bob = tl.lanes[1].sessions
    assert bob[0].present_at_start and bob[1].reconnect and bob[1].overlaps


def test_slice_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.nkrec")
    assert main(["slice", str(CRASH), "--from-tick", "60", "--to-tick", "70", "-o", out]) == 2
    assert "outside the recording's ticks (0..58)" in capsys.readouterr().err
    assert main(["slice", str(CRASH), "--from-tick", "9", "--to-tick", "3", "-o", out]) == 2
    assert "after --to-tick" in capsys.readouterr().err
    # no snapshot before 45 and the header's handler lies outside the folder: say what to do
    assert main(["slice", str(CRASH), "--from-tick", "45", "--to-tick", "58", "-o", out]) == 2
    assert "pass --handler" in capsys.readouterr().err
    assert not Path(out).exists()
    # a slice of a slice is refused (slice the original)
    first = tmp_path / "s.nkrec"
    _slice(capsys, str(CRASH), "--from-tick", "51", "--to-tick", "58", "-o", str(first))
    assert main(["slice", str(first), "--from-tick", "52", "--to-tick", "58", "-o", out]) == 2
    assert "is itself a slice" in capsys.readouterr().err


def test_a_replay_that_crashes_or_diverges_before_a_cannot_give_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    callbacks = "".join(
        f"def {name}(*a):\n    return a[5], True, ''\n"
        if name == "match_join_attempt"
        else f"def {name}(*a):\n    return a[5]\n"
        for name in ("match_join_attempt", "match_join", "match_leave", "match_loop", "match_terminate")
    )
    callbacks += "def match_signal(*a):\n    return a[5], ''\n"
    other = tmp_path / "other.py"
    other.write_text("def match_init(ctx, logger, nk, params):\n    return {'x': 1}, 10, ''\n" + callbacks)
    broken = tmp_path / "broken.py"
    broken.write_text("def match_init(ctx, logger, nk, params):\n    raise ValueError('no')\n" + callbacks)
    out = tmp_path / "x.nkrec"
    for handler, why in (
        (other, "diverges from the recording before tick 30 (match_init at tick 0"),
        (broken, "crashed (ValueError: no) in match_init at tick 0, before tick 30"),
    ):
        assert (
            main(
                ["slice", str(CRASH), "--from-tick", "30", "--to-tick", "58", "-o", str(out), "--handler", str(handler)]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert "SliceError" in err and why in err, err
        assert not out.exists()


def test_hostile_resume_points_are_named() -> None:
    for resume, field in (
        (None, "slice.resume"),
        ({"tick": -1}, "tick"),
        ({"tick": 3, "tick_rate": 0}, "tick_rate"),
        ({"tick": 3, "tick_rate": 10, "label": "", "state": None}, "state"),
        ({"tick": 3, "tick_rate": 10, "label": "", "state": {}, "presences": [["a"]]}, "presences[0]"),
    ):
        with pytest.raises(RecordingError, match="resume point: " + re.escape(field)):
            resume_point(Header(tags={"slice": {"resume": resume}}), "h.nkrec")
    rec = [InitCall({}, Outcome(tick_rate=10, label="")), LoopCall(3, ())]
    header = Header(
        tick_rate=10,
        tags={"slice": {"resume": {"tick": 3, "tick_rate": 10, "label": "", "state": {}, "storage": "nope"}}},
    )
    with pytest.raises(RecordingError, match="storage"):
        reproduce((header, rec), str(ARENA))


def test_the_slice_is_a_sealed_complete_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--from-tick", "51"], ["--from-tick", "0"]):
        out = tmp_path / f"s{args[1]}.nkrec"
        _slice(capsys, str(CRASH), *args, "--to-tick", "58", "-o", str(out))
        state = verify(out)
        assert state.complete, state.describe()
        assert main(["inspect", str(out), "--strict"]) == 0, capsys.readouterr().err
        capsys.readouterr()


def test_live_refuses_a_slice_before_connecting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.nkrec"
    _slice(capsys, str(CRASH), "--from-tick", "51", "--to-tick", "58", "-o", str(out))
    # port 9 (discard) on 127.0.0.1: refused before any connection is tried, so nothing listens there
    code = main(["live", str(out), "--nakama", "http://127.0.0.1:9", "--out", str(tmp_path / "live")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot start a match mid-way" in err and "tick 51" in err, err
