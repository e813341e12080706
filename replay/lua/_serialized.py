"""Canonical bytes of a Lua state at compiled speed: LuaJIT's serializer in C, then one numba pass.

``canonical.lua`` writes the canonical bytes in Lua (in LuaJIT's interpreter: about 12 µs for the arena's
state). Here ``string.buffer.encode`` (LuaJIT's own serializer, raw reads, no metamethods) writes the state in
its format (https://luajit.org/ext_buffer.html#serialize_format) at C speed, and a numba kernel rewrites
those bytes into the canonical form by the rules ``canonical.lua`` follows (``lua_to_plain`` then
``canonicalize``): a table with a positive whole key below 2^26 is the array from 1 to its highest such key
(holes nil, other keys dropped); any other table the map of its string keys in the order of their bytes,
the empty table the empty map; every number float64 (-0 as 0); strings msgpack str.

The kernel gives up (and ``canonical.lua`` decides, which may leave the state to the reference path) wherever
the rules need more than that, so the bytes are the reference's in every case:

- the serializer refuses the state: a function, userdata or thread, nesting deeper than 100 (a cycle too);
- a string with a byte above 0x7f, a string value holding ``: 0x`` (a pointer text), a NaN;
- a key that is not a string or number, a number key outside the array rule in a table without an array;
- what the serializer writes for FFI data and light userdata;
- an output larger than the work space (a sparse array of many holes), a map of more than
  ``_MAX_SORTED`` keys, nesting deeper than ``_MAX_DEPTH``, a serialized state over ``_MAX_SERIALIZED`` bytes
  (the work space is about 60 times the input's size).

``tests/lua/test_canonical_lua.py`` holds the kernel to ``canonical.lua`` and the reference path on generated
states. ``MatchRuntime`` asks for it only once the process has loaded the compiled canonical walk
(``replay.runtime._fast_canonical``): numba is imported then, and its price paid.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from replay.runtime._fast_canonical import _copy, _key_less

__all__ = ["SerializedKernel"]

_GIVE_UP = -1
_MAX_DEPTH = 128  # the serializer's own limit is 100
_MAX_SORTED = 512  # keys of one map: sorted by insertion
_MAX_SERIALIZED = 1 << 20  # bytes: larger states are canonical.lua's (the arena's is under 2,000)
_ARRAY_END = 67108864.0  # 2^26: gopher-lua's MaxArrayIndex
_OTHER_KEY = -2  # a number key outside the array rule
_STRING_KEY = -1
# tags of LuaJIT's serialization format
_NIL, _FALSE, _TRUE, _NUM, _TAB, _STR = 0x00, 0x01, 0x02, 0x07, 0x08, 0x20


@njit(cache=True, inline="always")
def _read_u(src, pos):
    """LuaJIT's prefix-encoded unsigned number at ``pos``: (value, next position); (-1, pos) past the end."""
    n = len(src)
    if pos >= n:
        return -1, pos
    b = np.int64(src[pos])
    if b < 0xE0:
        return b, pos + 1
    if b != 0xFF:
        if pos + 1 >= n:
            return -1, pos
        return (((b & 0x1F) << 8) | np.int64(src[pos + 1])) + 0xE0, pos + 2
    if pos + 4 >= n:
        return -1, pos
    v = np.int64(src[pos + 1]) | (np.int64(src[pos + 2]) << 8) | (np.int64(src[pos + 3]) << 16)
    return v | (np.int64(src[pos + 4]) << 24), pos + 5


@njit(cache=True, inline="always")
def _le64(src, pos):
    x = np.uint64(0)
    for j in range(8):
        x |= np.uint64(src[pos + j]) << np.uint64(8 * j)
    return x


@njit(cache=True, inline="always")
def _head(out, o, n, fix, b16, b32):
    """A msgpack str/map/array head for ``n`` items (``fix`` below 16 or 32, the caller's limit checked)."""
    if n < 65536:
        out[o] = b16
        out[o + 1] = np.uint8(n >> 8)
        out[o + 2] = np.uint8(n & 0xFF)
        return o + 3
    out[o] = b32
    for j in range(4):
        out[o + 1 + j] = np.uint8((n >> (24 - 8 * j)) & 0xFF)
    return o + 5


@njit(cache=True, inline="always")
def _str_head(out, o, size):
    """A msgpack str head for ``size`` bytes (fixstr, str 8, 16 or 32), as msgpack writes it."""
    if size < 32:
        out[o] = np.uint8(0xA0 + size)
        return o + 1
    if size < 256:
        out[o] = 0xD9
        out[o + 1] = np.uint8(size)
        return o + 2
    return _head(out, o, size, 0xA0, 0xDA, 0xDB)


@njit(cache=True, inline="always")
def _container_head(out, o, n, fix, b16, b32):
    if n < 16:
        out[o] = np.uint8(fix + n)
        return o + 1
    return _head(out, o, n, fix, b16, b32)


