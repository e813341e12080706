"""Independent fuzz searches in parallel, one per seed, merged: ``fuzz --seeds K --executor ...``.

Each seed's search is a whole ``fuzz()`` run (its own example database and findings under ``OUT/seed-N/``), in a
task of its own on any executor (a process pool, ``replay.regression.load_executor("dask", n)``). The merged
report lists each distinct failure once, by its key (the crash signature, or the check that failed): the
finding of the lowest seed is kept, and the recordings and expectations the other seeds wrote for the same key
are removed. Same seeds, same findings, whatever the executor and however the tasks interleave. The workers write
into ``OUT``, so on a cluster ``OUT`` must be a folder every worker reaches at the same path.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from replay.fuzz._fuzz import FuzzOptions, FuzzReport, fuzz

__all__ = ["fuzz_seeds", "seed_job"]


def seed_job(handler: str, options: FuzzOptions, payloads: str | None) -> FuzzReport:
    """(Runs in a task.) One seed's search; ``payloads`` (a profile file or module) is loaded here, since a
    loaded profile may hold strategies that do not travel between processes."""
    if payloads is not None:
        from replay.fuzz._strategies import load_profile

        options = dataclasses.replace(options, profile=load_profile(payloads))
    return fuzz(handler, options)


def fuzz_seeds(
    handler: str | os.PathLike[str],
    options: FuzzOptions,
    seeds: Sequence[int],
    executor: Any,
    *,
    payloads: str | None = None,
    on_done: Callable[[], None] | None = None,
) -> FuzzReport:
    """Search ``handler`` once per seed on ``executor`` and merge the reports (see the module docstring).
    ``payloads`` names the profile (a file or module, ``--payloads``), loaded in each task; ``options.profile``
    must then be None (None for both: the default profile). ``on_done()`` is called (from any thread) as
    each search ends: progress."""
    if not seeds:
        raise ValueError("fuzz_seeds needs at least one seed")
    if options.profile is not None and payloads is None:
        raise ValueError("a loaded profile holds strategies that cannot travel to a task: pass payloads=FILE instead")
    spec = os.fspath(handler)
    start = time.monotonic()
    futures = []
    for seed in seeds:
        out = None if options.out is None else Path(options.out) / f"seed-{seed}"
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        task_options = dataclasses.replace(options, seed=seed, out=out)
        futures.append(executor.submit(seed_job, spec, task_options, payloads))
        if on_done is not None:
            futures[-1].add_done_callback(lambda _: on_done())
    reports: list[FuzzReport] = [f.result() for f in futures]  # in seed order: the merge does not depend on timing
    merged = FuzzReport(
        reports[0].handler,
        reports[0].profile,
        seeds[0],
        sum(r.budget for r in reports),
        max_findings=options.max_findings,
        seeds=list(seeds),
    )
    kept: dict[str, Any] = {}
    for report in reports:
        merged.examples += report.examples
        for finding in report.findings:
            if finding.key in kept:
                merged.duplicates += 1
                for written in (finding.recording, finding.expectation):
                    if written is not None:
                        Path(written).unlink(missing_ok=True)
                continue
            kept[finding.key] = finding
            merged.findings.append(finding)
    merged.seconds = time.monotonic() - start
    stops = {r.stopped_by for r in reports}
    merged.stopped_by = "max_findings" if "max_findings" in stops else "budget" if "budget" in stops else "exhausted"
    return merged
