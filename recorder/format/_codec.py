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
    crash         [7, callback, tick, error, traceback, error_type?]
    wire          [8, socket, direction, t, event, envelope, raw, close_code, close_reason]

Outcomes are maps with short keys holding only what was recorded; nondeterministic values are
``[[source, value], ...]``. Decoding builds no object from type tags: it never executes code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from recorder.errors import CorruptRecording, InvalidValue, RecordingError
from recorder.format import _validate as validate
from recorder.format._model import (
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
from recorder.format._validate import (
    INT64_MAX,
    boolean,
    each,
    int64,
    optional,
    presence_index,
    show,
    text,
    uint64,
    value,
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


def _decode_outcome(d: Any, ps: list[Presence]) -> Outcome | None:
    """An outcome map, every field checked: inline on the fast path (a reader decodes many), by
    ``_outcome_problem`` to name the field when one is wrong."""
    if d is None:
        return None
    if d.__class__ is not dict:
        raise InvalidValue("outcome", f"must be a map, got {show(d)}")
    get = d.get
    a, r, tr, label, rp, digest, snapshot, stopped = (
        get("a"),
        get("r"),
        get("tr"),
        get("l"),
        get("rp"),
        get("d"),
        get("s"),
        get("x", False),
    )
    if not (
        (a is None or a.__class__ is bool)
        and (r is None or r.__class__ is str)
        and (tr is None or (tr.__class__ is int and tr <= INT64_MAX))
        and (label is None or label.__class__ is str)
        and (rp is None or rp.__class__ is str)
        and (digest is None or (digest.__class__ is int and digest >= 0))
        and (snapshot is None or snapshot.__class__ is bytes)
        and stopped.__class__ is bool
    ):
        _outcome_problem(d)
    bs, kicks, label_updates = get("b"), get("k"), get("lu")
    broadcasts: tuple[Broadcast, ...] = ()
    n = len(ps)
    if bs:
        if bs.__class__ is not list:
            raise InvalidValue("outcome.broadcasts", f"must be an array, got {show(bs)}")
        built = []
        for j, b in enumerate(bs):
            if b.__class__ is not list or len(b) != 6:
                raise InvalidValue(
                    f"outcome.broadcasts[{j}]", "must be [op_code, data, targets, sender, reliable, deferred]"
                )
            op, data, targets, sender, reliable, deferred = b
            if not (
                op.__class__ is int
                and op <= INT64_MAX
                and (data is None or data.__class__ is bytes)
                and (targets is None or (targets.__class__ is list and _indexes_ok(targets, n)))
                and (sender is None or (sender.__class__ is int and 0 <= sender < n))
                and reliable.__class__ is bool
                and deferred.__class__ is bool
            ):
                _broadcast_problem(b, n, f"outcome.broadcasts[{j}]")
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
    if kicks and not (kicks.__class__ is list and _indexes_ok(kicks, n)):
        each(lambda v, f: presence_index(v, f, n))(kicks, "outcome.kicks")
    if label_updates:
        each(text)(label_updates, "outcome.label_updates")
    return _OutcomeBuilder(  # type: ignore[return-value]
        a,
        r,
        tr,
        label,
        broadcasts,
        tuple([ps[i] for i in kicks]) if kicks else (),
        tuple(label_updates) if label_updates else (),
        rp,
        digest,
        snapshot,
        stopped,
    )


def _indexes_ok(items: list[Any], n: int) -> bool:
    """Every item an index into a presence table of ``n`` rows."""
    for i in items:
        if i.__class__ is not int or not 0 <= i < n:
            return False
    return True


def _outcome_problem(d: dict[Any, Any]) -> None:
    """Raise ``InvalidValue`` for the first bad scalar field of an outcome map (slow path of ``_decode_outcome``)."""
    _opt_bool(d.get("a"), "outcome.accept")
    _opt_str(d.get("r"), "outcome.reason")
    _opt_int64(d.get("tr"), "outcome.tick_rate")
    _opt_str(d.get("l"), "outcome.label")
    _opt_str(d.get("rp"), "outcome.reply")
    optional(uint64)(d.get("d"), "outcome.digest")
    _opt_bytes(d.get("s"), "outcome.snapshot")
    boolean(d.get("x", False), "outcome.stopped")


def _broadcast_problem(b: list[Any], n: int, where: str) -> None:
    """Raise ``InvalidValue`` for the first bad field of a broadcast row (the slow path of ``_decode_outcome``)."""
    op, data, targets, sender, reliable, deferred = b
    int64(op, f"{where}.op_code")
    _opt_bytes(data, f"{where}.data")
    if targets is not None:
        each(lambda t, f: presence_index(t, f, n))(targets, f"{where}.targets")
    if sender is not None:
        presence_index(sender, f"{where}.sender", n)
    boolean(reliable, f"{where}.reliable")
    boolean(deferred, f"{where}.deferred")


def _encode_nd(nd: tuple[Nondeterministic, ...]) -> list[list[Any]] | None:
    return [[v.source, v.value] for v in nd] if nd else None


def _decode_nd(items: Any) -> tuple[Nondeterministic, ...]:
    if not items:
        return ()
    out = []
    for j, item in enumerate(_array(items, "nondeterministic")):
        if type(item) is not list or len(item) != 2:
            raise InvalidValue(f"nondeterministic[{j}]", "must be [source, value]")
        out.append(
            Nondeterministic(
                text(item[0], f"nondeterministic[{j}].source"), value(item[1], f"nondeterministic[{j}].value")
            )
        )
    return tuple(out)


def _encode_event(e: Event, ref) -> list[Any]:
    t = type(e)
    if t is LoopCall:
        msgs = [[ref(m.sender), m.op_code, m.data, m.reliable, m.receive_time_ms] for m in e.messages]
        return _trim([LOOP, e.tick, msgs, _encode_outcome(e.outcome, ref), _encode_nd(e.nondeterministic)], 3)
    if t is WireEvent:
        return _trim([WIRE, e.socket, e.direction, e.t, e.event, e.envelope, e.raw, e.close_code, e.close_reason], 5)
    if t is CrashMarker:
        return _trim([CRASH, e.callback, e.tick, e.error, e.traceback, e.error_type or None], 5)
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


def _presences(rows: Any, cache: dict[tuple[Any, ...], Presence] | None) -> list[Presence]:
    """A chunk's presence table; ``cache`` (one per reader) builds and checks each distinct row once."""
    if type(rows) is not list:
        raise InvalidValue("presences", f"must be an array, got {show(rows)}")
    out = []
    for j, row in enumerate(rows):
        key = tuple(row) if type(row) is list else None
        p = None
        if cache is not None and key is not None:
            try:
                p = cache.get(key)
            except TypeError:  # an unhashable item: reported by the checks below
                key = None
        if p is None:
            p = _presence_row(row, j)
            if cache is not None and key is not None and len(cache) < 65536:
                cache[key] = p  # bounded: a match has few distinct presences, a hostile file many
        out.append(p)
    return out


def _presence_row(row: Any, j: int) -> Presence:
    where = f"presences[{j}]"
    if type(row) is not list or len(row) != 5:
        raise InvalidValue(where, "must be [user_id, session_id, username, node, reason]")
    u, s, n, node, r = row
    return _PresenceBuilder(  # type: ignore[no-any-return]
        text(u, f"{where}.user_id"),
        text(s, f"{where}.session_id"),
        text(n, f"{where}.username"),
        text(node, f"{where}.node"),
        int64(r, f"{where}.reason"),
    )


def iter_events(
    payload: Any,
    origin: tuple[str, int, int] = ("<memory>", 0, 0),
    presence_cache: dict[tuple[Any, ...], Presence] | None = None,
) -> Iterator[Event]:
    """Inverse of ``encode_chunk``, one event at a time.

    Building each record only when it is asked for keeps records short-lived: a reader's consumer drops
    each one before the next is built, so the garbage collector never has to walk a whole chunk of them.
    Every field is checked (``recorder.format._validate``: types, integer ranges, presence indexes within the
    chunk's table, free-form values within ``MAX_DEPTH``); malformed input raises ``CorruptRecording``
    naming ``origin`` (path, offset, chunk), the event and the field when the iteration reaches it. A
    loop's messages are checked when they are first used.
    """
    i = -1
    try:
        if type(payload) is not list or len(payload) != 2:
            raise InvalidValue("", f"a chunk payload is [presences, events], got {show(payload)}")
        rows, encoded = payload
        ps = _presences(rows, presence_cache)
        if type(encoded) is not list:
            raise InvalidValue("events", f"must be an array, got {show(encoded)}")
        loop, batch, most = _LoopBuilder, MessageBatch, INT64_MAX
        for ev in encoded:
            i += 1
            # the hot path: a loop without outcome, then one with; anything else (or any doubt) below
            if ev.__class__ is list and len(ev) == 3 and ev[0] == LOOP:
                tick, msgs = ev[1], ev[2]
                if tick.__class__ is int and 0 <= tick <= most and msgs.__class__ is list and ev[0].__class__ is int:
                    # message objects are built (and checked) on first use
                    yield loop(tick, batch(msgs, ps, origin, i), None, ())
                    continue
            elif ev.__class__ is list and 3 < len(ev) <= 5 and ev[0] == LOOP:
                tick, msgs = ev[1], ev[2]
                if tick.__class__ is int and 0 <= tick <= most and msgs.__class__ is list and ev[0].__class__ is int:
                    nd = ev[4] if len(ev) > 4 else None
                    yield loop(
                        tick, batch(msgs, ps, origin, i), _decode_outcome(ev[3], ps), _decode_nd(nd) if nd else ()
                    )
                    continue
            yield _decode_other(ev, ps)
    except InvalidValue as exc:
        raise _corrupt(origin, encoded_kind(payload, i), i, exc) from None
    except RecordingError:
        raise
    except Exception as exc:  # a failure no check foresaw: still a bad writer, never a crash
        problem = f"{type(exc).__name__}: {exc}"
        raise _corrupt(origin, encoded_kind(payload, i), i, InvalidValue("", problem)) from exc


def encoded_kind(payload: Any, i: int) -> str:
    """The kind name of event ``i`` of a chunk payload, for messages ("" when it cannot be told)."""
    try:
        code = payload[1][i][0]
        return _KIND_NAMES[code] if type(code) is int and 0 <= code < len(_KIND_NAMES) else ""
    except Exception:  # only a label for an error message
        return ""


_KIND_NAMES = ("init", "join_attempt", "join", "leave", "loop", "signal", "terminate", "crash", "wire")


def _corrupt(origin: tuple[str, int, int], kind: str, i: int, exc: InvalidValue) -> CorruptRecording:
    """``CorruptRecording`` for a bad field of event ``i`` (-1: the chunk's own structure)."""
    field = exc.field if i < 0 else (f"events[{i}].{exc.field}" if exc.field else f"events[{i}]")
    where = f"event {i}" + (f" ({kind})" if kind else "") if i >= 0 else "chunk"
    what = f"{exc.field}: {exc.problem}" if exc.field else exc.problem
    return CorruptRecording(*origin, f"{where}: {what}", field=field)


def decode_chunk(payload: Any, origin: tuple[str, int, int] = ("<memory>", 0, 0)) -> list[Event]:
    """Inverse of ``encode_chunk``: every event of a chunk (see ``iter_events``; raises ``CorruptRecording``)."""
    return list(iter_events(payload, origin))


_EVENT_LENGTHS = {  # kind code -> (fewest, most) items
    INIT: (3, 5),
    JOIN_ATTEMPT: (4, 7),
    JOIN: (3, 5),
    LEAVE: (3, 5),
    SIGNAL: (3, 5),
    TERMINATE: (3, 5),
    CRASH: (5, 6),
    WIRE: (5, 9),
}


def _decode_other(ev: Any, ps: list[Presence]) -> Event:
    """Any event but a loop (those are rare next to loops, so plain constructors do)."""
    if type(ev) is not list or not ev:
        raise InvalidValue("", f"an event is an array [kind, ...], got {show(ev)}")
    code = ev[0]
    lengths = _EVENT_LENGTHS.get(code) if type(code) is int else None
    if lengths is None:
        if code == LOOP and type(code) is int:
            _loop_problem(ev)
        raise InvalidValue("", f"unknown event kind code {show(code)}")
    if not lengths[0] <= len(ev) <= lengths[1]:
        raise InvalidValue("", f"a {_KIND_NAMES[code]} event has {lengths[0]} to {lengths[1]} fields, got {len(ev)}")
    n = len(ps)
    if code in (JOIN, LEAVE):
        cls = JoinCall if code == JOIN else LeaveCall
        members = tuple([ps[presence_index(i, "presences", n)] for i in _array(ev[2], "presences")])
        return cls(validate.tick(ev[1], "tick"), members, _decode_outcome(_opt(ev, 3), ps), _decode_nd(_opt(ev, 4)))
    if code == JOIN_ATTEMPT:
        vars_ = _opt(ev, 6) or {}
        return JoinAttemptCall(
            validate.tick(ev[1], "tick"),
            ps[presence_index(ev[2], "presence", n)],
            _free_map(ev[3], "metadata"),
            _decode_outcome(_opt(ev, 4), ps),
            _decode_nd(_opt(ev, 5)),
            _text_map(vars_, "vars"),
        )
    if code == INIT:
        return InitCall(
            _free_map(ev[2], "params"),
            _decode_outcome(_opt(ev, 3), ps),
            _decode_nd(_opt(ev, 4)),
            validate.tick(ev[1], "tick"),
        )
    if code == SIGNAL:
        return SignalCall(
            validate.tick(ev[1], "tick"), text(ev[2], "data"), _decode_outcome(_opt(ev, 3), ps), _decode_nd(_opt(ev, 4))
        )
    if code == TERMINATE:
        return TerminateCall(
            validate.tick(ev[1], "tick"),
            int64(ev[2], "grace_seconds"),
            _decode_outcome(_opt(ev, 3), ps),
            _decode_nd(_opt(ev, 4)),
        )
    if code == CRASH:
        error_type = text(ev[5], "error_type") if len(ev) > 5 else ""
        return CrashMarker(
            text(ev[1], "callback"),
            validate.tick(ev[2], "tick"),
            text(ev[3], "error"),
            text(ev[4], "traceback"),
            error_type,
        )
    # WIRE
    t = ev[3]
    if type(t) is not float and type(t) is not int:
        raise InvalidValue("t", f"must be a number, got {show(t)}")
    envelope, raw, close_code, close_reason = (list(ev[5:9]) + [None] * 4)[:4]
    return WireEvent(
        text(ev[1], "socket"),
        text(ev[2], "direction"),
        t,
        text(ev[4], "event"),
        None if envelope is None else _free_map(envelope, "envelope"),
        _opt_str(raw, "raw"),
        _opt_int64(close_code, "close_code"),
        _opt_str(close_reason, "close_reason"),
    )


def _loop_problem(ev: list[Any]) -> None:
    """Raise ``InvalidValue`` for a loop event that failed the fast path of ``iter_events``."""
    if not 3 <= len(ev) <= 5:
        raise InvalidValue("", f"a loop is [4, tick, messages, outcome?, nondeterministic?], got {len(ev)} fields")
    validate.tick(ev[1], "tick")
    _array(ev[2], "messages")
    raise AssertionError("unreachable: a loop failed the fast path but no check")


_LoopBuilder = record_builder(LoopCall)  # the hot path of every reader


def _array(v: Any, field: str) -> list[Any]:
    if type(v) is not list:
        raise InvalidValue(field, f"must be an array, got {show(v)}")
    return v


def _free_map(v: Any, field: str) -> dict[Any, Any]:
    """A free-form map (params, metadata, envelope): scalar keys, values within the limits."""
    if type(v) is not dict:
        raise InvalidValue(field, f"must be a map, got {show(v)}")
    return value(v, field)  # type: ignore[no-any-return]


def _text_map(v: Any, field: str) -> dict[str, str]:
    if type(v) is not dict:
        raise InvalidValue(field, f"must be a map, got {show(v)}")
    for k, x in v.items():
        text(k, f"{field}.<key>")
        text(x, f"{field}.{k}")
    return v


_opt_str = optional(text)
_opt_bool = optional(boolean)
_opt_int64 = optional(int64)


def _opt_bytes(v: Any, field: str) -> bytes | None:
    if v is not None and type(v) is not bytes:
        raise InvalidValue(field, f"must be bytes or nil, got {show(v)}")
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


def decode_header(d: Any) -> Header:
    """The header map; raises ``recorder.format._validate.InvalidValue`` naming the field."""
    if type(d) is not dict:
        raise InvalidValue("header", f"must be a map, got {show(d)}")
    known: dict[str, Any] = {}
    for k, v in d.items():
        expected = _HEADER_TYPES.get(k) if type(k) is str else None
        if expected is None:
            continue
        if expected is int:
            int64(v, k)
        elif expected is str:
            text(v, k)
        elif expected is tuple:
            v = tuple(each(text)(v, k))
        elif k == "client_versions":
            _text_map(v, k)
        else:
            _free_map(v, k)
        known[k] = v
    extra = {k: v for k, v in d.items() if type(k) is not str or k not in _HEADER_TYPES}
    if extra:  # fields from a newer writer: keep them visible rather than drop them
        value(extra, "header")
        known["tags"] = {**known.get("tags", {}), **{f"_unknown.{k}": v for k, v in extra.items()}}
    return Header(**known)