@njit(cache=True, inline="always")
def _head_size(n, small):
    return 1 if n < small else (3 if n < 65536 else 5)


@njit(cache=True)
def _transcode(src, work, ints):
    """The canonical form of the serialized state ``src`` written into the start of ``work``: its length, or
    -1 to give up. ``work`` (uint8, ``2 * m`` bytes): the output, then as much work space. ``ints`` (int64,
    ``9 * _MAX_DEPTH + 5 * e + m + 1``, ``e`` at least ``len(src) + 1``): the open tables, the entries of the
    open tables (where each starts and ends in the output, where its key's bytes lie, its array index), the
    array slots of the table being closed."""
    m = work.shape[0] // 2
    out = work[:m]
    tmp = work[m : 2 * m]
    frames = ints[: 9 * _MAX_DEPTH].reshape((9, _MAX_DEPTH))
    tstart = frames[0]  # where the table's entries begin in the output
    first = frames[1]  # its first entry
    arr_left = frames[2]  # array objects still to read
    next_idx = frames[3]  # the index of the next one
    hash_left = frames[4]  # hash keys and values still to read
    maxn = frames[5]  # the highest array index seen
    others = frames[6]  # number keys outside the array rule
    e = (ints.shape[0] - 9 * _MAX_DEPTH - m - 1) // 5
    entries = ints[9 * _MAX_DEPTH : 9 * _MAX_DEPTH + 5 * e].reshape((5, e))
    start = entries[0]
    end = entries[1]
    key0 = entries[2]
    key1 = entries[3]
    index = entries[4]
    slots = ints[9 * _MAX_DEPTH + 5 * e :]
    scratch = np.zeros(1, dtype=np.uint64)
    as_float = scratch.view(np.float64)
    n_src = len(src)
    pos = np.int64(0)
    o = np.int64(0)
    sp = 0
    ne = 0
    done = False
    while not done:
        if sp > 0:
            t = sp - 1
            if arr_left[t] > 0:  # an array object: its index is its key
                if pos >= n_src:
                    return _GIVE_UP
                arr_left[t] -= 1
                i = next_idx[t]
                next_idx[t] += 1
                if src[pos] == _NIL:  # a hole
                    pos += 1
                    continue
                if ne == e:
                    return _GIVE_UP
                start[ne] = o
                if i >= 1 and i < _ARRAY_END:
                    index[ne] = i
                    if i > maxn[t]:
                        maxn[t] = i
                else:  # t[0], or past the array rule
                    index[ne] = _OTHER_KEY
                    others[t] += 1
                ne += 1
            elif hash_left[t] > 0:  # a key, then its value
                hash_left[t] -= 1
                if ne == e:
                    return _GIVE_UP
                tag, pos = _read_u(src, pos)
                start[ne] = o
                if tag >= _STR:
                    size = tag - _STR
                    if pos + size > n_src or o + 5 + size > m:
                        return _GIVE_UP
                    for j in range(size):
                        if src[pos + j] > 0x7F:
                            return _GIVE_UP
                    o = _str_head(out, o, size)
                    key0[ne] = o
                    _copy(out, o, src, pos, size)
                    o += size
                    pos += size
                    key1[ne] = o
                    index[ne] = _STRING_KEY
                elif tag == _NUM:
                    if pos + 8 > n_src:
                        return _GIVE_UP
                    scratch[0] = _le64(src, pos)
                    pos += 8
                    k = as_float[0]
                    if k >= 1.0 and k < _ARRAY_END and k == np.floor(k):
                        index[ne] = np.int64(k)
                        if index[ne] > maxn[t]:
                            maxn[t] = index[ne]
                    else:
                        index[ne] = _OTHER_KEY
                        others[t] += 1
                else:  # booleans, tables, FFI data as keys: canonical.lua decides
                    return _GIVE_UP
                ne += 1
            else:  # the table is complete: rewrite its entries in canonical form
                base = tstart[t]
                size = o - base
                _copy(tmp, 0, out, base, size)
                if maxn[t] > 0:  # an array from 1 to maxn: other keys dropped, holes nil
                    n = maxn[t]
                    total = _head_size(n, 16) + n
                    for j in range(first[t], ne):
                        if index[j] >= 1:
                            total += end[j] - start[j] - 1
                    if base + total > m:
                        return _GIVE_UP
                    for j in range(1, n + 1):
                        slots[j] = -1
                    for j in range(first[t], ne):
                        if index[j] >= 1:
                            slots[index[j]] = j
                    o = _container_head(out, base, n, 0x90, 0xDC, 0xDD)
                    for j in range(1, n + 1):
                        x = slots[j]
                        if x < 0:
                            out[o] = 0xC0
                            o += 1
                        else:
                            _copy(out, o, tmp, start[x] - base, end[x] - start[x])
                            o += end[x] - start[x]
                elif others[t] > 0:  # number keys and no array: canonical.lua decides
                    return _GIVE_UP
                else:  # a map (the empty map if no entry): keys in the order of their bytes
                    count = ne - first[t]
                    if count > _MAX_SORTED or base + size + _head_size(count, 16) > m:
                        return _GIVE_UP
                    f = first[t]
                    for j in range(f, ne):  # slots: the entries in key order (insertion sort, keys in tmp)
                        x = j
                        i = j - 1
                        while i >= f and _key_less(
                            tmp, key0[x] - base, key1[x] - base, key0[slots[i]] - base, key1[slots[i]] - base
                        ):
                            slots[i + 1] = slots[i]
                            i -= 1
                        slots[i + 1] = x
                    o = _container_head(out, base, count, 0x80, 0xDE, 0xDF)
                    for j in range(f, ne):
                        x = slots[j]
                        _copy(out, o, tmp, start[x] - base, end[x] - start[x])
                        o += end[x] - start[x]
                ne = first[t]
                sp -= 1
                if sp > 0:
                    end[ne - 1] = o  # the parent's entry holding this table is complete
                else:
                    done = True
                continue
        # a value
        tag, pos = _read_u(src, pos)
        if tag >= _STR:
            size = tag - _STR
            if pos + size > n_src or o + 5 + size > m:
                return _GIVE_UP
            for j in range(size):
                b = src[pos + j]
                if b > 0x7F:
                    return _GIVE_UP
                if b == 0x3A and j + 3 < size and src[pos + j + 1] == 0x20 and src[pos + j + 2] == 0x30:  # noqa: SIM102
                    if src[pos + j + 3] == 0x78:  # ": 0x": a pointer text the reference path masks
                        return _GIVE_UP
            o = _str_head(out, o, size)
            _copy(out, o, src, pos, size)
            o += size
            pos += size
        elif tag == _FALSE or tag == _TRUE:  # noqa: SIM109 (numba: no tuple membership needed)
            if o + 1 > m:
                return _GIVE_UP
            out[o] = 0xC2 if tag == _FALSE else 0xC3
            o += 1
        elif tag == _NUM:
            if pos + 8 > n_src or o + 9 > m:
                return _GIVE_UP
            bits = _le64(src, pos)
            pos += 8
            if (bits & np.uint64(0x7FF0000000000000)) == np.uint64(0x7FF0000000000000) and (
                bits & np.uint64(0x000FFFFFFFFFFFFF)
            ) != np.uint64(0):
                return _GIVE_UP  # NaN: its bits are the reference's to keep
            if (bits & np.uint64(0x7FFFFFFFFFFFFFFF)) == np.uint64(0):
                bits = np.uint64(0)  # -0 as 0
            out[o] = 0xCB
            for j in range(8):
                out[o + 1 + j] = np.uint8((bits >> np.uint64(56 - 8 * j)) & np.uint64(0xFF))
            o += 9
        elif tag >= _TAB and tag <= _TAB + 5:  # a table: 0x08 empty, +1 a hash part, +2 from 0, +4 from 1
            narray = np.int64(0)
            nhash = np.int64(0)
            if tag >= _TAB + 2:
                narray, pos = _read_u(src, pos)
            if (tag - _TAB) % 2 == 1:
                nhash, pos = _read_u(src, pos)
            if narray < 0 or nhash < 0 or sp == _MAX_DEPTH:
                return _GIVE_UP
            tstart[sp] = o
            first[sp] = ne
            if tag >= _TAB + 4:
                arr_left[sp] = narray - 1
                next_idx[sp] = 1
            else:
                arr_left[sp] = narray
                next_idx[sp] = 0
            hash_left[sp] = nhash
            maxn[sp] = 0
            others[sp] = 0
            sp += 1
            continue
        else:  # nil outside an array, light userdata, FFI data, a metatable or string dictionary entry
            return _GIVE_UP
        if sp > 0:
            end[ne - 1] = o
        else:
            done = True
    return o if pos == n_src else _GIVE_UP


class SerializedKernel:
    """The kernel's reusable work space (one per Lua handler)."""

    def __init__(self) -> None:
        self._grow(1 << 12)

    def _grow(self, n_src: int) -> None:
        m = 2 * n_src + 64
        self.work = np.zeros(2 * m, dtype=np.uint8)
        self.view = memoryview(self.work.data)
        self.ints = np.zeros(9 * _MAX_DEPTH + 5 * (n_src + 1) + m + 1, dtype=np.int64)
        self.room = n_src

    def canonical_bytes(self, serialized: bytes) -> bytes | None:
        """The canonical bytes of the state ``string.buffer.encode`` wrote as ``serialized``, or None."""
        if len(serialized) > self.room:
            if len(serialized) > _MAX_SERIALIZED:
                return None
            self._grow(len(serialized))
        n = _transcode(serialized, self.work, self.ints)
        return None if n < 0 else self.view[:n].tobytes()
