"""Write ticks A..B of a recording as a recording of their own, to share the minute before a crash
instead of the whole match. The slice is a complete (sealed) recording that starts from the match as it
was at tick A: `reproduce`, `diff`, `inspect` and `view` take it like any other.

The state at A comes from the recording's snapshot of the loop before A when it has one (nothing runs),
else from replaying into the handler (--handler, or the one the header names when it lies inside the
recording's folder), in a supervised handler process: the calls after the nearest snapshot before A
when there is one, else (or when that snapshot does not fit) every call before A. That replay must not
crash, stop or diverge from the recording before A. --replay-state replays from the start even where a
snapshot exists (a Python handler then gets its own values back: a snapshot holds numbers as float64).

The output is written whole or not at all (OUT.incomplete.tmp, renamed at the end); its header keeps the
source's handler path only when OUT is in the same folder.

Only a complete recording makes a complete slice: an unsealed, damaged or version-1 recording is
refused (exit 3). With --allow-incomplete the slice is cut from its intact part and written WITHOUT a
seal (its header's tags.slice names source_integrity and not_sliced), so `reproduce` and `inspect` of
the slice say it is incomplete too."""

from __future__ import annotations

import argparse
import sys

from replay.cli._args import count, handler_file, input_dir, input_location, output_location, whole
from replay.cli._common import (
    add_integrity_flags,
    add_json_flag,
    add_progress_flag,
    add_supervisor_flags,
    epilog,
    hang_timeout,
    integrity_gate,
    limits,
    print_json,
)

HELP = "write ticks A..B of a recording as a recording that starts from the state at A"
EXAMPLES = (
    "nakama-replay slice fixtures/recordings/arena-reconnect-crash.nkrec --from-tick 51 --to-tick 58 -o /tmp/last.nkrec",
    "nakama-replay reproduce /tmp/last.nkrec --handler fixtures/handlers/arena.py      # the crash again, at 58",
)
EXIT_CODES = {
    0: "written (with --allow-incomplete also an unsealed slice of an incomplete recording, said on stderr)",
    2: "bad input (a range outside the recording, a replay that cannot reach A)",
    3: "the recording is not complete: refused (--allow-incomplete slices its intact part, unsealed)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "recording", help="a handler-call recording (.nkrec): a path, or a URL (s3://, gs://, memory://, file://)"
    )
    p.add_argument("--from-tick", type=count, required=True, metavar="A", help="the slice's first tick")
    p.add_argument("--to-tick", type=count, required=True, metavar="B", help="the slice's last tick")
    p.add_argument("-o", "--out", required=True, metavar="OUT.nkrec", help="the slice to write (replaced if it exists)")
    p.add_argument(
        "--handler",
        help="handler to replay up to A when no snapshot of the loop before A gives the state (default: the header's)",
    )
    p.add_argument(
        "--replay-state",
        action="store_true",
        help="replay from the match's start up to A even where a snapshot would do",
    )
    p.add_argument("--seed", type=whole, default=0, help="seed for values the recording does not hold (default 0)")
    p.add_argument(
        "--module-path", action="append", default=[], metavar="DIR", help="extra folder for Lua require (repeatable)"
    )
    add_integrity_flags(p)
    add_supervisor_flags(p)
    add_json_flag(p)
    add_progress_flag(p)
    p.epilog = epilog(EXAMPLES, EXIT_CODES)


def run(args: argparse.Namespace) -> int:
    from recorder.errors import OptionError
    from replay.runtime._runtime import ReplayOptions
    from replay.timeline._slicing import slice_recording

    input_location(args.recording, "recording")
    if args.handler:
        handler_file(args.handler)
    for folder in args.module_path:
        input_dir(folder, "--module-path folder")
    out = output_location(args.out, source=args.recording, what="recording")
    integrity_gate(args.recording, args, refuse=True)  # exit 3 before any work unless complete or allowed
    if args.from_tick > args.to_tick:
        raise OptionError("--from-tick", args.from_tick, f"is after --to-tick {args.to_tick}")
    options = ReplayOptions(seed=args.seed, hang_timeout=hang_timeout(args), module_path=args.module_path)
    from replay.cli._progress import replay_progress

    shown = {"passes": ("slice: replaying up to the first tick",), "until_tick": args.from_tick}
    with replay_progress(args.recording, enabled=not args.no_progress, supervised=not args.in_process, **shown):
        s = slice_recording(
            args.recording,
            out,
            args.from_tick,
            args.to_tick,
            handler=args.handler,
            replay_state=args.replay_state,
            options=options,
            limits=None if args.in_process else limits(args),
            allow_incomplete=args.allow_incomplete,
        )
    if args.json:
        print_json(s.to_json())
        return 0
    print(
        f"wrote {s.path}: ticks {s.from_tick}..{s.to_tick}, {s.calls} calls, state at {s.from_tick} from {s.state_from}"
        + (f"; the crash at tick {s.crash['tick']} is in it" if s.crash else "")
    )
    if not s.complete:
        assert s.source_integrity is not None
        print(
            f"INCOMPLETE: cut from the intact part of {args.recording} ({s.source_integrity['summary']}); "
            "the slice is written without a seal, so it is incomplete too",
            file=sys.stderr,
        )
    return 0
