"""The parts of Nakama's Lua standard library that Nakama writes in Go, re-done in Python with Go's rules.

- ``bit32`` (Nakama's ``runtime_lua_bit32.go``): 32-bit unsigned operations on Lua numbers.
- ``os.time(table)`` and ``os.date(format, time)`` (Nakama's ``runtime_lua_oslib.go``): UTC, Go's
  ``time.Date`` normalisation (month 13 is January of the next year), defaults hour 12, and Nakama's own
  ``strftime`` table (``%c`` is ``02 Jan 06 15:04 MST``, ``%x`` is ``15/04/05``; unknown directives stay
  as written).

Functions raise ``LuaArgError`` (argument number and message) for the caller to turn into a Lua error
with gopher-lua's wording, ``bad argument #N to NAME (MESSAGE)``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LuaRaise", "LuaPanic", "LuaArgError", "BIT32", "unix_from_fields", "strftime", "date_table"]

_MASK = 0xFFFFFFFF


class LuaRaise(Exception):
    """An error a library function raises in Lua (gopher-lua's ``RaiseError``): just the message."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class LuaPanic(LuaRaise):
    """A Go panic inside a library function (``rand.Intn(0)``): gopher-lua's PCall turns it into an error
    whose text is the panic's, with no position."""


class LuaArgError(LuaRaise):
    """A bad argument to a library function: ``bad argument #index to name (message)``."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


def _int64(v: Any, index: int) -> int:
    """gopher-lua's ``CheckInt64``: a number (truncated) or a numeric string."""
    if isinstance(v, bool) or v is None or not isinstance(v, (int, float, bytes)):
        raise LuaArgError(index, f"number expected, got {_type_name(v)}")
    if isinstance(v, bytes):
        try:
            v = float(v.decode("latin-1").strip())
        except ValueError:
            raise LuaArgError(index, "number expected, got string") from None
    if isinstance(v, float):
        if math.isnan(v) or not -(2.0**63) <= v < 2.0**63:
            return -(1 << 63)
        return int(v)
    return int(v)


def _type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, bytes):
        return "string"
    return "table"


def _u32(v: Any, index: int) -> int:
    return _int64(v, index) & _MASK


def _fold(op: Any, start: int, args: tuple[Any, ...]) -> int:
    """Nakama's variadic bit32 functions: the first argument (or ``start``), then numbers until a nil."""
    out = _u32(args[0], 1) if args and args[0] is not None else start
    for i, a in enumerate(args[1:], 2):
        if a is None:
            break
        if isinstance(a, bool) or not isinstance(a, (int, float)):
            raise LuaArgError(i, f"number expected, got {_type_name(a)}")
        out = op(out, _u32(a, i))
    return out


def _band(*args: Any) -> int:
    return _fold(int.__and__, _MASK, args)


def _bor(*args: Any) -> int:
    return _fold(int.__or__, 0, args)


def _bxor(*args: Any) -> int:
    return _fold(int.__xor__, 0, args)


def _btest(*args: Any) -> bool:
    return _fold(int.__and__, _MASK, args) != 0


def _bnot(a: Any = None) -> int:
    return ~_u32(a, 1) & _MASK


def _lshift(a: Any = None, n: Any = None) -> int:
    x, s = _u32(a, 1), _int64(n, 2)
    if s < 0:
        return (x >> -s) & _MASK if -s < 32 else 0
    return (x << s) & _MASK if s < 32 else 0


def _rshift(a: Any = None, n: Any = None) -> int:
    x, s = _u32(a, 1), _int64(n, 2)
    if s < 0:
        return (x << -s) & _MASK if -s < 32 else 0
    return x >> s if s < 32 else 0


def _arshift(a: Any = None, n: Any = None) -> int:
    x, s = _u32(a, 1), _int64(n, 2)
    if s < 0:
        return (x << -s) & _MASK if -s < 32 else 0
    if x >> 31:
        if s >= 32:
            return _MASK
        return ((x >> s) | (((1 << s) - 1) << (32 - s))) & _MASK
    return x >> s if s < 32 else 0


def _lrotate(a: Any = None, n: Any = None) -> int:
    x, s = _u32(a, 1), _int64(n, 2) % 32
    return ((x << s) | (x >> (32 - s))) & _MASK


