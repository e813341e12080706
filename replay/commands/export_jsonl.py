"""Write a recording (.nkrec) as JSON Lines: a header line, then one line per event, losslessly (an
`import` of the output gives back the same events, bit for bit). Writes to standard output unless -o is
given. Streams, so recordings of any size export in little memory. A truncated recording exports every
complete chunk and warns (--strict makes it an error); --salvage skips corrupt chunks and reports them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from replay.commands._args import input_file, output_file

HELP = "write a recording (.nkrec) as JSON Lines (.jsonl), losslessly"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="path to a .nkrec file")
    p.add_argument("-o", "--output", help="the .jsonl file to write (default: standard output)")
    p.add_argument("--strict", action="store_true", help="treat a truncated file as an error (exit 2)")
    p.add_argument("--salvage", action="store_true", help="skip corrupt chunks and keep reading")


def run(args: argparse.Namespace) -> int:
    from recorder.jsonl import write_jsonl
    from recorder.nkrec import open_recording

    input_file(args.recording, "recording")
    if args.output is not None:
        output_file(args.output, source=args.recording)
    with open_recording(args.recording, strict=args.strict, salvage=args.salvage) as rec:
        if args.output is None:
            count = write_jsonl(sys.stdout.buffer, rec.header, rec.events())
            sys.stdout.buffer.flush()
            target = "<stdout>"
        else:
            target = args.output
            out = Path(args.output)
            partial = out.with_name(out.name + ".partial")
            try:
                with open(partial, "wb") as f:
                    count = write_jsonl(f, rec.header, rec.events())
                os.replace(partial, out)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        for d in rec.damage:
            if d.kind == "corrupt":
                print(
                    f"skipped corrupt data at byte offset {d.offset} (chunk {d.chunk}): {d.problem}", file=sys.stderr
                )
    print(f"wrote {count} events to {target}", file=sys.stderr)
    return 0
