"""Model records <-> plain msgpack-ready values, chunk by chunk.

A chunk payload is ``[presences, events]``: ``presences`` is the chunk's table of distinct presences
(``[user_id, session_id, username, node, reason]``) and every presence inside an event is an index into
it, so a presence costs its strings once per chunk and decodes into one shared object. Each event is an
array whose first item is its kind code; trailing empty fields are left off.

    init          [0, tick, params, outcome?, nondeterministic?]
    join_attempt  [1, tick, presence, metadata, outcome?, nondeterministic?, vars?]
    join / leave  [2|3, tick, [presence, ...], outcome?, nondeterministic?]
    loop          [4, tick, [[sender, op_code, data, reliable, receive_time_ms], ...], outcome?, nondeterministic?]
    signal        [5, tick, data, outcome?, nondeterministic?]
    terminate     [6, tick, grace_seconds, outcome?, nondeterministic?]
    crash         [7, callback, tick, error, traceback]
    wire          [8, socket, direction, t, event, envelope, raw, close_code, close_reason]

Outcomes are maps with short keys holding only what was recorded; nondeterministic values are
``[[source, value], ...]``. Decoding builds no object from type tags: it never executes code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from recorder.errors import CorruptRecording, RecordingError
from recorder.model import (
    Broadcast,
    CrashMarker,
    Event,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MessageBatch,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
    record_builder,
)

__all__ = ["encode_chunk", "decode_chunk", "iter_events", "encode_header", "decode_header", "event_tick"]

INIT, JOIN_ATTEMPT, JOIN, LEAVE, LOOP, SIGNAL, TERMINATE, CRASH, WIRE = range(9)
_PRESENCE_LIST_CALLS = {JoinCall: JOIN, LeaveCall: LEAVE}


class _PresenceTable:
    """Interns presences for one chunk.

    Lookups go by object identity first (the same ``Presence`` object is usually the sender of many
    messages, and hashing a dataclass costs more than the rest of encoding a message), then by value. The
    events being encoded keep their presences alive, so an id is never reused while the table exists.
    """

    __slots__ = ("index", "by_id", "rows")

    def __init__(self) -> None:
        self.index: dict[Presence, int] = {}
        self.by_id: dict[int, int] = {}
        self.rows: list[list[Any]] = []

    def ref(self, p: Presence) -> int:
        i = self.by_id.get(id(p))
        if i is None:
            i = self.index.get(p)
            if i is None:
                i = self.index[p] = len(self.rows)
                self.rows.append([p.user_id, p.session_id, p.username, p.node, p.reason])
            self.by_id[id(p)] = i
        return i


def _trim(items: list[Any], keep: int) -> list[Any]:
    while len(items) > keep and items[-1] is None:
        items.pop()
    return items


def _encode_outcome(o: Outcome | None, ref) -> dict[str, Any] | None:
    if o is None:
        return None
    out: dict[str, Any] = {}
    if o.accept is not None:
        out["a"] = o.accept
    if o.reason is not None:
        out["r"] = o.reason
    if o.tick_rate is not None:
        out["tr"] = o.tick_rate
    if o.label is not None:
        out["l"] = o.label
    if o.broadcasts:
        out["b"] = [
            [
                b.op_code,
                b.data,
                None if b.targets is None else [ref(t) for t in b.targets],
                None if b.sender is None else ref(b.sender),
                b.reliable,
                b.deferred,
            ]
            for b in o.broadcasts
        ]
    if o.kicks:
        out["k"] = [ref(p) for p in o.kicks]
    if o.label_updates:
        out["lu"] = list(o.label_updates)
    if o.reply is not None:
        out["rp"] = o.reply
    if o.digest is not None:
        out["d"] = o.digest
    if o.snapshot is not None:
        out["s"] = o.snapshot
    if o.stopped:
        out["x"] = True
    return out


_OutcomeBuilder = record_builder(Outcome)
_PresenceBuilder = record_builder(Presence)
_BroadcastBuilder = record_builder(Broadcast)


def _decode_outcome(d: dict[str, Any] | None, ps: list[Presence]) -> Outcome | None:
    if d is None:
        return None
    get = d.get
    bs = get("b")
    broadcasts: tuple[Broadcast, ...] = ()
    if bs:
        built = []
        for op, data, targets, sender, reliable, deferred in bs:
            built.append(
                _BroadcastBuilder(
                    op,
                    data,
                    None if targets is None else tuple([ps[t] for t in targets]),
                    None if sender is None else ps[sender],
                    reliable,
                    deferred,
                )
            )
        broadcasts = tuple(built)
    kicks = get("k")
    label_updates = get("lu")
    return _OutcomeBuilder(  # type: ignore[return-value]
        get("a"),
        get("r"),
        get("tr"),
        get("l"),
        broadcasts,
        tuple([ps[i] for i in kicks]) if kicks else (),
        tuple(label_updates) if label_updates else (),
        get("rp"),
        get("d"),
        get("s"),
        bool(get("x", False)),
    )


def _encode_nd(nd: tuple[Nondeterministic, ...]) -> list[list[Any]] | None:
    return [[v.source, v.value] for v in nd] if nd else None


def _decode_nd(items: list[list[Any]] | None) -> tuple[Nondeterministic, ...]:
    return tuple(Nondeterministic(s, v) for s, v in items) if items else ()


def _encode_event(e: Event, ref) -> list[Any]:
    t = type(e)
    if t is LoopCall:
        msgs = [[ref(m.sender), m.op_code, m.data, m.reliable, m.receive_time_ms] for m in e.messages]
        return _trim([LOOP, e.tick, msgs, _encode_outcome(e.outcome, ref), _encode_nd(e.nondeterministic)], 3)
    if t is WireEvent:
        return _trim(
            [WIRE, e.socket, e.direction, e.t, e.event, e.envelope, e.raw, e.close_code, e.close_reason], 5
        )
    if t is CrashMarker:
        return [CRASH, e.callback, e.tick, e.error, e.traceback]
    tail = [_encode_outcome(e.outcome, ref), _encode_nd(e.nondeterministic)]
    if t is JoinCall or t is LeaveCall:
        return _trim([_PRESENCE_LIST_CALLS[t], e.tick, [ref(p) for p in e.presences], *tail], 3)
    if t is JoinAttemptCall:
        return _trim([JOIN_ATTEMPT, e.tick, ref(e.presence), e.metadata, *tail, e.vars or None], 4)
    if t is InitCall:
        return _trim([INIT, e.tick, e.params, *tail], 3)
    if t is SignalCall:
        return _trim([SIGNAL, e.tick, e.data, *tail], 3)
    if t is TerminateCall:
        return _trim([TERMINATE, e.tick, e.grace_seconds, *tail], 3)
    raise TypeError(f"not a recordable event: {e!r}")


def encode_chunk(events: list[Event]) -> list[Any]:
    """Events -> ``[presences, events]`` ready for ``msgpack.packb``."""
    table = _PresenceTable()
    encoded = [_encode_event(e, table.ref) for e in events]
    return [table.rows, encoded]


def _opt(items: list[Any], i: int) -> Any:
    return items[i] if len(items) > i else None


def _presences(rows: list[Any], cache: dict[tuple[Any, ...], Presence] | None) -> list[Presence]:
    """A chunk's presence table; ``cache`` (one per reader) builds and checks each distinct row once."""
    if cache is None:
        return [_PresenceBuilder(_str(u), _str(s), _str(n), _str(node), _int(r)) for u, s, n, node, r in rows]
    out = []
    for row in rows:
        key = tuple(row)
        p = cache.get(key)
        if p is None:
            u, s, n, node, r = key
            p = _PresenceBuilder(_str(u), _str(s), _str(n), _str(node), _int(r))
            if len(cache) < 65536:  # bounded: a match has few distinct presences, a hostile file many
                cache[key] = p
        out.append(p)
    return out


