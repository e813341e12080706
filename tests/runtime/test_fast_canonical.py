"""The compiled canonical walk gives the reference's bytes for every state (or leaves it to the reference)."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import replay.runtime._runtime as runtime_module
from recorder.errors import StateError
from recorder.format import canonical_bytes as reference
from recorder.format import digest_bytes
from replay.runtime import ReplayOptions, reproduce
from replay.runtime._fast_canonical import (
    canonical_bytes,
    canonical_digest,
    compiled_canonical_bytes,
    compiled_canonical_digest,
    kernel_bytes,
    kernel_digest,
)
from tests.common.model_strategies import values
from tests.common.paths import ROOT
from tests.common.state_strategies import keys, scalars, states
from tests.format.test_canonical import PINNED_DIGESTS, PINNED_STATES

#: states the kernel itself handles: string keys, numbers float64 holds, no pointer texts
_numbers = st.one_of(
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 2**53, -(2**53), 2.0**53]),
)
_leaves = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=40), st.binary(max_size=300))
kernel_states = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.lists(inner, max_size=6).map(tuple),
        st.dictionaries(keys, inner, max_size=6),
    ),
    max_leaves=40,
)


def _same_as_reference(value: object) -> None:
    try:
        want = reference(value)
    except StateError as exc:
        for compiled in (canonical_bytes, canonical_digest):
            with pytest.raises(StateError) as got:
                compiled(value)
            assert (got.value.path, got.value.problem) == (exc.path, exc.problem)
        return
    assert canonical_bytes(value) == want
    assert canonical_digest(value) == digest_bytes(want)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_states)
def test_the_kernel_gives_the_reference_bytes(state: object) -> None:
    assume(b": 0x" not in msgpack.packb(state, use_bin_type=True))  # pointer-like bytes: the reference's
    data = kernel_bytes(state)
    assert data is not None  # these shapes are the kernel's own: it must not give up on them
    assert data == reference(state)
    assert kernel_digest(state) == digest_bytes(data)  # hashed where the kernel wrote it


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(states(), values, scalars))
def test_every_state_gets_the_reference_bytes_or_error(state: object) -> None:
    _same_as_reference(state)


@pytest.mark.parametrize(
    "state",
    [
        {"hp": -0.0, "big": 2**53, "low": -(2**53), "nan": math.nan, "inf": [math.inf, -math.inf]},
        {"b": 1, "a": 2, "é": 3, "Z": 4, "\U0001f600": 5, "\uffff": 6, "ab": 7, "": 8},
        {"x": [], "y": {}, "z": (), "w": [[], ()]},
        {f"k{i:03d}": i for i in range(300, 0, -1)},  # map16, keys reversed
        list(range(70_000)),  # array32 of numbers
        {"s": "x" * 31, "s8": "x" * 200, "s16": "y" * 70_000, "bin": b"\x00" * 300},
        {"deep": [[[[{"b": [1, {"d": 0, "c": None}], "a": True}]]]]},
    ],
)
def test_the_kernel_handles_every_msgpack_form(state: object) -> None:
    data = kernel_bytes(state)
    assert data is not None
    assert data == reference(state)
    assert kernel_digest(state) == canonical_digest(state) == digest_bytes(data)


@pytest.mark.parametrize(
    "state",
    [
        {"a": 2**53 + 1},  # no float64: the reference keeps the integer
        {"a": -(2**53) - 1},
        {"a": 2**60},  # float64 holds it: the reference decides that too
        {"fn": "function: 0xc0001a2b40"},  # a pointer text to mask
        {1: "a", 2: "b"},  # a Lua sequence kept as a dict
        {1.5: 0},
        {"s": {1, 2}},  # no canonical form at all: the reference names it
        {"n": 2**70},
        {"bad": "\ud800"},
    ],
)
def test_the_kernel_leaves_the_hard_cases_to_the_reference(state: object) -> None:
    assert kernel_bytes(state) is None and kernel_digest(state) is None
    _same_as_reference(state)


def test_pinned_digests_do_not_move() -> None:
    assert [digest_bytes(canonical_bytes(s)) for s in PINNED_STATES] == PINNED_DIGESTS
    digests = []
    for s in PINNED_STATES:
        try:
            digests.append(canonical_digest(s))
        except StateError:  # as the reference refuses it
            digests.append(None)
    assert digests == PINNED_DIGESTS


def test_a_replay_checks_every_recorded_digest_with_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core import config

    assert compiled_canonical_bytes() is (None if config.DISABLE_JIT else canonical_bytes)
    walked: list[object] = []

    def counting(value: object) -> int:  # the compiled digest (hashed in place), checked against the reference
        walked.append(value)
        digest = canonical_digest(value)
        assert digest == digest_bytes(reference(value))
        return digest

    monkeypatch.setattr(runtime_module, "_canonical_bytes", canonical_bytes)
    monkeypatch.setattr(runtime_module, "_canonical_digest", counting)
    recording = ROOT / "fixtures" / "recordings" / "arena-clean.nkrec"
    result = reproduce(recording, ROOT / "fixtures" / "handlers" / "arena_fixed.py", ReplayOptions())
    assert result.reproduced and result.divergence_count == 0, result.verdict
    assert len(walked) >= result.ticks_replayed > 0


def test_a_process_loads_the_kernel_once_its_price_is_spent_or_known_to_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core import config

    compiled = reference if config.DISABLE_JIT else canonical_bytes
    monkeypatch.setattr(runtime_module, "_canonical_bytes", reference)
    monkeypatch.setattr(runtime_module, "_canonical_digest", runtime_module._reference_digest)
    monkeypatch.setattr(runtime_module, "_reference_digests", runtime_module.COMPILED_CANONICAL_AFTER - 2)
    assert runtime_module._state_canonical_bytes({"a": 1}) == reference({"a": 1})
    assert runtime_module._canonical_bytes is reference  # one reference walk short of the price
    assert runtime_module._state_canonical_bytes({"a": 1}) == reference({"a": 1})
    assert runtime_module._canonical_bytes is compiled
    assert runtime_module._canonical_digest == (
        runtime_module._reference_digest if config.DISABLE_JIT else compiled_canonical_digest()
    )
    assert runtime_module._state_canonical_digest({"a": 1}) == digest_bytes(reference({"a": 1}))

    # a replay that knows enough digests are ahead loads it at once; fewer leave the reference in place
    monkeypatch.setattr(runtime_module, "_canonical_bytes", reference)
    monkeypatch.setattr(runtime_module, "_reference_digests", 0)
    runtime_module.expect_digests(runtime_module.COMPILED_CANONICAL_FOR - 1)
    assert runtime_module._canonical_bytes is reference
    runtime_module.expect_digests(runtime_module.COMPILED_CANONICAL_FOR)
    assert runtime_module._canonical_bytes is compiled
