"""Crash triage: client crash reports and server runtime errors in one crash store, grouped by crash
signature, client crashes linked to the server handler errors they follow, and each group one command
away from its reproduction (`nakama-replay reproduce --group GROUP`).

  triage ingest   read client reports (JSON Lines; schema in docs/triage.md), Sentry event JSON, Nakama
                  server logs (match handler errors, RPC errors, capture module crash records) and
                  recordings; bad items are reported and skipped; the same input twice is stored once
  triage groups   groups by occurrence count, with filters (--side, --op-code, --rpc, --client-version,
                  --socket-state, --platform, --since)
  triage show     one group: signature, counts by version and op code, the server group it is downstream
                  of (or its client symptoms), its matches with their recordings
  triage fixed    mark a group fixed in a version; the same signature at or after it is a regression
  triage reopen   remove the mark

The store (--db) is a SQLite file (default: $NAKAMA_REPLAY_TRIAGE_DB, else
~/.local/share/nakama-replay/triage.sqlite) or a postgresql://USER@HOST:PORT/DB URL (pip install
'nakama-replay[postgres]')."""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import Any

from recorder.errors import OptionError
from replay.cli._args import count, input_file, positive, whole
from replay.cli._common import add_json_flag, epilog, print_json
from replay.report._triage import (
    format_triage_fixed,
    format_triage_group,
    format_triage_groups,
    format_triage_ingest,
)

HELP = "crash triage: ingest client reports, Sentry events, server logs, recordings; list and show groups"
EXAMPLES = (
    "nakama-replay triage ingest --db demo.sqlite --client-reports fixtures/triage/client-reports.jsonl \\\n"
    "      --sentry fixtures/triage/sentry-events.json --server-log fixtures/triage/nakama.log \\\n"
    "      --recordings fixtures/recordings",
    "nakama-replay triage groups --db demo.sqlite --side client --op-code 10 --client-version 1.4.0",
    "nakama-replay triage show 5bde89a5 --db demo.sqlite",
    "nakama-replay reproduce --group 5bde89a5 --db demo.sqlite --handler fixtures/handlers/arena.lua",
    "nakama-replay triage fixed 5bde89a5 --version 1.4.1 --db demo.sqlite",
)
EXIT_CODES = {
    0: "done (ingest: every item read was stored or was already there)",
    1: "ingest only: some items could not be read and were skipped (listed); the others were stored",
    2: "bad input: an unknown group, a bad option, an unusable store, or an ingest where no item could be read",
}
_SUBCOMMANDS = ("ingest", "groups", "show", "fixed", "reopen")


def default_db() -> str:
    """$NAKAMA_REPLAY_TRIAGE_DB, else triage.sqlite in the user's data folder (never the current folder)."""
    env = os.environ.get("NAKAMA_REPLAY_TRIAGE_DB")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "nakama-replay", "triage.sqlite")


def add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="PATH|URL",
        default=None,
        help="crash store: a SQLite file or postgresql://USER@HOST:PORT/DB "
        "(default: $NAKAMA_REPLAY_TRIAGE_DB, else ~/.local/share/nakama-replay/triage.sqlite)",
    )


def open_store(db: str | None, **rules: int) -> Any:
    """The crash store named by --db (the default one's folder is created; a named file's is not)."""
    from replay.triage._store import LinkRules, TriageStore

    target = db or default_db()
    if db is None and "://" not in target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    return TriageStore.open(target, LinkRules(**rules) if rules else None)


