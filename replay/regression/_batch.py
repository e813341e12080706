"""Replay many recordings at once, on local processes or on any executor, and sum up how they ended.

Each recording lands in one category:

- ``reproduced``: the replay crashed (or hung) as the recording says;
- ``crashed``: the replay crashed otherwise (a crash the recording lacks, or another one);
- ``clean``: no crash and every recorded outcome equal;
- ``diverged``: no crash, but outcomes differ from the recorded ones (a recorded crash that no longer
  happens counts here);
- ``hung``, ``exited``, ``killed``, ``out-of-memory``: the handler hung past the hang timeout, or its
  process exited, died of a signal or ran out of memory (``replay.runtime._supervisor``), unless the recording
  says it ended that way (then ``reproduced``);
- ``incomplete``: the recording is not complete (unsealed, damaged, version 1), so no verdict was drawn
  (``allow_incomplete`` draws one from its intact part; ``strict`` does not replay it at all);
- ``error``: the replay could not run (unreadable recording, handler that does not load, wire recording).

Each replay runs in a supervised handler process (``replay.runtime._supervisor``): every executor thread (or the
calling thread, serially) keeps its own worker process and replaces it after a death, so a handler that
hangs, exits or segfaults costs only its own recording and the batch carries on. ``limits=None`` replays
in the executor's own process instead (the old way: a process pool by default).

The executor is pluggable. ``run_all`` needs only ``executor.submit(fn, *args)`` returning a future with
``result()``; ``concurrent.futures`` futures are collected as they complete, others in submission order.
Supervised handler processes on threads are the default; ``dask`` / ``dask://HOST:PORT`` is built in
(``replay.regression._dask``: a worker lost mid-task costs only that task, retried once), and Ray goes through
a three-line adapter (``ray.remote(fn).remote(*args).future()``). Workers receive recording locations as given
(URLs such as ``s3://...``, which each worker opens with its own credentials, or absolute paths) and return
plain dicts; handlers and nakama-replay must be installed at the same path on every worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recorder.errors import NakamaReplayError

__all__ = [
    "CATEGORIES",
    "BatchSummary",
    "Executor",
    "SerialExecutor",
    "check_recorded_handlers",
    "find_recordings",
    "load_executor",
    "batch_size",
    "reproduce_many",
    "reproduce_one",
    "run_all",
]

_DEFAULT_LIMITS: Any = object()

CATEGORIES = (
    "reproduced",
    "crashed",
    "clean",
    "diverged",
    "hung",
    "exited",
    "killed",
    "out-of-memory",
    "incomplete",
    "error",
)
_DEATHS = ("hung", "exited", "killed", "out-of-memory")


class Executor(Protocol):
    """What ``run_all`` needs from an executor (``concurrent.futures.Executor`` has it)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...


class SerialExecutor:
    """Runs each job at once in this process (``-j 1``): futures that are already done."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def load_executor(spec: str, jobs: int, *, supervised: bool = True) -> Any:
    """``process``, ``thread``, ``serial``, ``dask`` (a local cluster of ``jobs`` worker processes),
    ``dask://HOST:PORT`` (a running Dask scheduler: ``replay.regression._dask``), or ``package.module:factory``
    called as ``factory(jobs)``.

    ``process`` is ``jobs`` threads each supervising a handler process (``supervised``), or without
    supervision a ``ProcessPoolExecutor`` replaying in its own processes."""
    if spec == "process":
        if supervised:
            return cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nkreplay-supervisor")
        return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    if spec == "thread":
        return cf.ThreadPoolExecutor(max_workers=jobs)
    if spec == "serial":
        return SerialExecutor()
    from replay.regression._dask import DaskExecutor, is_dask_spec

    if is_dask_spec(spec):
        return DaskExecutor(spec, jobs)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise NakamaReplayError(
            f"--executor {spec!r}: use process, thread, serial, dask, dask://HOST:PORT or package.module:factory"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise NakamaReplayError(f"--executor {spec!r}: cannot load it: {exc}") from exc
    executor = factory(jobs)
    if not callable(getattr(executor, "submit", None)):
        raise NakamaReplayError(
            f"--executor {spec!r}: {attr}({jobs}) returned {type(executor).__name__}, which has no submit()"
        )
    return executor


def find_recordings(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Every ``.nkrec`` file named or found below the folders named, absolute, sorted, without repeats.
    A URL (``s3://bucket/prefix/``, ``memory://...``: ``recorder.storage``) names an object or a prefix
    listed for ``*.nkrec``; URLs stay URLs (workers open them), ``file://`` ones become paths."""
    from recorder.storage import check_location, find_files, kind_of, local_path

    found: set[str] = set()
    for location in paths:
        local = local_path(location)
        if local is None:
            check_location(location)
            kind = kind_of(location)
            if kind is None:
                raise NakamaReplayError(f"{location}: nothing at that URL")
            found.update(find_files(str(location), ".nkrec") if kind == "dir" else [str(location)])
            continue
        p = Path(local)
        if p.is_dir():
            found.update(str(f.resolve()) for f in p.rglob("*.nkrec") if f.is_file())
        elif p.is_file():
            found.add(str(p.resolve()))
        else:
            raise NakamaReplayError(f"{p}: no such file or folder")
    return sorted(found)


