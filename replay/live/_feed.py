"""Re-feed a recording into a live Nakama (or ``nakama-replay serve``) in real time, and capture what it sends.

``run_live(script, options)`` is the I/O loop around a ``replay.live.LiveScript``:

1. one device-authenticated session per recorded session: the device id is derived from the recorded user
   id (``device_id``), so a rerun reuses the same accounts; the recorded username and session vars are asked
   for; a socket opens ``LOOKAHEAD`` seconds before its first action (tokens of a real Nakama live 60 s);
2. the match is created with a socket RPC (``create_rpc``, payload from the recording's ``match_init``
   params unless given), or an existing one (``match_id``) is joined;
3. actions go out at the recorded tick rate: the actions of recorded tick ``T`` are sent ``AIM`` of a
   period after the live loop before it (``replay.live._tick_clock``: loop 0 one period after the create reply,
   phase-locked on broadcasts only ``match_loop`` sends); a join waits for its ``match`` reply and its own
   presence event (then the server has queued ``match_join``); messages of different sockets in one window
   go ``SPACING`` apart, so they reach the server's input queue in recorded order; wire recordings keep
   their recorded spacing;
4. every envelope, both ways, and every close is written to a new wire recording (``recorder.wire._recorder``,
   source ``replay``), and kept with its arrival time for the report (``replay.live._report``);
5. recorded ids inside payloads are mapped to the live ones (``map_payload_ids``, on by default): where a
   message's data, a join's metadata values, a signal's data or an RPC payload is JSON, every recorded user
   id, session id and match id in it becomes the live one (a handler that looks a player up by an id a
   client sent finds the live player). User ids named in payloads are learnt before the match is created
   (the device is authenticated early); a session id is known once its socket has joined: one named before
   that is sent as recorded, and the run says so.

A handler error makes Nakama close every participant's socket with 1000 "server-side session disconnect":
when every socket in the match has closed that way, the run stops early. Otherwise, after a tail of a few
ticks, a ``match_join`` on a socket already in the match asks whether the match still runs (a member's join
does not call the handler; a stopped match answers "Match not found"). Everything is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from recorder._b64 import b64
from recorder.wire import Redactor, WireRecorder, http_request, parse_server_url, session_token
from recorder.wire import protocol as P
from replay.errors import LiveReplayError
from replay.live._script import Actor, LiveScript, Planned
from replay.live._tick_clock import TickClock
from replay.realtime._actions import Action, Connect, Rpc, Send, Signal
from replay.realtime._client import ClientView, join_verdict, match_crashed, probe_verdict

__all__ = [
    "AIM",
    "LOOKAHEAD",
    "SPACING",
    "LiveOptions",
    "ActionRecord",
    "SocketRecord",
    "LiveRun",
    "PayloadIds",
    "device_id",
    "map_ids_in_json",
    "run_live",
]

#: Fraction of a period after the live loop before its window at which a window's actions start.
AIM = 0.4
#: Seconds before its first action at which a socket is authenticated and opened.
LOOKAHEAD = 1.0
#: Seconds between two messages of different sockets in one window: a server reads each socket on its
#: own, so messages sent back to back from two sockets may reach its input queue swapped.
SPACING = 0.002
REPLY_TIMEOUT = 5.0
#: Seconds after which a session token is renewed before an HTTP RPC (Nakama's default expiry is 60 s).
TOKEN_REFRESH = 30.0
PRESENCE_TIMEOUT = 1.0


@dataclass
class LiveOptions:
    nakama: str = "http://127.0.0.1:7350"
    server_key: str = "defaultkey"
    create_rpc: str | None = None  # default: the recording's, else "create_match"
    create_payload: str | None = None  # default: the recording's match_init params as JSON
    match_id: str | None = None  # join this running match instead of creating one
    signal_rpc: str | None = None  # RPC that signals a match: payload {"match_id", "data"}, result = reply
    out_dir: str = "replay-wire"
    tail_ticks: int = 5
    map_payload_ids: bool = True  # recorded user/session/match ids inside JSON payloads -> the live ones
    redact_keys: tuple[str, ...] = ()  # JSON keys redacted in the captured wire recording beyond the tokens
    on_action: Callable[[int, int], None] | None = None  # progress: (actions performed, at tick), after each one


@dataclass
class ActionRecord:
    """What became of one scripted action. ``status``: ok, rejected, error, skipped, not sent."""

    index: int
    action: Planned
    target: float | None = None  # when it was meant to go out (client clock)
    sent_at: float | None = None
    done_at: float | None = None
    status: str = "not sent"
    detail: str = ""
    late: bool = False  # sent after the end of its window


@dataclass
class SocketRecord:
    """A replayed actor's live session and everything its socket received, with arrival times."""

    actor: str
    name: str = ""  # socket name in the captured wire recording
    user_id: str = ""
    username: str = ""
    opened_at: float | None = None
    closed_at: float | None = None
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str = ""  # "server" or "client"
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    view: ClientView = field(default_factory=ClientView)  # what the server's envelopes told (replay.realtime)

    @property
    def session_id(self) -> str:
        return self.view.session_id

    @property
    def in_match(self) -> bool:
        return self.view.in_match

    @property
    def joined_ever(self) -> bool:
        return self.view.joined_ever

    @property
    def closed_with(self) -> tuple[str, int | None, str] | None:
        """``(closed_by, code, reason)``, None while open."""
        return None if self.closed_at is None else (self.closed_by, self.close_code, self.close_reason)


