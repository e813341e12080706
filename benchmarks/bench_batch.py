"""run-all throughput: many arena recordings replayed serially and on ``--jobs`` handler processes.

Baseline, measured in the same run: a plain loop of ``replay.runtime.reproduce`` over the same recordings in
this process. Then ``replay.regression.run_all`` with the serial executor (the cost of the batch layer: a
supervised handler process, fresh imports, result dicts, signatures) and with ``--jobs`` threads each
supervising its own handler process (what ``run-all -j N`` does; their start-up is included). The parallelism the machine gives right now is measured too: a pure-Python busy loop on a
pool of one worker and of ``--jobs`` workers. Printed last: batch serial / baseline (overhead, ideally
about 1.0), baseline / pool (speed-up) and that speed-up over the busy loop's (ideally about 1.0: the
batch layer scales as far as the machine lets it; on a shared machine whose cores are busy both are low).

With ``--cluster`` (needs the test extra: moto[server], s3fs, dask[distributed]) it then compares the Dask
executor with the process pool on ``--cluster-recordings`` generated recordings (default 200): the process
pool (``run-all -j N``) reading local files, and a Dask local cluster of ``--jobs`` worker processes
(``run-all --executor dask``) reading the same recordings from an S3 endpoint on 127.0.0.1 (moto's server,
started here as a subprocess), and the process pool reading them from that endpoint too (the store's cost apart
from Dask's). Printed: recordings per second of each, Dask / pool (target: at least 0.8),
each one's speed-up over one process and its parallel efficiency (speed-up / the busy loop's speed-up), and
the cluster's start-up time (not in its throughput: a sweep pays it once).

    python benchmarks/bench_batch.py [--recordings 16] [--ticks 3000] [--jobs 2]
    python benchmarks/bench_batch.py --cluster [--cluster-recordings 200] [--cluster-ticks 600] [--jobs 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replay import HANDLER, make_recording

from replay.regression import SerialExecutor, load_executor, run_all
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


NOOP_TASKS = 2000


def start_s3_server() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server on a free 127.0.0.1 port, and the environment that points s3fs (and workers) at it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=5).close()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto's S3 server did not start (pip install -e '.[test]')") from None
            time.sleep(0.2)


def cluster_comparison(n: int, ticks: int, jobs: int, parallel: float) -> None:
    """Process pool on local files vs Dask local cluster from the local S3 endpoint, same recordings."""
    import fsspec

    server, endpoint = start_s3_server()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=endpoint,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            first = Path(tmp) / "match-0000.nkrec"
            make_recording(first, ticks)
            data = first.read_bytes()
            paths = [str(first)]
            fs = fsspec.filesystem("s3")
            fs.mkdir("bench")
            fs.pipe("bench/sweep/match-0000.nkrec", data)
            for i in range(1, n):
                copy = Path(tmp) / f"match-{i:04}.nkrec"
                copy.write_bytes(data)
                paths.append(str(copy))
                fs.pipe(f"bench/sweep/match-{i:04}.nkrec", data)
            urls = [f"s3://bench/sweep/match-{i:04}.nkrec" for i in range(n)]

            gc.collect()
            t = time.perf_counter()
            one = run_all(paths[: max(jobs * 4, 8)], HANDLER, executor=SerialExecutor())
            one_each = (time.perf_counter() - t) / len(one.results)

            gc.collect()
            t = time.perf_counter()
            pooled = run_all(paths, HANDLER, jobs=jobs)
            pool = time.perf_counter() - t
            assert pooled.counts["clean"] == n, pooled.counts

            gc.collect()
            t = time.perf_counter()
            pooled_s3 = run_all(urls, HANDLER, jobs=jobs)
            pool_s3 = time.perf_counter() - t
            assert pooled_s3.counts["clean"] == n, pooled_s3.counts

            t = time.perf_counter()
            executor = load_executor("dask", jobs)
            started = time.perf_counter() - t
            try:
                run_all(urls[:jobs], HANDLER, executor=executor)  # each worker's handler process started
                gc.collect()
                t = time.perf_counter()
                dasked = run_all(urls, HANDLER, executor=executor)
                dask_time = time.perf_counter() - t
                t = time.perf_counter()
                noops = [executor.submit(abs, -i) for i in range(NOOP_TASKS)]
                assert sum(f.result() for f in noops) == NOOP_TASKS * (NOOP_TASKS - 1) // 2
                noop_rate = NOOP_TASKS / (time.perf_counter() - t)
            finally:
                executor.shutdown()
            assert dasked.counts["clean"] == n, dasked.counts
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\ncluster comparison: {n} recordings x {ticks} ticks ({len(data):,} bytes each), {jobs} workers")
    print(f"  {'run_all serial (1 process)':<40} {1 / one_each:6.1f} recordings/s")
    for name, seconds in (
        (f"process pool, local files, {jobs} processes", pool),
        (f"process pool, S3 endpoint, {jobs} processes", pool_s3),
        (f"dask, S3 endpoint, {jobs} workers", dask_time),
    ):
        speedup = n * one_each / seconds
        print(
            f"  {name:<40} {n / seconds:6.1f} recordings/s  {seconds:7.2f} s  speed-up {speedup:4.2f}"
            f"  efficiency {speedup / parallel:4.2f}"
        )
    print(f"  dask local cluster start-up: {started:.2f} s (once per sweep, not in its throughput)")
    print(f"  dask no-op tasks: {noop_rate:,.0f} tasks/s (the scheduler's and the future's cost per task)")
    print(f"ratio dask from S3 / process pool on local files (throughput; target >= 0.8): {pool / dask_time:.2f}")
    print(f"ratio dask from S3 / process pool from S3 (what Dask itself costs): {pool_s3 / dask_time:.2f}")
    print(f"ratio process pool from S3 / on local files (what the store costs here): {pool / pool_s3:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=int, default=16)
    ap.add_argument("--ticks", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cluster", action="store_true", help="also compare the Dask executor from S3 with the pool")
    ap.add_argument("--cluster-recordings", type=int, default=200)
    ap.add_argument("--cluster-ticks", type=int, default=600)
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
    if args.cluster:
        cluster_comparison(args.cluster_recordings, args.cluster_ticks, args.jobs, parallel)


if __name__ == "__main__":
    main()
