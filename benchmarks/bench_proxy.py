"""What the recording proxy costs, against a bare forwarding proxy measured in the same run, and what it
holds in memory under a flood of large socket RPCs.

Three servers on 127.0.0.1: an echo upstream (``recorder.wire._wsio``, in this process), the recording proxy as
it is deployed (``nakama-replay proxy`` in its own process, stopped with SIGINT at the end: its recordings
must then hold every envelope), and the baseline, a **bare proxy**: a plain websockets relay in its own
process that forwards each message both ways and records nothing (``--bare-proxy`` runs it). So the
ratios read "recording proxy / bare proxy", the price of recording.

- Latency: one client sends a Nakama-shaped ``match_data_send`` envelope and waits for the echo, N times.
- Throughput: S sockets each pipeline M envelopes and read the M echoes; envelopes per second.
- Memory: C clients send ``rpc`` envelopes with a P-byte payload for D seconds (at most W in flight
  each), on sockets that never join a match (the case that used to be held in memory until the socket
  closed); the peak resident memory of each proxy process (``VmHWM``) is printed, with the target.

    python benchmarks/bench_proxy.py [--rounds 2000] [--sockets 20] [--messages 500]
                                     [--flood-clients 10] [--flood-bytes 20000] [--flood-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect

from recorder.format import open_recording
from recorder.wire import HttpResponse, start_server

ENVELOPE = json.dumps(
    {
        "match_data_send": {
            "match_id": "9468e31c-ca53-4da6-b2e0-c9eab9dbac98.nakama1",
            "op_code": "1",
            "data": "eyJ4IjogMSwgInkiOiAyfQ==",
        }
    }
)
RSS_TARGET_MB = 200


class Echo:
    async def http(self, request):  # type: ignore[no-untyped-def]
        return HttpResponse(200, b"{}")

    async def websocket(self, request, accept):  # type: ignore[no-untyped-def]
        ws = await accept()
        while (msg := await ws.recv()) is not None:
            await ws.send(msg)
        return None


# -- the baseline: a bare relay -------------------------------------------------------------------------
async def bare_proxy(upstream_port: int) -> None:
    """Forward every message both ways between each client and the upstream; record nothing."""
    from websockets.asyncio.server import serve

    async def relay(client) -> None:  # type: ignore[no-untyped-def]
        async with connect(
            f"ws://127.0.0.1:{upstream_port}{client.request.path}", compression=None, ping_interval=None, proxy=None
        ) as upstream:

            async def pump(a, b) -> None:  # type: ignore[no-untyped-def]
                async for msg in a:
                    await b.send(msg)

            tasks = [asyncio.create_task(pump(client, upstream)), asyncio.create_task(pump(upstream, client))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()

    async with serve(relay, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"bare proxy listening on http://127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()


# -- measurements ---------------------------------------------------------------------------------------
async def latency(port: int, rounds: int) -> list[float]:
    out = []
    async with connect(f"ws://127.0.0.1:{port}/ws?format=json", compression=None, proxy=None) as ws:
        for _ in range(50):  # warm up
            await ws.send(ENVELOPE)
            await ws.recv()
        for _ in range(rounds):
            t = time.perf_counter()
            await ws.send(ENVELOPE)
            await asyncio.wait_for(ws.recv(), 10)
            out.append((time.perf_counter() - t) * 1e6)
    return out


async def throughput(port: int, sockets: int, messages: int) -> float:
    async def one() -> int:
        async with connect(f"ws://127.0.0.1:{port}/ws?format=json", compression=None, max_queue=None, proxy=None) as ws:

            async def reader() -> int:
                return sum([1 for _ in range(messages) if await asyncio.wait_for(ws.recv(), 30)])

            r = asyncio.create_task(reader())
            for _ in range(messages):
                await ws.send(ENVELOPE)
            return await r

    t = time.perf_counter()
    got = sum(await asyncio.gather(*(one() for _ in range(sockets))))
    elapsed = time.perf_counter() - t
    assert got == sockets * messages, (got, sockets * messages)
    return got / elapsed


async def flood(port: int, clients: int, size: int, seconds: float, window: int = 8) -> int:
    """``clients`` sockets send ``size``-byte rpc payloads for ``seconds`` (``window`` in flight each) and
    read every reply; returns the number of round trips."""
    payload = "x" * size

    async def one(i: int) -> int:
        async with connect(f"ws://127.0.0.1:{port}/ws?format=json", compression=None, max_size=None, proxy=None) as ws:
            sent = got = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end or got < sent:
                while sent - got < window and time.monotonic() < end:
                    await ws.send(json.dumps({"cid": str(sent), "rpc": {"id": f"flood{i}", "payload": payload}}))
                    sent += 1
                await asyncio.wait_for(ws.recv(), 60)
                got += 1
            return got

    return sum(await asyncio.gather(*(one(i) for i in range(clients))))


def memory_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process, in MB, from /proc (Linux)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


async def start(cmd: list[str], marker: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
    assert marker in line, line
    return proc, int(line.split("http://127.0.0.1:")[1].split()[0])


async def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        await asyncio.to_thread(proc.wait, 60)
    except subprocess.TimeoutExpired:
        proc.kill()


def count_events(folder: str) -> int:
    total = 0
    for p in Path(folder).glob("*.nkrec"):
        with open_recording(p) as rec:
            total += sum(1 for _ in rec.events())
    return total


async def main(args: argparse.Namespace) -> None:
    upstream = await start_server(Echo(), max_message=64 * 1024 * 1024)
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as flood_out:
        bare, bare_port = await start(
            [sys.executable, __file__, "--bare-proxy", str(upstream.port)], "bare proxy listening"
        )
        proxy, port = await start(
            [
                sys.executable,
                "-m",
                "replay.cli",
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                f"http://127.0.0.1:{upstream.port}",
                "--out",
                out,
            ],
            "proxy listening",
        )
        try:
            direct_lat = await latency(upstream.port, args.rounds)
            bare_lat = await latency(bare_port, args.rounds)
            proxy_lat = await latency(port, args.rounds)
            bare_tp = await throughput(bare_port, args.sockets, args.messages)
            proxy_tp = await throughput(port, args.sockets, args.messages)
        finally:
            await stop(proxy)
        events = count_events(out)
        expected = 2 * (args.rounds + 50 + args.sockets * args.messages) + 2 * (1 + args.sockets)
        assert events == expected, f"recording holds {events} events, expected {expected}"

        # memory: a fresh recording proxy (and the bare one) under the RPC flood
        proxy, port = await start(
            [
                sys.executable,
                "-m",
                "replay.cli",
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                f"http://127.0.0.1:{upstream.port}",
                "--out",
                flood_out,
            ],
            "proxy listening",
        )
        try:
            start_mb = memory_mb(proxy.pid)[1]
            bare_trips = await flood(bare_port, args.flood_clients, args.flood_bytes, args.flood_seconds)
            bare_peak, _ = memory_mb(bare.pid)
            trips = await flood(port, args.flood_clients, args.flood_bytes, args.flood_seconds)
            peak, after = memory_mb(proxy.pid)
        finally:
            await stop(proxy)
            await stop(bare)
            await upstream.close()
        flood_events = count_events(flood_out)
        assert flood_events == 2 * trips + 2 * args.flood_clients, (flood_events, trips)
        file_mb = sum(p.stat().st_size for p in Path(flood_out).glob("*.nkrec")) / 1e6

    d50, b50, b99, p50, p99 = (
        pct(direct_lat, 50),
        pct(bare_lat, 50),
        pct(bare_lat, 99),
        pct(proxy_lat, 50),
        pct(proxy_lat, 99),
    )
    print(f"round trip, {args.rounds} envelopes, one socket (microseconds)")
    print(f"  direct         p50 {d50:8.1f}  p99 {pct(direct_lat, 99):8.1f}   (no proxy, for reference)")
    print(f"  bare proxy     p50 {b50:8.1f}  p99 {b99:8.1f}")
    print(f"  recording      p50 {p50:8.1f}  p99 {p99:8.1f}")
    print(f"throughput, {args.sockets} sockets x {args.messages} envelopes each way (envelopes/s)")
    print(f"  bare proxy     {bare_tp:10.0f}")
    print(f"  recording      {proxy_tp:10.0f}   ({events} wire events recorded)")
    print(
        f"rpc flood: {args.flood_clients} clients x {args.flood_bytes}-byte rpc payloads for {args.flood_seconds:g} s, "
        "sockets outside any match"
    )
    print(f"  bare proxy     {bare_trips:6d} round trips, peak RSS {bare_peak:6.1f} MB")
    print(
        f"  recording      {trips:6d} round trips, peak RSS {peak:6.1f} MB (at start {start_mb:.1f}, after the "
        f"clients closed {after:.1f}); {file_mb:.0f} MB recorded, every envelope"
    )
    print(f"ratio latency p50 proxy/bare proxy: {p50 / b50:.2f}")
    print(f"ratio latency p99 proxy/bare proxy: {p99 / b99:.2f}")
    print(f"ratio throughput proxy/bare proxy: {proxy_tp / bare_tp:.2f}")
    print(
        f"peak RSS under the rpc flood: {peak:.1f} MB (target < {RSS_TARGET_MB} MB: {'met' if peak < RSS_TARGET_MB else 'MISSED'})"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--sockets", type=int, default=20)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--flood-clients", type=int, default=10)
    ap.add_argument("--flood-bytes", type=int, default=20_000)
    ap.add_argument("--flood-seconds", type=float, default=20.0)
    ap.add_argument("--bare-proxy", type=int, metavar="UPSTREAM_PORT", help=argparse.SUPPRESS)
    a = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bare_proxy(a.bare_proxy) if a.bare_proxy else main(a))
