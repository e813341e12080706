"""serve, proxy and playback over real sockets on 127.0.0.1 with a Python client (websockets).

Every loop is bounded in count and time (``asyncio.wait_for``); every server binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from recorder.format import read_events, verify
from recorder.wire import HttpResponse, http_request, session_token, start_proxy, start_server
from replay.cli import main
from replay.live import PlaybackServer, ServerConfig, load_scripts, start_nakama_server
from tests.common.leaks import leaks
from tests.common.paths import ROOT

ECHO = str(ROOT / "fixtures" / "handlers" / "wire_echo.py")
BASIC = "Basic " + base64.b64encode(b"defaultkey:").decode()


def run(coro, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def authenticate(port: int, device: str, username: str, key: str = BASIC) -> tuple[int, dict]:
    status, _, body = await http_request(
        "127.0.0.1",
        port,
        "POST",
        f"/v2/account/authenticate/device?create=true&username={username}",
        [("Authorization", key), ("Content-Type", "application/json")],
        json.dumps({"id": device, "vars": {"client_version": "1.4.0"}}).encode(),
    )
    return status, json.loads(body)


class Client:
    """A scripted realtime client that keeps every envelope it sent and received."""

    def __init__(self, ws, name: str, tokens: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
        self.ws, self.name, self.sent, self.received = ws, name, [], []
        self.tokens = tokens  # session and refresh token
        self.cid = 0

    @classmethod
    async def open(cls, port: int, name: str) -> Client:
        status, body = await authenticate(port, f"device-{name}-0000", name)
        assert status == 200, body
        ws = await connect(f"ws://127.0.0.1:{port}/ws?lang=en&status=false&token={body['token']}&format=json")
        return cls(ws, name, (body["token"], body["refresh_token"]))

    async def send(self, obj: dict, with_cid: bool = True) -> None:
        if with_cid:
            self.cid += 1
            obj = {"cid": str(self.cid), **obj}
        self.sent.append(obj)
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout: float = 5.0) -> dict:
        obj = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(obj)
        return obj

    async def recv_until_closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        try:
            while True:
                await self.recv(timeout)
        except ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason


async def echo_match(port: int) -> tuple[Client, Client, str]:
    """ana creates and joins a match, ben joins, both exchange data, ben sends op code 99 (crash)."""
    ana, ben = await Client.open(port, "ana"), await Client.open(port, "ben")
    await ana.send({"rpc": {"id": "create_match", "payload": "{}"}})
    reply = await ana.recv()
    match_id = json.loads(reply["rpc"]["payload"])["match_id"]
    await ana.send({"match_join": {"match_id": match_id, "metadata": {"client_version": "1.4.0"}}})
    assert "match" in await ana.recv()
    assert (await ana.recv())["match_presence_event"]["joins"][0]["username"] == "ana"
    await ben.send({"match_join": {"match_id": match_id}})
    joined = (await ben.recv())["match"]
    assert joined["size"] == 1 and joined["presences"][0]["username"] == "ana" and joined["self"]["username"] == "ben"
    assert (await ben.recv())["match_presence_event"]["joins"][0]["username"] == "ben"
    assert (await ana.recv())["match_presence_event"]["joins"][0]["username"] == "ben"
    for i in range(3):
        data = base64.b64encode(json.dumps({"x": i}).encode()).decode()
        await ana.send({"match_data_send": {"match_id": match_id, "op_code": "1", "data": data}}, with_cid=False)
        for c in (ana, ben):
            got = (await c.recv())["match_data"]
            assert got["op_code"] == "1" and got["data"] == data and got["presence"]["username"] == "ana"
    await ben.send({"match_data_send": {"match_id": match_id, "op_code": 99, "data": "Ym9vbQ=="}}, with_cid=False)
    for c in (ana, ben):
        assert await c.recv_until_closed() == (1000, "server-side session disconnect")
    return ana, ben, match_id


def test_serve_auth_errors_are_nakamas(tmp_path: Path) -> None:
    """HTTP auth and RPCs, and a few realtime errors end to end (tests/realtime feeds the rest as literals)."""

    async def go() -> None:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path)))
        try:
            assert await authenticate(server.port, "device-xxxx-0000", "x", key="") == (
                401,
                {"error": "Server key required", "message": "Server key required", "code": 16},
            )
            bad = "Basic " + base64.b64encode(b"wrong:").decode()
            assert (await authenticate(server.port, "device-xxxx-0000", "x", key=bad))[1][
                "message"
            ] == "Server key invalid"
            status, body = await authenticate(server.port, "short", "x")
            assert (status, body["code"], body["message"]) == (400, 3, "Device ID invalid, must be 10-128 bytes.")
            status, body = await authenticate(server.port, "device-xxxx-0000", "x")
            assert status == 200 and body["created"] is True
            with pytest.raises(Exception, match="401"):
                await connect(f"ws://127.0.0.1:{server.port}/ws?token=nope&format=json")
            status, _, raw = await http_request(
                "127.0.0.1",
                server.port,
                "POST",
                "/v2/rpc/echo",
                [("Authorization", "Bearer " + body["token"])],
                b'"hi"',
            )
            assert (status, json.loads(raw)) == (200, {"payload": "hi"})
            status, _, raw = await http_request(
                "127.0.0.1",
                server.port,
                "POST",
                "/v2/rpc/nope",
                [("Authorization", "Bearer " + body["token"])],
                b'"hi"',
            )
            assert (status, json.loads(raw)["code"]) == (404, 5)
            c = await Client.open(server.port, "eve")
            await c.send({"match_join": {"match_id": "not-a-match"}})
            assert (await c.recv())["error"] == {"code": 3, "message": "Invalid match ID"}
            await c.send({"rpc": {"id": "create_match", "payload": "{}"}})
            mid = json.loads((await c.recv())["rpc"]["payload"])["match_id"]
            await c.send({"match_join": {"match_id": mid, "metadata": {"reject": "full"}}})
            assert (await c.recv())["error"] == {"code": 5, "message": "full"}
            await c.send({"ping": {}})
            assert (await c.recv()) == {"cid": str(c.cid), "pong": {}}
            await c.ws.send('{"match_data_send": {"op_code": "x"}}')
            assert await c.recv_until_closed() == (1000, "received malformed payload")
        finally:
            await app.close()
            await server.close()

    run(go())


def test_serve_hosts_the_runtime_and_records_the_match(tmp_path: Path) -> None:
    async def go() -> str:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path)))
        try:
            _, _, match_id = await echo_match(server.port)
        finally:
            await app.close()
            await server.close()
        return match_id

    match_id = run(go())
    assert verify(tmp_path / f"{match_id}.nkrec").state == "complete"  # serve seals its capture on a clean close
    header, events = read_events(tmp_path / f"{match_id}.nkrec")
    assert header.match_id == match_id and header.source == "serve"
    assert header.tick_rate == 10 and header.label == '{"kind":"echo"}'  # what match_init returned (issue #14.9)
    joins = [p for e in events if e.kind == "join" for p in e.presences]
    assert [p.reason for p in joins] == [0, 0]  # Nakama 3.40 gives match_join presences reason 0 (issue #14.4)
    kinds = [e.kind for e in events]
    assert kinds[0] == "init" and kinds.count("join") == 2 and kinds[-1] == "crash"
    assert events[-1].callback == "match_loop" and "boom: op code 99" in events[-1].error


def _wire_envelopes(path: Path) -> dict[str, list[tuple[str, dict]]]:
    _, events = read_events(path)
    out: dict[str, list[tuple[str, dict]]] = {}
    for e in events:
        if e.event == "envelope":
            out.setdefault(e.socket, []).append((e.direction, e.envelope))
    return out


def test_proxy_records_every_envelope_both_ways_and_playback_replays_it(tmp_path: Path) -> None:
    async def go() -> tuple[Client, Client, str]:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path / "serve")))
        proxy, _papp, stop = await start_proxy(f"http://127.0.0.1:{server.port}", tmp_path / "wire")
        try:
            return await echo_match(proxy.port)
        finally:
            await stop()
            await app.close()
            await server.close()

    ana, ben, match_id = run(go())
    path = tmp_path / "wire" / f"{match_id}.nkrec"
    assert verify(path).state == "complete"  # the proxy's wire recorder seals each file when it stops
    header, events = read_events(path)
    assert header.recording_kind == "wire" and header.match_id == match_id
    assert set(header.client_versions.values()) == {"1.4.0"} and len(header.client_versions) == 2
    assert leaks([path], [*ana.tokens, *ben.tokens]) == []
    assert {e.envelope["query"]["token"] for e in events if e.event == "open"} == {"<redacted>"}
    recorded = _wire_envelopes(path)
    for client, socket in ((ana, "ws1"), (ben, "ws2")):
        assert [env for d, env in recorded[socket] if d == "out"] == client.sent
        assert [env for d, env in recorded[socket] if d == "in"] == client.received
    closes = [(e.socket, e.direction, e.close_code, e.close_reason) for e in events if e.event == "close"]
    assert sorted(closes) == [
        ("ws1", "in", 1000, "server-side session disconnect"),
        ("ws2", "in", 1000, "server-side session disconnect"),
    ]

    # playback: the same client script gets the same envelopes in the same order, and the same close
    async def replay() -> list[Client]:
        app = PlaybackServer(load_scripts(str(path)), fast=True)
        server = await start_server(app)
        try:
            clients = []
            for original in (ana, ben):
                c = await Client.open(server.port, original.name)
                clients.append(c)
            for c, original in zip(clients, (ana, ben)):
                for obj in original.sent:
                    await c.send({k: v for k, v in obj.items() if k != "cid"}, with_cid="cid" in obj)
            for c in clients:
                await c.recv_until_closed()
            await asyncio.wait_for(app.done, 10)
            return clients
        finally:
            await server.close()

    clients = run(replay())
    for c, original in zip(clients, (ana, ben)):
        assert c.received == original.received
        assert (c.ws.close_code, c.ws.close_reason) == (1000, "server-side session disconnect")


def test_proxy_with_a_bearer_token_keeps_the_user_and_writes_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A socket authenticated by ``Authorization: Bearer`` (no token in the URL): the recording names the
    user, username and client version read from the token, and holds neither the token nor the cookie."""

    async def go() -> tuple[dict, list[dict]]:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path / "serve")))
        proxy, _, stop = await start_proxy(
            f"http://127.0.0.1:{server.port}", tmp_path / "wire", redact_keys=("secret",)
        )
        try:
            status, body = await authenticate(proxy.port, "device-bea-0000", "bea")
            assert status == 200
            headers = {"Authorization": "Bearer " + body["token"], "Cookie": "sid=cookie-value-1234"}
            async with connect(f"ws://127.0.0.1:{proxy.port}/ws?format=json", additional_headers=headers) as ws:
                replies = []
                for i, payload in enumerate((body["refresh_token"], json.dumps({"secret": "s3cr3t-value", "n": 1}))):
                    await ws.send(json.dumps({"cid": str(i), "rpc": {"id": "echo", "payload": payload}}))
                    replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            async with connect(f"ws://127.0.0.1:{proxy.port}/ws?format=json&token={body['token']}") as ws:
                await ws.send('{"cid":"9","ping":{}}')  # the same session through the URL
                await asyncio.wait_for(ws.recv(), 10)
            return body, replies
        finally:
            await stop()
            await app.close()
            await server.close()

    body, replies = run(go())
    assert replies[0]["rpc"]["payload"] == body["refresh_token"]  # the upstream got the header and answered
    path = tmp_path / "wire" / "unmatched.nkrec"
    assert leaks([path], [body["token"], body["refresh_token"], "cookie-value-1234", "s3cr3t-value"]) == []
    header, events = read_events(path)
    assert "key:secret" in header.redactions
    opened, by_query = (e.envelope for e in events if e.event == "open")
    assert opened["session"] == by_query["session"]  # one session, one pseudonym, however it authenticates
    claims = session_token.decode(body["token"])
    assert claims is not None and claims.username == "bea"
    assert (opened["user_id"], opened["username"], opened["vars"]) == (
        claims.user_id,
        "bea",
        {"client_version": "1.4.0"},
    )
    assert opened["session"].startswith("sess-") and "token" not in opened["query"]
    assert opened["headers"]["authorization"] == "<redacted>" and opened["headers"]["cookie"] == "<redacted>"
    payloads = [e.envelope["rpc"]["payload"] for e in events if e.event == "envelope" and "rpc" in e.envelope]
    assert payloads == ["<redacted>"] * 2 + ['{"secret":"<redacted>","n":1}'] * 2
    assert main(["inspect", str(path)]) == 0  # inspect says what was redacted
    assert "redacted   key:token, key:refresh_token, key:secret, jwt, header:authorization" in capsys.readouterr().out


