"""A small HTTP/1.1 + WebSocket server and HTTP client on asyncio streams.

Nakama serves its REST API (``POST /v2/account/authenticate/device``, ``/v2/rpc/{id}``) and its realtime
socket (``GET /ws``) on one port; the websockets library's server speaks only the upgrade ``GET``. So this
module reads HTTP/1.1 requests itself (Content-Length and chunked bodies, keep-alive) and, for an upgrade,
drives websockets' sans-I/O ``ServerProtocol`` over the same stream (the library does the framing, masking,
fragments, pings and the close handshake). The proxy, the local server and playback are apps on top.

Limits refuse oversized input before allocating it: ``MAX_HEAD`` bytes of request head, ``max_body``
bytes of body, ``max_message`` bytes per WebSocket message (a bigger one fails the connection with 1009).
A WebSocket holds at most ``max_queue`` received messages that the app has not taken yet: past that it
stops reading, so a peer that sends faster than the app consumes is slowed by TCP instead of filling
memory; ``send`` waits while the peer does not read (asyncio's write buffer limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from recorder.errors import InvalidValue, OptionError

__all__ = [
    "MAX_HEAD",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_MAX_QUEUE",
    "HttpRequest",
    "HttpResponse",
    "WebSocket",
    "App",
    "HttpServer",
    "start_server",
    "http_request",
    "json_response",
]

MAX_HEAD = 64 * 1024
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
DEFAULT_MAX_QUEUE = 16
_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


#: the HTTP status for a request whose ``field`` broke a rule (``InvalidValue``): 400 unless listed
_STATUS = {"head size": 431, "body size": 413}


def _status(bad: InvalidValue) -> int:
    return _STATUS.get(bad.field, 400)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as read from the wire. ``target`` is the raw request target (path and query)."""

    method: str
    target: str
    headers: Headers
    body: bytes = b""
    version: str = "HTTP/1.1"
    head: bytes = b""  # the request head as received (fed to the WebSocket protocol on upgrade)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each (blank values kept)."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query, keep_blank_values=True).items()}

    @property
    def is_upgrade(self) -> bool:
        return self.method == "GET" and "websocket" in self.headers.get("Upgrade", "").lower()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)

    def encode(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}"]
        skip = {"content-length", "connection", "transfer-encoding"}
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in skip]
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def json_response(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, text.encode("utf-8"))


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise InvalidValue("head", "connection closed inside the request head") from None
    except asyncio.LimitOverrunError:
        raise InvalidValue("head size", f"request head larger than {MAX_HEAD} bytes") from None
    return head


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    start, headers = lines[0], []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise InvalidValue("header line", f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return start, headers


async def _read_body(reader: asyncio.StreamReader, headers: Headers, max_body: int, until_eof: bool = False) -> bytes:
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise InvalidValue("chunk size", "malformed chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > max_body:
                raise InvalidValue("body size", f"body larger than {max_body} bytes")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("Content-Length")
    if length is None:
        return await reader.read(max_body + 1) if until_eof else b""
    try:
        n = int(length)
    except ValueError:
        raise InvalidValue("Content-Length", f"malformed Content-Length {length!r}") from None
    if n < 0 or n > max_body:
        raise InvalidValue("body size", f"body of {n} bytes is over the limit of {max_body}")
    return await reader.readexactly(n)


async def _read_request(reader: asyncio.StreamReader, max_body: int) -> HttpRequest | None:
    head = await _read_head(reader)
    if head is None:
        return None
    start, pairs = _parse_head(head)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise InvalidValue("request line", f"malformed request line {start[:80]!r}")
    headers = Headers(pairs)
    body = b"" if parts[0] == "GET" and "Content-Length" not in headers else await _read_body(reader, headers, max_body)
    return HttpRequest(parts[0], parts[1], headers, body, parts[2], head)


class WebSocket:
    """The server side of one WebSocket, driven by websockets' sans-I/O ``ServerProtocol``.

    ``recv()`` returns the next message (``str`` for text, ``bytes`` for binary) or None once the
    connection is closed; then ``close_code``/``close_reason`` tell how (``closed_by``: "client",
    "server" or "transport" for a dropped TCP connection, code 1006).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ServerProtocol,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self._reader, self._writer, self._protocol = reader, writer, protocol
        self._messages: deque[str | bytes] = deque()
        self._max_queue = max(1, max_queue)
        self._readable = asyncio.Event()  # set when a message arrives or the connection ends
        self._room = asyncio.Event()  # set when the queue has room again
        self._closing = False  # close() was called: messages still arriving are dropped
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragment_text = False
        self._closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by = ""
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def open(self) -> bool:
        return self._protocol.state is State.OPEN

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._writer.write(data)
            elif self._writer.can_write_eof():
                with contextlib.suppress(OSError):
                    self._writer.write_eof()

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            self._fragments, self._fragment_text = [frame.data], frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(frame.data)
        else:
            return
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = []
            if self._closing:
                return
            if self._fragment_text:
                try:
                    self._messages.append(data.decode("utf-8"))
                except UnicodeDecodeError:  # websockets already failed the connection (1007)
                    return
            else:
                self._messages.append(data)
            self._readable.set()

    async def _read_loop(self) -> None:
        p = self._protocol
        try:
            while p.state is not State.CLOSED:
                try:
                    data = await self._reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                if data:
                    p.receive_data(data)
                else:
                    p.receive_eof()
                for frame in p.events_received():
                    if isinstance(frame, Frame):  # after the handshake a protocol receives only frames
                        self._on_frame(frame)
                try:
                    self._flush()
                except (ConnectionError, OSError, RuntimeError):
                    break
                if not data:
                    break
                while len(self._messages) >= self._max_queue and not self._closing:  # backpressure
                    self._room.clear()
                    await self._room.wait()
        finally:
            self._finish()

    def _finish(self) -> None:
        p = self._protocol
        if not self.closed_by:
            if p.close_rcvd is not None and (p.close_sent is None or p.close_rcvd_then_sent):
                self.closed_by = "client"
            elif p.close_sent is not None:
                self.closed_by = "server"
            else:
                self.closed_by = "transport"
        if p.close_rcvd is None and p.close_sent is not None:  # the peer never answered: what we sent
            self.close_code, self.close_reason = p.close_sent.code, p.close_sent.reason
        else:
            self.close_code, self.close_reason = p.close_code, p.close_reason or ""
        with contextlib.suppress(Exception):
            self._writer.close()
        self._closed.set()
        self._readable.set()

    async def recv(self) -> str | bytes | None:
        """The next message, or None once the connection is closed and every message was taken."""
        while not self._messages:
            if self._closed.is_set():
                return None
            self._readable.clear()
            await self._readable.wait()
        msg = self._messages.popleft()
        if len(self._messages) < self._max_queue:
            self._room.set()
        return msg

    @property
    def write_backlog(self) -> int:
        """Bytes handed to the connection that the peer's TCP has not taken yet (asyncio's buffer)."""
        return self._writer.transport.get_write_buffer_size()

    def send_nowait(self, text: str | bytes) -> bool:
        """Write one message without waiting for the peer; False if the connection is no longer open.
        The caller bounds what it writes (``write_backlog``); ``send`` waits instead."""
        if self._protocol.state is not State.OPEN:
            return False
        if isinstance(text, str):
            self._protocol.send_text(text.encode("utf-8"))
        else:
            self._protocol.send_binary(text)
        try:
            self._flush()
        except (ConnectionError, OSError, RuntimeError):
            return False
        return True

    async def send(self, text: str | bytes) -> bool:
        """Send one message and wait while the peer is behind; False if the connection is no longer open."""
        if not self.send_nowait(text):
            return False
        try:
            await self._writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            return False
        return True

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> None:
        """Start the close handshake and wait (bounded) for the peer's answer."""
        if self._protocol.state is State.OPEN:
            self.closed_by = "server"
            self._protocol.send_close(code, reason)
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                self._flush()
        self._closing = True  # read on (to see the peer's close frame), dropping data still in flight
        self._room.set()
        await self.wait_closed(timeout)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (the peer sees 1006)."""
        self.closed_by = self.closed_by or "server"
        self._writer.transport.abort()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait for the connection to end; after ``timeout`` drop it (a peer that stopped reading would
        otherwise hold the unsent bytes forever)."""
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            with contextlib.suppress(Exception):
                self._writer.transport.abort()


class App(Protocol):
    """What a server built on this module provides."""

    async def http(self, request: HttpRequest) -> HttpResponse: ...

    async def websocket(self, request: HttpRequest, accept: Callable[[], Awaitable[WebSocket]]) -> HttpResponse | None:
        """Return a response to refuse the upgrade, or ``await accept()`` and run the socket to its end."""
        ...


@dataclass
class HttpServer:
    """A running server; ``close()`` stops accepting and closes every open WebSocket with ``close_code``."""

    server: asyncio.Server
    sockets: set[WebSocket] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self, code: int = 1001, reason: str = "server shutting down", timeout: float = 5.0) -> None:
        self.server.close()
        await asyncio.gather(*(ws.close(code, reason, timeout) for ws in list(self.sockets)), return_exceptions=True)
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for t in still:
                t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), timeout)


