"""A recording turned into what to re-feed into a live Nakama, and what to expect back (no network here).

``load_script(path)`` reads a handler-call or a wire recording and returns a ``LiveScript``:

- ``actors``: one per recorded session (a reconnect is a new session, so a new socket), with the recorded
  user id, username and session vars;
- ``actions``: what the replayed clients do, in order, each with the recorded tick it is meant to land in:
  ``join`` (with metadata), ``send`` (a ``match_data_send``), ``leave`` (``match_leave``), ``disconnect``
  (the socket closes), ``signal`` (through an RPC the user names) and, from wire recordings, ``rpc``;
- ``deliveries``: per actor, the ``match_data`` the recording says it received (the handler's broadcasts
  with their targets, from recorded outcomes; or the recorded ``in`` envelopes of a wire recording);
  ``compare_until`` is the last recorded tick whose deliveries the recording holds (a call recorded without
  its outcome says nothing about what it broadcast: deliveries are known up to the tick before the first
  such call; None: all of them, -1: none);
- ``end``: how the recorded match ended (crash marker, a nil state, or the end of the recording).

Handler-call recordings give exact ticks. Between two loops, the order of a window is: messages from
sessions already in the match (in batch order), then joins, leaves and signals in recorded order, each
join followed by the joiner's own messages: that is an order in which a real server receives them and
runs the same calls (a message sent before its sender's socket drops still reaches the next loop).
Wire recordings give times: an action's tick is approximated from its time after the match was created
and the tick rate (``approximate`` is True), and actions keep their recorded spacing.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import OptionError, RecordingError
from recorder.format import (
    CrashMarker,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    Presence,
    PresenceReason,
    SignalCall,
    TerminateCall,
    WireEvent,
    read_events,
)
from recorder.wire import protocol as P
from replay.realtime._actions import Action, Connect, Leave, Rpc, Send, Signal
from replay.realtime._client import crash_close

__all__ = [
    "Actor",
    "Planned",
    "Delivery",
    "RecordedEnd",
    "LiveScript",
    "WireIdentities",
    "load_script",
    "script_from_events",
    "wire_identities",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """One recorded session, replayed over its own socket. ``key`` is the recorded session id (wire
    recordings: the socket name); ``label`` names it for people (``bob#2`` for bob's second session)."""

    key: str
    user_id: str
    username: str
    session_id: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True, slots=True)
