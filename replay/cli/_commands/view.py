"""Write a match timeline as one self-contained HTML page: on one axis of ticks, a lane per player (joins,
leaves with their reason, reconnects as a new session of the same user, kicks, rejected join attempts),
messages per op code, broadcasts, nondeterministic inputs consumed, signals, label updates, the crash
with its error and traceback, and with --against or --diff-with the first divergent tick and its state
paths. Zoom with the wheel, pan by dragging; hovering a tick shows its calls with their payloads decoded
(JSON pretty-printed, binary as hex).

The page needs no network and no install: open it from disk. Where the match is too big for every
payload (--detail-budget, default 6M), it keeps the ticks nearest the crash, the divergence and presence
changes, and says which command shows the others (inspect REC --tick N).

Output: -o FILE.html, or by default REC's name with .html in $XDG_DATA_HOME/nakama-replay/view
(~/.local/share/nakama-replay/view), never the current folder; the path is printed, and a page already
there is replaced.

  --against B            the recording against a replay into handler B (diff --recorded); with
                         --handler A: handler A against handler B over the same inputs (diff --against)
  --diff-with REC2       two recordings of one match compared call by call (inputs, recorded outcomes,
                         digests; state paths where both hold a snapshot): nothing is run

An unsealed, damaged or version-1 recording is drawn as far as it is intact, under a banner saying what
is missing, and the command exits 3 (0 with --allow-incomplete; --strict refuses it before drawing). A
comparison over an incomplete recording shows what its intact part showed and draws no verdict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from replay.cli._args import byte_size, handler_file, input_dir, input_location, output_location
from replay.cli._common import (
    EXIT_INCOMPLETE,
    add_integrity_flags,
    add_json_flag,
    add_progress_flag,
    add_supervisor_flags,
    default_output_dir,
    epilog,
    hang_timeout,
    integrity_gate,
    limits,
    print_json,
)

HELP = "write a match timeline as one HTML page (lanes, op codes, crash, divergence; opens from disk)"
EXAMPLES = (
    "nakama-replay view fixtures/recordings/arena-reconnect-crash.nkrec -o /tmp/crash.html",
    "nakama-replay view REC --handler fixtures/handlers/arena.py --against fixtures/handlers/arena_fixed.py",
    "nakama-replay view prod.nkrec --diff-with recaptured.nkrec -o diff.html",
)
EXIT_CODES = {
    0: "page written (a divergence is shown, not an error)",
    2: "bad input (not a handler-call recording, an -o that is not .html, a handler that does not load)",
    3: "the recording (or REC2) is not complete: the page shows its intact part (--allow-incomplete: 0; "
    "--strict refuses before drawing)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "recording", help="a handler-call recording (.nkrec): a path, or a URL (s3://, gs://, memory://, file://)"
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="FILE.html",
        help="where to write the page (default: $XDG_DATA_HOME/nakama-replay/view/REC.html, printed)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--against", metavar="HANDLER", help="mark the first divergence from a replay into HANDLER")
    which.add_argument("--diff-with", metavar="REC2", help="mark the first call where REC2 differs from REC")
    p.add_argument(
        "--handler", metavar="A", help="with --against: compare handler A with HANDLER instead of the recording"
    )
    p.add_argument(
        "--module-path", action="append", default=[], metavar="DIR", help="extra folder for Lua require (repeatable)"
    )
    p.add_argument(
        "--detail-budget",
        type=byte_size,
        default=None,
        metavar="SIZE",
        help="bytes of per-tick calls and payloads to embed for hovering (default 6M)",
    )
    add_integrity_flags(p)
    add_supervisor_flags(p)
    add_json_flag(p)
    add_progress_flag(p)
    p.epilog = epilog(EXAMPLES, EXIT_CODES)


def default_output(recording: str) -> Path:
    """REC's name with ``.html`` in the view's default folder (``default_output_dir``), which is created."""
    folder = Path(default_output_dir("view"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / Path(recording.rsplit("/", 1)[-1]).with_suffix(".html").name


def run(args: argparse.Namespace) -> int:
    from recorder.errors import OptionError
    from recorder.storage import local_path, write_whole
    from replay.runtime._runtime import ReplayOptions
    from replay.timeline import _divergence as div
    from replay.timeline._html import render_html
    from replay.timeline._model import DEFAULT_DETAIL_BUDGET, build_timeline
    from replay.timeline._text import comparison_text

    input_location(args.recording, "recording")
    if args.handler and not args.against:
        raise OptionError("--handler", args.handler, "names side a of --against; give --against HANDLER too")
    for folder in args.module_path:
        input_dir(folder, "--module-path folder")
    if args.against:
        handler_file(args.against)
    if args.handler:
        handler_file(args.handler)
    if args.diff_with:
        input_location(args.diff_with, "recording")
    if args.out is None:
        out = output_location(str(default_output(args.recording)), source=args.recording)
        print(f"no -o/--out given: writing {out}", file=sys.stderr, flush=True)
    else:
        out = output_location(args.out, source=args.recording, what="page")
    if not out.lower().endswith((".html", ".htm")):
        raise OptionError("-o", out, "the page is HTML: name it FILE.html")
    integrity_gate(args.recording, args)  # --strict: exit 3 before any work unless complete
    if args.diff_with:
        integrity_gate(args.diff_with, args)
    found = None
    if args.against:
        options = ReplayOptions(
            hang_timeout=hang_timeout(args), module_path=args.module_path, allow_incomplete=args.allow_incomplete
        )
        from replay.cli._progress import replay_progress

        passes = ("view: side a", "view: side b")
        with replay_progress(
            args.recording, enabled=not args.no_progress, supervised=not args.in_process, passes=passes
        ):
            found = div.against(
                args.recording,
                args.against,
                args.handler,
                options=options,
                limits=None if args.in_process else limits(args),
            )
    elif args.diff_with:
        found = div.between_recordings(args.recording, args.diff_with, allow_incomplete=args.allow_incomplete)
    from replay.cli._progress import reading

    with reading("view: reading", [args.recording], enabled=not args.no_progress):
        tl = build_timeline(args.recording, divergence=found, detail_budget=args.detail_budget or DEFAULT_DETAIL_BUDGET)
    page = render_html(tl)
    data = page.encode("utf-8")
    write_whole(out, data)  # whole or not at all, at a path or a URL
    size = len(data)
    incomplete: list[tuple[str, Any]] = [
        (path, integ)
        for path, integ in ((args.recording, tl.integrity), (args.diff_with, (found or {}).get("integrity_b")))
        if integ is not None and not integ["complete"]
    ]
    status = EXIT_INCOMPLETE if incomplete and not args.allow_incomplete else 0
    for path, integ in incomplete:
        print(
            f"{'INCOMPLETE' if status else 'incomplete (--allow-incomplete)'}: {path}: {integ['summary']}; "
            "the page shows its intact part",
            file=sys.stderr,
        )
    if args.json:
        print_json(
            {
                "output": str(out),
                "bytes": size,
                "first_tick": tl.first_tick,
                "last_tick": tl.last_tick,
                "lanes": [lane.username or lane.user_id for lane in tl.lanes],
                "series": list(tl.densities),
                "crash": tl.crash,
                "divergence": found,
                "detail_ticks": len(tl.details),
                "detail_ticks_total": tl.detail_ticks_total,
                "integrity": tl.integrity,
                "complete": not incomplete,
                "damage": tl.damage,
            }
        )
        return status
    print(
        f"wrote {out} ({size / 1024:.0f} KiB): ticks {tl.first_tick}..{tl.last_tick}, {len(tl.lanes)} players"
        + (f", crash at tick {tl.crash['tick']}" if tl.crash else "")
    )
    if found is not None:
        print(comparison_text(found))
    if len(tl.details) < tl.detail_ticks_total:
        print(
            f"the page embeds the calls of {len(tl.details)} of {tl.detail_ticks_total} ticks (--detail-budget); "
            f"the others: nakama-replay inspect {args.recording} --tick N",
            file=sys.stderr,
        )
    local = local_path(out)
    print(f"open it in a browser: file://{Path(local).resolve()}" if local is not None else f"written to {out}")
    return status
