"""The writer packs chunks with msgspec (``recorder.format._codec.pack_chunk``): byte for byte what
``msgpack.packb(encode_chunk(events))`` gives, or msgpack's own error, on any events."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import example, given, settings

from recorder.format import (
    Broadcast,
    CrashMarker,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
    _codec,
    decode_chunk,
    encode_chunk,
)
from recorder.format._codec import pack_chunk
from tests.common.model_strategies import event_lists, pinned_events

A = Presence("u1", "s1", "alice", "n1")
B = Presence("u2", "s2", "bob", "n1")
C = Presence("u3", "s3", "carol", "n1")
D = Presence("u4", "s4", "dave", "n1")


def msgpacks(events: list[Any]) -> bytes | type[BaseException]:
    try:
        packed: bytes = msgpack.packb(encode_chunk(events), use_bin_type=True, unicode_errors="surrogatepass")
        return packed
    except Exception as exc:  # the writer must raise the same kind of error
        return type(exc)


def ours(events: list[Any]) -> bytes | type[BaseException]:
    try:
        return pack_chunk(events)
    except Exception as exc:
        return type(exc)


class Counting:
    """``_codec._MSGSPEC`` that counts the chunks msgspec packed."""

    def __init__(self) -> None:
        self.packed = 0

    def encode_into(self, obj: Any, buffer: bytearray, offset: int) -> None:
        _codec.msgspec.msgpack.Encoder().encode_into(obj, buffer, offset)
        self.packed += 1


@settings(max_examples=150, deadline=None)
@given(event_lists())
@example(pinned_events())
def test_pack_chunk_gives_msgpacks_bytes(events: list[Any]) -> None:
    assert ours(events) == msgpacks(events)


def test_plain_chunks_are_packed_by_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting()
    monkeypatch.setattr(_codec, "_MSGSPEC", counting)
    events = [
        InitCall({"mode": "arena", "n": [1, 2.5, None, True, b"x"], 3: {"k": "v"}}),
        JoinAttemptCall(0, A, {"v": "1.4"}, Outcome(accept=True), (Nondeterministic("time", 1.5),), {"k": "v"}),
        LoopCall(1, (MatchMessage(A, 1, b"a", True, 5), MatchMessage(B, 2, None, False, 2**63 - 1))),
        LoopCall(2, (), Outcome(broadcasts=(Broadcast(3, b"s", (A, B), A),), digest=2**64 - 1)),
        SignalCall(3, "hi", Outcome(reply="ok"), (Nondeterministic("http", {"body": [1, {"x": -(2**63)}]}),)),
        WireEvent("sock", "in", 1.25, envelope={"cid": "1", "match_data": {"op_code": 1}}),
    ]
    assert pack_chunk(events) == msgpacks(events)
    assert counting.packed == 1
    assert decode_chunk(msgpack.unpackb(pack_chunk(events), raw=False, strict_map_key=False)) == events


class Text(str):
    pass


class Number(int):
    pass


class Color(enum.Enum):
    RED = 1


@pytest.mark.parametrize(
    "events",
    [
        # types msgspec packs in a form of its own, msgpack refuses: the writer keeps refusing them
        [InitCall({"when": datetime.datetime(2026, 1, 2)})],
        [JoinAttemptCall(0, A, {"id": uuid.UUID(int=1)})],
        [JoinAttemptCall(0, A, {}, vars={"k": frozenset()})],  # type: ignore[dict-item]
        [LoopCall(1, (), None, (Nondeterministic("random", {1, 2}),))],
        [WireEvent("sock", "in", 1.0, envelope={"at": datetime.date(2026, 1, 2)})],
        # the same in typed fields (msgspec would write the datetime as a string): the writer refuses them too
        [LoopCall(1, (), Outcome(label=datetime.datetime(2026, 1, 2)))],  # type: ignore[arg-type]
        [LoopCall(1, (), Outcome(broadcasts=(Broadcast(Color.RED, b"x"),)))],  # type: ignore[arg-type]
        [LoopCall(1, (), Outcome(label_updates=(uuid.UUID(int=1),)))],  # type: ignore[arg-type]
        [LoopCall(datetime.date(2026, 1, 2), ())],  # type: ignore[arg-type]
        [SignalCall(1, frozenset())],  # type: ignore[arg-type]
        [JoinCall(1, (Presence("u1", "s1", "alice", "n1", Color.RED),))],  # type: ignore[arg-type]
        [WireEvent("sock", "in", decimal.Decimal("1.5"))],  # type: ignore[arg-type]
        [CrashMarker("match_loop", 1, "boom", error_type=msgspec.Raw(b"\x01"))],  # type: ignore[arg-type]
        # typed fields msgpack packs (same bytes either way)
        [LoopCall(Number(1), (), Outcome(label=Text("a str subclass"), broadcasts=(Broadcast(1, bytearray(b"x")),)))],
        # what msgspec refuses and msgpack packs: msgpack's bytes
        [SignalCall(1, "lone \ud800 surrogate")],
        [InitCall({"name": "lone \udfff"})],
        [InitCall({"k": Text("a str subclass")})],
        [LoopCall(1, (), None, (Nondeterministic("time", Number(5)),))],
        [LoopCall(1, (MatchMessage(A, 1, bytearray(b"buffer")),))],
        # what neither packs: the same error
        [InitCall({"big": 2**64})],
        [LoopCall(1, (MatchMessage(A, 1, object()),))],  # type: ignore[arg-type]
    ],
    ids=lambda events: repr(events)[:60],
)
def test_what_msgspec_packs_differently_goes_to_msgpack(events: list[Any]) -> None:
    assert ours(events) == msgpacks(events)


def test_presences_are_numbered_in_order_of_first_use() -> None:
    """A sender new to the chunk in the middle of a loop: the table is numbered in order of first use
    (messages, then the outcome), whichever way a loop's rows were made."""
    events = [
        LoopCall(1, (MatchMessage(A, 1, b""), MatchMessage(B, 1, b"")), Outcome(kicks=(C,))),
        LoopCall(2, (MatchMessage(A, 1, b""), MatchMessage(D, 1, b""), MatchMessage(C, 1, b""))),
        LoopCall(3, (MatchMessage(B, 1, b""), MatchMessage(D, 1, b""))),
    ]
    table, encoded = encode_chunk(events)
    assert [row[0] for row in table] == ["u1", "u2", "u3", "u4"]
    assert [[row[0] for row in e[2]] for e in encoded] == [[0, 1], [0, 3, 2], [1, 3]]
    assert encoded[0][3] == {"k": [2]}
    assert decode_chunk(msgpack.unpackb(pack_chunk(events), raw=False)) == events