def listen_error(host: str, port: int, exc: OSError) -> OptionError:
    """Why ``host:port`` cannot be listened on, as an ``OptionError`` (the port in use, a host that is not
    this machine's, a privileged port)."""
    if exc.errno == errno.EADDRINUSE:
        why = "the port is already in use (stop the other server or pick another port)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "the address is not one of this machine's"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif isinstance(exc, socket.gaierror):
        why = f"unknown host ({exc.strerror or exc})"
    else:
        why = str(exc.strerror or exc)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return OptionError("--listen", shown, f"cannot listen: {why}")


async def start_server(
    app: App,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_message: int = DEFAULT_MAX_MESSAGE,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> HttpServer:
    """Serve ``app`` on ``host:port`` (port 0: pick a free one; see ``HttpServer.port``)."""
    holder: list[HttpServer] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = holder[0]
        task = asyncio.current_task()
        assert task is not None
        state.tasks.add(task)
        try:
            await _serve_connection(app, state, reader, writer, max_body, max_message, max_queue)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            state.tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    try:
        server = await asyncio.start_server(on_connection, host, port, limit=MAX_HEAD)
    except OSError as exc:
        raise listen_error(host, port, exc) from exc
    holder.append(HttpServer(server))
    return holder[0]


async def _serve_connection(
    app: App,
    state: HttpServer,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    max_body: int,
    max_message: int,
    max_queue: int,
) -> None:
    while True:
        try:
            request = await _read_request(reader, max_body)
        except InvalidValue as bad:
            writer.write(json_response(_status(bad), _error_json(bad.problem, 3)).encode(False))
            await writer.drain()
            return
        if request is None:
            return
        keep_alive = request.version == "HTTP/1.1" and request.headers.get("Connection", "").lower() != "close"
        if request.is_upgrade:
            await _upgrade(app, state, request, reader, writer, max_message, max_queue)
            return
        try:
            response = await app.http(request)
        except Exception as exc:  # an app bug must not kill the server; answer like Nakama
            response = json_response(500, _error_json(f"Internal Server Error: {type(exc).__name__}", 13))
        writer.write(response.encode(keep_alive))
        await writer.drain()
        if not keep_alive:
            return


def _error_json(message: str, code: int) -> str:
    import json

    return json.dumps({"error": message, "message": message, "code": code})


async def _upgrade(
    app: App,
    state: HttpServer,
    request: HttpRequest,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    max_message: int,
    max_queue: int,
) -> None:
    protocol = ServerProtocol(max_size=max_message)
    accepted: list[WebSocket] = []

    async def accept() -> WebSocket:
        protocol.receive_data(request.head)
        parsed = [e for e in protocol.events_received() if isinstance(e, Request)]
        if not parsed:
            raise ConnectionError("WebSocket handshake request could not be parsed")
        response = protocol.accept(parsed[0])
        protocol.send_response(response)
        for data in protocol.data_to_send():
            writer.write(data)
        await writer.drain()
        if response.status_code != 101:
            raise ConnectionError(f"WebSocket handshake refused: {response.status_code}")
        ws = WebSocket(reader, writer, protocol, max_queue)
        accepted.append(ws)
        state.sockets.add(ws)
        return ws

    try:
        refusal = await app.websocket(request, accept)
    finally:
        for ws in accepted:
            state.sockets.discard(ws)
            if ws.open:
                await ws.close(1011, "server error")
            else:
                await ws.wait_closed(5.0)
    if refusal is not None and not accepted:
        writer.write(refusal.encode(False))
        await writer.drain()


# -- client -------------------------------------------------------------------------------------------


async def http_request(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    timeout: float = 30.0,
    max_body: int = DEFAULT_MAX_BODY,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One HTTP/1.1 request on a fresh connection; returns ``(status, headers, body)``."""

    async def go() -> tuple[int, list[tuple[str, str]], bytes]:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        try:
            skip = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}
            lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() not in skip]
            if body or method in ("POST", "PUT", "PATCH"):
                lines.append(f"Content-Length: {len(body)}")
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            head = await _read_head(reader)
            if head is None:
                raise ConnectionError("upstream closed the connection without a response")
            start, pairs = _parse_head(head)
            parts = start.split(" ", 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                raise ConnectionError(f"malformed status line {start[:80]!r}") from None
            h = Headers(pairs)
            data = b"" if method == "HEAD" or status in (204, 304) else await _read_body(reader, h, max_body, True)
            return status, pairs, data
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(go(), timeout)
    except InvalidValue as bad:
        raise ConnectionError(f"malformed upstream response: {bad.problem}") from None
