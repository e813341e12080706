"""Lua error texts, as Nakama logs them and as the replay runtime reports them.

Nakama's Lua is gopher-lua; the replay runtime's is PUC Lua 5.1. Both put ``file:line:`` in front of an
error and add a ``stack traceback:``, but runtime errors are worded differently: for ``holder.team`` with
``holder == nil`` PUC Lua says ``attempt to index local 'holder' (a nil value)``, gopher-lua ``attempt to
index a non-table object(nil) with key 'team'``. ``error_class`` maps both wordings to one class
(``lua:index``, ``lua:call``, ``lua:arith``, ``lua:concat``, ``lua:compare``, ``lua:length``,
``lua:bad-argument``, ``lua:stack-overflow``, ``lua:table-index``, ``lua:error`` for ``error(...)`` and
anything else), so a crash signature can compare the location and the class, not the raw text.
"""

from __future__ import annotations

import re

__all__ = ["split_traceback", "error_location", "error_message", "error_class"]

_LOCATION = re.compile(r"^(?P<file>[^\n]*?\.lua):(?P<line>\d+): ")
_CLASSES = (
    ("lua:index", re.compile(r"attempt to index (?:a non-table object|(?:local|global|field|upvalue|method) '|a )")),
    ("lua:call", re.compile(r"attempt to call ")),
    ("lua:arith", re.compile(r"attempt to perform arithmetic|cannot perform (?!concat)\w+ operation between|__unm undefined")),
    ("lua:concat", re.compile(r"attempt to concatenate|cannot perform concat operation")),
    ("lua:compare", re.compile(r"attempt to compare ")),
    ("lua:length", re.compile(r"attempt to get length|__len undefined")),
    ("lua:bad-argument", re.compile(r"bad argument #\d+ to ")),
    ("lua:stack-overflow", re.compile(r"stack overflow")),
    ("lua:table-index", re.compile(r"table index is (?:nil|NaN)")),
)


def split_traceback(text: str) -> tuple[str, str]:
    """``"file:line: msg\\nstack traceback:\\n..."`` -> (``"file:line: msg"``, ``"stack traceback:\\n..."``)."""
    head, sep, tail = text.partition("\nstack traceback:")
    return head, ("stack traceback:" + tail) if sep else ""


def error_location(text: str) -> tuple[str, int] | None:
    """The ``(file, line)`` an error text starts with, or None (an error raised with level 0)."""
    m = _LOCATION.match(text)
    return (m.group("file"), int(m.group("line"))) if m else None


def error_message(text: str) -> str:
    """The error text without its ``file:line:`` prefix and without the traceback."""
    head = split_traceback(text)[0]
    m = _LOCATION.match(head)
    return head[m.end() :] if m else head


def error_class(text: str) -> str:
    """The class of a Lua error text, the same for PUC Lua's and gopher-lua's wording."""
    message = error_message(text)
    for name, pattern in _CLASSES:
        if pattern.search(message):
            return name
    return "lua:error"
