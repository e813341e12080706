"""The text of a batch replay (``run-all``) and of a bisection, from their results."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replay.regression._batch import BatchSummary
    from replay.regression._bisect import BisectResult, Step, Version

__all__ = ["format_bisect", "format_bisect_start", "format_bisect_step", "format_run_all"]

_NOT_CLEAN_SHOWN = 50


def format_run_all(summary: BatchSummary, handler: str | None, jobs: int, executor: str, cwd: str | None = None) -> str:
    """A ``BatchSummary``: where it ran, the count per category, the crash signatures and the recordings
    that are not clean (the first 50). Paths under ``cwd`` (default: the current folder) are shown relative."""
    base = os.getcwd() if cwd is None else cwd

    def show(path: str) -> str:
        rel = os.path.relpath(path, base)
        return path if rel.startswith("..") else rel

    where = (
        f"{jobs} processes"
        if executor == "process" and jobs > 1
        else executor
        if executor != "process"
        else "1 process"
    )
    out = [f"replayed {len(summary.results)} recordings into {handler or 'their own handlers'} ({where})"]
    if handler is None:
        used = Counter(r["handler"] for r in summary.results if r.get("handler"))
        for path, n in sorted(used.items()):
            out.append(f"  handler {show(path)} ({n} recording{'s' if n != 1 else ''})")
    out.append("")
    for name, n in summary.counts.items():
        out.append(f"  {name:<13} {n:>6}")
    if summary.signatures:
        out.append("\ncrash signatures:")
        for g in summary.signatures:
            out.append(f"  {g['hash']}  {g['count']:>5}  {g['key']}   e.g. {show(g['recordings'][0])}")
    others = [r for r in summary.results if r["category"] != "clean"]
    if others:
        out.append("\nnot clean:")
        for r in others[:_NOT_CLEAN_SHOWN]:
            out.append(f"  {r['category']:<13} {show(r['path'])}: {r['detail']}")
        if len(others) > _NOT_CLEAN_SHOWN:
            out.append(f"  ... and {len(others) - _NOT_CLEAN_SHOWN} more (--json lists all)")
    return "\n".join(out) + "\n"


def format_bisect_start(versions: Sequence[Version]) -> str:
    """The line a bisection starts with: how many versions, the good and the bad end."""
    return f"bisecting {len(versions)} versions: {versions[0].name} (good) .. {versions[-1].name} (bad)\n"


def format_bisect_step(step: Step) -> str:
    """One tested version: its index, name, verdict and why."""
    return f"  [{step.index:>3}] {step.version.name:<40} {step.verdict.upper():<5} {step.why}\n"


def format_bisect(result: BisectResult) -> str:
    """A ``BisectResult``: how many versions were tested, then the first bad one and how to reproduce it, or
    why none was named (not found, or aborted)."""
    out = [f"\n{len(result.steps)} versions tested of {len(result.versions)}"]
    if result.first_bad is not None:
        out += [f"FIRST BAD: {result.first_bad.name}", f"  {result.message}", f"reproduce: {result.reproduce}"]
    else:
        out.append(("ABORTED: " if result.aborted else "NOT FOUND: ") + result.message)
    return "\n".join(out) + "\n"
