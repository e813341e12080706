"""Lua <-> Python values for the Lua runtime, as gopher-lua and Nakama convert them.

Lua strings cross as ``bytes`` (``as_text``/``as_bytes`` keep invalid UTF-8 as surrogate escapes); the
``check_*``/``opt_*`` helpers check a host function's arguments with gopher-lua's wording (they raise
``LuaArgError`` with the argument number); ``lua_to_plain`` is Nakama's ``RuntimeLuaConvertLuaValue``;
``go_sprint`` and ``go_tonumber`` are Go's ``fmt.Sprint`` of such a value and gopher-lua's ``tonumber``.
"""

from __future__ import annotations

import codecs
import re
import uuid as _uuid
from collections.abc import Callable
from typing import Any

import lupa.luajit21 as _lupa

from replay.gocompat._fmt import go_float_g, go_number_string
from replay.lua._stdlib import LuaArgError, LuaRaise

__all__ = [
    "INT64_MIN",
    "INT64_END",
    "as_text",
    "as_bytes",
    "lua_type_name",
    "check_string",
    "check_table",
    "opt_table",
    "opt_bool",
    "check_int",
    "is_uuid",
    "go_sprint",
    "lua_to_plain",
    "int_fields",
    "go_tonumber",
]

INT64_MIN, INT64_END = -(1 << 63), 1 << 63
_MAX_ARRAY_INDEX = 67108864  # gopher-lua's MaxArrayIndex: positive integer keys below it form the array part


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go replaces every invalid byte with U+FFFD (Python's "replace" folds a broken sequence into one)
    if not isinstance(err, UnicodeDecodeError):  # registered for decoding only
        raise err
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("nkreplay-go", _go_replace)


def as_text(raw: Any) -> str:
    """A Lua string as Python text, lossless (invalid UTF-8 kept as surrogate escapes)."""
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)


def as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def lua_type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if v is True or v is False:
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, bytes):
        return "string"
    return _lupa.lua_type(v) or "userdata"


def check_string(v: Any, i: int) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return go_number_string(v).encode()
    raise LuaArgError(i, f"string expected, got {lua_type_name(v)}")


def check_table(v: Any, i: int) -> Any:
    if _lupa.lua_type(v) != "table":
        raise LuaArgError(i, f"table expected, got {lua_type_name(v)}")
    return v


def opt_table(v: Any, i: int) -> Any:
    return None if v is None else check_table(v, i)


def opt_bool(v: Any, i: int, default: bool) -> bool:
    if v is None:
        return default
    if v is True or v is False:
        return v
    raise LuaArgError(i, f"boolean expected, got {lua_type_name(v)}")


