"""How fast `nakama-replay fuzz` finds the arena's reconnection crash, from scratch, in Python and Lua.

For each seed (no example database, so every run starts from nothing) it fuzzes the buggy arena with the
default budget and stops at the first failure: matches generated until the crash was first seen, seconds
until then, and seconds until the minimal recording was ready (hypothesis shrinking plus the reducers).
Baseline, measured in the same run: the fixed arena fuzzed with the same budget (it must survive), whose
time is what a full search costs. Printed last per language: the median time to find the bug divided by
the time of the full budget (how much of a default run finding it takes).

    python benchmarks/bench_fuzz.py [--seeds 8] [--budget 1000] [--lang py lua]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replay.fuzz import FuzzOptions, fuzz, load_profile
from replay.fuzz._fuzz import DEFAULT_MAX_EXAMPLES

HANDLERS = ROOT / "fixtures" / "handlers"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--budget", type=int, default=DEFAULT_MAX_EXAMPLES)
    ap.add_argument("--lang", nargs="+", default=["py", "lua"], choices=["py", "lua"])
    args = ap.parse_args()
    profile = load_profile(HANDLERS / "arena_payloads.py")
    ratios = []
    for lang in args.lang:
        buggy, fixed = HANDLERS / f"arena.{lang}", HANDLERS / f"arena_fixed.{lang}"
        t = time.perf_counter()
        base = fuzz(str(fixed), FuzzOptions(max_examples=args.budget, out=None, profile=profile))
        full = time.perf_counter() - t
        print(
            f"{fixed.name}: {'survived' if not base.findings else 'FAILED'} {base.examples} matches in {full:.1f} s "
            f"({1000 * full / base.examples:.1f} ms per match)"
        )
        found, seconds, ready = [], [], []
        for seed in range(args.seeds):
            t = time.perf_counter()
            r = fuzz(
                str(buggy), FuzzOptions(max_examples=args.budget, seed=seed, out=None, profile=profile, max_findings=1)
            )
            total = time.perf_counter() - t
            if not r.findings:
                print(f"  {buggy.name} seed {seed}: NOT FOUND in {r.examples} matches ({total:.1f} s)")
                continue
            f = r.findings[0]
            found.append(f.examples)
            seconds.append(f.seconds)
            ready.append(total)
            print(
                f"  {buggy.name} seed {seed}: {f.key} after {f.examples} matches, {f.seconds:.2f} s; "
                f"minimal recording ({len(f.calls)} calls) after {total:.1f} s"
            )
        if found:
            print(
                f"{buggy.name}: found in {len(found)}/{args.seeds} seeds; matches median {statistics.median(found)}, "
                f"max {max(found)}; seconds to find median {statistics.median(seconds):.2f}, max {max(seconds):.2f}; "
                f"to a minimal recording median {statistics.median(ready):.1f} s"
            )
            ratios.append((buggy.name, statistics.median(seconds) / full))
    for name, ratio in ratios:
        print(f"{name}: median time to find / full budget on the fixed handler = {ratio:.3f}")


if __name__ == "__main__":
    main()