class _Echo:
    """A bare upstream: answers every message with itself; ``drop_after`` messages it vanishes (no close)."""

    def __init__(self, drop_after: int | None = None) -> None:
        self.drop_after, self.received = drop_after, 0

    async def http(self, request):  # type: ignore[no-untyped-def]
        return HttpResponse(200, b"{}")

    async def websocket(self, request, accept):  # type: ignore[no-untyped-def]
        ws = await accept()
        while (msg := await ws.recv()) is not None:
            self.received += 1
            if self.drop_after is not None and self.received >= self.drop_after:
                ws.abort()
                return None
            await ws.send(msg)
        return None


def test_proxy_200_concurrent_sockets_lose_nothing(tmp_path: Path) -> None:
    sockets, per_socket = 200, 10

    async def go() -> tuple[int, int, int]:
        upstream_app = _Echo()
        upstream = await start_server(upstream_app)
        proxy, papp, stop = await start_proxy(f"http://127.0.0.1:{upstream.port}", tmp_path)
        try:

            async def one(i: int) -> int:
                async with connect(f"ws://127.0.0.1:{proxy.port}/ws?format=json&token=t{i}", open_timeout=20) as ws:
                    for j in range(per_socket):
                        await ws.send(json.dumps({"cid": str(j), "rpc": {"id": f"s{i}", "payload": str(j)}}))
                    got = [json.loads(await asyncio.wait_for(ws.recv(), 20)) for _ in range(per_socket)]
                    assert [g["cid"] for g in got] == [str(j) for j in range(per_socket)]  # order kept
                    return len(got)

            counts = await asyncio.gather(*(one(i) for i in range(sockets)))
            return sum(counts), upstream_app.received, papp.stats.to_client
        finally:
            await stop()
            await upstream.close()

    echoed, upstream_got, forwarded = run(go(), 120)
    assert echoed == upstream_got == forwarded == sockets * per_socket
    _, events = read_events(tmp_path / "unmatched.nkrec")
    envelopes = [e for e in events if e.event == "envelope"]
    assert len(envelopes) == 2 * sockets * per_socket
    assert sum(1 for e in events if e.event == "close") == sockets


