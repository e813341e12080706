"""Summarise a recording without replaying it: its integrity, match id, module, tick rate, ticks and wall
duration, every presence with its join and leave ticks and reasons, messages per op code (count and
bytes), the crash marker, and any damage with its byte offset. Streams the file, so it is fast and uses
little memory on recordings of any size.

The integrity line says one of: complete (sealed by a writer that finished, every chunk intact and in
sequence), unsealed (the writer died or is still writing: the chunks before the cut are intact), damaged
(corrupt, missing, repeated or reordered chunks, a seal that disagrees), or legacy (a version-1
recording: no seal, so it cannot be proven complete). The counts cover the intact chunks before the first
damage; --salvage reads every intact chunk after it too.

--timeline prints a compact text timeline (a strip per player and op code, then joins, leaves,
reconnects, kicks, signals, label updates and the crash in order) for the ticks --from-tick..--to-tick;
--tick N prints everything recorded in tick N, payloads decoded (JSON pretty-printed, binary as hex)."""

from __future__ import annotations

import argparse

from replay.cli._args import input_location
from replay.cli._commands._inspect_timeline import add_timeline_arguments, run_timeline, wanted
from replay.cli._common import (
    EXIT_INCOMPLETE,
    add_integrity_flags,
    add_json_flag,
    add_progress_flag,
    integrity_gate,
    print_json,
)

HELP = "summarise a recording (.nkrec): ticks, presences, op codes, crash, damage; --timeline, --tick N"
EXAMPLES = (
    "nakama-replay inspect fixtures/recordings/arena-reconnect-crash.nkrec",
    "nakama-replay inspect REC --strict          # a CI gate: exit 3 unless the recording is complete",
    "nakama-replay inspect REC --salvage --json  # what survives past the damage",
    "nakama-replay inspect fixtures/recordings/arena-reconnect-crash.nkrec --timeline --from-tick 40",
    "nakama-replay inspect fixtures/recordings/arena-reconnect-crash.nkrec --tick 58",
)
EXIT_CODES = {
    0: "complete",
    2: "bad input (not a recording, header unreadable)",
    3: "not complete (the summary is still printed; --allow-incomplete makes it 0, --strict refuses before reading)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a .nkrec file: a path, or a URL (s3://, gs://, memory://, file://)")
    add_integrity_flags(p)
    p.add_argument("--salvage", action="store_true", help="read on past damage: every intact chunk after it too")
    add_timeline_arguments(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.format import summarize
    from replay.report._recording import format_inspect

    input_location(args.recording, "recording")
    integrity_gate(args.recording, args)
    if wanted(args):
        return run_timeline(args)
    from replay.cli._progress import reading

    with reading("inspect", [args.recording], enabled=not args.no_progress):
        s = summarize(args.recording, strict=args.strict, salvage=args.salvage)
    status = 0 if s.integrity["complete"] or args.allow_incomplete else EXIT_INCOMPLETE
    if args.json:
        print_json(s.to_json())
        return status
    print(format_inspect(s), end="")
    return status
