"""The timeline of a handler-call recording, built by streaming it once: what happened, and when.

``build_timeline(path)`` reads the recording chunk by chunk and keeps, on one axis of ticks:

- a **lane per user**: each session's join and leave (with Nakama's leave reason), a later session of the
  same user as a **reconnect** (``overlaps`` when the old session had not left yet: a reconnect race),
  kicks the handler made, and join attempts it rejected;
- **densities** per tick: messages per op code, broadcasts, nondeterministic inputs consumed. A match
  longer than ``max_samples`` ticks is summed into buckets of several ticks (``Timeline.bucket``); the
  renderers build coarser levels from these samples;
- **markers**: signals (data and reply), label updates, terminate, the recording's crash marker (error and
  traceback), and the first divergence when one is given (``replay.timeline._divergence``);
- **details** of ticks for the hover panel and ``inspect --tick``: every call of the tick with its inputs,
  outcome and the nondeterministic values it consumed, within ``detail_budget`` bytes (estimated before
  any is built), the ticks nearest the crash, the divergence and presence changes first
  (``replay.timeline._details``).

Nothing here runs a handler or executes anything from the file. Memory is bounded by the number of
sessions, markers and density samples, plus the detail budget.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recorder.errors import RecordingError
from recorder.format._model import (
    CrashMarker,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
)
from replay.timeline._reading import open_for_reading

__all__ = [
    "REASONS",
    "Session",
    "Lane",
    "Marker",
    "Timeline",
    "build_timeline",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_DETAIL_BUDGET",
]

#: Nakama's presence reasons, as lanes and texts name them.
REASONS = {0: "unknown", 1: "join", 2: "update", 3: "leave", 4: "disconnect"}
DEFAULT_MAX_SAMPLES = 200_000  # density samples per series; a longer match is bucketed
DEFAULT_DETAIL_BUDGET = 6 * 1024 * 1024  # bytes of per-tick details (payloads) kept for hovering


@dataclass(slots=True)
class Session:
    """One session of a user in the match: from its join to its leave (None: still there at the end)."""

    session_id: str
    username: str
    join_tick: int | None = None
    leave_tick: int | None = None
    leave_reason: int | None = None
    reconnect: bool = False  # a later session of a user who had one before
    overlaps: bool = False  # ... who was still in the match with the earlier one (a reconnect race)
    kicked_tick: int | None = None  # the handler kicked it (the leave follows with reason 3)
    present_at_start: bool = False  # a slice: in the match when the slice begins


@dataclass(slots=True)
class Lane:
    """One user: their sessions in order, and join attempts the handler rejected."""

    user_id: str
    username: str
    client_version: str | None = None
    sessions: list[Session] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {tick, session_id, reason}


@dataclass(slots=True)
class Marker:
    """Something that happened at a tick: ``kind`` is signal, label, terminate, stopped, kick, reject,
    crash or divergence; ``text`` one line; ``info`` the details (JSON-ready)."""

    tick: int
    kind: str
    text: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Timeline:
    """Everything the renderers draw. ``densities`` maps a series name (``op 1``, ``broadcasts``,
    ``nondeterministic``) to counts per sample; sample ``i`` covers ticks ``first_tick + i * bucket`` to
    ``first_tick + (i + 1) * bucket - 1``."""

    recording: dict[str, Any]
    first_tick: int = 0
    last_tick: int = 0
    loops: int = 0
    calls: int = 0
    bucket: int = 1
    lanes: list[Lane] = field(default_factory=list)
    densities: dict[str, np.ndarray] = field(default_factory=dict)
    markers: list[Marker] = field(default_factory=list)
    crash: dict[str, Any] | None = None
    divergence: dict[str, Any] | None = None
    details: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    detail_ticks_total: int = 0  # ticks that had calls
    detail_budget: int = DEFAULT_DETAIL_BUDGET
    damage: list[dict[str, Any]] = field(default_factory=list)
    slice: dict[str, Any] | None = None
    integrity: dict[str, Any] | None = None  # recorder.format.Integrity.to_json(): only the intact part is drawn

    @property
    def complete(self) -> bool:
        """Whether the recording is complete (sealed, every chunk intact): else the timeline is its intact part."""
        return bool(self.integrity and self.integrity.get("complete"))

    @property
    def ticks(self) -> int:
        return self.last_tick - self.first_tick + 1

    def lane_of(self, user_id: str) -> Lane | None:
        return next((lane for lane in self.lanes if lane.user_id == user_id), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (density arrays as lists)."""
        return {
            "recording": self.recording,
            "first_tick": self.first_tick,
            "last_tick": self.last_tick,
            "loops": self.loops,
            "calls": self.calls,
            "bucket": self.bucket,
            "lanes": [asdict(lane) for lane in self.lanes],
            "densities": {k: v.tolist() for k, v in self.densities.items()},
            "markers": [asdict(m) for m in self.markers],
            "crash": self.crash,
            "divergence": self.divergence,
            "details": {str(t): d for t, d in sorted(self.details.items())},
            "detail_ticks": len(self.details),
            "detail_ticks_total": self.detail_ticks_total,
            "damage": self.damage,
            "slice": self.slice,
            "integrity": self.integrity,
        }