class Planned:
    """One thing a replayed client does (``action``, in the model fuzz and serve share:
    ``replay.realtime``; its ``user`` is the actor's key). ``tick`` is the recorded tick it is meant to land
    in; ``at`` (wire recordings) its time in seconds after the match was created. ``expect`` is the recorded
    result: a join's verdict (True/False, None unknown) or a signal's reply."""

    action: Action
    tick: int
    at: float | None = None
    expect: Any = None

    @property
    def kind(self) -> str:
        """join, send, leave, disconnect, signal or rpc."""
        return self.action.kind

    @property
    def actor(self) -> str:
        """The key of the actor that acts ("" for a signal: the server's)."""
        user = getattr(self.action, "user", "")
        return user if isinstance(user, str) else ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A ``match_data`` the recording says ``actor`` received. ``sender`` is the actor key of the
    presence attached to it (None: sent by the server without a sender); ``call`` is the kind of call
    that sent it (a ``loop`` broadcast's arrival time tells the server's tick; wire recordings say
    ``loop`` for all). Broadcasts of ``match_terminate`` are not expected: replay cannot make a live
    server call it."""

    actor: str
    tick: int
    op_code: int
    data: bytes
    sender: str | None = None
    call: str = "loop"  # the kind of call that sent it: loop, join, leave, signal, join_attempt
    reliable: bool = True

    @property
    def from_loop(self) -> bool:
        return self.call == "loop"


@dataclass(frozen=True, slots=True)
class RecordedEnd:
    """``outcome`` is ``crashed``, ``stopped`` or ``completed`` (the recording simply ends)."""

    outcome: str
    tick: int | None = None
    callback: str = ""
    error: str = ""


@dataclass
class LiveScript:
    kind: str  # "calls" or "wire"
    path: str
    header: Header
    tick_rate: int
    first_tick: int
    last_tick: int
    actors: dict[str, Actor]
    actions: list[Planned]
    deliveries: dict[str, list[Delivery]]
    end: RecordedEnd
    create_params: dict[str, Any] | None = None
    create_rpc: str = ""  # the RPC that created the recorded match, when the recording shows it
    create_payload: str | None = None
    skipped: list[str] = field(default_factory=list)  # recorded things a live server cannot be made to do
    notes: list[str] = field(default_factory=list)
    approximate: bool = False
    loop_ops: frozenset[int] | None = None  # op codes only match_loop broadcasts (None: any)
    sessions: dict[str, str] = field(default_factory=dict)  # recorded session id -> actor key
    user_ids: dict[str, str] = field(default_factory=dict)  # recorded user id -> username
    nodes: frozenset[str] = frozenset()  # node names in the recording (header, match id, presences)
    compare_until: int | None = None  # last tick whose deliveries are recorded (None: all; -1: none)
    uncompared: str = ""  # why deliveries after compare_until are unknown

    @property
    def message_count(self) -> int:
        return sum(1 for a in self.actions if a.kind == "send")


def load_script(path: str | os.PathLike[str], *, tick_rate: int | None = None) -> LiveScript:
    """Read a recording (handler-call or wire) and build its live script. ``tick_rate`` overrides the
    recording's (wire recordings need one when their header has none)."""
    header, events = read_events(path, on_damage="stop")  # the intact part: the command refused anything less
    return script_from_events(str(path), header, events, tick_rate=tick_rate)


def script_from_events(path: str, header: Header, events: list[Any], *, tick_rate: int | None = None) -> LiveScript:
    wire = [e for e in events if isinstance(e, WireEvent)]
    calls = [e for e in events if not isinstance(e, WireEvent)]
    if header.recording_kind == "wire" or (wire and not calls):
        return _from_wire(path, header, wire, tick_rate)
    if not calls:
        raise RecordingError(f"{path}: the recording holds no calls and no wire events: nothing to replay")
    slice_tag = header.tags.get("slice") if isinstance(header.tags, dict) else None
    if isinstance(slice_tag, dict) and slice_tag.get("resume") is not None:
        raise RecordingError(
            f"{path}: a slice starting at tick {slice_tag.get('from_tick')} (of {slice_tag.get('of_file')}): a real "
            "Nakama cannot start a match mid-way; replay the original recording live, or the slice with "
            "`nakama-replay reproduce`"
        )
    return _from_calls(path, header, calls, tick_rate)


# -- handler-call recordings ----------------------------------------------------------------------------


def _labels(presences: list[Presence]) -> dict[str, str]:
    seen: dict[str, int] = defaultdict(int)
    out: dict[str, str] = {}
    for p in presences:
        if p.session_id in out:
            continue
        name = p.username or p.user_id[:8]
        seen[name] += 1
        out[p.session_id] = name if seen[name] == 1 else f"{name}#{seen[name]}"
    return out


