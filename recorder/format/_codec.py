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
``[[source, value], ...]``. The field tables of ``recorder.format._schema`` say all of this once and
generate the per-kind encoders and the decoder (``iter_events``). Decoding builds no object from type
tags: it never executes code.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from recorder.errors import InvalidValue
from recorder.format._model import Event, Header, Presence
from recorder.format._schema import _free_map, _text_map, encode_events, iter_events
from recorder.format._validate import each, int64, show, text, value

__all__ = ["encode_chunk", "decode_chunk", "iter_events", "encode_header", "decode_header", "event_tick"]


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


def encode_chunk(events: list[Event]) -> list[Any]:
    """Events -> ``[presences, events]`` ready for ``msgpack.packb``."""
    table = _PresenceTable()
    encoded = encode_events(events, table.ref)
    return [table.rows, encoded]


def decode_chunk(payload: Any, origin: tuple[str, int, int] = ("<memory>", 0, 0)) -> list[Event]:
    """Inverse of ``encode_chunk``: every event of a chunk (see ``iter_events``; raises ``CorruptRecording``)."""
    return list(iter_events(payload, origin))


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
    """The header map; raises ``recorder.errors.InvalidValue`` naming the field."""
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
