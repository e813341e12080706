"""Time to "first divergent tick and what diverged" on a long match, against baselines run in the same process.

A 36,000-tick trajectory (10 minutes at 60 Hz) of arena states with about 500 values each, and a second one
that diverges at 90% (one player's hp and one extra bullet from that tick on). Timed, best of --repeat after a
warm-up that compiles the kernels:

- ours from snapshot bytes: ``diff_trajectories`` on the canonical msgpack snapshots a recording stores
  (equal snapshots skipped at memory speed, unequal ones flattened and merged, then the field diff at the
  divergent tick with readable paths);
- ours via digests: BLAKE2b-64 of every snapshot (``prange``) and the scan of the two digest arrays (tick only);
- ours from Python states: the same from the two lists of state objects (includes encoding them);
- (a) pure-Python flatten + compare: each tick's states walked into ``{path: value}`` dicts, compared, the
  differing paths listed at the first unequal tick;
- (b) ``==`` scan of the Python states (finds the tick only, and treats 1 == 1.0, 0.0 == -0.0, NaN != NaN);
- (c) DeepDiff per tick until the first difference, measured on a slice and extrapolated (its answer at the
  divergent tick is checked);
- the scan alone: the kernel's first difference vs numpy (``np.argmax(a != b)``) on the same arrays, in GB/s,
  for the digest arrays and for two leaf-value arrays as long as the whole trajectory's leaves.

Prints each time, then the ratios last. Targets: from snapshot bytes at least 20x faster than (a); the scan
within 2x of numpy.

    python benchmarks/bench_diff.py [--ticks 36000] [--repeat 3] [--deepdiff-slice 300]
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder.format import canonical_bytes
from replay.diff import _kernels as kernels
from replay.diff import diff_trajectories

PLAYERS = 24
BULLETS = 12


def arena_state(tick: int, diverged: bool) -> dict[str, Any]:
    """About 500 values: 24 players x 17, 12 bullets x 6, a few globals. Deterministic in ``tick``."""
    players = {}
    for i in range(PLAYERS):
        phase = tick * 0.01 + i
        players[f"u{i}"] = {
            "hp": 100 - (tick + i) % 50,
            "x": math.sin(phase) * 40.0,
            "y": math.cos(phase) * 40.0,
            "vx": math.cos(phase) * 0.4,
            "vy": -math.sin(phase) * 0.4,
            "angle": phase % 6.283185307179586,
            "ammo": 30 - (tick // 7 + i) % 30,
            "score": (tick // 60) * (i + 1),
            "kills": tick // (97 + i),
            "deaths": tick // (131 + i),
            "alive": (tick + i) % 50 != 0,
            "team": "red" if i % 2 else "blue",
            "name": f"player{i}",
            "inv": [i % 3, (tick // 300) % 5, 1, 0],
        }
    if diverged:
        players["u7"]["hp"] -= 1
    bullets = [
        {
            "x": (tick * 0.3 + b) % 80.0,
            "y": (tick * 0.7 + 3 * b) % 80.0,
            "vx": 0.3,
            "vy": 0.7,
            "owner": f"u{b}",
            "ttl": 60 - tick % 60,
        }
        for b in range(BULLETS)
    ]
    if diverged:
        bullets.append({"x": 1.5, "y": 2.5, "vx": 0.0, "vy": 1.0, "owner": "u7", "ttl": 60})
    return {
        "tick": tick,
        "mode": "arena",
        "map": "dunes",
        "round": tick // 3600,
        "players": players,
        "bullets": bullets,
    }


def count_values(state: Any) -> int:
    if isinstance(state, dict):
        return sum(count_values(v) for v in state.values())
    if isinstance(state, list):
        return sum(count_values(v) for v in state)
    return 1


# ---------------------------------------------------------------- baselines


def py_flatten(v: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            py_flatten(x, f"{path}.{k}" if path else k, out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            py_flatten(x, f"{path}[{i}]", out)
    else:
        out[path] = v


def baseline_flatten(a: list[Any], b: list[Any]) -> tuple[int, list[str]]:
    for t, (x, y) in enumerate(zip(a, b)):
        fa: dict[str, Any] = {}
        fb: dict[str, Any] = {}
        py_flatten(x, "", fa)
        py_flatten(y, "", fb)
        if fa != fb:
            return t, sorted(p for p in fa.keys() | fb.keys() if fa.get(p, fa) != fb.get(p, fb))
    return -1, []


def baseline_eq(a: list[Any], b: list[Any]) -> int:
    for t, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return t
    return -1


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticks", type=int, default=36_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--deepdiff-slice", type=int, default=300)
    args = ap.parse_args()
    ticks, div = args.ticks, int(args.ticks * 0.9)

    t0 = time.perf_counter()
    states_a = [arena_state(t, False) for t in range(ticks)]
    states_b = [arena_state(t, t >= div) for t in range(ticks)]  # separate objects: no identity shortcuts
    snaps_a = [canonical_bytes(s) for s in states_a]
    snaps_b = snaps_a[:div] + [canonical_bytes(s) for s in states_b[div:]]
    packed_a, packed_b = kernels.pack(snaps_a), kernels.pack(snaps_b)
    values = count_values(states_a[0])
    mb = (packed_a.buf.nbytes + packed_b.buf.nbytes) / 1e6
    print(
        f"{ticks} ticks x {values} values, divergence planted at tick {div}; snapshots {mb:.0f} MB "
        f"(setup {time.perf_counter() - t0:.0f} s)"
    )

    # warm-up: load or compile every kernel on a small input
    diff_trajectories(kernels.pack(snaps_a[:3]), kernels.pack(snaps_b[:2] + snaps_b[-1:]))
    diff_trajectories(states_a[:3], states_b[:2] + states_b[-1:])

    r = args.repeat
    t_bytes, found = best_of(r, lambda: diff_trajectories(packed_a, packed_b))
    assert found is not None and found.index == div and found.diff is not None
    paths = [p.path for p in found.diff.paths]
    print(f"ours, from snapshot bytes      {t_bytes:9.3f} s   tick {found.index}, {found.diff.count} paths: {paths}")

    def via_digests() -> int:
        da = kernels.snapshot_digests(packed_a)
        db = kernels.snapshot_digests(packed_b)
        return kernels.first_difference(da, db)

    t_dig, tick_dig = best_of(r, via_digests)
    assert tick_dig == div
    print(f"ours, BLAKE2b-64 digests+scan  {t_dig:9.3f} s   tick {tick_dig} (the digests a recording stores; no paths)")

    t_objs, found2 = best_of(r, lambda: diff_trajectories(states_a, states_b))
    assert found2 == found
    print(f"ours, from Python states       {t_objs:9.3f} s   (encoding included)")

    t_flat, (tick_a, paths_a) = best_of(1, lambda: baseline_flatten(states_a, states_b))
    assert tick_a == div, tick_a
    print(f"(a) pure-Python flatten+compare{t_flat:9.3f} s   tick {tick_a}, {len(paths_a)} paths")

    t_eq, tick_eq = best_of(r, lambda: baseline_eq(states_a, states_b))
    assert tick_eq == div
    print(f"(b) == scan of Python states   {t_eq:9.3f} s   tick {tick_eq} (no paths)")

    from deepdiff import DeepDiff

    n = min(args.deepdiff_slice, div)
    t_slice, _ = best_of(1, lambda: [DeepDiff(states_a[t], states_b[t]) for t in range(n)])
    at_div = DeepDiff(states_a[div], states_b[div])
    assert at_div and not DeepDiff(states_a[div - 1], states_b[div - 1])
    t_deep = t_slice / n * (div + 1)
    print(
        f"(c) DeepDiff per tick          {t_deep:9.1f} s   extrapolated from {n} ticks ({t_slice:.2f} s); "
        f"at tick {div}: {sorted(at_div)}"
    )

    # the scan alone, kernel vs numpy, on the same arrays
    da, db = kernels.content_digests(packed_a), kernels.content_digests(packed_b)
    leaves = ticks * values
    va = np.arange(leaves, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    vb = va.copy()
    vb[int(leaves * 0.9)] ^= np.uint64(1)
    rates = {}
    for name, (x, y) in {"digests": (da, db), "leaf values": (va, vb)}.items():
        want = int(np.argmax(x != y))
        reps = max(1, int(2e8 // (x.nbytes + 1)))
        t_k, got_k = best_of(r, lambda x=x, y=y, reps=reps: [kernels.first_difference(x, y) for _ in range(reps)][-1])
        t_n, got_n = best_of(r, lambda x=x, y=y, reps=reps: [int(np.argmax(x != y)) for _ in range(reps)][-1])
        assert got_k == got_n == want
        scanned = 2 * 8 * (want + 1) * reps  # bytes the kernel must read to answer
        whole = 2 * x.nbytes * reps  # bytes numpy reads (it compares everything)
        rates[name] = (t_k, t_n)
        print(
            f"scan {name:12s} ({x.shape[0]:>9,} x 2 uint64): kernel {scanned / t_k / 1e9:6.2f} GB/s "
            f"({t_k / reps * 1e6:9.1f} us), numpy {whole / t_n / 1e9:6.2f} GB/s ({t_n / reps * 1e6:9.1f} us)"
        )

    print()
    print("ratios (baseline time / our time; > 1 means we are faster):")
    print(f"  from snapshot bytes vs (a) pure-Python flatten : {t_flat / t_bytes:8.1f}x   (target >= 20)")
    print(f"  from Python states  vs (a) pure-Python flatten : {t_flat / t_objs:8.1f}x")
    print(f"  from snapshot bytes vs (b) == scan             : {t_eq / t_bytes:8.1f}x")
    print(f"  from Python states  vs (b) == scan             : {t_eq / t_objs:8.1f}x")
    print(f"  from snapshot bytes vs (c) DeepDiff (extrap.)  : {t_deep / t_bytes:8.1f}x")
    print(f"  from Python states  vs (c) DeepDiff (extrap.)  : {t_deep / t_objs:8.1f}x")
    print(f"  BLAKE2b digests+scan vs (a) pure-Python flatten: {t_flat / t_dig:8.1f}x")
    for name, (t_k, t_n) in rates.items():
        print(f"  scan {name:12s} kernel time / numpy time   : {t_k / t_n:8.2f}    (target <= 2)")


if __name__ == "__main__":
    main()
