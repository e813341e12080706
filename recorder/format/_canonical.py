"""Canonical form of a match state: one byte string, one 64-bit digest, one sorted list of leaves.

The same logical state gets the same bytes and digest whether it came from a Python handler, a Lua table
converted to Python, or JSON that ``nk.json_encode`` wrote into a Nakama log. The rules:

Values
  ``None`` -> nil, ``bool`` -> bool, ``str`` -> str (UTF-8), ``bytes``/``bytearray``/``memoryview`` -> bin
  (never equal to a str), ``list``/``tuple`` -> array, ``dict`` -> map or array (below). Anything else
  (sets, objects, numpy scalars) raises ``StateError`` naming the path.
Numbers
  Every int and float is one kind, *number*. A number that float64 holds exactly is stored as float64:
  ``3``, ``3.0`` and ``2**60`` are the same value (``nk.json_encode`` writes the whole-number float ``3.0``
  as ``3``; Lua has only doubles). ``-0.0`` becomes ``0.0`` (``nk.json_encode`` writes it as ``0``). NaN and
  infinities keep their bits. Only integers that float64 cannot hold exactly (beyond 2**53, odd ones...)
  stay integers (msgpack int64/uint64, always the 8-byte form); beyond 64 bits raises ``StateError``.
Maps
  Keys are strings sorted by their UTF-8 bytes, as Go sorts map keys. A dict whose keys are exactly the
  integers ``1..n`` (ints or whole floats) is a Lua sequence and becomes the array of its values in key
  order. Any other dict with non-string keys has its keys converted as Nakama converts Lua keys
  (``fmt.Sprint``): whole numbers -> ``"5"``, other floats -> shortest digits (``"1.5"``, ``"1e-05"``),
  NaN/Inf -> ``"NaN"``/``"+Inf"``/``"-Inf"``, booleans -> ``"true"``/``"false"``, bytes -> decoded UTF-8;
  two keys that convert to the same string raise ``StateError``. (A Lua table with both a sequence part and
  other keys keeps all of them here; ``nk.json_encode`` would keep only the sequence.)
Empty containers
  ``{}``, ``[]`` and ``()`` are one value, the empty map (Lua has one empty table; ``nk.json_encode``
  writes ``{}``).
Pointer texts
  Nakama's JSON of a Lua function is its gopher-lua text, ``function: 0xc0001a2b40``: a Go heap address,
  different on every server run. In strings, every such text (``table|function|userdata|thread|channel:
  0x<hex>``) becomes ``<kind>: 0x?`` (``mask_pointers``), so a state holding a function has the same
  digest in Nakama's log and in a replay.

``canonical_bytes`` is msgpack of the canonical value: maps in key order, numbers as float64 (``0xcb``)
except the big integers above, str as msgpack str, bytes as bin, smallest container headers.
``state_digest`` is BLAKE2b-64 of those bytes read as a little-endian unsigned integer.

``flatten`` lists the leaves as ``(path, path_hash, value_bits)`` sorted by ``path_hash``: ``path`` is
readable (``players.u2.hp``, ``bullets[3].x``, ``tags["a b"]``; ``""`` is the root), ``path_hash`` is a
64-bit hash of the path's components, ``value_bits`` the float64 bits of a number, or for every other leaf
(nil, booleans, str, bin, big integers, the empty map) a 64-bit hash boxed into the negative-NaN space
(``0xFFF0...`` with a non-zero mantissa) so that only genuine floats ever look like finite floats. The
numba kernels in ``replay.diff._kernels`` compute exactly these pairs from ``canonical_bytes``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import struct
from collections.abc import Mapping
from typing import Any

import msgpack

from recorder.errors import InvalidValue, StateError

__all__ = [
    "canonicalize",
    "mask_pointers",
    "canonical_bytes",
    "digest_bytes",
    "state_digest",
    "flatten",
    "leaves",
    "join_key",
    "path_key",
    "path_index",
    "fnv1a64",
    "fmix64",
    "box",
    "float_bits",
    "ROOT_HASH",
    "NIL_BITS",
    "TRUE_BITS",
    "FALSE_BITS",
    "EMPTY_BITS",
]

_MASK = (1 << 64) - 1
_EXACT = 1 << 53

# ---------------------------------------------------------------- canonical value


def _inside(bad: InvalidValue, part: str | int) -> None:
    """Prefix the field of ``bad`` (a value without canonical form, raised from inside ``part``) with the
    step into ``part``, as ``join_key`` spells it: ``[3]``, ``.name`` or ``["a b"]``."""
    bad.field = _step("", part) + bad.field


def _number(v: int | float) -> int | float:
    if isinstance(v, float):
        return 0.0 if v == 0.0 else float(v)  # -0.0 -> 0.0; NaN/inf unchanged
    if -_EXACT <= v <= _EXACT:
        return float(v)
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if f != math.inf and f != -math.inf and int(f) == v:
        return f
    if -(1 << 63) <= v < (1 << 64):
        return int(v)
    raise InvalidValue("", f"integer {v} does not fit in 64 bits")


def _key_string(k: Any) -> str:
    """A non-string map key as Nakama's ``fmt.Sprint`` of the converted Lua key spells it."""
    if isinstance(k, str):
        return str(k)
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, (int, float)):
        if isinstance(k, float):
            if math.isnan(k):
                return "NaN"
            if math.isinf(k):
                return "+Inf" if k > 0 else "-Inf"
            if k != math.trunc(k):
                return repr(float(k))
        return str(int(k))
    if isinstance(k, (bytes, bytearray, memoryview)):
        try:
            return bytes(k).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValue("", f"map key {bytes(k)!r} is not valid UTF-8") from None
    raise InvalidValue("", f"map key {k!r} of type {type(k).__name__} is not a string or number")


