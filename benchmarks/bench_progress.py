"""What progress costs a replay (issue 19: under 1% of replay time).

The same arena recording is replayed with and without the progress display, in interleaved rounds, best
of each: in a warm supervised handler process (what `reproduce`, `diff`, `lua-check` and `bisect` do:
the parent reads the tick from the beacon as it polls, the child does nothing more) and in this process
(`--in-process`: a beacon and a thread reading it every 0.2 s). Progress is drawn for real, as a tqdm bar
on a (fake) terminal, and as plain lines at the worst rate (``NAKAMA_REPLAY_PROGRESS_INTERVAL=0``: a
line per poll). Printed: each time and its ratio to the run without progress (target: at most 1.01).

    python benchmarks/bench_progress.py [--ticks 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "fixtures"))

from bench_replay import HANDLER, make_recording

from replay.cli import _progress
from replay.cli._progress import INTERVAL_ENV, replay_progress
from replay.runtime import HandlerProcess, Limits, ReplayOptions, reproduce, reproduce_supervised
from replay.runtime._hang import ProgressBeacon

TARGET = 1.01


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "arena-long.nkrec")
        make_recording(Path(path), args.ticks)
        calls = sum(1 for _ in _calls(path))
        options = ReplayOptions(hang_timeout=30)
        worker = HandlerProcess(Limits(30))
        reproduce_supervised(path, HANDLER, options, process=worker)  # warm: started, modules imported
        drawn: dict[str, int] = {}

        pid = worker._proc.pid  # type: ignore[union-attr]
        spent: dict[str, list[float]] = {}  # seconds inside the progress callback, per run
        watch = _progress.replay_watch

        def timed_watch(progress: Any, passes: Any = ("replay",)) -> Any:
            inner, seconds = watch(progress, passes), [0.0, 0]
            spent[progress.label + str(len(spent))] = seconds

            def on_poll(slots: Any) -> None:
                t = time.perf_counter()
                inner(slots)
                seconds[0] += time.perf_counter() - t
                seconds[1] += 1

            return on_poll

        _progress.replay_watch = timed_watch  # replay_progress looks it up at each call

        def supervised(shown: str | None) -> tuple[float, float]:
            t, cpu = time.perf_counter(), time.process_time() + _cpu_of(pid)
            if shown is None:
                result = reproduce_supervised(path, HANDLER, options, process=worker)
            else:
                stream = _Terminal() if shown == "bar" else io.StringIO()
                with replay_progress(path, enabled=True, worker=worker, stream=stream, tty=shown == "bar"):
                    result = reproduce_supervised(path, HANDLER, options, process=worker)
                drawn[f"supervised {shown}"] = stream.getvalue().count("\r" if shown == "bar" else "\n")
            assert result.reproduced and worker._proc.pid == pid, result.verdict  # type: ignore[union-attr]
            return time.perf_counter() - t, time.process_time() + _cpu_of(pid) - cpu

        def in_process(shown: str | None) -> tuple[float, float]:
            t, cpu = time.perf_counter(), time.process_time()
            if shown is None:
                result = reproduce(path, HANDLER, options)
            else:
                stream = _Terminal() if shown == "bar" else io.StringIO()
                with replay_progress(path, enabled=True, stream=stream, tty=shown == "bar"):
                    result = reproduce(path, HANDLER, options)
                drawn[f"in-process {shown}"] = stream.getvalue().count("\r" if shown == "bar" else "\n")
            assert result.reproduced, result.verdict
            return time.perf_counter() - t, time.process_time() - cpu

        os.environ[INTERVAL_ENV] = "0"  # plain lines: one per poll, the most they can cost
        runs = {
            "supervised, no progress": lambda: supervised(None),
            "supervised, terminal bar": lambda: supervised("bar"),
            "supervised, plain lines": lambda: supervised("lines"),
            "in-process, no progress": lambda: in_process(None),
            "in-process, terminal bar": lambda: in_process("bar"),
            "in-process, plain lines": lambda: in_process("lines"),
        }
        walls: dict[str, list[float]] = {k: [] for k in runs}
        cpus: dict[str, list[float]] = {k: [] for k in runs}
        try:
            for _ in range(args.repeat):  # interleaved rounds, best of each: a load spike hits all alike
                for name, fn in runs.items():
                    gc.collect()
                    wall, cpu = fn()
                    walls[name].append(wall)
                    cpus[name].append(cpu)
        finally:
            worker.close()
    print(f"{args.ticks} ticks, best of {args.repeat} interleaved rounds; load average {os.getloadavg()[0]:.1f}")
    print("CPU: both processes' CPU seconds (this one and the handler process), steadier than the wall clock")
    print("when the machine is shared; the ratio is against the same kind of run without progress")
    for name in runs:
        base = name.split(",")[0] + ", no progress"
        wall, cpu = min(walls[name]), min(cpus[name])
        updates = drawn.get(name.replace(", terminal ", " ").replace(", plain ", " "), 0)
        ratios = f"  wall {wall / min(walls[base]):.4f}x  CPU {cpu / min(cpus[base]):.4f}x" if name != base else ""
        print(f"{name:<26} wall {wall:7.3f} s  CPU {cpu:7.3f} s  {args.ticks / wall:8.0f} ticks/s{ratios}", end="")
        print(f"  ({updates} redraws)" if updates else "")
    polls = [v for v in spent.values() if v[1]]
    per_poll = sum(v[0] for v in polls) / max(1, sum(v[1] for v in polls))
    per_call = _beacon_cost()
    replay = min(min(cpus["supervised, no progress"]), min(cpus["in-process, no progress"]))
    print(
        f"accounted: {per_poll * 1e6:.0f} us per progress update (at most 10 a second: "
        f"{per_poll * 10 * 100:.3f}% of a second) in the parent; the handler process does nothing more"
    )
    print(
        f"in-process only: the beacon's stores, {per_call * 1e9:.0f} ns per call x {calls} calls = "
        f"{per_call * calls / replay * 100:.3f}% of the replay's CPU, and 5 updates a second: "
        f"{per_poll * 5 * 100:.3f}%"
    )
    print(f"target: progress costs at most {TARGET:.2f}x the replay without it ({(TARGET - 1) * 100:.0f}%)")


def _calls(path: str) -> Any:
    from recorder.format import open_recording

    with open_recording(path) as rec:
        yield from (e for e in rec.events() if hasattr(e, "callback"))


def _beacon_cost(n: int = 200_000) -> float:
    """Seconds per handler call of what an in-process replay pays for its progress beacon: enter, leave,
    position (a supervised one pays the supervisor's beacon with or without progress)."""
    beacon = ProgressBeacon()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for i in range(n):
            beacon.position(i)
            beacon.enter("match_loop", i)
            beacon.leave()
        empty = time.perf_counter()
        for _ in range(n):
            pass
        best = min(best, (empty - t) - (time.perf_counter() - empty))
    return best / n


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
