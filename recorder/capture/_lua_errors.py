"""Lua error texts, as Nakama logs them and as the replay runtime reports them.

Nakama's Lua is gopher-lua; the replay runtime's is LuaJIT (a Lua 5.1). Both put ``file:line:`` in front of an
error and add a ``stack traceback:``, but runtime errors are worded differently: for ``holder.team`` with
``holder == nil`` LuaJIT (as PUC Lua) says ``attempt to index local 'holder' (a nil value)``, gopher-lua ``attempt to
index a non-table object(nil) with key 'team'``. These helpers split such a text into its location, its
message and its traceback; ``replay.runtime.lua_error_class`` maps both wordings to one class.
"""

from __future__ import annotations

import re

__all__ = ["split_traceback", "error_location", "error_message"]

_LOCATION = re.compile(r"^(?P<file>[^\n]*?\.lua):(?P<line>\d+): ")


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
