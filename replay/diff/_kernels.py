"""numba kernels for state diffing, each a small private ``_kernel`` behind a validating function.

The kernels walk msgpack bytes (``recorder.format.canonical_bytes``, or plain ``msgpack.packb`` of a
state whose maps have string keys) and compute exactly what ``recorder.format._canonical`` computes in Python:

- ``snapshot_digests``: BLAKE2b-64 of each blob, equal to ``recorder.format.digest_bytes`` (serial or
  ``prange``);
- ``flatten_bytes``: the leaves as ``(path_hash, value_bits)`` arrays sorted by hash, equal to
  ``recorder.format.flatten`` minus the readable paths (numbers normalised the same way, so plain msgpack
  of ``{"hp": 3}`` flattens like canonical ``{"hp": 3.0}``);
- ``content_digests``: a 64-bit digest of each blob's sorted leaves (independent of map key order, so it
  works on plain msgpack), serial or ``prange``;
- ``first_difference``: the first index where two digest arrays differ;
- ``merge_diff``: the differing entries of two sorted leaf arrays, floats bit-exact or within a tolerance;
- ``first_divergence``: the first blob pair holding different states: equal bytes are skipped at memory
  speed, the others flattened and merged (bit-exact or within a float tolerance).

Blobs travel as ``Packed`` (one ``uint8`` buffer and ``int64`` offsets). No kernel uses fastmath; all are
compiled once and cached on disk (``cache=True``). With ``NUMBA_DISABLE_JIT=1`` they run as plain Python
(numpy scalars), which the test suite does once so every line is checked without the compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from recorder.format._canonical import EMPTY_BITS, FALSE_BITS, NIL_BITS, ROOT_HASH, TRUE_BITS
from replay.errors import SnapshotError

__all__ = [
    "Packed",
    "pack",
    "snapshot_digests",
    "flatten_bytes",
    "content_digests",
    "content_digests_checked",
    "first_difference",
    "merge_diff",
    "first_divergence",
    "first_divergence_checked",
    "BAD_KEY",
    "BAD_KEY_PROBLEM",
    "MAX_DEPTH",
]

#: Deepest container nesting the flattening kernel follows.
MAX_DEPTH = 512
_BLOCK = 256  # elements per block in the scans

_U = np.uint64
_FNV_OFFSET = _U(0xCBF29CE484222325)
_FNV_PRIME = _U(0x100000001B3)
_GOLDEN = _U(0x9E3779B97F4A7C15)
_FMIX1 = _U(0xFF51AFD7ED558CCD)
_FMIX2 = _U(0xC4CEB9FE1A85EC53)
_TAG_KEY = _U(0x6B)
_TAG_INDEX = _U(0x69)
_TAG_STR = _U(0x73)
_TAG_BIN = _U(0x62)
_TAG_INT = _U(0x6E)
_TAG_NEG = _U(0x6D)
_BOX = _U(0xFFF0000000000000)
_MANTISSA = _U(0x000FFFFFFFFFFFFF)
_QNAN_MANTISSA = _U(1 << 51)
_EXP_MASK = _U(0x7FF)
_NEG_ZERO = _U(0x8000000000000000)
_TWO53 = _U(1 << 53)
_ROOT = _U(ROOT_HASH)
_NIL = _U(NIL_BITS)
_TRUE = _U(TRUE_BITS)
_FALSE = _U(FALSE_BITS)
_EMPTY = _U(EMPTY_BITS)
_CONTENT_SEED = _U(0x636F6E74656E74)  # "content"
_ZERO = _U(0)
_ONE = _U(1)
_S8 = _U(8)
_S29 = _U(29)
_S32 = _U(32)
_S33 = _U(33)
_S52 = _U(52)
_S63 = _U(63)
_S64 = _U(64)

# error codes returned by the flattening kernel
_OK, _TRUNCATED, _BAD_TYPE, _BAD_KEY, _TOO_DEEP, _TRAILING, _DUPLICATE = range(7)
#: Error code of a map key that is not a string (plain msgpack of a Lua sequence kept as a dict).
BAD_KEY = _BAD_KEY
BAD_KEY_PROBLEM = "map key is not a string"
_PROBLEMS = {
    _TRUNCATED: "msgpack ends in the middle of a value",
    _BAD_TYPE: "msgpack type byte not allowed in a state (ext types and 0xc1 are not)",
    _BAD_KEY: BAD_KEY_PROBLEM,
    _TOO_DEEP: f"containers nested deeper than {MAX_DEPTH}",
    _TRAILING: "bytes left over after the state",
    _DUPLICATE: "two leaves have the same path (a duplicate map key)",
}

# ---------------------------------------------------------------- hashing


@njit(cache=True)
def _fmix64(k):
    k ^= k >> _S33
    k *= _FMIX1
    k ^= k >> _S33
    k *= _FMIX2
    k ^= k >> _S33
    return k


@njit(cache=True)
def _fnv1a(buf, start, end):
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ _U(buf[i])) * _FNV_PRIME
    return h


@njit(cache=True)
def _child(parent, component, tag):
    return _fmix64(parent * _GOLDEN + component + tag)


@njit(cache=True)
def _box(h):
    m = h & _MANTISSA
    if m == _ZERO or m == _QNAN_MANTISSA:
        m |= _ONE
    return _BOX | m


# ---------------------------------------------------------------- BLAKE2b-64

_IV = np.array(
    [
        0x6A09E667F3BCC908,
        0xBB67AE8584CAA73B,
        0x3C6EF372FE94F82B,
        0xA54FF53A5F1D36F1,
        0x510E527FADE682D1,
        0x9B05688C2B3E6C1F,
        0x1F83D9ABFB41BD6B,
        0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)
_SIGMA = np.array(
    [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ],
    dtype=np.int64,
)
_R24, _R16 = _U(24), _U(16)
_PARAM = _U(0x01010008)  # digest length 8, no key, fanout 1, depth 1


@njit(cache=True)
def _rotr(x, n):
    return (x >> n) | (x << (_S64 - n))


@njit(cache=True)
def _g(v, a, b, c, d, x, y):
    v[a] = v[a] + v[b] + x
    v[d] = _rotr(v[d] ^ v[a], _S32)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], _R24)
    v[a] = v[a] + v[b] + y
    v[d] = _rotr(v[d] ^ v[a], _R16)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], _S63)


@njit(cache=True)
def _compress(h, m, v, t, last):
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = _IV[i]
    v[12] ^= t
    if last:
        v[14] = ~v[14]
    for r in range(12):
        s = _SIGMA[r % 10]
        _g(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _g(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _g(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _g(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


@njit(cache=True)
def _blake2b64(buf, start, end):
    h = _IV.copy()
    h[0] ^= _PARAM
    m = np.zeros(16, dtype=np.uint64)
    v = np.zeros(16, dtype=np.uint64)
    pos = start
    t = _ZERO
    while end - pos > 128:  # every block but the last
        for w in range(16):
            x = _ZERO
            for j in range(8):
                x |= _U(buf[pos + 8 * w + j]) << _U(8 * j)
            m[w] = x
        t += _U(128)
        _compress(h, m, v, t, False)
        pos += 128
    for w in range(16):
        x = _ZERO
        for j in range(8):
            i = pos + 8 * w + j
            if i < end:
                x |= _U(buf[i]) << _U(8 * j)
        m[w] = x
    t += _U(end - pos)
    _compress(h, m, v, t, True)
    return h[0]


@njit(cache=True)
def _digests_serial(buf, offsets, out):
    for i in range(out.shape[0]):
        out[i] = _blake2b64(buf, offsets[i], offsets[i + 1])


@njit(cache=True, parallel=True)
def _digests_parallel(buf, offsets, out):
    for i in prange(out.shape[0]):
        out[i] = _blake2b64(buf, offsets[i], offsets[i + 1])


# ---------------------------------------------------------------- walking msgpack


@njit(cache=True)
def _read_uint(buf, pos, n):
    """Big-endian unsigned integer of ``n`` bytes at ``pos`` (caller checks bounds)."""
    x = _ZERO
    for j in range(n):
        x = (x << _S8) | _U(buf[pos + j])
    return x


@njit(cache=True)
def _int_bits(u, negative, fbits, fview):
    """Leaf bits of an integer (``u`` its 64-bit two's complement): float64 bits when exact, else boxed."""
    mag = (~u + _ONE) if negative else u
    core = mag
    if core != _ZERO:
        while (core & _ONE) == _ZERO:
            core >>= _ONE
    if core < _TWO53:
        fview[0] = -np.float64(mag) if negative else np.float64(mag)
        if fbits[0] == _NEG_ZERO:
            return _ZERO
        return fbits[0]
    if negative:
        return _box(_fmix64(u ^ _TAG_NEG))
    return _box(_fmix64(u ^ _TAG_INT))


@njit(cache=True)
def _scalar(buf, pos, end, fbits, fview, f32bits, f32view):
    """Decode the scalar or container head at ``pos``.

    Returns ``(kind, value, next_pos, code)``: kind 0 leaf (value = bits), 1 map, 2 array (value = count).
    """
    b = np.int64(buf[pos])
    pos += 1
    if b <= 0x7F:
        return 0, _int_bits(_U(b), False, fbits, fview), pos, _OK
    if b >= 0xE0:
        return 0, _int_bits(_U(b) | _U(0xFFFFFFFFFFFFFF00), True, fbits, fview), pos, _OK
    if b <= 0x8F:
        return 1, _U(b - 0x80), pos, _OK
    if b <= 0x9F:
        return 2, _U(b - 0x90), pos, _OK
    if b <= 0xBF:
        n = b - 0xA0
        if pos + n > end:
            return 0, _ZERO, pos, _TRUNCATED
        return 0, _box(_fmix64(_fnv1a(buf, pos, pos + n) ^ _TAG_STR)), pos + n, _OK
    if b == 0xC0:
        return 0, _NIL, pos, _OK
    if b == 0xC2:
        return 0, _FALSE, pos, _OK
    if b == 0xC3:
        return 0, _TRUE, pos, _OK
    if b == 0xC4 or b == 0xC5 or b == 0xC6 or b == 0xD9 or b == 0xDA or b == 0xDB:
        w = 1 if (b == 0xC4 or b == 0xD9) else (2 if (b == 0xC5 or b == 0xDA) else 4)
        if pos + w > end:
            return 0, _ZERO, pos, _TRUNCATED
        n = np.int64(_read_uint(buf, pos, w))
        pos += w
        if pos + n > end:
            return 0, _ZERO, pos, _TRUNCATED
        tag = _TAG_BIN if b <= 0xC6 else _TAG_STR
        return 0, _box(_fmix64(_fnv1a(buf, pos, pos + n) ^ tag)), pos + n, _OK
    if b == 0xCA:
        if pos + 4 > end:
            return 0, _ZERO, pos, _TRUNCATED
        f32bits[0] = np.uint32(_read_uint(buf, pos, 4))
        fview[0] = np.float64(f32view[0])
        bits = _ZERO if fbits[0] == _NEG_ZERO else fbits[0]
        return 0, bits, pos + 4, _OK
    if b == 0xCB:
        if pos + 8 > end:
            return 0, _ZERO, pos, _TRUNCATED
        bits = _read_uint(buf, pos, 8)
        if bits == _NEG_ZERO:
            bits = _ZERO
        return 0, bits, pos + 8, _OK
    if 0xCC <= b <= 0xD3:
        signed = b >= 0xD0
        width = 1 << ((b - 0xD0) if signed else (b - 0xCC))
        if pos + width > end:
            return 0, _ZERO, pos, _TRUNCATED
        u = _read_uint(buf, pos, width)
        negative = False
        if signed and (u >> _U(8 * width - 1)) & _ONE == _ONE:
            negative = True
            if width < 8:
                u |= ~((_ONE << _U(8 * width)) - _ONE)
        return 0, _int_bits(u, negative, fbits, fview), pos + width, _OK
    if b == 0xDC or b == 0xDD or b == 0xDE or b == 0xDF:
        w = 2 if (b == 0xDC or b == 0xDE) else 4
        if pos + w > end:
            return 0, _ZERO, pos, _TRUNCATED
        kind = 2 if b <= 0xDD else 1
        return kind, _read_uint(buf, pos, w), pos + w, _OK
    return 0, _ZERO, pos - 1, _BAD_TYPE


@njit(cache=True)
def _key(buf, pos, end):
    """FNV-1a of the str map key at ``pos``: ``(hash, next_pos, code)``."""
    b = np.int64(buf[pos])
    if 0xA0 <= b <= 0xBF:
        n = b - 0xA0
        pos += 1
    elif b == 0xD9 or b == 0xDA or b == 0xDB:
        w = 1 if b == 0xD9 else (2 if b == 0xDA else 4)
        if pos + 1 + w > end:
            return _ZERO, pos, _TRUNCATED
        n = np.int64(_read_uint(buf, pos + 1, w))
        pos += 1 + w
    else:
        return _ZERO, pos, _BAD_KEY
    if pos + n > end:
        return _ZERO, pos, _TRUNCATED
    return _fnv1a(buf, pos, pos + n), pos + n, _OK


@njit(cache=True)
def _flatten_into(buf, start, end, hashes, bits):
    """Leaves of the msgpack value in ``buf[start:end]`` into ``hashes``/``bits`` (unsorted).

    ``hashes``/``bits`` need ``end - start`` slots (every leaf takes at least one byte).
    Returns ``(count, code, byte_offset_of_problem)``.
    """
    fbits = np.zeros(1, dtype=np.uint64)
    fview = fbits.view(np.float64)
    f32bits = np.zeros(1, dtype=np.uint32)
    f32view = f32bits.view(np.float32)
    st_hash = np.empty(MAX_DEPTH, dtype=np.uint64)
    st_left = np.empty(MAX_DEPTH, dtype=np.uint64)
    st_map = np.empty(MAX_DEPTH, dtype=np.bool_)
    st_index = np.empty(MAX_DEPTH, dtype=np.int64)
    sp = 0
    n = 0
    pos = start
    root_done = False
    while True:
        if sp == 0:
            if root_done:
                break
            h = _ROOT
            root_done = True
        else:
            top = sp - 1
            if st_left[top] == _ZERO:
                sp -= 1
                continue
            st_left[top] -= _ONE
            if pos >= end:
                return n, _TRUNCATED, pos
            if st_map[top]:
                kh, pos, code = _key(buf, pos, end)
                if code != _OK:
                    return n, code, pos
                h = _child(st_hash[top], kh, _TAG_KEY)
            else:
                h = _child(st_hash[top], _fmix64(_U(st_index[top])), _TAG_INDEX)
                st_index[top] += 1
            if pos >= end:
                return n, _TRUNCATED, pos
        if pos >= end:
            return n, _TRUNCATED, pos
        kind, value, pos, code = _scalar(buf, pos, end, fbits, fview, f32bits, f32view)
        if code != _OK:
            return n, code, pos
        if kind == 0 or value == _ZERO:
            hashes[n] = h
            bits[n] = value if kind == 0 else _EMPTY
            n += 1
        else:
            if sp == MAX_DEPTH:
                return n, _TOO_DEEP, pos
            st_hash[sp] = h
            st_left[sp] = value
            st_map[sp] = kind == 1
            st_index[sp] = 0
            sp += 1
    if pos != end:
        return n, _TRAILING, pos
    return n, _OK, pos


@njit(cache=True)
def _flatten_sorted(buf, start, end):
    cap = max(end - start, 1)
    hs = np.empty(cap, dtype=np.uint64)
    bs = np.empty(cap, dtype=np.uint64)
    n, code, at = _flatten_into(buf, start, end, hs, bs)
    if code != _OK:
        return hs[:0], bs[:0], code, at
    order = np.argsort(hs[:n])
    hs2 = hs[:n][order]
    bs2 = bs[:n][order]
    for i in range(1, n):
        if hs2[i] == hs2[i - 1]:
            return hs[:0], bs[:0], _DUPLICATE, start
    return hs2, bs2, _OK, end


@njit(cache=True)
def _content_digest(hs, bs):
    d = _CONTENT_SEED
    for i in range(hs.shape[0]):
        d = _fmix64(d * _GOLDEN + hs[i])
        d = _fmix64(d * _GOLDEN + bs[i])
    return _fmix64(d + _U(hs.shape[0]))


@njit(cache=True)
def _content_serial(buf, offsets, out, codes, where):
    for i in range(out.shape[0]):
        hs, bs, code, at = _flatten_sorted(buf, offsets[i], offsets[i + 1])
        codes[i] = code
        where[i] = at
        out[i] = _content_digest(hs, bs)


@njit(cache=True, parallel=True)
def _content_parallel(buf, offsets, out, codes, where):
    for i in prange(out.shape[0]):
        hs, bs, code, at = _flatten_sorted(buf, offsets[i], offsets[i + 1])
        codes[i] = code
        where[i] = at
        out[i] = _content_digest(hs, bs)


# ---------------------------------------------------------------- comparing


@njit(cache=True)
def _first_difference(a, b):
    n = min(a.shape[0], b.shape[0])
    i = 0
    while i + _BLOCK <= n:  # a branch-free OR of XORs per block vectorises; find the index after
        acc = _ZERO
        for k in range(i, i + _BLOCK):
            acc |= a[k] ^ b[k]
        if acc != _ZERO:
            break
        i += _BLOCK
    for k in range(i, n):
        if a[k] != b[k]:
            return k
    if a.shape[0] != b.shape[0]:
        return n
    return -1


@njit(cache=True)
def _same(x, y, rel, abs_, fbits, fview):
    if x == y:
        return True
    if rel == 0.0 and abs_ == 0.0:
        return False
    if (x >> _S52) & _EXP_MASK == _EXP_MASK or (y >> _S52) & _EXP_MASK == _EXP_MASK:
        return False  # NaN, infinities and boxed non-floats compare bit-exact
    fbits[0] = x
    fx = fview[0]
    fbits[0] = y
    fy = fview[0]
    return abs(fx - fy) <= max(abs_, rel * max(abs(fx), abs(fy)))


@njit(cache=True)
def _merge_diff(ha, ba, hb, bb, rel, abs_, out_a, out_b, limit):
    """Indices of differing leaves (-1: absent on that side); stops after ``limit`` differences."""
    fbits = np.zeros(1, dtype=np.uint64)
    fview = fbits.view(np.float64)
    i = 0
    j = 0
    k = 0
    na = ha.shape[0]
    nb = hb.shape[0]
    while (i < na or j < nb) and k < limit:
        if i < na and j < nb and ha[i] == hb[j]:
            if not _same(ba[i], bb[j], rel, abs_, fbits, fview):
                out_a[k] = i
                out_b[k] = j
                k += 1
            i += 1
            j += 1
        elif j >= nb or (i < na and ha[i] < hb[j]):
            out_a[k] = i
            out_b[k] = -1
            k += 1
            i += 1
        else:
            out_a[k] = -1
            out_b[k] = j
            k += 1
            j += 1
    return k


@njit(cache=True)
def _same_bytes(buf_a, sa, ea, buf_b, sb, eb):
    n = ea - sa
    if n != eb - sb:
        return False
    w = n // 8  # compare 8-byte words (unaligned views are fine on the platforms numba targets) ...
    va = buf_a[sa : sa + 8 * w].view(np.uint64)
    vb = buf_b[sb : sb + 8 * w].view(np.uint64)
    k = 0
    while k + _BLOCK <= w:  # ... as an OR of XORs per block, which vectorises (an early exit per word would not)
        acc = _ZERO
        for j in range(k, k + _BLOCK):
            acc |= va[j] ^ vb[j]
        if acc != _ZERO:
            return False
        k += _BLOCK
    for j in range(k, w):
        if va[j] != vb[j]:
            return False
    for j in range(8 * w, n):
        if buf_a[sa + j] != buf_b[sb + j]:
            return False
    return True


@njit(cache=True)
def _first_divergence(buf_a, off_a, buf_b, off_b, start, rel, abs_):
    """First index >= ``start`` whose states differ: ``(index, code, side, byte_offset)``.

    Equal bytes are equal states; blobs whose bytes differ are flattened and merged (they may hold the same
    state in another key order, or floats within the tolerance).
    """
    n = min(off_a.shape[0], off_b.shape[0]) - 1
    one_a = np.empty(1, dtype=np.int64)
    one_b = np.empty(1, dtype=np.int64)
    for t in range(start, n):
        if _same_bytes(buf_a, off_a[t], off_a[t + 1], buf_b, off_b[t], off_b[t + 1]):
            continue
        ha, ba, code, at = _flatten_sorted(buf_a, off_a[t], off_a[t + 1])
        if code != _OK:
            return t, code, 0, at
        hb, bb, code, at = _flatten_sorted(buf_b, off_b[t], off_b[t + 1])
        if code != _OK:
            return t, code, 1, at
        if _merge_diff(ha, ba, hb, bb, rel, abs_, one_a, one_b, 1) > 0:
            return t, _OK, 0, 0
    if off_a.shape[0] != off_b.shape[0]:
        return n, _OK, 0, 0
    return -1, _OK, 0, 0


# ---------------------------------------------------------------- validating wrappers


@dataclass(frozen=True, slots=True)
class Packed:
    """Blobs laid end to end: blob ``i`` is ``buf[offsets[i]:offsets[i + 1]]``."""

    buf: np.ndarray  # uint8, C-contiguous
    offsets: np.ndarray  # int64, len(blobs) + 1, non-decreasing

    def __post_init__(self) -> None:
        _check_array("buf", self.buf, np.uint8, 1)
        _check_array("offsets", self.offsets, np.int64, 1)
        o = self.offsets
        if o.shape[0] < 1 or o[0] < 0 or o[-1] > self.buf.shape[0] or (o.shape[0] > 1 and np.any(np.diff(o) < 0)):
            raise ValueError("offsets must start at >= 0, never decrease and end within buf")

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def blob(self, i: int) -> bytes:
        return self.buf[self.offsets[i] : self.offsets[i + 1]].tobytes()


def pack(blobs: Sequence[bytes]) -> Packed:
    """Lay ``blobs`` end to end."""
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8) if offsets[-1] else np.zeros(0, dtype=np.uint8)
    return Packed(np.ascontiguousarray(buf), offsets)