class _Lanes:
    """Presence bookkeeping as the runtime does it: a join of a session already in the match is dropped,
    a leave removes; lanes per user, in order of first appearance."""

    def __init__(self, client_versions: dict[str, str]) -> None:
        self.lanes: dict[str, Lane] = {}
        self.open: dict[str, Session] = {}  # session id -> its open session
        self.client_versions = client_versions

    def lane(self, p: Presence) -> Lane:
        lane = self.lanes.get(p.user_id)
        if lane is None:
            lane = self.lanes[p.user_id] = Lane(p.user_id, p.username, self.client_versions.get(p.user_id))
        elif p.username and not lane.username:
            lane.username = p.username
        return lane

    def join(self, p: Presence, tick: int, at_start: bool = False) -> None:
        if p.session_id in self.open:
            return
        lane = self.lane(p)
        s = Session(p.session_id, p.username, tick, present_at_start=at_start)
        if lane.sessions:
            s.reconnect = True
            s.overlaps = any(o.leave_tick is None and o.session_id in self.open for o in lane.sessions)
        lane.sessions.append(s)
        self.open[p.session_id] = s

    def leave(self, p: Presence, tick: int) -> bool:
        s = self.open.pop(p.session_id, None)
        if s is None:
            return False
        s.leave_tick, s.leave_reason = tick, p.reason
        return True

    def kicked(self, p: Presence, tick: int) -> None:
        s = self.open.get(p.session_id)
        if s is not None and s.kicked_tick is None:
            s.kicked_tick = tick


class _Series:
    """Counts per sample, grown as ticks arrive (the last tick is not known until the end)."""

    def __init__(self, first: int, bucket: int) -> None:
        self.first, self.bucket = first, bucket
        self.data = np.zeros(1024, dtype=np.uint32)

    def add(self, tick: int, n: int = 1) -> None:
        i = (tick - self.first) // self.bucket
        if i < 0:
            return
        if i >= len(self.data):
            grown = np.zeros(max(i + 1, len(self.data) * 2), dtype=np.uint32)
            grown[: len(self.data)] = self.data
            self.data = grown
        self.data[i] += n

    def trimmed(self, samples: int) -> np.ndarray:
        out = np.zeros(samples, dtype=np.uint32)
        n = min(samples, len(self.data))
        out[:n] = self.data[:n]
        return out


