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
  functions of the handler's Python module or of ``--rpc`` files.

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

from recorder.format import Header, JoinCall, LeaveCall, Presence, PresenceReason
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

__all__ = ["ServerConfig", "NakamaServer", "start_nakama_server"]

_CLOSE = object()
_BUILTIN_RPCS = ("create_match", "signal_match")


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


def _err(status: int, message: str, code: int) -> HttpResponse:
    return json_response(status, json.dumps({"error": message, "message": message, "code": code}))


QUEUE_FULL = "session outgoing queue full"  # Nakama's ErrSessionQueueFull, the close reason
_CLOSE_ACK_WAIT = 2.0  # Nakama's socket.close_ack_wait_ms
_WRITE_AHEAD = 64 * 1024  # bytes a session writes to its socket before queueing (asyncio's high-water mark)


class _Session:
    """One realtime socket and its outgoing queue (Nakama's ``outgoingCh``). A message is written to the
    socket at once while the client keeps up (Nakama's writer goroutine runs beside the match; here a
    message waits only once ``_WRITE_AHEAD`` bytes are unread by the client); otherwise it joins an
    ordered queue of at most ``queue_size`` messages drained by a writer task. ``on_overflow(session)``
    is called once when the queue is full and the session is closing."""

    def __init__(
        self,
        ws: WebSocket,
        claims: session_token.Claims,
        queue_size: int = 64,
        on_overflow: Callable[[_Session], None] | None = None,
    ) -> None:
        self.ws = ws
        self.id = str(uuid.uuid4())
        self.user_id, self.username, self.vars = claims.user_id, claims.username, dict(claims.vars)
        self.matches: set[str] = set()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queue_size = queue_size
        self.on_overflow = on_overflow
        self.closing = False
        self.writer = asyncio.get_running_loop().create_task(self._drain())

    def presence(self, node: str) -> Presence:
        return Presence(self.user_id, self.id, self.username, node)

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


def _wire_presence(p: Presence) -> P.UserPresence:
    return P.UserPresence(p.user_id, p.session_id, p.username)


class _Match:
    """A live match: the driver, its tick task, and the sessions of its presences."""

    def __init__(self, server: NakamaServer, match_id: str, driver: Any) -> None:
        self.server, self.id, self.driver = server, match_id, driver
        self.sessions: dict[str, _Session] = {}  # session id -> session
        self.task: asyncio.Task[None] | None = None

    @property
    def runtime(self) -> Any:
        return self.driver.runtime

    def presences(self) -> list[Presence]:
        return list(self.runtime.presences)

    def run(self, action: Callable[[], Any]) -> Any:
        """Run one driver action, then deliver what it caused: presence events, broadcasts, a crash."""
        before = {p.session_id: p for p in self.presences()}
        steps_before = len(self.driver.steps)
        result = action()
        self.deliver(before, self.driver.steps[steps_before:])
        return result

    def deliver(
        self,
        before: dict[str, Presence],
        steps: list[Any],
        joined_reply: P.Envelope | None = None,
        joiner: _Session | None = None,
    ) -> None:
        after = {p.session_id: p for p in self.presences()}
        leaves = [p for sid, p in before.items() if sid not in after]
        joins = [p for sid, p in after.items() if sid not in before]
        if joined_reply is not None and joiner is not None:
            joiner.send(joined_reply)
        if leaves:
            self.broadcast(P.MatchPresenceEvent(self.id, leaves=tuple(map(_wire_presence, leaves))), after)
            for p in leaves:
                s = self.sessions.pop(p.session_id, None)
                if s is not None:
                    s.matches.discard(self.id)
        if joins:
            self.broadcast(P.MatchPresenceEvent(self.id, joins=tuple(map(_wire_presence, joins))), after)
        # each call's broadcasts reach the presences in the match during that call, as in Nakama: a join
        # attempt's not the joiner, a join's the joiners too, a leave's no longer the leavers
        present = dict(before)
        for step in steps:
            call = step.call
            if step.executed and isinstance(call, JoinCall):
                for p in call.presences:
                    present.setdefault(p.session_id, p)
            elif step.executed and isinstance(call, LeaveCall):
                for p in call.presences:
                    present.pop(p.session_id, None)
            outcome = step.outcome
            if outcome is None:
                continue
            reachable = dict(present)
            for b in outcome.broadcasts:
                msg = P.MatchData(
                    self.id,
                    None if b.sender is None else _wire_presence(b.sender),
                    b.op_code,
                    b.data or b"",
                    b.reliable,
                )
                if b.targets is None:
                    self.broadcast(msg, reachable)
                else:
                    self.broadcast(msg, {t.session_id: t for t in b.targets if t.session_id in reachable})
        crash = next((s.crash for s in steps if s.crash is not None), None)
        if crash is not None or self.runtime.stopped:
            if self.id in self.server.matches:
                self.server.event(_ending(self.id, crash, self.runtime.stop_reason))
            self.stop(crash is not None)

    def broadcast(self, message: P.Message, to: dict[str, Presence]) -> None:
        env = P.Envelope(message)
        for sid in to:
            s = self.sessions.get(sid)
            if s is not None:
                s.send(env)

    def stop(self, crashed: bool) -> None:
        if self.server.matches.pop(self.id, None) is None:
            return
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        for s in list(self.sessions.values()):
            s.matches.discard(self.id)
            if crashed:
                s.close(P.CLOSE_NORMAL, P.CLOSE_SERVER_DISCONNECT)
        self.sessions.clear()
        self.driver.close()

    async def tick_forever(self) -> None:
        rate = self.runtime.tick_rate or 1
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.id in self.server.matches:
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.id not in self.server.matches:
                return
            self.run(self.driver.tick)