@dataclass
class LiveRun:
    nakama: str
    match_id: str
    created: bool
    clock: TickClock
    offset: int  # live tick of the script's first tick
    sockets: dict[str, SocketRecord]
    actions: list[ActionRecord]
    wire_paths: list[str]
    probe: str  # "running", "gone" or "" (not asked)
    crash_at: float | None  # first "server-side session disconnect" close, once every socket in the match had one
    started_at: float
    finished_at: float
    create_reply_at: float | None = None
    notes: list[str] = field(default_factory=list)
    payload_ids: PayloadIds | None = None


@dataclass
class PayloadIds:
    """What mapping recorded ids inside payloads did: ``payloads`` rewritten, distinct recorded ids mapped,
    and recorded ids sent as recorded because no live one was known yet (``unmapped``: one line each)."""

    enabled: bool = True
    payloads: int = 0
    mapped: set[str] = field(default_factory=set)
    unmapped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "payloads": self.payloads, "ids": len(self.mapped), "unmapped": self.unmapped}


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def map_ids_in_json(data: bytes, ids: dict[str, str]) -> tuple[bytes, list[str]]:
    """``data`` with every recorded id of ``ids`` replaced by its live one, when ``data`` is JSON text (so
    the ids are inside its strings); anything else is returned as it is. Returns the data and the recorded
    ids replaced."""
    if not ids or not data:
        return data, []
    try:
        text = data.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return data, []
    found = [rec for rec in ids if rec in text]
    if not found:
        return data, []
    for rec in sorted(found, key=len, reverse=True):  # a full match id before its uuid part
        text = text.replace(rec, ids[rec])
    return text.encode("utf-8"), found


def device_id(recorded_user_id: str) -> str:
    """A stable device id for a recorded user (so reruns reuse one account): 44 bytes, no spaces."""
    return "nkr-" + hashlib.sha256(recorded_user_id.encode("utf-8")).hexdigest()[:40]


