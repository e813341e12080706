"""How Nakama's Lua (gopher-lua) turns numbers and values into text: Go's ``fmt``, not C's ``printf``.

gopher-lua formats through Go, so a Lua handler in Nakama sees:

- ``tostring(x)`` for a number: the integer digits when ``x`` is a whole number in int64 range, else Go's
  ``fmt.Sprint(float64)``: shortest round-trip digits, exponent form below 1e-4 and from 1e6 on
  (``tostring(0.1 + 0.2)`` is ``0.30000000000000004``, ``tostring(1234567.5)`` is ``1.2345675e+06``,
  ``tostring(1/0)`` is ``+Inf``) where Lua 5.1 prints ``%.14g``;
- ``string.format(fmt, ...)``: Go's ``fmt.Sprintf`` over the Lua values (``%s`` of nil is ``nil``, ``%g``
  without precision is the shortest form, ``%d`` truncates, a missing argument prints ``%!d(MISSING)``,
  unknown verbs print ``%!y(...)``), with gopher-lua's own argument count rule (``%`` minus ``%%``).

``go_number_string`` and ``go_format`` reproduce that for the Lua runtime (``replay.lua._handler``). Values
arrive as the Lua runtime hands them to Python: ``int``/``float`` numbers, ``bytes`` strings, ``None``,
``bool``, and anything else (tables, functions) with its ``tostring`` text passed in ``names``.
"""

from __future__ import annotations

import math
from typing import Any

from replay.gocompat._json import shortest_digits

__all__ = ["go_number_string", "go_float_g", "go_format", "INT64_MIN"]

INT64_MIN = -(1 << 63)
_TWO63 = float(1 << 63)


def _int64(x: float) -> int:
    """Go's ``int64(float64)`` on amd64: truncation, and the minimum int64 for NaN and out-of-range values."""
    if math.isnan(x) or not -_TWO63 <= x < _TWO63:
        return INT64_MIN
    return int(x)


def _is_integer(x: float) -> bool:
    """gopher-lua's ``isInteger``: ``float64(int64(v)) == v``."""
    return float(_int64(x)) == x


def _fmt_e(neg: bool, ds: str, dp: int, prec: int, e: str = "e") -> str:
    mantissa = ds[0] + ("." + ds[1 : prec + 1].ljust(prec, "0") if prec > 0 else "")
    exp = dp - 1 if ds != "0" else 0
    sign = "+" if exp >= 0 else "-"
    return f"{'-' if neg else ''}{mantissa}{e}{sign}{abs(exp):02d}"


def _fmt_f(neg: bool, ds: str, dp: int, prec: int) -> str:
    if dp <= 0:
        whole, frac = "0", "0" * -dp + ds
    elif dp >= len(ds):
        whole, frac = ds + "0" * (dp - len(ds)), ""
    else:
        whole, frac = ds[:dp], ds[dp:]
    frac = frac[:prec].ljust(prec, "0")
    return f"{'-' if neg else ''}{whole}{'.' + frac if prec > 0 else ''}"


def _special(x: float, plus: bool = False) -> str | None:
    if math.isnan(x):
        return "+NaN" if plus else "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return None


def go_float_g(x: float, e: str = "e") -> str:
    """Go's ``strconv.FormatFloat(x, 'g', -1, 64)``: shortest digits, ``%e`` form when exp < -4 or exp >= 6."""
    special = _special(x)
    if special is not None:
        return special
    neg = math.copysign(1.0, x) < 0
    if x == 0:
        return "-0" if neg else "0"
    ds, dp = shortest_digits(x)
    exp = dp - 1
    if exp < -4 or exp >= 6:
        return _fmt_e(neg, ds, dp, len(ds) - 1, e)
    return _fmt_f(neg, ds, dp, max(len(ds) - dp, 0))


def go_number_string(x: int | float) -> str:
    """gopher-lua's ``LNumber.String()``: what ``tostring`` and ``%s`` give for a Lua number."""
    if isinstance(x, int):
        return str(x) if INT64_MIN <= x < (1 << 63) else go_float_g(float(x))
    if _is_integer(x):
        return str(_int64(x))
    return go_float_g(x)


# -- fmt.Sprintf ---------------------------------------------------------------------------------------

_TYPE_NAMES = {"number": "lua.LNumber", "string": "lua.LString", "nil": "*lua.LNilType", "boolean": "lua.LBool"}


def _lua_type(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (bytes, bytearray)):
        return "string"
    return "other"


class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec", "verb")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None
        self.verb = ""