def iter_events(
    payload: list[Any],
    origin: tuple[str, int, int] = ("<memory>", 0, 0),
    presence_cache: dict[tuple[Any, ...], Presence] | None = None,
) -> Iterator[Event]:
    """Inverse of ``encode_chunk``, one event at a time.

    Building each record only when it is asked for keeps records short-lived: a reader's consumer drops
    each one before the next is built, so the garbage collector never has to walk a whole chunk of them.
    Malformed input raises ``CorruptRecording`` naming ``origin`` (path, offset, chunk) when the iteration
    reaches it; a loop's messages are checked when they are first used.
    """
    try:
        rows, encoded = payload
        ps = _presences(rows, presence_cache)
        for ev in encoded:
            if ev[0] == LOOP:
                tick = ev[1]
                if type(tick) is not int:
                    raise TypeError(f"loop tick must be an integer, got {tick!r}")
                msgs = ev[2]
                if type(msgs) is not list:
                    raise TypeError(f"loop messages must be an array, got {type(msgs).__name__}")
                # message objects are built (and checked) on first use
                if len(ev) == 3:
                    yield _LoopBuilder(tick, MessageBatch(msgs, ps, origin), None, ())  # type: ignore[misc]
                else:
                    nd = ev[4] if len(ev) > 4 else None
                    yield _LoopBuilder(  # type: ignore[misc]
                        tick, MessageBatch(msgs, ps, origin), _decode_outcome(ev[3], ps), _decode_nd(nd) if nd else ()
                    )
            else:
                yield _decode_other(ev, ps)
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode checksummed bytes means a bad writer
        raise CorruptRecording(*origin, f"chunk payload: {type(exc).__name__}: {exc}") from exc


