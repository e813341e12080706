"""A streaming summary of a recording: what ``nakama-replay inspect`` prints."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from recorder.format._model import (
    CrashMarker,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MessageBatch,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
)
from recorder.format._nkrec import TruncationWarning, open_recording

__all__ = ["PresenceSpan", "OpCodeStats", "Summary", "summarize"]


@dataclass(slots=True)
class PresenceSpan:
    """One session's time in the match."""

    user_id: str
    session_id: str
    username: str
    join_tick: int | None = None
    leave_tick: int | None = None
    leave_reason: int | None = None
    rejected: bool = False
    client_version: str | None = None


@dataclass(slots=True)
class OpCodeStats:
    op_code: int
    count: int = 0
    bytes: int = 0


@dataclass(slots=True)
class Summary:
    path: str
    size_bytes: int
    match_id: str
    module: str
    source: str
    recording_kind: str
    tick_rate: int
    label: str
    events: int = 0
    chunks: int = 0
    ticks: int = 0  # loop calls executed
    first_tick: int | None = None
    last_tick: int | None = None
    duration_s: float | None = None  # wall duration, from tick rate or wire times
    presences: list[PresenceSpan] = field(default_factory=list)
    op_codes: list[OpCodeStats] = field(default_factory=list)
    signals: int = 0
    terminated_at: int | None = None
    crash: dict[str, Any] | None = None
    sockets: int = 0
    damage: list[dict[str, Any]] = field(default_factory=list)
    redactions: list[str] = field(default_factory=list)  # what the recorder removed (header ``redactions``)
    integrity: dict[str, Any] = field(default_factory=dict)  # recorder.format.Integrity.to_json()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(path: str | os.PathLike[str], *, strict: bool = False, salvage: bool = False) -> Summary:
    """Stream the recording once and count what it holds; memory stays bounded by presences and op codes.

    The counts cover the intact chunks before the first damage (``salvage``: every intact chunk);
    ``integrity`` and ``damage`` say what the file lacks. ``strict`` raises ``IncompleteRecording`` for a
    recording that is not complete."""
    with open_recording(path, strict=strict, on_damage="skip" if salvage else "stop") as rec:
        h = rec.header
        s = Summary(
            str(path),
            rec.size,
            h.match_id,
            h.module,
            h.source,
            h.recording_kind,
            h.tick_rate,
            h.label,
            redactions=list(h.redactions),
        )
        spans: dict[tuple[str, str], PresenceSpan] = {}
        ops: dict[int, OpCodeStats] = {}
        sockets: set[str] = set()
        first_t = last_t = None

        def span(p: Presence) -> PresenceSpan:
            key = (p.user_id, p.session_id)
            sp = spans.get(key)
            if sp is None:
                sp = spans[key] = PresenceSpan(
                    p.user_id, p.session_id, p.username, client_version=h.client_versions.get(p.user_id)
                )
            return sp

        def count(op: int, size: int) -> None:
            st = ops.get(op)
            if st is None:
                st = ops[op] = OpCodeStats(op)
            st.count += 1
            st.bytes += size

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)  # reported through s.damage instead
            for _info, events in rec.chunks():
                s.chunks += 1
                s.events += len(events)
                for e in events:
                    match e:
                        case LoopCall(tick=tick, messages=msgs):
                            s.ticks += 1
                            pairs = (
                                msgs.op_codes_and_sizes()
                                if isinstance(msgs, MessageBatch)
                                else ((m.op_code, len(m.data or b"")) for m in msgs)
                            )
                            for op, size in pairs:
                                count(op, size)
                        case JoinAttemptCall(tick=tick, presence=presence, metadata=metadata, outcome=outcome):
                            sp = span(presence)
                            if outcome is not None and outcome.accept is False:
                                sp.rejected = True
                            version = metadata.get("client_version", metadata.get("v"))
                            if isinstance(version, str) and sp.client_version is None:
                                sp.client_version = version
                        case JoinCall(tick=tick, presences=presences):
                            for p in presences:
                                span(p).join_tick = tick
                        case LeaveCall(tick=tick, presences=presences):
                            for p in presences:
                                sp = span(p)
                                sp.leave_tick, sp.leave_reason = tick, p.reason
                        case SignalCall(tick=tick):
                            s.signals += 1
                        case TerminateCall(tick=tick):
                            s.terminated_at = tick
                        case InitCall(tick=tick):
                            pass
                        case CrashMarker(callback=callback, tick=crash_tick, error=error):
                            s.crash = {"callback": callback, "tick": crash_tick, "error": error}
                            continue  # the crash names a tick of the calls: it adds none
                        case WireEvent(socket=socket, t=t, envelope=envelope):
                            sockets.add(socket)
                            first_t = t if first_t is None else first_t
                            last_t = t
                            for kind in ("match_data_send", "match_data"):
                                body = (envelope or {}).get(kind)
                                if isinstance(body, dict):
                                    try:
                                        op = int(body.get("op_code", 0))
                                    except (TypeError, ValueError):
                                        continue
                                    count(op, len(str(body.get("data", ""))) * 3 // 4)
                            continue  # wire events have no tick
                    if s.first_tick is None:
                        s.first_tick = tick
                    s.last_tick = tick
        integrity = rec.integrity()
        s.integrity = integrity.to_json()
        s.damage = [d.to_json() for d in integrity.damage]
    s.presences = list(spans.values())
    s.op_codes = sorted(ops.values(), key=lambda o: o.op_code)
    s.sockets = len(sockets)
    if first_t is not None and last_t is not None:
        s.duration_s = round(last_t - first_t, 6)
    elif s.tick_rate and s.ticks:
        s.duration_s = round(s.ticks / s.tick_rate, 6)
    return s
