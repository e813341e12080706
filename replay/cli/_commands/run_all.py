"""Replay every recording under the given folders (and files) into one handler, in parallel, with a
progress bar on stderr and a summary: how many reproduced their crash, crashed otherwise, ran clean,
diverged from the recorded outcomes, or could not be replayed; crashes grouped by signature.

Each replay runs in a handler process under a supervisor (-j N of them, default: one per core): a
handler that hangs (--hang-timeout, whatever it blocks in), exits, dies of a signal or passes
--max-memory costs only its own recording, which lands in the category hung, exited, killed or
out-of-memory, and a new process takes the next one.

--executor dask starts a Dask cluster of -j worker processes on this machine; --executor dask://HOST:PORT
hands the work to a running Dask scheduler (pip install 'nakama-replay[dask]'). Workers get the recordings'
URLs (or absolute paths, which must exist on every worker), results stream back into the same progress and
summary, and a worker lost mid-task costs only its task: it runs again on another worker, and when that one
is lost too the recording is reported as error (the local cluster is set up so; a remote scheduler needs
distributed.scheduler.allowed-failures 1 and worker-saturation 1.0, see docs/workflows/batch.md). --executor
MODULE:FACTORY hands the work to any executor with submit() (FACTORY(jobs) returns it), e.g. a small Ray
adapter; each of its threads supervises its own handler process.
--in-process replays in the executor's processes without a supervisor.

Recordings may live anywhere fsspec reaches: a PATH may be a URL (s3://bucket/prefix/ is listed for *.nkrec;
gs://, memory://, file://), read chunk by chunk, never downloaded whole. Credentials and endpoints come from
the backend's environment (S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE, AWS_ENDPOINT_URL_S3),
never from a URL (one with user:password@ is refused). A recording read from a URL runs only the --handler
given: a handler is never loaded from a URL.

A recording that is not complete (unsealed, damaged, version 1) lands in "incomplete" with what its intact
part showed (unless its handler hung or died there: that category is the answer); --allow-incomplete
sorts it by what that part showed instead, --strict does not replay it."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from replay.cli._args import count, handler_file, positive, whole
from replay.cli._common import (
    EXIT_INCOMPLETE,
    add_integrity_flags,
    add_json_flag,
    add_module_path_flag,
    add_progress_flag,
    add_supervisor_flags,
    hang_timeout,
    limits,
    module_paths,
    print_json,
)

HELP = "replay many recordings in parallel and sum up (reproduced, crashed, clean, diverged, hung, incomplete...)"
EXAMPLES = (
    "nakama-replay run-all fixtures/recordings --handler fixtures/handlers/arena_fixed.py -j 2",
    "nakama-replay run-all recordings/ --handler arena.lua --fail-on reproduced,crashed,error --json",
    "nakama-replay run-all s3://crashes/2026-12/ --handler arena_fixed.py --executor dask://10.0.0.5:8786",
)
EXIT_CODES = {
    0: "no category named by --fail-on fired and every recording was complete",
    1: "a category named by --fail-on (default: error) is not empty",
    3: "else, when a recording is incomplete (no verdict for it)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="recordings, or folders searched for *.nkrec; URLs too (s3://bucket/prefix/ lists the prefix)",
    )
    p.add_argument(
        "--handler", help="handler file for every recording (default: each recording's own, if inside its folder)"
    )
    p.add_argument(
        "-j", "--jobs", type=positive, default=None, metavar="N", help="worker processes (default: one per core)"
    )
    p.add_argument(
        "--executor",
        default="process",
        metavar="KIND",
        help="process (default), thread, serial, dask (a local Dask cluster of -j workers), dask://HOST:PORT, or "
        "MODULE:FACTORY",
    )
    p.add_argument("--seed", type=whole, default=0, help="seed for values a recording does not hold (default 0)")
    p.add_argument("--until-tick", type=count, metavar="N", help="replay only calls up to tick N")
    p.add_argument(
        "--fail-on",
        default="error",
        metavar="CATS",
        help="comma list of categories that make the exit status 1 (default: error)",
    )
    add_progress_flag(p)
    add_module_path_flag(p)
    add_supervisor_flags(p)
    add_integrity_flags(p)
    add_json_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.errors import NakamaReplayError
    from replay.cli._progress import Progress
    from replay.regression._batch import (
        CATEGORIES,
        check_recorded_handlers,
        find_recordings,
        load_executor,
        run_all,
    )
    from replay.report._regression import format_run_all

    fail_on = {c.strip() for c in args.fail_on.split(",") if c.strip()}
    unknown = fail_on - set(CATEGORIES)
    if unknown:
        raise NakamaReplayError(
            f"--fail-on: unknown categories {', '.join(sorted(unknown))}; use {', '.join(CATEGORIES)}"
        )
    if args.strict and args.allow_incomplete:
        raise NakamaReplayError("--strict and --allow-incomplete contradict each other: pick one")
    recordings = find_recordings(args.paths)
    if not recordings:
        raise NakamaReplayError(f"no .nkrec recordings under {', '.join(args.paths)}")
    if args.handler is not None:
        handler_file(args.handler)  # once, before the batch, not once per recording
    else:
        check_recorded_handlers(recordings)  # before any replay: a header naming a file outside is exit 2
    jobs = args.jobs or os.cpu_count() or 1
    supervised = not args.in_process
    kind = "serial" if jobs == 1 and args.executor == "process" else args.executor
    executor = load_executor(kind, jobs, supervised=supervised)
    display = Progress("run-all", len(recordings), unit="recording", enabled=not args.no_progress)
    progress = None if args.no_progress else _counting(display)
    options = {
        "seed": args.seed,
        "hang_timeout": hang_timeout(args),
        "until_tick": args.until_tick,
        "allow_incomplete": args.allow_incomplete,
        "strict": args.strict,
        "module_path": module_paths(args),
    }
    try:
        summary = run_all(
            recordings,
            args.handler,
            options=options,
            executor=executor,
            progress=progress,
            limits=limits(args) if supervised else None,
        )
    finally:
        display.close()
        shutdown = getattr(executor, "shutdown", None)
        if shutdown is not None:
            shutdown(wait=True)
    if args.json:
        print_json(summary.to_json())
    else:
        where = getattr(executor, "where", None) or args.executor
        print(format_run_all(summary, args.handler, jobs, where), end="")
    counts = summary.counts
    if any(counts[c] for c in fail_on):
        return 1
    return EXIT_INCOMPLETE if counts["incomplete"] else 0


def _counting(display: Any) -> Callable[[str], None]:
    """``run_all``'s ``progress(category)``: one more recording done, and the counts so far."""
    from replay.regression._batch import CATEGORIES

    counts: Counter[str] = Counter()

    def update(category: str) -> None:
        counts[category] += 1
        shown = (k for k in CATEGORIES if counts[k] or k in CATEGORIES[:4])
        display.advance(status="  ".join(f"{k} {counts[k]}" for k in shown))

    return update