class _Socket:
    """One replayed actor's socket: requests with a cid await their reply; every message is recorded."""

    def __init__(self, live: _Live, actor: Actor) -> None:
        self.live, self.actor = live, actor
        self.rec = SocketRecord(actor.key)
        self.token = ""
        self.token_at = 0.0
        self.ws: Any = None
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.join_waiters: dict[str, asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def open(self) -> None:
        live = self.live
        self.token, self.rec.user_id, self.rec.username = await live.session(self.actor)
        self.token_at = live.now()
        from websockets.asyncio.client import connect  # keep --help fast

        url = f"ws://{live.host}:{live.port}/ws?lang=en&status=false&format=json&token={quote(self.token)}"
        try:
            self.ws = await asyncio.wait_for(connect(url, proxy=None, max_size=None, compression=None), REPLY_TIMEOUT)
        except (TimeoutError, OSError, Exception) as exc:  # any refusal is the server's
            raise LiveReplayError(
                live.options.nakama, f"opening the socket of {self.actor.label}", f"{type(exc).__name__}: {exc}"
            ) from exc
        self.rec.opened_at = live.now()
        self.rec.name = live.recorder.open_socket(
            f"replay:{self.actor.label}",
            self.rec.user_id,
            self.rec.username,
            dict(self.actor.vars),
            t=self.rec.opened_at,
        )
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        live = self.live
        try:
            async for text in self.ws:
                t = live.now()
                live.recorder.envelope(self.rec.name, "in", text, t)
                try:
                    obj = json.loads(text)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                self.rec.received.append((t, obj))
                seen = self.rec.view.receive(obj)
                if seen.cid in self.waiters:
                    fut = self.waiters.pop(seen.cid)
                    if not fut.done():
                        fut.set_result(obj)
                for sid in seen.joins:
                    w = self.join_waiters.pop(sid, None)
                    if w is not None and not w.done():
                        w.set_result(None)
                if seen.match_data is not None:
                    live.saw_broadcast(t, seen.match_data)
        except ConnectionClosed:
            pass
        finally:
            self._closed()

    def _closed(self) -> None:
        live, ws = self.live, self.ws
        t = live.now()
        rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
        by_server = rcvd is not None and (sent is None or ws.protocol.close_rcvd_then_sent)
        frame = rcvd if by_server else sent
        self.rec.closed_at = t
        self.rec.close_code = frame.code if frame is not None else 1006
        self.rec.close_reason = frame.reason if frame is not None else ""
        self.rec.closed_by = "server" if by_server else "client"
        live.recorder.close_socket(
            self.rec.name, "in" if by_server else "out", self.rec.close_code, self.rec.close_reason, t
        )
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"socket closed ({self.rec.close_code} {self.rec.close_reason!r})"))
        self.waiters.clear()
        for w in self.join_waiters.values():
            if not w.done():
                w.set_result(None)
        self.closed.set()
        live.socket_closed(self)

    @property
    def open_now(self) -> bool:
        return self.ws is not None and not self.closed.is_set()

    async def send(self, env: P.Envelope) -> float:
        from websockets.exceptions import ConnectionClosed

        text = P.build(env)
        t = self.live.now()
        self.live.recorder.envelope(self.rec.name, "out", text, t)
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise ConnectionError(f"socket closed ({exc})") from exc
        return t

    async def request(self, message: P.Message) -> tuple[float, dict[str, Any]]:
        self.live.cid += 1
        cid = str(self.live.cid)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[cid] = fut
        t = await self.send(P.Envelope(message, cid))
        return t, await asyncio.wait_for(fut, REPLY_TIMEOUT)

    async def wait_join_event(self, session_id: str) -> bool:
        if session_id in self.rec.view.joins_seen:
            return True
        fut = self.join_waiters.setdefault(session_id, asyncio.get_running_loop().create_future())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(fut, PRESENCE_TIMEOUT)
        return session_id in self.rec.view.joins_seen

    async def close(self) -> None:
        if self.ws is not None and not self.closed.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(1000, ""), REPLY_TIMEOUT)
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.closed.wait(), REPLY_TIMEOUT)