def _bucket_for(ticks_hint: int, max_samples: int) -> int:
    return max(1, -(-ticks_hint // max_samples))


def build_timeline(
    path: str | os.PathLike[str],
    *,
    divergence: dict[str, Any] | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    detail_budget: int = DEFAULT_DETAIL_BUDGET,
    from_tick: int | None = None,
    to_tick: int | None = None,
) -> Timeline:
    """Stream the recording at ``path`` into a ``Timeline`` (ticks ``from_tick``..``to_tick`` when given;
    presences that joined before ``from_tick`` are in their lanes from the start)."""
    from replay.timeline import _details

    with open_for_reading(path) as rec:
        h = rec.header
        if h.recording_kind == "wire":
            raise RecordingError(
                f"{path}: a wire recording (what sockets saw); the timeline shows handler calls: make them with "
                "`nakama-replay convert REC -o CALLS.nkrec --tick-rate N`, then view that"
            )
        tl = Timeline(
            recording={
                "path": str(path),
                "file": os.path.basename(str(path)),
                "size": rec.size,
                "match_id": h.match_id,
                "module": h.module,
                "tick_rate": h.tick_rate,
                "label": h.label,
                "source": h.source,
                "node": h.node,
            },
            detail_budget=detail_budget,
        )
        slice_tag = h.tags.get("slice") if isinstance(h.tags, dict) else None
        if isinstance(slice_tag, dict):
            tl.slice = {k: slice_tag.get(k) for k in ("from_tick", "to_tick", "of_match", "of_file", "state_from")}
        lanes = _Lanes(h.client_versions if isinstance(h.client_versions, dict) else {})
        if tl.slice is not None:  # a slice starts with the presences of its resume point (replay.runtime._resume)
            from replay.runtime._resume import resume_point

            point = resume_point(h, str(path))
            if point is not None:
                for p in point.presences:
                    lanes.join(p, point.tick, at_start=True)
        series: dict[str, _Series] = {}
        first = from_tick
        bucket = 0
        last = None
        tick_sizes: dict[int, int] = {}  # estimated detail bytes per tick
        tick_chunks: dict[int, tuple[int, int]] = {}  # tick -> (chunk offset, chunk index) of its first call
        label = None

        def count(name: str, tick: int, n: int = 1) -> None:
            s = series.get(name)
            if s is None:
                s = series[name] = _Series(tick if first is None else first, bucket)  # first is set by then
            s.add(tick, n)

        chunks = rec.chunks()
        for info, events in chunks:
            for e in events:
                if isinstance(e, WireEvent):
                    raise RecordingError(f"{path}: holds wire events; the timeline shows handler-call recordings")
                tick = e.tick
                if isinstance(e, CrashMarker):
                    if (from_tick is None or tick >= from_tick) and (to_tick is None or tick <= to_tick):
                        tl.crash = {
                            "callback": e.callback,
                            "tick": tick,
                            "error": e.error,
                            "traceback": e.traceback,
                            "error_type": getattr(e, "error_type", ""),
                        }
                    continue
                if to_tick is not None and tick > to_tick:
                    break
                if first is None:
                    first = tick
                if tick < first:
                    # calls before the range only build the presences the range starts with
                    _presences_only(e, lanes, first)
                    continue
                if not bucket:
                    span = (to_tick - first + 1) if to_tick is not None else max(1, _tick_hint(rec, h))
                    bucket = _bucket_for(span, max_samples)
                last = tick if last is None else max(last, tick)
                tl.calls += 1
                if tick not in tick_chunks:
                    tick_chunks[tick] = (info.offset, info.index)
                o = e.outcome
                if not isinstance(e, LoopCall):
                    tick_sizes[tick] = tick_sizes.get(tick, 0) + _details.estimate(e)
                if isinstance(e, LoopCall):
                    tl.loops += 1
                    msgs = e.messages
                    ops = [m.op_code for m in msgs]
                    size = sum([len(m.data) for m in msgs if m.data is not None])
                    tick_sizes[tick] = tick_sizes.get(tick, 0) + _details.estimate(e, size, len(ops))
                    if len(ops) == 1:
                        count(f"op {ops[0]}", tick)
                    elif ops:
                        for op in set(ops):
                            count(f"op {op}", tick, ops.count(op))
                elif isinstance(e, JoinAttemptCall):
                    lane = lanes.lane(e.presence)
                    version = (
                        e.metadata.get("client_version", e.metadata.get("v")) if isinstance(e.metadata, dict) else None
                    )
                    if isinstance(version, str) and lane.client_version is None:
                        lane.client_version = version
                    if o is not None and o.accept is False:
                        lane.rejected.append(
                            {"tick": tick, "session_id": e.presence.session_id, "reason": o.reason or ""}
                        )
                        tl.markers.append(
                            Marker(
                                tick,
                                "reject",
                                f"{_name(e.presence)}: join rejected" + (f" ({o.reason})" if o.reason else ""),
                                {"user_id": e.presence.user_id, "session_id": e.presence.session_id},
                            )
                        )
                elif isinstance(e, JoinCall):
                    for p in e.presences:
                        lanes.join(p, tick)
                elif isinstance(e, LeaveCall):
                    for p in e.presences:
                        lanes.leave(p, tick)
                elif isinstance(e, SignalCall):
                    reply = o.reply if o is not None else None
                    tl.markers.append(
                        Marker(
                            tick,
                            "signal",
                            f"signal {_clip(e.data)}" + (f" -> {_clip(reply)}" if reply is not None else ""),
                            {"data": e.data, "reply": reply},
                        )
                    )
                elif isinstance(e, TerminateCall):
                    tl.markers.append(
                        Marker(
                            tick,
                            "terminate",
                            f"terminate (grace {e.grace_seconds} s)",
                            {"grace_seconds": e.grace_seconds},
                        )
                    )
                elif isinstance(e, InitCall) and o is not None and o.label is not None:
                    label = o.label
                if e.nondeterministic:
                    count("nondeterministic", tick, len(e.nondeterministic))
                if o is not None:
                    if o.broadcasts:
                        count("broadcasts", tick, len(o.broadcasts))
                    for k in o.kicks:
                        lanes.kicked(k, tick)
                        tl.markers.append(
                            Marker(
                                tick,
                                "kick",
                                f"{_name(k)} kicked by the handler",
                                {"user_id": k.user_id, "session_id": k.session_id},
                            )
                        )
                    for text in o.label_updates:
                        if text != label:
                            tl.markers.append(Marker(tick, "label", f"label {_clip(text)}", {"label": text}))
                        label = text
                    if o.stopped:
                        tl.markers.append(
                            Marker(
                                tick,
                                "stopped",
                                f"{e.callback} returned no state: the match stopped",
                                {"callback": e.callback},
                            )
                        )
            else:
                continue
            break  # past to_tick
        chunks.close()
        integrity = rec.integrity()
        tl.integrity = integrity.to_json()
        tl.damage = [d.to_json() for d in integrity.damage]
    if first is None:
        first = from_tick or 0
    if last is None:
        last = first
    if tl.crash is not None:
        last = max(last, tl.crash["tick"])
    if to_tick is not None and from_tick is not None:
        last = max(last, min(to_tick, last))
    tl.first_tick, tl.last_tick = first, last
    tl.bucket = bucket or 1
    samples = -(-(last - first + 1) // tl.bucket)
    tl.densities = {name: s.trimmed(samples) for name, s in sorted(series.items(), key=lambda kv: _series_order(kv[0]))}
    tl.lanes = list(lanes.lanes.values())
    if tl.crash is not None:
        c = tl.crash
        first_line = c["error"].splitlines()[0] if c["error"] else "(no error text recorded)"
        tl.markers.append(Marker(c["tick"], "crash", f"crash in {c['callback']}: {first_line}", dict(c)))
    tl.divergence = divergence  # the comparison's answer, also when it found none
    if divergence is not None and divergence.get("tick") is not None:
        tl.markers.append(Marker(divergence["tick"], "divergence", _divergence_line(divergence), divergence))
    tl.markers.sort(key=lambda m: m.tick)
    tl.detail_ticks_total = len(tick_sizes)
    wanted = _details.choose_ticks(tl, tick_sizes, detail_budget)
    tl.details = _details.read_details(path, wanted, tick_chunks)
    return tl


def _presences_only(e: Any, lanes: _Lanes, first: int) -> None:
    if isinstance(e, JoinCall):
        for p in e.presences:
            lanes.join(p, first, at_start=True)
    elif isinstance(e, LeaveCall):
        for p in e.presences:
            s = lanes.open.pop(p.session_id, None)
            if s is not None:  # left before the range: not shown
                lane = lanes.lanes[p.user_id]
                lane.sessions.remove(s)
                if not lane.sessions and not lane.rejected:
                    del lanes.lanes[p.user_id]


def _tick_hint(rec: Any, h: Any) -> int:
    """An upper bound of the match's length in ticks from the tick index (frame heads only)."""
    try:
        index = rec.tick_index()
    except Exception:
        return 1
    ticks = [c.tick for c in index if c.tick >= 0]
    return (max(ticks) - min(ticks) + 1 + 256) if ticks else 1


def _series_order(name: str) -> tuple[int, int, str]:
    if name.startswith("op "):
        try:
            return (0, int(name[3:]), name)
        except ValueError:
            pass
    return (1, 0 if name == "broadcasts" else 1, name)


def _name(p: Presence) -> str:
    return p.username or p.user_id


def _clip(text: Any, limit: int = 60) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _divergence_line(d: dict[str, Any]) -> str:
    where = f"{d.get('callback')} at tick {d.get('tick')}"
    if d.get("ended_early"):
        return f"not compared past {where}: {d.get('note', '')}"
    fields = [o["field"] for o in d.get("outcomes", [])]
    paths = [p["path"] for p in d.get("paths", [])]
    what = ", ".join(fields + paths[:3]) + (
        f" (+{d.get('path_count', 0) - 3} paths)" if d.get("path_count", 0) > 3 else ""
    )
    return f"first divergence in {where}" + (f": {what}" if what else "")