def _sequence_key(k: Any) -> int | None:
    if isinstance(k, bool):
        return None
    if isinstance(k, int):
        return int(k)
    if isinstance(k, float) and k.is_integer():
        return int(k)
    return None


_POINTER = re.compile(r"\b(table|function|userdata|thread|channel): 0x[0-9a-f]+")
_POINTER_BYTES = re.compile(rb"\b(table|function|userdata|thread|channel): 0x[0-9a-f]+")


def mask_pointers(text: Any) -> Any:
    """``text`` (str or bytes) with every gopher-lua pointer text's address replaced: ``function: 0x?``."""
    if isinstance(text, str):
        return _POINTER.sub(r"\1: 0x?", text) if ": 0x" in text else text
    if isinstance(text, (bytes, bytearray)):
        return _POINTER_BYTES.sub(rb"\1: 0x?", text) if b": 0x" in text else text
    return text


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue("", f"string {s!r} is not valid Unicode (lone surrogate)") from None


def _canon(v: Any) -> Any:
    t = type(v)
    if t is float:
        return 0.0 if v == 0.0 else v
    if t is int:
        return float(v) if -_EXACT <= v <= _EXACT else _number(v)
    if t is str:
        if not v.isascii():
            _utf8(v)
        return _POINTER.sub(r"\1: 0x?", v) if ": 0x" in v else v
    if t is dict:
        return _canon_map(v)
    if t is list or t is tuple:
        return _canon_list(v)
    if v is None or t is bool:
        return v
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, str):
        return _canon(str(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        return _canon_list(v)
    if isinstance(v, Mapping):
        return _canon_map(v)
    raise InvalidValue("", f"value of type {t.__name__} has no canonical form")


# The two container walkers below are the hot path of every state digest: the common leaves (float, int,
# str, bool, None) and containers are handled inline, anything else goes through ``_canon``. They give
# exactly what ``_canon`` would give for each item (tests/format/test_canonical.py holds them to it).


def _canon_list(v: Any) -> Any:
    if not v:
        return {}
    out: list[Any] = []
    add = out.append
    i = -1
    try:
        for x in v:
            i += 1
            t = x.__class__
            if t is float:
                add(0.0 if x == 0.0 else x)
            elif t is int:
                add(float(x) if -_EXACT <= x <= _EXACT else _number(x))
            elif t is str:
                if not x.isascii():
                    _utf8(x)
                add(_POINTER.sub(r"\1: 0x?", x) if ": 0x" in x else x)
            elif t is dict:
                add(_canon_map(x))
            elif t is list:
                add(_canon_list(x))
            elif t is bool or x is None:
                add(x)
            else:
                add(_canon(x))
    except InvalidValue as bad:
        _inside(bad, i)
        raise
    return out


def _canon_map(v: Any) -> Any:
    if not v:
        return {}
    if type(v) is dict:
        try:
            order = sorted(v)  # str keys: code point order, which is UTF-8 byte order (as Go sorts)
        except TypeError:  # keys of several types: the general path
            order = None
        if order is not None and _plain_keys(order):
            out = {}
            k = ""
            try:
                for k in order:
                    x = v[k]
                    t = x.__class__
                    if t is float:
                        out[k] = 0.0 if x == 0.0 else x
                    elif t is int:
                        out[k] = float(x) if -_EXACT <= x <= _EXACT else _number(x)
                    elif t is str:
                        if not x.isascii():
                            _utf8(x)
                        out[k] = _POINTER.sub(r"\1: 0x?", x) if ": 0x" in x else x
                    elif t is dict:
                        out[k] = _canon_map(x)
                    elif t is list:
                        out[k] = _canon_list(x)
                    elif t is bool or x is None:
                        out[k] = x
                    else:
                        out[k] = _canon(x)
            except InvalidValue as bad:
                _inside(bad, k)
                raise
            return out
    return _canon_map_general(v)


def _plain_keys(order: list[Any]) -> bool:
    """Every key a ``str`` that UTF-8 can encode (a lone surrogate cannot: the general path names it)."""
    for k in order:
        if k.__class__ is not str:
            return False
    joined = "".join(order)
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _canon_map_general(v: Any) -> Any:
    keys = list(v.keys())
    if all(type(k) is str for k in keys):
        try:
            order = sorted(keys, key=str.encode)  # UTF-8 byte order = code point order, as Go sorts
        except UnicodeEncodeError:
            order = None  # the general path below names the bad key
        if order is not None:
            out = {}
            for k in order:
                try:
                    out[k] = _canon(v[k])
                except InvalidValue as bad:
                    _inside(bad, k)
                    raise
            return out
    seq = [n for n in map(_sequence_key, keys) if n is not None]
    if len(seq) == len(keys) and sorted(seq) == list(range(1, len(keys) + 1)):
        return _canon_list([v[keys[i]] for i in sorted(range(len(keys)), key=seq.__getitem__)])
    items: dict[bytes, tuple[Any, str]] = {}
    for k in keys:
        ks = _key_string(k)
        try:
            kb = _utf8(ks)
        except InvalidValue as bad:
            _inside(bad, ks)
            raise
        if kb in items:
            raise InvalidValue("", f"map keys {items[kb][0]!r} and {k!r} are the same key {ks!r} in canonical form")
        items[kb] = (k, ks)
    out = {}
    for kb in sorted(items):
        k, ks = items[kb]
        try:
            out[ks] = _canon(v[k])
        except InvalidValue as bad:
            _inside(bad, ks)
            raise
    return out


def canonicalize(value: Any) -> Any:
    """The canonical value: dicts with sorted str keys, lists, float64 numbers, str, bytes, bool, None.

    Raises ``StateError`` naming the path of the first value that has no canonical form.
    """
    try:
        return _canon(value)
    except InvalidValue as bad:
        raise StateError(bad.field.removeprefix("."), bad.problem) from None
    except RecursionError:  # a state that holds itself, or nested deeper than Python's stack allows
        path, problem = _too_deep(value)
        raise StateError(path, problem) from None


def _step(path: str, part: str | int) -> str:
    """``path`` one step into ``part``: ``[3]``, ``.name`` or ``["a b"]`` (as ``join_key`` spells it)."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if _IDENT.match(part) else join_key(path, part)


def _too_deep(value: Any) -> tuple[str, str]:
    """Why the walk ran out of stack: the first container that holds one of its own ancestors (a cycle),
    else the deepest nesting. Iterative, and each container is walked once (shared ones too)."""
    ancestors: list[int] = []  # ids of the containers on the current path
    seen: set[int] = set()
    deepest = (0, "")
    stack: list[tuple[int, Any, str]] = [(0, value, "")]
    while stack:
        depth, v, path = stack.pop()
        del ancestors[depth:]
        if isinstance(v, Mapping):
            items: Any = [(k if type(k) is str else str(k), v[k]) for k in v]
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        else:
            continue
        if id(v) in ancestors:
            return _short(path), "holds a container it is inside of (a cycle)"
        if id(v) in seen:  # walked already from another place (not an ancestor: its walk is over)
            continue
        seen.add(id(v))
        deepest = max(deepest, (depth, path), key=lambda d: d[0])
        ancestors.append(id(v))
        stack.extend((depth + 1, x, _step(path, k)) for k, x in reversed(items))
    return _short(deepest[1]), f"nested {deepest[0] + 1} levels deep, deeper than the canonical walk goes"


def _short(path: str, keep: int = 40) -> str:
    """A path for a one-line message: its ends around an ellipsis when it is long."""
    path = path.removeprefix(".")
    return path if len(path) <= 2 * keep + 1 else f"{path[:keep]}…{path[-keep:]}"


def canonical_bytes(value: Any) -> bytes:
    """Canonical msgpack encoding of a JSON-like state (see the module docstring for the rules)."""
    packed: bytes = msgpack.packb(canonicalize(value), use_bin_type=True)
    return packed


def digest_bytes(data: bytes) -> int:
    """The 64-bit digest of canonical bytes: BLAKE2b with an 8-byte digest, little-endian, unsigned."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def state_digest(value: Any) -> int:
    """Stable 64-bit digest of the canonical form of ``value`` (the same on every run and machine)."""
    return digest_bytes(canonical_bytes(value))


# ---------------------------------------------------------------- hashing primitives (mirrored in numba)

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_GOLDEN = 0x9E3779B97F4A7C15
_TAG_KEY = 0x6B  # 'k'
_TAG_INDEX = 0x69  # 'i'
_TAG_STR = 0x73
_TAG_BIN = 0x62
_TAG_INT = 0x6E
_TAG_NEG = 0x6D
_BOX = 0xFFF0000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_QNAN_MANTISSA = 1 << 51


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64-bit."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


def fmix64(k: int) -> int:
    """MurmurHash3's 64-bit finaliser (a bijection on 64-bit integers)."""
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def _child(parent: int, component: int, tag: int) -> int:
    return fmix64(((parent * _GOLDEN) + component + tag) & _MASK)


def path_key(parent: int, key: bytes) -> int:
    """Hash of the path ``parent`` extended by map key ``key`` (UTF-8 bytes)."""
    return _child(parent, fnv1a64(key), _TAG_KEY)


def path_index(parent: int, index: int) -> int:
    """Hash of the path ``parent`` extended by array index ``index``."""
    return _child(parent, fmix64(index), _TAG_INDEX)


def box(h: int) -> int:
    """A 64-bit hash as a negative NaN that no arithmetic produces (mantissa never 0 or the quiet bit alone)."""
    m = h & _MANTISSA
    if m == 0 or m == _QNAN_MANTISSA:
        m |= 1
    return _BOX | m


def float_bits(x: float) -> int:
    """The IEEE-754 bits of a float64."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", x))
    return int(bits)


ROOT_HASH = fmix64(0x6E616B616D61)  # "nakama"
NIL_BITS = box(fmix64(0xC0))
TRUE_BITS = box(fmix64(0xC3))
FALSE_BITS = box(fmix64(0xC2))
EMPTY_BITS = box(fmix64(0x80))


def _leaf_bits(v: Any) -> int:
    if v is None:
        return NIL_BITS
    if v is True:
        return TRUE_BITS
    if v is False:
        return FALSE_BITS
    if isinstance(v, float):
        return float_bits(v)
    if isinstance(v, int):
        if v < 0:
            return box(fmix64((v & _MASK) ^ _TAG_NEG))
        return box(fmix64(v ^ _TAG_INT))
    if isinstance(v, str):
        return box(fmix64(fnv1a64(v.encode("utf-8")) ^ _TAG_STR))
    if isinstance(v, bytes):
        return box(fmix64(fnv1a64(v) ^ _TAG_BIN))
    if isinstance(v, dict) and not v:
        return EMPTY_BITS
    raise AssertionError(f"not a canonical leaf: {v!r}")  # canonicalize() guarantees this cannot happen


# ---------------------------------------------------------------- readable paths and flatten

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def join_key(path: str, key: str) -> str:
    """``players`` + ``u2`` -> ``players.u2``; keys that are not identifiers are quoted: ``tags["a b"]``."""
    if _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{_json_string(key)}]"


def _json_string(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)


def leaves(value: Any) -> list[tuple[str, int, int, Any]]:
    """``(path, path_hash, value_bits, leaf)`` for every leaf of the canonical form, sorted by hash.

    ``leaf`` is the canonical leaf value (a float for every number float64 holds, ``{}`` for an empty
    container). Two paths with the same hash (a 64-bit collision) raise ``StateError``.
    """
    out: list[tuple[str, int, int, Any]] = []

    def walk(v: Any, path: str, h: int) -> None:
        if isinstance(v, dict) and v:
            for k, child in v.items():
                walk(child, join_key(path, k), path_key(h, k.encode("utf-8")))
        elif isinstance(v, list):
            for i, child in enumerate(v):
                walk(child, f"{path}[{i}]", path_index(h, i))
        else:
            out.append((path, h, _leaf_bits(v), v))

    walk(canonicalize(value), "", ROOT_HASH)
    out.sort(key=lambda leaf: leaf[1])
    for a, b in itertools.pairwise(out):
        if a[1] == b[1]:
            raise StateError(b[0], f"64-bit path hash collides with {a[0]!r}")
    return out


def flatten(value: Any) -> list[tuple[str, int, int]]:
    """The leaves of the canonical form of ``value`` as ``(path, path_hash, value_bits)``, sorted by hash.

    The reference for ``replay.diff._kernels``: simple and slow.
    """
    return [(path, h, bits) for path, h, bits, _ in leaves(value)]
