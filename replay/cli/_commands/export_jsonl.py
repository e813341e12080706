"""Write a recording (.nkrec) as JSON Lines: a header line, then one line per event, losslessly (an
`import` of the output gives back the same events, bit for bit). Writes to standard output unless -o is
given. Streams, so recordings of any size export in little memory.

A recording that is not complete (unsealed, damaged, version 1) exports its intact chunks before the
first damage (--salvage: every intact chunk), says what is missing on standard error and exits 3 (0 with
--allow-incomplete); its header line then carries the tag "nkreplay.integrity" with that state, and
`import` of such a file writes an unsealed recording, so an export and import never turn an incomplete
recording into a complete one. --strict refuses it before writing anything."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from recorder.errors import OptionError
from replay.cli._args import input_location, output_location
from replay.cli._common import (
    EXIT_INCOMPLETE,
    add_integrity_flags,
    add_out_flag,
    add_progress_flag,
    integrity_gate,
    print_json,
)

HELP = "write a recording (.nkrec) as JSON Lines (.jsonl), losslessly"
EXAMPLES = (
    "nakama-replay export fixtures/recordings/arena-reconnect-crash.nkrec -o crash.jsonl",
    "nakama-replay export damaged.nkrec --salvage -o rescued.jsonl   # every intact chunk, exit 3",
)
EXIT_CODES = {
    0: "written",
    3: "the recording is not complete (what could be read was written)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a .nkrec file (a path, or a URL such as s3://bucket/key.nkrec)")
    add_out_flag(
        p, "the .jsonl file to write, a path or a URL (default: standard output)", metavar="OUT.jsonl", old=["--output"]
    )
    add_integrity_flags(p)
    p.add_argument("--salvage", action="store_true", help="read on past damage: every intact chunk after it too")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object for scripts (what was written, the integrity, what was skipped); needs -o",
    )
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.format import INTEGRITY_TAG, open_recording, verify, write_jsonl
    from recorder.format._atomic import atomic_location
    from recorder.storage import open_output

    input_location(args.recording, "recording")
    if args.json and args.out is None:
        raise OptionError("--json", None, "needs -o/--out: without it the JSON Lines themselves go to standard output")
    if args.out is not None:
        output_location(args.out, source=args.recording, what="JSON Lines file")
    integrity_gate(args.recording, args)
    integrity = verify(args.recording)
    from replay.cli._progress import Progress

    with (
        open_recording(args.recording, on_damage="skip" if args.salvage else "stop") as rec,
        Progress("export", rec.size or None, unit="B", enabled=not args.no_progress).following(rec.tell),
    ):
        header = rec.header
        if not integrity.complete:
            header = dataclasses.replace(header, tags={**header.tags, INTEGRITY_TAG: integrity.describe()})
        if args.out is None:
            count = write_jsonl(sys.stdout.buffer, header, rec.events())
            sys.stdout.buffer.flush()
            target = "<stdout>"
        else:
            target = args.out
            # whole or not at all: a temporary file (or key) renamed (moved) to OUT once every line is written
            with atomic_location(args.out) as tmp, open_output(tmp) as f:
                count = write_jsonl(f, header, rec.events())
    for d in integrity.damage if args.salvage else ():
        print(f"skipped {d.kind} data at byte offset {d.offset} (chunk {d.chunk}): {d.problem}", file=sys.stderr)
    if not integrity.complete:
        print(f"warning: {args.recording}: {integrity.describe()}", file=sys.stderr)
    print(f"wrote {count} events to {target}", file=sys.stderr)
    code = 0 if integrity.complete or args.allow_incomplete else EXIT_INCOMPLETE
    if args.json:
        skipped = [
            {"kind": d.kind, "offset": d.offset, "chunk": d.chunk, "problem": d.problem}
            for d in (integrity.damage if args.salvage else ())
        ]
        print_json(
            {
                "recording": args.recording,
                "out": target,
                "events": count,
                "integrity": integrity.to_json(),
                "skipped": skipped,
                "exit": code,
            }
        )
    return code