def _pad(s: str, spec: _Spec, numeric: bool = False) -> str:
    if spec.width is None or len(s) >= spec.width:
        return s
    fill = spec.width - len(s)
    if spec.minus:
        return s + " " * fill
    if spec.zero and numeric:
        sign = s[0] if s[:1] in ("-", "+", " ") else ""
        return sign + "0" * fill + s[len(sign) :]
    if spec.zero and not numeric:
        return "0" * fill + s
    return " " * fill + s


def _sign(neg: bool, spec: _Spec) -> str:
    return "-" if neg else ("+" if spec.plus else (" " if spec.space else ""))


def _fmt_int(n: int, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(_rune(n), spec)
    if verb == "q":
        return _pad("'" + _rune(n).replace("\\", "\\\\").replace("'", "\\'") + "'", spec)
    if verb == "U":
        body = f"U+{n:04X}" if n >= 0 else f"U+{n & 0xFFFFFFFFFFFFFFFF:04X}"
        if spec.sharp and 0 <= n <= 0x10FFFF:
            body += f" '{_rune(n)}'"
        return _pad(body, spec)
    base = {"d": 10, "v": 10, "x": 16, "X": 16, "o": 8, "O": 8, "b": 2}.get(verb)
    if base is None:
        return f"%!{verb}(int64={n})"
    digits = {10: str(abs(n)), 16: format(abs(n), "x"), 8: format(abs(n), "o"), 2: format(abs(n), "b")}[base]
    if verb == "X":
        digits = digits.upper()
    if spec.prec is not None:
        digits = "" if spec.prec == 0 and n == 0 else digits.rjust(spec.prec, "0")
    prefix = ""
    if verb == "O":
        prefix = "0o"
    elif spec.sharp:
        prefix = {16: "0x" if verb == "x" else "0X", 8: "0" if not digits.startswith("0") else "", 2: "0b"}.get(
            base, ""
        )
    body = _sign(n < 0, spec) + prefix + digits
    zero_ok = spec.prec is None
    return _pad(body, spec, numeric=zero_ok) if zero_ok else _pad(body, _no_zero(spec))


def _no_zero(spec: _Spec) -> _Spec:
    s = _Spec()
    s.minus, s.width = spec.minus, spec.width
    return s


def _rune(n: int) -> str:
    if n < 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
        return "\ufffd"
    return chr(n)


def _fmt_float(x: float, spec: _Spec) -> str:
    verb = spec.verb
    if not math.isfinite(x):
        if math.isnan(x):
            text = "+NaN" if spec.plus else (" NaN" if spec.space else "NaN")
        else:
            text = "-Inf" if x < 0 else (" Inf" if spec.space and not spec.plus else "+Inf")
        return _pad(text, _no_zero(spec))
    neg = math.copysign(1.0, x) < 0
    if verb in ("v", "g", "G") and spec.prec is None:
        body = go_float_g(abs(x), "E" if verb == "G" else "e")
        if spec.sharp and "." not in body:
            body = _sharp_g(abs(x), spec, verb)
    elif verb in ("e", "E"):
        body = format(abs(x), f"{'#' if spec.sharp else ''}.{6 if spec.prec is None else spec.prec}{verb}")
    elif verb in ("f", "F"):
        body = format(abs(x), f"{'#' if spec.sharp else ''}.{6 if spec.prec is None else spec.prec}f")
    else:  # g/G with precision
        body = format(abs(x), f"{'#' if spec.sharp else ''}.{spec.prec}{'G' if verb == 'G' else 'g'}")
    return _pad(_sign(neg, spec) + body, spec, numeric=True)


def _sharp_g(x: float, spec: _Spec, verb: str) -> str:
    return format(x, f"#.6{'G' if verb == 'G' else 'g'}")


def _fmt_str(s: str, raw: bytes, spec: _Spec) -> str:
    verb = spec.verb
    if verb in ("s", "v"):
        if spec.prec is not None:
            s = s[: spec.prec]
        return _pad(s, spec)
    if verb == "q":
        return _pad(_go_quote(s), spec)
    if verb in ("x", "X"):
        data = raw if spec.prec is None else raw[: spec.prec]
        out = data.hex() if not spec.space else " ".join(f"{b:02x}" for b in data)
        if spec.sharp:
            out = ("0x" + out) if not spec.space else " ".join("0x" + p for p in out.split(" "))
        return _pad(out.upper() if verb == "X" else out, spec)
    return f"%!{verb}(string={s})"


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
}


