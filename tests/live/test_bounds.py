"""Bounded servers: what the proxy and serve hold in memory and how they refuse what is too much.

Every server binds 127.0.0.1 on a free port; every loop is bounded in count and time. The memory test runs
the proxy as deployed (``nakama-replay proxy`` in a subprocess) and reads its peak resident memory from
/proc (Linux only; skipped elsewhere).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from recorder.format import PresenceReason, open_recording, read_events
from recorder.wire import HttpResponse, ProxyLimits, WireRecorder, start_proxy, start_server
from replay.live import ServerConfig, start_nakama_server
from replay.live._server import QUEUE_FULL
from tests.common.paths import ROOT

ECHO = str(ROOT / "fixtures" / "handlers" / "wire_echo.py")
MID = "00000000-0000-4000-8000-000000000001.nakama1"


def run(coro, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Upstream:
    """A test upstream: echoes text; ``/ws?push=N&size=B`` sends N messages of B bytes first."""

    def __init__(self) -> None:
        self.sent = 0

    async def http(self, request):  # type: ignore[no-untyped-def]
        return HttpResponse(200, b"{}")

    async def websocket(self, request, accept):  # type: ignore[no-untyped-def]
        ws = await accept()
        q = request.query
        for i in range(int(q.get("push", 0))):
            if not await ws.send(json.dumps({"cid": str(i), "rpc": {"id": "p", "payload": "x" * int(q["size"])}})):
                return None
            self.sent += 1
        while (msg := await ws.recv()) is not None:
            await ws.send(msg)
        return None


async def until_still(read, limit: int, quiet: float = 1.0, timeout: float = 60.0) -> int:  # type: ignore[no-untyped-def]
    """Wait until ``read()`` reaches ``limit`` or stops changing for ``quiet`` seconds; returns it."""
    last, since, end = read(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < end and last < limit:
        await asyncio.sleep(0.05)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


# -- the wire recorder ---------------------------------------------------------------------------------
def test_sockets_outside_a_match_are_written_as_they_go_and_nothing_is_lost(tmp_path: Path) -> None:
    rec = WireRecorder(tmp_path, hold_bytes=16 * 1024, chunk_bytes=32 * 1024)
    ws = rec.open_socket("s", "u1", "ana", {"client_version": "1"})
    sent = []
    for i in range(400):  # 400 rpcs of 1 KB each way before any join: far beyond what a socket may hold
        env = {"cid": str(i), "rpc": {"id": "chat", "payload": "y" * 1000}}
        rec.envelope(ws, "out", json.dumps(env))
        rec.envelope(ws, "in", json.dumps(env))
        sent += [env, env]
        held = rec.sockets[ws].held_bytes
        assert held <= 16 * 1024
    on_disk = list(open_recording(tmp_path / "unmatched.nkrec").events())  # written before the socket closed
    assert [e.event for e in on_disk[:1]] == ["open"] and len(on_disk) >= 800 - 16 * 1024 // 1000 - 60
    join = {"cid": "j", "match_join": {"match_id": MID}}
    rec.envelope(ws, "out", json.dumps(join))
    rec.envelope(ws, "in", json.dumps({"cid": "j", "match": {"match_id": MID, "authoritative": True, "self": {}}}))
    rec.envelope(ws, "out", json.dumps({"match_data_send": {"match_id": MID, "op_code": "1", "data": ""}}))
    rec.close_socket(ws, "out", 1000, "")
    rec.close()
    _, unmatched = read_events(tmp_path / "unmatched.nkrec")
    _, match = read_events(tmp_path / f"{MID}.nkrec")
    assert next(e.event for e in unmatched) == "open" and unmatched[-1].event == "close"
    assert next(e.event for e in match) == "open" and match[-1].event == "close"
    recorded = [e.envelope for e in [*unmatched, *match] if e.event == "envelope"]
    assert [e for e in recorded if "rpc" in e] == sent  # each envelope once, in order, across the two files
    assert [e for e in recorded if "rpc" not in e][:1] == [join]
    held_back = [e for e in match if e.event == "envelope" and "rpc" in e.envelope]
    assert 0 < len(held_back) <= 16 * 1024 // 1000  # the join's context: the last rpcs before it


# -- the proxy, in process -----------------------------------------------------------------------------
def test_connection_limit_closes_excess_sockets_with_a_reason(tmp_path: Path) -> None:
    async def go() -> tuple[int | None, str]:
        upstream = await start_server(Upstream())
        proxy, app, stop = await start_proxy(
            f"http://127.0.0.1:{upstream.port}", tmp_path, limits=ProxyLimits(max_connections=2)
        )
        url = f"ws://127.0.0.1:{proxy.port}/ws?format=json"
        try:
            a, b = await connect(url), await connect(url)
            for ws in (a, b):
                await ws.send('{"cid":"1","ping":{}}')
                await asyncio.wait_for(ws.recv(), 10)
            c = await connect(url)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(c.recv(), 10)
            refused = (c.close_code, c.close_reason)
            await a.close()
            for _ in range(200):  # the slot comes back once the proxy has seen a close
                if app.active < 2:
                    break
                await asyncio.sleep(0.05)
            d = await connect(url)
            await d.send('{"cid":"2","ping":{}}')
            assert json.loads(await asyncio.wait_for(d.recv(), 10)) == {"cid": "2", "ping": {}}
            await d.close()
            await b.close()
            assert app.stats.refused == 1
            return refused
        finally:
            await stop()
            await upstream.close()

    assert run(go()) == (1013, "proxy connection limit reached (2 sockets)")
    _, events = read_events(tmp_path / "unmatched.nkrec")
    closes = [(e.direction, e.close_code, e.close_reason) for e in events if e.event == "close"]
    assert ("in", 1013, "proxy connection limit reached (2 sockets)") in closes and len(closes) == 4


def test_messages_over_the_size_limit_close_that_socket_either_way(tmp_path: Path) -> None:
    async def go() -> list[tuple[int | None, str]]:
        upstream = await start_server(Upstream())
        proxy, _, stop = await start_proxy(
            f"http://127.0.0.1:{upstream.port}", tmp_path, limits=ProxyLimits(max_message=10_000)
        )
        out = []
        try:
            async with connect(f"ws://127.0.0.1:{proxy.port}/ws?format=json") as ws:  # the client's is too big
                await ws.send(json.dumps({"rpc": {"id": "x", "payload": "z" * 20_000}}))
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                out.append((ws.close_code, ws.close_reason))
            async with connect(f"ws://127.0.0.1:{proxy.port}/ws?format=json&push=1&size=20000") as ws:  # the server's
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                out.append((ws.close_code, ws.close_reason))
            return out
        finally:
            await stop()
            await upstream.close()

    client_big, server_big = run(go())
    assert client_big[0] == 1009 and "exceeds limit of 10000 bytes" in client_big[1]
    assert server_big[0] == 1009 and server_big[1].startswith("server message too big") and "10000" in server_big[1]
    _, events = read_events(tmp_path / "unmatched.nkrec")
    assert sorted((e.socket, e.close_code) for e in events if e.event == "close") == [("ws1", 1009), ("ws2", 1009)]


# -- the proxy as deployed: memory ---------------------------------------------------------------------
def _memory_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the proxy's memory from /proc (Linux)")
def test_proxy_memory_stays_bounded_under_floods_and_stalled_peers(tmp_path: Path) -> None:
    """Three ways to make a proxy hold traffic, 80+ MB each: an rpc flood on sockets outside any match
    (used to be held until they closed), a server pushing to a client that does not read, a client pushing
    to a server that does not read. The proxy's peak memory grows by a few MB in each, and every message
    arrives, in order."""
    limit_mb = 40
    peaks: dict[str, float] = {}

    async def go() -> None:
        from websockets.asyncio.server import serve

        flood_app = Upstream()
        upstream = await start_server(flood_app)
        release = asyncio.Event()

        async def held_echo(ws) -> None:  # type: ignore[no-untyped-def]
            await release.wait()  # reads nothing till then: websockets' own queue stops reading the socket
            async for msg in ws:
                await ws.send(msg)

        held = await serve(held_echo, "127.0.0.1", 0, max_size=None, compression=None)
        held_port = next(iter(held.sockets)).getsockname()[1]
        procs = []
        try:
            for port, out in ((upstream.port, "flood"), (held_port, "held")):
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "replay.cli",
                        "proxy",
                        "--listen",
                        "127.0.0.1:0",
                        "--upstream",
                        f"http://127.0.0.1:{port}",
                        "--out",
                        str(tmp_path / out),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                procs.append(proc)
            ports = []
            for proc in procs:
                line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
                ports.append(int(line.split("http://127.0.0.1:")[1].split()[0]))
            pid = procs[0].pid
            base = _memory_kb(pid, "VmRSS")

            def phase_peak() -> float:
                peak = (_memory_kb(pid, "VmHWM") - base) / 1024
                if _reset_peak(pid):
                    return peak
                return peak  # without clear_refs the peaks are cumulative: still bounded by the same limit

            # 1. four clients, 500 rpc round trips of 20 KB each, never joining a match
            async def flooder(i: int) -> None:
                async with connect(f"ws://127.0.0.1:{ports[0]}/ws?format=json", max_size=None) as ws:
                    for j in range(0, 500, 10):
                        for k in range(j, j + 10):
                            await ws.send(json.dumps({"cid": str(k), "rpc": {"id": f"f{i}", "payload": "x" * 20_000}}))
                        for k in range(j, j + 10):
                            assert json.loads(await asyncio.wait_for(ws.recv(), 60))["cid"] == str(k)

            _reset_peak(pid)
            await asyncio.gather(*(flooder(i) for i in range(4)))
            peaks["rpc flood"] = phase_peak()

            # 2. the server pushes 400 x 256 KB to a client that reads nothing until the server is stalled
            async with connect(f"ws://127.0.0.1:{ports[0]}/ws?format=json&push=400&size=262144", max_size=None) as ws:
                await until_still(lambda: flood_app.sent, 400)
                for i in range(400):
                    assert json.loads(await asyncio.wait_for(ws.recv(), 60))["cid"] == str(i)
            peaks["server to a stalled client"] = phase_peak()

            # 3. a client pushes 400 x 256 KB to a server that reads nothing until the client is stalled
            pid = procs[1].pid
            base = _memory_kb(pid, "VmRSS")
            _reset_peak(pid)
            async with connect(f"ws://127.0.0.1:{ports[1]}/ws?format=json", max_size=None) as ws:
                sent = [0]

                async def pusher() -> None:
                    for i in range(400):
                        await ws.send(json.dumps({"cid": str(i), "rpc": {"id": "p", "payload": "x" * 262_144}}))
                        sent[0] += 1

                async def reader() -> None:
                    for i in range(400):
                        assert json.loads(await asyncio.wait_for(ws.recv(), 60))["cid"] == str(i)

                push = asyncio.create_task(pusher())
                await until_still(lambda: sent[0], 400)
                release.set()  # the echoes come back while the rest is pushed: read them meanwhile
                await asyncio.wait_for(asyncio.gather(push, reader()), 120)
            peaks["client to a stalled server"] = phase_peak()
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                await asyncio.to_thread(proc.wait, 30)
            await upstream.close()
            held.close()
            await held.wait_closed()

    run(go(), 300)
    assert all(peak < limit_mb for peak in peaks.values()), peaks


# -- serve --------------------------------------------------------------------------------------------
def test_serve_disconnects_a_slow_client_as_nakama_does_and_records_it(tmp_path: Path) -> None:
    """A client that stops reading while the match keeps broadcasting to it fills its outgoing queue: serve
    closes it ("session outgoing queue full") and its presence leaves with reason 4 (disconnect), which the
    match recording holds; the other client plays on and sees the leave."""

    async def go() -> str:
        config = ServerConfig(ECHO, out_dir=str(tmp_path), outgoing_queue_size=8, on_event=lines.append)
        server, app = await start_nakama_server(config)
        try:
            from tests.live.test_wire import Client  # the scripted realtime client

            fast, slow = await Client.open(server.port, "fast"), await Client.open(server.port, "slow")
            await fast.send({"rpc": {"id": "create_match", "payload": json.dumps({"tick_rate": 30})}})
            match_id = json.loads((await fast.recv())["rpc"]["payload"])["match_id"]
            for c in (fast, slow):
                await c.send({"match_join": {"match_id": match_id}})
                while "match" not in await c.recv():
                    pass
            # slow stops reading; fast sends 64 KB messages that the match echoes to both
            data = base64.b64encode(b"d" * 262_144).decode()
            left = False
            for _ in range(30):  # at most 120 x 256 KB to each client, 4 a tick
                for _ in range(4):
                    await fast.send(
                        {"match_data_send": {"match_id": match_id, "op_code": "1", "data": data}}, with_cid=False
                    )
                echoed = 0
                while echoed < 4 and not left:  # fast reads its echoes (and sees slow leave, once it does)
                    env = await fast.recv(10)
                    echoed += "match_data" in env
                    leaves = (env.get("match_presence_event") or {}).get("leaves") or []
                    left = any(p["username"] == "slow" for p in leaves)
                if left:
                    break
            assert left, "the slow client was never disconnected"
            return match_id
        finally:
            await app.close()
            await server.close()

    lines: list[str] = []
    match_id = run(go())
    overflows = [line for line in lines if QUEUE_FULL in line]  # serve's stderr line
    assert len(overflows) == 1 and f"(slow) disconnected: {QUEUE_FULL} (8 messages waiting" in overflows[0], lines
    _, events = read_events(tmp_path / f"{match_id}.nkrec")
    leaves = [p for e in events if e.kind == "leave" for p in e.presences]
    assert [(p.username, p.reason) for p in leaves] == [("slow", PresenceReason.DISCONNECT)]
