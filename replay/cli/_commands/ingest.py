"""Turn Nakama server logs into recordings, one .nkrec per match.

Reads the JSON log lines Nakama writes (files, or - for stdin; lines of many matches interleaved, also
inside Docker's json-file wrapper, gzip-compressed input decompressed) and collects the records that the
capture modules wrote through Nakama's logger: recorder/capture/modules/nkreplay_capture.lua wrapped around a
Lua match module, or nkreplay_capture.js in front of a JavaScript bundle (docs/javascript.md). Lines that are not ours are skipped; a line or record of ours that is damaged (not JSON,
nested too deeply, a number out of range, a bad match id, a field of the wrong type) is reported with its
file, line and why, and left out; compressed input that ends early keeps every line before the cut. Nothing
in a log stops the run. Nakama's own "Stopping match after error from <callback> execution" line (fields
mid, tick, error) becomes the recording's crash marker. A recording stores both match ids: the one
clients see (uuid.node) and the log's mid (no node).

Each recording is DIR/<match id>.nkrec when the id is made of letters, digits, '.', '_' and '-';
any other id (or one whose name is taken) is escaped and given a short hash, DIR/a_b~1f2e3d4c5b.nkrec
for "a/b". The match id -> file mapping is printed, and the file name is kept in the header (tag
file_name). A recording is written whole or not at all.

Many files (a day of logs of many Nakama nodes) can be read in parallel, one task per file: --executor
process (-j processes here), dask (a local Dask cluster) or dask://HOST:PORT (a running scheduler; the workers
read the files, so name them by URL, s3://logs/node-a.log.gz, or by paths every worker has). The files are
merged in the order named: records of one match spread over several files come together in sequence order,
a record logged twice counts once, and the recordings are the same as a serial run's."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from replay.cli._args import input_location, output_dir_location, positive
from replay.cli._common import add_json_flag, add_progress_flag, print_json

if TYPE_CHECKING:
    from recorder.capture._ingest import Ingest

HELP = "turn Nakama logs written through the Lua capture module into recordings (one per match)"
EXAMPLES = (
    "nakama-replay ingest nakama.log -o recordings/",
    "nakama-replay ingest s3://logs/node-a.log.gz s3://logs/node-b.log.gz -o recordings/ --executor dask",
    "docker logs nakama 2>&1 | nakama-replay ingest - -o recordings/ --handler modules/arena.lua",
    "nakama-replay reproduce recordings/MATCH_ID.nkrec --handler modules/arena.lua",
)
EXIT_CODES = {
    0: "recordings written, nothing skipped",
    1: "recordings written, but lines or records were skipped or are missing (each reported)",
    2: "nothing usable found (no capture records) or bad input",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "logs",
        nargs="*",
        default=["-"],
        metavar="LOG",
        help="Nakama log files (paths or URLs: s3://, gs://, memory://, file://), - for stdin (default)",
    )
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the recordings, or a URL prefix (s3://bucket/prefix/)",
    )
    p.add_argument(
        "--handler",
        metavar="FILE",
        help="match module to name in the recordings (stored relative to DIR; reproduce runs it by default only if it is inside DIR)",
    )
    p.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="ID",
        help="only this match (id with or without .node; repeatable)",
    )
    p.add_argument(
        "--executor",
        default="serial",
        metavar="KIND",
        help="where the log files are read, one task per file: serial (default, here), process (-j processes), "
        "dask (a local Dask cluster of -j workers) or dask://HOST:PORT",
    )
    p.add_argument(
        "-j", "--jobs", type=positive, default=None, metavar="N", help="processes or workers (default: one per core)"
    )
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    from recorder.capture import Ingest, write_matches
    from recorder.errors import LogError
    from replay.report._recording import format_log_ingest

    output_dir_location(args.out)
    for name in args.logs:
        if name != "-":
            input_location(name, "log")
    from replay.cli._progress import reading

    if args.executor == "serial":
        ingest = Ingest()
        logs = [name for name in args.logs if name != "-"]
        with reading("ingest", logs, enabled=not args.no_progress and len(logs) == len(args.logs)):
            for name in args.logs:
                ingest.feed_file(name)
    else:
        ingest = _read_in_parallel(args)
    matches = ingest.matches()
    wanted = set(args.match)
    if wanted:
        matches = [m for m in matches if m.header.match_id in wanted or m.header.log_match_id in wanted]
    if not matches:
        where = ", ".join(args.logs)
        damaged = ingest.stats.damaged
        seen = f"; {len(damaged)} damaged, the first at {damaged[0].describe()}" if damaged else ""
        which = f" for {', '.join(sorted(wanted))}" if wanted else ""
        if ingest.ours and not wanted:
            raise LogError(where, f"no usable capture records: {ingest.ours} found in {ingest.stats.lines} lines{seen}")
        raise LogError(
            where,
            f"no capture records{which} in {ingest.stats.lines} lines{seen} "
            "(is the match module wrapped with nkreplay_capture, and is the log at info level?)",
        )
    written = write_matches(matches, args.out, handler=args.handler)
    damaged = ingest.stats.damaged
    orphans = ingest.unmatched_crashes()
    clean = not damaged and not any(m.problems for m in matches)
    if args.json:
        print_json(
            {
                "recordings": [
                    {
                        "path": str(path),
                        "match_id": m.header.match_id,
                        "log_match_id": m.header.log_match_id,
                        "module": m.header.module,
                        "calls": m.calls,
                        "ticks": m.ticks,
                        "crash": None
                        if m.crash is None
                        else {"callback": m.crash.callback, "tick": m.crash.tick, "error": m.crash.error},
                        "problems": m.problems,
                    }
                    for path, m in written
                ],
                "lines": ingest.stats.lines,
                "records": ingest.ours,
                "other_lines": ingest.stats.other + ingest.stats.entries - ingest.ours,
                "damaged": [{"source": d.source, "line": d.line, "problem": d.problem} for d in damaged],
                "crashes_without_records": orphans,
                "clean": clean,
            }
        )
        return 0 if clean else 1
    print(format_log_ingest(ingest, written, orphans, clean), end="")
    return 0 if clean else 1


def _read_in_parallel(args: argparse.Namespace) -> Ingest:
    import os

    from recorder.capture import ingest_files
    from recorder.errors import NakamaReplayError
    from replay.regression._batch import load_executor

    if "-" in args.logs:
        raise NakamaReplayError(f"--executor {args.executor}: standard input (-) cannot be shared out; name files")
    if args.executor not in ("process", "dask") and not args.executor.startswith(("dask://", "dask+tls://")):
        raise NakamaReplayError(f"--executor {args.executor!r}: use serial, process, dask or dask://HOST:PORT")
    executor = load_executor(args.executor, args.jobs or os.cpu_count() or 1, supervised=False)
    try:
        return ingest_files(args.logs, executor)
    finally:
        executor.shutdown(wait=True)
