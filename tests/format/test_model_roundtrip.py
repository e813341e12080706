"""Model records <-> msgpack chunk payloads (recorder.format._codec), bit for bit."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recorder import CorruptRecording, Header, LoopCall, MatchMessage, MessageBatch, Outcome, Presence
from recorder.format import decode_chunk, decode_header, encode_chunk, encode_header
from recorder.format._nkrec import _pack, _unpack
from tests.common.model_strategies import (
    I64_MAX,
    I64_MIN,
    NAN_PAYLOAD,
    U64_MAX,
    assert_same,
    event_lists,
    headers,
    pinned_events,
    pinned_header,
)

ALICE = Presence("u1", "s1", "alice", "nakama1")


def roundtrip(events: list) -> list:
    return decode_chunk(_unpack(_pack(encode_chunk(events))))


@settings(max_examples=60, deadline=None)
@given(event_lists())
@example(pinned_events())
@example([LoopCall(0, (MatchMessage(ALICE, 1, b"", True, 0), MatchMessage(ALICE, 2, None, False, 0)))])
@example(
    [
        LoopCall(
            I64_MAX,
            (
                MatchMessage(ALICE, I64_MIN, b"\xff", True, I64_MIN),
                MatchMessage(ALICE, I64_MAX, b"\x80\x81", True, I64_MAX),
            ),
        )
    ]
)
@example([LoopCall(1, (), Outcome(digest=U64_MAX, snapshot=b""))])
@example([LoopCall(1, (MatchMessage(Presence("ü", "s", "名前 🎮", ""), 1, b"x"),))])
def test_chunk_roundtrip(events: list) -> None:
    assert_same(roundtrip(events), events)


@settings(max_examples=50, deadline=None)
@given(headers)
@example(pinned_header())
def test_header_roundtrip(header: Header) -> None:
    assert_same(decode_header(_unpack(_pack(encode_header(header)))), header)


def test_pinned_edge_values_keep_their_bits() -> None:
    (init, *_rest) = roundtrip(pinned_events())
    nan = init.params["nan"]
    assert nan != nan and struct_bits(nan) == 0x7FF8000000000001
    assert struct_bits(init.params["negzero"]) == 0x8000000000000000
    assert init.params["big"] == U64_MAX and init.params["small"] == I64_MIN
    assert init.params[b"k"] is None and init.params[7] == "int key"
    assert struct_bits(init.nondeterministic[0].value) == struct_bits(NAN_PAYLOAD)


def struct_bits(x: float) -> int:
    import struct

    return struct.unpack("<Q", struct.pack("<d", x))[0]


def test_decoded_records_are_ordinary_frozen_records() -> None:
    """The reader builds some records without their __init__ (for speed): they must be indistinguishable."""
    events = pinned_events()
    loop = next(e for e in roundtrip(events) if type(e) is LoopCall and e.outcome is not None)
    original = next(e for e in events if type(e) is LoopCall and e.outcome is not None)
    assert type(loop) is LoopCall and type(loop.outcome) is Outcome
    assert type(loop.outcome.broadcasts[0]).__name__ == "Broadcast"
    assert isinstance(loop.messages, MessageBatch)
    msg = loop.messages[0]
    assert type(msg) is MatchMessage and msg == original.messages[0] and hash(msg) == hash(original.messages[0])
    assert loop == original and hash(loop.outcome) == hash(original.outcome)
    for obj, name in ((loop, "tick"), (loop.outcome, "digest"), (loop.outcome.broadcasts[0], "op_code")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, 1)
    with pytest.raises(AttributeError, match="immutable"):  # a frozen msgspec Struct (see MatchMessage)
        msg.data = b"changed"  # type: ignore[misc]
    assert msg.data == original.messages[0].data
    assert dataclasses.replace(loop.outcome, digest=1).digest == 1


def test_match_message_keeps_the_dataclass_interface() -> None:
    """MatchMessage became a msgspec Struct: what handlers and the redactor did with the dataclass still works."""
    m = MatchMessage(ALICE, 1, b"a", receive_time_ms=5)
    assert dataclasses.is_dataclass(m)
    assert [(f.name, f.default) for f in dataclasses.fields(m)][3:] == [("reliable", True), ("receive_time_ms", 0)]
    changed = dataclasses.replace(m, op_code=2)
    assert type(changed) is MatchMessage and changed == MatchMessage(ALICE, 2, b"a", True, 5) and changed != m
    assert dataclasses.asdict(m)["data"] == b"a" and dataclasses.astuple(m)[1:] == (1, b"a", True, 5)
    assert repr(m) == f"MatchMessage(sender={ALICE!r}, op_code=1, data=b'a', reliable=True, receive_time_ms=5)"
    assert hash(m) == hash(MatchMessage(ALICE, 1, b"a", True, 5)) and len({m, changed, dataclasses.replace(m)}) == 2
    # the dataclass's hash, so a set of messages iterates alike in every process under one PYTHONHASHSEED
    assert hash(m) == hash((ALICE, 1, b"a", True, 5))
    match m:
        case MatchMessage(sender, op_code, data):
            assert (sender, op_code, data) == (ALICE, 1, b"a")
        case _:
            pytest.fail("a MatchMessage did not match its class pattern")
    assert pickle.loads(pickle.dumps(m)) == m


def test_presence_keeps_the_dataclass_interface() -> None:
    """Presence became a msgspec Struct (the writer looks senders up by value, hashing in C): what handlers,
    the runtime and the redactor did with the dataclass still works, and it hashes as the dataclass did."""
    p = Presence("u1", "s1", "alice")
    match p:
        case Presence(user_id, session_id, username, node, reason):
            assert (user_id, session_id, username, node, reason) == ("u1", "s1", "alice", "", 0)
        case _:
            pytest.fail("a Presence did not match its class pattern")
    assert dataclasses.is_dataclass(p) and [f.name for f in dataclasses.fields(p)][3:] == ["node", "reason"]
    assert dataclasses.asdict(p) == {"user_id": "u1", "session_id": "s1", "username": "alice", "node": "", "reason": 0}
    assert repr(p) == "Presence(user_id='u1', session_id='s1', username='alice', node='', reason=0)"
    assert p.with_reason(3).reason == 3 and p.key == ("u1", "s1", "") and p == Presence("u1", "s1", "alice", "", 0)
    assert p != ("u1", "s1", "alice", "", 0) and p != p.with_reason(1)
    with pytest.raises(AttributeError, match="immutable"):
        p.reason = 1  # type: ignore[misc]
    # the dataclass's hash (a tuple of the fields), however the presence was made: sets of presences iterate
    # alike in every process under one PYTHONHASHSEED, and in the order they did before
    copies = [
        p,
        Presence(user_id="u1", session_id="s1", username="alice"),
        dataclasses.replace(p),
        dataclasses.replace(p.with_reason(2), reason=0),
        msgspec.structs.replace(p),
        copy.copy(p),
        copy.deepcopy(p),
        pickle.loads(pickle.dumps(p)),
        msgspec.convert({"user_id": "u1", "session_id": "s1", "username": "alice"}, Presence),
    ]
    assert all(c == p and hash(c) == hash(("u1", "s1", "alice", "", 0)) for c in copies)
    pool = [Presence(f"u{i}", f"s{i}", f"n{i}", "", i % 3) for i in range(40)]
    assert list(set(pool)) == [pool[i] for i in _set_order([dataclasses.astuple(q) for q in pool])]
    with pytest.raises(TypeError, match="unhashable"):  # as the dataclass: made, but not hashed
        hash(Presence("u", "s", "n", "", [1]))  # type: ignore[arg-type]


def _set_order(keys: list[tuple[object, ...]]) -> list[int]:
    """The order a set iterates ``keys`` in (the positions of the first of each), as for the dataclass."""
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    return [first[k] for k in set(keys)]


def test_message_batch_behaves_as_a_tuple() -> None:
    msgs = (MatchMessage(ALICE, 1, b"a"), MatchMessage(ALICE, 2, None, False, 5))
    (loop,) = roundtrip([LoopCall(3, msgs)])
    batch = loop.messages
    assert len(batch) == 2 and list(batch.op_codes_and_sizes()) == [(1, 1), (2, 0)]
    assert batch == msgs and batch[1] == msgs[1] and batch[:1] == msgs[:1] and hash(batch) == hash(msgs)
    assert list(batch.op_codes_and_sizes()) == [(1, 1), (2, 0)]  # after the objects exist, too


@pytest.mark.parametrize(
    "payload",
    [
        [[], [[99, 0]]],  # unknown kind code
        [[], [[4, "0", []]]],  # loop tick not an integer
        [[], [[4, 0, 5]]],  # loop messages not an array
        [[], [[2, 0, [3]]]],  # presence index out of range
        [[["u", "s", "n", "", 0]], [[1, 0, 0, [1]]]],  # metadata not a map
        "not a chunk",
    ],
)
def test_malformed_payloads_raise_corrupt_recording(payload: object) -> None:
    with pytest.raises(CorruptRecording) as err:
        decode_chunk(payload, ("x.nkrec", 123, 4))  # type: ignore[arg-type]
    assert (err.value.path, err.value.offset, err.value.chunk) == ("x.nkrec", 123, 4)


@given(st.lists(st.integers(0, 3), max_size=20))
def test_presences_are_interned_per_chunk(picks: list[int]) -> None:
    pool = [Presence(f"u{i}", f"s{i}", f"n{i}") for i in range(4)]
    events = [LoopCall(i, (MatchMessage(pool[p], 1, b""),)) for i, p in enumerate(picks)]
    rows, _ = encode_chunk(events)
    assert len(rows) == len(set(picks))