class _Live:
    def __init__(self, script: LiveScript, options: LiveOptions) -> None:
        address = parse_server_url(options.nakama, option="--nakama")
        self.script, self.options = script, options
        self.host, self.port = address.host, address.port
        self.recorder = WireRecorder(
            options.out_dir,
            source="replay",
            redactor=Redactor(options.redact_keys),
            tags={
                "replay_of": script.path,
                "recorded_match_id": script.header.match_id,
                "tick_rate": script.tick_rate,
                "nakama": options.nakama,
            },
        )
        self.sockets: dict[str, _Socket] = {}
        self.opening: dict[str, asyncio.Task[_Socket]] = {}
        self.records: list[ActionRecord] = [ActionRecord(i, a) for i, a in enumerate(script.actions)]
        self.performed = 0  # actions performed so far (progress)
        self.clock = TickClock(script.tick_rate, 0.0)
        self.clock_ready = False
        self.match_id = options.match_id or ""
        self.cid = 0
        self.crashed = asyncio.Event()
        self.crash_at: float | None = None
        self.offset = 0
        self.notes: list[str] = []
        self.anchor = 0.0  # client time matching the recording's anchor (wire recordings)
        self.create_reply_at: float | None = None
        self.sessions_made: dict[str, tuple[float, str, str, str]] = {}  # actor key -> (time, token, uid, name)
        self.live_user_ids: dict[str, str] = {}  # recorded user id -> live, learnt before the match
        self.payload_ids = PayloadIds(enabled=options.map_payload_ids)

    def now(self) -> float:
        return self.recorder.now()

    # -- HTTP ---------------------------------------------------------------------------------------------
    async def session(self, actor: Actor) -> tuple[str, str, str]:
        """A fresh session for ``actor`` (one made in the last ``TOKEN_REFRESH`` seconds is reused)."""
        made = self.sessions_made.pop(actor.key, None)
        if made is not None and self.now() - made[0] < TOKEN_REFRESH:
            return made[1], made[2], made[3]
        return await self.authenticate(actor)

    async def learn_user_ids(self) -> None:
        """Authenticate, before the match exists, the users whose recorded ids appear in payloads, so
        their live user ids are known when those payloads are mapped."""
        if not self.options.map_payload_ids:
            return
        blob = "\n".join(_text_of(a.action) for a in self.script.actions)
        first_actor: dict[str, Actor] = {}
        for actor in self.script.actors.values():
            if actor.user_id and _UUID.fullmatch(actor.user_id):
                first_actor.setdefault(actor.user_id, actor)
        for uid, actor in first_actor.items():
            if uid in blob and actor.key not in self.sessions_made:
                token, live_uid, name = await self.authenticate(actor)
                self.sessions_made[actor.key] = (self.now(), token, live_uid, name)
                self.live_user_ids[uid] = live_uid

    def id_map(self) -> dict[str, str]:
        """Recorded id -> live id, as far as the live ids are known now."""
        ids = dict(self.live_user_ids)
        for key, s in self.sockets.items():
            actor = self.script.actors[key]
            if actor.user_id and s.rec.user_id:
                ids[actor.user_id] = s.rec.user_id
            if actor.session_id and s.rec.session_id:
                ids[actor.session_id] = s.rec.session_id
        rec_mid = self.script.header.match_id
        if rec_mid and self.match_id:
            ids[rec_mid] = self.match_id
            ids.setdefault(rec_mid.partition(".")[0], self.match_id.partition(".")[0])
        return {k: v for k, v in ids.items() if k and v and k != v}

    def mapped(self, data: bytes, action: Planned) -> bytes:
        """``data`` (from ``action``) with recorded ids mapped to live ones; ids with no live counterpart yet
        are noted."""
        if not self.options.map_payload_ids:
            return data
        out, found = map_ids_in_json(data, self.id_map())
        if found:
            self.payload_ids.payloads += 1
            self.payload_ids.mapped.update(found)
        known = set(found)
        text = out.decode("utf-8", "replace") if out else ""
        for actor in self.script.actors.values():
            for what, rec in (("user", actor.user_id), ("session", actor.session_id)):
                if rec and rec not in known and _UUID.fullmatch(rec) and rec in text:
                    who = self.script.actors.get(action.actor)
                    self.payload_ids.unmapped.append(
                        f"tick {action.tick}: a {action.kind} of {who.label if who else 'the server'} names "
                        f"{actor.label}'s {what} id, which has no live counterpart yet: sent as recorded"
                    )
                    known.add(rec)
        return out

    def mapped_text(self, text: str, action: Planned) -> str:
        return self.mapped(text.encode("utf-8"), action).decode("utf-8") if text else text

    async def authenticate(self, actor: Actor) -> tuple[str, str, str]:
        """A session for ``actor``: (token, live user id, live username)."""
        basic = "Basic " + b64(f"{self.options.server_key}:".encode())
        body = json.dumps({"id": device_id(actor.user_id or actor.key), "vars": dict(actor.vars)}).encode()
        for username in ([actor.username] if actor.username else []) + [""]:
            target = "/v2/account/authenticate/device?create=true"
            if username:
                target += "&username=" + quote(username)
            try:
                status, _, raw = await http_request(
                    self.host,
                    self.port,
                    "POST",
                    target,
                    [("Authorization", basic), ("Content-Type", "application/json")],
                    body,
                    timeout=REPLY_TIMEOUT,
                )
            except (TimeoutError, OSError, ConnectionError) as exc:
                raise LiveReplayError(
                    self.options.nakama, f"authenticating {actor.label}", f"{type(exc).__name__}: {exc}"
                ) from exc
            if status == 409 and username:
                self.notes.append(
                    f"username {username!r} belongs to another account: {actor.label} got a generated one"
                )
                continue
            if status != 200:
                raise LiveReplayError(
                    self.options.nakama,
                    f"authenticating {actor.label}",
                    f"HTTP {status}: {raw.decode('utf-8', 'replace')[:300]}",
                )
            try:
                token = json.loads(raw)["token"]
            except (ValueError, KeyError, TypeError) as exc:
                raise LiveReplayError(
                    self.options.nakama, f"authenticating {actor.label}", f"no session token in the reply {raw[:200]!r}"
                ) from exc
            claims = session_token.decode(token)
            if claims is None:
                raise LiveReplayError(self.options.nakama, f"authenticating {actor.label}", "malformed session token")
            return token, claims.user_id, claims.username
        raise AssertionError("unreachable")

    async def http_rpc(self, rpc_id: str, payload: str, token: str) -> str:
        """A Nakama HTTP RPC: the body is the payload as a JSON string; returns the result payload."""
        status, _, raw = await http_request(
            self.host,
            self.port,
            "POST",
            f"/v2/rpc/{quote(rpc_id)}",
            [("Authorization", "Bearer " + token), ("Content-Type", "application/json")],
            json.dumps(payload).encode(),
            timeout=REPLY_TIMEOUT,
        )
        text = raw.decode("utf-8", "replace")
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {text[:300]}")
        try:
            return str(json.loads(text).get("payload", ""))
        except (ValueError, AttributeError):
            return text

    # -- sockets ------------------------------------------------------------------------------------------
    def socket(self, key: str) -> asyncio.Task[_Socket]:
        task = self.opening.get(key)
        if task is None:

            async def go() -> _Socket:
                s = _Socket(self, self.script.actors[key])
                await s.open()
                self.sockets[key] = s
                return s

            task = self.opening[key] = asyncio.get_running_loop().create_task(go())
        return task

    def saw_broadcast(self, t: float, data: dict[str, Any]) -> None:
        if not self.clock_ready:
            return
        ops = self.script.loop_ops
        try:
            op = int(data.get("op_code", 0))
        except (TypeError, ValueError):
            return
        if ops is None or op in ops:
            self.clock.observe(t)

    def socket_closed(self, s: _Socket) -> None:
        in_match = [x.rec for x in self.sockets.values() if x.rec.in_match]
        if match_crashed(r.closed_with for r in in_match) and not self.crashed.is_set():
            self.crash_at = min(r.closed_at or 0.0 for r in in_match)
            self.crashed.set()

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0 and not self.crashed.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.crashed.wait(), delay)

    # -- schedule -----------------------------------------------------------------------------------------
    def target(self, action: Planned) -> float:
        if action.at is not None:
            return self.anchor + action.at
        live_tick = action.tick - self.script.first_tick + self.offset
        return self.clock.time_of(live_tick - 1 + AIM)

    def window_end(self, action: Planned) -> float:
        if action.at is not None:
            return self.anchor + action.at + self.clock.period
        return self.clock.time_of(action.tick - self.script.first_tick + self.offset)

    async def prefetch(self) -> None:
        """Open each socket ``LOOKAHEAD`` seconds before its first action."""
        firsts: dict[str, Planned] = {}
        for a in self.script.actions:
            if a.actor and a.actor not in firsts:
                firsts[a.actor] = a
        for key, a in firsts.items():
            await self.sleep_until(self.target(a) - LOOKAHEAD)
            if self.crashed.is_set():
                return
            with contextlib.suppress(LiveReplayError):
                await self.socket(key)

    async def create(self) -> None:
        script, options = self.script, self.options
        first = next((a.actor for a in script.actions if a.actor), None)
        if first is None:
            raise LiveReplayError(options.nakama, "creating the match", "the recording has no client to replay")
        if options.match_id:
            self.anchor = self.now()
            self.clock = TickClock(script.tick_rate, self.anchor + self.clock.period, locked=False)
            self.notes.append("joined a running match: its live tick numbers are counted from the replay's start")
            self.clock_ready = True
            return
        rpc_id = options.create_rpc or script.create_rpc or "create_match"
        payload = options.create_payload
        if payload is None:
            payload = (
                script.create_payload if script.create_payload is not None else json.dumps(script.create_params or {})
            )
        s = await self.socket(first)
        try:
            _, reply = await s.request(P.Rpc(rpc_id, payload))
        except (TimeoutError, ConnectionError) as exc:
            raise LiveReplayError(
                options.nakama, f"creating the match with RPC {rpc_id!r}", str(exc) or "timeout"
            ) from exc
        t = self.now()
        if "error" in reply:
            err = reply["error"] if isinstance(reply["error"], dict) else {}
            raise LiveReplayError(
                options.nakama,
                f"creating the match with RPC {rpc_id!r}",
                f"error {err.get('code', 0)}: {err.get('message', '')}",
            )
        result = str((reply.get("rpc") or {}).get("payload", ""))
        self.match_id = _match_id_of(result)
        if not self.match_id:
            raise LiveReplayError(
                options.nakama,
                f"creating the match with RPC {rpc_id!r}",
                f'its result {result[:200]!r} holds no match id (want {{"match_id": "..."}})',
            )
        self.create_reply_at = self.anchor = t
        self.clock = TickClock(script.tick_rate, t + 1.0 / script.tick_rate)
        self.clock_ready = True

    async def perform(self, rec: ActionRecord) -> None:
        try:
            await self._perform(rec)
        except (TimeoutError, ConnectionError) as exc:  # the server closed the socket meanwhile
            rec.status, rec.detail = "error", str(exc) or type(exc).__name__
            rec.done_at = self.now()
        if self.options.on_action is not None:
            self.performed += 1
            self.options.on_action(self.performed, rec.action.tick)

    async def _perform(self, rec: ActionRecord) -> None:
        a = rec.action
        if a.kind == "signal":
            await self._signal(rec)
            return
        task = self.socket(a.actor)
        try:
            s = await task
        except LiveReplayError as exc:
            rec.status, rec.detail = "error", str(exc)
            return
        if a.kind == "join":
            await self._join(rec, s)
            return
        if not s.open_now:
            rec.status, rec.detail = "skipped", "its socket is closed"
            return
        if a.kind == "send":
            if not s.rec.in_match:
                rec.status, rec.detail = "skipped", "its session is not in the match"
                return
            send = a.action
            assert isinstance(send, Send)
            targets = tuple(self._wire_presence(k) for k in send.targets)
            data = self.mapped(send.data or b"", a)
            rec.sent_at = await s.send(
                P.Envelope(P.MatchDataSend(self.match_id, send.op_code, data, targets, send.reliable))
            )
            rec.status = "ok"
        elif a.kind == "leave":
            try:
                rec.sent_at, _ = await s.request(P.MatchLeave(self.match_id))
                rec.status = "ok"
            except (TimeoutError, ConnectionError) as exc:
                rec.status, rec.detail = "error", str(exc) or "no reply"
            s.rec.view.left()
        elif a.kind == "disconnect":
            s.rec.view.left()
            rec.sent_at = self.now()
            await s.close()
            rec.status = "ok"
        elif a.kind == "rpc":
            rpc = a.action
            assert isinstance(rpc, Rpc)
            payload = (
                rpc.payload.replace(self.script.header.match_id, self.match_id)
                if self.script.header.match_id
                else rpc.payload
            )
            payload = self.mapped_text(payload, a)
            try:
                rec.sent_at, reply = await s.request(P.Rpc(rpc.id, payload))
                rec.status = "error" if "error" in reply else "ok"
                rec.detail = json.dumps(reply.get("error") or (reply.get("rpc") or {}).get("payload", ""))[:300]
            except (TimeoutError, ConnectionError) as exc:
                rec.status, rec.detail = "error", str(exc) or "no reply"
        rec.done_at = self.now()

    def _wire_presence(self, key: str) -> P.UserPresence:
        s = self.sockets.get(key)
        if s is None:
            return P.UserPresence(key, key, "")
        return P.UserPresence(s.rec.user_id, s.rec.session_id, s.rec.username)

    async def _join(self, rec: ActionRecord, s: _Socket) -> None:
        try:
            join = rec.action.action
            assert isinstance(join, Connect)
            metadata = {k: self.mapped_text(v, rec.action) for k, v in join.metadata.items()}
            rec.sent_at, reply = await s.request(P.MatchJoin(self.match_id, None, metadata))
        except (TimeoutError, ConnectionError) as exc:
            rec.status, rec.detail = "error", str(exc) or "no reply"
            return
        verdict = join_verdict(reply)
        s.rec.view.joined(verdict)
        if verdict.joined:
            rec.status = "ok"
            if not await s.wait_join_event(s.rec.session_id):
                rec.detail = "no presence event for the join within 1 s"
        else:
            rec.status, rec.detail = "rejected", verdict.detail
        rec.done_at = self.now()

    async def _signal(self, rec: ActionRecord) -> None:
        name = self.options.signal_rpc
        if not name:
            rec.status, rec.detail = "skipped", "no --signal-rpc given"
            return
        s = next((x for x in self.sockets.values() if x.token), None)
        if s is None:
            rec.status, rec.detail = "skipped", "no session to call the signal RPC with"
            return
        signal = rec.action.action
        assert isinstance(signal, Signal)
        data = self.mapped_text(signal.data, rec.action)
        payload = json.dumps({"match_id": self.match_id, "data": data}, separators=(",", ":"))
        try:
            if self.now() - s.token_at > TOKEN_REFRESH:  # a real Nakama's tokens live 60 s by default
                s.token, _, _ = await self.authenticate(s.actor)
                s.token_at = self.now()
        except LiveReplayError as exc:
            rec.status, rec.detail = "error", str(exc)
            return
        rec.sent_at = self.now()
        try:
            rec.detail = await self.http_rpc(name, payload, s.token)
            rec.status = "ok"
        except (TimeoutError, RuntimeError, OSError, ConnectionError) as exc:
            rec.status, rec.detail = "error", str(exc) or type(exc).__name__
        rec.done_at = self.now()

    async def run(self) -> LiveRun:
        script = self.script
        started = self.now()
        first_window = [
            a
            for a in script.actions
            if a.actor and ((a.at is None and a.tick == script.first_tick) or (a.at is not None and a.at <= LOOKAHEAD))
        ]
        prefetch: asyncio.Task[None] | None = None
        try:
            await self.learn_user_ids()
            for key in dict.fromkeys(a.actor for a in first_window):
                await self.socket(key)
            await self.create()
            prefetch = asyncio.get_running_loop().create_task(self.prefetch())
            await self._feed()
            await self._tail()
            probe = "" if self.crashed.is_set() else await self._probe()
        finally:
            if prefetch is not None:
                prefetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prefetch
            for task in list(self.opening.values()):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.gather(*(s.close() for s in self.sockets.values()), return_exceptions=True)
            self.recorder.close()
        return LiveRun(
            self.options.nakama,
            self.match_id,
            not self.options.match_id,
            self.clock,
            self.offset,
            {k: s.rec for k, s in self.sockets.items()},
            self.records,
            [str(p) for p in self.recorder.paths],
            probe,
            self.crash_at,
            started,
            self.now(),
            self.create_reply_at,
            self.notes,
            self.payload_ids,
        )

    async def _feed(self) -> None:
        script = self.script
        first_done = script.first_tick if script.kind == "calls" and not self.options.match_id else None
        previous: ActionRecord | None = None
        for rec in self.records:
            a = rec.action
            if self.crashed.is_set():
                rec.detail = "the match had crashed"
                continue
            if first_done is not None and a.tick != first_done:
                # the first window is done: the schedule starts from the live loop it landed before
                landed = self.clock.landing_of_send(self.now())
                if landed > 0:
                    self.offset = landed
                    self.notes.append(
                        f"the first recorded tick's actions finished after live loop 0: "
                        f"the schedule starts at live tick {landed}"
                    )
                first_done = None
            rec.target = self.target(a)
            if not (a.at is None and a.tick == script.first_tick):
                await self.sleep_until(rec.target)
                if self.crashed.is_set():
                    rec.detail = "the match had crashed"
                    continue
            if (
                a.kind == "send"
                and a.at is None
                and previous is not None
                and previous.action.tick == a.tick
                and previous.action.actor != a.actor
                and previous.sent_at is not None
            ):
                spare = self.window_end(a) - self.now() - self.clock.period * 0.3
                if spare > SPACING:
                    await asyncio.sleep(max(0.0, previous.sent_at + SPACING - self.now()))
            await self.perform(rec)
            if rec.sent_at is not None and rec.sent_at > self.window_end(a):
                rec.late = True
            previous = rec

    async def _tail(self) -> None:
        script = self.script
        last = script.last_tick - script.first_tick + self.offset if script.kind == "calls" else None
        if last is None:
            end = max([self.anchor + a.at for a in script.actions if a.at is not None] + [self.now()])
            until = end + self.options.tail_ticks * self.clock.period
        else:
            until = self.clock.time_of(last + self.options.tail_ticks)
        await self.sleep_until(max(until, self.now() + 0.2))
        if self.crashed.is_set():  # let the remaining closes arrive
            await asyncio.sleep(0.05)

    async def _probe(self) -> str:
        s = next((x for x in self.sockets.values() if x.rec.in_match and x.open_now), None)
        if s is None:
            return ""
        try:
            _, reply = await s.request(P.MatchJoin(self.match_id, None, {}))
        except (TimeoutError, ConnectionError):
            return ""
        return probe_verdict(reply)


def _text_of(a: Action) -> str:
    """The client-written text an action sends (data, payload, metadata values), where recorded ids may hide."""
    match a:
        case Send(data=data):
            return (data or b"").decode("utf-8", "replace")
        case Rpc(payload=payload):
            return payload
        case Signal(data=data):
            return data
        case Connect(metadata=metadata):
            return "".join(metadata.values())
    return ""


def _match_id_of(result: str) -> str:
    """The match id in a create RPC's result: ``{"match_id": "..."}`` or the bare id."""
    text = result.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, dict):
        value = value.get("match_id") or value.get("matchId") or ""
    value = str(value).strip()
    uuid_part, sep, _ = value.partition(".")
    return value if sep and len(uuid_part) == 36 else ""


async def run_live(script: LiveScript, options: LiveOptions) -> LiveRun:
    """Replay ``script`` into the server at ``options.nakama``; see the module docstring."""
    return await _Live(script, options).run()
