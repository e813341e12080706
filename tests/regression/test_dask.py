"""run-all on a real Dask cluster (``distributed.LocalCluster``, two worker processes) over recordings on a real
S3-compatible server (moto's server mode on 127.0.0.1): the command runs as a subprocess, connects to the
cluster's scheduler, and the test kills Dask workers while they run a task."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.format import read_events, write_recording
from tests.common.paths import HANDLERS, RECORDINGS

pytest.importorskip("distributed", reason="dask[distributed] is in the test extra: pip install -e '.[test]'")

_RUN_TIMEOUT = 400.0  # seconds for the whole command on a machine 5x slower than idle

# match_init notes each start (the handler process's parent is the Dask worker running the task) and blocks
# where the test is to kill that worker: every start of the "victim" recording, and the first other start
_HANDLER = """
import os
import time
from pathlib import Path

from arena import *  # noqa: F403
from arena import match_init as arena_init

STARTS = Path(__file__).with_name("starts.txt")


def match_init(ctx, logger, nk, params):
    victim = ctx["match_id"].startswith("victim")
    earlier = STARTS.read_text().splitlines() if STARTS.exists() else []
    block = victim or not any(line.startswith("other") for line in earlier)
    with open(STARTS, "a") as f:
        f.write(f"{'victim' if victim else 'other'} {os.getppid()} {'block' if block else 'run'}\\n")
    if block:
        time.sleep(300)  # the test kills this worker long before
    return arena_init(ctx, logger, nk, params)
"""


def test_run_all_from_s3_on_a_dask_cluster_survives_killed_workers(bucket, dask_cluster, tmp_path):
    import fsspec

    handler_dir = tmp_path / "handler"
    handler_dir.mkdir()
    shutil.copy(HANDLERS / "arena.py", handler_dir / "arena.py")
    handler = handler_dir / "arena_cluster.py"
    handler.write_text(_HANDLER)
    starts = handler_dir / "starts.txt"

    header, events = read_events(RECORDINGS / "arena-clean.nkrec")
    victim = tmp_path / "victim.nkrec"
    write_recording(victim, dataclasses.replace(header, match_id="victim-1"), events)
    fs = fsspec.filesystem("s3")
    corpus = f"{bucket}/sweep"
    for name, src in (
        ("crash-a.nkrec", RECORDINGS / "arena-reconnect-crash.nkrec"),
        ("crash-b.nkrec", RECORDINGS / "arena-reconnect-crash.nkrec"),
        ("clean-a.nkrec", RECORDINGS / "arena-clean.nkrec"),
        ("day2/clean-b.nkrec", RECORDINGS / "arena-clean.nkrec"),
        ("victim.nkrec", victim),
    ):
        fs.pipe(f"{corpus}/{name}", Path(src).read_bytes())

    address = dask_cluster.ready()
    cmd = [sys.executable, "-m", "replay.cli", "run-all", f"{corpus}/", "--handler", str(handler)]
    cmd += ["--executor", address, "--hang-timeout", "600", "--json", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    killed: list[tuple[str, int]] = []
    seen = 0
    deadline = time.monotonic() + _RUN_TIMEOUT
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            lines = starts.read_text().splitlines() if starts.exists() else []
            for line in lines[seen:]:
                who, ppid, action = line.split()
                if action == "block":
                    assert dask_cluster.is_worker(int(ppid)), f"{line}: not a Dask worker process"
                    os.kill(int(ppid), signal.SIGKILL)  # the worker, mid-task
                    killed.append((who, int(ppid)))
            seen = len(lines)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err.decode()[-3000:]  # an error category: the victim
    report = json.loads(out)
    counts = {k: v for k, v in report["counts"].items() if v}
    assert counts == {"reproduced": 2, "clean": 2, "error": 1}, report
    rows = {r["path"].rsplit("/", 1)[1]: r for r in report["results"]}
    assert rows["victim.nkrec"]["category"] == "error"
    assert "KilledWorker" in rows["victim.nkrec"]["detail"]
    assert rows["crash-a.nkrec"]["crash"]["tick"] == 58 and rows["crash-b.nkrec"]["category"] == "reproduced"
    assert all(r["path"].startswith(f"{corpus}/") for r in report["results"])

    lines = starts.read_text().splitlines()
    victims = [line for line in lines if line.startswith("victim")]
    others = [line for line in lines if line.startswith("other")]
    blocked_others = [line for line in others if line.endswith("block")]
    assert len(victims) == 2, lines  # run once, retried once, then reported
    assert [who for who, _ in killed].count("victim") == 2
    assert blocked_others, lines  # a task of another recording was killed mid-run...
    # ...and ran again, its result as if never killed (a finished result that a killed worker still held before
    # the command fetched it is computed again: at most a few more starts)
    assert len(others) >= 4 + len(blocked_others), lines


_VICTIM_HANDLER = """
import os
import time
from pathlib import Path