def check_recorded_handlers(recordings: Sequence[str]) -> None:
    """Raise ``UntrustedHandler`` for the first recording whose header names a handler outside its own
    folder (``replay.runtime._handlers.recorded_handler``), before a batch starts. Recordings that cannot be read
    or name a missing handler are left to the batch, which reports each as an error."""
    from recorder.format import open_recording
    from replay.errors import UntrustedHandler
    from replay.runtime._handlers import recorded_handler

    refused: list[UntrustedHandler] = []
    for path in recordings:
        try:
            with open_recording(path) as rec:
                named = rec.header.handler
            if named:
                recorded_handler(path, named)
        except UntrustedHandler as exc:
            refused.append(exc)
        except NakamaReplayError:
            continue
    if refused:
        first = refused[0]
        if len(refused) > 1:
            first.args = (f"{first} ({len(refused) - 1} more recordings name handlers outside their folders)",)
        raise first


def reproduce_one(path: str, handler: str | None, options: dict[str, Any], limits: Any = None) -> dict[str, Any]:
    """Replay one recording and describe the result as a plain dict (runs on an executor). ``limits``
    (``replay.runtime.Limits``): in this thread's supervised handler process; None: in this process.
    ``options`` are ``ReplayOptions`` fields, plus ``strict``: a recording that is not complete is not
    replayed."""
    from recorder.format import verify
    from replay.runtime._isolation import reproduce_isolated
    from replay.runtime._runtime import ReplayOptions
    from replay.runtime._signature import CrashSignature

    out: dict[str, Any] = {"path": path}
    options = dict(options)
    strict = options.pop("strict", False)
    try:
        if strict:
            integrity = verify(path)
            if not integrity.complete:
                return dict(
                    out,
                    category="incomplete",
                    detail=f"not replayed (--strict): {integrity.describe()}",
                    integrity=integrity.state,
                )
        if limits is None:
            r = reproduce_isolated(path, handler, ReplayOptions(**options))
        else:
            from replay.runtime._supervisor import reproduce_supervised, thread_worker

            r = reproduce_supervised(path, handler, ReplayOptions(**options), process=thread_worker(limits))
    except NakamaReplayError as exc:
        return dict(out, category="error", detail=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # one broken recording must not stop the batch
        return dict(out, category="error", detail=f"unexpected {type(exc).__name__}: {exc}")
    c = r.crash
    if r.outcome in _DEATHS and not r.reproduced:  # the handler's death is the answer, complete or not
        category = r.outcome
    elif r.status == "incomplete":
        category = "incomplete"
    elif r.reproduced:
        category = "reproduced" if c is not None else "clean"
    else:
        category = "crashed" if c is not None else "diverged"
    sig = CrashSignature.from_result(r)
    first = r.divergences[0] if r.divergences else None
    return dict(
        out,
        handler=r.handler,
        category=category,
        detail=r.verdict,
        outcome=r.outcome,
        ticks=r.ticks_replayed,
        crash=None
        if c is None
        else {
            "callback": c.callback,
            "tick": c.tick,
            "error": c.error.strip().splitlines()[0] if c.error.strip() else "",
        },
        signature=None if sig is None else sig.to_json(),
        divergences=r.divergence_count,
        first_divergence=None
        if first is None
        else {"tick": first.tick, "callback": first.callback, "field": first.field},
        process=None if r.death is None else r.death.to_json(),
        integrity=None if r.integrity is None else r.integrity.state,
        mismatch=list(r.mismatch),
    )


@dataclass(slots=True)
class BatchSummary:
    """All results (sorted by path), counts per category, and crashes grouped by signature."""

    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r["category"] for r in self.results)
        return {k: c.get(k, 0) for k in CATEGORIES}

    @property
    def signatures(self) -> list[dict[str, Any]]:
        """Crash signatures, most frequent first: key, hash, count and up to three recordings."""
        groups: dict[str, dict[str, Any]] = {}
        for r in self.results:
            sig = r.get("signature")
            if sig:
                g = groups.setdefault(
                    sig["key"], {"key": sig["key"], "hash": sig["hash"], "count": 0, "recordings": []}
                )
                g["count"] += 1
                if len(g["recordings"]) < 3:
                    g["recordings"].append(r["path"])
        return sorted(groups.values(), key=lambda g: (-g["count"], g["key"]))

    def to_json(self) -> dict[str, Any]:
        return {
            "total": len(self.results),
            "counts": self.counts,
            "signatures": self.signatures,
            "results": self.results,
        }


