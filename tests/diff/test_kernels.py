"""numba kernels against the slow references in tests/common/naive_diff.py, on random states (hypothesis).

tests/diff/test_kernels_nojit.py runs this module a second time with NUMBA_DISABLE_JIT=1, so every kernel line
also runs as plain Python; example counts shrink there because numpy-scalar Python is slow.
"""

from __future__ import annotations

import hashlib
import os
import struct

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from recorder.format import canonical_bytes, canonicalize
from replay.diff import _kernels as kernels
from replay.errors import SnapshotError
from tests.common.naive_diff import (
    float_of,
    naive_content_digest,
    naive_field_diff,
    naive_first_divergence,
    naive_flatten,
)
from tests.common.state_strategies import states

NOJIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
MANY = 40 if NOJIT else 300  # examples per property: thousands of random states over the module
FEW = 15 if NOJIT else 100
many = settings(max_examples=MANY, deadline=None, suppress_health_check=[HealthCheck.too_slow])
few = settings(max_examples=FEW, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pairs(state: object) -> list[tuple[int, int]]:
    return [(h, bits) for _, h, bits in naive_flatten(state)]


def kernel_pairs(data: bytes) -> list[tuple[int, int]]:
    hs, bs = kernels.flatten_bytes(data)
    return list(zip(hs.tolist(), bs.tolist()))


def test_jit_mode_is_what_the_environment_says() -> None:
    # under NUMBA_DISABLE_JIT=1 njit hands back the plain function; otherwise a dispatcher with py_func
    assert hasattr(kernels._flatten_into, "py_func") is (not NOJIT)


@many
@given(states())
@example({"a": -0.0, "b": float("nan"), "c": 2**64 - 1, "d": -(2**63), "e": b"", "f": None, "g": [], "h": 2**53 + 1})
@example({"deep": [[[[{"x": [1.5]}]]]], "s": "é" * 40, "long": "x" * 70000, "bin": b"\x00" * 300})
def test_flatten_kernel_matches_reference(state: object) -> None:
    assert kernel_pairs(canonical_bytes(state)) == pairs(state)


@many
@given(states())
def test_plain_msgpack_flattens_like_canonical_bytes(state: object) -> None:
    try:
        data = msgpack.packb(state, use_bin_type=True)
    except (OverflowError, ValueError):
        assume(False)  # ints beyond 64 bits: only the canonical path can name them
    try:
        assert kernel_pairs(data) == pairs(state)
    except SnapshotError as exc:  # Lua-shaped dicts carry integer keys: plain msgpack cannot say what they are
        assert "map key is not a string" in str(exc)
        assert _has_non_string_key(state)


@few
@given(st.lists(states(max_leaves=12), max_size=6), st.booleans())
def test_content_digests_match_reference(trajectory: list[object], parallel: bool) -> None:
    packed = kernels.pack([canonical_bytes(s) for s in trajectory])
    got = kernels.content_digests(packed, parallel=parallel).tolist()
    assert got == [naive_content_digest(s) for s in trajectory]


@few
@given(st.lists(st.one_of(st.binary(max_size=300), states().map(canonical_bytes)), max_size=5), st.booleans())
@example([b"", b"\x00" * 127, b"\x01" * 128, b"\x02" * 129, b"\x03" * 256, b"\x04" * 257], False)
def test_snapshot_digests_are_blake2b_64(blobs: list[bytes], parallel: bool) -> None:
    got = kernels.snapshot_digests(kernels.pack(blobs), parallel=parallel).tolist()
    want = [int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little") for b in blobs]
    assert got == want


digests = st.lists(st.integers(0, 3), max_size=40).map(lambda xs: np.array(xs, dtype=np.uint64))


@many
@given(digests, digests)
def test_first_difference_matches_reference(a: np.ndarray, b: np.ndarray) -> None:
    assert kernels.first_difference(a, b) == naive_first_divergence(a.tolist(), b.tolist())


@few
@given(st.integers(0, 1100), st.lists(st.integers(0, 1100), max_size=3), st.integers(0, 1100))
def test_first_difference_across_blocks(n: int, flips: list[int], cut: int) -> None:
    a = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    b = a.copy()
    for i in flips:
        if i < n:
            b[i] ^= np.uint64(1) << np.uint64(i % 64)
    b = b[: max(cut, n // 2)].copy()
    assert kernels.first_difference(a, b) == naive_first_divergence(a.tolist(), b.tolist())


def _mutate(state: object, data: st.DataObject) -> object:
    """A copy of ``state`` with a few leaves nudged, retyped, dropped or added."""
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            choice = data.draw(st.integers(0, 9))
            if choice == 0:
                continue  # dropped
            out[k] = _mutate(v, data) if choice > 2 else v
        if data.draw(st.integers(0, 9)) == 0:
            out[f"new{len(out)}"] = data.draw(st.floats())
        return out
    if isinstance(state, list):
        return [_mutate(v, data) for v in state]
    if isinstance(state, float) and data.draw(st.booleans()):
        return state * (1 + data.draw(st.sampled_from([0.0, 1e-12, 1e-6, 1e-3, -1e-9])))
    if data.draw(st.integers(0, 5)) == 0:
        return data.draw(st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=3)))
    return state


tolerances = st.tuples(st.sampled_from([0.0, 1e-9, 1e-6, 1e-3]), st.sampled_from([0.0, 1e-12, 1e-3, 1.0]))


@many
@given(states(), st.data(), tolerances)
def test_merge_diff_matches_reference(a: object, data: st.DataObject, tol: tuple[float, float]) -> None:
    b = _mutate(canonicalize(a), data)
    rel, abs_ = tol
    ha, va = kernels.flatten_bytes(canonical_bytes(a))
    hb, vb = kernels.flatten_bytes(canonical_bytes(b))
    ia, ib = kernels.merge_diff(ha, va, hb, vb, rel, abs_)
    got = [
        (int(ha[i]) if i >= 0 else int(hb[j]), int(va[i]) if i >= 0 else None, int(vb[j]) if j >= 0 else None)
        for i, j in zip(ia.tolist(), ib.tolist())
    ]
    assert got == naive_field_diff(a, b, rel, abs_)


@few
@given(st.lists(states(max_leaves=10), min_size=1, max_size=6), st.data(), tolerances, st.booleans())
def test_first_divergence_matches_reference(
    trajectory: list[object], data: st.DataObject, tol: tuple[float, float], plain: bool
) -> None:
    other = [_mutate(canonicalize(s), data) for s in trajectory]
    other = other[: data.draw(st.integers(0, len(other)))]
    rel, abs_ = tol
    pa = kernels.pack([canonical_bytes(s) for s in trajectory])
    # plain msgpack of canonical values: same states, other key order and number encodings
    encode = (lambda s: msgpack.packb(_reverse_keys(canonicalize(s)))) if plain else canonical_bytes
    pb = kernels.pack([encode(s) for s in other])
    want = next((t for t, (x, y) in enumerate(zip(trajectory, other)) if naive_field_diff(x, y, rel, abs_)), -1)
    if want == -1 and len(trajectory) != len(other):
        want = min(len(trajectory), len(other))
    assert kernels.first_divergence(pa, pb, rel, abs_) == want
    if want > 0:
        assert kernels.first_divergence(pa, pb, rel, abs_, start=want) == want
        assert kernels.first_divergence(pa, pb, rel, abs_, start=want + 1) in (-1, len(other), len(trajectory)) or (
            kernels.first_divergence(pa, pb, rel, abs_, start=want + 1) > want
        )


@few
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=4), st.data())
def test_first_divergence_on_long_blobs(lengths: list[int], data: st.DataObject) -> None:
    """Blobs long enough for the word and block paths of the byte comparison, at unaligned offsets."""
    payloads = [bytes(i % 251 for i in range(n)) for n in lengths]
    other = list(payloads)
    t = data.draw(st.integers(0, len(payloads) - 1))
    if payloads[t]:
        k = data.draw(st.integers(0, len(payloads[t]) - 1))
        other[t] = payloads[t][:k] + bytes([payloads[t][k] ^ 0x5A]) + payloads[t][k + 1 :]
    pa = kernels.pack([canonical_bytes({"b": p, "pad": "x" * (i % 7)}) for i, p in enumerate(payloads)])
    pb = kernels.pack([canonical_bytes({"b": p, "pad": "x" * (i % 7)}) for i, p in enumerate(other)])
    assert kernels.first_divergence(pa, pb) == (t if payloads[t] else -1)


