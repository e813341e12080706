"""Nakama's realtime rules without I/O: sessions, matches, and what each envelope causes.

``Realtime`` holds the sessions (one per socket) and the matches (each a ``replay.runtime.MatchDriver``, the
deterministic runtime). The I/O layer says what happened: a socket opened (``connect``), a frame arrived
(``receive``), a socket closed (``disconnect``), a match's tick is due (``tick``), an RPC came over HTTP
(``rpc``). Then ``take()`` hands over what to do, in order: ``SendEnvelope`` and ``CloseSocket`` for a
session, ``MatchStarted`` (start ticking it at its rate) and ``MatchEnded`` (stop). No socket, clock, thread
or asyncio here, so every rule is tested by feeding literals (``tests/realtime``), as websockets tests its
``ServerProtocol`` apart from its asyncio layer; ``nakama-replay serve`` (``replay.live._server``) is the loop
around it. Facts from heroiclabs/nakama (``pipeline.go``, ``pipeline_match.go``, ``pipeline_rpc.go``,
``match_handler.go``, ``match_registry.go``, ``session_ws.go``):

- a malformed envelope: Nakama's error reply when it sends one, then a close with 1000 "received malformed
  payload"; a binary frame on a JSON socket: 1000 "received unexpected WebSocket message type";
- ``ping`` gets a ``pong``; kinds serve does not model get error 1 (unrecognized payload);
- ``rpc``: error 3 without an id, 6 for an unknown function, 7 with the function's error, else the result;
  the built-in ``create_match`` and ``signal_match`` start and signal matches;
- ``match_join``: error 3 for a token or no id or an id that is not ``<uuid>.<node>``, 4 when the match is
  not running (or stopped or crashed during the attempt), 5 with the handler's reason when it rejects; a
  session already in the match gets the match again (itself included in the presences) without a handler
  call; otherwise the ``match`` reply (the others' presences), then the presence event to everyone in it;
- ``match_data_send``: error 3 (without cid, as Nakama sends it) for a bad id; dropped silently from a
  session not in the match; else queued for the next loop (beyond the queue size: dropped by the driver);
- ``match_leave``: error 3 for a bad id; the leave (reason 3) when in the match; an empty reply either way;
- after every handler call: a presence event of the leaves, then of the joins, to the presences in the match
  after it; each call's broadcasts reach the presences in the match during that call (a join attempt's not
  the joiner, a join's the joiners too, a leave's no longer the leavers), targets only among those;
- a crash ends the match and closes every participant's socket with 1000 "server-side session disconnect";
  a stop (nil state, terminate) ends it quietly. ``on_event`` gets a line per start, crash, hang and stop;
- a socket that closes leaves its matches with reason 4 (disconnect).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recorder.format import JoinCall, LeaveCall, Presence, PresenceReason
from recorder.wire import protocol as P
from replay.realtime._actions import Connect, Leave, Send, Signal, Tick, apply_action

if TYPE_CHECKING:
    from replay.runtime._driver import MatchDriver
    from replay.runtime._result import StepResult

__all__ = [
    "SendEnvelope",
    "CloseSocket",
    "MatchStarted",
    "MatchEnded",
    "Effect",
    "Session",
    "Realtime",
    "BUILTIN_RPCS",
    "valid_match_id",
    "ending_line",
]

#: RPCs the server itself answers (``nakama-replay live --signal-rpc signal_match``).
BUILTIN_RPCS = ("create_match", "signal_match")
CLOSE_BINARY = "received unexpected WebSocket message type"


@dataclass(frozen=True, slots=True)
class SendEnvelope:
    """Write ``envelope`` to ``session``'s socket."""

    session: str
    envelope: P.Envelope


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close ``session``'s socket with ``code`` and ``reason`` (after what was sent before)."""

    session: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class MatchStarted:
    """Run ``Realtime.tick(match_id)`` ``tick_rate`` times a second from now on."""

    match_id: str
    tick_rate: int


@dataclass(frozen=True, slots=True)
class MatchEnded:
    """The match is over: stop ticking it."""

    match_id: str