def test_garbage_from_one_client_closes_only_that_socket(tmp_path: Path) -> None:
    async def go() -> None:
        server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(tmp_path / "serve")))
        proxy, _papp, stop = await start_proxy(f"http://127.0.0.1:{server.port}", tmp_path / "wire")
        try:
            good, bad = await Client.open(proxy.port, "good"), await Client.open(proxy.port, "bad")
            await bad.ws.send("}{ not json")
            assert await bad.recv_until_closed() == (1000, "received malformed payload")
            await good.send({"ping": {}})
            assert await good.recv() == {"cid": "1", "pong": {}}
            await good.ws.close()
        finally:
            await stop()
            await app.close()
            await server.close()

    run(go())
    _, events = read_events(tmp_path / "wire" / "unmatched.nkrec")
    bad = [e for e in events if e.socket == "ws2"]
    assert [(e.event, e.direction) for e in bad] == [("open", "out"), ("envelope", "out"), ("close", "in")]
    assert bad[1].raw == "}{ not json" and bad[1].envelope is None
    assert (bad[2].close_code, bad[2].close_reason) == (1000, "received malformed payload")
    good = [e for e in events if e.socket == "ws1"]
    assert [e.envelope for e in good if e.event == "envelope"] == [{"cid": "1", "ping": {}}, {"cid": "1", "pong": {}}]


