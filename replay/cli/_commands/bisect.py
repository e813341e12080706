"""Find the first handler or client version that brings a recorded crash (or divergence), in about
log2(N) replays, with git bisect's rules: the first version is good, the last bad, a version that
cannot be tested (its handler does not load, or --run exits 125) is skipped.

Versions, oldest first, from one of:
  --handler-file PATH --revs GOOD..BAD   the handler's git history (each revision's folder is taken with
                                         git archive into a temporary folder: same file name, siblings too)
  --handlers DIR                         one handler file per version in DIR (or one sub-folder per
                                         version holding --handler-name), by version key or --order name
  --versions V1 V2 ... --run CMD         client (or any) versions; CMD decides

By default a version is bad when the recording's crash happens again with the same signature (callback,
error type, top frame; see replay.runtime._signature); a different crash at or before the recorded tick hides the
one looked for, so that version is skipped, and a different crash after it is good ("not this crash").
--predicate diverges: bad when the replay's outcomes differ from the recorded ones.

--run CMD replaces the replay by a shell command with {version}, {recording} and {handler} filled in:
exit 0 good, 125 skip, 1..127 bad, above 127 abort, as `git bisect run` reads them, with one difference:
126 (cannot execute) and 127 (command not found) abort the bisection with exit 2 naming the command,
where git bisect run counts them as bad. Those are the shell's answers for a command that never ran (a
typo, a missing build, a script without its execute bit); counting them as bad would name a first bad
version that nothing tested. The command's program is also checked before the first step.

-j K with --run tests K versions side by side per round (k-ary bisection: the K versions nearest the points
that cut the open range into K + 1 equal parts; then the first bad one and the last good one below it
close the range). That takes about log(N)/log(K+1) rounds instead of log2(N) steps, for about K times as
many tests: worth it when one test is slow (a client build driven through a match) and K machines or cores
are free. --executor dask runs the K commands on a local Dask cluster, dask://HOST:PORT on a running one
(the command, the recording and {handler} paths must then exist on the workers). Replays (no --run) test one
version at a time.

A handler file at the top of its repository is found at every revision that has it (its .py, .lua, .js
and .ts siblings come along); a handler in a folder brings the whole folder.

Only a complete recording is bisected: an unsealed, damaged or version-1 one is refused with exit 3
(its crash marker or later calls may be missing), unless --allow-incomplete.

Each replay runs in a handler process under a supervisor: a version whose handler hangs (whatever it
blocks in), exits, segfaults or passes --max-memory is judged by that ending at its callback and tick
(another crash before the recorded one: skip; after it: good), and the bisection carries on."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING

from replay.cli._args import input_location, positive, whole
from replay.cli._common import (
    add_integrity_flags,
    add_json_flag,
    add_module_path_flag,
    add_progress_flag,
    add_supervisor_flags,
    hang_timeout,
    integrity_gate,
    limits,
    module_paths,
    print_json,
)
from replay.report._regression import format_bisect, format_bisect_start, format_bisect_step

if TYPE_CHECKING:
    from collections.abc import Callable

    from replay.regression._bisect import CommandTest, GitSource, ReplayTest, Step, Version

HELP = "find the first handler or client version that brings the crash (git bisect over versions)"
EXAMPLES = (
    "nakama-replay bisect REC --handler-file modules/arena.lua --revs v1.3.0..HEAD",
    "nakama-replay bisect REC --handlers releases/ --handler-name arena.py",
    'nakama-replay bisect REC --versions 1.4.0 1.4.1 1.5.0 --run "./drive-client {version} {recording}"',
)
EXIT_CODES = {
    0: "first bad version found",
    1: "none found (only skipped versions left, or --check-ends found the last version good)",
    2: "bad input or aborted (a --run command that cannot run included)",
    3: "the recording is not complete",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="the recording whose crash (or outcomes) decides good and bad")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--handler-file", metavar="PATH", help="the handler file in a git work tree (with --revs)")
    src.add_argument("--handlers", metavar="DIR", help="a folder with one handler file (or sub-folder) per version")
    src.add_argument("--versions", nargs="+", metavar="V", help="version strings, oldest first (with --run)")
    p.add_argument("--revs", metavar="GOOD..BAD", help="revision range for --handler-file, e.g. v1.3.0..HEAD")
    p.add_argument(
        "--order",
        choices=("version", "name"),
        default="version",
        help="order of --handlers entries (default: version key)",
    )
    p.add_argument("--handler-name", metavar="NAME", help="handler file inside each --handlers sub-folder")
    p.add_argument("--run", metavar="CMD", help="shell command deciding each version: {version} {recording} {handler}")
    p.add_argument(
        "--predicate", choices=("crash", "diverges"), default="crash", help="what makes a version bad (default: crash)"
    )
    p.add_argument("--check-ends", action="store_true", help="also test the first (good) and last (bad) versions")
    p.add_argument(
        "-j",
        "--jobs",
        type=positive,
        default=1,
        metavar="K",
        help="with --run: versions tested side by side per round, k-ary bisection (default: %(default)s)",
    )
    p.add_argument(
        "--executor",
        default="thread",
        metavar="KIND",
        help="with -j: where the K commands run: thread (this machine, default), dask (a local Dask cluster of K "
        "workers) or dask://HOST:PORT",
    )
    p.add_argument("--seed", type=whole, default=0, help="seed for values the recording does not hold (default 0)")
    add_module_path_flag(p)
    add_supervisor_flags(p)
    add_integrity_flags(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.errors import OptionError
    from replay.errors import BisectError
    from replay.regression import _bisect as b
    from replay.regression._dask import is_dask_spec
    from replay.runtime._runtime import ReplayOptions

    input_location(args.recording, "recording")
    if args.handler_file and not args.revs:
        raise BisectError("--handler-file needs --revs GOOD..BAD")
    if args.revs and not args.handler_file:
        raise BisectError("--revs goes with --handler-file")
    if args.versions and not args.run:
        raise BisectError("--versions needs --run CMD: only the command can tell good from bad for them")
    if args.jobs > 1 and not args.run:
        raise OptionError(
            "-j", args.jobs, "tests several versions at once only with --run CMD; replays go one at a time"
        )
    if args.executor != "thread" and args.jobs == 1:
        raise OptionError("--executor", args.executor, "needs -j K above 1 (versions tested side by side)")
    if args.executor != "thread" and not is_dask_spec(args.executor):
        raise OptionError("--executor", args.executor, "use thread, dask or dask://HOST:PORT")
    module_path = module_paths(args)
    integrity_gate(args.recording, args, refuse=True)  # no bisect verdict from an incomplete recording
    materialiser = source = None
    if args.handler_file:
        source, versions = b.git_versions(args.handler_file, args.revs)
        materialiser = b.Materialiser(source)
        handler_for = materialiser
    elif args.handlers:
        versions = b.folder_versions(args.handlers, order=args.order, handler_name=args.handler_name)
        handler_for = None
    else:
        versions = b.named_versions(args.versions)
        handler_for = None
    test: b.CommandTest | b.ReplayTest
    try:
        if args.run:
            test = b.CommandTest(args.run, args.recording, handler_for)
            test.check(versions[0])
        else:
            options = ReplayOptions(
                seed=args.seed,
                hang_timeout=hang_timeout(args),
                allow_incomplete=args.allow_incomplete,
                module_path=module_path,
            )
            test = b.ReplayTest(
                args.recording,
                predicate=args.predicate,
                options=options,
                handler_for=handler_for,
                limits=None if args.in_process else limits(args),
            )
        if not args.json:
            print(format_bisect_start(versions), end="")
        on_step = None if args.json else _print_step
        if args.jobs > 1 and isinstance(test, b.CommandTest):
            from replay.regression._batch import load_executor

            executor = load_executor(args.executor, args.jobs)
            try:
                command_test = test
                result = b.kary_bisect(
                    versions,
                    lambda chosen: command_test.many(chosen, executor),
                    args.jobs,
                    check_ends=args.check_ends,
                    on_step=on_step,
                )
            finally:
                shutdown = getattr(executor, "shutdown", None)
                if shutdown is not None:
                    shutdown()
        else:
            steps = (
                test if isinstance(test, b.CommandTest) or args.no_progress else _with_progress(test, args.recording)
            )
            result = b.bisect(versions, steps, check_ends=args.check_ends, on_step=on_step)
    finally:
        if materialiser is not None:
            materialiser.close()
        close = getattr(locals().get("test"), "close", None)
        if close is not None:
            close()
    if result.first_bad is not None:
        result.reproduce = _reproduce(args, result.first_bad, test, source)
    if args.json:
        print_json(result.to_json())
    else:
        print(format_bisect(result), end="")
    if result.aborted:
        return 2
    return 0 if result.first_bad is not None else 1


def _with_progress(test: ReplayTest, recording: str) -> Callable[[Version], tuple[str, str]]:
    """``test`` showing the replay's ticks within each step on stderr (``replay.cli._progress``)."""
    from replay.cli._progress import replay_progress

    done = [0]

    def step(version: Version) -> tuple[str, str]:
        done[0] += 1
        label = f"bisect step {done[0]}: {version.name}"
        with replay_progress(recording, enabled=True, passes=(label,), worker=test.worker):
            return test(version)

    return step


def _reproduce(
    args: argparse.Namespace, version: Version, test: CommandTest | ReplayTest, source: GitSource | None
) -> str:
    """A shell command that shows the first bad version misbehaving."""
    from replay.regression import _bisect as b

    prefix, handler = source.checkout_command(version) if source is not None else ("", version.handler)
    if isinstance(test, b.CommandTest):
        command = test.command(version, handler)
    else:
        command = f"nakama-replay reproduce {shlex.quote(args.recording)} --handler {shlex.quote(handler)}"
        command += "".join(f" --module-path {shlex.quote(os.path.abspath(d))}" for d in args.module_path)
    return f"{prefix} && {command}" if prefix else command


def _print_step(step: Step) -> None:
    print(format_bisect_step(step), end="")
    sys.stdout.flush()
