"""run-all throughput: many arena recordings replayed serially and on ``--jobs`` handler processes.

Baseline, measured in the same run: a plain loop of ``replay.runtime.reproduce`` over the same recordings in
this process. Then ``replay.regression.run_all`` with the serial executor (the cost of the batch layer: a
supervised handler process, fresh imports, result dicts, signatures) and with ``--jobs`` threads each
supervising its own handler process (what ``run-all -j N`` does; their start-up is included). The parallelism the machine gives right now is measured too: a pure-Python busy loop on a
pool of one worker and of ``--jobs`` workers. Printed last: batch serial / baseline (overhead, ideally
about 1.0), baseline / pool (speed-up) and that speed-up over the busy loop's (ideally about 1.0: the
batch layer scales as far as the machine lets it; on a shared machine whose cores are busy both are low).

    python benchmarks/bench_batch.py [--recordings 16] [--ticks 3000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replay import HANDLER, make_recording

from replay.regression import SerialExecutor, run_all
from replay.runtime import ReplayOptions, reproduce


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_parallelism(jobs: int, n: int = 2_000_000, tasks: int = 8) -> float:
    """Time of ``tasks`` busy loops on one worker over their time on ``jobs`` workers (spawned beforehand)."""
    times = []
    for workers in (1, jobs):
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            list(ex.map(abs, range(workers * 4)))  # start the workers
            t = time.perf_counter()
            list(ex.map(burn, [n] * tasks))
            times.append(time.perf_counter() - t)
    return times[0] / times[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=int, default=16)
    ap.add_argument("--ticks", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "match-000.nkrec"
        make_recording(first, args.ticks)
        paths = [str(first)]
        for i in range(1, args.recordings):
            copy = Path(tmp) / f"match-{i:03}.nkrec"
            shutil.copy(first, copy)
            paths.append(str(copy))
        options = ReplayOptions()
        reproduce(paths[0], HANDLER, options)  # warm imports and caches before timing

        gc.collect()
        t = time.perf_counter()
        for p in paths:
            assert reproduce(p, HANDLER, options).crash is None
        baseline = time.perf_counter() - t

        gc.collect()
        t = time.perf_counter()
        serial = run_all(paths, HANDLER, executor=SerialExecutor())
        batch_serial = time.perf_counter() - t
        assert serial.counts["clean"] == len(paths), serial.counts

        gc.collect()
        t = time.perf_counter()
        pooled = run_all(paths, HANDLER, jobs=args.jobs)
        pool = time.perf_counter() - t
        assert pooled.results == serial.results

    parallel = machine_parallelism(args.jobs)
    ticks = args.recordings * args.ticks
    print(f"{args.recordings} recordings x {args.ticks} ticks ({ticks} ticks in all)")
    for name, seconds in (
        ("baseline replay loop", baseline),
        ("run_all serial", batch_serial),
        (f"run_all {args.jobs} processes", pool),
    ):
        print(
            f"  {name:<24} {seconds:8.2f} s  {ticks / seconds:>10,.0f} ticks/s  {args.recordings / seconds:6.1f} recordings/s"
        )
    print(f"ratio batch serial / baseline: {batch_serial / baseline:.2f}")
    print(f"ratio baseline / {args.jobs} processes (speed-up): {baseline / pool:.2f}")
    print(f"ratio busy loop on {args.jobs} processes / on 1 (what the machine gives now): {parallel:.2f}")
    print(f"ratio run-all speed-up / machine speed-up: {baseline / pool / parallel:.2f}")


if __name__ == "__main__":
    main()
