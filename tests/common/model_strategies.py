"""Hypothesis strategies for recording model objects, pinned edge values, and a bit-exact comparison.

``assert_same(a, b)`` compares records and values by type and by float bits, so NaN payloads, -0.0 and
``1`` vs ``1.0`` vs ``True`` all count; a reader's ``MessageBatch`` counts as the tuple it stands for.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

from hypothesis import strategies as st

from recorder import (
    Broadcast,
    CrashMarker,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    MessageBatch,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
)

__all__ = [
    "I64_MIN",
    "I64_MAX",
    "U64_MAX",
    "NAN_PAYLOAD",
    "float_from_bits",
    "float_bits",
    "values",
    "presences",
    "messages",
    "outcomes",
    "calls",
    "events",
    "event_lists",
    "headers",
    "pinned_events",
    "pinned_header",
    "assert_same",
]

I64_MIN, I64_MAX, U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def float_from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def float_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


NAN_PAYLOAD = float_from_bits(0x7FF8000000000001)  # a quiet NaN with a payload bit set
NEG_NAN = float_from_bits(0xFFF8000000000000)

int64s = st.integers(I64_MIN, I64_MAX)
ticks = st.one_of(st.integers(0, 10_000), st.integers(0, I64_MAX))  # a tick is never negative
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, U64_MAX).map(float_from_bits),  # any bit pattern, NaN payloads included
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, NAN_PAYLOAD, NEG_NAN, 5e-324, 1.7976931348623157e308]),
)
# text with UTF-16 surrogates sometimes (msgpack carries them with surrogatepass; JSON needs the $str tag)
texts = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=6),
    st.sampled_from(["", "alice", "ünïcødé 🎮", "名前", "\ud83d\ude00", "\ud800", "$bytes", "$map"]),
)
ids = st.one_of(st.sampled_from(["u1", "u2", "s1", "s2", ""]), texts)
binaries = st.one_of(st.binary(max_size=24), st.sampled_from([b"", b"\xff\xfe\x00", b'{"x":1}']))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(I64_MIN, U64_MAX),
    st.integers(-5, 5),
    floats,
    texts,
    binaries,
)
map_keys = st.one_of(
    texts,
    st.sampled_from(["$bytes", "$float", "$map", "$str", "$ext", "$x", "kind"]),  # would collide with our tags
    st.integers(I64_MIN, U64_MAX),
    st.binary(max_size=4),
    st.none(),
    st.floats(allow_nan=False),
)


def _maps(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.dictionaries(texts, inner, max_size=4),
        st.dictionaries(map_keys, inner, max_size=4),
        st.tuples(st.sampled_from(["$bytes", "$float", "$map", "$str", "$ext", "$x"]), inner).map(
            lambda kv: {kv[0]: kv[1]}
        ),
    )


#: msgpack-ready values as a reader gives them back: lists (never tuples), maps with any scalar keys
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), _maps(inner)), max_leaves=12)
value_maps = _maps(values)
text_maps = st.dictionaries(texts, texts, max_size=3)

presences = st.builds(
    Presence, ids, ids, texts, st.sampled_from(["", "nakama1", "n\u00f62"]), st.one_of(st.integers(0, 4), int64s)
)
# a handful of presences so that chunks share them (the codec interns them per chunk)
presence_pool = st.lists(presences, min_size=1, max_size=4)


def messages(pool: list[Presence]) -> st.SearchStrategy[MatchMessage]:
    return st.builds(
        MatchMessage,
        st.sampled_from(pool),
        st.one_of(int64s, st.sampled_from([I64_MIN, I64_MAX, 0, 1])),
        st.one_of(st.none(), binaries),
        st.booleans(),
        st.one_of(int64s, st.just(1_700_000_000_100)),
    )


def broadcasts(pool: list[Presence]) -> st.SearchStrategy[Broadcast]:
    return st.builds(
        Broadcast,
        int64s,
        st.one_of(st.none(), binaries),
        st.one_of(st.none(), st.lists(st.sampled_from(pool), max_size=3).map(tuple)),
        st.one_of(st.none(), st.sampled_from(pool)),
        st.booleans(),
        st.booleans(),
    )


def outcomes(pool: list[Presence]) -> st.SearchStrategy[Outcome | None]:
    opt = st.one_of
    return st.one_of(
        st.none(),
        st.builds(
            Outcome,
            accept=opt(st.none(), st.booleans()),
            reason=opt(st.none(), texts),
            tick_rate=opt(st.none(), int64s),
            label=opt(st.none(), texts),
            broadcasts=st.lists(broadcasts(pool), max_size=3).map(tuple),
            kicks=st.lists(st.sampled_from(pool), max_size=2).map(tuple),
            label_updates=st.lists(texts, max_size=2).map(tuple),
            reply=opt(st.none(), texts),
            digest=opt(st.none(), st.integers(0, U64_MAX)),
            snapshot=opt(st.none(), binaries),
            stopped=st.booleans(),
        ),
    )


nondeterministic = st.lists(
    st.builds(
        Nondeterministic, st.sampled_from(["time", "os_time", "random", "uuid", "storage_read", "http"]) | texts, values
    ),
    max_size=3,
).map(tuple)


def calls(pool: list[Presence]) -> st.SearchStrategy:
    o, nd = outcomes(pool), nondeterministic
    plist = st.lists(st.sampled_from(pool), min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(InitCall, value_maps, o, nd, ticks),
        st.builds(JoinAttemptCall, ticks, st.sampled_from(pool), value_maps, o, nd, text_maps),
        st.builds(JoinCall, ticks, plist, o, nd),
        st.builds(LeaveCall, ticks, plist, o, nd),
        st.builds(LoopCall, ticks, st.lists(messages(pool), max_size=5).map(tuple), o, nd),
        st.builds(LoopCall, ticks, st.lists(messages(pool), max_size=5).map(tuple)),
        st.builds(SignalCall, ticks, texts, o, nd),
        st.builds(TerminateCall, ticks, int64s, o, nd),
    )


wire_events = st.builds(
    WireEvent,
    texts,
    st.sampled_from(["in", "out"]) | texts,
    st.one_of(st.floats(0, 1e6), floats),
    st.sampled_from(["envelope", "open", "close"]),
    st.one_of(st.none(), value_maps),
    st.one_of(st.none(), texts),
    st.one_of(st.none(), int64s),
    st.one_of(st.none(), texts),
)
crashes = st.builds(
    CrashMarker,
    st.sampled_from(["match_loop", "match_join"]) | texts,
    ticks,
    texts,
    texts,
    st.sampled_from(["", "KeyError", "Hang", "lua:index nil"]) | texts,
)


@st.composite
def event_lists(draw: Any, max_size: int = 12) -> list:
    pool = draw(presence_pool)
    return draw(st.lists(st.one_of(calls(pool), calls(pool), wire_events, crashes), max_size=max_size))


def events() -> st.SearchStrategy:
    return presence_pool.flatmap(calls) | wire_events | crashes


headers = st.builds(
    Header,
    match_id=texts,
    module=texts,
    tick_rate=int64s,
    label=texts,
    params=value_maps,
    node=texts,
    source=texts,
    started_ms=int64s,
    client_versions=text_maps,
    tags=value_maps,
    handler=texts,
    recording_kind=st.sampled_from(["calls", "wire"]),
    log_match_id=texts,
    redactions=st.lists(texts, max_size=2).map(tuple),
    format_version=st.integers(0, 3),
)

# -- pinned edge cases (the ones the recording format promises to keep bit for bit) -------------------------

ALICE = Presence("u1", "s1", "ünïcødé 🎮 alice", "nakama1")
BOB = Presence("u2", "s2", "名前", "nakama1", 4)


def pinned_events() -> list:
    """One event list holding every pinned edge value."""
    edge = {
        "nan": NAN_PAYLOAD,
        "negzero": -0.0,
        "inf": math.inf,
        "bytes": b"\xff\xfe",
        "empty": b"",
        "big": U64_MAX,
        "small": I64_MIN,
        7: "int key",
        b"k": None,
        "$bytes": "collides with a tag",
    }
    return [
        InitCall(edge, Outcome(tick_rate=10, label=""), (Nondeterministic("random", NAN_PAYLOAD),)),
        JoinAttemptCall(0, ALICE, {"v": "1.2.0", "x": -0.0}, Outcome(accept=True), (), {"k": "v"}),
        JoinCall(0, (ALICE.with_reason(1), BOB)),
        LoopCall(
            0,
            (
                MatchMessage(ALICE, I64_MIN, b"", True, 0),
                MatchMessage(BOB, I64_MAX, None, False, I64_MAX),
                MatchMessage(ALICE, 1, b"\xff\xfe\x00\x80 not utf-8", True, 1_700_000_000_100),
            ),
            Outcome(
                broadcasts=(Broadcast(2, b"", (BOB,), ALICE, False, True), Broadcast(3, None)),
                digest=U64_MAX,
                snapshot=b"\x80",
                kicks=(BOB,),
                label_updates=("a", ""),
            ),
            (Nondeterministic("time", 1_700_000_000_123), Nondeterministic("float", -0.0)),
        ),
        LoopCall(1, ()),
        LeaveCall(2, (BOB,), Outcome(stopped=True)),
        SignalCall(3, "ünïcødé", Outcome(reply="")),
        TerminateCall(4, 0),
        CrashMarker("match_loop", 5, "boom", "stack\n  line 1", "RuntimeError"),
        WireEvent("sock", "out", -0.0, envelope={"match_data_send": {"op_code": "1", "data": "eyJ4IjoxfQ=="}}),
        WireEvent("sock", "in", NAN_PAYLOAD, "close", None, None, 1000, "server-side session disconnect"),
    ]


def pinned_header() -> Header:
    return Header(
        match_id="m1.nakama1",
        module="arena",
        tick_rate=10,
        params={"nan": NAN_PAYLOAD, 1: b"\x00"},
        node="nakama1",
        client_versions={"u1": "1.2.0"},
        tags={"$map": -0.0},
        redactions=("tokens",),
    )


# -- bit-exact comparison ------------------------------------------------------------------------------------


def assert_same(a: Any, b: Any, path: str = "$") -> None:
    """Fail unless ``a`` and ``b`` are the same value: same types, floats with the same bits."""
    if isinstance(a, MessageBatch):
        a = tuple(a)
    if isinstance(b, MessageBatch):
        b = tuple(b)
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__} ({a!r} vs {b!r})"
    if type(a) is float:
        assert float_bits(a) == float_bits(b), f"{path}: float bits {float_bits(a):016x} != {float_bits(b):016x}"
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif type(a) in (list, tuple):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif type(a) is dict:
        assert len(a) == len(b), f"{path}: {len(a)} keys != {len(b)} keys"
        for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(), b.items())):
            assert_same(ka, kb, f"{path}.key[{i}]")
            assert_same(va, vb, f"{path}[{ka!r}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
