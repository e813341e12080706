"""A wire recording turned into a handler-call recording: what ``nakama-replay convert`` does.

A wire recording (``nakama-replay proxy`` in front of any Nakama, whatever its runtime: Lua, TypeScript or
Go; or the capture of a live ``replay``) holds what the sockets saw. The calls Nakama made into the match
handler are inferred from it, so the match can be reproduced, diffed and bisected in-process:

- **ticks**: loop ``k`` runs ``k + 1`` periods after the match was created (the reply of the RPC whose result
  names the match), at the header's tick rate or ``--tick-rate``; the phase is locked on the arrivals of
  broadcasts that no join, leave or reply explains (``replay.live._tick_clock``). A request sent at ``t`` is handled
  before the first loop after ``t``, so its calls carry that loop's tick;
- **init**: ``match_init`` with the creating RPC's payload as params when it is a JSON object (an RPC may
  pass other params: approximated), the tick rate, and the label of the first ``match`` reply;
- **joins**: a ``match_join`` answered with ``match`` is an accepted ``match_join_attempt`` (the request's
  metadata, the session vars of the socket's ``open`` event) and a ``match_join`` with the presence of the
  reply's ``self`` (reason 0, as Nakama 3.40 gives it); one answered with error 5 is a rejected attempt with
  the error's message as reason;
- **messages**: each ``match_data_send`` of a session in the match becomes a message of the loop after it
  was sent, in the order sent (past 128 in one tick, data is dropped as Nakama's queue drops it);
- **leaves**: a ``match_leave`` is a leave with reason 3, a socket that closes (either side) one with reason
  4; a leave presence event for a session that did neither was a kick: the kick goes on the call before it
  (``kicks``), then a leave with reason 3;
- **broadcasts** (recorded outcomes): every ``match_data`` received is attributed to the call it came from by
  time (a loop's arrive right after its loop, a join attempt's between the join request and its reply, a
  join's after the reply or to the joiner itself); one broadcast per distinct (op code, data, sender,
  reliable) with the sessions that received it as targets (none listed when every presence got it);
- **crash**: when every socket in the match is closed with 1000 "server-side session disconnect", the call
  before the closes crashed (tick and callback estimated), or, with a Nakama log (``--server-log``), the
  match's "Stopping match after error from <callback> execution" line gives callback, tick and error exactly.

What a wire recording cannot tell is approximated or left out, and said so in the report, in the header's
``tags["convert"]["approximations"]`` and in docs/workflows/record.md: tick placement near a loop boundary, the split of
broadcasts between calls, deferred broadcasts (recorded as immediate), targets (only sockets that went
through the proxy are seen), receive times (from the recording's start time), the init params, and the
nondeterministic values the handler consumed (not on the wire: a replay derives its own from the seed).
Signals (``nk.match_signal`` from an RPC) and ``match_terminate`` are not visible on the wire.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.errors import IncompleteRecording, RecordingError
from recorder.format import (
    Broadcast,
    CrashMarker,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Outcome,
    Presence,
    PresenceReason,
    RecordingWriter,
    WireEvent,
    open_recording,
)
from recorder.format._atomic import atomic_location
from recorder.storage import local_path
from recorder.wire import protocol as P
from replay.live._script import wire_identities
from replay.live._tick_clock import TickClock
from replay.realtime._client import crash_close
from replay.runtime._signature import LoggedCrash

__all__ = ["APPROXIMATIONS", "Conversion", "QUEUE_SIZE", "convert", "convert_events", "guess_tick_rate"]

#: Nakama's default match input queue (``match.input_queue_size``): data beyond it in one tick is dropped.
QUEUE_SIZE = 128
#: Seconds around a presence event or reply within which a ``match_data`` is taken for that call's.
NEAR = 0.01
#: A leave event this soon before its socket closes or asks to leave is that quit, not a kick.
QUIT_NEAR = 0.05

#: What every converted recording approximates (written into its header and printed).
APPROXIMATIONS = (
    "ticks: calls are placed in the loop after their request was seen, from times and the tick rate",
    "broadcasts: attributed to calls by arrival time; deferred ones recorded as immediate; targets are the "
    "sockets the recording saw",
    "nondeterministic values (nk.time, random, uuids, storage, http) are not on the wire: a replay derives its own",
    "receive_time_ms: from the recording's start time and the proxy's clock",
)


@dataclass
class Conversion:
    """The converted recording and what the conversion did."""

    header: Header
    events: list[Any]
    source: str
    tick_rate: int
    tick_rate_from: str  # "header", "option"
    tick_zero: str  # what tick 0 is counted from
    joins: int = 0
    rejected: int = 0
    leaves: int = 0
    kicks: int = 0
    messages: int = 0
    dropped: int = 0  # messages past Nakama's input queue in one tick
    ignored: int = 0  # data from sessions not in the match (Nakama's pipeline drops it)
    broadcasts: int = 0
    unattributed: int = 0  # match_data received before the match's first call
    crash: CrashMarker | None = None
    crash_from: str = ""  # "server log" or "socket closes (estimated)"
    notes: list[str] = field(default_factory=list)
    approximations: tuple[str, ...] = APPROXIMATIONS
    integrity: Any = None  # the wire recording's recorder.format.Integrity (``convert``)

    @property
    def calls(self) -> int:
        return sum(1 for e in self.events if not isinstance(e, CrashMarker))

    @property
    def ticks(self) -> int:
        return sum(1 for e in self.events if isinstance(e, LoopCall))

    def to_json(self) -> dict[str, Any]:
        c = self.crash
        return {
            "source": self.source,
            "match_id": self.header.match_id,
            "tick_rate": self.tick_rate,
            "tick_rate_from": self.tick_rate_from,
            "tick_zero": self.tick_zero,
            "calls": self.calls,
            "ticks": self.ticks,
            "joins": self.joins,
            "rejected_joins": self.rejected,
            "leaves": self.leaves,
            "kicks": self.kicks,
            "messages": self.messages,
            "dropped": self.dropped,
            "ignored": self.ignored,
            "broadcasts": self.broadcasts,
            "unattributed": self.unattributed,
            "crash": None
            if c is None
            else {"callback": c.callback, "tick": c.tick, "error": c.error, "from": self.crash_from},
            "approximations": list(self.approximations),
            "notes": self.notes,
            "integrity": None if self.integrity is None else self.integrity.to_json(),
        }


def guess_tick_rate(events: list[WireEvent]) -> int | None:
    """The tick rate whose period best explains the spacing of received ``match_data`` (a hint for an error
    message, never used silently): None when there are too few to tell."""
    times = sorted(
        e.t for e in events if e.direction == "in" and isinstance(e.envelope, dict) and "match_data" in e.envelope
    )
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a > 0.005]
    if len(gaps) < 8:
        return None
    gaps.sort()
    period = gaps[len(gaps) // 2]  # most gaps are one period when loops broadcast on most ticks
    rate = round(1.0 / period) if period > 0 else 0
    return rate if 1 <= rate <= 60 else None


@dataclass
class _Timed:
    """A call with the client-clock time it ran at (``at``) and its outcome being built."""

    at: float
    order: int
    call: Any
    broadcasts: list[tuple[float, str, tuple[int, bytes, str | None, bool]]] = field(default_factory=list)
    kicks: list[Presence] = field(default_factory=list)
    present: dict[str, Presence] = field(default_factory=dict)  # session id -> presence, during the call
    joiner: str = ""  # a join's (attempt's) session


def _presence_of(obj: Any, node: str) -> Presence | None:
    if not isinstance(obj, dict) or not obj.get("session_id"):
        return None
    return Presence(str(obj.get("user_id", "")), str(obj["session_id"]), str(obj.get("username", "")), node)


def convert_events(
    path: str,
    header: Header,
    events: list[Any],
    *,
    tick_rate: int | None = None,
    logged_crash: LoggedCrash | None = None,
) -> Conversion:
    """Convert a wire recording's ``header`` and ``events`` (see the module docstring)."""
    wire = sorted((e for e in events if isinstance(e, WireEvent)), key=lambda e: e.t)
    if header.recording_kind != "wire" or not wire:
        raise RecordingError(f"{path}: not a wire recording (it holds handler calls): there is nothing to convert")
    rate, rate_from = tick_rate, "option"
    if rate is None:
        rate = header.tick_rate or int(header.tags.get("tick_rate", 0) or 0)
        rate_from = "header"
    if not rate or not 1 <= int(rate) <= 60:
        hint = guess_tick_rate(wire)
        guess = f" (match_data arrive about every {1 / hint:.3f} s: try --tick-rate {hint})" if hint else ""
        raise RecordingError(
            f"{path}: the wire recording does not say the match's tick rate; pass --tick-rate N (1..60){guess}"
        )
    rate = int(rate)
    match_id = header.match_id
    if not match_id or "." not in match_id:
        raise RecordingError(f"{path}: the wire recording names no authoritative match (match id {match_id!r})")
    node = match_id.partition(".")[2]
    who = wire_identities(wire, match_id)
    period = 1.0 / rate
    replies = [e for e in wire if e.direction == "in" and isinstance(e.envelope, dict) and "match" in e.envelope]
    if who.create is not None:
        anchor_t, anchor = who.create[0].t, f"the reply of RPC {who.create[1]!r} that created the match"
        clock = TickClock(rate, anchor_t + period)
    elif replies:
        anchor_t, anchor = replies[0].t, "the first join (the match was created before the recording started)"
        clock = TickClock(rate, anchor_t + period, locked=False)
    else:
        raise RecordingError(
            f"{path}: no socket joined match {match_id} in this wire recording: there is nothing to convert"
        )
    conv = Conversion(header, [], path, rate, rate_from, anchor)

    # events that explain a match_data arrival other than a loop: presence events and replies
    explained = [
        e.t
        for e in wire
        if e.direction == "in"
        and isinstance(e.envelope, dict)
        and ("match_presence_event" in e.envelope or "match" in e.envelope or "error" in e.envelope)
    ]
    explained.sort()

    def near_explained(t: float) -> bool:
        i = bisect.bisect_left(explained, t - NEAR)
        return i < len(explained) and explained[i] <= t + NEAR

    for e in wire:
        in_match_data = e.direction == "in" and isinstance(e.envelope, dict) and "match_data" in e.envelope
        if in_match_data and e.t > anchor_t and not near_explained(e.t):
            clock.observe(e.t)

    # -- calls, each at the client-clock time it ran -------------------------------------------------------
    timed: list[_Timed] = []
    numbers = itertools.count()

    def add(at: float, call: Any, joiner: str = "") -> _Timed:
        item = _Timed(at, next(numbers), call, joiner=joiner)
        timed.append(item)
        return item

    present: dict[str, Presence] = {}  # session id -> presence (as the converter tracks the match)
    socket_session: dict[str, str] = {}  # socket -> its session in the match
    left: set[str] = set()  # sessions whose leave is known (asked, closed)
    sends: list[tuple[float, MatchMessage]] = []
    crash_closes: list[WireEvent] = []
    label: str | None = None

    def leave(sid: str | None, t: float, reason: int) -> _Timed | None:
        if not sid or sid not in present or sid in left:
            return None
        left.add(sid)
        conv.leaves += 1
        return add(t, LeaveCall(0, (present[sid].with_reason(reason),)))

    # when each socket asked to leave or closed: a leave event for a session that did neither was a kick
    quits: dict[str, float] = {}
    for e in wire:
        if e.event == "close" or (
            e.direction == "out" and isinstance(e.envelope, dict) and "match_leave" in e.envelope
        ):
            quits.setdefault(e.socket, e.t)
    sockets_of = {sid: sock for sock, sid in who.session_of.items()}
    kicked: set[int] = set()

    for e in wire:
        if e.event == "close":
            if crash_close("server" if e.direction == "in" else "client", e.close_code, e.close_reason or ""):
                crash_closes.append(e)
            else:
                leave(socket_session.get(e.socket), e.t, PresenceReason.DISCONNECT)
            continue
        env = e.envelope if e.event == "envelope" and isinstance(e.envelope, dict) else None
        if env is None:
            continue
        kind = P.envelope_kind(env)
        found = env.get(kind)
        body = found if isinstance(found, dict) else {}
        req = who.requests.get((e.socket, str(env.get("cid", "")))) if e.direction == "in" and env.get("cid") else None
        join_req = req[1].get("match_join") if req is not None else None
        if kind == "match" and req is not None and isinstance(join_req, dict):
            me = _presence_of(body.get("self"), node)
            if me is None or me.session_id in present:  # a member asking again: Nakama calls no handler
                continue
            if label is None and isinstance(body.get("label"), str):
                label = body["label"]
            opened = who.opens.get(e.socket, {})
            found = opened.get("vars")
            vars_ = found if isinstance(found, dict) else {}
            add(
                req[0].t,
                JoinAttemptCall(
                    0, me, _strings(join_req.get("metadata")), vars=_strings(vars_), outcome=Outcome(accept=True)
                ),
                joiner=me.session_id,
            )
            add(max(e.t, req[0].t), JoinCall(0, (me.with_reason(PresenceReason.UNKNOWN),)), joiner=me.session_id)
            present[me.session_id] = me
            socket_session[e.socket] = me.session_id
            conv.joins += 1
        elif (
            kind == "error"
            and req is not None
            and isinstance(join_req, dict)
            and int(body.get("code", 0) or 0) == P.ErrorCode.MATCH_JOIN_REJECTED
        ):
            opened = who.opens.get(e.socket, {})
            p = Presence(
                str(opened.get("user_id", "")),
                str(opened.get("session", "") or e.socket),
                str(opened.get("username", "")),
                node,
            )
            add(
                req[0].t,
                JoinAttemptCall(
                    0,
                    p,
                    _strings(join_req.get("metadata")),
                    outcome=Outcome(accept=False, reason=str(body.get("message", ""))),
                ),
            )
            conv.rejected += 1
        elif e.direction == "out" and kind == "match_leave":
            leave(socket_session.get(e.socket), e.t, PresenceReason.LEAVE)
        elif e.direction == "out" and kind == "match_data_send":
            parsed = P.parse_object(env)
            msg = parsed.message if isinstance(parsed, P.Envelope) else None
            sid = socket_session.get(e.socket)
            if not isinstance(msg, P.MatchDataSend) or msg.match_id != match_id:
                continue
            if not sid or sid not in present or sid in left:  # Nakama's pipeline drops it
                conv.ignored += 1
                continue
            receive = header.started_ms + int(e.t * 1000) if header.started_ms else 0
            sends.append((e.t, MatchMessage(present[sid], msg.op_code, msg.data or None, msg.reliable, receive)))
        elif e.direction == "in" and kind == "match_presence_event":
            for p in body.get("leaves") or ():
                sid = str(p.get("session_id", "")) if isinstance(p, dict) else ""
                quit_t = quits.get(sockets_of.get(sid, ""))
                if sid in present and sid not in left and (quit_t is None or quit_t > e.t + QUIT_NEAR):
                    item = leave(sid, e.t, PresenceReason.LEAVE)
                    if item is not None:
                        kicked.add(item.order)
                        conv.kicks += 1

    # the crash: every socket still in the match closed by the server with "server-side session disconnect"
    crash_t: float | None = None
    if crash_closes:
        members = {s for s, sid in socket_session.items() if sid not in left}
        if members and members <= {c.socket for c in crash_closes}:
            crash_t = min(c.t for c in crash_closes)
        else:  # the server closed some sockets only: leaves
            for c in crash_closes:
                leave(socket_session.get(c.socket), c.t, PresenceReason.DISCONNECT)

    # -- ticks: a call runs before the first loop after the request that caused it ---------------------------
    last_t = crash_t if crash_t is not None else max(e.t for e in wire)
    timed = [i for i in timed if i.at <= last_t]
    for item in timed:
        tick = max(0, clock.landing_of_send(item.at))
        if isinstance(item.call, JoinCall):  # with its attempt, whenever the reply came back
            tick = next(i.call.tick for i in timed if i.joiner == item.joiner and isinstance(i.call, JoinAttemptCall))
        item.call = dataclasses.replace(item.call, tick=tick)
    by_tick: dict[int, list[MatchMessage]] = defaultdict(list)
    for t, m in sends:
        if t > last_t:
            continue
        k = max(0, clock.landing_of_send(t))
        if len(by_tick[k]) >= QUEUE_SIZE:
            conv.dropped += 1
            continue
        by_tick[k].append(m)
        conv.messages += 1
    last_loop = clock.tick_of_arrival(last_t)
    if crash_t is None:  # loops up to the last one whose broadcasts the recording could see
        last_loop = max([last_loop, *list(by_tick)])
    for k in range(0, last_loop + 1):
        add(clock.time_of(k), LoopCall(k, tuple(by_tick.get(k, ()))))
    calls = sorted(timed, key=lambda i: (i.call.tick, isinstance(i.call, LoopCall), i.at, i.order))
    if crash_t is not None:  # nothing after the crashing call: Nakama makes no call into a stopped match
        crashed = max((i for i in calls if i.at <= crash_t + NEAR), key=lambda i: (i.at, i.order))
        calls = calls[: calls.index(crashed) + 1]

    # presences during each call; a kick goes on the call before the kicked session's leave
    current: dict[str, Presence] = {}
    for n, item in enumerate(calls):
        c = item.call
        if isinstance(c, JoinCall):
            for p in c.presences:
                current.setdefault(p.session_id, p)
        elif isinstance(c, LeaveCall):
            for p in c.presences:
                current.pop(p.session_id, None)
            if item.order in kicked and n > 0:
                calls[n - 1].kicks.extend(c.presences)
        item.present = dict(current)

    # -- broadcasts: each match_data received goes to the call it came from --------------------------------
    starts = sorted(((i.at - (NEAR if isinstance(i.call, LoopCall) else 0.0), n) for n, i in enumerate(calls)))
    start_times = [t for t, _ in starts]
    for e in wire:
        if e.direction != "in" or not isinstance(e.envelope, dict) or "match_data" not in e.envelope:
            continue
        parsed = P.parse_object(e.envelope)
        msg = parsed.message if isinstance(parsed, P.Envelope) else None
        sid = socket_session.get(e.socket)
        if not isinstance(msg, P.MatchData) or (crash_t is not None and e.t > crash_t + NEAR):
            continue
        k = bisect.bisect_right(start_times, e.t) - 1
        if k < 0 or sid is None:
            conv.unattributed += 1
            continue
        sender = msg.presence.session_id if msg.presence is not None else None
        calls[starts[k][1]].broadcasts.append((e.t, sid, (msg.op_code, msg.data, sender, msg.reliable)))
    _split_join_windows(calls)

    out: list[Any] = []
    init_params = _params(who.create[2]) if who.create is not None else None
    if init_params is None:
        init_params = dict(header.params)
        if who.create is not None:
            conv.notes.append("the creating RPC's payload is not a JSON object: match_init gets the header's params")
    out.append(InitCall(init_params, outcome=Outcome(tick_rate=rate, label=label)))
    for item in calls:
        broadcasts = _group(item)
        conv.broadcasts += len(broadcasts)
        outcome = item.call.outcome or Outcome()
        out.append(
            dataclasses.replace(
                item.call, outcome=dataclasses.replace(outcome, broadcasts=tuple(broadcasts), kicks=tuple(item.kicks))
            )
        )

    if crash_t is not None:
        c = calls[-1].call
        marker = CrashMarker(c.callback, c.tick, "")
        conv.crash_from = "socket closes (estimated; the error is not on the wire)"
        if logged_crash is not None:
            marker = CrashMarker(logged_crash.callback, logged_crash.tick, logged_crash.error)
            conv.crash_from = "server log"
            if (logged_crash.callback, logged_crash.tick) != (c.callback, c.tick):
                conv.notes.append(
                    f"the server log says {logged_crash.callback} at tick {logged_crash.tick}; the wire "
                    f"suggested {c.callback} at tick {c.tick}"
                )
        conv.crash = marker
        out.append(marker)
    elif logged_crash is not None:
        conv.notes.append("the server log has a crash line for this match, but its sockets were not all closed by it")

    tags = dict(header.tags)
    tags["outcomes"] = "wire"  # broadcasts compare as the sockets saw them (replay.runtime._runtime)
    tags["convert"] = {
        "from": os.path.basename(path),
        "tick_rate_from": rate_from,
        "tick_zero": anchor,
        "approximations": list(APPROXIMATIONS),
        "crash_from": conv.crash_from or None,
    }
    conv.header = dataclasses.replace(
        header,
        tick_rate=rate,
        label=label or header.label,
        params=init_params,
        node=header.node or node,
        source="convert",
        recording_kind="calls",
        tags=tags,
        log_match_id=header.log_match_id or match_id.partition(".")[0],
    )
    conv.events = out
    if who.create is None:
        conv.notes.append(f"tick 0 is {anchor}: the match's own tick numbers are not known")
    return conv


