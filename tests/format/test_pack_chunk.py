"""The writer packs chunks with msgspec (``recorder.format._codec.pack_chunk``): byte for byte what
``msgpack.packb(encode_chunk(events))`` gives, or msgpack's own error, on any events."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings

from recorder.format import (
    Broadcast,
    InitCall,
    JoinAttemptCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
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

    def encode(self, obj: Any) -> bytes:
        out: bytes = _codec.msgspec.msgpack.Encoder().encode(obj)
        self.packed += 1
        return out


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


@pytest.mark.parametrize(
    "events",
    [
        # types msgspec packs in a form of its own, msgpack refuses: the writer keeps refusing them
        [InitCall({"when": datetime.datetime(2026, 1, 2)})],
        [JoinAttemptCall(0, A, {"id": uuid.UUID(int=1)})],
        [JoinAttemptCall(0, A, {}, vars={"k": frozenset()})],  # type: ignore[dict-item]
        [LoopCall(1, (), None, (Nondeterministic("random", {1, 2}),))],
        [WireEvent("sock", "in", 1.0, envelope={"at": datetime.date(2026, 1, 2)})],
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
