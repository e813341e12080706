"""The capture module's lean mode (issue 19): loops recorded by their inputs and nondeterministic values,
empty ticks folded into a count, several ticks per log line. Round trips wrapped module -> log lines ->
ingest -> reproduce, the same inputs as the full mode, the crash line right after its tick's record, and
ingest's checks of the new ``loops`` record."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from recorder.capture import Ingest, write_match
from recorder.format import Header, LoopCall, read_events
from replay.lua import LuaHandler
from replay.runtime import MatchDriver, reproduce
from tests.capture.test_lua_capture import ingest, nakama_log
from tests.common.paths import ROOT

HANDLERS = ROOT / "fixtures" / "handlers"
sys.path.insert(0, str(ROOT / "fixtures"))
import make_recordings  # noqa: E402


def wrapped_arena(tmp_path: Path, options: str, **play: Any) -> tuple[MatchDriver, list[str]]:
    (tmp_path / "arena.lua").write_text((HANDLERS / "arena.lua").read_text())
    path = tmp_path / "wrapped.lua"
    path.write_text(f'return require("nkreplay_capture").wrap(require("arena"), {{ module = "arena", {options} }})\n')
    with MatchDriver(LuaHandler(path), make_recordings.arena_header()) as d:
        make_recordings.play_arena(d, **play)
        return d, nakama_log(d)


def records(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        msg = json.loads(line)["msg"]
        if msg.startswith("nkreplay:1 {"):
            out.append(json.loads(msg.split(" ", 1)[1]))
    return out


def inputs(events: list[Any]) -> list[Any]:
    """The calls without their outcomes (what a lean recording holds of every loop); the crash without its
    traceback (its frames in the capture module differ between the modes)."""
    return [
        dataclasses.replace(e, outcome=None) if hasattr(e, "outcome") else dataclasses.replace(e, traceback="")
        for e in events
    ]


def test_lean_round_trip_holds_the_full_modes_inputs_and_reproduces(tmp_path: Path) -> None:
    full, full_lines = wrapped_arena(tmp_path, "snapshot_every = 10")
    lean, lean_lines = wrapped_arena(tmp_path, 'mode = "lean"')
    assert lean.runtime.crash.error == full.runtime.crash.error  # the wrapped handler is unchanged
    _, [f] = ingest(full_lines)
    ing, [m] = ingest(lean_lines)
    assert ing.stats.damaged == [] and m.problems == []
    assert m.header.tags["capture_mode"] == "lean" and f.header.tags["capture_mode"] == "full"
    assert m.ticks == f.ticks and m.calls == f.calls
    assert inputs(m.events) == inputs(f.events)  # every input and nondeterministic value, in order
    loops = [e for e in m.events if isinstance(e, LoopCall)]
    assert loops and all(e.outcome is None for e in loops)
    # several ticks per line: far fewer log lines than calls
    assert len(records(lean_lines)) < len(records(full_lines)) // 2
    # the crash: its tick's record is the last of ours, Nakama's crash line right after it
    assert json.loads(lean_lines[-1])["msg"].startswith("Stopping match after error from match_loop")
    last = records(lean_lines)[-1]
    assert last["k"] == "loops"
    assert last["x"][-1]["e"].split("/")[-1] == lean.runtime.crash.error.split("/")[-1]  # Lua cuts long paths
    assert last["t"] + last["n"] - 1 == lean.runtime.crash.tick
    path = write_match(m, tmp_path / "out", handler=str(HANDLERS / "arena.lua"))
    result = reproduce(path, str(HANDLERS / "arena.lua"))
    assert result.reproduced, result.verdict
    assert (result.crash.callback, result.crash.tick) == ("match_loop", lean.runtime.crash.tick)
    assert not reproduce(path, str(HANDLERS / "arena_fixed.lua")).reproduced


def test_lean_with_outcomes_is_the_full_recording(tmp_path: Path) -> None:
    _, full_lines = wrapped_arena(tmp_path, "snapshot_every = 10")
    _, lean_lines = wrapped_arena(tmp_path, 'mode = "lean", outcomes = true, snapshot_every = 10')
    _, [f] = ingest(full_lines)
    _, [m] = ingest(lean_lines)
    assert m.events[:-1] == f.events[:-1]  # broadcasts, kicks, labels, stops and snapshot digests alike
    assert inputs(m.events[-1:]) == inputs(f.events[-1:])  # the crash
    assert sum(1 for e in m.events if isinstance(e, LoopCall) and e.outcome and e.outcome.digest) == 6
    result = reproduce(write_match(m, tmp_path / "out"), str(HANDLERS / "arena.lua"))
    assert result.reproduced and result.divergence_count == 0


def idle_match(
    tmp_path: Path,
    options: str,
    ticks: int,
    loop: str = "if t == 25 then s.now = nk.time() end",
    init: str = "",
    play: Any = None,
) -> MatchDriver:
    """A match without players: ``loop`` is the body of its match_loop (default: a nondeterministic value
    amid empty ticks, at tick 25), ``init`` statements run by match_init; init, ``ticks`` loops (``play``
    instead, if given: a function of the driver), terminate (unless a loop raised)."""
    (tmp_path / "clock_match.lua").write_text((HANDLERS / "clock_match.lua").read_text())
    path = tmp_path / "idle.lua"
    path.write_text(
        'local nk = require("nakama")\n'
        'local capture = require("nkreplay_capture")\n'
        "local M = {}\n"
        f"function M.match_init(c, p) local s = {{}} {init} return s, 10, '' end\n"
        "function M.match_join_attempt(c, d, t, s) return s, true end\n"
        "function M.match_join(c, d, t, s) return s end\n"
        "function M.match_leave(c, d, t, s) return s end\n"
        "function M.match_loop(c, d, t, s, m)\n"
        f"  {loop}\n"
        "  return s\n"
        "end\n"
        "function M.match_terminate(c, d, t, s) return s end\n"
        "function M.match_signal(c, d, t, s, x) return s, x end\n"
        f"return capture.wrap(M, {options})\n"
    )
    header = Header(match_id="1d1e0000-0000-4000-8000-000000000001.n1", node="n1", tick_rate=10)
    with MatchDriver(LuaHandler(path), header) as d:
        d.init({})
        if play is not None:
            play(d)
        else:
            d.tick(ticks)
        if d.runtime.crash is None:
            d.terminate(5)
        return d


def test_empty_ticks_fold_into_a_count_and_inputs_wait_at_most_flush_seconds(tmp_path: Path) -> None:
    # with outcomes every loop is observed: empty ticks are counted, a tick with something is written at
    # most flush_seconds later (here at once, its 1 s = 10 ticks being over at the next flush check)
    d = idle_match(tmp_path, '{ mode = "lean", outcomes = true }', 95)
    lines = nakama_log(d)
    recs = records(lines)
    loops = [r for r in recs if r["k"] == "loops"]
    assert [(r["t"], r["n"]) for r in loops] == [(0, 26), (26, 69)]
    assert [r["x"] for r in loops] == [[{"i": 25, "nd": [["time", d.steps[26].nondeterministic[0].value]]}], []]
    assert [r["k"] for r in recs][-1] == "terminate"  # the pending ticks were written before it
    _, [m] = ingest(lines)
    assert m.ticks == 95 and m.problems == []
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced and result.ticks_replayed == 95
    # with 5 s (50 ticks) the value waits for the 50th tick
    d2 = idle_match(tmp_path, '{ mode = "lean", outcomes = true, flush_seconds = 5 }', 95)
    assert [(r["t"], r["n"]) for r in records(nakama_log(d2)) if r["k"] == "loops"] == [(0, 50), (50, 45)]


def test_quiet_loops_are_not_written_and_ingest_infers_them(tmp_path: Path) -> None:
    """Lean without outcomes: a loop with no messages and nothing waiting in memory runs unobserved (no
    record); a value it draws is written at once (kind nd); ingest infers the loops between records."""
    d = idle_match(tmp_path, '{ mode = "lean" }', 95)
    lines = nakama_log(d)
    recs = records(lines)
    assert recs[0]["h"]["quiet"] is True
    assert [(r["k"], r["t"]) for r in recs] == [("init", 0), ("nd", 25), ("terminate", 95)]
    assert recs[1]["nd"] == [["time", d.steps[26].nondeterministic[0].value]]
    _, [m] = ingest(lines)
    assert m.ticks == 95 and m.problems == []
    loops = [e for e in m.events if isinstance(e, LoopCall)]
    assert [e.tick for e in loops] == list(range(95))
    assert [e.tick for e in loops if e.nondeterministic] == [25]
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced and result.ticks_replayed == 95


def test_a_value_every_tick_writes_about_two_lines_per_flush_period(tmp_path: Path) -> None:
    d = idle_match(tmp_path, '{ mode = "lean" }', 100, loop="s.now = nk.time()")
    lines = nakama_log(d)
    recs = records(lines)
    assert len(recs) <= 2 + 2 * 100 // 10 + 2  # init, terminate, per 10 ticks one nd + one loops record
    _, [m] = ingest(lines)
    loops = [e for e in m.events if isinstance(e, LoopCall)]
    assert [e.tick for e in loops] == list(range(100)) and all(len(e.nondeterministic) == 1 for e in loops)
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced and result.ticks_replayed == 100


def test_an_idle_lean_match_holds_only_the_small_module(tmp_path: Path) -> None:
    """Nakama loads the modules a match requires into the match's own Lua VM, and what that VM holds costs
    every tick (issue 19): after match_init a lean match drops the recording side (nkreplay_capture_rec)
    while nothing waits in memory; a value drawn by a quiet loop loads it again, and the records go on in
    sequence."""
    loop = (
        "local held = package.loaded.nkreplay_capture_rec ~= nil\n"
        "  if t == 30 and held then error('an idle match holds the recording module') end\n"
        "  if t == 40 then s.now = nk.time() end\n"
        "  if t == 41 and not held then error('the recording module was not loaded again') end"
    )
    d = idle_match(tmp_path, '{ mode = "lean" }', 60, loop=loop)
    assert d.runtime.crash is None
    recs = records(nakama_log(d))
    assert [(r["k"], r["t"], r["s"]) for r in recs] == [("init", 0, 0), ("nd", 40, 1), ("terminate", 60, 2)]
    assert recs[1]["nd"] == [["time", d.steps[41].nondeterministic[0].value]]


def test_values_drawn_by_match_init_are_in_its_record(tmp_path: Path) -> None:
    d = idle_match(tmp_path, '{ mode = "lean" }', 30, init="s.seed = math.random(1000) s.at = nk.time()")
    lines = nakama_log(d)
    [init] = [r for r in records(lines) if r["k"] == "init"]
    assert [source for source, _ in init["nd"]] == ["random", "time"]
    assert init["nd"][1][1] == d.steps[0].nondeterministic[1].value  # (the runtime keeps random's raw draw)
    _, [m] = ingest(lines)
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced and result.divergence_count == 0


def test_a_message_tick_is_written_before_a_crash_in_a_later_empty_tick(tmp_path: Path) -> None:
    # a tick with messages opens a batch: the empty ticks after it are observed (not quiet) until the batch is
    # written, so a crash in one of them is recorded after the message, before Nakama's crash line
    def play(d: MatchDriver) -> None:
        p = d.join("p1")
        d.tick(3)
        d.send(p, 1, "hello")
        d.tick(6)

    d = idle_match(tmp_path, '{ mode = "lean" }', 0, loop="if t == 8 then error('late crash') end", play=play)
    assert d.runtime.crash is not None and d.runtime.crash.tick == 8
    lines = nakama_log(d)
    last = records(lines)[-1]
    assert last["k"] == "loops" and last["t"] + last["n"] - 1 == 8 and "late crash" in last["x"][-1]["e"]
    assert last["mv"] and base64.b64decode(last["md"]) == b"hello"
    _, [m] = ingest(lines)
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced and (result.crash.callback, result.crash.tick) == ("match_loop", 8)


def test_a_value_drawn_by_a_quiet_loop_after_messages_is_written_at_once(tmp_path: Path) -> None:
    # the loops that took the message (tick 3) and the empty ticks after it ran observed; once their batch is
    # written the loops are quiet again, and the value at tick 20 is written as its own record before the crash
    def play(d: MatchDriver) -> None:
        p = d.join("p1")
        d.tick(3)
        d.send(p, 1, "hello")
        d.tick(30)

    loop = "if t == 20 then s.now = nk.time() end if t == 25 then error('quiet crash') end"
    d = idle_match(tmp_path, '{ mode = "lean" }', 0, loop=loop, play=play)
    assert d.runtime.crash is not None and d.runtime.crash.tick == 25
    lines = nakama_log(d)
    assert [(r["k"], r["t"]) for r in records(lines) if r["k"] != "loops"][-1] == ("nd", 20)
    _, [m] = ingest(lines)
    assert [e.tick for e in m.events if isinstance(e, LoopCall) and e.nondeterministic] == [20]
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced and (result.crash.callback, result.crash.tick) == ("match_loop", 25)


def test_a_recording_side_that_cannot_load_leaves_the_match_unrecorded_not_broken(tmp_path: Path) -> None:
    # nkreplay_capture_rec.lua not deployed (here: one that fails to load, found first): the first call that
    # needs it logs why, once, and the match runs the handler itself from then on
    (tmp_path / "nkreplay_capture_rec.lua").write_text("error('not deployed')\n")

    def play(d: MatchDriver) -> None:
        p = d.join("p1")
        d.tick(3)
        d.send(p, 1, "hello")
        d.tick(20)

    d = idle_match(tmp_path, '{ mode = "lean" }', 0, loop="if t == 15 then s.now = nk.time() end", play=play)
    assert d.runtime.crash is None
    errors = [m for level, m in d.runtime.logger.lines if level == "error"]
    assert len(errors) == 1 and "cannot load nkreplay_capture_rec" in errors[0] and "not deployed" in errors[0]
    assert [r["k"] for r in records(nakama_log(d))] == ["init"]


def test_loops_run_quiet_again_once_the_pending_ticks_are_written(tmp_path: Path) -> None:
    # the value at tick 40 makes ticks 41-50 observed (their batch written at 50, only empty ticks: not at all);
    # from 51 the loops are quiet again, so the crash at 55 has no record of its own, only Nakama's line
    d = idle_match(
        tmp_path, '{ mode = "lean" }', 70, loop="if t == 40 then s.now = nk.time() end if t == 55 then error('x') end"
    )
    assert d.runtime.crash is not None and d.runtime.crash.tick == 55
    lines = nakama_log(d)
    assert [(r["k"], r["t"]) for r in records(lines)] == [("init", 0), ("nd", 40)]
    _, [m] = ingest(lines)
    assert [e.tick for e in m.events if isinstance(e, LoopCall)] == list(range(56)) and m.problems == []


@pytest.mark.parametrize(
    ("loop", "records_before_crash"),
    [
        ("if t == 40 then error('quiet crash') end", [("init", 0)]),  # nothing of tick 40 was written
        ("if t == 40 then s.now = nk.time(); error('quiet crash') end", [("init", 0), ("nd", 40)]),
        ("if t == 40 then s.now = nk.time() end if t == 44 then error('quiet crash') end", [("init", 0), ("nd", 40)]),
    ],
)
def test_a_crash_in_a_quiet_loop_is_placed_by_nakamas_crash_line(
    tmp_path: Path, loop: str, records_before_crash: list[tuple[str, int]]
) -> None:
    d = idle_match(tmp_path, '{ mode = "lean" }', 60, loop=loop)
    crash = d.runtime.crash
    assert crash is not None and crash.callback == "match_loop"
    lines = nakama_log(d)
    recs = records(lines)
    assert [(r["k"], r["t"]) for r in recs if r["k"] != "loops"] == records_before_crash
    assert json.loads(lines[-1])["msg"].startswith("Stopping match after error from match_loop")
    _, [m] = ingest(lines)
    assert m.problems == []
    loops = [e for e in m.events if isinstance(e, LoopCall)]
    assert [e.tick for e in loops] == list(range(crash.tick + 1))
    result = reproduce(write_match(m, tmp_path / "out", handler=str(tmp_path / "idle.lua")), str(tmp_path / "idle.lua"))
    assert result.reproduced, result.verdict
    assert (result.crash.callback, result.crash.tick) == ("match_loop", crash.tick)


def test_matches_outside_the_sample_get_the_handler_itself(tmp_path: Path) -> None:
    d = idle_match(tmp_path, '{ mode = "lean", sample = 0 }', 30)
    assert not any("nkreplay:1" in m for _, m in d.runtime.logger.lines)
    (tmp_path / "arena.lua").write_text((HANDLERS / "arena.lua").read_text())
    probe = tmp_path / "probe.lua"
    probe.write_text(
        'local capture = require("nkreplay_capture")\nlocal M = require("arena")\n'
        "assert(capture.wrap(M, { sample = 0 }) == M, 'outside the sample: the handler table itself')\n"
        "assert(package.loaded.nkreplay_capture_rec == nil, 'outside the sample: no recording module held')\n"
        "assert(capture.wrap(M, { sample = 1 }) ~= M, 'inside: a wrapper')\n"
        "return M\n"
    )
    LuaHandler(probe)  # loading runs the asserts


def test_message_fields_are_recorded_exactly_whatever_their_values(tmp_path: Path) -> None:
    """The lean loop's messages (a record's ``mv``/``md``, flat numbers and joined data, with a sender cache
    and per-batch sender indexes): small, large and negative op codes, no data, empty and binary data,
    unreliable messages, a sender whose username changes (and changes back) within a batch, and a later
    batch with fewer messages than the one before all read back as they were sent, the numbers printed as
    ``nk.json_encode`` prints them (the ground any cheaper encoding of them must keep: issue 19)."""
    from recorder.format import Presence

    def play(d: MatchDriver) -> None:
        p, q = d.join("p1"), d.join("p2")
        assert p is not None and q is not None
        d.tick(2)
        d.send(p, 1, "hello")
        d.send(q, 255, b"\x00\xff\x80 binary")
        d.send(p, 256, None)
        d.send(q, -3, b"")
        d.send(p, 2**40, b"x" * 300, reliable=False)
        d.send(q, 7, None, reliable=False)
        d.tick()
        renamed = Presence(p.user_id, p.session_id, "p1-renamed", p.node)
        d.send(renamed, 2, "after the rename")
        d.send(q, 1, "hello")
        d.tick()
        d.send(p, 2, "the old name again")
        d.send(renamed, 1, "and the new one")
        d.tick(15)  # the batch is written (flush_seconds: 10 ticks)
        d.send(q, 3, "a smaller batch")
        d.tick(15)

    d = idle_match(tmp_path, '{ mode = "lean" }', 0, loop="", play=play)
    lines = nakama_log(d)
    loops = [r for r in records(lines) if r["k"] == "loops"]
    assert [len(r["mv"]) // 6 for r in loops] == [10, 1]
    for line, r in zip([ln for ln in lines if '\\"k\\":\\"loops\\"' in ln], loops, strict=True):
        # the numbers' text is what nk.json_encode gave them: plain integers, true/false
        assert json.dumps(r["mv"], separators=(",", ":")).replace('"', '\\"') in line
    _, [m] = ingest(lines)
    assert m.problems == []
    sent = [(s.call.tick, s.call.messages) for s in d.steps if isinstance(s.call, LoopCall) and s.call.messages]
    got = [(e.tick, e.messages) for e in m.events if isinstance(e, LoopCall) and e.messages]
    assert got == sent and len(sent) == 4
    assert [msg.sender.username for _, ms in got for msg in ms][6:] == ["p1-renamed", "p2", "p1", "p1-renamed", "p2"]


def test_long_batches_split_into_parts_and_still_ingest(tmp_path: Path) -> None:
    _, lines = wrapped_arena(tmp_path, 'mode = "lean", max_line = 400')
    assert any('"nkreplay:1 P ' in line for line in lines)
    ing, [m] = ingest(lines)
    assert ing.stats.damaged == [] and m.problems == []
    assert reproduce(write_match(m, tmp_path / "out"), str(HANDLERS / "arena.lua")).reproduced


def test_a_bad_mode_is_refused_when_the_module_loads(tmp_path: Path) -> None:
    with pytest.raises(Exception, match='mode must be "full" or "lean"'):
        wrapped_arena(tmp_path, 'mode = "thin"')


# -- ingest's checks of the loops record --------------------------------------------------------------


def lean_lines(tmp_path: Path) -> list[str]:
    return wrapped_arena(tmp_path, 'mode = "lean"', ticks=12, reconnect_race_at=None)[1]


def first_form(rec: dict[str, Any]) -> dict[str, Any]:
    """A loops record as the capture module wrote it before issue 19's second round: each tick's messages
    inside its entry (``x[].ms``: [sender index, op code, base64 data or false, reliable, receive time])
    instead of the flat ``mv``/``md``."""
    rec = json.loads(json.dumps(rec))
    mv, data = rec.pop("mv", []), base64.b64decode(rec.pop("md", ""))
    entries = {e["i"]: e for e in rec["x"]}
    pos = 0
    for k in range(0, len(mv), 6):
        i, sender, op, size, reliable, received = mv[k : k + 6]
        d: Any = False
        if size >= 0:
            d, pos = base64.b64encode(data[pos : pos + size]).decode(), pos + size
        entries.setdefault(i, {"i": i}).setdefault("ms", []).append([sender, op, d, bool(reliable), received])
    rec["x"] = [entries[i] for i in sorted(entries)]
    return rec


def edited(lines: list[str], edit: Any, form: Any = None) -> tuple[list[str], int]:
    """``lines`` with the first loops record that has messages changed by ``edit`` (after ``form``)."""
    lines = list(lines)
    k = next(i for i, line in enumerate(lines) if '\\"k\\":\\"loops\\"' in line and '\\"mv\\"' in line)
    obj = json.loads(lines[k])
    rec = json.loads(obj["msg"].split(" ", 1)[1])
    if form is not None:
        rec = form(rec)
    edit(rec)
    obj["msg"] = "nkreplay:1 " + json.dumps(rec)
    lines[k] = json.dumps(obj)
    return lines, k


def test_the_first_form_of_loops_records_is_still_read(tmp_path: Path) -> None:
    lines = lean_lines(tmp_path)
    _, [m] = ingest(lines)
    assert sum(len(e.messages) for e in m.events if isinstance(e, LoopCall)) > 10
    old = []
    for line in lines:
        if '\\"k\\":\\"loops\\"' in line and '\\"mv\\"' in line:
            obj = json.loads(line)
            obj["msg"] = "nkreplay:1 " + json.dumps(first_form(json.loads(obj["msg"].split(" ", 1)[1])))
            line = json.dumps(obj)
        old.append(line)
    assert old != lines and not any('\\"mv\\"' in line for line in old)
    ing, [m_old] = ingest(old)
    assert ing.stats.damaged == [] and m_old.events == m.events


@pytest.mark.parametrize(
    ("edit", "problem", "form"),
    [
        (lambda r: r.update(n=0), "n: ", None),
        (lambda r: r.update(n=10**9), "n: ", None),
        (lambda r: r["x"].append({"i": r["n"]}), ".i: ", None),
        (lambda r: r["x"].append("tick"), "must be an object", None),
        (lambda r: r.update(mv=r["mv"][:-1]), "six numbers per message", None),
        (lambda r: r["mv"].__setitem__(0, r["n"]), "mv[0]: ", None),
        (lambda r: r["mv"].__setitem__(6, r["mv"][0] - 1) if r["mv"][0] else r["mv"].__setitem__(0, -1), "mv[", None),
        (lambda r: r["mv"].__setitem__(1, 9), "mv[1]: ", None),
        (lambda r: r["mv"].__setitem__(2, "op"), "mv[2]: ", None),
        (lambda r: r["mv"].__setitem__(3, r["mv"][3] + 10**6), "mv[3]: ", None),
        (lambda r: r["mv"].__setitem__(4, "yes"), "mv[4]: ", None),
        (lambda r: r["mv"].__setitem__(5, 1.5), "mv[5]: ", None),
        (lambda r: r.update(md=r["md"] + "QQ=="), "md: ", None),
        (lambda r: r.update(md="not base64!"), "md: ", None),
        (lambda r: r.pop("mv"), "md: message data without the messages", None),
        (
            lambda r: (
                r["x"].append({"i": r["n"] - 1, "ms": []}) if r["x"] == [] else r["x"][0].update(i=r["mv"][0], ms=[])
            ),
            "also has messages in mv",
            None,
        ),
        (lambda r: r["x"].insert(0, r["x"][-1]), "offsets must increase", first_form),
        (lambda r: r["x"][0]["ms"][0].__setitem__(1, "op"), "x[0].ms[0][1]", first_form),
        (lambda r: r["x"][0]["ms"][0].__setitem__(0, 9), "x[0].ms[0][0]", first_form),
        (lambda r: r["x"][0].update(nd=[["time"]]), "x[0].nd[0]", first_form),
    ],
)
def test_a_bad_loops_record_is_reported_with_its_field(tmp_path: Path, edit: Any, problem: str, form: Any) -> None:
    lines, k = edited(lean_lines(tmp_path), edit, form)
    ing = Ingest()
    ing.feed(lines, "lean.log")
    [m] = ing.matches()
    [damaged] = ing.stats.damaged
    assert damaged.line == k + 1 and problem in damaged.problem, damaged
    ticks = [e.tick for e in m.events if isinstance(e, LoopCall)]  # none of the damaged record's calls
    assert ticks == sorted(ticks) and len(ticks) == len(set(ticks)) and len(ticks) < 15


def test_a_lean_recording_reads_back_whole(tmp_path: Path) -> None:
    _, [m] = ingest(lean_lines(tmp_path))
    path = write_match(m, tmp_path / "out")
    header, events = read_events(path)
    assert header.tags["capture_mode"] == "lean" and events == m.events