def _strings(d: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in d.items()} if isinstance(d, dict) else {}


def _split_join_windows(calls: list[_Timed]) -> None:
    """A join attempt and its join run back to back, and their broadcasts race the ``match`` reply: the
    ones that reached the joiner are the join's (a join attempt's cannot reach it: it is not in the match
    yet), the others the attempt's."""
    for n, item in enumerate(calls):
        if not isinstance(item.call, JoinCall) or not item.joiner:
            continue
        attempt = next(
            (
                calls[m]
                for m in range(n - 1, -1, -1)
                if isinstance(calls[m].call, JoinAttemptCall) and calls[m].joiner == item.joiner
            ),
            None,
        )
        if attempt is None:
            continue
        pool = attempt.broadcasts + item.broadcasts
        reached: set[tuple[Any, ...]] = {key for _, sid, key in pool if sid == item.joiner}
        attempt.broadcasts = [b for b in pool if b[2] not in reached]
        item.broadcasts = [b for b in pool if b[2] in reached]


def _group(item: _Timed) -> list[Broadcast]:
    """One broadcast per distinct (op code, data, sender, reliable) and occurrence, with its recipients."""
    seen: dict[tuple[Any, ...], list[tuple[float, list[str]]]] = {}
    counts: dict[tuple[tuple[Any, ...], str], int] = defaultdict(int)
    for t, sid, key in sorted(item.broadcasts, key=lambda b: b[0]):
        n = counts[(key, sid)]
        counts[(key, sid)] += 1
        slots = seen.setdefault(key, [])
        while len(slots) <= n:
            slots.append((t, []))
        slots[n][1].append(sid)
    ordered = sorted(((t, key, sids) for key, slots in seen.items() for t, sids in slots), key=lambda x: x[0])
    out = []
    members = [sid for sid in item.present]
    for _, (op, data, sender, reliable), sids in ordered:
        who = dict.fromkeys(sids)
        targets = (
            None
            if set(who) >= set(members) and members
            else tuple(item.present.get(sid, Presence("", sid, "", "")) for sid in who)
        )
        sender_p = None
        if sender is not None:
            sender_p = item.present.get(sender) or Presence("", sender, "", "")
            sender_p = Presence(sender_p.user_id, sender_p.session_id, sender_p.username)
        out.append(Broadcast(op, data or None, targets, sender_p, reliable))
    return out