def reference_chunk(events: list[Any]) -> list[Any]:
    """A chunk's payload as ``recorder.format._codec``'s docstring describes it, written plainly: a naive
    reference for the generated encoders (``recorder.format._schema``) and the writer's presence table."""
    table: dict[Presence, int] = {}
    rows: list[list[Any]] = []

    def ref(p: Presence) -> int:
        if p not in table:
            table[p] = len(rows)
            rows.append([p.user_id, p.session_id, p.username, p.node, p.reason])
        return table[p]

    def outcome(o: Outcome | None) -> dict[str, Any] | None:
        if o is None:
            return None
        out: dict[str, Any] = {}
        for key, value in (("a", o.accept), ("r", o.reason), ("tr", o.tick_rate), ("l", o.label)):
            if value is not None:
                out[key] = value
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
        for key, value in (("rp", o.reply), ("d", o.digest), ("s", o.snapshot)):
            if value is not None:
                out[key] = value
        if o.stopped:
            out["x"] = True
        return out

    def trimmed(items: list[Any], kept: int) -> list[Any]:
        while len(items) > kept and items[-1] is None:
            items.pop()
        return items

    def call(code: int, e: Any, *middle: Any) -> list[Any]:
        nd = [[n.source, n.value] for n in e.nondeterministic] or None
        return trimmed([code, e.tick, *middle, outcome(e.outcome), nd], 2 + len(middle))

    encoded = []
    for e in events:
        if isinstance(e, InitCall):
            encoded.append(call(0, e, e.params))
        elif isinstance(e, JoinAttemptCall):
            head = [1, e.tick, ref(e.presence), e.metadata, outcome(e.outcome)]
            nd = [[n.source, n.value] for n in e.nondeterministic] or None
            encoded.append(trimmed([*head, nd, e.vars or None], 4))
        elif isinstance(e, (JoinCall, LeaveCall)):
            encoded.append(call(2 if isinstance(e, JoinCall) else 3, e, [ref(p) for p in e.presences]))
        elif isinstance(e, LoopCall):
            messages = [[ref(m.sender), m.op_code, m.data, m.reliable, m.receive_time_ms] for m in e.messages]
            encoded.append(call(4, e, messages))
        elif isinstance(e, SignalCall):
            encoded.append(call(5, e, e.data))
        elif isinstance(e, TerminateCall):
            encoded.append(call(6, e, e.grace_seconds))
        elif isinstance(e, CrashMarker):
            encoded.append(trimmed([7, e.callback, e.tick, e.error, e.traceback, e.error_type or None], 5))
        else:
            assert isinstance(e, WireEvent)
            items = [8, e.socket, e.direction, e.t, e.event, e.envelope, e.raw, e.close_code, e.close_reason]
            encoded.append(trimmed(items, 5))
    return [rows, encoded]


def arena(ticks: int) -> list[Any]:
    """A match as the benchmark makes it: eight players, loops with and without outcomes, a leave and a rejoin."""
    from benchmarks.bench_recording import arena_events

    return list(arena_events(ticks, players=8, outcome_every=4, seed=3))


@settings(max_examples=200, deadline=None)
@given(event_lists(max_size=20))
@example(pinned_events())
@example(arena(120))
@example(  # equal presences that are distinct objects share a row; a new sender mid-loop; a kicked one
    [
        LoopCall(1, (MatchMessage(A, 1, b"a"), MatchMessage(Presence("u1", "s1", "alice", "n1"), 2, None))),
        LoopCall(2, (MatchMessage(B, 1, b""), MatchMessage(C, 1, b"", False, 9)), Outcome(kicks=(D, A))),
        JoinCall(3, (D.with_reason(1), A)),
    ]
)
def test_chunks_are_what_the_format_describes(events: list[Any]) -> None:
    """The writer's bytes for a chunk are msgpack's packing of the plainly written reference chunk."""
    expected = msgpacks_of(reference_chunk(events))
    assert ours(events) == expected
    if not isinstance(expected, type):
        assert msgpack.packb(encode_chunk(events), use_bin_type=True, unicode_errors="surrogatepass") == expected


def msgpacks_of(chunk: list[Any]) -> bytes | type[BaseException]:
    try:
        packed: bytes = msgpack.packb(chunk, use_bin_type=True, unicode_errors="surrogatepass")
        return packed
    except Exception as exc:
        return type(exc)
