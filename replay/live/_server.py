"""``nakama-replay serve``: a local Nakama-compatible server hosting the deterministic match runtime.

The subset game clients need for authoritative matches, with Nakama's wire behaviour (facts from
heroiclabs/nakama ``server/api_authenticate.go``, ``api_rpc.go``, ``socket_ws.go``, ``session_ws.go``,
``pipeline*.go``):

- ``POST /v2/account/authenticate/device`` (and ``/custom``) with Basic auth of the server key; the reply
  holds a session token, an HS256 JWT with Nakama's claims (``tid uid usn vrs exp iat``), and a refresh
  token. ``POST /v2/account/session/refresh`` (``api_session.go``) trades a refresh token for a new pair
  with the same token id; the request's ``vars`` replace the session vars when the key is present (an
  empty object too: Go's JSON decoding makes it a non-nil map), else the refresh token's are kept.
- ``GET /ws?token=...&format=json``: the realtime socket. ``rpc``, ``match_join`` (with metadata),
  ``match_data_send``, ``match_leave``, ``ping``; presence events; Nakama's error codes. A malformed
  envelope closes the socket with 1000 "received malformed payload".
- ``/v2/rpc/{id}`` over HTTP (Bearer token or ``http_key``), wrapped (``{"payload": ...}``) or ``unwrap``.
- RPC ``create_match``: starts a match with the handler (the payload object becomes ``params``) and
  replies ``{"match_id": "..."}``; RPC ``signal_match`` (payload ``{"match_id", "data"}``) signals it and
  replies with the handler's ``match_signal`` reply. Other RPCs: ``rpc_<id>(ctx, logger, nk, payload)``
  functions of the handler's Python module or of ``--rpc`` files, and the ``initializer.registerRpc`` functions
  of a JavaScript handler bundle or ``--rpc`` bundle.

The realtime rules (sessions, matches, presence events, join verdicts, broadcast routing, error codes, the
close on a crash) live in ``replay.realtime.Realtime``, which does no I/O: this module authenticates, reads
each socket into it, performs what it answers (writes, closes) and ticks its matches on the event loop.
Each match runs in real time at the handler's tick rate through ``replay.runtime.MatchDriver`` and is
recorded as it runs (a handler-call recording per match, ``recorder.capture._sink``), through the redaction
layer (``recorder.wire._redact``: tokens, JWTs and ``redact_keys`` never reach the file). When a callback
raises, the match stops and every participant's socket is closed with 1000 "server-side session
disconnect". ``ServerConfig.on_event`` gets a line per match start, crash or hang (callback, tick, error)
and stop. Handlers run in this process (the event loop's thread): the hang guard stops a Python or Lua
loop after ``hang_timeout`` seconds, during which the whole server waits; a callback blocked in C stalls it.

Each socket has an outgoing queue of ``outgoing_queue_size`` messages (Nakama's
``socket.outgoing_queue_size``, default 64; ``session_ws.go`` ``SendBytes``): a client too slow to take
what it is sent fills it, and then, as in Nakama, the session is closed at once with 1000 "session
outgoing queue full" (queued messages dropped; the close frame waits at most 2 s for the client's answer,
``socket.close_ack_wait_ms``) and leaves its matches with reason 4 (disconnect), which the match
recording shows; ``on_event`` gets a line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.format import Header
from recorder.wire import (
    App,
    HttpRequest,
    HttpResponse,
    HttpServer,
    Redactor,
    WebSocket,
    json_response,
    session_token,
    start_server,
)
from recorder.wire import protocol as P
from replay.realtime._core import CloseSocket, MatchEnded, MatchStarted, Realtime, SendEnvelope, Session

__all__ = ["ServerConfig", "NakamaServer", "start_nakama_server"]

_CLOSE = object()


@dataclass
class ServerConfig:
    handler: str
    out_dir: str = "serve-recordings"
    node: str = "nakama1"
    server_key: str = "defaultkey"
    http_key: str = "defaulthttpkey"
    encryption_key: str = "defaultencryptionkey"
    refresh_encryption_key: str = "defaultrefreshencryptionkey"
    token_expiry_sec: int = 3600
    refresh_token_expiry_sec: int = 86400
    rpc_files: list[str] = field(default_factory=list)
    seed: int = 0
    queue_size: int = 128
    record: bool = True
    hang_timeout: float | None = 5.0
    on_event: Callable[[str], None] | None = None  # one line per match start, crash, hang and stop
    outgoing_queue_size: int = 64  # Nakama's socket.outgoing_queue_size
    redact_keys: tuple[str, ...] = ()  # JSON keys to redact in recordings beyond the tokens
    module_path: list[str] = field(default_factory=list)  # extra folders for a Lua handler's require


def _err(status: int, message: str, code: int) -> HttpResponse:
    return json_response(status, json.dumps({"error": message, "message": message, "code": code}))


QUEUE_FULL = "session outgoing queue full"  # Nakama's ErrSessionQueueFull, the close reason
_CLOSE_ACK_WAIT = 2.0  # Nakama's socket.close_ack_wait_ms
_WRITE_AHEAD = 64 * 1024  # bytes a session writes to its socket before queueing (asyncio's high-water mark)


class _Socket:
    """One realtime socket and its outgoing queue (Nakama's ``outgoingCh``). A message is written to the
    socket at once while the client keeps up (Nakama's writer goroutine runs beside the match; here a
    message waits only once ``_WRITE_AHEAD`` bytes are unread by the client); otherwise it joins an
    ordered queue of at most ``queue_size`` messages drained by a writer task. ``on_overflow(socket)``
    is called once when the queue is full and the socket is closing."""

    def __init__(
        self,
        ws: WebSocket,
        session: Session,
        queue_size: int = 64,
        on_overflow: Callable[[_Socket], None] | None = None,
    ) -> None:
        self.ws = ws
        self.session = session
        self.id, self.username = session.id, session.username
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queue_size = queue_size
        self.on_overflow = on_overflow
        self.closing = False
        self.writer = asyncio.get_running_loop().create_task(self._drain())

    def send(self, env: P.Envelope) -> None:
        if self.closing:
            return
        if self.queue.empty() and self.ws.write_backlog < _WRITE_AHEAD:
            self.ws.send_nowait(P.build(env))
        elif self.queue.qsize() >= self.queue_size:
            self._overflow()
        else:
            self.queue.put_nowait(P.build(env))

    def _overflow(self) -> None:
        """The client does not keep up: drop what is queued and close now, as Nakama does (dropping single
        messages instead would break the client in ways nobody could debug)."""
        self.closing = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.writer.cancel()
        self.writer = asyncio.get_running_loop().create_task(self.ws.close(P.CLOSE_NORMAL, QUEUE_FULL, _CLOSE_ACK_WAIT))
        if self.on_overflow is not None:
            self.on_overflow(self)

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.queue.put_nowait((_CLOSE, code, reason))

    async def _drain(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, tuple):
                await self.ws.close(item[1], item[2])
                return
            if not await self.ws.send(item):
                return


class NakamaServer(App):
    """The server as a ``recorder.wire._wsio`` app."""

    def __init__(self, config: ServerConfig) -> None:
        from replay.runtime._handlers import load_handler
        from replay.runtime._nk import DerivedSources, Logger, Nk

        self.config = config
        self.handler_spec = config.handler
        self.handler = load_handler(config.handler, module_path=config.module_path)  # fail fast on a bad handler
        self.users: dict[str, tuple[str, str]] = {}  # device id -> (user id, username)
        self.usernames: set[str] = set()
        self.logger = Logger()
        self.nk = Nk(DerivedSources(config.seed), logger=self.logger)
        rpcs: dict[str, Callable[[dict[str, Any], str], Any]] = {}

        def user_rpc(fn: Callable[..., Any]) -> Callable[[dict[str, Any], str], Any]:
            return lambda ctx, payload: fn(ctx, self.logger, self.nk, payload)

        rpc_source = self.handler if hasattr(self.handler, "rpc_functions") else getattr(self.handler, "module", None)
        found = _rpc_functions(rpc_source)
        for rpc_file in config.rpc_files:
            found.update(_rpc_functions(_load_rpc_file(rpc_file)))
        for rpc_id, fn in found.items():
            rpcs[rpc_id] = user_rpc(fn)
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        self.recordings: list[str] = []
        self.redactor = Redactor(config.redact_keys)
        self.core = Realtime(self._new_match, node=config.node, rpcs=rpcs, on_event=self.event, handler=config.handler)
        self.sockets: dict[str, _Socket] = {}  # session id -> its socket
        self.tickers: dict[str, asyncio.Task[None]] = {}  # match id -> its tick loop

    def event(self, line: str) -> None:
        """Say what happened to a match (``ServerConfig.on_event``; the command prints it on stderr)."""
        if self.config.on_event is not None:
            self.config.on_event(line)

    @property
    def matches(self) -> list[str]:
        """The ids of the running matches."""
        return self.core.match_ids()

    def _new_match(self, match_id: str, params: dict[str, Any]) -> Any:
        """The driver of a new match, recording into ``out_dir`` (``Realtime``'s ``new_match``)."""
        from replay.runtime._driver import MatchDriver
        from replay.runtime._handlers import load_handler

        handler = load_handler(self.handler_spec, module_path=self.config.module_path)
        header = Header(
            match_id=match_id,
            module=getattr(handler, "name", ""),
            node=self.config.node,
            source="serve",
            started_ms=int(time.time() * 1000),
            params=params,
            log_match_id=match_id.split(".")[0],
            handler=os.path.abspath(self.handler_spec),
        )
        capture = None
        if self.config.record:
            capture = str(Path(self.config.out_dir) / f"{match_id}.nkrec")
            self.recordings.append(capture)
        return MatchDriver(
            handler,
            header,
            capture=capture,
            seed=self.config.seed,
            queue_size=self.config.queue_size,
            hang_timeout=self.config.hang_timeout,
            redactor=self.redactor,
            realtime=True,  # a killed server loses at most the last 0.25 s of each match's calls
        )

    # -- performing the core's effects ---------------------------------------------------------------
    def _perform(self) -> None:
        """Do what the core asked for, in order: write, close, start or stop ticking a match."""
        for effect in self.core.take():
            match effect:
                case SendEnvelope(session=sid, envelope=env):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.send(env)
                case CloseSocket(session=sid, code=code, reason=reason):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.close(code, reason)
                case MatchStarted(match_id=mid, tick_rate=rate):
                    self.tickers[mid] = asyncio.get_running_loop().create_task(self._tick_forever(mid, rate))
                case MatchEnded(match_id=mid):
                    task = self.tickers.pop(mid, None)
                    if task is not None and task is not asyncio.current_task():
                        task.cancel()

    async def _tick_forever(self, match_id: str, rate: int) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while match_id in self.core.matches:
            next_at += 1.0 / (rate or 1)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if match_id not in self.core.matches:
                return
            self.core.tick(match_id)
            self._perform()

    # -- HTTP -------------------------------------------------------------------------------------
    async def http(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith("/v2/account/authenticate/") and request.method == "POST":
            return self._authenticate(request, path.rsplit("/", 1)[1])
        if path == "/v2/account/session/refresh" and request.method == "POST":
            return self._refresh(request)
        if path.startswith("/v2/rpc/"):
            return self._http_rpc(request, path[len("/v2/rpc/") :])
        if path == "/healthcheck":
            return json_response(200, "{}")
        return _err(404, "Not Found", 5)

    def _server_key_refusal(self, request: HttpRequest) -> HttpResponse | None:
        """Nakama's answer to a request without Basic auth of the server key, or None when it has it."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return _err(401, "Server key required", 16)
        try:
            key = base64.b64decode(auth[6:]).decode("utf-8").split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return _err(401, "Server key invalid", 16)
        if key != self.config.server_key:
            return _err(401, "Server key invalid", 16)
        return None

    def _session_pair(
        self, token_id: str, user_id: str, username: str, vars_: dict[str, str], issued_at: int
    ) -> dict[str, Any]:
        c, now = self.config, int(time.time())
        token = session_token.encode(
            session_token.Claims(token_id, user_id, username, vars_, now + c.token_expiry_sec, issued_at),
            c.encryption_key,
        )
        refresh = session_token.encode(
            session_token.Claims(token_id, user_id, username, vars_, now + c.refresh_token_expiry_sec, issued_at),
            c.refresh_encryption_key,
        )
        return {"token": token, "refresh_token": refresh}

    def _refresh(self, request: HttpRequest) -> HttpResponse:
        refused = self._server_key_refusal(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _err(400, "Unable to unmarshal request body", 3)
        token = body.get("token")
        if not token:
            return _err(400, "Refresh token is required.", 3)
        claims = (
            session_token.verify(token, self.config.refresh_encryption_key, int(time.time()))
            if isinstance(token, str)
            else None
        )
        if claims is None:
            return _err(401, "Refresh token invalid or expired.", 16)
        account = next((a for a in self.users.values() if a[0] == claims.user_id), None)
        if account is None:
            return _err(404, "User account not found.", 5)
        vars_ = body["vars"] if "vars" in body else dict(claims.vars)
        if not isinstance(vars_, dict) or not all(isinstance(v, str) for v in vars_.values()):
            return _err(400, "Unable to unmarshal request body", 3)
        return json_response(
            200, json.dumps(self._session_pair(claims.token_id, account[0], account[1], vars_, claims.issued_at))
        )

    def _authenticate(self, request: HttpRequest, kind: str) -> HttpResponse:
        refused = self._server_key_refusal(request)
        if refused is not None:
            return refused
        if kind not in ("device", "custom"):
            return _err(501, f"authenticate/{kind} is not supported by nakama-replay serve (use device or custom)", 12)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _err(400, "Unable to unmarshal request body", 3)
        if not isinstance(body, dict):
            return _err(400, "Unable to unmarshal request body", 3)
        ident, vars_ = body.get("id"), body.get("vars") or {}
        what = "Device ID" if kind == "device" else "Custom ID"
        lo = 10 if kind == "device" else 6
        if not isinstance(ident, str) or not ident:
            return _err(400, f"{what} is required.", 3)
        if any(c.isspace() or ord(c) < 32 for c in ident):
            return _err(400, f"{what} invalid, no spaces or control characters allowed.", 3)
        if not lo <= len(ident.encode("utf-8")) <= 128:
            return _err(400, f"{what} invalid, must be {lo}-128 bytes.", 3)
        if not isinstance(vars_, dict) or not all(isinstance(v, str) for v in vars_.values()):
            return _err(400, "Unable to unmarshal request body", 3)
        q = request.query
        username = q.get("username", "")
        create = q.get("create", "true").lower() != "false"
        if len(username.encode("utf-8")) > 128 or any(c.isspace() or ord(c) < 32 for c in username):
            return _err(400, "Username invalid, no spaces or control characters allowed.", 3)
        key_id = f"{kind}:{ident}"
        created = False
        if key_id not in self.users:
            if not create:
                return _err(404, "User account not found.", 5)
            digest = hashlib.sha256(key_id.encode("utf-8")).hexdigest()
            username = username or "".join(chr(97 + int(c, 16) % 26) for c in digest[:10])
            if username in self.usernames:
                return _err(409, "Username is already in use.", 6)
            self.users[key_id] = (str(uuid.uuid5(uuid.NAMESPACE_URL, "nakama-replay/" + key_id)), username)
            self.usernames.add(username)
            created = True
        user_id, username = self.users[key_id]
        out = self._session_pair(str(uuid.uuid4()), user_id, username, vars_, int(time.time()))
        if created:
            out["created"] = True
        return json_response(200, json.dumps(out))

    def _http_rpc(self, request: HttpRequest, rpc_id: str) -> HttpResponse:
        q = request.query
        claims = None
        if q.get("http_key"):
            if q["http_key"] != self.config.http_key:
                return _err(401, "HTTP key invalid", 16)
        else:
            auth = request.headers.get("Authorization", "")
            if not auth:
                return _err(401, "Auth token or HTTP key required", 16)
            claims = session_token.verify(auth.removeprefix("Bearer "), self.config.encryption_key, int(time.time()))
            if claims is None or not auth.startswith("Bearer "):
                return _err(401, "Auth token invalid", 16)
        if not rpc_id:
            return _err(400, "RPC ID must be set", 3)
        rpc_id = rpc_id.lower()
        if not self.core.has_rpc(rpc_id):
            return _err(404, "RPC function not found", 5)
        unwrap = "unwrap" in q
        if request.method == "POST":
            payload = request.body.decode("utf-8", "replace")
            if payload and not unwrap:
                try:
                    decoded = json.loads(payload)
                except ValueError:
                    decoded = None
                if not isinstance(decoded, str):
                    return _err(400, "json: cannot unmarshal object into Go value of type string", 3)
                payload = decoded
        else:
            payload = q.get("payload", "")
        result, error = self._call_rpc(rpc_id, payload, claims)
        if error is not None:
            return _err(500, error, 13)
        if unwrap:
            return HttpResponse(200, (result or "").encode("utf-8"), (("Content-Type", "text/plain"),))
        return json_response(200, json.dumps({"payload": result or ""}))

    # -- RPC --------------------------------------------------------------------------------------
    def _call_rpc(
        self, rpc_id: str, payload: str, claims: session_token.Claims | None
    ) -> tuple[str | None, str | None]:
        """``(result, None)`` or ``(None, error message)`` of an RPC over HTTP."""
        session = None if claims is None else Session("", claims.user_id, claims.username, dict(claims.vars))
        try:
            return self.core.rpc(rpc_id, payload, session)
        finally:
            self._perform()

    # -- realtime ---------------------------------------------------------------------------------
    async def websocket(self, request: HttpRequest, accept: Callable[[], Awaitable[WebSocket]]) -> HttpResponse | None:
        q = request.query
        fmt = q.get("format", "json")
        if fmt == "protobuf":
            return HttpResponse(
                400, b"nakama-replay serve speaks format=json only\n", (("Content-Type", "text/plain"),)
            )
        if fmt != "json":
            return HttpResponse(400, b"Invalid format parameter\n", (("Content-Type", "text/plain"),))
        token = q.get("token", "")
        auth = request.headers.get("Authorization", "")
        if not token and auth.startswith("Bearer "):
            token = auth[7:]
        claims = session_token.verify(token, self.config.encryption_key, int(time.time())) if token else None
        if claims is None:
            return HttpResponse(401, b"Missing or invalid token\n", (("Content-Type", "text/plain"),))
        ws = await accept()
        session = self.core.connect(claims.user_id, claims.username, claims.vars)
        sock = _Socket(ws, session, self.config.outgoing_queue_size, self._overflowed)
        self.sockets[session.id] = sock
        try:
            while not sock.closing:
                text = await ws.recv()
                if text is None:
                    break
                self.core.receive(session.id, text)
                self._perform()
        finally:
            self.core.disconnect(session.id)
            self._perform()
            self.sockets.pop(session.id, None)
            sock.close(P.CLOSE_NORMAL, "")
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(sock.writer, 10)
        return None

    def _overflowed(self, sock: _Socket) -> None:
        self.event(
            f"session {sock.id} ({sock.username}) disconnected: {QUEUE_FULL} "
            f"({sock.queue_size} messages waiting; the client does not read what it is sent)"
        )
        # the leave runs after the delivery that overflowed the queue has finished (Nakama: UntrackAll)
        asyncio.get_running_loop().call_soon(self._overflow_leave, sock.id)

    def _overflow_leave(self, session_id: str) -> None:
        self.core.disconnect(session_id)
        self._perform()

    async def close(self) -> None:
        self.core.stop_all()
        self._perform()


def _rpc_functions(source: Any) -> dict[str, Callable[..., Any]]:
    """The RPCs of a JavaScript bundle (its ``InitModule``'s ``initializer.registerRpc`` calls) or of a Python
    module (its ``rpc_<id>`` functions), id -> ``f(ctx, logger, nk, payload)``."""
    registered = getattr(source, "rpc_functions", None)
    if registered is not None:
        return dict(registered())
    rpcs = {}
    for name in dir(source) if source is not None else ():
        if name.startswith("rpc_") and callable(getattr(source, name)):
            rpcs[name[4:]] = getattr(source, name)
    return rpcs


def _load_rpc_file(path: str) -> Any:
    """A ``--rpc`` file: a Python module, or a JavaScript bundle (``.js``, ``.ts``) loaded for its RPCs."""
    from replay.errors import HandlerLoadError

    if path.lower().endswith((".js", ".ts")):
        from replay.js._handler import JsHandler

        if not os.path.isfile(path):
            raise HandlerLoadError(path, "no such RPC module")
        return JsHandler(path, rpcs_only=True)
    return _import_rpc_file(path)


def _import_rpc_file(path: str) -> Any:
    import importlib.util

    from replay.errors import HandlerLoadError

    spec = importlib.util.spec_from_file_location(f"_nakama_replay_rpc_{abs(hash(path))}", path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise HandlerLoadError(path, "no such RPC module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import failure is a load error naming the file
        raise HandlerLoadError(path, f"{type(exc).__name__}: {exc}") from exc
    return module


async def start_nakama_server(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[HttpServer, NakamaServer]:
    app = NakamaServer(config)
    server = await start_server(app, host, port)
    return server, app
