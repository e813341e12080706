"""Decode and write throughput of ``.nkrec`` recordings against raw msgpack, measured in the same run.

Generates an arena-like recording on the fly in a temporary directory (several players sending small
JSON inputs most ticks, a state broadcast and digest in every loop's outcome, joins, a leave and a rejoin),
then times, best of N with ``gc.collect()`` before each run:

- decode: ``open_recording(p).events()`` (messages left lazy, as ``inspect`` uses them), and the same with
  every loop's messages materialised, against ``msgpack.Unpacker`` streaming the same payload bytes from a
  file without our framing, checksums or model objects;
- write: ``RecordingWriter`` appending the events (encode, pack, frame, checksum, write) against
  ``msgpack.packb`` of the same encoded chunks written to a file.

The write's heading says whether a loop's message rows came from the compiled helper (``recorder.format._rows``,
which ``pip install`` builds where a C compiler is) or from Python: a tree run from ``git archive`` with
PYTHONPATH has no helper until it is built (``pip install -e .`` there, or the built ``_rows*.so`` copied in).

Prints events/s and MB/s for each, and the ratios last with their targets (issue 19: lazy decode at least 0.7
of raw; ``RecordingWriter.append`` at least 0.7 of packing the already-encoded chunks).

    python benchmarks/bench_recording.py [--ticks 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack

from recorder import (
    Broadcast,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Outcome,
    Presence,
    RecordingWriter,
    open_recording,
)
from recorder.format import encode_chunk
from recorder.format._nkrec import FRAME_SIZE, KIND_SEAL, MAGIC
from recorder.format._schema import native_rows


def arena_events(ticks: int, players: int = 8, outcome_every: int = 4, seed: int = 1) -> Iterator:
    """A deterministic arena-like match at 10 Hz: each player sends one or two small JSON inputs per tick
    (clients sample input at about 20 Hz); every ``outcome_every``-th loop records its outcome (a state
    broadcast to everyone and the state digest); one player drops and rejoins half way."""
    rnd = random.Random(seed)
    people = [
        Presence(f"{i:08d}-5f1c-4a3e-9d7b-{i:012d}", f"{i:08d}-ea7d-11f1-816a-7106fdcb5b46", f"player{i}", "nakama1")
        for i in range(players)
    ]
    yield InitCall({"mode": "arena", "map": "dunes"}, Outcome(tick_rate=10, label='{"mode":"arena"}'))
    for p in people:
        yield JoinAttemptCall(0, p, {"client_version": "1.4.0"}, Outcome(accept=True))
        yield JoinCall(0, (p.with_reason(1),))
    state = 0
    for tick in range(ticks):
        if tick == ticks // 2:
            yield LeaveCall(tick, (people[0].with_reason(4),))
        if tick == ticks // 2 + 30:
            yield JoinAttemptCall(tick, people[0], {"client_version": "1.4.1"}, Outcome(accept=True))
            yield JoinCall(tick, (people[0].with_reason(1),))
        msgs = []
        for p in people:
            for _ in range(rnd.choice((1, 2))):
                body = {
                    "seq": tick,
                    "x": rnd.randint(-500, 500),
                    "y": rnd.randint(-500, 500),
                    "fire": rnd.random() < 0.1,
                }
                msgs.append(
                    MatchMessage(
                        p,
                        1,
                        json.dumps(body, separators=(",", ":")).encode(),
                        True,
                        1700000000000 + tick * 100 + rnd.randint(0, 99),
                    )
                )
        state = (state * 6364136223846793005 + len(msgs) + 1) & 0xFFFFFFFFFFFFFFFF
        outcome = None
        if outcome_every and tick % outcome_every == 0:
            snapshot = b'{"tick":%d,"players":%d,"scores":[%s]}' % (
                tick,
                len(people),
                b",".join(b"%d" % rnd.randint(0, 99) for _ in people),
            )
            outcome = Outcome(broadcasts=(Broadcast(2, snapshot),), digest=state)
        yield LoopCall(tick, tuple(msgs), outcome)


CLOCK = time.perf_counter


def best_of(repeat: int, *fns: Callable[[], object]) -> list[float]:
    """Best time of each function over ``repeat`` rounds. Rounds interleave the functions, so that a slow
    spell on a shared machine hits both sides of a ratio alike; ``gc.collect()`` runs before each."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = CLOCK()
            fn()
            best[i] = min(best[i], CLOCK() - t0)
    return best


