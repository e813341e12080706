"""Search generated matches for handler failures (crashes, hangs, broadcasts to presences that are not
in the match, broken invariants) and write each distinct one as a minimal recording.

Generated matches churn on purpose: joins with client versions in the metadata, duplicate join
requests, leaves with each reason, reconnects that overtake the old session's leave, messages from
sessions about to leave, bursts past the input queue, signals, server shutdown. Describe your clients
with --payloads MODULE (op codes, payload shapes per client version, init params, signals, invariants;
see replay/fuzz/_strategies.py); without it, op codes 1..8 carry JSON values or arbitrary bytes.

The search stops when --max-examples matches were generated or --max-findings distinct failures
were found (the report says when the cap ended it, with part of the budget left).

For each distinct failure it writes OUT/NAME.nkrec (the shrunk stream: removing any single call makes the
failure go away) and, for crashes, OUT/NAME.expect.toml for the regression plugin, and prints the
`nakama-replay reproduce` command. The same --seed finds the same failures; the example database in
OUT/.hypothesis makes the next run start from the failures already found.

Matches play in a handler process under a supervisor: a match whose handler blocks in C past
--hang-timeout, exits, segfaults or passes --max-memory is a failure like a crash (keyed
callback|Hang|?, callback|HandlerExit|?, callback|FatalSignalError|?, callback|MemoryError|...), found,
shrunk and written the same way, and the search goes on in a new process.

--seeds K runs K independent searches (seeds SEED..SEED+K-1, each with the whole --max-examples and
--max-findings) in parallel: on -j processes here, or with --executor dask / dask://HOST:PORT on a Dask
cluster (OUT must then be a folder every worker reaches at the same path). Each writes under OUT/seed-N/; the
report lists each distinct failure once (the lowest seed's finding kept, the others' files removed)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from replay.cli._args import output_dir, positive, whole
from replay.cli._common import (
    add_json_flag,
    add_module_path_flag,
    add_out_flag,
    add_progress_flag,
    add_supervisor_flags,
    default_output_help,
    hang_timeout,
    module_paths,
    print_json,
    resolve_output_dir,
)

if TYPE_CHECKING:
    from replay.fuzz._fuzz import FuzzOptions, FuzzReport

HELP = "search generated matches for crashes and write minimal recordings of them"
EXAMPLES = (
    "nakama-replay fuzz --handler fixtures/handlers/arena.py --payloads fixtures/handlers/arena_payloads.py",
    "nakama-replay fuzz --handler fixtures/handlers/arena_fixed.py --payloads fixtures/handlers/arena_payloads.py -o found/",
    "nakama-replay fuzz --handler arena.lua --payloads arena_payloads.py --seeds 32 --executor dask://10.0.0.5:8786",
)
EXIT_CODES = {
    0: "no failure found",
    1: "failures found",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--handler",
        required=True,
        help="handler file: FILE.py, FILE.py:ClassName, FILE.lua or FILE.js[:MATCH] (FILE.ts is compiled first)",
    )
    p.add_argument(
        "--max-examples", type=positive, default=None, metavar="N", help="matches to generate (default 1000)"
    )
    p.add_argument(
        "--max-findings",
        type=positive,
        default=8,
        metavar="N",
        help="stop after N distinct failures (default 8); the report says when this ended the search",
    )
    p.add_argument(
        "--seed", type=whole, default=0, help="search seed: the same seed finds the same failures (default 0)"
    )
    p.add_argument(
        "--payloads", metavar="MODULE", help="fuzz profile: a .py file or module name (see replay/fuzz/_strategies.py)"
    )
    add_out_flag(
        p,
        "folder for the recordings, expectations and the example database ("
        + default_output_help("fuzz/HANDLER")
        + ")",
        metavar="DIR",
    )
    p.add_argument(
        "--max-actions", type=positive, default=64, metavar="N", help="client actions per match at most (default 64)"
    )
    p.add_argument(
        "--users", type=positive, default=None, metavar="N", help="users per match at most (default: the profile's, 4)"
    )
    p.add_argument("--no-database", action="store_true", help="do not read or write the example database")
    p.add_argument(
        "--no-shrink",
        action="store_true",
        help="skip hypothesis's shrinking (faster; the recording is still minimal, payload values stay as generated)",
    )
    p.add_argument(
        "--allow-absent-targets", action="store_true", help="do not fail broadcasts to presences not in the match"
    )
    p.add_argument(
        "--seeds",
        type=positive,
        default=1,
        metavar="K",
        help="K independent searches, seeds SEED..SEED+K-1, each with the whole budget, merged by failure "
        "(default 1: one search here)",
    )
    p.add_argument(
        "--executor",
        default="process",
        metavar="KIND",
        help="where --seeds K searches run: process (default, -j processes here), dask (a local Dask cluster) "
        "or dask://HOST:PORT",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=positive,
        default=None,
        metavar="N",
        help="processes or workers for --seeds (default: cores)",
    )
    add_progress_flag(p, old=["--quiet"])
    add_module_path_flag(p)
    add_supervisor_flags(p, hang_default=1.0)
    add_json_flag(p)


class _Progress:
    """Fuzz progress through the one progress display (``replay.cli._progress``): matches played of the
    budget, the failures so far and the phase (search, shrink, minimize); a line per finding."""

    def __init__(self, handler: str, enabled: bool) -> None:
        from replay.cli._progress import Progress

        self.display = Progress(f"fuzz {handler}", None, unit="match", enabled=enabled)
        self.findings = 0

    def update(self, examples: int, budget: int, findings: int, phase: str) -> None:
        if findings >= 0:
            self.findings = findings
        bugs = f"{self.findings} failure{'s' if self.findings != 1 else ''}"
        self.display.set(examples, total=budget, status=f"{bugs}, {phase}")

    def found(self, key: str, examples: int, seconds: float) -> None:
        self.display.note(f"found {key} after {examples} matches, {seconds:.1f} s; shrinking")

    def done(self) -> None:
        self.display.close()


def run(args: argparse.Namespace) -> int:
    try:
        from replay.fuzz._fuzz import DEFAULT_MAX_EXAMPLES, FuzzOptions, fuzz
        from replay.fuzz._strategies import load_profile
        from replay.report._text import format_fuzz
    except ImportError as exc:  # hypothesis is the one optional dependency of fuzzing
        print(f"fuzz needs hypothesis: pip install 'nakama-replay[fuzz]' ({exc})", file=sys.stderr)
        return 2

    if args.out is None:  # one folder per handler: its findings and example database are its own
        args.out = resolve_output_dir(args, f"fuzz/{_handler_name(args.handler)}")
    output_dir(args.out)  # before the search, not after it
    profile = load_profile(args.payloads) if args.payloads else None
    options = FuzzOptions(
        max_examples=DEFAULT_MAX_EXAMPLES if args.max_examples is None else args.max_examples,
        seed=args.seed,
        out=args.out,
        profile=profile,
        max_actions=args.max_actions,
        max_users=args.users,
        hang_timeout=hang_timeout(args),
        database=not args.no_database,
        absent_targets=not args.allow_absent_targets,
        shrink=not args.no_shrink,
        max_findings=args.max_findings,
        supervised=not args.in_process,
        max_memory=args.max_memory,
        module_path=module_paths(args),
    )
    if args.seeds > 1:
        report = _fuzz_seeds(args, options)
    else:
        progress = _Progress(args.handler, not args.no_progress)
        try:
            report = fuzz(args.handler, options, progress)
        finally:
            progress.done()
    if args.json:
        print_json(report.to_json())
    else:
        print(format_fuzz(report), end="")
    return 1 if report.findings else 0


def _fuzz_seeds(args: argparse.Namespace, options: FuzzOptions) -> FuzzReport:
    import dataclasses
    import os

    from recorder.errors import NakamaReplayError
    from replay.fuzz._parallel import fuzz_seeds
    from replay.regression._batch import load_executor

    if args.executor != "process" and args.executor != "dask" and not args.executor.startswith("dask"):
        raise NakamaReplayError(f"--executor {args.executor!r}: use process, dask or dask://HOST:PORT")
    if not args.no_progress and not args.json:
        print(
            f"fuzz {args.handler}: {args.seeds} searches, seeds {args.seed}..{args.seed + args.seeds - 1}",
            file=sys.stderr,
        )
    from replay.cli._progress import Progress

    executor = load_executor(args.executor, args.jobs or os.cpu_count() or 1, supervised=False)
    display = Progress(f"fuzz {args.handler}", args.seeds, unit="search", enabled=not args.no_progress)
    try:
        return fuzz_seeds(
            args.handler,
            dataclasses.replace(options, profile=None),
            range(args.seed, args.seed + args.seeds),
            executor,
            payloads=args.payloads,
            on_done=display.advance,
        )
    finally:
        display.close()
        executor.shutdown(wait=True)


def _handler_name(spec: str) -> str:
    """``arena`` for ``path/arena.py:Arena``: the default output folder's last part."""
    from pathlib import Path

    file = spec.rsplit(":", 1)[0] if spec.count(":") and not spec.endswith(":") else spec
    return Path(file).stem or "handler"
