"""The canonical form of match states: value rules, bytes, digest, flatten (against tests/common/naive_diff.py)."""

from __future__ import annotations

import hashlib
import json
import math

import msgpack
import pytest
from hypothesis import example, given, settings

from recorder.errors import StateError
from recorder.format import canonical_bytes, canonicalize, digest_bytes, flatten, state_digest
from tests.common.naive_diff import naive_digest, naive_flatten
from tests.common.state_strategies import states


def test_numbers_are_one_kind_when_float64_holds_them() -> None:
    assert state_digest({"hp": 3}) == state_digest({"hp": 3.0})
    assert state_digest([2**60]) == state_digest([float(2**60)])
    assert state_digest({"a": -0.0}) == state_digest({"a": 0})
    assert state_digest({"hp": 3}) != state_digest({"hp": 3.5})
    # 2**53 + 1 has no float64; it stays an integer, distinct from its rounded float
    assert canonicalize(2**53 + 1) == 2**53 + 1 and type(canonicalize(2**53 + 1)) is int
    assert state_digest(2**53 + 1) != state_digest(float(2**53 + 1))
    assert canonical_bytes(2**53 + 1)[0] == 0xCF  # always the 8-byte integer form
    assert canonical_bytes(7)[0] == 0xCB  # numbers are float64


def test_types_stay_apart() -> None:
    digests = {state_digest(v) for v in (None, False, True, 0, "", b"", "0", b"0", {}, [None])}
    assert len(digests) == 10
    assert state_digest({"a": "x"}) != state_digest({"a": b"x"})


def test_nan_keeps_its_bits() -> None:
    nan2 = float.fromhex("nan")  # same object bits as float("nan")
    assert state_digest([float("nan")]) == state_digest([nan2])
    assert canonical_bytes([float("inf")]) != canonical_bytes([float("-inf")])


def test_lua_shapes() -> None:
    # a Lua sequence converted to a dict is the same value as the list
    assert canonicalize({1: "a", 2: "b", 3: "c"}) == ["a", "b", "c"]
    assert canonicalize({2.0: "b", 1.0: "a"}) == ["a", "b"]
    # empty table: [] and {} are one value
    assert canonical_bytes([]) == canonical_bytes({}) == canonical_bytes(()) == b"\x80"
    # other non-string keys are spelled as Nakama's fmt.Sprint spells them
    assert canonicalize({1: "a", 3: "c"}) == {"1": "a", "3": "c"}
    assert canonicalize({1.5: 1, 1e-05: 2, True: 3, b"k": 4}) == {"1.5": 1.0, "1e-05": 2.0, "true": 3.0, "k": 4.0}
    assert canonicalize({math.inf: 0, -math.inf: 0, math.nan: 0}) == {"+Inf": 0.0, "-Inf": 0.0, "NaN": 0.0}
    assert canonicalize({0: "x", 1: "y"}) == {"0": "x", "1": "y"}  # not 1..n


def test_agrees_with_nk_json_encode_output() -> None:
    # what a Lua handler's state looks like once converted to Python (doubles, sequences as dicts) ...
    lua_state = {
        "players": {"u2": {"hp": 7.0, "pos": {1: 1.5, 2: 2.0}}, "u1": {"hp": 10.0, "name": "ann"}},
        "tick": 40.0,
        "big": float(2**60),
        "zero": -0.0,
    }
    # ... and what nk.json_encode wrote for it into the Nakama log (Go sorts keys, whole floats as integers)
    logged = '{"big":1152921504606846976,"players":{"u1":{"hp":10,"name":"ann"},"u2":{"hp":7,"pos":[1.5,2]}},"tick":40,"zero":0}'
    assert canonical_bytes(json.loads(logged)) == canonical_bytes(lua_state)
    assert state_digest(json.loads(logged)) == state_digest(lua_state)


def test_keys_sort_by_utf8_bytes() -> None:
    state = {"b": 1, "a": 2, "é": 3, "Z": 4, "\U0001f600": 5, "\uffff": 6}
    assert list(canonicalize(state)) == ["Z", "a", "b", "é", "\uffff", "\U0001f600"]
    assert list(canonicalize(state)) == sorted(state, key=lambda k: k.encode("utf-8"))


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ({"a": {"b": {1, 2}}}, "a.b", "set"),
        ({"a": [0, object()]}, "a[1]", "object"),
        ({"a": {1: "x", "1": "y"}}, "a", "same key"),
        ({"s": "\ud800"}, "s", "surrogate"),
        ({"n": 2**64 + 1}, "n", "64 bits"),
        ({"k": {b"\xff": 1}}, "k", "UTF-8"),
        ({"k": {None: 1}}, "k", "NoneType"),
    ],
)
def test_values_without_canonical_form_name_the_path(value: object, path: str, problem: str) -> None:
    with pytest.raises(StateError) as info:
        canonical_bytes(value)
    assert info.value.path == path
    assert problem in str(info.value)


