"""Convert a JSON Lines interchange file into a recording (.nkrec). The first line is the header, each
later line one event (docs/reference/jsonl.md shows every shape). Reads FILE, or standard
input when FILE is "-". A malformed line (wrong type, a negative tick, nesting deeper than 100 levels, an
integer beyond 64 bits: docs/reference/format.md, "Limits on input") stops the import with its line number and field. The
recording is written to OUT.incomplete.tmp and renamed to OUT when complete, so no partial recording is
ever left under OUT; a temporary file left by a killed import is replaced or removed by the next import
to OUT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from replay.cli._args import input_location, output_location, positive
from replay.cli._common import add_json_flag, add_out_flag, add_progress_flag, print_json

HELP = "convert a JSON Lines file (.jsonl) into a recording (.nkrec)"
EXAMPLES = ("nakama-replay import fixtures/recordings/example.jsonl -o example.nkrec",)
EXIT_CODES = {
    0: "written",
    2: "bad input (the message names the file, line and field)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help='the .jsonl file (a path or a URL), or "-" for standard input')
    add_out_flag(
        p,
        "the .nkrec file to write, a path or a URL (default: FILE with its suffix changed to .nkrec, beside FILE)",
        metavar="OUT.nkrec",
        old=["--output"],
    )
    p.add_argument("--chunk-events", type=positive, default=256, help="events per chunk (default: %(default)s)")
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.errors import RecordingError
    from recorder.format import import_jsonl
    from recorder.storage import sibling

    if args.out is None:
        if args.file == "-":
            raise RecordingError("reading standard input needs -o/--out to name the .nkrec file to write")
        args.out = sibling(args.file, Path(args.file.rsplit("/", 1)[-1]).with_suffix(".nkrec").name)
    if args.file != "-":
        input_location(args.file, "JSON Lines file")
    output_location(args.out, source=None if args.file == "-" else args.file, what="recording")
    if args.file == "-":
        count = import_jsonl(sys.stdin.buffer, args.out, name="<stdin>", chunk_events=args.chunk_events)
    else:
        from recorder.storage import open_input
        from replay.cli._progress import Progress

        stream, size = open_input(args.file)
        try:  # progress: where the reader is in the file, asked from a thread (nothing per line)
            with Progress("import", size or None, unit="B", enabled=not args.no_progress).following(stream.tell):
                count = import_jsonl(stream, args.out, name=args.file, chunk_events=args.chunk_events)
        finally:
            stream.close()
    print(f"wrote {count} events to {args.out}", file=sys.stderr)
    if args.json:
        print_json({"input": args.file, "out": args.out, "events": count})
    return 0