def _rrotate(a: Any = None, n: Any = None) -> int:
    x, s = _u32(a, 1), _int64(n, 2) % 32
    return ((x >> s) | (x << (32 - s))) & _MASK


def _field(f: Any, w: Any, index: int) -> tuple[int, int]:
    field, width = _int64(f, index), 1 if w is None else _int64(w, index + 1)
    if field < 0 or field > 31 or width < 1 or width > 32 or field + width > 32:
        raise LuaRaise("trying to access non-existent bits")
    return field, width


def _extract(n: Any = None, f: Any = None, w: Any = None) -> int:
    x = _u32(n, 1)
    field, width = _field(f, w, 2)
    return (x >> field) & ((1 << width) - 1)


def _replace(n: Any = None, v: Any = None, f: Any = None, w: Any = None) -> int:
    x, value = _u32(n, 1), _u32(v, 2)
    field, width = _field(f, w, 3)
    mask = ((1 << width) - 1) << field
    return (x & ~mask | (value << field) & mask) & _MASK


#: bit32 function name -> implementation (arguments as the Lua runtime passes them)
BIT32 = {
    "arshift": _arshift,
    "band": _band,
    "bnot": _bnot,
    "bor": _bor,
    "btest": _btest,
    "bxor": _bxor,
    "extract": _extract,
    "replace": _replace,
    "lrotate": _lrotate,
    "lshift": _lshift,
    "rrotate": _rrotate,
    "rshift": _rshift,
}


# -- time ----------------------------------------------------------------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400  # Python's // floors: years before 0 need no correction
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


def unix_from_fields(year: int, month: int, day: int, hour: int = 12, minute: int = 0, sec: int = 0) -> int:
    """Go's ``time.Date(...).Unix()`` in UTC, out-of-range fields normalised as Go does."""
    m0 = month - 1
    year += m0 // 12
    m0 %= 12
    days = _days_from_civil(year, m0 + 1, 1) + day - 1
    return days * 86400 + hour * 3600 + minute * 60 + sec


_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _parts(t: int) -> tuple[int, int, int, int, int, int, int, int]:
    days, rem = divmod(t, 86400)
    y, m, d = _civil_from_days(days)
    wday = (days + 4) % 7  # 1970-01-01 was a Thursday
    yday = days - _days_from_civil(y, 1, 1) + 1
    return y, m, d, rem // 3600, rem % 3600 // 60, rem % 60, wday, yday


def date_table(t: int) -> dict[str, Any]:
    """``os.date("*t", t)`` as Nakama builds it (UTC, ``isdst`` false)."""
    y, m, d, hh, mm, ss, wday, yday = _parts(t)
    return {
        "year": y,
        "month": m,
        "day": d,
        "hour": hh,
        "min": mm,
        "sec": ss,
        "wday": wday,
        "yday": yday,
        "isdst": False,
    }


def strftime(t: int, fmt: str) -> str:
    """Nakama's ``strftime`` (``server/runtime_lua_utils.go``) for a UTC unix time."""
    y, m, d, hh, mm, ss, wday, _ = _parts(t)
    hour12 = hh % 12 or 12
    table = {
        "a": _DAYS[wday][:3],
        "A": _DAYS[wday],
        "b": _MONTHS[m - 1][:3],
        "B": _MONTHS[m - 1],
        "c": f"{d:02d} {_MONTHS[m - 1][:3]} {y % 100:02d} {hh:02d}:{mm:02d} UTC",
        "d": f"{d:02d}",
        "F": f"{y:04d}-{m:02d}-{d:02d}",
        "H": f"{hh:02d}",
        "I": f"{hour12:02d}",
        "m": f"{m:02d}",
        "M": f"{mm:02d}",
        "p": "PM" if hh >= 12 else "AM",
        "P": "pm" if hh >= 12 else "am",
        "S": f"{ss:02d}",
        "x": f"{hh:02d}/{mm:02d}/{ss:02d}",
        "X": f"{hh:02d}:{mm:02d}:{ss:02d}",
        "y": f"{y % 100:02d}",
        "Y": f"{y:04d}",
        "z": "+0000",
        "Z": "UTC",
        "w": str(wday),
    }
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "%" and i + 1 < n:
            nxt = fmt[i + 1]
            out.append("%" if nxt == "%" else table.get(nxt, "%" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
