"""`nakama-replay live`: a recording re-fed in real time into `nakama-replay serve` (Python and Lua arena)
or, when NAKAMA_URL is set, into a real Nakama.

The crash recordings are made here, on the fly, at 10 Hz and 13 ticks (about 1.3 s of real time each):
three players ready up and move, one chats, cho's socket drops with a message in flight and cho comes
back on a new socket, then bob's socket drops right after an input and his client reconnects before the
next tick (the arena's reconnection race: the handler crashes in match_loop). Servers bind 127.0.0.1 on a
free port; every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.errors import OptionError, RecordingError
from recorder.format import CrashMarker, Header, RecordingWriter, WireEvent, read_events
from recorder.wire import protocol as P
from replay.cli import main
from replay.errors import LiveReplayError
from replay.live import (
    LiveOptions,
    ServerConfig,
    analyse,
    load_script,
    run_live,
    script_from_events,
    start_nakama_server,
)
from replay.live._feed import device_id
from replay.live._report import IdMap, find_crash_line, same_data
from replay.live._tick_clock import TickClock
from replay.runtime import MatchDriver
from tests.common.matches import RATE, inputs_per_tick, make_crash_recording
from tests.common.paths import ROOT
from tests.common.stalls import StallWatch, require_timely, timely

HANDLERS = ROOT / "fixtures" / "handlers"
CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"


def recorded_crash(path: Path) -> CrashMarker:
    return next(e for e in read_events(path)[1] if isinstance(e, CrashMarker))


@pytest.fixture(scope="module")
def python_crash(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crash_recording(tmp_path_factory.mktemp("rec") / "py-crash.nkrec", HANDLERS / "arena.py")


def run(coro, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def replay_into_serve(  # type: ignore[no-untyped-def]
    handler: Path, rec: Path, tmp: Path, serve: ServerConfig | None = None, watch: StallWatch | None = None, **options
):
    """Serve ``handler`` on a free port, replay ``rec`` into it; returns (script, run, serve's recordings).
    ``watch`` measures the replay's worst stall (tests/common/stalls.py)."""
    server, app = await start_nakama_server(serve or ServerConfig(str(handler), out_dir=str(tmp / "serve")))
    try:
        script = load_script(rec)
        async with watch or contextlib.nullcontext():
            live = await run_live(
                script,
                LiveOptions(
                    nakama=f"http://127.0.0.1:{server.port}",
                    out_dir=str(tmp / "wire"),
                    tail_ticks=3,
                    signal_rpc="signal_match",
                    **options,
                ),
            )
    finally:
        await app.close()
        await server.close()
    return script, live, list(app.recordings)


def assert_reproduced(report, rec: Path) -> None:  # type: ignore[no-untyped-def]
    marker = recorded_crash(rec)
    why = json.dumps(report.to_json(), indent=1, default=str)[:4000]
    assert report.outcome == "crashed", why
    assert report.reproduced, why
    assert abs(report.crash_tick - marker.tick) <= report.drift, why
    assert report.mismatch is None and report.matched == report.deliveries > 0, why
    assert report.problems == [], why  # every action went out; joins and signal replies as recorded


# -- the script: what to send, what to expect (no network) -----------------------------------------------


def test_script_of_the_bundled_crash_recording() -> None:
    s = load_script(CRASH_REC)
    assert (s.kind, s.tick_rate, s.first_tick, s.last_tick) == ("calls", 10, 0, 58)
    assert s.create_params == {"max_players": 8, "tick_rate": 10}
    assert [a.label for a in s.actors.values()] == ["alice", "bob", "cho", "cho#2", "bob#2"]
    by_label = {a.label: k for k, a in s.actors.items()}
    assert s.actors[by_label["bob#2"]].user_id == s.actors[by_label["bob"]].user_id  # a reconnect: same user
    label = {k: a.label for k, a in s.actors.items()}
    # the crash window: messages of sessions already in the match first (bob's old one too), then the join
    last = [(a.kind, a.tick, label[a.actor]) for a in s.actions[-4:]]
    assert last == [("send", 58, "alice"), ("send", 58, "bob"), ("send", 58, "cho#2"), ("join", 58, "bob#2")]
    # cho's socket drops with an input in flight: the input goes out first, then the socket closes
    cho = [(a.kind, a.tick) for a in s.actions if a.actor == by_label["cho"]]
    assert cho[-2:] == [("send", 23), ("disconnect", 23)]
    assert s.actions[:3] == [a for a in s.actions if a.kind == "join" and a.tick == 0]
    assert all(a.expect is True for a in s.actions if a.kind == "join")
    # who receives what: nothing for cho after its disconnect, cho#2 only from its join, bob#2 never
    assert max(d.tick for d in s.deliveries[by_label["cho"]]) < 23
    assert min(d.tick for d in s.deliveries[by_label["cho#2"]]) >= 29
    assert s.deliveries[by_label["bob#2"]] == []
    assert {d.op_code for d in s.deliveries[by_label["alice"]]} == {10, 11, 13}
    assert s.loop_ops == frozenset({10, 11, 13})
    assert (s.end.outcome, s.end.tick, s.end.callback) == ("crashed", 58, "match_loop")
    assert s.message_count == 169


def test_a_recording_that_starts_mid_match_joins_its_players_first() -> None:
    header, events = read_events(CRASH_REC)
    late = [
        e
        for e in events
        if not (e.kind in ("init", "join_attempt", "join") and e.tick < 5) and not (e.kind == "loop" and e.tick < 3)
    ]
    s = script_from_events("mid-match", header, late)
    assert s.first_tick == 3 and len(s.notes) == 3
    label = {k: a.label for k, a in s.actors.items()}
    assert [(a.kind, a.tick, label[a.actor]) for a in s.actions[:4]] == [
        ("join", 3, "alice"),
        ("join", 3, "bob"),
        ("join", 3, "cho"),
        ("send", 3, "alice"),
    ]
    assert s.deliveries[s.actions[0].actor][0].tick == 5  # present from the start: gets the first positions


def _wire(socket: str, direction: str, t: float, env: dict | None = None, **kw) -> WireEvent:  # type: ignore[no-untyped-def]
    return WireEvent(socket, direction, t, envelope=env, **kw)


def test_script_of_a_wire_recording(tmp_path: Path) -> None:
    mid = "6a0e3f9c-1b2d-4c5e-8f70-9a1b2c3d4e5f.nakama1"
    ana = {"user_id": "u-ana", "session_id": "s-ana", "username": "ana"}
    ben = {"user_id": "u-ben", "session_id": "s-ben", "username": "ben"}
    events = [
        _wire(
            "ws1",
            "out",
            0.00,
            {"session": "p1", "user_id": "u-ana", "username": "ana", "vars": {"v": "1"}},
            event="open",
        ),
        _wire("ws1", "out", 0.01, {"cid": "1", "rpc": {"id": "make_game", "payload": '{"mode":"duel"}'}}),
        _wire("ws1", "in", 0.02, {"cid": "1", "rpc": {"id": "make_game", "payload": json.dumps({"match_id": mid})}}),
        _wire("ws1", "out", 0.03, {"cid": "2", "match_join": {"match_id": mid, "metadata": {"v": "1"}}}),
        _wire("ws1", "in", 0.04, {"cid": "2", "match": {"match_id": mid, "authoritative": True, "self": ana}}),
        _wire("ws2", "out", 0.05, {"session": "p2", "user_id": "u-ben", "username": "ben"}, event="open"),
        _wire("ws2", "out", 0.06, {"cid": "1", "match_join": {"match_id": mid}}),
        _wire("ws2", "in", 0.07, {"cid": "1", "match": {"match_id": mid, "authoritative": True, "self": ben}}),
        _wire(
            "ws1",
            "out",
            0.25,
            {"match_data_send": {"match_id": mid, "op_code": "4", "data": "aGk=", "presences": [ben]}},
        ),
        _wire("ws2", "in", 0.32, {"match_data": {"match_id": mid, "presence": ana, "op_code": "4", "data": "aGk="}}),
        _wire("ws1", "out", 0.41, {"cid": "3", "rpc": {"id": "poke", "payload": mid}}),
        _wire("ws1", "out", 0.45, {"cid": "4", "channel_join": {"target": "x", "type": 1}}),
        _wire("ws2", "out", 0.52, {"cid": "2", "match_leave": {"match_id": mid}}),
        _wire("ws1", "out", 0.61, None, event="close", close_code=1000, close_reason=""),
    ]
    path = tmp_path / "wire.nkrec"
    with RecordingWriter(path, Header(match_id=mid, source="proxy", recording_kind="wire")) as w:
        w.extend(events)
    with pytest.raises(RecordingError, match="--tick-rate"):
        load_script(path)
    s = load_script(path, tick_rate=10)
    assert s.kind == "wire" and s.approximate
    assert (s.create_rpc, s.create_payload, s.create_params) == ("make_game", '{"mode":"duel"}', {"mode": "duel"})
    assert s.sessions == {"s-ana": "ws1", "s-ben": "ws2"}
    assert s.actors["ws1"].vars == {"v": "1"} and s.actors["ws2"].session_id == "s-ben"
    kinds = [(a.kind, a.actor, a.tick, round(a.at, 2)) for a in s.actions]  # times after the create reply (0.02)
    assert kinds == [
        ("join", "ws1", 0, 0.01),
        ("join", "ws2", 0, 0.04),
        ("send", "ws1", 2, 0.23),
        ("rpc", "ws1", 3, 0.39),
        ("leave", "ws2", 5, 0.5),
        ("disconnect", "ws1", 5, 0.59),
    ]
    send = s.actions[2].action
    assert (send.op_code, send.data, send.targets) == (4, b"hi", ("ws2",))
    assert s.actions[0].action.metadata == {"v": "1"} and s.actions[3].action.payload == mid
    d = s.deliveries["ws2"]
    assert [(x.op_code, x.data, x.sender, x.tick) for x in d] == [(4, b"hi", "ws1", 2)]
    assert s.skipped == ["1 channel_join envelope (not part of a match replay)"]
    assert s.end.outcome == "completed"


# -- pure helpers ------------------------------------------------------------------------------------------


def test_tick_clock_locks_on_the_earliest_arrival() -> None:
    c = TickClock(10, 1.0)  # loop k seen at 1.0 + k / 10
    assert (c.tick_of_arrival(1.0), c.tick_of_arrival(1.079), c.tick_of_arrival(1.081)) == (0, 0, 1)
    assert c.landing_of_send(0.95) == 0 and c.landing_of_send(1.0) == 1 and c.landing_of_send(1.35) == 4
    assert c.observe(1.52) and c.t0 == 1.0  # late by 0.02: the phase stays
    assert not c.observe(1.66)  # 0.6 of a period off the grid: not trusted
    assert c.observe(1.485) and c.t0 == pytest.approx(0.985)  # earlier than the grid: the phase moves
    assert c.observations == 2 and c.initial == 1.0
    with pytest.raises(ValueError):
        TickClock(0, 0.0)
    guess = TickClock(10, 5.0, locked=False)  # a running match: the first arrival sets the phase
    assert guess.observe(5.43) and guess.t0 == pytest.approx(5.03) and guess.tick_of_arrival(5.53) == 5


def test_device_ids_are_stable_and_valid() -> None:
    a = device_id("7040d346-ee3d-5de5-8b27-f960a35f70b7")
    assert a == device_id("7040d346-ee3d-5de5-8b27-f960a35f70b7") != device_id("other")
    assert 10 <= len(a.encode()) <= 128 and " " not in a


def test_data_compares_through_the_id_map_and_as_json_values() -> None:
    ids = IdMap.__new__(IdMap)
    ids.ids, ids.names = {"u-rec-1": "u-live-9", "u-rec-2": "u-live-0"}, {"bob": "xQzBob"}
    ids.sessions, ids.labels = {}, {}
    recorded = b'{"u-rec-1": [1, 2], "u-rec-2": [3, 4], "by": "bob"}'
    live = b'{"by":"xQzBob","u-live-0":[3,4],"u-live-9":[1,2]}'
    assert same_data(ids.data(recorded), live)
    assert not same_data(ids.data(recorded), live.replace(b"[3,4]", b"[3,5]"))
    assert not same_data(recorded, live)
    assert same_data(b"\xff\x00", b"\xff\x00") and not same_data(b"\xff", b"\xfe")


def test_compare_pairs_one_tick_in_any_order_and_stops_at_the_first_difference() -> None:
    from replay.live._report import Received, _compare_stream
    from replay.live._script import Delivery

    ids = IdMap.__new__(IdMap)
    ids.ids, ids.names, ids.sessions, ids.labels = {}, {}, {"a": "live-a", "b": "live-b"}, {"live-a": "ana"}
    want = [Delivery("a", 1, 1, b"x", "a"), Delivery("a", 1, 2, b"y", "b"), Delivery("a", 2, 1, b"z", "a")]

    def got(*items: tuple[int, int, bytes, str | None]) -> list[Received]:
        return [Received(0.1 * n, tick, op, data, sender) for n, (tick, op, data, sender) in enumerate(items)]

    st = _compare_stream(want, got((1, 2, b"y", "live-b"), (1, 1, b"x", "live-a"), (2, 1, b"z", "live-a")), ids, "ana")
    assert (st.matched, st.aligned, st.reordered, st.drifts, st.mismatch) == (3, 3, 1, [0, 0, 0], None)
    st = _compare_stream(want, got((1, 1, b"x", "live-a"), (1, 2, b"y", "live-b"), (3, 1, b"Z", "live-a")), ids, "ana")
    assert (st.matched, st.aligned, st.drifts[-1]) == (2, 3, 1) and st.mismatch.why.startswith("data differs")
    st = _compare_stream(want, got((1, 1, b"x", "live-a"), (1, 3, b"y", "live-b")), ids, "ana")
    assert st.mismatch.index == 1 and st.mismatch.why == "op code 2 recorded, 3 live" and st.aligned == 0
    st = _compare_stream(want[:1], got((1, 1, b"x", "live-b")), ids, "ana")
    assert st.mismatch.why == "sender differs: recorded ana, live live-b"
    st = _compare_stream(want[:2], got((1, 1, b"x", "live-a"), (1, 2, b"y", "live-b"), (2, 5, b"", None)), ids, "ana")
    assert st.matched == 2 and st.mismatch.index == 2 and st.mismatch.a is None
    st = _compare_stream(want, got((1, 1, b"x", "live-a")), ids, "ana")
    assert st.mismatch.index == 1 and st.mismatch.b is None and "never arrived" in st.mismatch.why


def test_find_crash_line_takes_this_matchs_line(tmp_path: Path) -> None:
    mine, other = "1762518a-825f-467c-a416-1a7ad0afe835", "9b1e3c55-2d4a-4f0b-8e61-7c0d5a3f2b18"

    def line(mid: str, tick: int, cb: str = "match_loop") -> str:
        return json.dumps(
            {
                "level": "warn",
                "ts": "2026-11-27T16:15:08.230Z",
                "caller": "server/match_handler.go:292",
                "msg": f"Stopping match after error from {cb} execution",
                "mid": mid,
                "tick": tick,
                "error": "arena.lua:54: attempt to index a non-table object(nil) with key 'pos'",
            }
        )

    log = tmp_path / "nakama.log"
    log.write_text("\n".join(["not json at all", line(other, 3), line(mine, 16), '{"msg": "Match started"}', ""]))
    found = find_crash_line(log, mine + ".nakama1")
    assert found is not None and (found[0].mid, found[0].tick, found[0].callback) == (mine, 16, "match_loop")
    assert find_crash_line(log, "00000000-0000-4000-8000-000000000000.nakama1") is None


# -- live: into `nakama-replay serve` ----------------------------------------------------------------------


def test_python_arena_crash_reproduces_live_and_its_capture_replays_again(python_crash: Path, tmp_path: Path) -> None:
    script, live, served = run(replay_into_serve(HANDLERS / "arena.py", python_crash, tmp_path / "a"))
    report = analyse(script, live)
    assert_reproduced(report, python_crash)
    marker = recorded_crash(python_crash)
    # what the server itself recorded: the handler really crashed, at the tick the report says
    (path,) = served
    crash = recorded_crash(Path(path))
    assert crash.callback == "match_loop" and crash.tick == report.crash_live_tick
    assert abs(crash.tick - marker.tick) <= report.drift
    assert all(r.status == "ok" for r in live.actions), [(r.action, r.status, r.detail) for r in live.actions]
    (signal,) = [r for r in live.actions if r.action.kind == "signal"]
    assert json.loads(signal.detail) == {"alice": 0, "bob": 0, "cho": 0} and signal.action.expect
    by_label = {s["label"]: s for s in report.sockets}
    assert by_label["cho"]["close"]["by"] == "client"
    assert {by_label[n]["close"]["reason"] for n in ("alice", "bob", "cho#2", "bob#2")} == {P.CLOSE_SERVER_DISCONNECT}
    assert by_label["bob"]["live_user_id"] == by_label["bob#2"]["live_user_id"] != by_label["bob"]["recorded_user_id"]

    # the capture: every envelope the server sent each replayed session, in order, and the closes
    (wire,) = live.wire_paths
    header, events = read_events(wire)
    assert header.source == "replay" and header.recording_kind == "wire" and header.match_id == live.match_id
    for key, sock in live.sockets.items():
        got = [e.envelope for e in events if e.socket == sock.name and e.direction == "in" and e.event == "envelope"]
        assert got == [obj for _, obj in sock.received], script.actors[key].label
    assert sum(1 for e in events if e.event == "close" and e.close_reason == P.CLOSE_SERVER_DISCONNECT) == 4

    # the capture is itself a wire recording `replay` accepts: the same crash again, the same broadcasts
    again_script, again, _ = run(replay_into_serve(HANDLERS / "arena.py", Path(wire), tmp_path / "b"))
    assert again_script.kind == "wire" and again_script.create_rpc == "create_match"
    again_report = analyse(again_script, again)
    assert again_report.outcome == "crashed" and again_report.reproduced, again_report.to_json()
    assert again_report.mismatch is None and again_report.matched == again_report.deliveries > 0


def test_lua_arena_crash_reproduces_live(tmp_path: Path) -> None:
    lua = HANDLERS / "arena.lua"
    rec = make_crash_recording(tmp_path / "lua-crash.nkrec", lua)
    assert "attempt to index" in recorded_crash(rec).error
    script, live, served = run(replay_into_serve(lua, rec, tmp_path))
    report = analyse(script, live)
    assert_reproduced(report, rec)
    crash = recorded_crash(Path(served[0]))
    assert crash.tick == report.crash_live_tick and "attempt to index" in crash.error


def test_a_match_that_stops_answering_is_unresponsive_from_the_last_tick_seen_alive(
    python_crash: Path, tmp_path: Path
) -> None:
    hangs = tmp_path / "arena_hangs.py"
    hangs.write_text(
        (HANDLERS / "arena.py")
        .read_text()
        .replace(
            "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n",
            "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n    while tick == 4:\n        pass\n",
            1,
        )
    )
    assert "while tick == 4" in hangs.read_text()
    said: list[str] = []
    serve = ServerConfig(str(hangs), out_dir=str(tmp_path / "serve"), hang_timeout=1.0, on_event=said.append)
    script, live, _ = run(replay_into_serve(hangs, python_crash, tmp_path, serve))
    report = analyse(script, live)
    why = json.dumps(report.to_json(), indent=1, default=str)[:4000]
    assert report.outcome == "unresponsive" and not report.reproduced, why
    u = report.unresponsive
    assert 2 <= u["last_alive_tick"] <= 4 and u["expected_broadcasts"] > 0, why  # loop 4 never returned
    assert u["then_closed_at_tick"] >= 4 + 5, why  # serve's hang guard (1 s = 10 ticks) then closed the sockets
    assert report.crash_tick is None or report.outcome != "crashed"
    assert f"stopped answering after tick {u['last_alive_tick']}" in report.verdict
    assert said[0].startswith(f"match {live.match_id} started: ")
    assert said[1] == f"match {live.match_id} hung in match_loop at tick 4: match_loop did not return within 1.0 s"


def test_serve_says_how_each_match_ended() -> None:
    from replay.realtime._core import ending_line as _ending
    from replay.runtime import Crash

    crash = Crash("match_loop", 58, "KeyError: 'be14'\nmore", "KeyError", "Traceback ...")
    assert _ending("m.n", crash, "error") == "match m.n crashed in match_loop at tick 58: KeyError: 'be14'"
    hung = Crash("match_join", 3, "match_join did not return within 5.0 s", "Hang", "", True)
    assert (
        _ending("m.n", hung, "hung") == "match m.n hung in match_join at tick 3: match_join did not return within 5.0 s"
    )
    assert _ending("m.n", None, "nil-state") == "match m.n stopped: a callback returned no state"


def make_echo_recording(path: Path, *, rate: int = RATE) -> Path:
    """ana and ben send unique messages for 6 ticks (ben's are binary); then ben's op code 99 crashes it."""
    params = {"tick_rate": rate}
    header = Header(
        match_id="3e0c1d2b-4a5f-4e6d-9c7b-8a9f0e1d2c3b.nakama1",
        module="echo",
        tick_rate=rate,
        node="nakama1",
        source="capture",
        params=params,
    )
    with MatchDriver(str(HANDLERS / "wire_echo.py"), header, capture=str(path)) as d:
        d.init(params)
        ana, ben = d.join("ana"), d.join("ben")
        for t in range(6):
            d.send(ana, 1, json.dumps({"n": t}))
            if t % 2:
                d.send(ben, 2, b"\x00\xff" + bytes([t]))
            d.tick()
        d.send(ben, 99, b"boom")
        d.tick(2)
    return path


def test_echoes_reveal_the_tick_each_message_landed_in(tmp_path: Path) -> None:
    rec = make_echo_recording(tmp_path / "echo.nkrec")

    async def replay(attempt: int):  # type: ignore[no-untyped-def]
        watch = StallWatch()
        got = await replay_into_serve(
            HANDLERS / "wire_echo.py", rec, tmp_path / f"run{attempt}", watch=watch, redact_keys=("n",)
        )
        return got, watch.worst

    (script, live, served), stall = timely(replay, RATE)
    report = analyse(script, live)
    assert_reproduced(report, rec)
    # the replay's capture goes through the redaction layer: --redact-key n hides {"n": ...} in what it wrote
    header, events = read_events(live.wire_paths[0])
    assert "key:n" in header.redactions and "jwt" in header.redactions
    data = [
        json.loads(base64.b64decode(body["data"]))
        for e in events
        if e.event == "envelope"
        for kind, body in e.envelope.items()
        if kind in ("match_data", "match_data_send") and body.get("op_code") == "1"
    ]
    assert len(data) == 6 + 2 * 6 and all(d == {"n": "<redacted>"} for d in data)  # 6 sent, each echoed to both
    # the truth: the loop each message reached, from serve's own recording of the live match
    truth = {
        (m.sender.session_id, m.op_code, m.data): e.tick
        for e in read_events(served[0])[1]
        if e.kind == "loop"
        for m in e.messages
    }
    landed = [m for m in report.messages if m.landed is not None]
    assert len(landed) == len(report.messages) - 1 == 9  # every message but the crashing one is echoed
    require_timely(stall, RATE)  # the loop each one landed in is exact only on a run that did not stall
    for m in landed:
        a = live.actions[m.action].action
        assert (
            m.landed
            == truth[(live.sockets[a.actor].session_id, a.action.op_code, a.action.data)]
            + script.first_tick
            - report.offset
        )
    assert report.drift_revealed and report.drift == max(abs(m.landed - m.intended) for m in landed)
    assert report.clock["echoes"] == 9


def test_cli_against_a_fixed_handler_does_not_reproduce(
    python_crash: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay.cli",
            "serve",
            "--handler",
            str(HANDLERS / "arena_fixed.py"),
            "--listen",
            "127.0.0.1:0",
            "--out",
            str(tmp_path / "serve"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        first = serve.stdout.readline()  # type: ignore[union-attr]
        assert "serving" in first, first
        url = first.split(" on ")[1].split()[0]
        code = main(
            [
                "live",
                str(python_crash),
                "--nakama",
                url,
                "--compare",
                "--json",
                "--signal-rpc",
                "signal_match",
                "--out",
                str(tmp_path / "wire"),
                "--tail-ticks",
                "2",
            ]
        )
    finally:
        serve.terminate()
        _, said = serve.communicate(timeout=10)
    out = json.loads(capsys.readouterr().out)
    assert f"match {out['match_id']} started: " in said  # serve says what happens to each match on stderr
    assert code == 1 and out["outcome"] == "completed" and out["reproduced"] is False
    assert out["recorded"]["outcome"] == "crashed" and "the live match ran to the end" in out["verdict"]
    mismatch = out["compare"]["first_mismatch"]
    if mismatch is not None:
        # The fix changes no broadcast before the crash tick, so a mismatch is only right when the live match was
        # fed differently: on a busy machine a message can land in the loop next to its recorded one (real time,
        # two processes). Then --compare must say the broadcasts differ; otherwise it raised a false mismatch.
        (served,) = (tmp_path / "serve").glob("*.nkrec")
        fed = inputs_per_tick(served, shift=out["schedule_offset"], until=mismatch["tick"])
        assert fed != inputs_per_tick(python_crash, until=mismatch["tick"]), mismatch
    assert len(out["messages"]) == load_script(python_crash).message_count


def test_unreachable_server_is_a_clear_error(
    python_crash: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["live", str(python_crash), "--nakama", f"http://127.0.0.1:{port}", "--out", str(tmp_path)]) == 2
    assert "LiveReplayError" in capsys.readouterr().err
    with pytest.raises(OptionError, match="TLS is not supported; give it as http://HOST:PORT"):
        run(run_live(load_script(python_crash), LiveOptions(nakama="https://example.invalid", out_dir=str(tmp_path))))

    async def unknown_rpc() -> int:
        server, app = await start_nakama_server(
            ServerConfig(str(HANDLERS / "arena.py"), record=False, out_dir=str(tmp_path / "serve"))
        )
        try:
            with pytest.raises(LiveReplayError, match="RPC 'nope' failed: error 6: RPC function not found"):
                await run_live(
                    load_script(python_crash),
                    LiveOptions(
                        nakama=f"http://127.0.0.1:{server.port}", create_rpc="nope", out_dir=str(tmp_path / "wire")
                    ),
                )
            for _ in range(100):  # the server notices the closes a moment later
                if not server.sockets:
                    break
                await asyncio.sleep(0.02)
            return len(server.sockets)
        finally:
            await app.close()
            await server.close()

    assert run(unknown_rpc()) == 0  # the replay closed the sockets it had opened


# -- live: into a real Nakama (only when NAKAMA_URL is set) -------------------------------------------------

NAKAMA_URL = os.environ.get("NAKAMA_URL", "")


@pytest.mark.skipif(
    not NAKAMA_URL,
    reason="set NAKAMA_URL (and NAKAMA_SERVER_KEY, NAKAMA_CREATE_RPC, NAKAMA_SIGNAL_RPC,"
    " NAKAMA_LOG) to replay into a real Nakama hosting fixtures/handlers/arena.lua",
)
def test_lua_arena_crash_reproduces_in_a_real_nakama(tmp_path: Path) -> None:
    rec = make_crash_recording(tmp_path / "lua-crash.nkrec", HANDLERS / "arena.lua")
    script = load_script(rec)
    options = LiveOptions(
        nakama=NAKAMA_URL,
        server_key=os.environ.get("NAKAMA_SERVER_KEY", "defaultkey"),
        create_rpc=os.environ.get("NAKAMA_CREATE_RPC", "create_arena"),
        out_dir=str(tmp_path / "wire"),
        tail_ticks=3,
        signal_rpc=os.environ.get("NAKAMA_SIGNAL_RPC", "signal_match"),
    )
    live = run(run_live(script, options))
    log = os.environ.get("NAKAMA_LOG") or None
    report = analyse(script, live, server_log=log)
    why = json.dumps(report.to_json(), indent=1, default=str)[:4000]
    assert report.outcome == "crashed" and report.reproduced, why
    assert abs(report.crash_tick - recorded_crash(rec).tick) <= report.drift, why
    if log:
        assert report.crash_source == "server log" and report.log_crash.callback == "match_loop", why
    # nk spawns players with math.random, which a real server does not replay: data may differ, but every
    # recorded broadcast reaches the same sessions with the same op code and sender
    assert report.aligned == report.deliveries == report.received > 0, why