def test_upstream_going_away_closes_clients_cleanly_and_is_recorded(tmp_path: Path) -> None:
    async def go() -> tuple[int | None, str]:
        upstream = await start_server(_Echo(drop_after=2))
        proxy, _papp, stop = await start_proxy(f"http://127.0.0.1:{upstream.port}", tmp_path)
        try:
            async with connect(f"ws://127.0.0.1:{proxy.port}/ws?format=json") as ws:
                await ws.send('{"cid":"1","ping":{}}')
                await asyncio.wait_for(ws.recv(), 5)
                await ws.send('{"cid":"2","ping":{}}')
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code, ws.close_reason
        finally:
            await stop()
            await upstream.close()

    assert run(go()) == (1014, "upstream went away")
    _, events = read_events(tmp_path / "unmatched.nkrec")
    close = [e for e in events if e.event == "close"]
    assert [(e.direction, e.close_code, e.close_reason) for e in close] == [("in", 1014, "upstream went away")]


def test_proxy_command_flushes_every_file_on_sigint(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    async def go() -> None:
        upstream = await start_server(_Echo())
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replay.cli",
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                f"http://127.0.0.1:{upstream.port}",
                "--out",
                str(tmp_path),
                "--max-connections",
                "1",
                "--redact-key",
                "secret",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
            assert "proxy listening on http://127.0.0.1:" in line, line
            port = int(line.split("http://127.0.0.1:")[1].split()[0])
            ws = await connect(f"ws://127.0.0.1:{port}/ws?format=json")
            for i in range(5):
                await ws.send(json.dumps({"cid": str(i), "rpc": {"id": "x", "payload": '{"secret": "pw-1234"}'}}))
                await asyncio.wait_for(ws.recv(), 5)
            extra = await connect(f"ws://127.0.0.1:{port}/ws?format=json")  # over --max-connections
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(extra.recv(), 10)
            assert (extra.close_code, extra.close_reason) == (1013, "proxy connection limit reached (1 sockets)")
            proc.send_signal(signal.SIGINT)  # with the socket still open
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (1001, "proxy shutting down")
            assert await asyncio.to_thread(proc.wait, 30) == 0
            out = await asyncio.to_thread(proc.stdout.read)  # type: ignore[union-attr]
            assert "1 sockets refused (over --max-connections 1)" in out, out
        finally:
            if proc.poll() is None:
                proc.kill()
            await upstream.close()

    run(go())
    header, events = read_events(tmp_path / "unmatched.nkrec", strict=True)
    ws1 = [e for e in events if e.socket == "ws1"]
    assert [e.event for e in ws1] == ["open"] + ["envelope"] * 10 + ["close"]
    assert (ws1[-1].direction, ws1[-1].close_code) == ("in", 1001)
    assert {e.envelope["rpc"]["payload"] for e in ws1 if e.event == "envelope"} == {'{"secret":"<redacted>"}'}
    assert "key:secret" in header.redactions
    assert [(e.event, e.close_code) for e in events if e.socket == "ws2"] == [("open", None), ("close", 1013)]
