"""Turn a wire recording (what the sockets saw, from `nakama-replay proxy` in front of any Nakama: Lua,
TypeScript or Go modules; or a live replay's capture) into a handler-call recording, so the match can be
reproduced, diffed and bisected in-process against a Python or Lua handler.

Joins, leaves (match_leave: reason 3; a closed socket: 4; a kick seen as a leave event: 3) and messages
are placed in ticks from their times and the match's tick rate (the header's, or --tick-rate); every
match_data the sockets received becomes a recorded broadcast of the call it came from, compared on replay
as the sockets saw it (op code, data, sender, who received it). When every socket in the match was closed
with 1000 "server-side session disconnect", the call before it crashed: callback and tick are estimated
from the times, or taken exactly, with the error, from Nakama's log (--server-log). What is approximated is
printed, kept in the output's header (tags.convert) and listed in docs/workflows/record.md.

A wire recording that is not complete (the proxy was killed: unsealed; damaged; or version 1) is not
converted (exit 3): a sealed output would hide the hole. --allow-incomplete converts its intact part, says
so in the output's header (tags.convert.source_integrity) and writes the output unsealed, so it stays
incomplete; --strict refuses it as every command does."""

from __future__ import annotations

import argparse

from replay.cli._args import input_file, input_location, int_at_least, output_location
from replay.cli._common import add_integrity_flags, add_json_flag, add_progress_flag, integrity_gate, print_json

HELP = "turn a wire recording into a handler-call recording (approximate ticks) to reproduce in-process"
EXAMPLES = (
    "nakama-replay convert wire/MATCH_ID.nkrec -o match.nkrec --tick-rate 10 --handler modules/arena.lua",
    "nakama-replay reproduce match.nkrec   # then: the calls into your handler, in-process",
)
EXIT_CODES = {
    0: "converted",
    2: "bad input (not a wire recording, tick rate unknown, no match in it, paths)",
    3: "incomplete wire recording (see --allow-incomplete)",
}


def _rate(text: str) -> int:
    n = int_at_least(1)(text)
    if n > 60:
        raise argparse.ArgumentTypeError(f"{text!r}: a tick rate is 1..60")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("wire", help="a wire recording (.nkrec from `nakama-replay proxy` or a replay's --out)")
    p.add_argument("-o", "--out", required=True, metavar="CALLS.nkrec", help="the handler-call recording to write")
    p.add_argument(
        "--tick-rate", type=_rate, metavar="N", help="the match's tick rate, 1..60 (default: the recording's)"
    )
    p.add_argument(
        "--server-log",
        metavar="FILE",
        help="Nakama's JSON log: the match's crash line gives callback, tick and error exactly",
    )
    p.add_argument("--handler", metavar="FILE", help="the match handler to name in the header (relative to the output)")
    p.add_argument(
        "--no-broadcasts",
        action="store_true",
        help="write the calls without their observed broadcasts (a replay then checks the crash only)",
    )
    add_integrity_flags(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from replay.cli._progress import reading
    from replay.live._convert import convert

    input_location(args.wire, "wire recording")
    if args.server_log is not None:
        input_location(args.server_log, "server log")
    if args.handler is not None:
        input_file(args.handler, "handler")
    output_location(args.out, source=args.wire, what="recording")
    integrity_gate(args.wire, args)

    inputs = [args.wire] + ([args.server_log] if args.server_log is not None else [])
    with reading("convert", inputs, enabled=not args.no_progress):
        conv = convert(
            args.wire,
            args.out,
            tick_rate=args.tick_rate,
            server_log=args.server_log,
            handler=args.handler,
            broadcasts=not args.no_broadcasts,
            allow_incomplete=args.allow_incomplete,
        )
    if args.json:
        print_json({**conv.to_json(), "out": args.out})
        return 0
    print(f"converted  {args.wire} -> {args.out}")
    print(
        f"match      {conv.header.match_id} at {conv.tick_rate} Hz ({'--tick-rate' if conv.tick_rate_from == 'option' else 'from the recording'}),"
        f" tick 0 is {conv.tick_zero}"
    )
    print(
        f"calls      {conv.calls} in {conv.ticks} ticks: {conv.joins} joins ({conv.rejected} rejected), {conv.leaves} leaves"
        f" ({conv.kicks} kicks), {conv.messages} messages, {conv.broadcasts} broadcasts"
    )
    if conv.dropped or conv.ignored or conv.unattributed:
        print(
            f"left out   {conv.dropped} messages past the 128-message input queue, {conv.ignored} from sessions not in"
            f" the match, {conv.unattributed} match_data from before the match's first call"
        )
    if conv.crash is not None:
        c = conv.crash
        error = (
            c.error.splitlines()[0]
            if c.error
            else "error unknown (pass --server-log FILE to take it from Nakama's log)"
        )
        print(f"crash      {c.callback} at tick {c.tick} ({conv.crash_from}): {error}")
    print("approximated (a wire recording cannot say more):")
    for line in conv.approximations:
        print(f"  - {line}")
    for note in conv.notes:
        print(f"note: {note}")
    if not conv.header.handler:
        print(f"next: nakama-replay reproduce {args.out} --handler YOUR_HANDLER")
    else:
        print(f"next: nakama-replay reproduce {args.out}")
    return 0