def since(text: str) -> int:
    """--since: ISO 8601 (``2025-11-24``, ``2025-11-24T16:00Z``) or an age (``30m``, ``24h``, ``7d``) -> epoch ms."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return int((time.time() - int(m.group(1)) * unit) * 1000)
    from replay.triage._schema import parse_timestamp

    try:
        return parse_timestamp(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected ISO 8601 (2025-11-24T16:00Z) or an age (30m, 24h, 7d)"
        ) from None


def group_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{4,12}", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r}: a group id is 4 to 12 hex digits (see `triage groups`)")
    return text.strip().lower()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = epilog(EXAMPLES, EXIT_CODES)
    sub = p.add_subparsers(dest="triage_command", metavar="SUBCOMMAND", parser_class=type(p))
    fmt = p.formatter_class

    ing = sub.add_parser(
        "ingest",
        help="read reports, logs and recordings into the crash store",
        formatter_class=fmt,
        description=_INGEST_HELP,
        epilog=epilog(
            _INGEST_EXAMPLES, {0: "every item read was stored or was already there", 1: EXIT_CODES[1], 2: _INGEST_BAD}
        ),
    )
    ing.add_argument(
        "--client-reports", nargs="+", default=[], metavar="FILE", help="client reports: JSON Lines or a JSON array"
    )
    ing.add_argument(
        "--sentry", nargs="+", default=[], metavar="FILE", help="Sentry event JSON: an event, an array, or JSON Lines"
    )
    ing.add_argument(
        "--server-log", nargs="+", default=[], metavar="FILE", help="Nakama JSON logs (also Docker json-file)"
    )
    ing.add_argument(
        "--recordings",
        nargs="+",
        default=[],
        metavar="PATH|URL",
        help=".nkrec files or folders (searched recursively), or their URLs (s3://bucket/prefix/, gs://, file://)",
    )
    ing.add_argument(
        "--link-ticks",
        type=count,
        default=30,
        metavar="N",
        help="a client report at most N ticks after a server match error in its match is downstream of it (default 30)",
    )
    ing.add_argument(
        "--link-ms",
        type=count,
        default=60_000,
        metavar="MS",
        help="... or, without ticks, at most MS milliseconds after it (default 60000)",
    )
    ing.add_argument(
        "--link-rpc-ms",
        type=count,
        default=10_000,
        metavar="MS",
        help="a client report whose RPC returned an error, at most MS milliseconds after a Nakama RPC error of "
        "that RPC, is downstream of it (default 10000)",
    )
    ing.add_argument(
        "--clock-skew-ms",
        type=count,
        default=2_000,
        metavar="MS",
        help="client clocks may run this far behind the server's (default 2000)",
    )
    ing.add_argument("--batch", type=positive, default=5000, metavar="N", help="reports per transaction (default 5000)")
    ing.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a live line on a terminal, else a line every few seconds)",
    )
    add_db_argument(ing)
    add_json_flag(ing)

    grp = sub.add_parser(
        "groups",
        help="crash groups by occurrence count, with filters",
        formatter_class=fmt,
        description=_GROUPS_HELP,
        epilog=epilog(_GROUPS_EXAMPLES, {0: "done, also when no group matches the filters"}),
    )
    grp.add_argument("--side", choices=("client", "server"), help="only client or only server groups")
    grp.add_argument("--op-code", type=whole, metavar="N", help="reports whose last op code was N")
    grp.add_argument("--rpc", metavar="ID", help="reports whose last RPC (or failing RPC) was ID")
    grp.add_argument("--client-version", metavar="V", help="reports from client version V")
    grp.add_argument("--socket-state", choices=("connecting", "connected", "reconnecting", "closed"))
    grp.add_argument("--platform", metavar="P", help="reports from platform P")
    grp.add_argument(
        "--since", type=since, metavar="WHEN", help="reports at or after WHEN: ISO 8601 or an age (24h, 7d)"
    )
    grp.add_argument("--limit", type=positive, default=50, metavar="N", help="at most N groups (default 50)")
    add_db_argument(grp)
    add_json_flag(grp)

    show = sub.add_parser(
        "show",
        help="one group: signature, counts, links, matches, recordings",
        formatter_class=fmt,
        description=_SHOW_HELP,
        epilog=epilog(("nakama-replay triage show 5bde89a5 --db demo.sqlite",), {0: "done", 2: _UNKNOWN}),
    )
    show.add_argument("group", type=group_id, help="group id (or a unique prefix of at least 4 digits)")
    show.add_argument("--matches", type=positive, default=20, metavar="N", help="list at most N matches (default 20)")
    add_db_argument(show)
    add_json_flag(show)

    fixed = sub.add_parser(
        "fixed",
        help="mark a group fixed in a version (later occurrences are regressions)",
        formatter_class=fmt,
        description=_FIXED_HELP,
        epilog=epilog(
            ("nakama-replay triage fixed 5bde89a5 --version 1.4.1 --db demo.sqlite",), {0: "done", 2: _UNKNOWN}
        ),
    )
    fixed.add_argument("group", type=group_id)
    fixed.add_argument("--version", required=True, metavar="V", help="the first version with the fix")
    add_db_argument(fixed)
    add_json_flag(fixed)

    reopen = sub.add_parser(
        "reopen",
        help="remove a group's fix mark",
        formatter_class=fmt,
        description="Remove a group's fix mark and its regression flags.",
        epilog=epilog(("nakama-replay triage reopen 5bde89a5 --db demo.sqlite",), {0: "done", 2: _UNKNOWN}),
    )
    reopen.add_argument("group", type=group_id)
    add_db_argument(reopen)
    add_json_flag(reopen)


_INGEST_HELP = """\
Read crash inputs into the crash store. Every input is read to its end: a malformed report, event or
log line is listed (file, line, field) and skipped, the rest is stored. Ingest is idempotent: a report
already stored (same id; a report without id: same content; a server match error: same match, callback
and tick, whichever source told it first) is counted as a duplicate, not again. Concurrent ingests into
one store are safe.

