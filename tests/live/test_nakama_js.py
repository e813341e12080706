"""The real JavaScript client (@heroiclabs/nakama-js, with ws as its WebSocket in Node) against serve,
through the proxy in front of serve, and against playback of the proxy's recording.

Needs node and ``npm ci`` in tests/js (``.ci/run`` does it); skipped with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import pytest

from recorder.format import read_events
from recorder.wire import start_proxy, start_server
from replay.live import PlaybackServer, ServerConfig, load_scripts, start_nakama_server
from tests.common.leaks import leaks
from tests.common.paths import ROOT, TEST_HANDLERS

JS = ROOT / "tests" / "js"
ECHO = str(ROOT / "fixtures" / "handlers" / "wire_echo.py")
TOKEN_RPC = str(TEST_HANDLERS / "token_rpc.py")

if shutil.which("node") is None:
    pytest.skip("node is not installed (CI installs it; see .ci/run)", allow_module_level=True)
if not (JS / "node_modules" / "@heroiclabs" / "nakama-js").is_dir() or not (JS / "node_modules" / "ws").is_dir():
    pytest.skip("npm packages missing: run `npm ci` in tests/js (.ci/run does)", allow_module_level=True)


async def nakama_js(port: int, *extra: str, script: str = "nakama_match.mjs") -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / script),
        str(port),
        *extra,
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        raise
    assert out, f"nakama-js printed nothing; stderr: {err.decode()[-2000:]}"
    result = json.loads(out)
    assert "error" not in result, result["error"] + "\n" + err.decode()[-2000:]
    return result


def check_echo_match(r: dict) -> None:
    assert r["join"] == {
        "ana": {"size": 0, "self": "ana", "label": '{"kind":"echo"}'},
        "ben": {"size": 1, "self": "ben", "others": ["ana"]},
    }
    sent = [{"op_code": 1, "data": json.dumps({"x": i}, separators=(",", ":")), "sender": "ana"} for i in range(3)]
    for name in ("ana", "ben"):
        seen = r[name]
        assert seen["vars"] == {"client_version": "1.4.0"} and seen["username"] == name
        assert seen["data"] == sent
        assert seen["close"] == {"code": 1000, "reason": "server-side session disconnect"}
    assert r["ana"]["presences"] == [{"joins": ["ana"], "leaves": []}, {"joins": ["ben"], "leaves": []}]
    assert r["ben"]["presences"] == [{"joins": ["ben"], "leaves": []}]


def test_nakama_js_against_serve(tmp_path: Path) -> None:
    async def go() -> dict:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path)))
        try:
            return await nakama_js(server.port, "http-rpc")
        finally:
            await app.close()
            await server.close()

    r = asyncio.run(go())
    check_echo_match(r)
    assert r["http_rpc"]["payload"] == {"a": 1}
    header, events = read_events(tmp_path / f"{r['match_id']}.nkrec")
    assert events[-1].kind == "crash" and header.match_id == r["match_id"]


def test_nakama_js_through_proxy_then_playback_of_the_recording(tmp_path: Path) -> None:
    async def record() -> dict:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path / "serve")))
        proxy, _, stop = await start_proxy(f"http://127.0.0.1:{server.port}", tmp_path / "wire")
        try:
            return await nakama_js(proxy.port)
        finally:
            await stop()
            await app.close()
            await server.close()

    live = asyncio.run(record())
    check_echo_match(live)
    wire = tmp_path / "wire" / f"{live['match_id']}.nkrec"
    _, events = read_events(wire)
    sockets = {e.envelope["username"]: e.socket for e in events if e.event == "open"}
    assert set(sockets) == {"ana", "ben"}
    for name, socket in sockets.items():  # every envelope, both ways, in order, exactly as sent
        recorded = [(e.direction, e.envelope) for e in events if e.socket == socket and e.event == "envelope"]
        assert recorded == [(x["dir"], json.loads(x["text"])) for x in live["raw"][name]]
    closes = {e.socket: (e.direction, e.close_code, e.close_reason) for e in events if e.event == "close"}
    assert set(closes.values()) == {("in", 1000, "server-side session disconnect")}

    async def play() -> dict:
        app = PlaybackServer(load_scripts(str(wire)), fast=False)
        server = await start_server(app)
        try:
            r = await nakama_js(server.port)
            await asyncio.wait_for(app.done, 10)
            return r
        finally:
            await server.close()

    replayed = asyncio.run(play())
    check_echo_match(replayed)
    assert replayed["match_id"] == live["match_id"]

    def server_side(raw: list[dict]) -> list[dict]:  # what the server sent, without live pongs and cids
        out = []
        for x in raw:
            env = json.loads(x["text"])
            if x["dir"] == "in" and "pong" not in env:
                env.pop("cid", None)
                out.append(env)
        return out

    for name in ("ana", "ben"):
        assert server_side(replayed["raw"][name]) == server_side(live["raw"][name])


def test_nakama_js_tokens_never_reach_a_recording(tmp_path: Path) -> None:
    """nakama-js refreshes its session, connects with the new token, sends its tokens in rpc payloads (JSON
    and plain text, echoed back), gets tokens from an rpc and sends its token in match data, through the
    proxy in front of serve. No token, nor any part of one, is in any file either of them wrote; what is
    not secret (user, vars, payload shape, the match) is still there."""

    async def go() -> dict:
        server, app = await start_nakama_server(
            ServerConfig(ECHO, out_dir=str(tmp_path / "serve"), rpc_files=[TOKEN_RPC])
        )
        proxy, _, stop = await start_proxy(f"http://127.0.0.1:{server.port}", tmp_path / "wire")
        try:
            return await nakama_js(proxy.port, script="nakama_tokens.mjs")
        finally:
            await stop()
            await app.close()
            await server.close()

    r = asyncio.run(go())
    tokens = r["tokens"]
    assert len(tokens) == 6 and len(set(tokens)) == 6 and all(t.count(".") == 2 for t in tokens)  # refreshed: new ones
    assert json.loads(r["echo_json"])["refresh_token"] == tokens[3] and r["echo_text"] == "session " + tokens[2]
    assert json.loads(r["data"][0]) == {"token": tokens[2], "x": 1}  # the live client got everything verbatim
    files = sorted((tmp_path / "wire").glob("*.nkrec")) + sorted((tmp_path / "serve").glob("*.nkrec"))
    assert [f.name for f in files] == [f"{r['match_id']}.nkrec"] * 2
    assert leaks(files, tokens) == []

    header, events = read_events(tmp_path / "wire" / f"{r['match_id']}.nkrec")
    assert {"key:token", "key:refresh_token", "jwt", "header:authorization"} <= set(header.redactions)
    opened = next(e.envelope for e in events if e.event == "open")
    assert (opened["user_id"], opened["username"], opened["vars"]) == (
        r["user_id"],
        "tess",
        {"client_version": "2.1.0"},
    )
    assert opened["query"]["token"] == "<redacted>" and opened["session"].startswith("sess-")
    assert header.client_versions == {r["user_id"]: "2.1.0"}
    rpcs = [(e.direction, e.envelope["rpc"]) for e in events if e.event == "envelope" and "rpc" in e.envelope]
    assert rpcs[0] == ("out", {"id": "echo", "payload": '{"refresh_token":"<redacted>","note":"Bearer <redacted>"}'})
    assert rpcs[1] == ("in", {"id": "echo", "payload": '{"refresh_token":"<redacted>","note":"Bearer <redacted>"}'})
    assert [p["payload"] for _, p in rpcs[2:4]] == ["session <redacted>"] * 2
    issued = json.loads(rpcs[5][1]["payload"])
    assert issued == {"token": "<redacted>", "refresh_token": "<redacted>", "note": "use Bearer <redacted> for chat"}
    sent = [e.envelope["match_data_send"] for e in events if e.event == "envelope" and "match_data_send" in e.envelope]
    assert [json.loads(base64.b64decode(m["data"])) for m in sent] == [{"token": "<redacted>", "x": 1}]

    header, events = read_events(tmp_path / "serve" / f"{r['match_id']}.nkrec")  # serve's handler-call recording
    assert "jwt" in header.redactions and "key:token" in header.redactions
    messages = [m for e in events if e.kind == "loop" for m in e.messages]
    assert [json.loads(m.data) for m in messages] == [{"token": "<redacted>", "x": 1}]