def payloads(path: Path) -> Iterator[bytes]:
    """The chunk payloads of a recording, without frames (the header frame included, as raw sees it; the
    seal left out: it is ours alone)."""
    data = path.read_bytes()
    pos = len(MAGIC)
    while pos < len(data):
        length = int.from_bytes(data[pos + 2 : pos + 6], "little")
        if data[pos + 6] != KIND_SEAL:
            yield data[pos + FRAME_SIZE : pos + FRAME_SIZE + length]
        pos += FRAME_SIZE + length


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--write-ticks", type=int, default=50_000, help="ticks held in memory for the write benchmark")
    ap.add_argument("--players", type=int, default=8)
    ap.add_argument("--outcome-every", type=int, default=4, help="record every Nth loop's outcome (0: none)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="time with process CPU time instead of wall time (steadier on a busy machine)",
    )
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter

    with tempfile.TemporaryDirectory(prefix="nkrec-bench-") as tmp:
        rec_path = Path(tmp) / "arena.nkrec"
        header = Header(match_id="bench.nakama1", module="arena", tick_rate=10, node="nakama1", source="bench")
        t0 = time.perf_counter()
        with RecordingWriter(rec_path, header) as w:
            for e in arena_events(args.ticks, args.players, args.outcome_every):
                w.append(e)
        n_events = w.events_written
        size = rec_path.stat().st_size
        print(
            f"generated {n_events} events ({args.ticks} ticks) in {time.perf_counter() - t0:.1f} s: "
            f"{size / 1e6:.1f} MB at {rec_path.name}"
        )

        raw_path = Path(tmp) / "payloads.msgpack"
        with open(raw_path, "wb") as f:
            for p in payloads(rec_path):
                f.write(p)
        raw_size = raw_path.stat().st_size

        def decode_ours() -> int:
            n = 0
            with open_recording(rec_path) as rec:
                for _ in rec.events():
                    n += 1
            assert n == n_events
            return n

        def decode_ours_messages() -> int:
            n = 0
            with open_recording(rec_path) as rec:
                for e in rec.events():
                    n += 1
                    if type(e) is LoopCall:
                        for m in e.messages:
                            m.data  # noqa: B018 - touch each message object
            return n

        def decode_raw() -> int:
            n = 0
            with open(raw_path, "rb") as f:
                for _obj in msgpack.Unpacker(
                    f,
                    raw=False,
                    strict_map_key=False,
                    unicode_errors="surrogatepass",
                    use_list=True,
                    max_buffer_size=64 * 1024 * 1024,
                ):
                    n += 1
            return n

        def decode_raw_messages() -> int:
            n = 0
            with open(raw_path, "rb") as f:
                it = msgpack.Unpacker(
                    f,
                    raw=False,
                    strict_map_key=False,
                    unicode_errors="surrogatepass",
                    use_list=True,
                    max_buffer_size=64 * 1024 * 1024,
                )
                next(it)  # header
                for _, events in it:
                    for ev in events:
                        n += 1
                        if ev[0] == 4:
                            for row in ev[2]:
                                row[2]  # touch each message row
            return n

        t_raw, t_ours = best_of(args.repeat, decode_raw, decode_ours)
        t_raw_m, t_ours_m = best_of(args.repeat, decode_raw_messages, decode_ours_messages)

        # write: the same events held in memory, ours (encode + pack + frame + write) vs packb of encoded chunks
        events = list(arena_events(args.write_ticks, args.players, args.outcome_every, seed=2))
        chunk_events = 256
        encoded = [encode_chunk(events[i : i + chunk_events]) for i in range(0, len(events), chunk_events)]
        out_ours, out_raw = Path(tmp) / "w.nkrec", Path(tmp) / "w.msgpack"

        def write_ours() -> None:
            with RecordingWriter(out_ours, header, chunk_events=chunk_events) as w:
                for e in events:
                    w.append(e)

        def write_raw() -> None:
            with open(out_raw, "wb") as f:
                for c in encoded:
                    f.write(msgpack.packb(c, use_bin_type=True))
                    f.flush()

        def write_raw_encode() -> None:
            with open(out_raw, "wb") as f:
                for i in range(0, len(events), chunk_events):
                    f.write(msgpack.packb(encode_chunk(events[i : i + chunk_events]), use_bin_type=True))
                    f.flush()

        w_raw, w_raw_enc, w_ours = best_of(args.repeat, write_raw, write_raw_encode, write_ours)
        w_size = out_ours.stat().st_size

    def line(name: str, seconds: float, n: int, nbytes: int) -> None:
        print(
            f"  {name:<44} {seconds * 1000:9.1f} ms  {n / seconds / 1e6:6.2f} M events/s  "
            f"{nbytes / seconds / 1e6:8.1f} MB/s"
        )

    print(
        f"decode ({n_events} events, {size / 1e6:.1f} MB; raw payloads {raw_size / 1e6:.1f} MB), best of {args.repeat}:"
    )
    line("msgpack.Unpacker over payloads", t_raw, n_events, raw_size)
    line("open_recording().events()", t_ours, n_events, size)
    line("msgpack.Unpacker, touching message rows", t_raw_m, n_events, raw_size)
    line("events() with messages materialised", t_ours_m, n_events, size)
    rows = "rows by the compiled helper" if native_rows() else "rows in Python: the compiled helper is not built"
    print(f"write ({len(events)} events, {w_size / 1e6:.1f} MB; message {rows}), best of {args.repeat}:")
    line("msgpack.packb of encoded chunks", w_raw, len(events), w_size)
    line("msgpack.packb(encode_chunk(...))", w_raw_enc, len(events), w_size)
    line("RecordingWriter.append", w_ours, len(events), w_size)
    print(f"ratios (ours / raw throughput; 1.0 = as fast as raw msgpack; {'CPU' if args.cpu else 'wall'} time):")

    def target(name: str, ratio: float, at_least: float) -> None:
        print(f"  {name:<32} {ratio:.2f}  (target >= {at_least:.2f}: {'met' if ratio >= at_least else 'NOT MET'})")

    target("decode, lazy messages", t_raw / t_ours, 0.70)
    print(f"  decode, messages materialised    {t_raw_m / t_ours_m:.2f}")
    target("write vs packb of encoded chunks", w_raw / w_ours, 0.70)
    print(f"  write vs packb(encode_chunk)     {w_raw_enc / w_ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