def _from_calls(path: str, header: Header, calls: list[Any], tick_rate: int | None) -> LiveScript:
    init = next((c for c in calls if isinstance(c, InitCall)), None)
    rate = tick_rate or header.tick_rate or (init.outcome.tick_rate if init and init.outcome else None) or 0
    _check_tick_rate(path, rate, tick_rate)
    marker = next((c for c in calls if isinstance(c, CrashMarker)), None)
    calls = [c for c in calls if not isinstance(c, (CrashMarker, InitCall))]

    presences: list[Presence] = []
    vars_by_session: dict[str, dict[str, str]] = {}
    for c in calls:
        if isinstance(c, JoinAttemptCall):
            presences.append(c.presence)
            vars_by_session.setdefault(c.presence.session_id, dict(c.vars))
        elif isinstance(c, (JoinCall, LeaveCall)):
            presences.extend(c.presences)
        elif isinstance(c, LoopCall):
            presences.extend(m.sender for m in c.messages)
    labels = _labels(presences)
    actors: dict[str, Actor] = {}
    for p in presences:
        if p.session_id not in actors:
            actors[p.session_id] = Actor(
                p.session_id,
                p.user_id,
                p.username,
                p.session_id,
                vars_by_session.get(p.session_id, {}),
                labels[p.session_id],
            )

    actions: list[Planned] = []
    skipped: list[str] = []
    deliveries: dict[str, list[Delivery]] = {k: [] for k in actors}
    present: dict[str, Presence] = {}
    kicked: set[str] = set()
    loop_ops: set[int] = set()
    other_ops: set[int] = set()
    window: list[Any] = []
    window_start_present: set[str] = set()
    loops = [c.tick for c in calls if isinstance(c, LoopCall)]
    first_tick = loops[0] if loops else (calls[0].tick if calls else 0)
    last_tick = first_tick

    def deliver(call: Any) -> None:
        outcome = call.outcome
        if outcome is None or isinstance(call, TerminateCall):  # terminate is not replayed: nothing to expect
            return
        in_loop = isinstance(call, LoopCall)
        for b in outcome.broadcasts:
            (loop_ops if in_loop else other_ops).add(b.op_code)
            to = list(present) if b.targets is None else [t.session_id for t in b.targets if t.session_id in present]
            sender = None if b.sender is None else b.sender.session_id
            for sid in to:
                deliveries.setdefault(sid, []).append(
                    Delivery(sid, call.tick, b.op_code, b.data or b"", sender, call.kind, b.reliable)
                )
        kicked.update(p.session_id for p in outcome.kicks)

    def flush(tick: int, messages: Any) -> None:
        attempted = {c.presence.session_id for c in window if isinstance(c, JoinAttemptCall)}
        joining = attempted | {p.session_id for c in window if isinstance(c, JoinCall) for p in c.presences}
        late: dict[str, list[Any]] = defaultdict(list)
        for m in messages:
            sid = m.sender.session_id
            if sid in joining and sid not in window_start_present:
                late[sid].append(m)
            else:
                actions.append(_send(tick, m))
        for c in window:
            if isinstance(c, JoinAttemptCall):
                accept = None if c.outcome is None else c.outcome.accept
                actions.append(Planned(Connect(c.presence.session_id, _str_map(c.metadata)), tick, expect=accept))
                actions.extend(_send(tick, m) for m in late.pop(c.presence.session_id, ()))
            elif isinstance(c, JoinCall):  # a join whose attempt the recording does not hold
                for p in c.presences:
                    if p.session_id not in attempted:
                        actions.append(Planned(Connect(p.session_id), tick))
                        actions.extend(_send(tick, m) for m in late.pop(p.session_id, ()))
            elif isinstance(c, LeaveCall):
                for p in c.presences:
                    if p.session_id in kicked:
                        kicked.discard(p.session_id)
                        skipped.append(
                            f"tick {c.tick}: leave of kicked {labels.get(p.session_id, p.session_id)} "
                            "(the server kicks it itself)"
                        )
                        continue
                    reason = (
                        PresenceReason.DISCONNECT if p.reason == PresenceReason.DISCONNECT else PresenceReason.LEAVE
                    )
                    if p.reason == PresenceReason.UNKNOWN:
                        notes.append(
                            f"tick {c.tick}: {labels.get(p.session_id, p.session_id)} left with reason 0 (an "
                            "expired join marker): replayed as match_leave, so the live handler sees reason 3"
                        )
                    actions.append(Planned(Leave(p.session_id, reason), tick))
            elif isinstance(c, SignalCall):
                actions.append(Planned(Signal(c.data), tick, expect=None if c.outcome is None else c.outcome.reply))
            elif isinstance(c, TerminateCall):
                skipped.append(f"tick {c.tick}: match_terminate (a live server calls it only when it shuts down)")
        for msgs in late.values():  # joiners whose attempt is not in this window: send anyway, in order
            actions.extend(_send(tick, m) for m in msgs)

    # sessions that never join in the recording were in the match when it starts: they join first
    joined = {c.presence.session_id for c in calls if isinstance(c, JoinAttemptCall)}
    joined.update(p.session_id for c in calls if isinstance(c, JoinCall) for p in c.presences)
    notes: list[str] = []
    for key, actor in actors.items():
        if key not in joined:
            present[key] = Presence(actor.user_id, key, actor.username)
            actions.append(Planned(Connect(key), first_tick))
            notes.append(f"{actor.label} is in the match when the recording starts: it joins before tick {first_tick}")
    window_start_present = set(present)

    for c in calls:
        if isinstance(c, LoopCall):
            flush(c.tick, c.messages)
            window = []
            deliver(c)
            last_tick = max(last_tick, c.tick)
            window_start_present = set(present)
            continue
        window.append(c)
        if isinstance(c, JoinCall):
            for p in c.presences:
                present.setdefault(p.session_id, p)
        elif isinstance(c, LeaveCall):
            for p in c.presences:
                present.pop(p.session_id, None)
        deliver(c)
    if window:
        flush(window[-1].tick, ())
        last_tick = max(last_tick, window[-1].tick)

    end = _calls_end(marker, calls, last_tick)
    params = dict(init.params) if init is not None else dict(header.params)
    blind = [c for c in calls if c.outcome is None]
    compare_until, uncompared = None, ""
    if blind:
        compare_until = blind[0].tick - 1 if blind[0].tick > first_tick else -1
        n = len(blind)
        uncompared = (
            f"{n} of {len(calls)} recorded calls have no outcome (the first: {blind[0].callback} at tick "
            f"{blind[0].tick}): what they broadcast is not in the recording"
        )
    nodes = {header.node, header.match_id.partition(".")[2]} | {p.node for p in presences}
    return LiveScript(
        "calls",
        path,
        header,
        int(rate),
        first_tick,
        last_tick,
        actors,
        actions,
        deliveries,
        end,
        create_params=params,
        skipped=skipped,
        notes=notes,
        loop_ops=frozenset(loop_ops - other_ops),
        sessions={k: k for k in actors},
        user_ids={a.user_id: a.username for a in actors.values()},
        nodes=frozenset(n for n in nodes if n),
        compare_until=compare_until,
        uncompared=uncompared,
    )


