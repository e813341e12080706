"""Replay a recording into a real Nakama (or `nakama-replay serve`), in real time, and show what the real
server does with it: how the match ended (ran to the end, stopped, or crashed at which recorded tick: Nakama
closes every socket with 1000 "server-side session disconnect" after a handler error), how well messages
landed in their recorded ticks, and, with --compare, whether the real server's broadcasts match the
recording's (op code, data, targets; the first mismatch is shown the way `diff` shows a divergence).

One device-authenticated session per recorded session (device ids derived from the recorded user ids, so
reruns reuse the same accounts); the match is created with --create-rpc (its result must hold the match id,
e.g. {"match_id": "..."}; payload: the recording's match_init params unless --create-payload) or --match-id
is joined. Joins (with metadata), data, leaves, reconnects (new sockets) and signals (through --signal-rpc,
payload {"match_id", "data"}, the RPC's result is the reply) go out at the recorded tick rate. Handler-call
and wire recordings are both accepted. Everything the server sends is captured into a new wire recording
under --out, without secrets (tokens, anything shaped like a JWT, --redact-key keys: <redacted>).

Recorded user, session and match ids inside JSON payloads (message data, join metadata values, signal
data, RPC payloads) are replaced by the live ones, so a handler that looks a player up by an id a client
sent finds the live player (--no-map-payload-ids sends them as recorded). --compare maps recorded ids,
usernames and node names in the recorded broadcasts the same way, and compares only what the recording
holds: a handler-call recording whose calls have no recorded outcomes says nothing about broadcasts, and
the report says so plainly instead of calling every live broadcast a mismatch.

Only a complete recording is replayed into a server: an unsealed, damaged or version-1 one is refused
with exit 3 before anything is sent (its crash, or the calls that led to it, may be missing), unless
--allow-incomplete, which replays its intact part and says so in the report and in --json's "integrity".

This command was called `replay` before; `nakama-replay replay` still works and prints a notice."""

from __future__ import annotations

import argparse

from replay.cli._args import count, input_location, output_dir, positive, server_url
from replay.cli._common import (
    add_integrity_flags,
    add_json_flag,
    add_out_flag,
    add_progress_flag,
    add_redact_flag,
    default_output_help,
    integrity_gate,
    print_json,
    resolve_output_dir,
)

HELP = "replay a recording into a real Nakama server and report the crash, tick alignment and broadcasts"
EXAMPLES = (
    "nakama-replay live fixtures/recordings/arena-reconnect-crash.nkrec --nakama http://127.0.0.1:7350 --compare",
    "nakama-replay serve --handler fixtures/handlers/arena.py &   # a local server to try it against",
)
EXIT_CODES = {
    0: "reproduced what the recording says (and, with --compare, nothing compared differs)",
    1: "not (the last line always says which: REPRODUCED or DID NOT REPRODUCE, and why)",
    2: "bad input or a server that refused a step",
    3: "the recording is not complete (refused)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a handler-call or wire recording (.nkrec)")
    p.add_argument(
        "--nakama",
        type=server_url,
        default="http://127.0.0.1:7350",
        metavar="URL",
        help="server (default http://127.0.0.1:7350)",
    )
    p.add_argument("--server-key", default="defaultkey", metavar="KEY", help="server key (default defaultkey)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--create-rpc", metavar="NAME", help="RPC that creates the match (default: the recording's, else create_match)"
    )
    how.add_argument("--match-id", metavar="ID", help="join this running match instead of creating one")
    p.add_argument(
        "--create-payload", metavar="JSON", help="payload of the create RPC (default: the recording's init params)"
    )
    p.add_argument("--signal-rpc", metavar="NAME", help='RPC that signals the match (payload {"match_id", "data"})')
    p.add_argument("--server-log", metavar="FILE", help="the server's JSON log: find the match's crash line")
    p.add_argument("--compare", action="store_true", help="compare the server's broadcasts with the recording's")
    p.add_argument(
        "--no-map-payload-ids",
        action="store_true",
        help="send recorded user/session/match ids inside JSON payloads as recorded (default: mapped to the live ones)",
    )
    add_out_flag(p, "folder for the captured wire recording (" + default_output_help("live") + ")", metavar="DIR")
    p.add_argument("--tick-rate", type=positive, metavar="N", help="tick rate (wire recordings without one)")
    p.add_argument(
        "--tail-ticks",
        type=count,
        default=5,
        metavar="N",
        help="ticks to keep listening after the last action (default 5)",
    )
    add_redact_flag(p)
    add_integrity_flags(p)
    add_json_flag(p)
    add_progress_flag(p)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from replay.live._feed import LiveOptions, run_live
    from replay.live._report import analyse
    from replay.live._script import load_script
    from replay.report._text import format_live

    input_location(args.recording, "recording")
    if args.server_log is not None:
        input_location(args.server_log, "server log")
    if args.out is not None:
        output_dir(args.out)
    integrity = integrity_gate(args.recording, args, refuse=True)  # refused unless complete or allowed
    if args.out is None:  # the default folder is created only for a replay that goes ahead
        args.out = resolve_output_dir(args, "live")
        output_dir(args.out)  # refused unless complete or allowed
    script = load_script(args.recording, tick_rate=args.tick_rate)
    options = LiveOptions(
        nakama=args.nakama,
        server_key=args.server_key,
        create_rpc=args.create_rpc,
        create_payload=args.create_payload,
        match_id=args.match_id,
        signal_rpc=args.signal_rpc,
        out_dir=args.out,
        tail_ticks=args.tail_ticks,
        map_payload_ids=not args.no_map_payload_ids,
        redact_keys=tuple(args.redact_key),
    )
    from replay.cli._progress import Progress

    with Progress("live", len(script.actions), unit="action", enabled=not args.no_progress) as display:
        options.on_action = lambda done, tick: display.set(done, status=f"tick {tick}")
        live = asyncio.run(run_live(script, options))
    report = analyse(script, live, server_log=args.server_log, compare=args.compare)
    if args.json:
        print_json({**report.to_json(), "integrity": integrity.to_json()})
    else:
        print(format_live(report, integrity), end="")
    return report.exit_code