def run_all(
    recordings: Sequence[str],
    handler: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    executor: Any = None,
    jobs: int | None = None,
    progress: Callable[[str], None] | None = None,
    limits: Any = _DEFAULT_LIMITS,
) -> BatchSummary:
    """Replay each recording into ``handler`` (None: each recording's own) on ``executor`` (default:
    ``jobs`` supervised handler processes, ``os.cpu_count()`` when None). ``options`` are
    ``ReplayOptions`` fields. ``limits`` (``replay.runtime.Limits``; default: the hang timeout of
    ``options`` and the default memory cap) supervise each replay; None replays unsupervised.
    ``progress(category)`` is called as each replay finishes."""
    handler = None if handler is None else _absolute_spec(handler)
    options = dict(options or {})
    if limits is _DEFAULT_LIMITS:
        from replay.runtime._supervisor import Limits

        hang = options.get("hang_timeout", 5.0)
        limits = Limits(hang if hang else None)
    owned = executor is None
    if owned:
        if jobs == 1:
            executor = SerialExecutor()
        else:
            executor = load_executor("process", jobs or os.cpu_count() or 1, supervised=limits is not None)
    summary = BatchSummary()
    size = batch_size(executor, len(recordings))
    try:
        groups = [list(recordings[i : i + size]) for i in range(0, len(recordings), size)]
        futures = {executor.submit(reproduce_many, group, handler, options, limits): group for group in groups}
        while futures:
            if all(isinstance(f, cf.Future) for f in futures):
                finished: Iterable[Any] = cf.as_completed(futures)
            else:
                finished = list(futures)
            retry: dict[Any, list[str]] = {}
            for future in finished:
                group = futures[future]
                try:
                    results = future.result()
                except Exception as exc:  # a worker that died (or a cluster error)
                    if len(group) > 1:  # each recording again in a task of its own: one bad apple costs only itself
                        retry.update(
                            (executor.submit(reproduce_many, [path], handler, options, limits), [path])
                            for path in group
                        )
                        continue
                    results = [
                        {"path": group[0], "category": "error", "detail": f"worker failed: {type(exc).__name__}: {exc}"}
                    ]
                for result in results:
                    summary.results.append(result)
                    if progress is not None:
                        progress(result["category"])
            futures = retry
    finally:
        if owned:
            executor.shutdown(wait=True)
    summary.results.sort(key=lambda r: r["path"])
    return summary


def reproduce_many(
    paths: Sequence[str], handler: str | None, options: dict[str, Any], limits: Any = None
) -> list[dict[str, Any]]:
    """``reproduce_one`` for each of ``paths``, in one task (``batch_size``)."""
    return [reproduce_one(path, handler, options, limits) for path in paths]


#: recordings per task on a cluster: enough tasks per worker that the last ones end together (16), at most 8 per task
_TASKS_PER_WORKER, _MAX_BATCH = 16, 8


def batch_size(executor: Any, recordings: int) -> int:
    """Recordings per task: 1 on this machine's executors (a task costs microseconds there); on a cluster
    (``executor.workers`` set, as ``DaskExecutor`` does) up to ``_MAX_BATCH`` so that each task's round trip
    through the scheduler is paid once for several replays, while every worker still gets ``_TASKS_PER_WORKER``
    tasks or more (a sweep's last tasks end close together). A task whose worker is lost is split: its
    recordings run again one per task, so a recording that kills workers costs only itself."""
    workers = getattr(executor, "workers", None)
    if not isinstance(workers, int) or workers < 1:
        return 1
    return max(1, min(_MAX_BATCH, recordings // (workers * _TASKS_PER_WORKER)))


def _absolute_spec(spec: str) -> str:
    from replay.runtime._handlers import split_spec

    path, cls = split_spec(spec)
    full = str(path.resolve())
    return f"{full}:{cls}" if cls else full
