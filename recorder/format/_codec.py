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
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import msgpack
import msgspec

from recorder.errors import InvalidValue
from recorder.format._model import Event, Header, Nondeterministic, Presence
from recorder.format._schema import (
    KINDS,
    _free_map,
    _text_map,
    encode_events,
    iter_events,
)
from recorder.format._validate import each, int64, show, text, value

__all__ = ["encode_chunk", "pack_chunk", "decode_chunk", "iter_events", "encode_header", "decode_header", "event_tick"]


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


#: packs a chunk in C in one pass: about 3x faster than ``msgpack.packb`` on a chunk of message rows, and the
#: same bytes whenever both can pack it (see ``pack_chunk``)
_MSGSPEC = msgspec.msgpack.Encoder()
_PLAIN_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
#: the free-form fields (any value a handler or client gave) that ``pack_chunk`` checks, by event type: the
#: other items of a chunk are what the generated encoders make of typed record fields. Every call's
#: ``nondeterministic`` values are checked apart (``_plain_free_form``)
_FREE_FORM = {
    kind.cls: attrgetter(*names)
    for kind in KINDS
    if (names := [f.name for f in kind.fields if f.type.name in ("value", "map", "map?", "text map")])
}


def pack_chunk(events: list[Event]) -> bytes:
    """``msgpack.packb(encode_chunk(events))``, byte for byte, packed by msgspec when that is sure to give
    the same bytes: when every free-form value (params, metadata, vars, nondeterministic values, envelopes)
    holds only msgpack's own types (None, bool, int, float, str, bytes, list, tuple, dict; exactly these,
    no subclasses). msgspec also packs types msgpack refuses (datetime, UUID, set, dataclasses...) in a
    form of its own, so a chunk holding anything else, or anything msgspec refuses (a string with lone
    surrogates, an integer out of range, a subclass of str or int), is packed by msgpack as before: the
    same bytes, or the same error."""
    chunk = encode_chunk(events)
    if _plain_free_form(events):
        try:
            return _MSGSPEC.encode(chunk)
        except Exception:  # msgpack decides, and raises its own error if it cannot pack it either
            pass
    packed: bytes = msgpack.packb(chunk, use_bin_type=True, unicode_errors="surrogatepass")
    return packed


def _plain_free_form(events: list[Event]) -> bool:
    """Whether every free-form value of ``events`` holds msgpack's own types only (``pack_chunk``)."""
    try:
        # the nondeterministic values of every call, in one pass in C (most calls have none)
        if not _plain(chain.from_iterable(filter(None, map(getattr, events, repeat("nondeterministic"), repeat(()))))):
            return False
        free = _FREE_FORM
        if free.keys().isdisjoint(set(map(type, events))):
            return True
        for e in events:
            get = free.get(type(e))
            if get is not None:
                values = get(e)
                if not _plain(values if type(values) is tuple else (values,)):
                    return False
    except RecursionError:  # nested deeper than we look: msgpack's limits decide
        return False
    return True


def _plain(values: Any) -> bool:
    scalars = _PLAIN_SCALARS
    for v in values:
        t = type(v)
        if t in scalars:
            continue
        if t is list or t is tuple:
            if not _plain(v):
                return False
        elif t is dict:
            if not (_plain(v) and _plain(v.values())):
                return False
        elif t is Nondeterministic:
            if type(v.source) is not str or not _plain((v.value,)):
                return False
        else:
            return False
    return True


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