def _check_array(name: str, a: object, dtype: type, ndim: int) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(a).__name__}")
    if a.dtype != dtype or a.ndim != ndim or not a.flags.c_contiguous:
        raise TypeError(f"{name} must be a C-contiguous {ndim}-d {np.dtype(dtype).name} array, got {a.dtype} {a.shape}")


def _as_bytes_array(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        _check_array("data", data, np.uint8, 1)
        return data
    return np.frombuffer(bytes(data), dtype=np.uint8)


def _raise(code: int, at: int, blob: int | None = None) -> None:
    raise SnapshotError(blob, int(at), _PROBLEMS[int(code)])


def snapshot_digests(blobs: Packed, parallel: bool = True) -> np.ndarray:
    """BLAKE2b-64 of every blob (``recorder.format.digest_bytes``), as ``uint64``."""
    out = np.empty(len(blobs), dtype=np.uint64)
    with np.errstate(over="ignore"):
        (_digests_parallel if parallel else _digests_serial)(blobs.buf, blobs.offsets, out)
    return out


def flatten_bytes(data: bytes | bytearray | memoryview | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(path_hashes, value_bits)`` of one msgpack state, sorted by hash (``recorder.format.flatten``)."""
    buf = _as_bytes_array(data)
    with np.errstate(over="ignore"):
        hs, bs, code, at = _flatten_sorted(buf, 0, buf.shape[0])
    if code != _OK:
        _raise(code, at)
    return hs, bs


def content_digests(blobs: Packed, parallel: bool = True) -> np.ndarray:
    """A 64-bit digest of each blob's sorted leaves: equal states give equal digests, whatever the key order."""
    out, bad, codes, where = _content(blobs, parallel)
    if bad.size:
        i = int(bad[0])
        _raise(codes[i], where[i] - blobs.offsets[i], i)
    return out


def content_digests_checked(blobs: Packed, parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``content_digests`` that reports instead of raising: ``(digests, indices of blobs that failed)``."""
    out, bad, _, _ = _content(blobs, parallel)
    return out, bad


def _content(blobs: Packed, parallel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(blobs)
    out = np.empty(n, dtype=np.uint64)
    codes = np.zeros(n, dtype=np.int64)
    where = np.zeros(n, dtype=np.int64)
    with np.errstate(over="ignore"):
        (_content_parallel if parallel else _content_serial)(blobs.buf, blobs.offsets, out, codes, where)
    return out, np.flatnonzero(codes), codes, where


def first_difference(a: np.ndarray, b: np.ndarray) -> int:
    """First index where ``a`` and ``b`` differ; ``min(len)`` when one is a prefix of the other; -1 if equal."""
    _check_array("a", a, np.uint64, 1)
    _check_array("b", b, np.uint64, 1)
    return int(_first_difference(a, b))


def _check_tolerance(rel: float, abs_: float) -> tuple[float, float]:
    rel, abs_ = float(rel), float(abs_)
    if not (rel >= 0.0 and abs_ >= 0.0) or rel == float("inf") or abs_ == float("inf"):
        raise ValueError(f"float tolerances must be finite and >= 0, got rel={rel} abs={abs_}")
    return rel, abs_


def merge_diff(
    ha: np.ndarray, ba: np.ndarray, hb: np.ndarray, bb: np.ndarray, rel: float = 0.0, abs_: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Differing leaves of two sorted leaf arrays, as index arrays into each side (-1: absent there).

    Values are equal when their bits are equal (NaN equals NaN bit for bit) or, with a tolerance, when both
    are finite floats and ``|a - b| <= max(abs_, rel * max(|a|, |b|))``.
    """
    for name, arr in (("ha", ha), ("ba", ba), ("hb", hb), ("bb", bb)):
        _check_array(name, arr, np.uint64, 1)
    if ha.shape != ba.shape or hb.shape != bb.shape:
        raise ValueError("each side needs as many value bits as path hashes")
    for name, h in (("ha", ha), ("hb", hb)):
        if h.shape[0] > 1 and not bool(np.all(h[1:] > h[:-1])):
            raise ValueError(f"{name} must be strictly increasing (sorted, no duplicate paths)")
    rel, abs_ = _check_tolerance(rel, abs_)
    limit = ha.shape[0] + hb.shape[0]
    out_a = np.empty(limit, dtype=np.int64)
    out_b = np.empty(limit, dtype=np.int64)
    k = _merge_diff(ha, ba, hb, bb, rel, abs_, out_a, out_b, limit)
    return out_a[:k].copy(), out_b[:k].copy()


def first_divergence(a: Packed, b: Packed, rel: float = 0.0, abs_: float = 0.0, start: int = 0) -> int:
    """First index >= ``start`` whose states differ (-1: none; ``min(len)`` when one is a prefix of the other).

    Blobs with equal bytes are skipped at memory speed; the others are flattened and compared leaf by leaf,
    floats bit-exact or within the tolerance. Raises ``SnapshotError`` (with ``blob`` set) for bytes the
    flattening kernel rejects; ``first_divergence_checked`` reports instead.
    """
    t, code, side, at = first_divergence_checked(a, b, rel, abs_, start)
    if code != _OK:
        blobs = b if side else a
        _raise(code, at - blobs.offsets[t], t)
    return t


def first_divergence_checked(
    a: Packed, b: Packed, rel: float = 0.0, abs_: float = 0.0, start: int = 0
) -> tuple[int, int, int, int]:
    """``first_divergence`` that returns ``(index, error_code, side, absolute_byte_offset)`` (code 0: fine)."""
    rel, abs_ = _check_tolerance(rel, abs_)
    if start < 0:
        raise ValueError("start must be >= 0")
    with np.errstate(over="ignore"):
        t, code, side, at = _first_divergence(a.buf, a.offsets, b.buf, b.offsets, start, rel, abs_)
    return int(t), int(code), int(side), int(at)