def _params(payload: str) -> dict[str, Any] | None:
    try:
        value = json.loads(payload) if payload else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def convert(
    wire_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    tick_rate: int | None = None,
    server_log: str | os.PathLike[str] | None = None,
    handler: str | None = None,
    broadcasts: bool = True,
    allow_incomplete: bool = False,
) -> Conversion:
    """Read the wire recording at ``wire_path``, convert it and write the handler-call recording to
    ``out_path`` (sealed on close). ``handler`` (a path) is named in the header relative to the output;
    ``broadcasts=False`` writes the calls without outcomes (a replay then checks only the crash). A wire
    recording that is not complete (unsealed, damaged, version 1) raises ``IncompleteRecording`` unless
    ``allow_incomplete``: then its intact part is converted, the header says what was not
    (``tags.convert.source_integrity``, ``not_converted``), and the output is left unsealed, so that it is not
    complete either (``Conversion.integrity`` is the input's)."""
    with open_recording(wire_path, on_damage="stop") as rec:
        header, events = rec.header, list(rec.events())
        integrity = rec.integrity()
    if not integrity.complete and not allow_incomplete:  # a sealed output must not hide a hole in its input
        raise IncompleteRecording(str(wire_path), integrity)
    logged = None
    if server_log is not None:
        from replay.live._report import find_crash_line

        found = find_crash_line(server_log, header.match_id) if header.match_id else None
        logged = found[0] if found is not None else None
    conv = convert_events(str(wire_path), header, events, tick_rate=tick_rate, logged_crash=logged)
    if server_log is not None and logged is None:
        conv.notes.append(f"{server_log} has no crash line for match {header.match_id}")
    if not integrity.complete:
        conv.notes.append(
            f"--allow-incomplete: converted the intact part of a {integrity.state} wire recording; "
            f"not converted: {integrity.missing()}"
        )
        tags = dict(conv.header.tags)
        tags["convert"] = {**tags["convert"], "source_integrity": integrity.state, "not_converted": integrity.missing()}
        conv.header = dataclasses.replace(conv.header, tags=tags)
    if not broadcasts:
        conv.events = [
            dataclasses.replace(e, outcome=None) if not isinstance(e, (CrashMarker, InitCall)) else e
            for e in conv.events
        ]
        conv.notes.append("written without broadcasts (--no-broadcasts): a replay checks the crash only")
    if handler is not None:
        out_local = local_path(out_path)
        rel = os.path.relpath(os.path.abspath(handler), os.path.abspath(Path(out_local or ".").parent))
        # a header names only a handler inside the output's folder tree; an output at a URL has none here
        inside = out_local is not None and not (rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel))
        conv.header = dataclasses.replace(
            conv.header, handler=rel if inside else "", module=conv.header.module or Path(handler).stem
        )
        if not inside:  # a header names only handlers inside the recording's folder tree (replay.runtime._handlers)
            conv.notes.append(
                f"{handler} is outside the output's folder, so the header does not name it: "
                f"reproduce with --handler {handler}"
            )
    with atomic_location(out_path) as tmp, RecordingWriter(tmp, conv.header) as w:
        for e in conv.events:
            w.append(e)
        if not integrity.complete:
            w.abandon()  # what the input lacks, the output lacks too: no seal
    conv.integrity = integrity
    return conv