def _reverse_keys(v: object) -> object:
    if isinstance(v, dict):
        return {k: _reverse_keys(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [_reverse_keys(x) for x in v]
    return v


def test_nan_equals_nan_bit_for_bit_only() -> None:
    quiet = float_of(0x7FF8000000000000)
    payload = float_of(0x7FF8000000000001)
    ha, va = kernels.flatten_bytes(canonical_bytes({"x": quiet}))
    hb, vb = kernels.flatten_bytes(canonical_bytes({"x": quiet}))
    assert kernels.merge_diff(ha, va, hb, vb)[0].size == 0
    hc, vc = kernels.flatten_bytes(canonical_bytes({"x": payload}))
    assert kernels.merge_diff(ha, va, hc, vc, 1.0, 1.0)[0].size == 1  # different NaNs differ, whatever the tolerance


def test_tolerance_never_applies_to_non_floats() -> None:
    ha, va = kernels.flatten_bytes(canonical_bytes({"x": "a", "y": 1.0, "z": float("inf")}))
    hb, vb = kernels.flatten_bytes(canonical_bytes({"x": "b", "y": 1.0 + 1e-12, "z": 1e308}))
    ia, _ = kernels.merge_diff(ha, va, hb, vb, 1e-6, 1e300)
    assert len(ia) == 2  # x (strings) and z (infinity); y is within tolerance


@pytest.mark.parametrize(
    ("data", "offset", "problem"),
    [
        (b"\x82\xa1a\x01", 4, "ends in the middle"),  # map of 2, one entry
        (b"\x81\xa1a\xcb\x00", 4, "ends in the middle"),  # float64 cut short
        (b"\x81\xa1a\xd4\x01\x02", 3, "ext types"),
        (b"\x81\xc1\x01", 1, "not a string"),
        (b"\x81\x01\x02", 1, "not a string"),  # integer key
        (b"\x01\x02", 1, "left over"),
        (b"\x82\xa1a\x01\xa1a\x02", 0, "duplicate"),
        (b"\x91" * (kernels.MAX_DEPTH + 1) + b"\xc0", kernels.MAX_DEPTH + 1, "deeper"),
        (b"", 0, "ends in the middle"),
    ],
)
def test_malformed_bytes_name_the_offset(data: bytes, offset: int, problem: str) -> None:
    with pytest.raises(SnapshotError) as info:
        kernels.flatten_bytes(data)
    assert info.value.offset == offset
    assert problem in str(info.value)


def test_content_digests_name_the_bad_blob() -> None:
    packed = kernels.pack([canonical_bytes({"a": 1}), b"\x81\xa1a", canonical_bytes([])])
    with pytest.raises(SnapshotError) as info:
        kernels.content_digests(packed)
    assert (info.value.blob, info.value.offset) == (1, 3)
    _, bad = kernels.content_digests_checked(packed)
    assert bad.tolist() == [1]


@few
@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_raise_snapshot_error(data: bytes) -> None:
    try:
        got = kernel_pairs(data)
    except SnapshotError:
        return
    # whatever the kernel accepts is one msgpack state with string keys, and flattens like the reference
    try:
        state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except UnicodeDecodeError:
        return  # the kernel hashes str bytes as they are; it does not validate UTF-8 (canonical bytes are valid)
    assert got == pairs(state)


def test_float32_is_widened_like_msgpack_does() -> None:
    data = b"\x81\xa1x\xca" + struct.pack(">f", 1.5) + b""
    assert kernel_pairs(data) == pairs({"x": 1.5})


def test_wrappers_validate_their_inputs() -> None:
    ok = np.zeros(3, dtype=np.uint64)
    with pytest.raises(TypeError, match="uint64"):
        kernels.first_difference(ok, np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="C-contiguous"):
        kernels.first_difference(ok, np.zeros(6, dtype=np.uint64)[::2])
    with pytest.raises(ValueError, match="strictly increasing"):
        kernels.merge_diff(np.array([2, 1], dtype=np.uint64), ok[:2], ok[:0], ok[:0])
    with pytest.raises(ValueError, match="finite"):
        kernels.merge_diff(ok[:0], ok[:0], ok[:0], ok[:0], rel=float("nan"))
    with pytest.raises(ValueError, match="offsets"):
        kernels.Packed(np.zeros(4, dtype=np.uint8), np.array([0, 5], dtype=np.int64))


def _has_non_string_key(v: object) -> bool:
    if isinstance(v, dict):
        return any(not isinstance(k, str) for k in v) or any(_has_non_string_key(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_has_non_string_key(x) for x in v)
    return False
