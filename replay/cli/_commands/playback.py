"""Play the server's side of a wire recording (made by `nakama-replay proxy`) to a real client build:
the same match, match_data and match_presence_event envelopes and the same socket close, at the
recorded times relative to the socket's open (or at once with --fast), so a client that crashed in
production on a server message crashes again at the same message. Point the client at --listen: its
authentication gets a token for the recorded user; the k-th socket it opens gets the k-th recorded
socket (or those named with --socket). Replies to requests (match_join, rpc) wait for the client's
request and carry its cid. Exits once every chosen socket has been played.

An unsealed, damaged or version-1 recording is refused with exit 3 (the sockets' last messages or closes
may be missing), unless --allow-incomplete, which plays its intact part."""

from __future__ import annotations

import argparse

from replay.cli._args import input_location, listen_address, seconds
from replay.cli._common import add_integrity_flags, integrity_gate, print_json, stderr_if_json

HELP = "play the server's side of a wire recording to a real game client"
EXAMPLES = ("nakama-replay playback wire/MATCH_ID.nkrec --listen 127.0.0.1:7350 --fast",)
EXIT_CODES = {
    0: "every chosen socket was played (or stopped by Ctrl-C or SIGTERM)",
    2: "bad input (not a wire recording, a --socket it does not have, an address in use)",
    3: "the recording is not complete (refused; --allow-incomplete plays its intact part)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a wire recording (.nkrec) from `nakama-replay proxy`")
    p.add_argument(
        "--listen",
        type=listen_address(7350),
        default="127.0.0.1:7350",
        metavar="HOST:PORT",
        help="default 127.0.0.1:7350",
    )
    p.add_argument("--fast", action="store_true", help="send without waiting for the recorded times")
    p.add_argument(
        "--socket",
        action="append",
        default=[],
        metavar="NAME",
        help="recorded socket to play (repeatable, in connection order); default: all, in open order",
    )
    p.add_argument(
        "--gate-timeout",
        type=seconds,
        default=30.0,
        metavar="S",
        help="how long a reply waits for the client's request before it is sent anyway (default 30)",
    )
    add_integrity_flags(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="when done, print one JSON object for scripts (sockets played, integrity); the lines that are "
        "printed otherwise go to stderr",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from recorder.errors import RecordingError
    from recorder.wire import start_server
    from replay.cli._serving import run_until_signal
    from replay.live._playback import PlaybackServer, load_scripts

    host, port = args.listen.host, args.listen.port
    input_location(args.recording, "recording")
    integrity = integrity_gate(args.recording, args, refuse=True)
    if not integrity.complete:
        print(f"warning: {args.recording}: {integrity.describe()}; playing its intact part", file=sys.stderr)
    scripts = load_scripts(args.recording)
    if args.socket:
        named = {s.name: s for s in scripts}
        missing = [n for n in args.socket if n not in named]
        if missing:
            raise RecordingError(f"{args.recording}: no socket {', '.join(missing)} (it has {', '.join(named)})")
        scripts = [named[n] for n in args.socket]

    say = stderr_if_json(args)
    summary: dict[str, object] = {
        "recording": args.recording,
        "sockets": [s.name for s in scripts],
        "integrity": integrity.to_json(),
    }

    async def main() -> None:
        app = PlaybackServer(
            scripts, fast=args.fast, gate_timeout=args.gate_timeout, log=lambda m: print(m, file=sys.stderr, flush=True)
        )
        server = await start_server(app, host, port)
        summary["listen"] = f"http://{host}:{server.port}"
        line = f"playback of {args.recording} ({len(scripts)} sockets) on http://{host}:{server.port}"
        try:
            await run_until_signal(app.done, ready=lambda: say(line))
        finally:
            await server.close(1001, "playback stopped")
            say(f"played {len(app.played)} of {len(scripts)} sockets")
            summary["played"] = list(app.played)

    asyncio.run(main())
    if args.json:
        print_json(summary)
    return 0
