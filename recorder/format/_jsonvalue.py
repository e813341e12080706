"""Free-form values in JSON: JSON where JSON can say a value exactly, a one-key ``$`` tag where it cannot.

    {"$bytes": "<base64>"}          bytes
    {"$float": "<16 hex digits>"}   a float by its IEEE-754 bits (NaN with payload, +-inf)
    {"$map": [[key, value], ...]}   a map with a key that is not a string, or whose only key starts
                                    with "$" (so it cannot be mistaken for a tag)
    {"$str": "<base64>"}            a string holding UTF-16 surrogates, as surrogate-passing UTF-8
    {"$ext": [code, "<base64>"]}    a msgpack extension value

Every one-key object whose key starts with ``$`` is a tag; an unknown tag is an error. Also the checks of
typed JSON fields (``text``, ``data``, ``number``, ``obj``, ``string_map``) that the field tables of
``recorder.format._schema`` use when reading JSON Lines; each raises ``InvalidValue(field, problem)``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

import msgpack

from recorder._b64 import b64
from recorder.errors import InvalidValue
from recorder.format import _validate as validate
from recorder.format._validate import MAX_DEPTH, show

__all__ = [
    "to_json_value",
    "from_json_value",
    "b64",
    "b64decode",
    "has_surrogates",
    "wrap_surrogates",
    "text",
    "data",
    "number",
    "obj",
    "string_map",
]

_DOUBLE = struct.Struct(">d")
_Q = struct.Struct(">Q")


def to_json_value(v: Any) -> Any:
    """A msgpack-ready value -> a JSON-ready value, tagging what JSON cannot say exactly."""
    t = type(v)
    if t is str:
        return v if v.isascii() or not has_surrogates(v) else _str_tag(v)
    if t is int or t is bool or v is None:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$float": f"{_Q.unpack(_DOUBLE.pack(v))[0]:016x}"}
    if t is dict:
        if all(type(k) is str and (k.isascii() or not has_surrogates(k)) for k in v) and not (
            len(v) == 1 and next(iter(v)).startswith("$")
        ):
            return {k: to_json_value(x) for k, x in v.items()}
        return {"$map": [[to_json_value(k), to_json_value(x)] for k, x in v.items()]}
    if t is list or t is tuple:
        return [to_json_value(x) for x in v]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": b64(bytes(v))}
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return to_json_value(float(v))
    if isinstance(v, str):
        return str(v)
    if isinstance(v, msgpack.Timestamp):
        return {"$ext": [-1, b64(v.to_bytes())]}
    if isinstance(v, msgpack.ExtType):
        return {"$ext": [v.code, b64(v.data)]}
    raise TypeError(f"cannot represent {type(v).__name__} in a recording")


def from_json_value(j: Any, field: str = "value") -> Any:
    """Inverse of ``to_json_value``. Raises ``ValueError`` (``recorder.format._validate.InvalidValue``) naming the field
    on a malformed value."""
    return _value(j, field)


def _value(j: Any, field: str, depth: int = 0) -> Any:
    """A free-form value from its JSON form; ``depth`` counts the arrays and maps around it."""
    t = type(j)
    if t is str or t is bool or j is None:
        return j
    if t is int:
        if not validate.INT64_MIN <= j <= validate.UINT64_MAX:
            raise InvalidValue(field, f"an integer must fit in 64 bits (int64 or uint64), got {show(j)}")
        return j
    if t is float:
        if not math.isfinite(j):
            raise InvalidValue(field, 'number out of range; write non-finite floats as {"$float": "<16 hex digits>"}')
        return j
    if t is list:
        _within_depth(depth, field)
        return [_value(x, f"{field}[{i}]", depth + 1) for i, x in enumerate(j)]
    if t is dict:
        if len(j) == 1:
            k = next(iter(j))
            if k.startswith("$"):
                return _untag(k, j[k], field, depth)
        _within_depth(depth, field)
        return {k: _value(x, f"{field}.{k}", depth + 1) for k, x in j.items()}
    raise InvalidValue(field, f"unexpected JSON value {show(j)}")


_KEY_TYPES = (type(None), bool, int, float, str, bytes)


def _within_depth(depth: int, field: str) -> None:
    """An array or map at ``depth`` (0: the value itself) is allowed up to ``MAX_DEPTH`` levels (as
    ``recorder.format._validate.value`` counts them in a chunk)."""
    if depth >= MAX_DEPTH:
        raise InvalidValue(field, f"nested deeper than {MAX_DEPTH} levels of arrays and maps")


def _untag(tag: str, x: Any, field: str, depth: int = 0) -> Any:
    where = f"{field}.{tag}"
    if tag == "$bytes":
        return b64decode(x, where)
    if tag == "$float":
        if type(x) is not str or len(x) != 16:
            raise InvalidValue(where, f"must be 16 hex digits (the float's IEEE-754 bits), got {x!r}")
        try:
            return _DOUBLE.unpack(bytes.fromhex(x))[0]
        except ValueError:
            raise InvalidValue(where, f"must be 16 hex digits (the float's IEEE-754 bits), got {x!r}") from None
    if tag == "$map":
        _within_depth(depth, field)
        if type(x) is not list:
            raise InvalidValue(where, "must be a list of [key, value] pairs")
        out: dict[Any, Any] = {}
        for i, pair in enumerate(x):
            if type(pair) is not list or len(pair) != 2:
                raise InvalidValue(f"{where}[{i}]", "must be a [key, value] pair")
            key = _value(pair[0], f"{where}[{i}][0]", depth + 1)
            if type(key) not in _KEY_TYPES:
                raise InvalidValue(f"{where}[{i}][0]", "a map key must be a scalar (null, bool, number, string, bytes)")
            if key in out:
                raise InvalidValue(f"{where}[{i}][0]", f"duplicate map key {key!r}")
            out[key] = _value(pair[1], f"{where}[{i}][1]", depth + 1)
        return out
    if tag == "$str":
        raw = b64decode(x, where)
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise InvalidValue(where, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if tag == "$ext":
        if type(x) is not list or len(x) != 2 or type(x[0]) is not int or not -128 <= x[0] <= 127:
            raise InvalidValue(where, "must be [code (-128..127), base64 data]")
        return msgpack.ExtType(x[0], b64decode(x[1], f"{where}[1]"))
    raise InvalidValue(
        where,
        "unknown tag (one-key objects whose key starts with '$' are tags: $bytes, $float, $map, $str, $ext; "
        'write a plain map with such a key as {"$map": [[key, value]]})',
    )


def b64decode(x: Any, field: str) -> bytes:
    if type(x) is not str:
        raise InvalidValue(field, f"must be a base64 string, got {show(x)}")
    try:
        return base64.b64decode(x, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidValue(field, f"not standard base64 ({exc})") from None


def has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _str_tag(s: str) -> dict[str, str]:
    return {"$str": b64(s.encode("utf-8", "surrogatepass"))}


def wrap_surrogates(x: Any) -> Any:
    """Replace every string holding surrogates by ``{"$str": ...}`` (maps with such keys become ``$map``)."""
    if type(x) is str:
        return _str_tag(x) if has_surrogates(x) else x
    if type(x) is list:
        return [wrap_surrogates(v) for v in x]
    if type(x) is dict:
        if any(has_surrogates(k) for k in x):
            return {"$map": [[wrap_surrogates(k), wrap_surrogates(v)] for k, v in x.items()]}
        return {k: wrap_surrogates(v) for k, v in x.items()}
    return x


# -- typed JSON fields (the readers of recorder.format._schema) ----------------------------------


def text(v: Any, field: str) -> str:
    if type(v) is str:
        return v
    if type(v) is dict and len(v) == 1 and "$str" in v:
        untagged: str = _untag("$str", v["$str"], field)
        return untagged
    raise InvalidValue(field, f"must be a string, got {show(v)}")


def data(v: Any, field: str) -> bytes:
    return b64decode(v, field)


def number(v: Any, field: str) -> float | int:
    x = _value(v, field)
    if type(x) is not int and type(x) is not float:
        raise InvalidValue(field, f"must be a number, got {show(v)}")
    return x


def obj(v: Any, field: str) -> dict[Any, Any]:
    if type(v) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    x = _value(v, field)
    if type(x) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    return x


def string_map(v: Any, field: str) -> dict[str, str]:
    """A map of strings to strings (session vars; user id -> client version)."""
    x = obj(v, field)
    for key, item in x.items():
        if type(key) is not str or type(item) is not str:
            raise InvalidValue(field, f"must map strings to strings, got {show(key)}: {show(item)}")
    return x
