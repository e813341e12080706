"""Validation at the door: the one place that checks values read from untrusted input.

Recordings, JSON Lines files and server logs come from elsewhere (production, bug reports, object
storage). Every reader checks what it takes in with these helpers before building a record from it:
``recorder.format._codec`` (chunk payloads), ``recorder.format._jsonl`` (JSON Lines) and ``recorder.capture._ingest`` /
``recorder.capture._nakama_log`` (server logs). One convention for all of them:

- a check is ``check(value, field) -> value`` and returns what it was given (or the value it stands for);
- a bad value raises ``recorder.errors.InvalidValue(field, problem)``: ``field`` names the place in the
  reader's own terms (``messages[2].op_code``, ``o.b[0][1]``), ``problem`` says what is wrong with it;
- each reader turns it into its public error, adding where it was: ``CorruptRecording`` (file, byte
  offset, chunk), ``InterchangeError`` (file, line) or a damaged log line (file:line). Only the small
  helpers that check one value (``codec.decode_header``, ``jsonl.from_json_value``,
  ``nakama_log.parse_ts_ms``, ``nakama_log.crash_of``) raise ``InvalidValue`` itself.

The limits (docs/reference/format.md, "Limits on input"):

- ``MAX_DEPTH``: a free-form value (params, metadata, vars, tags, nondeterministic values, wire
  envelopes, logged states) nests at most this many arrays and maps;
- integers in free-form values fit msgpack (``INT64_MIN`` .. ``UINT64_MAX``); typed fields are int64
  (op codes, times, reasons), ticks ``0`` .. ``INT64_MAX``, digests uint64;
- numbers read from JSON are finite (JSON Lines writes non-finite floats as ``{"$float": ...}``);
- ``MAX_ID_LENGTH``: a match id is 1 to 128 characters without control characters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from recorder.errors import InvalidValue, json_error_text

__all__ = [
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "INT64_MIN",
    "INT64_MAX",
    "UINT64_MAX",
    "show",
    "integer",
    "int64",
    "uint64",
    "tick",
    "presence_index",
    "boolean",
    "text",
    "optional",
    "each",
    "value",
    "match_id",
    "parse_json",
]

MAX_DEPTH = 100
MAX_ID_LENGTH = 128
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

Check = Callable[[Any, str], Any]


def show(x: Any, limit: int = 60) -> str:
    """A short JSON-like rendering of ``x`` for messages: bounded in length and in depth (never recursing
    far into a hostile value)."""
    text = _show(x, 3)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(x: Any, depth: int) -> str:
    if x is None or x is True or x is False:
        return json.dumps(x)
    t = type(x)
    if t is int:
        digits = len(str(x)) if x.bit_length() < 10000 else None
        return str(x) if digits is not None and digits <= 40 else f"<integer of {digits or 'over 3000'} digits>"
    if t is float:
        return repr(x) if not math.isfinite(x) else json.dumps(x)
    if t is str:
        head = x[:80]
        return json.dumps(head, ensure_ascii=not head.isascii() and not head.isprintable())
    if isinstance(x, (bytes, bytearray)):
        return f"<{len(x)} bytes>"
    if t is list or t is tuple:
        if depth <= 0:
            return "[...]"
        return "[" + ", ".join(_show(v, depth - 1) for v in x[:4]) + (", ..." if len(x) > 4 else "") + "]"
    if t is dict:
        if depth <= 0:
            return "{...}"
        items = list(x.items())[:4]
        body = ", ".join(f"{_show(k, 0)}: {_show(v, depth - 1)}" for k, v in items)
        return "{" + body + (", ..." if len(x) > 4 else "") + "}"
    return f"<{t.__name__}>"


# -- scalars ---------------------------------------------------------------------------------------------


def integer(v: Any, field: str, lo: int = INT64_MIN, hi: int = INT64_MAX, *, whole_floats: bool = False) -> int:
    """An integer in ``lo..hi``. ``whole_floats`` also takes a float with no fraction (Lua numbers are
    doubles, and a JSON log may write ``3.0``)."""
    if type(v) is int:
        n = v
    elif whole_floats and type(v) is float and math.isfinite(v) and v.is_integer():
        n = int(v)
    else:
        raise InvalidValue(field, f"must be an integer, got {show(v)}")
    if not lo <= n <= hi:
        raise InvalidValue(field, f"must be {_range(lo, hi)}, got {show(v)}")
    return n


def _range(lo: int, hi: int) -> str:
    names = {
        (INT64_MIN, INT64_MAX): "an int64 (-2^63 to 2^63-1)",
        (0, UINT64_MAX): "a uint64 (0 to 2^64-1)",
        (0, INT64_MAX): "between 0 and 2^63-1",
    }
    return names.get((lo, hi), f"between {lo} and {hi}")


def int64(v: Any, field: str) -> int:
    """A signed 64-bit integer (op codes, times in ms, reasons, close codes)."""
    return integer(v, field)


def uint64(v: Any, field: str) -> int:
    """An unsigned 64-bit integer (state digests)."""
    return integer(v, field, 0, UINT64_MAX)


def tick(v: Any, field: str) -> int:
    """A tick: ``0`` .. ``INT64_MAX``."""
    return integer(v, field, 0, INT64_MAX)


def presence_index(v: Any, field: str, size: int) -> int:
    """An index into a chunk's presence table of ``size`` rows (``0`` .. ``size - 1``; never counted from
    the end, as Python would)."""
    if type(v) is not int:
        raise InvalidValue(field, f"must be a presence index, got {show(v)}")
    if not 0 <= v < size:
        raise InvalidValue(field, f"presence index {show(v)} is outside the chunk's table of {size} presences")
    return v


def boolean(v: Any, field: str) -> bool:
    if type(v) is not bool:
        raise InvalidValue(field, f"must be true or false, got {show(v)}")
    return v


def text(v: Any, field: str) -> str:
    if type(v) is not str:
        raise InvalidValue(field, f"must be a string, got {show(v)}")
    return v


def optional(check: Check) -> Check:
    """``check`` for a value that may also be None (nil / null)."""

    def opt(v: Any, field: str) -> Any:
        return None if v is None else check(v, field)

    return opt


def each(check: Check) -> Callable[[Any, str], list[Any]]:
    """A list (array) whose every item passes ``check``."""

    def items(v: Any, field: str) -> list[Any]:
        if type(v) is not list:
            raise InvalidValue(field, f"must be a list, got {show(v)}")
        return [check(x, f"{field}[{i}]") for i, x in enumerate(v)]

    return items


def match_id(v: Any, field: str) -> str:
    """A match id: 1 to ``MAX_ID_LENGTH`` characters, none of them a control character. (Nakama's are
    ``<uuid>.<node>``; file names made from them are escaped separately.)"""
    s = text(v, field)
    if not s:
        raise InvalidValue(field, "a match id cannot be empty")
    if len(s) > MAX_ID_LENGTH:
        raise InvalidValue(field, f"a match id of {len(s)} characters (at most {MAX_ID_LENGTH})")
    if not s.isprintable():
        bad = next(c for c in s if not c.isprintable())
        raise InvalidValue(field, f"a match id cannot hold the character U+{ord(bad):04X}")
    return s


# -- free-form values ------------------------------------------------------------------------------------

_SCALARS = (type(None), bool, str, bytes)
_JSON_SCALARS = (type(None), bool, str)


def value(v: Any, field: str, *, from_json: bool = False, max_depth: int = MAX_DEPTH) -> Any:
    """A free-form value (params, metadata, states...): at most ``max_depth`` nested arrays and maps,
    integers that msgpack holds, map keys that are scalars. ``from_json``: a value parsed from JSON, whose
    numbers must also be finite. Returns ``v`` unchanged. Iterative: a hostile depth costs no stack."""
    scalars = _JSON_SCALARS if from_json else _SCALARS
    stack: list[tuple[Any, int, Any]] = [(v, 0, None)]  # (value, depth, link): link = (parent link, key)
    pop, push = stack.pop, stack.append
    while stack:
        x, depth, link = pop()
        t = type(x)
        if t in scalars:
            continue
        problem = None
        if t is int:
            if not INT64_MIN <= x <= UINT64_MAX:
                problem = f"an integer must fit in 64 bits, got {show(x)}"
        elif t is float:
            if from_json and not math.isfinite(x):
                problem = f"a number must be finite, got {show(x)}"
        elif t is list or t is dict:
            if depth >= max_depth:
                problem = f"nested deeper than {max_depth} levels of arrays and maps"
            elif t is list:
                for i, item in enumerate(x):
                    push((item, depth + 1, (link, i)))
            else:
                for k, item in x.items():
                    kt = type(k)
                    if kt is not str:
                        if from_json or not (kt in _SCALARS or kt is int or kt is float):
                            problem = f"a map key must be a string or another scalar, got {show(k)}"
                            break
                        push((k, depth + 1, (link, _KEY)))
                    push((item, depth + 1, (link, k)))
        elif from_json or not _is_ext(x):
            problem = f"unexpected value of type {t.__name__}"
        if problem is not None:
            raise InvalidValue(_path(field, link), problem)
    return v


_KEY = object()  # a path step into a map key itself


def _path(field: str, link: Any) -> str:
    steps = []
    while link is not None:
        link, key = link
        steps.append(key)
    out = field
    for key in reversed(steps):
        if key is _KEY:
            out += ".<key>"
        elif type(key) is int:
            out += f"[{key}]"
        elif type(key) is str:
            out = f"{out}.{key[:40]}" if out else key[:40]
        else:
            out += f"[{show(key, 20)}]"
    return out


def _is_ext(x: Any) -> bool:
    import msgpack  # only reached for the rare extension values

    return isinstance(x, (msgpack.ExtType, msgpack.Timestamp))


# -- JSON text -------------------------------------------------------------------------------------------

_JSON = json.JSONDecoder()


def parse_json(text: str, decoder: json.JSONDecoder = _JSON) -> Any:
    """``decoder.decode(text)``, with every way that fails as ``InvalidValue("", problem)``: not JSON (with
    the column), nested too deeply for the parser, an integer literal longer than Python converts.
    ``decoder`` hooks may raise ``InvalidValue`` themselves."""
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue("", f"not valid JSON: {json_error_text(exc)}") from None
    except RecursionError:
        raise InvalidValue("", f"nested deeper than {MAX_DEPTH} levels of arrays and maps") from None
    except InvalidValue:
        raise
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        if "integer string conversion" in str(exc):
            raise InvalidValue("", "not usable JSON: an integer of more than 4300 digits") from None
        raise InvalidValue("", f"not usable JSON: {exc}") from None
