"""Check a Lua match handler for behaviour that can differ between Nakama and this replay runtime.

Nakama's Lua is gopher-lua; the replay runs LuaJIT's interpreter. Number formatting (tostring, string.format),
table.sort, error positions, tonumber, os.date, bit32 and nk.json_encode follow gopher-lua here; the order
in which pairs/next walk a table does not (gopher-lua: integer keys, then insertion order; here integer
keys, then the others sorted). This command
replays the recording twice, with the native order and with a perturbed one, and reports the first call
whose outcome (broadcasts, verdicts, replies, state digest, crash) depends on it.

Both runs go to the end of the recording or there is no verdict: a run that crashes, hangs or stops
first, or whose handler process dies under the supervisor (--hang-timeout, --max-memory, an exit, a
segfault), is the answer, with the run, callback and tick.

Only a complete recording gives an answer: an unsealed, damaged or version-1 one is checked as far as it
is intact and the answer is "incomplete" (exit 3), with what that part showed; --allow-incomplete draws
the answer from it, --strict refuses it."""

from __future__ import annotations

import argparse

from replay.cli._args import input_dir, input_location, whole
from replay.cli._common import (
    EXIT_INCOMPLETE,
    add_integrity_flags,
    add_json_flag,
    add_progress_flag,
    add_supervisor_flags,
    hang_timeout,
    integrity_gate,
    limits,
    print_json,
)

HELP = "check whether a Lua handler's behaviour depends on pairs order (Nakama walks tables in insertion order)"
EXAMPLES = ("nakama-replay lua-check recordings/<match>.nkrec --handler modules/arena.lua",)
EXIT_CODES = {
    0: "no dependence found on this recording",
    1: "the handler's behaviour depends on pairs order, or a run stopped before the end",
    3: "incomplete recording: no answer",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a handler-call recording (.nkrec)")
    p.add_argument("--handler", help="the Lua match module (default: the header's, if inside the recording's folder)")
    p.add_argument("--seed", type=whole, default=0, help="seed for values the recording does not hold (default 0)")
    p.add_argument(
        "--module-path", action="append", default=[], metavar="DIR", help="extra folder for Lua require (repeatable)"
    )
    add_supervisor_flags(p)
    add_integrity_flags(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.format import open_recording, verify
    from replay.errors import HandlerLoadError
    from replay.lua._check import check_pairs_order
    from replay.runtime._handlers import recorded_handler
    from replay.runtime._runtime import ReplayOptions

    input_location(args.recording, "recording")
    for folder in args.module_path:
        input_dir(folder, "--module-path folder")
    integrity_gate(args.recording, args)
    integrity = verify(args.recording)
    handler = args.handler
    if handler is None:
        with open_recording(args.recording) as rec:
            handler = recorded_handler(args.recording, rec.header.handler)
    if not str(handler).endswith(".lua"):
        raise HandlerLoadError(str(handler), "lua-check needs a Lua match module (.lua)")
    options = ReplayOptions(seed=args.seed, module_path=args.module_path, hang_timeout=hang_timeout(args))
    from replay.cli._progress import replay_progress

    enabled, passes = not args.no_progress, ("lua-check: native and perturbed pairs order",)
    if args.in_process:
        with replay_progress(args.recording, enabled=enabled, passes=passes):
            report = check_pairs_order(args.recording, handler, options)
    else:
        from replay.errors import HandlerDied
        from replay.lua._check import died
        from replay.runtime._supervisor import HandlerProcess

        with (
            HandlerProcess(limits(args)) as worker,
            replay_progress(args.recording, worker=worker, enabled=enabled, passes=passes),
        ):
            try:
                report = worker.call("replay.lua._check:check_pairs_order", args.recording, handler, options)
            except HandlerDied as exc:
                report = died(exc.death)
    incomplete = not integrity.complete and not args.allow_incomplete
    if args.json:
        print_json(
            {
                "handler": str(handler),
                **report.to_json(),
                "integrity": integrity.to_json(),
                "status": "incomplete" if incomplete else "sensitive" if report.negative else "clean",
            }
        )
    else:
        print(f"handler    {handler}")
        if not integrity.complete:
            print(f"integrity  {integrity.describe()}")
        print(report.describe())
        if not integrity.complete:
            what = "no answer" if incomplete else "--allow-incomplete: answered from the intact part"
            print(
                f"INCOMPLETE: {what}; not checked: {integrity.missing()}"
                if incomplete
                else f"({what}; not checked: {integrity.missing()})"
            )
    if incomplete:
        return EXIT_INCOMPLETE
    return 1 if report.negative else 0