Effect = SendEnvelope | CloseSocket | MatchStarted | MatchEnded


@dataclass
class Session:
    """One realtime socket's session: who it is, and the matches its presence is in."""

    id: str
    user_id: str
    username: str
    vars: dict[str, str] = field(default_factory=dict)
    node: str = "nakama1"
    matches: set[str] = field(default_factory=set)
    closing: bool = False  # the server closed it: nothing more is sent

    def presence(self) -> Presence:
        return Presence(self.user_id, self.id, self.username, self.node)


class _Match:
    """A running match: its driver and the sessions of its presences."""

    def __init__(self, match_id: str, driver: MatchDriver) -> None:
        self.id, self.driver = match_id, driver
        self.sessions: dict[str, Session] = {}  # session id -> session

    @property
    def runtime(self) -> Any:
        return self.driver.runtime

    def presences(self) -> list[Presence]:
        return list(self.runtime.presences)


def wire_presence(p: Presence) -> P.UserPresence:
    return P.UserPresence(p.user_id, p.session_id, p.username)


class Realtime:
    """Sessions and matches under Nakama's realtime rules (see the module docstring).

    ``new_match(match_id, params)`` builds the ``MatchDriver`` of a new match (serve's records it);
    ``rpcs`` maps a lower-case RPC id to ``fn(ctx, payload) -> result`` (a user RPC; its exception is the
    client's error reply); ``new_id()`` makes session and match uuids (default ``uuid4``; tests pass a
    counter); ``handler`` names the handler in the start line given to ``on_event``.
    """

    def __init__(
        self,
        new_match: Callable[[str, dict[str, Any]], MatchDriver],
        *,
        node: str = "nakama1",
        rpcs: Mapping[str, Callable[[dict[str, Any], str], Any]] | None = None,
        on_event: Callable[[str], None] | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        handler: str = "",
    ) -> None:
        self.new_match, self.node, self.new_id, self.handler = new_match, node, new_id, handler
        self.rpcs = dict(rpcs or {})
        self.on_event = on_event
        self.sessions: dict[str, Session] = {}
        self.matches: dict[str, _Match] = {}
        self._out: list[Effect] = []

    # -- what to do ---------------------------------------------------------------------------------------
    def take(self) -> list[Effect]:
        """The effects caused since the last call, in order (the I/O layer performs them)."""
        out, self._out = self._out, []
        return out

    def event(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)

    def _send(self, s: Session, env: P.Envelope) -> None:
        if not s.closing:
            self._out.append(SendEnvelope(s.id, env))

    def _reply(self, s: Session, message: P.Message | None, cid: str = "") -> None:
        self._send(s, P.Envelope(message, cid))

    def _error(self, s: Session, code: int, message: str, cid: str = "") -> None:
        self._send(s, P.Envelope(P.Error(code, message), cid))

    def close(self, session_id: str, code: int, reason: str) -> None:
        """Close a session's socket (the server's decision); its presences leave once it has closed."""
        s = self.sessions.get(session_id)
        if s is not None and not s.closing:
            s.closing = True
            self._out.append(CloseSocket(s.id, code, reason))

    # -- sockets ------------------------------------------------------------------------------------------
    def connect(self, user_id: str, username: str, vars: Mapping[str, str] | None = None) -> Session:
        """A socket opened for an authenticated user: its new session."""
        s = Session(self.new_id(), user_id, username, dict(vars or {}), self.node)
        self.sessions[s.id] = s
        return s

    def disconnect(self, session_id: str) -> None:
        """The socket closed: the session's presences leave their matches with reason 4 (disconnect)."""
        s = self.sessions.pop(session_id, None)
        if s is None:
            return
        for mid in list(s.matches):
            s.matches.discard(mid)
            m = self.matches.get(mid)
            if m is not None:
                self._run(m, Leave(s.id, PresenceReason.DISCONNECT), s.presence())

    def receive(self, session_id: str, text: str | bytes) -> None:
        """One frame from the session's client."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return
        if isinstance(text, bytes):
            self.close(s.id, P.CLOSE_NORMAL, CLOSE_BINARY)
            return
        parsed = P.parse(text)
        if isinstance(parsed, P.Violation):
            if parsed.reply is not None:
                self._send(s, parsed.reply)
            self.close(s.id, P.CLOSE_NORMAL, parsed.close_reason)
            return
        self.handle(s.id, parsed)

    def handle(self, session_id: str, env: P.Envelope) -> None:
        """One parsed envelope from the session's client."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return
        msg, cid = env.message, env.cid
        match msg:
            case P.Ping():
                self._reply(s, P.Pong(), cid)
            case P.Pong():
                pass
            case P.Rpc():
                self._socket_rpc(s, msg, cid)
            case P.MatchJoin():
                self._match_join(s, msg, cid)
            case P.MatchDataSend():
                self._match_data_send(s, msg)
            case P.MatchLeave():
                self._match_leave(s, msg, cid)
            case _:
                self._error(
                    s, P.ErrorCode.UNRECOGNIZED_PAYLOAD, f"{env.kind} is not supported by nakama-replay serve", cid
                )

    # -- RPCs ---------------------------------------------------------------------------------------------
    def has_rpc(self, rpc_id: str) -> bool:
        """Whether ``rpc_id`` (lower case) names a built-in or user RPC."""
        return rpc_id in BUILTIN_RPCS or rpc_id in self.rpcs

    def rpc(self, rpc_id: str, payload: str, session: Session | None = None) -> tuple[str | None, str | None]:
        """Call RPC ``rpc_id`` (lower case, known: ``has_rpc``) for ``session`` (None: HTTP with the http key);
        ``(result, None)`` or ``(None, error message)``."""
        if rpc_id == "create_match":
            return self.create_match(payload)
        if rpc_id == "signal_match":
            return self.signal_match(payload)
        ctx: dict[str, Any] = {"execution_mode": "rpc", "node": self.node, "env": {}}
        if session is not None:
            ctx.update(user_id=session.user_id, username=session.username, vars=dict(session.vars))
        try:
            result = self.rpcs[rpc_id](ctx, payload)
        except Exception as exc:  # a user RPC's error is the client's error reply
            return None, str(exc) or type(exc).__name__
        return (None if result is None else str(result)), None

    def _socket_rpc(self, s: Session, rpc: P.Rpc, cid: str) -> None:
        if not rpc.id:
            self._error(s, P.ErrorCode.BAD_INPUT, "RPC ID must be set", cid)
            return
        rpc_id = rpc.id.lower()
        if not self.has_rpc(rpc_id):
            self._error(s, P.ErrorCode.RUNTIME_FUNCTION_NOT_FOUND, "RPC function not found", cid)
            return
        result, error = self.rpc(rpc_id, rpc.payload, s)
        if error is not None:
            self._error(s, P.ErrorCode.RUNTIME_FUNCTION_EXCEPTION, error, cid)
        else:
            self._reply(s, P.Rpc(rpc.id, result or ""), cid)

    def create_match(self, payload: str) -> tuple[str | None, str | None]:
        """Built-in RPC ``create_match``: the payload object is ``match_init``'s params; the result is
        ``{"match_id": "<uuid>.<node>"}``."""
        try:
            params = json.loads(payload) if payload else {}
        except ValueError:
            return None, "create_match payload must be a JSON object"
        if not isinstance(params, dict):
            return None, "create_match payload must be a JSON object"
        match_id = f"{self.new_id()}.{self.node}"
        driver = self.new_match(match_id, params)
        step = driver.init(params)
        if step.crash is not None or driver.runtime.stopped:
            driver.close()
            why = step.crash.error if step.crash is not None else "match_init returned no state"
            self.event(f"match {match_id} did not start: {why}")
            return None, f"Error creating match: {why}"
        self.event(
            f"match {match_id} started: {self.handler}, tick rate {driver.runtime.tick_rate}, "
            f"label {driver.runtime.label!r}"
        )
        self.matches[match_id] = _Match(match_id, driver)
        self._out.append(MatchStarted(match_id, int(driver.runtime.tick_rate or 1)))
        return json.dumps({"match_id": match_id}, separators=(",", ":")), None

    def signal_match(self, payload: str) -> tuple[str | None, str | None]:
        """Built-in RPC ``signal_match``: payload ``{"match_id": ..., "data": ...}``; the result is the
        handler's ``match_signal`` reply."""
        try:
            request = json.loads(payload) if payload else None
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("match_id"), str):
            return None, 'signal_match payload must be {"match_id": "...", "data": "..."}'
        m = self.matches.get(request["match_id"])
        if m is None:
            return None, "failed to signal match: match not found"
        step = self._run(m, Signal(str(request.get("data") or "")))[0]  # the signal's (a kick's leave may follow)
        if step.crash is not None:
            return None, f"failed to signal match: {step.crash.error}"
        return (step.outcome.reply if step.outcome is not None else "") or "", None

    # -- matches ------------------------------------------------------------------------------------------
    def tick(self, match_id: str) -> None:
        """One ``match_loop`` of a running match (its queued messages), and what it caused."""
        m = self.matches.get(match_id)
        if m is not None:
            self._run(m, Tick(1))

    def match_ids(self) -> list[str]:
        return list(self.matches)

    def _find_match(self, s: Session, match_id: str, cid: str) -> _Match | None:
        if not valid_match_id(match_id):
            self._error(s, P.ErrorCode.BAD_INPUT, "Invalid match ID", cid)
            return None
        m = self.matches.get(match_id)
        if m is None:
            self._error(s, P.ErrorCode.MATCH_NOT_FOUND, "Match not found", cid)
        return m

    def _match_join(self, s: Session, join: P.MatchJoin, cid: str) -> None:
        if join.token is not None:
            self._error(s, P.ErrorCode.BAD_INPUT, "Invalid match token", cid)
            return
        if join.match_id is None:
            self._error(s, P.ErrorCode.BAD_INPUT, "No match ID or token found", cid)
            return
        m = self._find_match(s, join.match_id, cid)
        if m is None:
            return
        me = s.presence()
        if s.id in m.sessions:  # already a member: the match info again, self included in the list
            self._reply(s, self._match_info(m, me, is_new=False), cid)
            return
        before = {p.session_id: p for p in m.presences()}
        first = len(m.driver.steps)
        m.sessions[s.id] = s
        joined = apply_action(m.driver, Connect(s.id, dict(join.metadata)), me, s.vars)
        steps = m.driver.steps[first:]
        if joined is None:
            m.sessions.pop(s.id, None)
            attempt = next((st for st in steps if st.call.kind == "join_attempt"), None)
            crashed = any(st.crash is not None for st in steps)
            reason = (attempt.outcome.reason if attempt is not None and attempt.outcome is not None else "") or ""
            if crashed or m.runtime.stopped or attempt is None or not attempt.executed:
                self._error(s, P.ErrorCode.MATCH_NOT_FOUND, "Match not found", cid)
            else:
                self._error(s, P.ErrorCode.MATCH_JOIN_REJECTED, reason or "Match join rejected", cid)
            self._deliver(m, before, steps)
            return
        s.matches.add(m.id)
        self._deliver(m, before, steps, P.Envelope(self._match_info(m, me, is_new=True), cid), s)

    def _match_info(self, m: _Match, me: Presence, is_new: bool) -> P.Match:
        others = tuple(wire_presence(p) for p in m.presences() if not (is_new and p.session_id == me.session_id))
        return P.Match(m.id, True, m.runtime.label, len(others), others, wire_presence(me))

    def _match_data_send(self, s: Session, send: P.MatchDataSend) -> None:
        if not valid_match_id(send.match_id):
            self._error(s, P.ErrorCode.BAD_INPUT, "Invalid match ID")  # Nakama sends it without cid
            return
        m = self.matches.get(send.match_id)
        if m is None or s.id not in m.sessions:
            return  # not part of the match: dropped silently, as Nakama does
        apply_action(m.driver, Send(s.id, send.op_code, send.data or None, reliable=send.reliable), s.presence())

    def _match_leave(self, s: Session, leave: P.MatchLeave, cid: str) -> None:
        if not valid_match_id(leave.match_id):
            self._error(s, P.ErrorCode.BAD_INPUT, "Invalid match ID", cid)
            return
        m = self.matches.get(leave.match_id)
        if m is not None and s.id in m.sessions:
            s.matches.discard(m.id)
            self._run(m, Leave(s.id, PresenceReason.LEAVE), s.presence())
        self._reply(s, None, cid)

    def _run(self, m: _Match, action: Any, presence: Presence | None = None) -> list[StepResult]:
        """Play one action on the match, then deliver what it caused; returns its steps."""
        before = {p.session_id: p for p in m.presences()}
        first = len(m.driver.steps)
        apply_action(m.driver, action, presence)
        steps = m.driver.steps[first:]
        self._deliver(m, before, steps)
        return steps

    def _deliver(
        self,
        m: _Match,
        before: dict[str, Presence],
        steps: list[Any],
        joined_reply: P.Envelope | None = None,
        joiner: Session | None = None,
    ) -> None:
        after = {p.session_id: p for p in m.presences()}
        leaves = [p for sid, p in before.items() if sid not in after]
        joins = [p for sid, p in after.items() if sid not in before]
        if joined_reply is not None and joiner is not None:
            self._send(joiner, joined_reply)
        if leaves:
            self._broadcast(m, P.MatchPresenceEvent(m.id, leaves=tuple(map(wire_presence, leaves))), after)
            for p in leaves:
                gone = m.sessions.pop(p.session_id, None)
                if gone is not None:
                    gone.matches.discard(m.id)
        if joins:
            self._broadcast(m, P.MatchPresenceEvent(m.id, joins=tuple(map(wire_presence, joins))), after)
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
                    m.id,
                    None if b.sender is None else wire_presence(b.sender),
                    b.op_code,
                    b.data or b"",
                    b.reliable,
                )
                if b.targets is None:
                    self._broadcast(m, msg, reachable)
                else:
                    self._broadcast(m, msg, {t.session_id: t for t in b.targets if t.session_id in reachable})
        crash = next((s.crash for s in steps if s.crash is not None), None)
        if crash is not None or m.runtime.stopped:
            if m.id in self.matches:
                self.event(ending_line(m.id, crash, m.runtime.stop_reason))
            self._stop(m, crash is not None)

    def _broadcast(self, m: _Match, message: P.Message, to: Mapping[str, Presence]) -> None:
        env = P.Envelope(message)
        for sid in to:
            s = m.sessions.get(sid)
            if s is not None:
                self._send(s, env)

    def _stop(self, m: _Match, crashed: bool) -> None:
        if self.matches.pop(m.id, None) is None:
            return
        self._out.append(MatchEnded(m.id))
        for s in list(m.sessions.values()):
            s.matches.discard(m.id)
            if crashed:
                self.close(s.id, P.CLOSE_NORMAL, P.CLOSE_SERVER_DISCONNECT)
        m.sessions.clear()
        m.driver.close()

    def stop_all(self) -> None:
        """Shut down: every match ends (without closing sockets) and its recording is closed."""
        for m in list(self.matches.values()):
            self._stop(m, False)


def ending_line(match_id: str, crash: Any, stop_reason: str) -> str:
    """The line ``serve`` prints when a match ends: a crash or hang with callback, tick and error, or a stop."""
    if crash is None:
        why = {"nil-state": "a callback returned no state", "terminated": "terminated"}.get(stop_reason, stop_reason)
        return f"match {match_id} stopped: {why}"
    first = crash.error.strip().splitlines()[0] if crash.error.strip() else crash.error_type
    what = "hung" if crash.hung else "crashed"
    return f"match {match_id} {what} in {crash.callback} at tick {crash.tick}: {first}"


def valid_match_id(match_id: str) -> bool:
    """Nakama's check: ``<uuid>.<node>`` (the node may be empty for relayed matches)."""
    uuid_part, sep, _ = match_id.partition(".")
    try:
        uuid.UUID(uuid_part)
    except ValueError:
        return False
    return bool(sep)