def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        escaped = _GO_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif 0xDC80 <= code <= 0xDCFF:  # an invalid byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _format_one(v: Any, spec: _Spec, name: str) -> str:
    """Format one Lua value with one verb, the way gopher-lua's ``Format`` methods feed Go's fmt."""
    t = _lua_type(v)
    verb = spec.verb
    if t == "number":
        x = v if isinstance(v, float) and not math.isfinite(v) else float(v)
        if verb in ("q", "s"):
            text = go_number_string(v)
            return _fmt_str(text, text.encode(), spec)
        if verb in ("b", "c", "d", "o", "x", "X", "U", "O"):
            return _fmt_int(_int64(x) if isinstance(v, float) else _clamp64(v), spec)
        if verb in ("e", "E", "f", "F", "g", "G"):
            return _fmt_float(x, spec)
        if verb == "i":
            spec.verb = "d"
            return _fmt_int(_int64(x) if isinstance(v, float) else _clamp64(v), spec)
        if isinstance(v, int) or _is_integer(x):
            if verb == "v":
                spec.verb = "d"
                return _fmt_int(_clamp64(v) if isinstance(v, int) else _int64(x), spec)
            return f"%!{verb}(int64={_clamp64(v) if isinstance(v, int) else _int64(x)})"
        if verb == "v":
            return _fmt_float(x, spec)
        return f"%!{verb}(float64={go_float_g(x)})"
    if t == "string":
        raw = bytes(v)
        if verb in ("d", "i"):
            number = _parse_lua_number(raw)
            if number is None:  # gopher-lua's inverted check: an unparsable string formats the zero number
                spec.verb = "d"
                return _fmt_int(0, spec)
            spec.verb = "s"
            return _fmt_str(_decode(raw), raw, spec)
        return _fmt_str(_decode(raw), raw, spec)
    text = "nil" if t == "nil" else ("true" if v is True else ("false" if v is False else name))
    if verb in ("s", "v", "q", "x", "X"):
        return _fmt_str(text, text.encode(), spec)
    type_name = _TYPE_NAMES.get(t, "*lua.LTable" if name.startswith("table") else "*lua.LFunction")
    return f"%!{verb}({type_name}={text})"


def _clamp64(n: int) -> int:
    return n if INT64_MIN <= n < (1 << 63) else INT64_MIN


def _parse_lua_number(raw: bytes) -> float | None:
    text = raw.decode("latin-1").strip(" \t\n")
    try:
        if text.lower().startswith(("0x", "-0x", "+0x")):
            return float(int(text, 16))
        return float(text)
    except ValueError:
        return None


def go_format(fmt: bytes, args: list[Any], names: list[str] | None = None) -> bytes:
    """gopher-lua's ``string.format``: ``fmt.Sprintf(fmt, args[:npat]...)`` with Lua values as arguments.

    ``names`` holds ``tostring`` of each argument (used for tables and functions).
    """
    names = names or [""] * len(args)
    npat = fmt.count(b"%") - fmt.count(b"%%")
    used_args = args[: max(0, min(npat, len(args)))]
    text = fmt.decode("utf-8", "surrogateescape")
    out: list[str] = []
    i, n, argi = 0, len(text), 0
    while i < n:
        j = text.find("%", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        i = j + 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec = _Spec()
        while i < n and text[i] in "+-# 0":
            c = text[i]
            if c == "+":
                spec.plus = True
            elif c == "-":
                spec.minus, spec.zero = True, False
            elif c == "#":
                spec.sharp = True
            elif c == " ":
                spec.space = True
            elif c == "0":
                spec.zero = not spec.minus
            i += 1
        start = i
        while i < n and text[i].isdigit():
            i += 1
        if i > start:
            spec.width = int(text[start:i])
        if i < n and text[i] == ".":
            i += 1
            start = i
            while i < n and text[i].isdigit():
                i += 1
            spec.prec = int(text[start:i]) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec.verb = text[i]
        i += 1
        if spec.verb == "%":
            out.append("%")
            continue
        if argi >= len(used_args):
            out.append(f"%!{spec.verb}(MISSING)")
            continue
        out.append(_format_one(used_args[argi], spec, names[argi]))
        argi += 1
    if argi < len(used_args):
        extra = ", ".join(
            f"{_TYPE_NAMES.get(_lua_type(v), '*lua.LTable')}={_value_v(v, names[argi + k])}"
            for k, v in enumerate(used_args[argi:])
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out).encode("utf-8", "surrogateescape")


def _value_v(v: Any, name: str) -> str:
    t = _lua_type(v)
    if t == "number":
        return go_number_string(v)
    if t == "string":
        return _decode(bytes(v))
    if t == "nil":
        return "nil"
    if t == "boolean":
        return "true" if v else "false"
    return name