def _calls_end(marker: CrashMarker | None, calls: list[Any], last_tick: int) -> RecordedEnd:
    if marker is not None:
        return RecordedEnd("crashed", marker.tick, marker.callback, marker.error)
    for c in reversed(calls):
        if c.outcome is not None and c.outcome.stopped:
            return RecordedEnd("stopped", c.tick, c.callback)
    return RecordedEnd("completed", last_tick)


def _send(tick: int, m: Any) -> Planned:
    return Planned(Send(m.sender.session_id, m.op_code, m.data or b"", reliable=m.reliable), tick)


def _str_map(d: dict[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in d.items()}


def _check_tick_rate(path: str, rate: Any, given: int | None) -> None:
    """Nakama's tick rates are 1..60; say whose number is wrong: the option's, or the recording's."""
    if isinstance(rate, int) and 1 <= rate <= 60:
        return
    if given:
        raise OptionError("--tick-rate", given, "Nakama's tick rates are 1..60")
    if not rate:
        raise RecordingError(f"{path}: the recording does not know the match's tick rate; pass --tick-rate N (1..60)")
    raise RecordingError(f"{path}: the recording's tick rate {rate!r} is outside Nakama's 1..60; pass --tick-rate N")


# -- wire recordings -------------------------------------------------------------------------------------


@dataclass
class WireIdentities:
    """Who is who in a wire recording (events sorted by time): ``opens`` the socket's ``open`` event (user id,
    username, vars; completed from its first ``match`` reply), ``session_of`` socket -> session id (the
    ``match`` reply's ``self``) and ``sessions`` the reverse, ``requests`` (socket, cid) -> (event, envelope)
    of every request, ``create`` (reply event, RPC id, payload) of the RPC whose result names the match."""

    opens: dict[str, dict[str, Any]]
    session_of: dict[str, str]
    sessions: dict[str, str]
    requests: dict[tuple[str, str], tuple[WireEvent, dict[str, Any]]]
    create: tuple[WireEvent, str, str] | None


def wire_identities(events: list[WireEvent], match_id: str) -> WireIdentities:
    opens = {e.socket: dict(e.envelope or {}) for e in events if e.event == "open"}
    sessions: dict[str, str] = {}
    session_of: dict[str, str] = {}
    requests: dict[tuple[str, str], tuple[WireEvent, dict[str, Any]]] = {}
    create: tuple[WireEvent, str, str] | None = None
    for e in events:
        env = e.envelope if e.event == "envelope" else None
        if not isinstance(env, dict):
            continue
        kind, cid = P.envelope_kind(env), str(env.get("cid", ""))
        found = env.get(kind)
        body = found if isinstance(found, dict) else {}
        if e.direction == "out" and cid:
            requests[(e.socket, cid)] = (e, env)
        if e.direction == "in" and kind == "match":
            me = body.get("self") or {}
            if isinstance(me, dict) and me.get("session_id") and e.socket not in session_of:
                session_of[e.socket] = me["session_id"]
                sessions[me["session_id"]] = e.socket
                opens.setdefault(e.socket, {}).setdefault("user_id", me.get("user_id", ""))
                opens[e.socket].setdefault("username", me.get("username", ""))
        if (
            e.direction == "in"
            and kind == "rpc"
            and create is None
            and match_id
            and match_id in str(body.get("payload", ""))
        ):
            req = requests.get((e.socket, cid))
            if req is not None:
                rbody = req[1].get("rpc") or {}
                create = (e, str(rbody.get("id", "")), str(rbody.get("payload", "")))
    return WireIdentities(opens, session_of, sessions, requests, create)


def _from_wire(path: str, header: Header, events: list[WireEvent], tick_rate: int | None) -> LiveScript:
    rate = tick_rate or header.tick_rate or int(header.tags.get("tick_rate", 0) or 0)
    _check_tick_rate(path, rate, tick_rate)
    events = sorted(events, key=lambda e: e.t)  # stable: per-socket order is kept
    match_id = header.match_id
    who = wire_identities(events, match_id)
    opens, sessions, session_of, requests, create = who.opens, who.sessions, who.session_of, who.requests, who.create
    sockets = [s for s in dict.fromkeys(e.socket for e in events) if s in session_of or s in opens]
    names = [str(opens.get(s, {}).get("username", "")) or s for s in sockets]
    counts: dict[str, int] = defaultdict(int)
    actors: dict[str, Actor] = {}
    for s, name in zip(sockets, names):
        counts[name] += 1
        info = opens.get(s, {})
        found = info.get("vars")
        vars_ = found if isinstance(found, dict) else {}
        actors[s] = Actor(
            s,
            str(info.get("user_id", "")),
            str(info.get("username", "")),
            session_of.get(s, ""),
            {str(k): str(v) for k, v in vars_.items()},
            name if counts[name] == 1 else f"{name}#{counts[name]}",
        )

    joins = [e for e in events if e.direction == "out" and e.envelope and "match_join" in e.envelope]
    anchor = create[0].t if create is not None else (joins[0].t if joins else (events[0].t if events else 0.0))
    p = 1.0 / rate

    def tick_of_send(t: float) -> int:  # loop k runs (k + 1) ticks after creation
        return max(0, int((t - anchor) / p))

    def tick_of_arrival(t: float) -> int:
        return max(0, int((t - anchor) / p + 0.2) - 1)

    actions: list[Planned] = []
    skipped: list[str] = []
    deliveries: dict[str, list[Delivery]] = {k: [] for k in actors}
    closes: list[WireEvent] = []
    skipped_kinds: dict[str, int] = defaultdict(int)
    for e in events:
        if e.socket not in actors:
            continue
        if e.event == "close":
            if e.direction == "out":
                actions.append(Planned(Leave(e.socket, PresenceReason.DISCONNECT), tick_of_send(e.t), at=e.t - anchor))
            else:
                closes.append(e)
            continue
        env = e.envelope if e.event == "envelope" else None
        if not isinstance(env, dict):
            continue
        kind = P.envelope_kind(env)
        parsed = P.parse_object(env)
        msg = parsed.message if isinstance(parsed, P.Envelope) else None
        if e.direction == "in":
            if isinstance(msg, P.MatchData):
                sender = (
                    None if msg.presence is None else sessions.get(msg.presence.session_id, msg.presence.session_id)
                )
                deliveries[e.socket].append(
                    Delivery(e.socket, tick_of_arrival(e.t), msg.op_code, msg.data, sender, "loop", msg.reliable)
                )
            continue
        at, tick = e.t - anchor, tick_of_send(e.t)
        if isinstance(msg, P.MatchJoin):
            actions.append(Planned(Connect(e.socket, dict(msg.metadata)), tick, at=at))
        elif isinstance(msg, P.MatchDataSend):
            targets = tuple(sessions.get(p_.session_id, p_.session_id) for p_ in msg.presences)
            actions.append(
                Planned(Send(e.socket, msg.op_code, msg.data, reliable=msg.reliable, targets=targets), tick, at=at)
            )
        elif isinstance(msg, P.MatchLeave):
            actions.append(Planned(Leave(e.socket, PresenceReason.LEAVE), tick, at=at))
        elif isinstance(msg, P.Rpc):
            if (
                create is not None
                and (e.socket, str(env.get("cid", ""))) in requests
                and requests[(e.socket, str(env.get("cid", "")))][0].t <= create[0].t
                and msg.id == create[1]
            ):
                continue  # the creation itself: replay creates the match
            actions.append(Planned(Rpc(e.socket, msg.id, msg.payload), tick, at=at))
        elif kind in ("ping", "pong", ""):
            continue
        else:
            skipped_kinds[kind] += 1
    for kind, n in sorted(skipped_kinds.items()):
        skipped.append(f"{n} {kind} envelope{'s' if n != 1 else ''} (not part of a match replay)")

    crash = [c for c in closes if crash_close("server", c.close_code, c.close_reason or "")]  # closes: the server's
    joined = {a.actor for a in actions if a.kind == "join"}
    last = max([a.at for a in actions if a.at is not None] + [c.t - anchor for c in closes] + [0.0])
    last_tick = tick_of_send(anchor + last)
    if crash and {c.socket for c in crash} >= (
        joined - {a.actor for a in actions if a.kind in ("disconnect", "leave")}
    ):
        first = min(c.t for c in crash)
        end = RecordedEnd(
            "crashed", tick_of_arrival(first), "", "all sockets closed: 1000 server-side session disconnect"
        )
    else:
        end = RecordedEnd("completed", last_tick)
    params: dict[str, Any] | None = None
    if create is not None:
        try:
            loaded = json.loads(create[2]) if create[2] else {}
            params = loaded if isinstance(loaded, dict) else None
        except ValueError:
            params = None
    nodes = {header.node, match_id.partition(".")[2]}
    return LiveScript(
        "wire",
        path,
        header,
        int(rate),
        0,
        last_tick,
        actors,
        actions,
        deliveries,
        end,
        nodes=frozenset(n for n in nodes if n),
        create_params=params,
        create_rpc=create[1] if create else "",
        create_payload=create[2] if create else None,
        skipped=skipped,
        approximate=True,
        loop_ops=None,
        sessions=sessions,
        user_ids={a.user_id: a.username for a in actors.values() if a.user_id},
    )
