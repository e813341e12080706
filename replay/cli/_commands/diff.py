"""Find the first call where a match goes wrong, and say what differs there: the tick and callback, its
inputs, the outcome fields (join verdict, broadcasts, kicks, label updates, reply, stop, crash) and the
state paths with both values (the first 20, then a count).

Pick one mode:
  --recorded       the replay against what the recording holds (outcomes and state digests of every call,
                   state fields where it has snapshots); a crash the recording also has is not a divergence
  --against B      handler --handler (side a) against handler B (side b) over the same recorded inputs
  --determinism    sync test: every call runs twice from a deep copy and must give the same result (catches
                   the wall clock and the global random module at their first call); then two whole replays
                   with different PYTHONHASHSEED values must agree (catches iteration over sets)

Floats compare bit for bit unless --float-tolerance is given: "1e-9" or "rel=1e-9" (relative), "abs=1e-6",
or both ("rel=1e-9,abs=1e-12"); NaN equals NaN when the bits match.

Both runs go to the end of the recording or there is no verdict: a run that crashes, hangs or stops
first (and the handler processes of the supervisor: a callback blocked past --hang-timeout, an exit, a
segfault, --max-memory) is the answer, with the run, callback and tick.

Only a complete recording gives a verdict: an unsealed, damaged or version-1 one is compared as far as it
is intact, and the answer is "incomplete" (exit 3), with what the intact part showed (a divergence found
there included); --allow-incomplete draws the verdict from the intact part, --strict refuses it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from replay.cli._args import count, input_dir, input_location, whole
from replay.cli._common import (
    add_integrity_flags,
    add_json_flag,
    add_progress_flag,
    add_supervisor_flags,
    hang_timeout,
    integrity_gate,
    limits,
    print_json,
)

if TYPE_CHECKING:
    from replay.diff._calls import MatchDiff

HELP = "first divergent tick and what diverged: replay vs recording, handler vs handler, or a sync test"
EXAMPLES = (
    "nakama-replay diff fixtures/recordings/arena-reconnect-crash.nkrec --handler fixtures/handlers/arena.py --against fixtures/handlers/arena_fixed.py",
    "nakama-replay diff REC --handler fixtures/handlers/arena_nondeterministic.py --determinism --json",
)
EXIT_CODES = {
    0: "no divergence",
    1: "divergence or a run that stopped before the end",
    2: "bad input (unreadable recording, handler that does not load, a state with no canonical form, a bad tolerance)",
    3: "incomplete recording: no verdict",
}


def _tolerance(text: str) -> Any:
    from replay.diff._state import Tolerance

    try:
        return Tolerance.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a handler-call recording (.nkrec)")
    p.add_argument("--handler", help="handler file, side a (default: the header's, if inside the recording's folder)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--recorded", action="store_true", help="compare the replay with the recording")
    mode.add_argument("--against", metavar="B", help="compare with handler B over the same inputs")
    mode.add_argument("--determinism", action="store_true", help="sync test: each call twice, then two hash seeds")
    p.add_argument(
        "--float-tolerance", type=_tolerance, metavar="TOL", help='"rel=X", "abs=X" or both (default: exact)'
    )
    p.add_argument(
        "--no-hash-seed-pass", action="store_true", help="--determinism: skip the two PYTHONHASHSEED replays"
    )
    p.add_argument(
        "--limit", type=count, default=20, metavar="N", help="state paths to list (default 20; all are counted)"
    )
    p.add_argument("--until-tick", type=count, metavar="N", help="compare only calls up to tick N")
    p.add_argument("--seed", type=whole, default=0, help="seed for values the recording does not hold (default 0)")
    p.add_argument(
        "--module-path", action="append", default=[], metavar="DIR", help="extra folder for Lua require (repeatable)"
    )
    add_supervisor_flags(p)
    add_integrity_flags(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from replay.cli._progress import replay_progress
    from replay.diff import _calls as match_diff
    from replay.report._text import format_diff
    from replay.runtime._runtime import ReplayOptions

    input_location(args.recording, "recording")
    for folder in args.module_path:
        input_dir(folder, "--module-path folder")
    integrity_gate(args.recording, args)
    options = ReplayOptions(
        seed=args.seed,
        until_tick=args.until_tick,
        hang_timeout=hang_timeout(args),
        module_path=args.module_path,
        allow_incomplete=args.allow_incomplete,
    )
    tol = args.float_tolerance
    passes: tuple[str, ...]
    job_args: tuple[Any, ...]
    result: MatchDiff
    if args.recorded:
        job, job_args = "diff_recorded", (args.recording, args.handler, options, tol)
        sides = (f"recording {args.recording}", f"replay into {args.handler or 'its handler'}")
        passes = ("diff: replay against the recording",)
    elif args.against:
        job, job_args = "diff_against", (args.recording, args.handler, args.against, options, tol)
        sides = (f"handler {args.handler or 'named by the recording'}", f"handler {args.against}")
        passes = ("diff: side a", "diff: side b")
    else:
        seeds = None if args.no_hash_seed_pass else ("1", "2")
        job, job_args = "diff_determinism", (args.recording, args.handler, options, tol, seeds)
        sides = (f"{args.handler or 'its handler'}, first run", f"{args.handler or 'its handler'}, second run")
        passes = ("diff: each call twice", *(f"diff: PYTHONHASHSEED={seed}" for seed in seeds or ()))
    shown = {"enabled": not args.no_progress, "passes": passes, "until_tick": args.until_tick}
    if args.in_process:
        with replay_progress(args.recording, **shown):
            result = getattr(match_diff, job)(*job_args, limit=args.limit)
    else:
        result = _supervised(job, job_args, args, sides, shown)
    if result.integrity is None:  # a run's handler process died before the diff could say
        result = match_diff.judge(result, args.recording, options)
    if args.json:
        print_json(result.to_json())
    else:
        print(format_diff(result), end="")
    return result.exit_code


def _supervised(
    job: str, job_args: tuple[Any, ...], args: argparse.Namespace, sides: tuple[str, str], shown: dict[str, Any]
) -> Any:
    """The diff in a supervised handler process; a hang or death of it is the answer."""
    from replay.cli._progress import replay_progress
    from replay.diff import _calls as match_diff
    from replay.errors import HandlerDied
    from replay.runtime._supervisor import HandlerProcess

    lim = limits(args)
    extra: tuple[Any, ...] = (args.limit,) if job != "diff_determinism" else (args.limit, lim)
    with HandlerProcess(lim) as worker, replay_progress(args.recording, worker=worker, **shown):
        try:
            result: MatchDiff = worker.call(f"replay.diff._calls:{job}", *job_args, *extra)
            return result
        except HandlerDied as exc:
            return match_diff.died(job.removeprefix("diff_"), exc.death, *sides)
