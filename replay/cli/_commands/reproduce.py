"""Replay a handler-call recording into a match handler, deterministically, and show how it ends: the
crash (callback, tick, error and traceback) or "ran to the end", the inputs of the last ticks before it,
the presences at that moment, and whether that is what the recording says happened (its crash marker, or
a clean end, with the same outcomes).

The handler defaults to the one the recording's header names (relative to the recording), but only when
it lies inside the recording's own folder tree: a recording is untrusted input, and a header naming a file
elsewhere is refused (exit 2). Pass --handler FILE.py, FILE.py:ClassName, FILE.lua or FILE.js[:MATCH] (FILE.ts) to choose the file,
e.g. your fix. The report names the file it ran.

The recording may be a URL (s3://bucket/key.nkrec, gs://, memory://, file://; credentials from the backend's
environment, e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID, never in the URL): it is read chunk by chunk. Its header's
handler is never loaded from a URL: pass --handler.

Recorded calls after the call where the replayed match stopped are not replayed (Nakama never calls a
stopped match's handler): the report counts them and says whether Nakama could have made them, and the
replay then does not reproduce the recording.

The handler runs in a child process under a supervisor it cannot block: a callback that runs longer
than --hang-timeout is reported as hung whatever it blocks in (a C call, a catastrophic regular
expression), and so is a handler process that exits (sys.exit, os._exit), dies of a signal (a segfault)
or passes --max-memory, each with its callback and tick. --in-process runs it here instead (a debugger).

"Reproduced" means the same crash: the same callback, the same tick and the same error class (Lua errors
by their class, so the replay's (LuaJIT's) and gopher-lua's wordings of one error agree; the top frame is not compared),
with every recorded outcome before it equal. The same callback and tick with another error is not
reproduced: --json's "mismatch" names what differs, and "signature"/"recorded_signature" show both.

Only a complete recording (sealed by a writer that finished, every chunk intact and in sequence) gives a
verdict. An unsealed (writer died), damaged or version-1 recording is replayed as far as it is intact and
the answer is "incomplete" (exit 3), saying what was replayed and what is missing; --allow-incomplete
draws the verdict from the intact part (the text still says what was not replayed); --strict refuses it
before replaying."""

from __future__ import annotations

import argparse

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

HELP = "replay a recording into a handler and show the crash (or the clean end)"
EXAMPLES = (
    "nakama-replay reproduce fixtures/recordings/arena-reconnect-crash.nkrec --handler fixtures/handlers/arena.py",
    "nakama-replay reproduce REC --handler fixtures/handlers/arena_fixed.py   # exit 1: did not reproduce",
    "nakama-replay reproduce --group 5bde89a5 --db demo.sqlite --handler fixtures/handlers/arena.lua"
    "   # a crash group's best recording (complete, shortest, most recent; see `nakama-replay triage`)",
)
EXIT_CODES = {
    0: "reproduced what the recording says",
    1: "did not (no crash, another crash, another error, diverging outcomes, recorded calls after the stop, a hang or a death of the handler process)",
    2: "bad input (unreadable recording, handler that does not load)",
    3: "incomplete recording: no verdict",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "recording",
        nargs="?",
        help="a handler-call recording (.nkrec): a path, or a URL (s3://, gs://, memory://, file://); or --group",
    )
    p.add_argument(
        "--group", metavar="GROUP", help="reproduce a triage crash group: its best recording (see `triage show`)"
    )
    p.add_argument(
        "--db", metavar="PATH|URL", help="the crash store for --group (default: as for `nakama-replay triage`)"
    )
    p.add_argument(
        "--handler",
        help="handler file (default: the one the recording's header names, if inside the recording's folder)",
    )
    p.add_argument("--until-tick", type=count, metavar="N", help="replay only calls up to tick N")
    p.add_argument("--seed", type=whole, default=0, help="seed for values the recording does not hold (default 0)")
    p.add_argument(
        "--last-ticks", type=count, default=3, metavar="N", help="ticks of inputs to show before the end (default 3)"
    )
    p.add_argument(
        "--module-path", action="append", default=[], metavar="DIR", help="extra folder for Lua require (repeatable)"
    )
    add_supervisor_flags(p)
    add_integrity_flags(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from replay.runtime._supervisor import HandlerProcess

    if args.group is not None or args.recording is None:
        _pick_group_recording(args)
    input_location(args.recording, "recording")
    for folder in args.module_path:
        input_dir(folder, "--module-path folder")
    integrity_gate(args.recording, args)
    worker = None if args.in_process else HandlerProcess(limits(args))
    if worker is not None:
        worker.start()  # its start-up overlaps the imports below

    from replay.report._text import format_reproduce
    from replay.runtime._runtime import ReplayOptions, reproduce
    from replay.runtime._supervisor import reproduce_supervised

    options = ReplayOptions(
        seed=args.seed,
        until_tick=args.until_tick,
        hang_timeout=hang_timeout(args),
        last_ticks=args.last_ticks,
        module_path=args.module_path,
        allow_incomplete=args.allow_incomplete,
    )
    from replay.cli._progress import replay_progress

    shown = {"enabled": not args.no_progress, "passes": ("reproduce",), "until_tick": args.until_tick}
    if worker is None:
        with replay_progress(args.recording, **shown):
            result = reproduce(args.recording, args.handler, options)
    else:
        with worker, replay_progress(args.recording, worker=worker, **shown):
            result = reproduce_supervised(args.recording, args.handler, options, process=worker)
    if args.json:
        print_json(result.to_json())
    else:
        print(format_reproduce(result), end="")
    return result.exit_code


def _pick_group_recording(args: argparse.Namespace) -> None:
    import sys

    from recorder.errors import OptionError
    from replay.cli._commands.triage import recording_for_group

    if args.group is None:
        raise OptionError(
            "recording",
            None,
            "the following arguments are required: recording (or --group GROUP; see nakama-replay reproduce --help)",
        )
    if args.recording is not None:
        raise OptionError("--group", args.group, "give a recording or --group, not both")
    args.recording, info, n = recording_for_group(args.db, args.group)
    print(
        f"group {args.group}: picked {args.recording} ({info['integrity']}, {info['ticks']} ticks; best of {n})",
        file=sys.stderr,
    )