from arena import *  # noqa: F403
from arena import match_init as arena_init

STARTS = Path(__file__).with_name("starts.txt")


def match_init(ctx, logger, nk, params):
    victim = ctx["match_id"].startswith("victim")
    with open(STARTS, "a") as f:
        f.write(f"{ctx['match_id']} {os.getppid()}\\n")
    if victim:
        time.sleep(300)  # the test kills this worker long before
    return arena_init(ctx, logger, nk, params)
"""


def test_a_big_sweep_batches_recordings_and_a_lost_batch_costs_only_its_victim(dask_cluster, tmp_path):
    """64 recordings on 2 workers go 2 per task (batch_size); the task holding the victim loses its worker
    twice, so its recordings run again one per task: the victim is reported (its worker lost twice more), its
    batch sibling is replayed clean, and the other tasks never notice."""
    import threading

    from replay.regression._batch import batch_size, run_all
    from replay.regression._dask import DaskExecutor

    handler_dir = tmp_path / "handler"
    handler_dir.mkdir()
    shutil.copy(HANDLERS / "arena.py", handler_dir / "arena.py")
    handler = handler_dir / "arena_victim.py"
    handler.write_text(_VICTIM_HANDLER)
    starts = handler_dir / "starts.txt"
    header, events = read_events(RECORDINGS / "arena-clean.nkrec")
    short = [e for e in events if getattr(e, "tick", 0) <= 5]
    paths = []
    for i in range(64):
        mid = "victim-1" if i == 21 else f"match-{i:02}"
        path = tmp_path / f"{mid}.nkrec"
        write_recording(path, dataclasses.replace(header, match_id=mid), short)
        paths.append(str(path))

    address = dask_cluster.ready()
    rng = random.getstate()  # distributed's client draws from the global random (its connection back-off)
    executor = DaskExecutor(address, 2)
    assert executor.workers == 2 and batch_size(executor, len(paths)) == 2
    done: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: done.update(
            summary=run_all(paths, str(handler), executor=executor, options={"hang_timeout": 600})
        )
    )
    runner.start()
    killed: set[int] = set()
    deadline = time.monotonic() + _RUN_TIMEOUT
    try:
        while runner.is_alive() and time.monotonic() < deadline:
            for line in starts.read_text().splitlines() if starts.exists() else []:
                mid, ppid = line.split()
                if mid.startswith("victim") and int(ppid) not in killed:
                    assert dask_cluster.is_worker(int(ppid)), f"{line}: not a Dask worker process"
                    killed.add(int(ppid))
                    os.kill(int(ppid), signal.SIGKILL)
            time.sleep(0.2)
        runner.join(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        executor.shutdown()
        random.setstate(rng)
    assert not runner.is_alive(), "run_all did not finish"
    summary = done["summary"]
    rows = {Path(r["path"]).stem: r for r in summary.results}  # type: ignore[attr-defined]
    assert len(rows) == 64
    assert rows["victim-1"]["category"] == "error" and "KilledWorker" in rows["victim-1"]["detail"]
    assert {r["category"] for name, r in rows.items() if name != "victim-1"} == {"clean"}
    victim_starts = [line for line in starts.read_text().splitlines() if line.startswith("victim")]
    assert len(victim_starts) == 4, victim_starts  # its batch: run, retried; then alone: run, retried
    sibling = Path(paths[20]).stem  # tasks hold recordings 2k and 2k + 1: the victim (21) shares with 20
    assert sum(line.startswith(sibling) for line in starts.read_text().splitlines()) >= 2
