"""What the recording proxy costs: added round-trip latency (p50, p99) and throughput against a direct
connection to the same upstream, measured in the same run.

The upstream is a minimal WebSocket echo server (recorder.wsio) in this process, so the proxy's own cost
is what differs; the proxy runs as it is deployed, ``nakama-replay proxy`` in its own process, and is
stopped with SIGINT at the end (its recording must then hold every envelope).
Latency: one client sends a Nakama-shaped ``match_data_send`` envelope and waits for the echo, N times.
Throughput: S sockets each pipeline M envelopes and read the M echoes; envelopes per second.
Ratios are printed last. Everything binds 127.0.0.1 and every loop is bounded.

    python benchmarks/bench_proxy.py [--rounds 2000] [--sockets 20] [--messages 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from recorder.nkrec import read_events
from recorder.wsio import HttpResponse, start_server

ENVELOPE = json.dumps({"match_data_send": {"match_id": "9468e31c-ca53-4da6-b2e0-c9eab9dbac98.nakama1", "op_code": "1",
                                           "data": "eyJ4IjogMSwgInkiOiAyfQ=="}})


class Echo:
    async def http(self, request):  # type: ignore[no-untyped-def]
        return HttpResponse(200, b"{}")

    async def websocket(self, request, accept):  # type: ignore[no-untyped-def]
        ws = await accept()
        while (msg := await ws.recv()) is not None:
            await ws.send(msg)
        return None


async def latency(port: int, rounds: int) -> list[float]:
    out = []
    async with connect(f"ws://127.0.0.1:{port}/ws?format=json", compression=None) as ws:
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
        async with connect(f"ws://127.0.0.1:{port}/ws?format=json", compression=None, max_queue=None) as ws:
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


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


async def main(args: argparse.Namespace) -> None:
    upstream = await start_server(Echo())
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "replay.cli", "proxy", "--listen", "127.0.0.1:0", "--upstream",
             f"http://127.0.0.1:{upstream.port}", "--out", out], stdout=subprocess.PIPE, text=True,
        )
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
            port = int(line.split("http://127.0.0.1:")[1].split()[0])
            direct_lat = await latency(upstream.port, args.rounds)
            proxy_lat = await latency(port, args.rounds)
            direct_tp = await throughput(upstream.port, args.sockets, args.messages)
            proxy_tp = await throughput(port, args.sockets, args.messages)
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.to_thread(proc.wait, 30)
            await upstream.close()
        events = sum(len(read_events(p)[1]) for p in Path(out).glob("*.nkrec"))
        expected = 2 * (args.rounds + 50 + args.sockets * args.messages) + 2 * (1 + args.sockets)
        assert events == expected, f"recording holds {events} events, expected {expected}"
    d50, d99, p50, p99 = pct(direct_lat, 50), pct(direct_lat, 99), pct(proxy_lat, 50), pct(proxy_lat, 99)
    print(f"round trip, {args.rounds} envelopes, one socket (microseconds)")
    print(f"  direct   p50 {d50:8.1f}  p99 {d99:8.1f}")
    print(f"  proxy    p50 {p50:8.1f}  p99 {p99:8.1f}")
    print(f"  added    p50 {p50 - d50:8.1f}  p99 {p99 - d99:8.1f}")
    print(f"throughput, {args.sockets} sockets x {args.messages} envelopes each way (envelopes/s)")
    print(f"  direct   {direct_tp:10.0f}")
    print(f"  proxy    {proxy_tp:10.0f}   ({events} wire events recorded)")
    print(f"ratio latency p50 proxy/direct: {p50 / d50:.2f}")
    print(f"ratio latency p99 proxy/direct: {p99 / d99:.2f}")
    print(f"ratio throughput proxy/direct: {proxy_tp / direct_tp:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--sockets", type=int, default=20)
    ap.add_argument("--messages", type=int, default=500)
    asyncio.run(main(ap.parse_args()))