class NakamaServer(App):
    """The server as a ``recorder.wire._wsio`` app."""

    def __init__(self, config: ServerConfig) -> None:
        from replay.runtime._handlers import load_handler
        from replay.runtime._nk import DerivedSources, Logger, Nk

        self.config = config
        self.handler_spec = config.handler
        self.handler = load_handler(config.handler)  # fail fast on a bad handler
        self.matches: dict[str, _Match] = {}
        self.sessions: set[_Session] = set()
        self.users: dict[str, tuple[str, str]] = {}  # device id -> (user id, username)
        self.usernames: set[str] = set()
        self.logger = Logger()
        self.nk = Nk(DerivedSources(config.seed), logger=self.logger)
        self.rpcs: dict[str, Callable[..., Any]] = {}
        modules = [getattr(self.handler, "module", None)] + [_import_rpc_file(f) for f in config.rpc_files]
        for module in modules:
            for name in dir(module) if module is not None else ():
                if name.startswith("rpc_") and callable(getattr(module, name)):
                    self.rpcs[name[4:]] = getattr(module, name)
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        self.recordings: list[str] = []
        self.redactor = Redactor(config.redact_keys)

    def event(self, line: str) -> None:
        """Say what happened to a match (``ServerConfig.on_event``; the command prints it on stderr)."""
        if self.config.on_event is not None:
            self.config.on_event(line)

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
        if rpc_id not in _BUILTIN_RPCS and rpc_id not in self.rpcs:
            return _err(404, "RPC function not found", 5)
        unwrap = "unwrap" in q
        if request.method == "POST":
            payload = request.body.decode("utf-8", "replace")
            if payload and not unwrap:
                try:
                    payload = json.loads(payload)
                except ValueError:
                    payload = None
                if not isinstance(payload, str):
                    return _err(400, "json: cannot unmarshal object into Go value of type string", 3)
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
        """``(result, None)`` or ``(None, error message)``."""
        if rpc_id == "create_match":
            return self.create_match(payload)
        if rpc_id == "signal_match":
            return self.signal_match(payload)
        ctx = {"execution_mode": "rpc", "node": self.config.node, "env": {}}
        if claims is not None:
            ctx.update(user_id=claims.user_id, username=claims.username, vars=dict(claims.vars))
        try:
            result = self.rpcs[rpc_id](ctx, self.logger, self.nk, payload)
        except Exception as exc:  # a user RPC's error is the client's error reply
            return None, str(exc) or type(exc).__name__
        return (None if result is None else str(result)), None

    def create_match(self, payload: str) -> tuple[str | None, str | None]:
        from replay.runtime._driver import MatchDriver
        from replay.runtime._handlers import load_handler

        try:
            params = json.loads(payload) if payload else {}
        except ValueError:
            return None, "create_match payload must be a JSON object"
        if not isinstance(params, dict):
            return None, "create_match payload must be a JSON object"
        match_id = f"{uuid.uuid4()}.{self.config.node}"
        handler = load_handler(self.handler_spec)
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
        driver = MatchDriver(
            handler,
            header,
            capture=capture,
            seed=self.config.seed,
            queue_size=self.config.queue_size,
            hang_timeout=self.config.hang_timeout,
            redactor=self.redactor,
        )
        step = driver.init(params)
        if step.crash is not None or driver.runtime.stopped:
            driver.close()
            why = step.crash.error if step.crash is not None else "match_init returned no state"
            self.event(f"match {match_id} did not start: {why}")
            return None, f"Error creating match: {why}"
        self.event(
            f"match {match_id} started: {self.handler_spec}, tick rate {driver.runtime.tick_rate}, "
            f"label {driver.runtime.label!r}"
        )
        m = _Match(self, match_id, driver)
        self.matches[match_id] = m
        m.task = asyncio.get_running_loop().create_task(m.tick_forever())
        return json.dumps({"match_id": match_id}, separators=(",", ":")), None

    def signal_match(self, payload: str) -> tuple[str | None, str | None]:
        """Built-in RPC ``signal_match`` (what ``nakama-replay live --signal-rpc`` calls): payload
        ``{"match_id": ..., "data": ...}``; the result is the handler's ``match_signal`` reply."""
        try:
            request = json.loads(payload) if payload else None
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("match_id"), str):
            return None, 'signal_match payload must be {"match_id": "...", "data": "..."}'
        m = self.matches.get(request["match_id"])
        if m is None:
            return None, "failed to signal match: match not found"
        step = m.run(lambda: m.driver.signal(str(request.get("data") or "")))
        if step.crash is not None:
            return None, f"failed to signal match: {step.crash.error}"
        return (step.outcome.reply if step.outcome is not None else "") or "", None

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
        session = _Session(ws, claims, self.config.outgoing_queue_size, self._overflowed)
        self.sessions.add(session)
        try:
            while True:
                text = await ws.recv()
                if text is None:
                    break
                if isinstance(text, bytes):
                    session.close(P.CLOSE_NORMAL, "received unexpected WebSocket message type")
                    break
                parsed = P.parse(text)
                if isinstance(parsed, P.Violation):
                    if parsed.reply is not None:
                        session.send(parsed.reply)
                    session.close(P.CLOSE_NORMAL, parsed.close_reason)
                    break
                self._handle(session, parsed)
                if session.closing:
                    break
        finally:
            self.sessions.discard(session)
            self._disconnect(session)
            session.close(P.CLOSE_NORMAL, "")
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(session.writer, 10)
        return None

    def _disconnect(self, session: _Session) -> None:
        """The session's presences leave their matches with reason 4 (disconnect)."""
        for mid in list(session.matches):
            session.matches.discard(mid)
            m = self.matches.get(mid)
            if m is not None:
                m.run(lambda m=m: m.driver.leave(session.presence(self.config.node), PresenceReason.DISCONNECT))

    def _overflowed(self, session: _Session) -> None:
        self.event(
            f"session {session.id} ({session.username}) disconnected: {QUEUE_FULL} "
            f"({session.queue_size} messages waiting; the client does not read what it is sent)"
        )
        # the leave runs after the delivery that overflowed the queue has finished (Nakama: UntrackAll)
        asyncio.get_running_loop().call_soon(self._disconnect, session)

    def _handle(self, s: _Session, env: P.Envelope) -> None:
        msg, cid = env.message, env.cid
        t = type(msg)
        if t is P.Ping:
            s.send(P.Envelope(P.Pong(), cid))
        elif t is P.Rpc:
            self._socket_rpc(s, msg, cid)  # type: ignore[arg-type]
        elif t is P.MatchJoin:
            self._match_join(s, msg, cid)  # type: ignore[arg-type]
        elif t is P.MatchDataSend:
            self._match_data_send(s, msg)  # type: ignore[arg-type]
        elif t is P.MatchLeave:
            self._match_leave(s, msg, cid)  # type: ignore[arg-type]
        elif t is P.Pong:
            pass
        else:
            s.send(
                P.Envelope(
                    P.Error(P.ErrorCode.UNRECOGNIZED_PAYLOAD, f"{env.kind} is not supported by nakama-replay serve"),
                    cid,
                )
            )

    def _socket_rpc(self, s: _Session, rpc: P.Rpc, cid: str) -> None:
        if not rpc.id:
            s.send(P.Envelope(P.Error(P.ErrorCode.BAD_INPUT, "RPC ID must be set"), cid))
            return
        rpc_id = rpc.id.lower()
        if rpc_id not in _BUILTIN_RPCS and rpc_id not in self.rpcs:
            s.send(P.Envelope(P.Error(P.ErrorCode.RUNTIME_FUNCTION_NOT_FOUND, "RPC function not found"), cid))
            return
        claims = session_token.Claims("", s.user_id, s.username, s.vars)
        result, error = self._call_rpc(rpc_id, rpc.payload, claims)
        if error is not None:
            s.send(P.Envelope(P.Error(P.ErrorCode.RUNTIME_FUNCTION_EXCEPTION, error), cid))
        else:
            s.send(P.Envelope(P.Rpc(rpc.id, result or ""), cid))

    def _find_match(self, s: _Session, match_id: str, cid: str) -> _Match | None:
        if not _valid_match_id(match_id):
            s.send(P.Envelope(P.Error(P.ErrorCode.BAD_INPUT, "Invalid match ID"), cid))
            return None
        m = self.matches.get(match_id)
        if m is None:
            s.send(P.Envelope(P.Error(P.ErrorCode.MATCH_NOT_FOUND, "Match not found"), cid))
        return m

    def _match_join(self, s: _Session, join: P.MatchJoin, cid: str) -> None:
        if join.token is not None:
            s.send(P.Envelope(P.Error(P.ErrorCode.BAD_INPUT, "Invalid match token"), cid))
            return
        if join.match_id is None:
            s.send(P.Envelope(P.Error(P.ErrorCode.BAD_INPUT, "No match ID or token found"), cid))
            return
        m = self._find_match(s, join.match_id, cid)
        if m is None:
            return
        me = s.presence(self.config.node)
        if s.id in m.sessions:  # already a member: the match info again, self included in the list
            s.send(P.Envelope(self._match_info(m, me, is_new=False), cid))
            return
        before = {p.session_id: p for p in m.presences()}
        steps_before = len(m.driver.steps)
        m.sessions[s.id] = s
        joined = m.driver.join(me, dict(join.metadata), s.vars)
        steps = m.driver.steps[steps_before:]
        if joined is None:
            m.sessions.pop(s.id, None)
            attempt = next((st for st in steps if st.call.kind == "join_attempt"), None)
            crashed = any(st.crash is not None for st in steps)
            reason = (attempt.outcome.reason if attempt is not None and attempt.outcome is not None else "") or ""
            if crashed or m.runtime.stopped or attempt is None or not attempt.executed:
                s.send(P.Envelope(P.Error(P.ErrorCode.MATCH_NOT_FOUND, "Match not found"), cid))
            else:
                s.send(P.Envelope(P.Error(P.ErrorCode.MATCH_JOIN_REJECTED, reason or "Match join rejected"), cid))
            m.deliver(before, steps)
            return
        s.matches.add(m.id)
        m.deliver(before, steps, P.Envelope(self._match_info(m, me, is_new=True), cid), s)

    def _match_info(self, m: _Match, me: Presence, is_new: bool) -> P.Match:
        others = tuple(_wire_presence(p) for p in m.presences() if not (is_new and p.session_id == me.session_id))
        return P.Match(m.id, True, m.runtime.label, len(others), others, _wire_presence(me))

    def _match_data_send(self, s: _Session, send: P.MatchDataSend) -> None:
        if not _valid_match_id(send.match_id):
            s.send(P.Envelope(P.Error(P.ErrorCode.BAD_INPUT, "Invalid match ID")))  # Nakama sends it without cid
            return
        m = self.matches.get(send.match_id)
        if m is None or s.id not in m.sessions:
            return  # not part of the match: dropped silently, as Nakama does
        m.driver.send(s.presence(self.config.node), send.op_code, send.data or None, send.reliable)

    def _match_leave(self, s: _Session, leave: P.MatchLeave, cid: str) -> None:
        if not _valid_match_id(leave.match_id):
            s.send(P.Envelope(P.Error(P.ErrorCode.BAD_INPUT, "Invalid match ID"), cid))
            return
        m = self.matches.get(leave.match_id)
        if m is not None and s.id in m.sessions:
            s.matches.discard(m.id)
            m.run(lambda: m.driver.leave(s.presence(self.config.node), PresenceReason.LEAVE))
        s.send(P.Envelope(None, cid))

    async def close(self) -> None:
        for m in list(self.matches.values()):
            m.stop(False)


def _ending(match_id: str, crash: Any, stop_reason: str) -> str:
    """The line ``serve`` prints when a match ends: a crash or hang with callback, tick and error, or a stop."""
    if crash is None:
        why = {"nil-state": "a callback returned no state", "terminated": "terminated"}.get(stop_reason, stop_reason)
        return f"match {match_id} stopped: {why}"
    first = crash.error.strip().splitlines()[0] if crash.error.strip() else crash.error_type
    what = "hung" if crash.hung else "crashed"
    return f"match {match_id} {what} in {crash.callback} at tick {crash.tick}: {first}"


def _valid_match_id(match_id: str) -> bool:
    """Nakama's check: ``<uuid>.<node>`` (the node may be empty for relayed matches)."""
    uuid_part, sep, _ = match_id.partition(".")
    try:
        uuid.UUID(uuid_part)
    except ValueError:
        return False
    return bool(sep)


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