def decode_chunk(payload: list[Any], origin: tuple[str, int, int] = ("<memory>", 0, 0)) -> list[Event]:
    """Inverse of ``encode_chunk``: every event of a chunk (see ``iter_events``; raises ``CorruptRecording``)."""
    return list(iter_events(payload, origin))


def _decode_other(ev: list[Any], ps: list[Presence]) -> Event:
    """Any event but a loop (those are rare next to loops, so plain constructors do)."""
    code = ev[0]
    if code == JOIN or code == LEAVE:
        cls = JoinCall if code == JOIN else LeaveCall
        return cls(
            _int(ev[1]), tuple([ps[i] for i in ev[2]]), _decode_outcome(_opt(ev, 3), ps), _decode_nd(_opt(ev, 4))
        )
    if code == JOIN_ATTEMPT:
        return JoinAttemptCall(
            _int(ev[1]),
            ps[ev[2]],
            _as_map(ev[3]),
            _decode_outcome(_opt(ev, 4), ps),
            _decode_nd(_opt(ev, 5)),
            _as_map(_opt(ev, 6) or {}),
        )
    if code == INIT:
        return InitCall(_as_map(ev[2]), _decode_outcome(_opt(ev, 3), ps), _decode_nd(_opt(ev, 4)), _int(ev[1]))
    if code == SIGNAL:
        return SignalCall(_int(ev[1]), _str(ev[2]), _decode_outcome(_opt(ev, 3), ps), _decode_nd(_opt(ev, 4)))
    if code == TERMINATE:
        return TerminateCall(_int(ev[1]), _int(ev[2]), _decode_outcome(_opt(ev, 3), ps), _decode_nd(_opt(ev, 4)))
    if code == CRASH:
        return CrashMarker(_str(ev[1]), _int(ev[2]), _str(ev[3]), _str(ev[4]))
    if code == WIRE:
        t = ev[3]
        if type(t) is not float and type(t) is not int:
            raise TypeError(f"wire time must be a number, got {t!r}")
        return WireEvent(_str(ev[1]), _str(ev[2]), t, _str(ev[4]), *(list(ev[5:9]) + [None] * (9 - max(len(ev), 5))))
    raise ValueError(f"unknown event kind code {code!r}")


_LoopBuilder = record_builder(LoopCall)  # the hot path of every reader


def _int(v: Any) -> int:
    if type(v) is not int:
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def _str(v: Any) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {v!r}")
    return v


def _as_map(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise TypeError(f"expected a map, got {type(v).__name__}")
    return v


def event_tick(e: Event) -> int:
    """The tick an event belongs to, or -1 for wire events."""
    return getattr(e, "tick", -1)


_HEADER_FIELDS = [f.name for f in fields(Header)]
_HEADER_TYPES = {name: type(getattr(Header(), name)) for name in _HEADER_FIELDS}


def encode_header(h: Header) -> dict[str, Any]:
    out = {name: getattr(h, name) for name in _HEADER_FIELDS}
    out["redactions"] = list(h.redactions)
    return out


def decode_header(d: dict[str, Any]) -> Header:
    if not isinstance(d, dict):
        raise TypeError("header is not a map")
    known = {k: v for k, v in d.items() if k in _HEADER_FIELDS}
    for k, v in known.items():
        expected = _HEADER_TYPES[k]
        if type(v) is not expected and not (expected is tuple and type(v) is list):
            raise TypeError(f"header field {k!r} must be {expected.__name__}, got {v!r}")
    if "redactions" in known:
        known["redactions"] = tuple(known["redactions"])
    extra = {k: v for k, v in d.items() if k not in _HEADER_FIELDS}
    if extra:  # fields from a newer writer: keep them visible rather than drop them
        known["tags"] = {**known.get("tags", {}), **{f"_unknown.{k}": v for k, v in extra.items()}}
    return Header(**known)
