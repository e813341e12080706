"""Run a recording proxy in front of a Nakama server. Point game clients at --listen instead of Nakama:
REST calls (authentication, HTTP RPC) pass through unchanged; every realtime socket (/ws) is bridged to
the upstream and each envelope, both directions, is recorded with its socket, direction and monotonic
time, plus socket opens and closes with their codes and reasons. Output: one wire recording per match id
in --out (DIR/<match id>.nkrec) and DIR/unmatched.nkrec for sockets outside a match. Secrets are never
written: session and refresh tokens, anything shaped like a JWT, Authorization and Cookie headers, and
the values of --redact-key keys become <redacted> (each session gets a pseudonym; the recording's header
lists the redactions). Client versions come from session vars or join metadata.

Bounds: at most --max-connections sockets at once (more are closed with 1013 and a reason), messages of
at most --max-message bytes (a bigger one closes its socket with 1009), at most --max-queue messages
waiting per side of a socket (then the fast side is slowed down, nothing is dropped), and at most 64 KiB
held per socket before it joins a match (then it streams into unmatched.nkrec).
Ctrl-C (SIGINT) or SIGTERM closes every socket and flushes every file."""

from __future__ import annotations

import argparse

from replay.cli._args import listen_address, output_dir, positive, server_url
from replay.cli._common import add_out_flag, add_redact_flag, print_json, stderr_if_json

HELP = "record the realtime wire between game clients and a Nakama server"
EXAMPLES = ("nakama-replay proxy --upstream http://127.0.0.1:7350 -o wire/ --redact-key password",)
EXIT_CODES = {
    0: "stopped cleanly (Ctrl-C or SIGTERM)",
    2: "bad input (an option out of range, an address in use)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--listen",
        type=listen_address(7349),
        default="127.0.0.1:7349",
        metavar="HOST:PORT",
        help="address to accept clients on (default 127.0.0.1:7349; loopback unless you say otherwise)",
    )
    p.add_argument(
        "--upstream",
        type=server_url,
        default="http://127.0.0.1:7350",
        metavar="URL",
        help="the Nakama server (default http://127.0.0.1:7350)",
    )
    add_out_flag(p, "folder for the wire recordings", metavar="DIR", required=True)
    add_redact_flag(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="when stopped, print one JSON object for scripts (counts, files written); the lines that are "
        "printed otherwise go to stderr",
    )
    p.add_argument(
        "--max-connections",
        type=positive,
        default=1024,
        metavar="N",
        help="sockets bridged at once; one more is closed with 1013 (default 1024)",
    )
    p.add_argument(
        "--max-message",
        type=positive,
        default=4 * 1024 * 1024,
        metavar="BYTES",
        help="largest message either way; a bigger one closes its socket with 1009 (default 4194304)",
    )
    p.add_argument(
        "--max-queue",
        type=positive,
        default=16,
        metavar="N",
        help="received messages waiting per side of a socket before the proxy stops reading it (default 16)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from recorder.wire import ProxyLimits, start_proxy
    from replay.cli._serving import run_until_signal

    host, port = args.listen.host, args.listen.port
    output_dir(args.out)

    say = stderr_if_json(args)
    summary: dict[str, object] = {"upstream": args.upstream, "out": args.out}

    async def main() -> None:
        limits = ProxyLimits(args.max_connections, args.max_message, args.max_queue)
        server, app, stop = await start_proxy(
            args.upstream, args.out, host, port, limits=limits, redact_keys=tuple(args.redact_key)
        )
        summary["listen"] = f"http://{host}:{server.port}"
        line = f"proxy listening on http://{host}:{server.port} -> {args.upstream}, recording into {args.out}"
        try:
            await run_until_signal(ready=lambda: say(line))
        finally:
            await stop()
            s = app.stats
            summary.update(
                sockets=s.sockets,
                to_server=s.to_server,
                to_client=s.to_client,
                http_requests=s.http_requests,
                refused=s.refused,
                events=app.recorder.events,
                files=[str(path) for path in app.recorder.paths],
            )
            say(
                f"proxy stopped: {s.sockets} sockets, {s.to_server} envelopes to server, {s.to_client} to clients, "
                f"{s.http_requests} HTTP requests; {app.recorder.events} events in {len(app.recorder.paths)} files"
                + (
                    f"; {s.refused} sockets refused (over --max-connections {args.max_connections})"
                    if s.refused
                    else ""
                )
            )
            for path in app.recorder.paths:
                say(f"  {path}")

    asyncio.run(main())
    if args.json:
        print_json(summary)
    return 0
