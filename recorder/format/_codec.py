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

import msgpack
import msgspec

from recorder.errors import InvalidValue
from recorder.format._model import Event, Header, Presence
from recorder.format._schema import (
    _free_map,
    _text_map,
    encode_events,
    iter_events,
    plain,
)
from recorder.format._validate import each, int64, show, text, value

__all__ = [
    "encode_chunk",
    "pack_chunk",
    "pack_chunk_into",
    "decode_chunk",
    "iter_events",
    "encode_header",
    "decode_header",
    "event_tick",
]


class _PresenceTable:
    """Interns presences for one chunk: ``index`` maps each distinct presence to its row (a ``Presence``
    hashes and compares in C, its hash cached). The encoders also note here (``plain``) whether every typed
    field they met held one of msgpack's own scalar types (see ``pack_chunk``)."""

    __slots__ = ("index", "rows", "plain")

    def __init__(self) -> None:
        self.index: dict[Presence, int] = {}
        self.rows: list[list[Any]] = []
        self.plain = True

    def ref(self, p: Presence) -> int:
        i = self.index.get(p)
        if i is None:
            i = self.index[p] = len(self.rows)
            row = [p.user_id, p.session_id, p.username, p.node, p.reason]
            self.rows.append(row)
            if not plain(row):
                self.plain = False
        return i


def encode_chunk(events: list[Event]) -> list[Any]:
    """Events -> ``[presences, events]`` ready for ``msgpack.packb``."""
    return _encode(events)[1]


def _encode(events: list[Event]) -> tuple[_PresenceTable, list[Any]]:
    table = _PresenceTable()
    encoded = encode_events(events, table.ref)
    return table, [table.rows, encoded]


#: packs a chunk in C in one pass: about 3x faster than ``msgpack.packb`` on a chunk of message rows, and the
#: same bytes whenever both can pack it (see ``pack_chunk``)
_MSGSPEC = msgspec.msgpack.Encoder()


def pack_chunk(events: list[Event]) -> bytes:
    """``msgpack.packb(encode_chunk(events))``, byte for byte, packed by msgspec when that is sure to give
    the same bytes: when every free-form value (params, metadata, vars, nondeterministic values, envelopes)
    holds only msgpack's own types (None, bool, int, float, str, bytes, list, tuple, dict; exactly these,
    no subclasses), and so does every typed field (ticks, presences, outcomes, signal data...: the encoders
    check each as they meet it, see ``recorder.format._schema._guard``). msgspec also packs types msgpack
    refuses (datetime, UUID, set, dataclasses...) in a form of its own, so a chunk holding anything else, or
    anything msgspec refuses (a string with lone surrogates, an integer out of range, a subclass of str or
    int), is packed by msgpack as before: the same bytes, or the same error.

    One exception: the four fields of a loop's messages (``op_code``, ``data``, ``reliable``,
    ``receive_time_ms``) are not checked: the four type tests would double what making a message's row costs
    (88 ns more than the row's 87 ns, measured on the arena of ``benchmarks/bench_recording.py``), and a chunk
    is mostly rows. A message field holding a type that msgspec writes in a form of its own (a ``datetime``, an
    ``Enum`` member) is written in that form where msgpack raised ``TypeError``: the reader refuses the file
    when that form is not the field's type (a string op code), and reads the value back otherwise (an
    ``Enum`` member's integer value)."""
    out = bytearray()
    pack_chunk_into(events, out, 0)
    return bytes(out)


def pack_chunk_into(events: list[Event], out: bytearray, offset: int) -> None:
    """``pack_chunk(events)`` written into ``out`` from ``offset`` on, where ``out`` then ends (the writer packs
    a chunk right after its frame's head, into room it made for it)."""
    table, chunk = _encode(events)
    if table.plain:
        try:
            _MSGSPEC.encode_into(chunk, out, offset)
            return
        except Exception:  # msgpack decides, and raises its own error if it cannot pack it either
            pass
    out[offset:] = msgpack.packb(chunk, use_bin_type=True, unicode_errors="surrogatepass")


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
