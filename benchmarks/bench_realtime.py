"""What serve's realtime core costs per envelope, against the wire codec alone measured in the same run.

No sockets: ``replay.realtime.Realtime`` is fed the frames a match of P players sends (each player one
``match_data_send`` per tick, the echo handler broadcasting every message to everyone), ticked T times, and
every effect is built into its JSON text as serve would write it. The baseline does only the codec work of
the same traffic: parse each client frame and build each envelope the core sent (the same count). So the
ratio reads "core / codec": what the presence, routing and match rules and the handler run add on top of
reading and writing the wire. Target: the core handles a 8-player match at 60 Hz (480 envelopes in and 3840
out a second) with room to spare, i.e. well over 5,000 frames in a second.

    python benchmarks/bench_realtime.py [--players 8] [--ticks 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder.format import Header
from recorder.wire import protocol as P
from replay.realtime import Realtime, SendEnvelope
from replay.runtime._driver import MatchDriver

ECHO = str(ROOT / "fixtures" / "handlers" / "wire_echo.py")
TARGET_FRAMES_PER_SECOND = 5_000


def run_core(players: int, ticks: int) -> tuple[float, int, list[str], list[P.Envelope]]:
    """Seconds for the traffic through the core; frames in; the frames; the envelopes sent."""
    n = 0

    def new_id() -> str:
        nonlocal n
        n += 1
        return f"00000000-0000-4000-8000-{n:012d}"

    core = Realtime(
        lambda mid, params: MatchDriver(ECHO, Header(match_id=mid, node="nakama1"), hang_timeout=None),
        new_id=new_id,
    )
    sessions = [core.connect(f"u{i}", f"p{i}") for i in range(players)]
    core.receive(sessions[0].id, json.dumps({"cid": "1", "rpc": {"id": "create_match", "payload": "{}"}}))
    match_id = next(
        json.loads(e.envelope.message.payload)["match_id"] for e in core.take() if isinstance(e, SendEnvelope)
    )
    for s in sessions:
        core.receive(s.id, json.dumps({"cid": "j", "match_join": {"match_id": match_id}}))
    core.take()
    data = base64.b64encode(json.dumps({"x": 1, "y": 2}).encode()).decode()
    frames = [json.dumps({"match_data_send": {"match_id": match_id, "op_code": "1", "data": data}}) for _ in sessions]
    sent: list[P.Envelope] = []
    start = time.perf_counter()
    for _ in range(ticks):
        for s, frame in zip(sessions, frames):
            core.receive(s.id, frame)
        core.tick(match_id)
        for e in core.take():
            if isinstance(e, SendEnvelope):
                P.build(e.envelope)
                sent.append(e.envelope)
    seconds = time.perf_counter() - start
    core.stop_all()
    return seconds, players * ticks, frames, sent


def run_codec(frames: list[str], ticks: int, sent: list[P.Envelope]) -> float:
    start = time.perf_counter()
    for _ in range(ticks):
        for frame in frames:
            P.parse(frame)
    for env in sent:
        P.build(env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--players", type=int, default=8)
    ap.add_argument("--ticks", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    core_s, codec_s = [], []
    for _ in range(args.rounds):
        seconds, frames_in, frames, sent = run_core(args.players, args.ticks)
        core_s.append(seconds)
        codec_s.append(run_codec(frames, args.ticks, sent))
    best_core, best_codec = min(core_s), min(codec_s)
    frames_total = frames_in + len(sent)
    rate = frames_total / best_core
    print(f"traffic: {args.players} players x {args.ticks} ticks: {frames_in} frames in, {len(sent)} envelopes out")
    print(f"core:  {best_core * 1000:8.1f} ms  {rate:10,.0f} frames/s")
    print(f"codec: {best_codec * 1000:8.1f} ms  {frames_total / best_codec:10,.0f} frames/s  (baseline)")
    print(f"ratio core / codec: {best_core / best_codec:.1f}x")
    verdict = "ok" if rate >= TARGET_FRAMES_PER_SECOND else "BELOW TARGET"
    print(f"target: >= {TARGET_FRAMES_PER_SECOND:,} frames/s through the core: {verdict}")


if __name__ == "__main__":
    main()
