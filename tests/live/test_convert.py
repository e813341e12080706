"""`nakama-replay convert`: a wire recording becomes a handler-call recording (issue #14, item 10).

The wire recordings are real: `nakama-replay proxy` in front of `nakama-replay serve`, with `replay` playing
the clients (arena crash, presence echo), recorded here on the fly; and one the proxy recorded in front of a
real Nakama 3.40 running arena.lua (tests/data/nakama-3.40-proxy-arena-crash.nkrec, with the match's crash
line from that server's log; the module path in it is replaced by Nakama's default /nakama/data/modules).
serve records its own handler calls too: the converted calls are checked against that truth. The matches
here tick at 5 Hz: a client acts in the middle of a period, so a message lands in its recorded loop unless
the machine stalls for a good part of 100 ms. The run watches its own event loop (tests/common/stalls.py): one
stalled longer than a quarter period is run again (three tries), then the tests that compare placements
exactly skip, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from recorder.format import (
    CrashMarker,
    Header,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    RecordingWriter,
    WireEvent,
    read_events,
    verify,
)
from recorder.wire import start_proxy
from replay.cli import main
from replay.live import LiveOptions, ServerConfig, convert, convert_events, load_script, run_live, start_nakama_server
from replay.live._convert import QUEUE_SIZE
from replay.runtime import ReplayOptions, reproduce
from tests.common.matches import make_crash_recording
from tests.common.paths import DATA, ROOT
from tests.common.stalls import StallWatch, require_timely, timely
from tests.live.test_compare import make_presence_recording

HANDLERS = ROOT / "fixtures" / "handlers"

REAL_WIRE = DATA / "nakama-3.40-proxy-arena-crash.nkrec"
REAL_LOG = DATA / "nakama-3.40-proxy-arena-crash.log"
RATE = 5


def run(coro, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


@dataclass
class ArenaWire:
    wire: Path  # the proxy's wire recording
    served: Path  # serve's own handler-call recording of the same match
    stall: float  # the longest stall of the run (seconds)

    def require_timely(self) -> None:
        require_timely(self.stall, RATE)


async def _through_proxy(handler: Path, rec: Path, tmp: Path) -> ArenaWire:
    """serve ``handler``, put the proxy in front, replay ``rec`` through it."""
    server, app = await start_nakama_server(ServerConfig(str(handler), out_dir=str(tmp / "serve")))
    proxy, _, stop = await start_proxy(f"http://127.0.0.1:{server.port}", tmp / "wire")
    try:
        async with StallWatch() as watch:
            await run_live(
                load_script(rec),
                LiveOptions(
                    nakama=f"http://127.0.0.1:{proxy.port}",
                    out_dir=str(tmp / "capture"),
                    tail_ticks=2,
                    signal_rpc="signal_match",
                ),
            )
    finally:
        await stop()
        await app.close()
        await server.close()
    (wire,) = [p for p in (tmp / "wire").glob("*.nkrec") if not p.name.startswith("unmatched")]
    (served,) = app.recordings
    return ArenaWire(wire, Path(served), watch.worst)


def _timely_run(handler: Path, rec: Path, tmp: Path) -> ArenaWire:
    """``_through_proxy``, run again (each time in its own folder) while the machine stalls it."""

    async def through(attempt: int) -> tuple[ArenaWire, float]:
        got = await _through_proxy(handler, rec, tmp / f"run{attempt}")
        return got, got.stall

    return timely(through, RATE)[0]


@pytest.fixture(scope="module")
def arena_wire(tmp_path_factory: pytest.TempPathFactory) -> ArenaWire:
    """The arena crash through the proxy; run again (up to three times) while the machine stalls the run."""
    tmp = tmp_path_factory.mktemp("arena-wire")
    rec = make_crash_recording(tmp / "crash.nkrec", HANDLERS / "arena.py", rate=RATE)
    return _timely_run(HANDLERS / "arena.py", rec, tmp)


def _inputs(events: list) -> list[tuple]:  # type: ignore[type-arg]
    """The calls' inputs as the wire can know them (no signals: an HTTP RPC is not on the socket)."""
    out = []
    for e in events:
        if isinstance(e, LoopCall):
            out.append(("loop", e.tick, tuple((m.sender.session_id, m.op_code, m.data) for m in e.messages)))
        elif isinstance(e, (JoinCall, LeaveCall)):
            out.append((e.kind, e.tick, tuple((p.session_id, p.reason) for p in e.presences)))
        elif isinstance(e, JoinAttemptCall):
            out.append((e.kind, e.tick, e.presence.session_id, dict(e.metadata)))
        elif isinstance(e, CrashMarker):
            out.append(("crash", e.callback, e.tick))
    return out


