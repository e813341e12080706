"""Run a local Nakama-compatible server that hosts a match handler (Python, Lua or JavaScript) in the deterministic
runtime, in real time at the handler's tick rate. Point a game client at it: device (or custom)
authentication with the server key, session tokens nakama-js can decode, the realtime socket at
/ws?token=...&format=json, socket and HTTP RPC (built-in create_match replies {"match_id": "..."}; the
payload object becomes match_init's params), match_join with metadata, match_data_send, match_leave,
presence events and Nakama's error codes. A handler error closes every participant's socket with 1000
"server-side session disconnect", as Nakama does. Every match is recorded as it runs into
--out/<match id>.nkrec (a handler-call recording that `nakama-replay` can replay), without secrets:
tokens, anything shaped like a JWT and the values of --redact-key keys are written as <redacted>.
A client that does not read what it is sent is disconnected once --outgoing-queue-size messages wait
for it (1000 "session outgoing queue full", as Nakama does); its leave (reason 4) is recorded.

Standard error gets a line per match start, crash (callback, tick, error), hang and stop, and per client
disconnected for a full queue. Handlers run in the server's process: a callback that loops past
--hang-timeout is stopped and its match crashes (the whole server waits meanwhile); one blocked in C
stalls the server (replay the recording with `nakama-replay reproduce`, which supervises the handler)."""

from __future__ import annotations

import argparse
import sys

from replay.cli._args import input_file, listen_address, output_dir, positive, seconds, whole
from replay.cli._common import (
    add_module_path_flag,
    add_out_flag,
    add_redact_flag,
    default_output_help,
    module_paths,
    print_json,
    resolve_output_dir,
    stderr_if_json,
)

HELP = "serve a match handler to real game clients as a local Nakama (recording every match)"
EXAMPLES = (
    "nakama-replay serve --handler fixtures/handlers/arena.py",
    "nakama-replay serve --handler modules/arena.lua --listen 127.0.0.1:7350 -o recordings/",
)
EXIT_CODES = {
    0: "stopped cleanly (Ctrl-C or SIGTERM)",
    2: "bad input (a handler that does not load, an option out of range, an address in use)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--handler",
        required=True,
        metavar="H",
        help="handler: file.py, file.py:Class, module.lua or bundle.js[:MATCH] (.ts is compiled first)",
    )
    p.add_argument(
        "--listen",
        type=listen_address(7350),
        default="127.0.0.1:7350",
        metavar="HOST:PORT",
        help="default 127.0.0.1:7350",
    )
    add_out_flag(p, "folder for the match recordings (" + default_output_help("serve") + ")", metavar="DIR")
    p.add_argument("--node", default="nakama1", help="node name, the suffix of match ids (default nakama1)")
    p.add_argument("--server-key", default="defaultkey", help="server key for Basic auth (default defaultkey)")
    p.add_argument("--http-key", default="defaulthttpkey", help="runtime HTTP key for /v2/rpc (default defaulthttpkey)")
    p.add_argument(
        "--rpc",
        action="append",
        default=[],
        metavar="FILE",
        help="register RPCs from this file (repeatable): a .py file's rpc_<id>(ctx, logger, nk, payload) functions, "
        "a .js/.ts bundle's initializer.registerRpc calls (a JavaScript handler's own RPCs are registered anyway)",
    )
    p.add_argument("--seed", type=whole, default=0, help="seed of the runtime's time/random/uuid sources")
    p.add_argument("--no-record", action="store_true", help="do not write match recordings")
    p.add_argument(
        "--hang-timeout",
        type=seconds,
        default=5.0,
        metavar="S",
        help="seconds before a callback counts as hung and its match crashes (default 5)",
    )
    add_module_path_flag(p)
    add_redact_flag(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="when stopped, print one JSON object for scripts (address, output folder, recordings); the "
        "lines that are printed otherwise go to stderr",
    )
    p.add_argument(
        "--outgoing-queue-size",
        type=positive,
        default=64,
        metavar="N",
        help="messages waiting for a slow client before it is disconnected (Nakama's "
        "socket.outgoing_queue_size, default 64)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from replay.cli._serving import run_until_signal
    from replay.live._server import ServerConfig, start_nakama_server

    host, port = args.listen.host, args.listen.port
    if not args.no_record and args.out is not None:
        output_dir(args.out)
    module_path = module_paths(args)
    for rpc_file in args.rpc:
        input_file(rpc_file, "Python or JavaScript RPC file")
    if not args.no_record and args.out is None:  # the default folder, once the options are known to be good
        args.out = resolve_output_dir(args, "serve")
        output_dir(args.out)
    config = ServerConfig(
        args.handler,
        out_dir=args.out or ServerConfig.out_dir,
        node=args.node,
        server_key=args.server_key,
        http_key=args.http_key,
        rpc_files=list(args.rpc),
        seed=args.seed,
        record=not args.no_record,
        hang_timeout=args.hang_timeout,
        on_event=lambda line: print(line, file=sys.stderr, flush=True),
        outgoing_queue_size=args.outgoing_queue_size,
        redact_keys=tuple(args.redact_key),
        module_path=module_path,
    )

    say = stderr_if_json(args)
    summary: dict[str, object] = {"handler": args.handler, "out": None if args.no_record else args.out}

    async def main() -> None:
        server, app = await start_nakama_server(config, host, port)
        summary["listen"] = f"http://{host}:{server.port}"
        line = f"serving {args.handler} as Nakama on http://{host}:{server.port} (server key {config.server_key!r})"
        try:
            await run_until_signal(ready=lambda: say(line))
        finally:
            await app.close()
            await server.close(1001, "server shutting down")
            say(f"stopped; {len(app.recordings)} match recordings in {args.out}")
            for path in app.recordings:
                say(f"  {path}")
            summary["recordings"] = [str(path) for path in app.recordings]

    asyncio.run(main())
    if args.json:
        print_json(summary)
    return 0
