"""Slow, obviously correct references for state diffing (a copy kept apart from the library, STYLE habit 10).

Everything here is written for clarity, not speed, and shares no code with ``recorder.format._canonical`` or
``replay.diff._kernels`` except ``canonicalize`` (the value rules are tested on their own in test_canonical.py).
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

from recorder.format import canonical_bytes, canonicalize

M64 = 2**64


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % M64
    return h


def fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) % M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) % M64
    k ^= k >> 33
    return k


def child(parent: int, component: int, tag: int) -> int:
    return fmix64((parent * 0x9E3779B97F4A7C15 + component + tag) % M64)


def box(h: int) -> int:
    m = h % 2**52
    if m == 0 or m == 2**51:
        m += 1
    return 0xFFF0000000000000 + m


def bits_of(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def float_of(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


ROOT = fmix64(0x6E616B616D61)


def leaf_bits(v: Any) -> int:
    if v is None:
        return box(fmix64(0xC0))
    if v is True:
        return box(fmix64(0xC3))
    if v is False:
        return box(fmix64(0xC2))
    if v == {}:
        return box(fmix64(0x80))
    if isinstance(v, float):
        return bits_of(v)
    if isinstance(v, int):
        return box(fmix64((v % M64) ^ 0x6D)) if v < 0 else box(fmix64(v ^ 0x6E))
    if isinstance(v, str):
        return box(fmix64(fnv1a64(v.encode("utf-8")) ^ 0x73))
    if isinstance(v, bytes):
        return box(fmix64(fnv1a64(v) ^ 0x62))
    raise AssertionError(v)


def naive_flatten(value: Any) -> list[tuple[str, int, int]]:
    """``[(path, path_hash, value_bits)]`` sorted by path hash."""
    leaves = []
    stack = [(canonicalize(value), "", ROOT)]
    while stack:
        v, path, h = stack.pop()
        if isinstance(v, dict) and v:
            for k, c in v.items():
                name = f"{path}.{k}" if path else k
                if not (k.isascii() and k.isidentifier()):
                    import json

                    name = f"{path}[{json.dumps(k, ensure_ascii=False)}]"
                stack.append((c, name, child(h, fnv1a64(k.encode("utf-8")), 0x6B)))
        elif isinstance(v, list):
            for i, c in enumerate(v):
                stack.append((c, f"{path}[{i}]", child(h, fmix64(i), 0x69)))
        else:
            leaves.append((path, h, leaf_bits(v)))
    return sorted(leaves, key=lambda t: t[1])


def naive_digest(value: Any) -> int:
    return int.from_bytes(hashlib.blake2b(canonical_bytes(value), digest_size=8).digest(), "little")


def is_finite_float_bits(bits: int) -> bool:
    return (bits >> 52) & 0x7FF != 0x7FF


def naive_equal_bits(a: int, b: int, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """Bit-identical, or two finite floats within max(abs, rel * max(|a|, |b|))."""
    if a == b:
        return True
    if (rel == 0.0 and abs_ == 0.0) or not (is_finite_float_bits(a) and is_finite_float_bits(b)):
        return False
    x, y = float_of(a), float_of(b)
    return math.fabs(x - y) <= max(abs_, rel * max(math.fabs(x), math.fabs(y)))


def naive_field_diff(a: Any, b: Any, rel: float = 0.0, abs_: float = 0.0) -> list[tuple[int, int | None, int | None]]:
    """``[(path_hash, bits_a or None, bits_b or None)]`` for every path that differs, sorted by hash."""
    fa = {h: bits for _, h, bits in naive_flatten(a)}
    fb = {h: bits for _, h, bits in naive_flatten(b)}
    out = []
    for h in sorted(set(fa) | set(fb)):
        x, y = fa.get(h), fb.get(h)
        if x is None or y is None or not naive_equal_bits(x, y, rel, abs_):
            out.append((h, x, y))
    return out


def naive_first_divergence(da: list[int], db: list[int]) -> int:
    """First index where the digests differ; ``min(len)`` if one is a prefix of the other; -1 if equal."""
    for i in range(min(len(da), len(db))):
        if da[i] != db[i]:
            return i
    return -1 if len(da) == len(db) else min(len(da), len(db))


def naive_content_digest(value: Any) -> int:
    """The kernels' order-independent digest: fold of the sorted (path hash, value bits) pairs."""
    d = 0x636F6E74656E74
    pairs = naive_flatten(value)
    for _, h, bits in pairs:
        d = fmix64((d * 0x9E3779B97F4A7C15 + h) % M64)
        d = fmix64((d * 0x9E3779B97F4A7C15 + bits) % M64)
    return fmix64((d + len(pairs)) % M64)