def _cyclic() -> dict:  # type: ignore[type-arg]
    inner: dict = {"y": None}  # type: ignore[type-arg]
    state = {"x": [1, inner], "k": {"a b": 2}}
    inner["y"] = [state]
    return state


def _nested(levels: int) -> list:  # type: ignore[type-arg]
    outer = inner = []  # type: ignore[var-annotated]
    for _ in range(levels - 1):
        inner.append([])
        inner = inner[0]
    return outer


def test_a_state_inside_itself_names_where_the_cycle_closes() -> None:
    with pytest.raises(StateError) as info:
        canonical_bytes(_cyclic())
    assert (info.value.path, info.value.problem) == ("x[1].y[0]", "holds a container it is inside of (a cycle)")


def test_nesting_deeper_than_the_stack_is_a_state_error_with_a_short_path() -> None:
    with pytest.raises(StateError) as info:
        canonical_bytes(_nested(5000))
    assert info.value.problem == "nested 5000 levels deep, deeper than the canonical walk goes"
    assert len(str(info.value)) < 300 and info.value.path.startswith("[0][0]") and "…" in info.value.path


def test_a_container_held_in_two_places_is_no_cycle() -> None:
    shared = {"hp": 3}
    twice = {"a": [shared, shared], "b": shared}
    assert canonical_bytes(twice) == canonical_bytes({"a": [{"hp": 3}, {"hp": 3}], "b": {"hp": 3}})
    deep_but_fine = _nested(200)
    assert canonical_bytes(deep_but_fine)  # well inside the stack: no error


@settings(max_examples=300, deadline=None)
@given(states())
@example({"a": -0.0, "b": float("nan"), "c": 2**64 - 1, "d": -(2**63), "e": b"", "f": None})
def test_canonical_form_is_a_fixed_point(state: object) -> None:
    data = canonical_bytes(state)
    again = msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert canonical_bytes(again) == data
    assert canonicalize(again) == again or _has_nan(again)
    assert state_digest(state) == digest_bytes(data) == naive_digest(state)
    assert digest_bytes(data) == int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    assert 0 <= state_digest(state) < 2**64


@settings(max_examples=300, deadline=None)
@given(states())
def test_flatten_matches_the_naive_copy(state: object) -> None:
    assert flatten(state) == naive_flatten(state)


@given(states(), states())
@settings(max_examples=200, deadline=None)
def test_equal_flattening_means_equal_bytes(a: object, b: object) -> None:
    same_leaves = [(h, v) for _, h, v in flatten(a)] == [(h, v) for _, h, v in flatten(b)]
    assert same_leaves == (canonical_bytes(a) == canonical_bytes(b))


def test_readable_paths() -> None:
    state = {"players": {"u2": {"hp": 3}}, "bullets": [{"x": 1}, {"x": 2}], "tags": {"a b": True}, "n": {}}
    assert sorted(p for p, _, _ in flatten(state)) == [
        "bullets[0].x",
        "bullets[1].x",
        "n",
        "players.u2.hp",
        'tags["a b"]',
    ]
    assert [p for p, _, _ in flatten(5)] == [""]


def _has_nan(v: object) -> bool:
    if isinstance(v, float):
        return v != v
    if isinstance(v, dict):
        return any(_has_nan(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_nan(x) for x in v)
    return False


#: states that take every branch of the canonical walkers (inline leaves, the general map path, Lua
#: sequences, converted keys, pointer texts, big integers, empty containers), with the digests the
#: walkers gave before their hot path was inlined (commit 4a33de9): the digests a recording holds must
#: not move
PINNED_STATES = [
    {
        "phase": "playing",
        "players": {
            "u2": {"hp": 100, "pos": [10.0, 36.5], "ready": True, "name": "p0"},
            "u1": {"hp": -0.0, "pos": [], "tags": ()},
        },
        "bullets": [{"x": 2**53 + 1, "y": 2**60, "id": 7}],
        "chat": None,
    },
    {
        "é": 1,
        "z": "function: 0xc0001a2b40 and table: 0x1f",
        "a": b"\x00\xff",
        "": [True, False, None, math.nan, -math.inf],
    },
    {1: "a", 2: "b", 3: {2: "y", 1: "x"}},
    {1.5: 1, True: 2, b"k": 3, -4: 4},
    [[], {}, (), [1, [2, [3.25]]], -(2**63), 2**64 - 1, "ü" * 40, "x" * 300],
]
PINNED_DIGESTS = [0xB731BCD2AEE46699, 0xD984269AA79C0D09, 0xEB2997B4104F1433, 0x16DE6011A2B5B94B, 0x3C6F97B918A5C9E2]


def test_digests_do_not_move() -> None:
    assert [state_digest(s) for s in PINNED_STATES] == PINNED_DIGESTS
    blob = b"".join(canonical_bytes(s) for s in PINNED_STATES)
    assert hashlib.sha256(blob).hexdigest() == "c0a1fa8684660ce63a728e913fdd0dfb96091b866dd632ca5e4d3db60c9cec05"