A client report is linked downstream of a server match handler error of the same match (match ids
compared without their .node suffix) when it is at most --link-ticks ticks after it, or (without ticks)
at most --link-ms after it in time. A client report whose RPC returned an error is linked downstream of
Nakama's RPC error of the same RPC id at most --link-rpc-ms before it (Nakama's RPC error line names no
user, so this link rests on the RPC id and time alone; the closest error wins)."""

_INGEST_EXAMPLES = (EXAMPLES[0],)
_INGEST_BAD = "an unusable store, a bad option, or no item of any input could be read"
_UNKNOWN = "an unknown group (or a prefix that names several), a bad option or an unusable store"

_GROUPS_HELP = """\
Crash groups, most occurrences first: side, count, first and last seen, the signature, and per group the
client versions, platforms, op codes, RPCs, socket states, matches, recordings, links and fix mark.
Filters count only the reports that match them (so the counts shrink as the filters narrow)."""

_GROUPS_EXAMPLES = (
    "nakama-replay triage groups --db demo.sqlite --side client --op-code 10",
    "nakama-replay triage groups --db demo.sqlite --client-version 1.3.2 --since 7d --json",
)

_SHOW_HELP = """\
One group: its signature (callback, error type, frames), counts by client version, platform, op code,
RPC and socket state, the server group its client reports are downstream of (or, for a server group,
the client groups that follow it) with the rule and evidence, its matches with their recordings, and
the recording `reproduce --group` would pick (complete first, then shortest, then most recent)."""

_FIXED_HELP = """\
Mark a group fixed in VERSION (compared naturally: 1.4.10 after 1.4.9). Reports of the same signature
from VERSION or later, and reports without a version ingested after the mark, are regressions: the group
is flagged REGRESSED in `triage groups`, as crash reporters do. Reports already stored from VERSION or
later count at once."""


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "triage_command", None)
    if command is None:
        raise OptionError(
            "SUBCOMMAND", None, f"choose one of {', '.join(_SUBCOMMANDS)} (see nakama-replay triage --help)"
        )
    return {"ingest": _ingest, "groups": _groups, "show": _show, "fixed": _fixed, "reopen": _reopen}[command](args)


def _ingest(args: argparse.Namespace) -> int:
    from recorder.storage import check_location, is_url
    from replay.cli._progress import Progress
    from replay.triage._ingest import ingest

    for path in [*args.client_reports, *args.sentry, *args.server_log]:
        input_file(path)
    for path in args.recordings:
        if is_url(path):
            check_location(path)
        elif not os.path.exists(path):
            input_file(path, "recording")
    if not (args.client_reports or args.sentry or args.server_log or args.recordings):
        raise OptionError(
            "--client-reports", None, "nothing to ingest: give --client-reports, --sentry, --server-log or --recordings"
        )
    with (
        open_store(
            args.db,
            link_ticks=args.link_ticks,
            link_ms=args.link_ms,
            clock_skew_ms=args.clock_skew_ms,
            link_rpc_ms=args.link_rpc_ms,
        ) as store,
        Progress("triage ingest", None, unit="item", enabled=not args.no_progress) as display,
    ):
        report = ingest(
            store,
            client=args.client_reports,
            sentry=args.sentry,
            logs=args.server_log,
            recordings=args.recordings,
            batch=args.batch,
            progress=None if args.no_progress else _ingest_progress(display),
        )
        totals = store.counts()
        target = store.target
    bad = len(report.bad) + len(report.bad_recordings)
    usable = sum(report.read.values()) + report.recordings
    code = 0 if not bad else (1 if usable else 2)
    if args.json:
        print_json({"store": target, **report.to_json(), "totals": totals, "clean": not bad, "exit": code})
    else:
        print(format_triage_ingest(report, target, totals), end="")
    return code


def _ingest_progress(display: Any) -> Any:
    """``ingest``'s ``progress(source, items_read)`` shown through the one progress display."""

    def update(source: str, items: int) -> None:
        display.set(items, status=f"now {source}" if source else "")

    return update


