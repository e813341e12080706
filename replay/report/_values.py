"""Values made readable or JSON-ready for reports: one convention for every command and result type."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from recorder._b64 import b64
from recorder.format import Presence

__all__ = ["describe_data", "exact_bytes", "jsonable", "presence_json", "short"]


def short(v: Any, limit: int = 160) -> str:
    """``repr(v)``, cut after ``limit`` characters (``...`` says it was cut)."""
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


def describe_data(data: bytes | None, limit: int = 120) -> str | None:
    """Message data for people: UTF-8 text when it is printable text, else ``base64:...``."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
        if text.isprintable():
            return text if len(text) <= limit else text[:limit] + "..."
    except UnicodeDecodeError:
        pass
    text = b64(data)
    return "base64:" + (text if len(text) <= limit else text[:limit] + "...")


def presence_json(p: Presence) -> dict[str, Any]:
    """A presence as reports show it (``reason`` only when Nakama sets one)."""
    out: dict[str, Any] = {"user_id": p.user_id, "session_id": p.session_id, "username": p.username, "node": p.node}
    if p.reason:
        out["reason"] = p.reason
    return out


def exact_bytes(data: bytes) -> dict[str, str]:
    """Bytes as ``{"base64": ...}``: exact and never mistaken for text (state diffs, where b"a" and "a" differ)."""
    return {"base64": b64(data)}


def jsonable(v: Any, data: Callable[[bytes], Any] = describe_data) -> Any:
    """A value from a result (recorded or replayed: states, outcomes, call inputs) as JSON can hold it: bytes
    through ``data`` (``describe_data`` to read, ``exact_bytes`` to compare), presences through
    ``presence_json``, other dataclasses as their fields, tuples as lists, map keys as text, non-finite floats
    as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    if isinstance(v, (bytes, bytearray)):
        return data(bytes(v))
    if isinstance(v, dict):
        return {str(k): jsonable(x, data) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x, data) for x in v]
    if isinstance(v, Presence):
        return presence_json(v)
    if hasattr(v, "__dataclass_fields__"):
        return {k: jsonable(getattr(v, k), data) for k in v.__dataclass_fields__}
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return v
