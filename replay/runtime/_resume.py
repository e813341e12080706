"""How a recording that starts mid-match (a slice, ``nakama-replay slice``) starts: a resume point.

A slice's header holds ``tags["slice"]["resume"]``: the match as it was just before its first tick, and
its first call is an ``InitCall`` whose recorded outcome is that moment's tick rate, label and state
digest. ``MatchRuntime`` meets the init call, finds the resume point and takes the match over from it
instead of calling ``match_init`` (Nakama never calls ``match_init`` twice either)::

    "resume": {"tick": A, "tick_rate": 10, "label": "...", "state": <the state, as plain data>,
               "presences": [[user_id, session_id, username, node], ...],
               "accepted": {session_id: bool}, "pending_kicks": [[...], ...],
               "storage": [[collection, key, user_id, object], ...],
               "sources": <the derived random source's state, or null>}

The state is plain data (maps, arrays, strings, numbers, booleans, nil): a Python handler gets it as is,
a Lua handler as tables (``state_from_value``). A header is untrusted input: ``resume_point`` checks every
field and raises ``RecordingError`` naming it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import RecordingError
from recorder.format._model import Header, Presence

__all__ = ["ResumePoint", "resume_point"]


@dataclass(slots=True)
class ResumePoint:
    """The match just before tick ``tick``."""

    tick: int
    tick_rate: int
    label: str
    state: Any
    presences: list[Presence] = field(default_factory=list)
    accepted: dict[str, bool] = field(default_factory=dict)
    pending_kicks: list[Presence] = field(default_factory=list)
    storage: list[list[Any]] = field(default_factory=list)
    sources: Any = None

    def to_tag(self) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "tick_rate": self.tick_rate,
            "label": self.label,
            "state": self.state,
            "presences": [[p.user_id, p.session_id, p.username, p.node] for p in self.presences],
            "accepted": dict(self.accepted),
            "pending_kicks": [[p.user_id, p.session_id, p.username, p.node] for p in self.pending_kicks],
            "storage": [list(row) for row in self.storage],
            "sources": self.sources,
        }

    def apply(self, runtime: Any) -> Any:
        """Put ``runtime`` (a ``MatchRuntime`` before its first call) where this point says; returns the
        handler's state."""
        handler = runtime.handler
        convert = getattr(handler, "state_from_value", None)
        state = convert(self.state) if convert is not None else copy.deepcopy(self.state)
        runtime.tick = self.tick
        runtime.tick_rate = self.tick_rate
        runtime.presences[:] = list(self.presences)
        runtime.dispatcher.label = self.label
        runtime.ctx["match_label"] = self.label
        runtime.ctx["match_tick_rate"] = self.tick_rate
        runtime.accepted = dict(self.accepted)
        runtime.pending_kicks = list(self.pending_kicks)
        runtime.nk.storage.objects = {(c, k, u): dict(obj) for c, k, u, obj in self.storage}
        if self.sources is not None and hasattr(runtime.sources, "setstate"):
            runtime.sources.setstate(_tuples(self.sources))
        return state


def _tuples(v: Any) -> Any:
    """``random.Random.setstate`` wants tuples where msgpack gives lists."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _bad(path: str, field_name: str, problem: str) -> RecordingError:
    return RecordingError(f"{path}: the slice's resume point: {field_name}: {problem}")


def _presences(rows: Any, path: str, name: str) -> list[Presence]:
    if not isinstance(rows, list):
        raise _bad(path, name, "not a list")
    out = []
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 4 and all(isinstance(x, str) for x in row)):
            raise _bad(path, f"{name}[{i}]", "not [user_id, session_id, username, node]")
        out.append(Presence(*row))
    return out


def resume_point(header: Header, path: str = "<recording>") -> ResumePoint | None:
    """The resume point of a slice's header, or None for a recording that starts with ``match_init`` (every
    recording but a slice from a later tick)."""
    tags = header.tags if isinstance(header.tags, dict) else {}
    sl = tags.get("slice")
    if sl is None:
        return None
    if not isinstance(sl, dict):
        raise _bad(path, "slice", "not a map")
    if "resume" not in sl:
        return None  # a slice from the recording's first tick starts with its match_init
    r = sl["resume"]
    if not isinstance(r, dict):
        raise _bad(path, "slice.resume", "missing or not a map")
    tick, rate, label = r.get("tick"), r.get("tick_rate"), r.get("label")
    if not (type(tick) is int and tick >= 0):
        raise _bad(path, "tick", f"{tick!r} is not a tick")
    if not (type(rate) is int and 1 <= rate <= 60):
        raise _bad(path, "tick_rate", f"{rate!r} is not a tick rate 1..60")
    if not isinstance(label, str):
        raise _bad(path, "label", "not a string")
    if "state" not in r or r["state"] is None:
        raise _bad(path, "state", "missing (a match's state is never nil)")
    accepted = r.get("accepted", {})
    if not (
        isinstance(accepted, dict) and all(isinstance(k, str) and isinstance(v, bool) for k, v in accepted.items())
    ):
        raise _bad(path, "accepted", "not a map of session ids to booleans")
    storage = r.get("storage", [])
    if not (
        isinstance(storage, list)
        and all(
            isinstance(row, list)
            and len(row) == 4
            and all(isinstance(x, str) for x in row[:3])
            and isinstance(row[3], dict)
            for row in storage
        )
    ):
        raise _bad(path, "storage", "not a list of [collection, key, user_id, object]")
    sources = r.get("sources")
    if sources is not None and not (isinstance(sources, list) and len(sources) == 3):
        raise _bad(path, "sources", "not a random source state")
    return ResumePoint(
        tick,
        rate,
        label,
        r["state"],
        _presences(r.get("presences", []), path, "presences"),
        dict(accepted),
        _presences(r.get("pending_kicks", []), path, "pending_kicks"),
        storage,
        sources,
    )
