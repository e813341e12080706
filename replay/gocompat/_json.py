"""JSON exactly as Nakama's Go ``encoding/json`` writes it.

Nakama encodes storage values, ``nk.json_encode`` results and match states with Go's ``json.Marshal``; a
storage object's version is the MD5 of those bytes, and state digests must agree with what a Lua capture
module logs. The differences from Python's ``json.dumps`` that matter:

- map keys are sorted by their UTF-8 bytes;
- floats use the shortest round-trip digits, in plain notation for 1e-6 <= |x| < 1e21 and exponent notation
  (``1e+21``, ``1e-7``) outside it, so whole numbers print as integers (``3.0`` -> ``3``); NaN and
  infinities cannot be encoded (``ValueError``, as Go's ``UnsupportedValueError``);
- ``<``, ``>``, ``&``, U+2028 and U+2029 are escaped as ``\\u003c`` ... (Go's HTML-safe default);
- bytes encode as standard base64 strings (Go's ``[]byte``); tuples as arrays.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "format_float", "shortest_digits"]

_encode_str = json.encoder.py_encode_basestring
_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _string(s: str) -> str:
    return _encode_str(s).translate(_HTML)


def shortest_digits(x: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(x) > 0`` and the decimal point position: x = 0.DIGITS * 10**point."""
    _, digits, exp = Decimal(repr(abs(x))).as_tuple()
    ds = "".join(map(str, digits))
    return ds.rstrip("0") or "0", len(ds) + int(exp)


def format_float(x: float) -> str:
    """Go's ``strconv.AppendFloat(x, fmt, -1, 64)`` as ``encoding/json`` chooses ``fmt``."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"json: unsupported value: {x!r}")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    ds, point = shortest_digits(x)
    prefix = "-" if x < 0 else ""
    if 1e-6 <= abs(x) < 1e21:
        if point <= 0:
            return f"{prefix}0.{'0' * -point}{ds}"
        if point >= len(ds):
            return f"{prefix}{ds}{'0' * (point - len(ds))}"
        return f"{prefix}{ds[:point]}.{ds[point:]}"
    e = point - 1
    mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    # strconv writes at least two exponent digits; encoding/json then trims "e-07" to "e-7"
    return f"{prefix}{mantissa}e+{e:02d}" if e >= 0 else f"{prefix}{mantissa}e-{-e}"


def _encode(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(format_float(v))
    elif isinstance(v, dict):
        items = sorted(((_key(k), val) for k, val in v.items()), key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))
        out.append("{")
        for i, (k, val) in enumerate(items):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _encode(val, out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')
    else:
        raise TypeError(f"json: unsupported type: {type(v).__name__}")


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise TypeError(f"json: unsupported map key type: {type(k).__name__}")
    return format_float(float(k)) if isinstance(k, float) else str(k)


def dumps(value: Any) -> str:
    """Encode ``value`` as Go's ``json.Marshal`` would encode the equivalent Go value."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)
