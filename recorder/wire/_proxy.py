"""The recording proxy: stands between game clients and Nakama and records the realtime wire.

REST calls (authentication, HTTP RPC, anything else) pass through unchanged on a fresh upstream
connection each. A ``/ws`` upgrade opens the same URL upstream first, with the client's headers (an
upstream refusal, such as 401 for a bad token, is relayed as is), then accepts the client and bridges
messages both ways, forwarding each message before recording it so recording adds no latency. Closes are
relayed with their code and reason; an upstream that vanishes without a close frame closes the client
with 1014 "upstream went away", and the recording says so. ``WireRecorder`` decides the files and
redacts every secret before it is written.

Bounds (``ProxyLimits``): at most ``max_connections`` sockets at once (one more is accepted and closed
at once with 1013 "proxy connection limit reached (N sockets)", recorded); messages of at most
``max_message`` bytes either way (a bigger one closes that socket with 1009); at most ``max_queue``
received messages waiting per side of a socket, past which the proxy stops reading that side, so a fast
sender is slowed down to what the other side takes (TCP backpressure) instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recorder.wire import session_token
from recorder.wire._addresses import parse_server_url
from recorder.wire._recorder import WireRecorder
from recorder.wire._redact import Redactor
from recorder.wire._wsio import (
    DEFAULT_MAX_MESSAGE,
    DEFAULT_MAX_QUEUE,
    App,
    HttpRequest,
    HttpResponse,
    HttpServer,
    WebSocket,
    http_request,
    json_response,
    start_server,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["ProxyLimits", "ProxyStats", "RecordingProxy", "start_proxy", "UPSTREAM_GONE", "TRY_AGAIN_LATER"]

UPSTREAM_GONE = (1014, "upstream went away")
TRY_AGAIN_LATER = 1013
_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
    "content-length",
}
# the client's upgrade headers that are not forwarded upstream: the handshake's own, made anew there
_HANDSHAKE = _HOP | {
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
}
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


def _sendable(code: int | None) -> int:
    return code if code is not None and (code in _SENDABLE or 3000 <= code <= 4999) else 1000


@dataclass(frozen=True)
class ProxyLimits:
    """What one proxy holds at most (see the module docstring)."""

    max_connections: int = 1024
    max_message: int = DEFAULT_MAX_MESSAGE
    max_queue: int = DEFAULT_MAX_QUEUE

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_message", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class ProxyStats:
    http_requests: int = 0
    sockets: int = 0
    refused: int = 0  # over max_connections
    to_server: int = 0
    to_client: int = 0
    upstream_failures: int = 0


class RecordingProxy(App):
    """The proxy as a ``recorder.wire._wsio`` app."""

    def __init__(
        self,
        upstream: str,
        recorder: WireRecorder,
        *,
        salt: bytes | None = None,
        open_timeout: float = 10.0,
        limits: ProxyLimits | None = None,
    ):
        address = parse_server_url(upstream, option="--upstream", schemes=("http", "ws"))
        self.host, self.port = address.host, address.port
        self.recorder = recorder
        self.salt = salt if salt is not None else secrets.token_bytes(16)
        self.open_timeout = open_timeout
        self.limits = limits if limits is not None else ProxyLimits()
        self.active = 0  # sockets being bridged (or opening upstream) now
        self.stats = ProxyStats()

    async def http(self, request: HttpRequest) -> HttpResponse:
        self.stats.http_requests += 1
        headers = [(k, v) for k, v in request.headers.raw_items() if k.lower() not in _HOP and k.lower() != "host"]
        try:
            status, resp_headers, body = await http_request(
                self.host, self.port, request.method, request.target, headers, request.body, timeout=30.0
            )
        except (TimeoutError, OSError, ConnectionError) as exc:
            self.stats.upstream_failures += 1
            msg = f"upstream unreachable: {type(exc).__name__}"
            return json_response(502, json.dumps({"error": msg, "message": msg, "code": 14}))
        kept = tuple((k, v) for k, v in resp_headers if k.lower() not in _HOP)
        return HttpResponse(status, body, kept)

    async def websocket(self, request: HttpRequest, accept: Callable[[], Awaitable[WebSocket]]) -> HttpResponse | None:
        if self.active >= self.limits.max_connections:
            await self._refuse(request, accept)
            return None
        self.active += 1
        try:
            return await self._bridge_socket(request, accept)
        finally:
            self.active -= 1

    def _open_record(self, request: HttpRequest) -> str:
        """Register the socket with the recorder: who it is (from its token's claims, read without the
        key, as Nakama reads it: the ``Authorization: Bearer`` header first, else the ``token`` query)."""
        auth = request.headers.get("Authorization")
        token = (
            auth[len("Bearer ") :]
            if auth is not None and auth.startswith("Bearer ")
            else request.query.get("token", "")
        )
        claims = session_token.decode(token) if token else None
        return self.recorder.open_socket(
            session_token.pseudonym(token, self.salt) if token else "",
            claims.user_id if claims else "",
            claims.username if claims else "",
            dict(claims.vars) if claims else {},
            request.query,
            headers=request.headers.raw_items(),
        )

    async def _refuse(self, request: HttpRequest, accept: Callable[[], Awaitable[WebSocket]]) -> None:
        self.stats.refused += 1
        try:
            client = await accept()
        except ConnectionError:
            return
        name = self._open_record(request)
        reason = f"proxy connection limit reached ({self.limits.max_connections} sockets)"
        await client.close(TRY_AGAIN_LATER, reason)
        self.recorder.close_socket(name, "in", TRY_AGAIN_LATER, reason)

    async def _bridge_socket(
        self, request: HttpRequest, accept: Callable[[], Awaitable[WebSocket]]
    ) -> HttpResponse | None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        uri = f"ws://{self.host}:{self.port}{request.target}"
        forwarded = [(k, v) for k, v in request.headers.raw_items() if k.lower() not in _HANDSHAKE]
        try:
            upstream = await connect(
                uri,
                compression=None,
                max_size=self.limits.max_message,
                ping_interval=None,
                open_timeout=self.open_timeout,
                close_timeout=5,
                max_queue=self.limits.max_queue,
                proxy=None,
                additional_headers=forwarded,
                user_agent_header=None,
            )
        except InvalidStatus as exc:
            r = exc.response
            return HttpResponse(
                r.status_code,
                bytes(r.body or b""),
                tuple((k, v) for k, v in r.headers.raw_items() if k.lower() not in _HOP),
            )
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            self.stats.upstream_failures += 1
            return json_response(502, json.dumps({"error": f"upstream unreachable: {type(exc).__name__}", "code": 14}))
        try:
            client = await accept()
        except ConnectionError:
            await upstream.close()
            return None
        name = self._open_record(request)
        self.stats.sockets += 1
        await _bridge(name, client, upstream, self.recorder, self.stats)
        return None


async def _bridge(
    name: str, client: WebSocket, upstream: ClientConnection, recorder: WireRecorder, stats: ProxyStats
) -> None:
    from websockets.exceptions import ConnectionClosed

    closed: list[tuple[str, int | None, str]] = []  # who closed first: ("out"|"in", code, reason)

    async def client_to_server() -> None:
        while True:
            msg = await client.recv()
            if msg is None:
                break
            t = recorder.now()
            try:
                await upstream.send(msg)
            except ConnectionClosed:
                recorder.envelope(name, "out", msg, t)  # the client did send it; the server never got it
                return
            stats.to_server += 1
            recorder.envelope(name, "out", msg, t)
        if not closed:
            if client.closed_by == "client":
                closed.append(("out", client.close_code, client.close_reason))
            elif client.closed_by == "server":  # the proxy itself is shutting down
                closed.append(("in", client.close_code, client.close_reason))
            else:
                closed.append(("out", 1006, "client connection lost"))

    async def server_to_client() -> None:
        try:
            async for msg in upstream:
                t = recorder.now()
                await client.send(msg)
                stats.to_client += 1
                recorder.envelope(name, "in", msg, t)
        except ConnectionClosed:
            pass
        if not closed:
            sent, rcvd = upstream.protocol.close_sent, upstream.close_code
            if sent is not None and sent.code == 1009:  # the server's message was over the proxy's limit
                closed.append(("in", 1009, f"server message too big: {sent.reason}"[:123]))
            elif rcvd is None or rcvd == 1006:
                closed.append(("in", *UPSTREAM_GONE))
            else:
                closed.append(("in", rcvd, upstream.close_reason or ""))

    tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        direction, code, reason = closed[0] if closed else ("in", 1001, "proxy stopped")
        if direction == "out":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(upstream.close(_sendable(code), reason if code in _SENDABLE else ""), 10)
        else:
            await client.close(_sendable(code), reason)
        recorder.close_socket(name, direction, code, reason)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await upstream.close()
        recorder.close_socket(name, "in", 1001, "proxy stopped")  # no-op unless cancelled before recording


async def start_proxy(
    upstream: str,
    out_dir: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    flush_every: float = 0.5,
    limits: ProxyLimits | None = None,
    redact_keys: tuple[str, ...] = (),
) -> tuple[HttpServer, RecordingProxy, Callable[[], Awaitable[None]]]:
    """Start a proxy; returns the server, the app and an async ``stop()`` that closes sockets and files.
    ``redact_keys``: JSON keys to redact beyond the tokens (``--redact-key``)."""
    limits = limits if limits is not None else ProxyLimits()
    recorder = WireRecorder(out_dir, tags={"upstream": upstream}, redactor=Redactor(redact_keys))
    app = RecordingProxy(upstream, recorder, limits=limits)
    server = await start_server(app, host, port, max_message=limits.max_message, max_queue=limits.max_queue)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(flush_every)
            recorder.flush()

    flush_task = asyncio.create_task(flusher())

    async def stop() -> None:
        flush_task.cancel()
        await server.close(1001, "proxy shutting down", timeout=5.0)
        recorder.close()

    return server, app, stop
