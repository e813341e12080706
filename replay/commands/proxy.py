"""Run a recording proxy in front of a Nakama server. Point game clients at --listen instead of Nakama:
REST calls (authentication, HTTP RPC) pass through unchanged; every realtime socket (/ws) is bridged to
the upstream and each envelope, both directions, is recorded with its socket, direction and monotonic
time, plus socket opens and closes with their codes and reasons. Output: one wire recording per match id
in --out (DIR/<match id>.nkrec) and DIR/unmatched.nkrec for sockets that never joined a match. Session
tokens are never written (each session gets a pseudonym); client versions come from session vars.
Ctrl-C (SIGINT) or SIGTERM closes every socket and flushes every file."""

from __future__ import annotations

import argparse

from replay.commands._args import listen_address, output_dir, server_url

HELP = "record the realtime wire between game clients and a Nakama server"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", type=listen_address(7349), default="127.0.0.1:7349", metavar="HOST:PORT",
                   help="address to accept clients on (default 127.0.0.1:7349; loopback unless you say otherwise)")
    p.add_argument("--upstream", type=server_url, default="http://127.0.0.1:7350", metavar="URL",
                   help="the Nakama server (default http://127.0.0.1:7350)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the wire recordings")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from recorder.proxy import start_proxy
    from replay.commands._serving import run_until_signal

    host, port = args.listen.host, args.listen.port
    output_dir(args.out)

    async def main() -> None:
        server, app, stop = await start_proxy(args.upstream, args.out, host, port)
        print(f"proxy listening on http://{host}:{server.port} -> {args.upstream}, recording into {args.out}", flush=True)
        try:
            await run_until_signal()
        finally:
            await stop()
            s = app.stats
            print(
                f"proxy stopped: {s.sockets} sockets, {s.to_server} envelopes to server, {s.to_client} to clients, "
                f"{s.http_requests} HTTP requests; {app.recorder.events} events in {len(app.recorder.paths)} files",
                flush=True,
            )
            for path in app.recorder.paths:
                print(f"  {path}", flush=True)

    asyncio.run(main())
    return 0
