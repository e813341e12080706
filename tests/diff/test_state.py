"""replay.diff._state: first divergent state and the field diff there, on Python states and on encoded snapshots."""

from __future__ import annotations

import copy
import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.format import canonical_bytes
from replay.diff import (
    Tolerance,
    diff_trajectories,
    encode_states,
    field_diff,
    first_divergence,
    trajectory_digests,
)
from replay.diff import _kernels as kernels
from replay.diff._state import path_json
from replay.errors import SnapshotError
from replay.runtime import Divergence
from tests.common.naive_diff import naive_field_diff
from tests.common.state_strategies import states


def arena(tick: int) -> dict:
    return {
        "tick": tick,
        "players": {
            "u1": {"hp": 100 - tick % 7, "x": tick * 0.5, "y": 1.25, "team": "red"},
            "u2": {"hp": 100, "x": -tick * 0.25, "y": 2.5, "team": "blue"},
        },
        "bullets": [{"x": i * 1.5, "y": tick + i, "owner": "u1"} for i in range(tick % 4)],
        "flags": {1: "red", 2: "blue"},  # a Lua sequence as a dict: goes through the canonical encoder
    }


def trajectory(n: int) -> list[dict]:
    return [arena(t) for t in range(n)]


def test_planted_divergence_is_found_with_paths_and_values() -> None:
    a = trajectory(200)
    b = copy.deepcopy(a)
    for t in range(150, 200):
        b[t]["players"]["u2"]["hp"] = 99
        b[t]["bullets"].append({"x": 0.0, "y": 0.0, "owner": "u2"})
    found = diff_trajectories(a, b)
    assert found is not None and found.index == 150
    assert found.diff is not None
    assert [path_json(p) for p in found.diff.paths] == [
        {"path": "bullets[2].owner", "a": None, "b": "u2", "missing": "a"},
        {"path": "bullets[2].x", "a": None, "b": 0, "missing": "a"},
        {"path": "bullets[2].y", "a": None, "b": 0, "missing": "a"},
        {"path": "players.u2.hp", "a": 100, "b": 99},
    ]
    # the same answer from encoded snapshots (what a recording stores)
    pa = kernels.pack([canonical_bytes(s) for s in a])
    pb = kernels.pack([canonical_bytes(s) for s in b])
    assert first_divergence(pa, pb) == 150
    assert diff_trajectories(pa, pb) == found


def test_same_trajectories_and_prefixes() -> None:
    a = trajectory(50)
    assert first_divergence(a, copy.deepcopy(a)) is None
    assert diff_trajectories(a, copy.deepcopy(a)) is None
    ended = diff_trajectories(a, a[:30])
    assert ended is not None and (ended.index, ended.diff) == (30, None)


def test_int_and_float_and_key_order_do_not_count_as_divergence() -> None:
    a = [{"b": 1, "a": 2.0}, {"x": [1, 2]}]
    b = [{"a": 2, "b": 1.0}, {"x": {1: 1.0, 2: 2.0}}]
    assert first_divergence(a, b) is None
    assert (trajectory_digests(a) == trajectory_digests(b)).all()


def test_first_twenty_then_a_count() -> None:
    a = {"v": [float(i) for i in range(45)]}
    b = {"v": [float(i) + 1 for i in range(45)]}
    diff = field_diff(a, b)
    assert diff.count == 45 and len(diff.paths) == 20
    assert [p.field for p in diff.paths[:3]] == ["v[0]", "v[1]", "v[2]"]  # index order, not string order
    assert diff.paths[19] == Divergence("v[19]", 19, 20)


def test_float_tolerance() -> None:
    a = [{"x": 1.0, "y": float("nan"), "s": "a"}] * 3
    b = [
        {"x": 1.0, "y": float("nan"), "s": "a"},
        {"x": 1.0 + 1e-12, "y": float("nan"), "s": "a"},
        {"x": 1.1, "y": 0.0, "s": "a"},
    ]
    assert first_divergence(a, b) == 1  # bit-exact by default
    assert first_divergence(a, b, Tolerance(rel=1e-9)) == 2
    assert first_divergence(a, b, Tolerance(abs=0.5)) == 2  # y: NaN vs 0.0 is never within tolerance
    diff = field_diff(a[2], b[2], Tolerance(abs=0.5))
    assert [p.field for p in diff.paths] == ["y"]
    assert path_json(diff.paths[0]) == {"path": "y", "a": "NaN", "b": 0}


def test_tolerance_parsing() -> None:
    assert Tolerance.parse("1e-9") == Tolerance(rel=1e-9)
    assert Tolerance.parse("abs=0.5") == Tolerance(abs=0.5)
    assert Tolerance.parse("rel=1e-6, abs=1e-9") == Tolerance(1e-6, 1e-9)
    for bad in ("x=1", "rel=a", "-1", "rel=inf"):
        with pytest.raises(ValueError):
            Tolerance.parse(bad)


def test_bytes_and_json_values() -> None:
    diff = field_diff({"k": b"\x00\x01", "n": None}, {"k": b"\x00\x02"})
    assert [path_json(p) for p in diff.paths] == [
        {"path": "k", "a": {"base64": "AAE="}, "b": {"base64": "AAI="}},
        {"path": "n", "a": None, "b": None, "missing": "b"},
    ]
    json.dumps([path_json(p) for p in diff.paths])


@settings(max_examples=150, deadline=None)
@given(states(), states())
def test_field_diff_counts_what_the_reference_counts(a: object, b: object) -> None:
    diff = field_diff(a, b, limit=1000)
    assert diff.count == len(naive_field_diff(a, b)) == len(diff.paths)
    assert (first_divergence([a], [b]) is None) == (diff.count == 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(states(max_leaves=15), max_size=8), st.data())
def test_plain_msgpack_fast_path_matches_canonical_bytes(traj: list[object], data: st.DataObject) -> None:
    canonical = kernels.pack([canonical_bytes(s) for s in traj])
    assert (trajectory_digests(traj) == kernels.content_digests(canonical)).all()
    # the same verdicts from Python states (plain msgpack, canonical where needed) as from canonical bytes
    other = [data.draw(st.sampled_from([s, copy.deepcopy(s), {"other": 1}])) for s in traj]
    canonical_other = kernels.pack([canonical_bytes(s) for s in other])
    assert first_divergence(traj, other) == first_divergence(canonical, canonical_other)
    packed = encode_states(traj)
    for i, state in enumerate(traj):
        decoded = msgpack.unpackb(packed.blob(i), raw=False, strict_map_key=False)
        assert canonical_bytes(decoded) == canonical_bytes(state)  # nothing lost in the plain encoding


def test_encoded_states_with_integer_keys_fall_back_to_the_canonical_form() -> None:
    a = [{"f": {1: "x", 2: "y"}}, {"f": {1: "x"}}]  # Lua sequences kept as dicts: plain msgpack has int keys
    b = [{"f": ["x", "y"]}, {"f": ["x", "z"]}]
    pa, pb = encode_states(a), encode_states(b)
    with pytest.raises(SnapshotError, match="not a string"):
        kernels.flatten_bytes(pa.blob(0))
    assert first_divergence(pa, pb) == 1
    found = diff_trajectories(pa, pb)
    assert found is not None and found.index == 1 and found.diff is not None
    assert [path_json(p) for p in found.diff.paths] == [{"path": "f[1]", "a": None, "b": "z", "missing": "a"}]
