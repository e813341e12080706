"""What `nakama-replay convert` costs against reading the same wire recording, measured in the same run.

A synthetic proxy recording of a 10 Hz match is written first: four players join, each sends one input per
tick, the server broadcasts a state to everyone every tick, one player reconnects every 300 ticks (a leave
event and a new join). The baseline is ``read_events`` of that file (what any reader pays); the measured
cost is ``convert`` (reading included, writing the handler-call recording included). Best of N, turns taken.

    python benchmarks/bench_convert.py [--ticks 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
import uuid
from pathlib import Path

from recorder.format import Header, RecordingWriter, WireEvent, read_events
from replay.live import convert

MATCH = "9468e31c-ca53-4da6-b2e0-c9eab9dbac98.nakama1"
RATE = 10


def make_wire(path: Path, ticks: int) -> int:
    """Write the synthetic wire recording; returns how many events it holds."""
    p = 1.0 / RATE
    events: list[WireEvent] = []
    players = []
    for n in range(4):
        players.append(
            {
                "user_id": str(uuid.UUID(int=n + 1)),
                "session_id": str(uuid.UUID(int=100 + n)),
                "username": f"p{n}",
                "socket": f"ws{n}",
            }
        )
    t = 0.0
    for n, pl in enumerate(players):
        events.append(WireEvent(pl["socket"], "out", t, "open", {"user_id": pl["user_id"], "username": pl["username"]}))
        if n == 0:
            events.append(
                WireEvent(
                    pl["socket"], "out", t + 0.001, envelope={"cid": "c", "rpc": {"id": "create", "payload": "{}"}}
                )
            )
            events.append(
                WireEvent(
                    pl["socket"],
                    "in",
                    t + 0.002,
                    envelope={"cid": "c", "rpc": {"id": "create", "payload": json.dumps({"match_id": MATCH})}},
                )
            )
    sockets = 4
    for n, pl in enumerate(players):
        me = {k: pl[k] for k in ("user_id", "session_id", "username")}
        events.append(
            WireEvent(pl["socket"], "out", 0.01 + n * 0.001, envelope={"cid": "j", "match_join": {"match_id": MATCH}})
        )
        events.append(
            WireEvent(
                pl["socket"],
                "in",
                0.015 + n * 0.001,
                envelope={"cid": "j", "match": {"match_id": MATCH, "authoritative": True, "self": me}},
            )
        )
    state = base64.b64encode(json.dumps({"positions": [[1.5, 2.5]] * 4, "tick": 0}).encode()).decode()
    for k in range(ticks):
        loop_t = 0.002 + (k + 1) * p
        for pl in players:
            data = base64.b64encode(json.dumps({"dx": k % 3 - 1, "dy": 1}).encode()).decode()
            events.append(
                WireEvent(
                    pl["socket"],
                    "out",
                    loop_t - 0.6 * p,
                    envelope={"match_data_send": {"match_id": MATCH, "op_code": "1", "data": data}},
                )
            )
        for pl in players:
            events.append(
                WireEvent(
                    pl["socket"],
                    "in",
                    loop_t + 0.001,
                    envelope={"match_data": {"match_id": MATCH, "op_code": "10", "data": state}},
                )
            )
        if k % 300 == 299:  # the last player's socket drops, and the player comes back on a new socket
            old = players[3]
            events.append(WireEvent(old["socket"], "out", loop_t + 0.02, "close", close_code=1006, close_reason=""))
            sockets += 1
            new = dict(old, session_id=str(uuid.UUID(int=1000 + k)), socket=f"ws{sockets}")
            me = {key: new[key] for key in ("user_id", "session_id", "username")}
            events.append(WireEvent(new["socket"], "out", loop_t + 0.03, "open", {"user_id": new["user_id"]}))
            events.append(
                WireEvent(
                    new["socket"], "out", loop_t + 0.031, envelope={"cid": "j", "match_join": {"match_id": MATCH}}
                )
            )
            events.append(
                WireEvent(
                    new["socket"],
                    "in",
                    loop_t + 0.033,
                    envelope={"cid": "j", "match": {"match_id": MATCH, "authoritative": True, "self": me}},
                )
            )
            players[3] = new
    events.sort(key=lambda e: e.t)
    with RecordingWriter(path, Header(match_id=MATCH, source="proxy", recording_kind="wire", tick_rate=RATE)) as w:
        w.extend(events)
    return len(events)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wire = Path(tmp) / "wire.nkrec"
        n = make_wire(wire, args.ticks)
        read_best = convert_best = float("inf")
        conv = None
        for _ in range(args.rounds):
            t = time.perf_counter()
            read_events(wire)
            read_best = min(read_best, time.perf_counter() - t)
            t = time.perf_counter()
            conv = convert(wire, Path(tmp) / "calls.nkrec")
            convert_best = min(convert_best, time.perf_counter() - t)
        assert conv is not None and conv.ticks >= args.ticks and conv.messages == 4 * args.ticks, conv.to_json()
        print(f"wire recording: {n} events, {wire.stat().st_size} bytes, {args.ticks} ticks at {RATE} Hz")
        print(f"read_events (baseline): {read_best:.3f} s")
        print(f"convert:                {convert_best:.3f} s ({conv.calls} calls, {conv.broadcasts} broadcasts)")
        print(f"ratio convert / read: {convert_best / read_best:.1f}x; {n / convert_best:,.0f} events/s")


if __name__ == "__main__":
    main()