def _groups(args: argparse.Namespace) -> int:
    from replay.triage._store import GroupFilter

    flt = GroupFilter(
        side=args.side,
        op_code=args.op_code,
        rpc=args.rpc,
        client_version=args.client_version,
        socket_state=args.socket_state,
        platform=args.platform,
        since_ms=args.since,
        limit=args.limit,
    )
    with open_store(args.db) as store:
        groups = store.groups(flt)
        totals = store.counts()
        target = store.target
    filters = {
        k: v
        for k, v in (
            ("side", args.side),
            ("op_code", args.op_code),
            ("rpc", args.rpc),
            ("client_version", args.client_version),
            ("socket_state", args.socket_state),
            ("platform", args.platform),
            ("since_ms", args.since),
        )
        if v is not None
    }
    if args.json:
        print_json({"store": target, "filters": filters, "totals": totals, "groups": groups})
    else:
        print(format_triage_groups(groups, target, totals, filters), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        gid = store.resolve_group(args.group)
        detail = store.group(gid, match_limit=args.matches)
        detail["links_list"] = store.links(gid, limit=50)
        target = store.target
    best = detail["recording_list"][0] if detail["recording_list"] else None
    detail["best_recording"] = best
    if args.json:
        print_json({"store": target, **detail})
    else:
        print(format_triage_group(detail), end="")
    return 0


def _fixed(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        gid = store.resolve_group(args.group)
        summary = store.mark_fixed(gid, args.version)
        target = store.target
    if args.json:
        print_json({"store": target, **summary})
    else:
        print(format_triage_fixed(summary), end="")
    return 0


def _reopen(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        gid = store.resolve_group(args.group)
        store.reopen(gid)
    if args.json:
        print_json({"group": gid, "fixed_in": None})
    else:
        print(f"group {gid}: fix mark removed")
    return 0


def recording_for_group(db: str | None, group: str) -> tuple[str, dict[str, Any], int]:
    """For ``reproduce --group``: the group's best recording (complete first, then shortest, then most
    recent), what is known about it, and how many recordings the group has. ``UnknownGroup`` (exit 2) when
    the group has none: the message says how to index some."""
    from replay.errors import UnknownGroup

    with open_store(db) as store:
        gid = store.resolve_group(group_id(group))
        recs = store.recordings(gid)
    if not recs:
        raise UnknownGroup(
            f"group {gid} has no recording of any of its matches; index some with "
            "`nakama-replay triage ingest --recordings DIR`"
        )
    return recs[0]["location"], recs[0], len(recs)
