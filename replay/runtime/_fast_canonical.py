"""Canonical bytes of a state at compiled speed: msgpack in C, then one numba pass over its bytes.

``recorder.format.canonical_bytes`` walks the state in Python (about 0.12 µs per value: for the arena's
state as much as a whole tick of its handler). Here ``msgpack`` packs the state as it is (C speed) and a
numba kernel rewrites those bytes into the canonical form: every integer float64 holds becomes float64
(``0xcb``), ``-0.0`` becomes ``0.0``, an empty array becomes the empty map, and each map's entries are
put in the order of their keys' UTF-8 bytes. Everything else is copied as it is (str, bin, nil, booleans,
floats, container heads: the packer that wrote them writes the canonical form's heads too).

The kernel gives up (and ``canonical_bytes`` runs the reference walk instead) wherever the rules need
more than that, so the bytes are the reference's in every case:

- ``msgpack`` refuses the state: a type other than dict, list, tuple, str, bytes, int, float, bool, None
  (exact types: subclasses, sets and objects), a string that is not valid Unicode, an int beyond 64 bits,
  nesting beyond msgpack's limit;
- the packed bytes hold ``: 0x`` anywhere (a pointer text might need masking);
- a map key that is not a string (a Lua sequence kept as a dict, numbers, booleans, bytes as keys);
- an integer beyond ±2**53 (float64 may or may not hold it: the reference decides).

``tests/runtime/test_fast_canonical.py`` holds the kernel to the reference on hypothesis states (and
``recorder.format``'s pinned digests). The kernel is compiled once and cached on disk (``cache=True``);
``MatchRuntime`` switches to it after its first few hundred digests, so a short replay never imports numba.
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2b
from typing import Any

import msgpack
import numpy as np
from numba import njit

from recorder.format import canonical_bytes as reference_canonical_bytes
from recorder.format import digest_bytes

__all__ = [
    "canonical_bytes",
    "canonical_digest",
    "compiled_canonical_bytes",
    "compiled_canonical_digest",
    "kernel_bytes",
    "kernel_digest",
]

_MAX_DEPTH = 512  # msgpack's own nesting limit: deeper states never reach the kernel
_GIVE_UP = -1
_TWO53 = 1 << 53
_NEG_ZERO_BITS = np.uint64(0x8000000000000000)


@njit(cache=True, inline="always")
def _emit_float(out, o, value, fview, fbits):
    """float64 ``value`` as msgpack ``0xcb`` at ``o``; returns the next position."""
    fview[0] = value
    bits = fbits[0]
    out[o] = 0xCB
    for j in range(8):
        out[o + 1 + j] = np.uint8((bits >> np.uint64(56 - 8 * j)) & np.uint64(0xFF))
    return o + 9


@njit(cache=True, inline="always")
def _copy(dst, d, src, s, n):
    """``dst[d:d + n] = src[s:s + n]`` (unsigned indexes: no negative-index check, so the loop vectorises)."""
    d = np.uint64(d)
    s = np.uint64(s)
    for j in range(np.uint64(n)):
        dst[d + j] = src[s + j]


@njit(cache=True, inline="always")
def _uint(src, pos, n):
    x = np.uint64(0)
    for j in range(n):
        x = (x << np.uint64(8)) | np.uint64(src[pos + j])
    return x


@njit(cache=True, inline="always")
def _key_less(out, a0, a1, b0, b1):
    """Whether key bytes ``out[a0:a1]`` sort before ``out[b0:b1]`` (bytewise, a prefix first)."""
    na = a1 - a0
    nb = b1 - b0
    n = na if na < nb else nb
    for j in range(n):
        x = out[a0 + j]
        y = out[b0 + j]
        if x != y:
            return x < y
    return na < nb


@njit(cache=True, inline="always")
def _sort_entries(out, tmp, key0, key1, start, end, order, base, top):
    """Rewrite the map entries ``base..top`` (contiguous in ``out``) in key order."""
    count = top - base
    for i in range(count):
        order[i] = base + i
    in_order = True
    for i in range(1, count):  # insertion sort: maps are small and usually nearly sorted
        e = order[i]
        j = i - 1
        while j >= 0 and _key_less(out, key0[e], key1[e], key0[order[j]], key1[order[j]]):
            order[j + 1] = order[j]
            j -= 1
            in_order = False
        order[j + 1] = e
    if in_order:
        return
    region = start[base]
    _copy(tmp, 0, out, region, end[top - 1] - region)
    o = region
    for i in range(count):
        e = order[i]
        _copy(out, o, tmp, start[e] - region, end[e] - start[e])
        o += end[e] - start[e]


@njit(cache=True)
def _canonicalize(src, work, ints):
    """The canonical form of the packed state ``src`` (bytes) written into the start of ``work``: its
    length, or -1 to give up. Few arguments: numba checks the type of each one on every call.

    ``work`` (uint8, ``2 * m + 8`` bytes, ``m`` at least ``9 * len(src) + 16``): the output, then as much
    work space, then one float64's bytes. ``ints`` (int64, ``3 * 512 + 5 * e``, ``e`` at least
    ``len(src) // 2 + 1``): the stack of open containers (kind: 1 map, 2 array; items left, a map counting
    keys and values; first entry), then the entries of the open maps (where each starts and ends in the
    output, where its key's bytes lie, the sort order)."""
    m = (work.shape[0] - 8) // 2
    out = work[:m]
    tmp = work[m : 2 * m]
    fview = work[2 * m : 2 * m + 8].view(np.float64)
    fbits = work[2 * m : 2 * m + 8].view(np.uint64)
    stack = ints[: 3 * _MAX_DEPTH].reshape((3, _MAX_DEPTH))
    e = (ints.shape[0] - 3 * _MAX_DEPTH) // 5
    entries = ints[3 * _MAX_DEPTH :].reshape((5, e))
    return _canonicalize_into(src, out, tmp, stack, entries, fview, fbits)


@njit(cache=True, inline="always")
def _canonicalize_into(src, out, tmp, stack, entries, fview, fbits):
    n_src = len(src)
    kind = stack[0]
    left = stack[1]
    first = stack[2]
    start = entries[0]
    end = entries[1]
    key0 = entries[2]
    key1 = entries[3]
    order = entries[4]
    pos = np.int64(0)
    o = np.int64(0)
    sp = 0
    ne = 0
    while pos < n_src:
        b = np.int64(src[pos])
        if sp > 0 and kind[sp - 1] == 1 and left[sp - 1] % 2 == 0:  # a map key: a string, kept as it is
            if 0xA0 <= b <= 0xBF:
                head, size = 1, b - 0xA0
            elif b == 0xD9:
                head, size = 2, np.int64(src[pos + 1])
            elif b == 0xDA:
                head, size = 3, np.int64(_uint(src, pos + 1, 2))
            elif b == 0xDB:
                head, size = 5, np.int64(_uint(src, pos + 1, 4))
            else:
                return _GIVE_UP
            start[ne] = o
            key0[ne] = o + head
            key1[ne] = o + head + size
            _copy(out, o, src, pos, head + size)
            o += head + size
            pos += head + size
            ne += 1
        elif b <= 0x7F:  # positive fixint
            o = _emit_float(out, o, np.float64(b), fview, fbits)
            pos += 1
        elif b >= 0xE0:  # negative fixint
            o = _emit_float(out, o, np.float64(b - 256), fview, fbits)
            pos += 1
        elif b <= 0x8F or b == 0xDE or b == 0xDF:  # map
            if b <= 0x8F:
                count, head = b - 0x80, 1
            elif b == 0xDE:
                count, head = np.int64(_uint(src, pos + 1, 2)), 3
            else:
                count, head = np.int64(_uint(src, pos + 1, 4)), 5
            _copy(out, o, src, pos, head)
            o += head
            pos += head
            if count > 0:
                if sp == _MAX_DEPTH:
                    return _GIVE_UP
                kind[sp] = 1
                left[sp] = 2 * count
                first[sp] = ne
                sp += 1
                continue
        elif b <= 0x9F or b == 0xDC or b == 0xDD:  # array
            if b <= 0x9F:
                count, head = b - 0x90, 1
            elif b == 0xDC:
                count, head = np.int64(_uint(src, pos + 1, 2)), 3
            else:
                count, head = np.int64(_uint(src, pos + 1, 4)), 5
            pos += head
            if count == 0:
                out[o] = 0x80  # the empty container is the empty map
                o += 1
            else:
                _copy(out, o, src, pos - head, head)
                o += head
                if sp == _MAX_DEPTH:
                    return _GIVE_UP
                kind[sp] = 2
                left[sp] = count
                sp += 1
                continue
        elif b <= 0xBF or b == 0xC4 or b == 0xC5 or b == 0xC6 or b == 0xD9 or b == 0xDA or b == 0xDB:
            if b <= 0xBF:  # str and bin: as they are
                head, size = 1, b - 0xA0
            elif b == 0xC4 or b == 0xD9:
                head, size = 2, np.int64(src[pos + 1])
            elif b == 0xC5 or b == 0xDA:
                head, size = 3, np.int64(_uint(src, pos + 1, 2))
            else:
                head, size = 5, np.int64(_uint(src, pos + 1, 4))
            _copy(out, o, src, pos, head + size)
            o += head + size
            pos += head + size
        elif b == 0xC0 or b == 0xC2 or b == 0xC3:  # nil, false, true
            out[o] = src[pos]
            o += 1
            pos += 1
        elif b == 0xCB:  # float64: -0.0 is 0.0, every other value keeps its bits
            bits = _uint(src, pos + 1, 8)
            if bits == _NEG_ZERO_BITS:
                o = _emit_float(out, o, 0.0, fview, fbits)
            else:
                _copy(out, o, src, pos, 9)
                o += 9
            pos += 9
        elif b == 0xCC or b == 0xCD or b == 0xCE or b == 0xCF:  # unsigned integers
            w = 1 if b == 0xCC else (2 if b == 0xCD else (4 if b == 0xCE else 8))
            u = _uint(src, pos + 1, w)
            if u > np.uint64(_TWO53):
                return _GIVE_UP
            o = _emit_float(out, o, np.float64(u), fview, fbits)
            pos += 1 + w
        elif b == 0xD0 or b == 0xD1 or b == 0xD2 or b == 0xD3:  # signed integers
            w = 1 if b == 0xD0 else (2 if b == 0xD1 else (4 if b == 0xD2 else 8))
            u = _uint(src, pos + 1, w)
            shift = np.uint64(64 - 8 * w)
            v = np.int64(u << shift) >> np.int64(64 - 8 * w)  # sign-extended
            if v < -_TWO53 or v > _TWO53:
                return _GIVE_UP
            o = _emit_float(out, o, np.float64(v), fview, fbits)
            pos += 1 + w
        else:  # float32, ext types, 0xc1: never written by msgpack for a state the reference accepts as is
            return _GIVE_UP
        # one whole value written: close the containers it completes
        while sp > 0:
            top = sp - 1
            left[top] -= 1
            if kind[top] == 1 and left[top] % 2 == 0:
                end[ne - 1] = o  # a map entry is complete
            if left[top] > 0:
                break
            if kind[top] == 1:
                _sort_entries(out, tmp, key0, key1, start, end, order, first[top], ne)
                ne = first[top]
            sp -= 1
        if sp == 0:
            return o if pos == n_src else _GIVE_UP
    return _GIVE_UP


class _Kernel:
    """The packer and the reusable buffers of one process."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer(use_bin_type=True, strict_types=True, default=_tuple_as_list).pack
        self._grow(1 << 12)

    def _grow(self, n_src: int) -> None:
        m = 9 * n_src + 16  # an integer byte becomes 9 bytes at most
        self.work = np.zeros(2 * m + 8, dtype=np.uint8)
        self.view = memoryview(self.work.data)
        self.ints = np.zeros(3 * _MAX_DEPTH + 5 * (n_src // 2 + 1), dtype=np.int64)  # an entry is 2 bytes at least
        self.room = n_src

    def length(self, value: Any) -> int:
        """The canonical form of ``value`` written at the start of ``self.work``: its length, or -1."""
        try:
            packed = self.pack(value)
        except Exception:  # a type, string or number the packer refuses: the reference decides
            return _GIVE_UP
        if b":" in packed and b": 0x" in packed:  # the first test alone (memchr) when no colon at all
            return _GIVE_UP  # a pointer text may need masking: the reference does it
        if len(packed) > self.room:
            self._grow(len(packed))
        return int(_canonicalize(packed, self.work, self.ints))

    def bytes_of(self, value: Any) -> bytes | None:
        n = self.length(value)
        return None if n < 0 else self.view[:n].tobytes()

    def digest_of(self, value: Any) -> int | None:
        n = self.length(value)
        if n < 0:
            return None
        return int.from_bytes(blake2b(self.view[:n], digest_size=8).digest(), "little")

    def digest_or_reference(self, value: Any) -> int:
        """``digest_of``, or the reference's digest where it gives up: ``length`` and ``digest_of`` written
        out in one function, as this runs once per replayed tick."""
        try:
            packed = self.pack(value)
        except Exception:  # a type, string or number the packer refuses: the reference decides
            return digest_bytes(reference_canonical_bytes(value))
        if b":" in packed and b": 0x" in packed:
            return digest_bytes(reference_canonical_bytes(value))
        if len(packed) > self.room:
            self._grow(len(packed))
        n = _canonicalize(packed, self.work, self.ints)
        if n < 0:
            return digest_bytes(reference_canonical_bytes(value))
        return int.from_bytes(blake2b(self.view[:n], digest_size=8).digest(), "little")


def _tuple_as_list(value: Any) -> Any:
    if type(value) is tuple:
        return list(value)
    raise TypeError(f"no fast canonical form for {type(value).__name__}")


_kernel: _Kernel | None = None


def kernel_bytes(value: Any) -> bytes | None:
    """The canonical bytes from the compiled path, or None where it leaves ``value`` to the reference."""
    global _kernel
    if _kernel is None:
        _kernel = _Kernel()
    return _kernel.bytes_of(value)


def canonical_bytes(value: Any) -> bytes:
    """``recorder.format.canonical_bytes(value)``, from the compiled path where it applies."""
    data = kernel_bytes(value)
    return reference_canonical_bytes(value) if data is None else data


def kernel_digest(value: Any) -> int | None:
    """``digest_bytes`` of the canonical bytes from the compiled path (hashed where they were written, never
    copied into a ``bytes``), or None where it leaves ``value`` to the reference."""
    global _kernel
    if _kernel is None:
        _kernel = _Kernel()
    return _kernel.digest_of(value)


def canonical_digest(value: Any) -> int:
    """``recorder.format.digest_bytes(recorder.format.canonical_bytes(value))``, compiled where it applies."""
    global _kernel
    if _kernel is None:
        _kernel = _Kernel()
    return _kernel.digest_or_reference(value)


def compiled_canonical_digest() -> Callable[[Any], int]:
    """``canonical_digest`` without its own call: the kernel's method (the kernel made now if need be)."""
    global _kernel
    if _kernel is None:
        _kernel = _Kernel()
    return _kernel.digest_or_reference


def compiled_canonical_bytes() -> Callable[[Any], bytes] | None:
    """``canonical_bytes`` with its kernel loaded (compiled on the first use on a machine, then cached on
    disk), or None when it cannot run compiled (``NUMBA_DISABLE_JIT``, or the kernel fails to load)."""
    from numba.core import config

    if getattr(config, "DISABLE_JIT", False):
        return None
    try:
        kernel_bytes({"": [0, 0.5]})
    except Exception:  # numba or its cache failed here: the reference does the work
        return None
    return canonical_bytes
