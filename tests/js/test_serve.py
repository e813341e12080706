"""serve with JavaScript: a bundle's registerRpc functions (the handler's own and --rpc bundles) answer HTTP and
socket RPCs with Nakama's JS arguments; a thrown error is the client's error reply. Real sockets on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder.wire import http_request
from replay.errors import HandlerLoadError
from replay.live import ServerConfig, start_nakama_server
from tests.js.test_handler import bundle
from tests.live.test_wire import Client, authenticate, run

RPCS = """
function InitModule(ctx, logger, nk, initializer) {
  initializer.registerRpc("WhoAmI", whoAmI);
  initializer.registerRpc("boom", boom);
}
function whoAmI(ctx, logger, nk, payload) {
  logger.info("whoami %s", payload);
  return JSON.stringify({ user: ctx.userId, name: ctx.username, mode: ctx.executionMode, payload: payload,
                          bytes: nk.binaryToString(nk.stringToBinary(payload)).length });
}
function boom(ctx, logger, nk, payload) { return undefined.x; }
"""


def test_serve_answers_javascript_rpcs(tmp_path: Path) -> None:
    handler = bundle(tmp_path, "function hello(ctx, logger, nk, payload) { return 'hello ' + payload; }")
    handler.write_text(
        handler.read_text().replace(
            "initializer.registerMatch(", "initializer.registerRpc('hello', hello); initializer.registerMatch("
        )
    )
    rpc_file = tmp_path / "rpcs.js"
    rpc_file.write_text(RPCS)

    async def go() -> tuple[dict, dict, dict, dict]:
        config = ServerConfig(str(handler), out_dir=str(tmp_path / "serve"), rpc_files=[str(rpc_file)])
        server, app = await start_nakama_server(config)
        try:
            status, body = await authenticate(server.port, "device-js-rpc-0000", "ana")
            assert status == 200

            async def http_rpc(rpc_id: str) -> tuple[int, dict]:
                auth = [("Authorization", "Bearer " + body["token"])]
                code, _, raw = await http_request(
                    "127.0.0.1", server.port, "POST", f"/v2/rpc/{rpc_id}", auth, b'"h\\u00e9"'
                )
                return code, json.loads(raw)

            code, who = await http_rpc("whoami")  # ids are case-insensitive, as in Nakama
            assert code == 200
            code, failed = await http_rpc("boom")
            assert code != 200
            c = await Client.open(server.port, "bob")
            await c.send({"rpc": {"id": "hello", "payload": "bob"}})
            hello = await c.recv()
            await c.send({"rpc": {"id": "create_match", "payload": "{}"}})  # the built-in still creates matches
            created = await c.recv()
            await c.ws.close()
            return json.loads(who["payload"]), failed, hello, created
        finally:
            await app.close()
            await server.close()

    who, failed, hello, created = run(go())
    assert who == {"user": who["user"], "name": "ana", "mode": "rpc", "payload": "hé", "bytes": 2} and who["user"]
    assert failed["message"].startswith("TypeError: Cannot read property 'x' of undefined at boom (rpcs.js:")
    assert hello["rpc"] == {"id": "hello", "payload": "hello bob"}
    assert "match_id" in json.loads(created["rpc"]["payload"])


def test_an_rpc_bundle_that_does_not_load_is_a_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "rpcs.js"
    broken.write_text("function InitModule(ctx, logger, nk, initializer) { initializer.registerRpc('', null); }")
    with pytest.raises(HandlerLoadError, match="InitModule raised TypeError: expects a non empty string"):
        run(
            start_nakama_server(ServerConfig(str(bundle(tmp_path, "")), out_dir=str(tmp_path), rpc_files=[str(broken)]))
        )