def check_int(v: Any, i: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise LuaArgError(i, f"number expected, got {lua_type_name(v)}")
    if isinstance(v, float):
        return int(v) if v == v and -(2.0**63) <= v < 2.0**63 else INT64_MIN
    return v


def is_uuid(v: Any) -> bool:
    if not isinstance(v, bytes):
        return False
    try:
        _uuid.UUID(v.decode("ascii"))
    except ValueError:
        return False
    return True


def _go_key(k: Any, pointer: Any = None) -> str:
    """``fmt.Sprint`` of a converted Lua key, as Nakama spells non-string keys of a JSON object."""
    if isinstance(k, bytes):
        return k.decode("utf-8", "nkreplay-go")
    if k is True or k is False:
        return "true" if k else "false"
    if isinstance(k, int):
        return str(k)
    if isinstance(k, float):
        return go_float_g(k)
    if _lupa.lua_type(k) == "table":
        return go_sprint(lua_to_plain(k, pointer))
    return _pointer(k, pointer)


def _pointer(v: Any, pointer: Any) -> str:
    """gopher-lua's text of a function, userdata or thread (``function: 0xc000010040``); ``pointer`` is the
    runtime's deterministic address book (``LuaHandler.pointer_text``), without it a per-process id."""
    if pointer is not None:
        return as_text(pointer(v))
    return f"{_lupa.lua_type(v) or 'userdata'}: 0x{id(v):x}"


def go_sprint(v: Any) -> str:
    """Go's ``fmt.Sprint`` of a value ``RuntimeLuaConvertLuaValue`` returned (a table used as a key):
    ``map[a:1 b:[1 2]]`` with keys sorted, ``<nil>``, floats in ``%v``."""
    if v is None:
        return "<nil>"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float_g(v)
    if isinstance(v, list):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def lua_to_plain(v: Any, pointer: Any = None, depth: int = 0) -> Any:
    """A Lua value as Nakama's ``RuntimeLuaConvertLuaValue`` sees it, in Python: a table with a positive
    integer key (below 2**26) is a list from 1 to the highest such key (other keys dropped, holes None),
    any other table a dict with string keys; whole numbers in int64 range are ``int``, strings ``str``
    (invalid UTF-8 bytes replaced as Go's JSON encoder does); functions (and userdata, threads) their
    gopher-lua text, ``function: 0x...``, with the address ``pointer`` gives them (see ``_pointer``)."""
    if v is None or v is True or v is False:
        return v
    t = type(v)
    if t is int:
        return v
    if t is float:
        return v
    if t is bytes:
        return v.decode("utf-8", "nkreplay-go")
    lt = _lupa.lua_type(v)
    if lt == "table":
        if depth > 256:
            raise LuaRaise("error encoding to JSON: table nesting too deep (a cycle?)")
        items = list(v.items())
        maxn = 0
        for k, _ in items:
            if type(k) is int and 0 < k < _MAX_ARRAY_INDEX and k > maxn:
                maxn = k
        # converted in a fixed order, not LuaJIT's (its string hash is seeded at random per Lua state): a
        # function met here is given its address (``pointer``) in this order
        if maxn:
            out: list[Any] = [None] * maxn
            for k, x in sorted(((k, x) for k, x in items if type(k) is int and 0 < k <= maxn), key=_first):
                out[k - 1] = lua_to_plain(x, pointer, depth + 1)
            return out
        if len(items) > 1:
            items.sort(key=_key_order)
        return {_go_key(k, pointer): lua_to_plain(x, pointer, depth + 1) for k, x in items}
    return _pointer(v, pointer)


def _first(item: tuple[Any, Any]) -> Any:
    return item[0]


def _key_order(item: tuple[Any, Any]) -> tuple[int, Any]:
    """Numbers, then strings (bytes), then booleans; tables, functions and userdata last in the order found
    (they have no value to sort by: the sort is stable)."""
    k = item[0]
    t = type(k)
    if t is bytes:
        return 1, k
    if t is int or t is float:
        return 0, k
    if t is bool:
        return 2, k
    return 3, 0


def int_fields(t: Any) -> Callable[[str, int], int]:
    """gopher-lua's ``getIntField``: a number field (truncated) or the default."""

    def get(name: str, default: int) -> int:
        v = t[name.encode()]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return check_int(v, 1)
        return default

    return get


_GO_INT_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+|inf|infinity|nan)",
    re.IGNORECASE,
)


def go_tonumber(v: Any, base: Any = None) -> Any:
    """gopher-lua's ``tonumber``: a string with a "." is Go's ``ParseFloat`` (out of range: nil), any other
    string Go's ``ParseInt`` in the base (``0x`` prefix: base 16 when no base is given), so
    ``tonumber("1e2")`` is nil; numbers are returned as they are, anything else is nil."""
    if base is not None and (isinstance(base, bool) or not isinstance(base, (int, float))):
        raise LuaArgError(2, f"number expected, got {lua_type_name(base)}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if not isinstance(v, bytes):
        return None
    text = v.decode("latin-1").strip(" \n\t")
    if "." in text:
        if not _GO_FLOAT.fullmatch(text):
            return None
        x = float.fromhex(text) if "x" in text.lower() else float(text)
        if x in (float("inf"), float("-inf")) and "inf" not in text.lower():
            return None  # ParseFloat's ErrRange
        return x
    b = 10 if base is None else int(base)
    if base is None and text.lower().startswith("0x"):
        b, text = 16, text[2:]
    if not 2 <= b <= 36:
        return None
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or any(c not in _GO_INT_DIGITS[:b] for c in digits.lower()):
        return None
    n = int(text, b)
    return n if -(1 << 63) <= n < (1 << 63) else None
