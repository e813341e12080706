"""Play the server's side of a wire recording to real clients (``nakama-replay playback``).

Each recorded socket becomes a script: the envelopes the server sent it (``direction`` "in"), at their
times relative to the socket's open, and how the server closed it. The k-th client to connect gets the
k-th recorded socket (or the ones named with ``sockets``). Unsolicited envelopes (``match_data``,
``match_presence_event``, ...) go out at their recorded offsets (``fast``: at once). A reply (an envelope
with a ``cid``) waits until the client has sent a request of the same kind as the recorded one, and goes
out with the client's ``cid``, so a client awaiting it (nakama-js) gets it; the wait shifts later
envelopes by as much, keeping the recorded spacing. Pings are answered live; recorded pongs are skipped.
The recorded server close (same code and reason) ends the script; a recorded client close waits for the
client to close. Authentication requests get a session token for the next socket's recorded user, so
``session.user_id`` matches the ``self`` presence the recording will send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from recorder.errors import RecordingError
from recorder.format import WireEvent, read_events
from recorder.wire import App, HttpRequest, HttpResponse, WebSocket, json_response, session_token
from recorder.wire import protocol as P
from replay.realtime._core import CloseSocket, SendEnvelope
from replay.realtime._playback import ScriptPlayer, SocketScript, Step

__all__ = ["Step", "SocketScript", "load_scripts", "PlaybackServer"]


def load_scripts(path: str) -> list[SocketScript]:
    """The recorded sockets of a wire recording, in the order they opened."""
    header, events = read_events(path, on_damage="stop")  # the intact part (the command checks integrity)
    if header.recording_kind != "wire" and not any(isinstance(e, WireEvent) for e in events):
        raise RecordingError(
            f"{path}: not a wire recording (kind {header.recording_kind!r}); playback needs "
            "one made by `nakama-replay proxy`"
        )
    by_socket: dict[str, list[WireEvent]] = defaultdict(list)
    for e in events:
        if isinstance(e, WireEvent):
            by_socket[e.socket].append(e)
    scripts = []
    for name, evs in by_socket.items():
        evs.sort(key=lambda e: e.t)  # stable: keeps arrival order for equal times
        opened = next((e for e in evs if e.event == "open"), None)
        t0 = opened.t if opened is not None else evs[0].t
        info = (opened.envelope or {}) if opened is not None else {}
        request_kinds: dict[str, str] = {}
        steps: list[Step] = []
        close = None
        client_closes = False
        for e in evs:
            if e.event == "close":
                if e.direction == "in":
                    close = (e.t - t0, e.close_code, e.close_reason or "")
                else:
                    client_closes = True
                break
            if e.event != "envelope" or e.envelope is None:
                continue
            env = e.envelope
            kind, cid = P.envelope_kind(env), env.get("cid", "")
            if e.direction == "out":
                if isinstance(cid, str) and cid:
                    request_kinds[cid] = kind
                continue
            if kind == "pong":
                continue
            reply_to = request_kinds.get(cid, "") if isinstance(cid, str) and cid else ""
            steps.append(Step(e.t - t0, env, reply_to))
        found = info.get("vars")
        vars_ = found if isinstance(found, dict) else {}
        scripts.append(
            SocketScript(
                name,
                str(info.get("user_id", "")),
                str(info.get("username", "")),
                dict(vars_),
                tuple(steps),
                close,
                client_closes,
            )
        )
    scripts.sort(key=lambda s: next((e.t for e in by_socket[s.name]), 0.0))
    return scripts


class PlaybackServer(App):
    """Plays scripts to connecting clients. ``done`` resolves once every script has been played."""

    def __init__(
        self,
        scripts: list[SocketScript],
        *,
        fast: bool = False,
        gate_timeout: float = 30.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not scripts:
            raise RecordingError("the recording holds no sockets to play")
        self.scripts = list(scripts)
        self.fast = fast
        self.gate_timeout = gate_timeout
        self.log = log or (lambda _msg: None)
        self._next_socket = 0
        self._next_identity = 0
        self._running = 0
        self.played: list[str] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def http(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/v2/account/authenticate/") and request.method == "POST":
            script = self.scripts[min(self._next_identity, len(self.scripts) - 1)]
            self._next_identity += 1
            now = int(time.time())
            claims = session_token.Claims(
                str(uuid.uuid4()), script.user_id, script.username, script.vars, now + 3600, now
            )
            token = session_token.encode(claims, "nakama-replay-playback")
            return json_response(200, json.dumps({"token": token, "refresh_token": token}))
        if request.path.startswith("/v2/rpc/"):
            return json_response(
                404, json.dumps({"error": "RPC function not found", "message": "RPC function not found", "code": 5})
            )
        return json_response(404, json.dumps({"error": "Not Found", "message": "Not Found", "code": 5}))

    async def websocket(self, request: HttpRequest, accept: Callable[[], Awaitable[WebSocket]]) -> HttpResponse | None:
        if self._next_socket >= len(self.scripts):
            return HttpResponse(503, b"every recorded socket has been played\n", (("Content-Type", "text/plain"),))
        script = self.scripts[self._next_socket]
        self._next_socket += 1
        self._running += 1
        try:
            ws = await accept()
            self.log(f"playing {script.name} ({len(script.steps)} envelopes) to a client")
            await _play(ws, script, self.fast, self.gate_timeout, self.log)
        finally:
            self._running -= 1
            self.played.append(script.name)
            if self._next_socket >= len(self.scripts) and self._running == 0 and not self.done.done():
                self.done.set_result(None)
        return None


async def _play(
    ws: WebSocket, script: SocketScript, fast: bool, gate_timeout: float, log: Callable[[str], None]
) -> None:
    """The timing around a ``ScriptPlayer``: each step at its offset (a reply once its request arrived)."""
    loop = asyncio.get_running_loop()
    player = ScriptPlayer(script)
    arrived = asyncio.Event()
    client_gone = asyncio.Event()

    async def perform() -> None:
        for effect in player.take():
            if isinstance(effect, SendEnvelope):
                await ws.send(P.build(effect.envelope))
            elif isinstance(effect, CloseSocket):
                log(f"{script.name}: client sent a malformed envelope ({player.violation}); closing as Nakama does")
                await ws.close(effect.code, effect.reason)

    async def read() -> None:
        while not player.closed:
            text = await ws.recv()
            if text is None:
                break
            player.receive(text)
            await perform()
            arrived.set()
        client_gone.set()
        arrived.set()

    reader = asyncio.create_task(read())
    start = loop.time()
    shift = 0.0
    try:
        for step in script.steps:
            due = start + (0.0 if fast else step.offset) + shift
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if step.reply_to:
                deadline = loop.time() + gate_timeout
                while not player.ready(step) and not client_gone.is_set() and loop.time() < deadline:
                    arrived.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(arrived.wait(), deadline - loop.time())
            env, answered = player.outgoing(step)
            if not answered:
                log(f"{script.name}: the client never sent {step.reply_to!r}; sending the recorded reply anyway")
            if step.reply_to:
                late = loop.time() - due
                if late > 0 and not fast:
                    shift += late
            if client_gone.is_set() or not await ws.send(json.dumps(env, separators=(",", ":"), ensure_ascii=False)):
                return
        if script.close is not None:
            offset, code, reason = script.close
            delay = start + (0.0 if fast else offset) + shift - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if code is None or code in (1005, 1006):
                ws.abort()
            else:
                await ws.close(code, reason)
        else:
            await client_gone.wait()
    finally:
        if not reader.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 5.0)
            reader.cancel()