def _log_line(mid: str, marker: CrashMarker) -> str:
    """Nakama's crash line (server/match_handler.go) for a match: what --server-log reads."""
    return json.dumps(
        {
            "level": "warn",
            "ts": "2026-12-01T10:00:00.000Z",
            "caller": "server/match_handler.go:292",
            "msg": f"Stopping match after error from {marker.callback} execution",
            "mid": mid,
            "tick": marker.tick,
            "error": marker.error,
        }
    )


def test_converted_calls_are_the_calls_serve_made(arena_wire, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    arena_wire.require_timely()
    wire, served = arena_wire.wire, arena_wire.served
    out = tmp_path / "calls.nkrec"
    assert main(["convert", str(wire), "-o", str(out), "--tick-rate", str(RATE)]) == 0
    text = capsys.readouterr().out
    assert "approximated" in text and "ticks: calls are placed" in text and "crash      match_loop at tick" in text
    assert verify(out).state == "complete"  # a complete wire recording converts into a sealed one
    header, events = read_events(out)
    _, truth = read_events(served)
    assert header.recording_kind == "calls" and header.source == "convert" and header.tick_rate == RATE
    assert header.tags["outcomes"] == "wire" and header.tags["convert"]["approximations"]
    # joins (reason 0), the disconnect (4), every message in its loop, the crash at serve's tick: all as serve
    # ran them; only the signal is missing (an HTTP RPC is not on the sockets)
    assert _inputs(events) == _inputs([e for e in truth if e.kind != "signal"])
    crash = events[-1]
    assert isinstance(crash, CrashMarker) and crash.error == ""  # the error is not on the wire
    # so the replay's crash there cannot be confirmed as the same one: no verdict (exit 3), and it says why
    assert main(["reproduce", str(out), "--handler", str(HANDLERS / "arena.py")]) == 3
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith(f"INCOMPLETE: match_loop crashed at tick {crash.tick}, where the recording's crash is, but")
    assert "--server-log" in last


def test_a_converted_recording_reproduces_diffs_and_tells_the_fix_apart(arena_wire, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    arena_wire.require_timely()
    wire, served = arena_wire.wire, arena_wire.served
    _, truth = read_events(served)
    marker = next(e for e in truth if isinstance(e, CrashMarker))
    header, _ = read_events(wire)
    log = tmp_path / "nakama.log"
    log.write_text('{"msg": "Match started"}\n' + _log_line(header.match_id.partition(".")[0], marker) + "\n")
    out = tmp_path / "calls.nkrec"
    conv = convert(wire, out, tick_rate=RATE, server_log=log, handler=None)
    assert conv.crash == CrashMarker(marker.callback, marker.tick, marker.error) and conv.crash_from == "server log"
    arena, fixed = str(HANDLERS / "arena.py"), str(HANDLERS / "arena_fixed.py")
    result = reproduce(out, arena, ReplayOptions())
    assert result.reproduced and result.divergence_count == 0, result.verdict
    assert main(["reproduce", str(out), "--handler", arena]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("REPRODUCED: match_loop crashed at tick")
    assert main(["reproduce", str(out), "--handler", fixed]) == 1
    capsys.readouterr()
    assert main(["diff", str(out), "--handler", arena, "--against", fixed, "--json"]) == 1
    diff = json.loads(capsys.readouterr().out)
    assert diff["diverged"] and diff["tick"] == marker.tick  # the fix parts ways at the crash tick


def test_presences_kicks_and_join_broadcasts_convert_exactly(tmp_path: Path) -> None:
    """presence_echo.lua broadcasts from join attempts (not to the joiner), joins (to the joiner too) and
    leaves, and kicks: the converted outcomes equal what the handler does again, as the sockets saw it."""
    pytest.importorskip("lupa", reason="presence_echo.lua needs lupa")
    rec = make_presence_recording(tmp_path / "presence.nkrec", rate=RATE)
    got = _timely_run(HANDLERS / "presence_echo.lua", rec, tmp_path)
    got.require_timely()
    wire, served = got.wire, got.served
    out = tmp_path / "calls.nkrec"
    conv = convert(wire, out, tick_rate=RATE, handler=str(HANDLERS / "presence_echo.lua"))
    assert (conv.joins, conv.kicks, conv.leaves) == (3, 1, 3) and conv.crash is None
    _, events = read_events(out)
    _, truth = read_events(served)
    assert _inputs(events) == _inputs(truth)
    kick = next(e for e in events if isinstance(e, LoopCall) and e.outcome.kicks)
    assert [p.username for p in kick.outcome.kicks] == ["cho"]
    attempts = [e for e in events if isinstance(e, JoinAttemptCall)]
    assert [len(a.outcome.broadcasts) for a in attempts] == [0, 1, 1]  # nobody sees the first attempt's
    result = reproduce(out, str(HANDLERS / "presence_echo.lua"), ReplayOptions())
    assert result.reproduced and result.divergence_count == 0 and result.outcome == "completed", result.verdict


def test_a_real_nakama_wire_recording_converts_and_its_crash_reproduces(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Recorded by the proxy in front of a real Nakama 3.40 running arena.lua: the reconnection race crashed
    it in match_loop at tick 11 (its log line). Converted, the Lua arena crashes there again in-process;
    the arena spawns players with math.random, which is not on the wire, so the broadcast positions differ."""
    pytest.importorskip("lupa", reason="arena.lua needs lupa")
    out = tmp_path / "calls.nkrec"
    assert main(["convert", str(REAL_WIRE), "-o", str(out)]) == 2
    assert "--tick-rate N" in capsys.readouterr().err
    assert (
        main(["convert", str(REAL_WIRE), "-o", str(out), "--tick-rate", "10", "--server-log", str(REAL_LOG), "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["crash"]["from"] == "server log" and (doc["crash"]["callback"], doc["crash"]["tick"]) == (
        "match_loop",
        11,
    )
    assert doc["notes"] == []  # the wire's own estimate of the crash agreed with the log
    assert (doc["joins"], doc["leaves"], doc["messages"]) == (5, 1, 31)
    arena = str(HANDLERS / "arena.lua")
    result = reproduce(out, arena, ReplayOptions())
    assert result.crash is not None and (result.crash.callback, result.crash.tick) == ("match_loop", 11)
    assert "attempt to index" in result.crash.error
    assert result.divergences and {d.field for d in result.divergences} == {"broadcasts"}  # spawn positions
    assert not result.reproduced
    bare = tmp_path / "bare.nkrec"
    assert (
        main(
            [
                "convert",
                str(REAL_WIRE),
                "-o",
                str(bare),
                "--tick-rate",
                "10",
                "--server-log",
                str(REAL_LOG),
                "--no-broadcasts",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["reproduce", str(bare), "--handler", arena]) == 0
    assert main(["reproduce", str(bare), "--handler", str(HANDLERS / "arena_fixed.lua")]) == 1


def test_an_incomplete_wire_recording_is_converted_only_when_asked(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A proxy killed mid-match leaves an unsealed file: a sealed conversion would hide the hole."""
    cut = tmp_path / "cut.nkrec"
    data = REAL_WIRE.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "calls.nkrec"
    assert main(["convert", str(cut), "-o", str(out), "--tick-rate", "10"]) == 3
    assert "IncompleteRecording" in capsys.readouterr().err and not out.exists()
    assert main(["convert", str(cut), "-o", str(out), "--tick-rate", "10", "--allow-incomplete", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any(n.startswith("--allow-incomplete: converted the intact part of a") for n in doc["notes"])
    header, _ = read_events(out)
    assert header.tags["convert"]["source_integrity"] in ("unsealed", "damaged")
    assert verify(out).state == "unsealed" and doc["integrity"]["state"] == header.tags["convert"]["source_integrity"]


def _w(socket: str, direction: str, t: float, env: dict | None = None, **kw) -> WireEvent:  # type: ignore[no-untyped-def]
    return WireEvent(socket, direction, t, envelope=env, **kw)


def test_rejected_joins_full_queues_and_strangers(tmp_path: Path) -> None:
    mid = "6a0e3f9c-1b2d-4c5e-8f70-9a1b2c3d4e5f.nakama1"
    ana = {
        "user_id": "2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c",
        "session_id": "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918",
        "username": "ana",
    }
    send = {"match_data_send": {"match_id": mid, "op_code": "1", "data": "eA=="}}
    events = [
        _w("ws1", "out", 0.00, {"session": "p1", "user_id": ana["user_id"], "username": "ana"}, event="open"),
        _w("ws1", "out", 0.01, {"cid": "1", "rpc": {"id": "make", "payload": '{"mode":"duel"}'}}),
        _w("ws1", "in", 0.02, {"cid": "1", "rpc": {"id": "make", "payload": json.dumps({"match_id": mid})}}),
        _w("ws1", "out", 0.03, {"cid": "2", "match_join": {"match_id": mid, "metadata": {"v": "1"}}}),
        _w(
            "ws1",
            "in",
            0.04,
            {"cid": "2", "match": {"match_id": mid, "authoritative": True, "self": ana, "label": "L"}},
        ),
        _w("ws2", "out", 0.05, {"session": "p2", "user_id": "u-ben", "username": "ben"}, event="open"),
        _w("ws2", "out", 0.06, {"cid": "1", "match_join": {"match_id": mid, "metadata": {"team": "red"}}}),
        _w("ws2", "in", 0.07, {"cid": "1", "error": {"code": 5, "message": "full"}}),
        _w("ws2", "out", 0.08, send),  # not in the match: Nakama's pipeline drops it
    ] + [_w("ws1", "out", 0.13 + i * 1e-4, send) for i in range(QUEUE_SIZE + 3)]  # one tick, 131 messages
    path = tmp_path / "wire.nkrec"
    with RecordingWriter(path, Header(match_id=mid, source="proxy", recording_kind="wire", started_ms=1_000)) as w:
        w.extend(events)
    header, read = read_events(path)
    conv = convert_events(str(path), header, read, tick_rate=10)
    calls = [e for e in conv.events if not isinstance(e, CrashMarker)]
    assert calls[0].params == {"mode": "duel"} and calls[0].outcome.label == "L" and conv.header.label == "L"
    rejected = next(c for c in calls if isinstance(c, JoinAttemptCall) and not c.outcome.accept)
    assert (
        rejected.outcome.reason == "full"
        and rejected.metadata == {"team": "red"}
        and rejected.presence.username == "ben"
    )
    loop = next(c for c in calls if isinstance(c, LoopCall) and c.messages)
    assert loop.tick == 1 and len(loop.messages) == QUEUE_SIZE and loop.messages[0].receive_time_ms == 1_130
    assert (conv.dropped, conv.ignored, conv.rejected, conv.joins) == (3, 1, 1, 1)
    with pytest.raises(Exception, match="not a wire recording"):
        convert_events("calls", Header(match_id=mid), calls)


def test_reproduce_of_a_wire_recording_names_convert(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["reproduce", str(REAL_WIRE), "--handler", str(HANDLERS / "arena.lua")]) == 2
    assert "nakama-replay convert" in capsys.readouterr().err


def test_the_tick_rate_hint_comes_from_broadcast_spacing() -> None:
    from replay.live._convert import guess_tick_rate

    env = {"match_data": {"match_id": "m.n", "op_code": "1", "data": ""}}
    events = [_w("ws1", "in", 0.5 + k / 20 + (0.003 if k % 3 else 0.0), env) for k in range(30)]
    assert guess_tick_rate(events) == 20
    assert guess_tick_rate(events[:5]) is None  # too few to tell


NAKAMA_URL = os.environ.get("NAKAMA_URL", "")


@pytest.mark.skipif(
    not (NAKAMA_URL and os.environ.get("NAKAMA_LOG")),
    reason="set NAKAMA_URL and NAKAMA_LOG (the server's JSON log) to record through the proxy in front of a"
    " real Nakama whose runtime path holds fixtures/handlers/arena.lua and fixtures/nakama/replay_rpcs.lua",
)
def test_proxy_in_front_of_a_real_nakama_then_convert_and_reproduce(tmp_path: Path) -> None:
    pytest.importorskip("lupa", reason="arena.lua needs lupa")
    rec = make_crash_recording(tmp_path / "crash.nkrec", HANDLERS / "arena.lua")

    async def record() -> Path:
        proxy, _, stop = await start_proxy(NAKAMA_URL, tmp_path / "wire")
        try:
            await run_live(
                load_script(rec),
                LiveOptions(
                    nakama=f"http://127.0.0.1:{proxy.port}",
                    server_key=os.environ.get("NAKAMA_SERVER_KEY", "defaultkey"),
                    create_rpc=os.environ.get("NAKAMA_CREATE_RPC", "create_arena"),
                    out_dir=str(tmp_path / "capture"),
                    tail_ticks=2,
                    signal_rpc=os.environ.get("NAKAMA_SIGNAL_RPC", "signal_match"),
                ),
            )
        finally:
            await stop()
        (wire,) = [p for p in (tmp_path / "wire").glob("*.nkrec") if not p.name.startswith("unmatched")]
        return wire

    wire = run(record())
    out = tmp_path / "calls.nkrec"
    conv = convert(wire, out, tick_rate=10, server_log=os.environ["NAKAMA_LOG"], broadcasts=False)
    assert conv.crash is not None and conv.crash_from == "server log", conv.notes
    assert not [n for n in conv.notes if "server log says" in n], conv.notes  # the wire's estimate agreed
    assert (conv.crash.callback, conv.joins, conv.leaves) == ("match_loop", 5, 1)
    result = reproduce(out, str(HANDLERS / "arena.lua"), ReplayOptions())
    assert result.reproduced, result.verdict  # the crash the server logged, at its tick, with its error class
