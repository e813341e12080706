"""The text of what a recording holds (``inspect``) and of turning Nakama logs into recordings (``ingest``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recorder.capture._ingest import Ingest, IngestedMatch
    from recorder.format._summary import Summary

__all__ = ["format_inspect", "format_log_ingest"]

_LEAVE_REASONS = {0: "unknown", 1: "join", 2: "update", 3: "leave", 4: "disconnect"}
_DAMAGED_SHOWN = 20


def format_inspect(s: Summary) -> str:
    """A recording's ``Summary``: file, integrity, match, ticks, presences, op codes, signals, the crash and
    any damage."""
    duration = f"{s.duration_s:.3f} s" if s.duration_s is not None else "-"
    span = f"ticks {s.first_tick}..{s.last_tick}" if s.first_tick is not None else "no ticks"
    out = [
        f"recording  {s.path} ({s.size_bytes} bytes, {s.events} events in {s.chunks} chunks)",
        f"integrity  {s.integrity['summary']}",
        f"match      {s.match_id or '-'}  module {s.module or '-'}  source {s.source or '-'}  ({s.recording_kind})",
        f"ticks      {s.ticks} loops at {s.tick_rate} Hz, {span}, wall duration {duration}",
    ]
    if s.label:
        out.append(f"label      {s.label}")
    if s.redactions:
        out.append(f"redacted   {', '.join(s.redactions)}")
    if s.sockets:
        out.append(f"sockets    {s.sockets}")
    out.append(f"presences  {len(s.presences)}")
    for p in s.presences:
        reason = _LEAVE_REASONS.get(p.leave_reason or 0, p.leave_reason)
        left = "-" if p.leave_tick is None else f"{p.leave_tick} ({reason})"
        joined = "rejected" if p.rejected and p.join_tick is None else ("-" if p.join_tick is None else p.join_tick)
        version = f"  client {p.client_version}" if p.client_version else ""
        out.append(
            f"  {p.username or p.user_id:<16} session {p.session_id:<12} joined {joined!s:<6} left {left}{version}"
        )
    out.append("op codes" + ("   none" if not s.op_codes else ""))
    out += [f"  {o.op_code:>6}: {o.count} messages, {o.bytes} bytes" for o in s.op_codes]
    if s.signals:
        out.append(f"signals    {s.signals}")
    if s.terminated_at is not None:
        out.append(f"terminate  at tick {s.terminated_at}")
    if s.crash:
        first_line = s.crash["error"].splitlines()[0] if s.crash["error"] else ""
        out.append(f"crash      {s.crash['callback']} at tick {s.crash['tick']}: {first_line}")
    for d in s.damage:
        out.append(
            f"damage     {d['kind']} at byte offset {d['offset']} (chunk {d['chunk']}): {d['problem']}; "
            f"{d['events_recovered']} events recovered before it"
        )
    return "\n".join(out) + "\n"


def format_log_ingest(
    ingest: Ingest, written: Sequence[tuple[Path | str, IngestedMatch]], orphans: Sequence[str], clean: bool
) -> str:
    """What ``ingest`` read and wrote: each recording with its calls, ticks, crash and warnings, the damaged
    lines (the first 20), crashes without capture records, and whether anything was skipped (``clean``)."""
    damaged = ingest.stats.damaged
    out = [f"read {ingest.stats.lines} lines: {ingest.ours} capture records, {len(damaged)} damaged"]
    for path, m in written:
        crash = f", crashed in {m.crash.callback} at tick {m.crash.tick}" if m.crash else ""
        out.append(f"  match {m.header.match_id} -> {path}")
        out.append(f"    {m.header.module or 'module ?'}: {m.calls} calls, {m.ticks} ticks{crash}")
        out += [f"    warning: {problem}" for problem in m.problems]
    out += [f"  damaged: {d.describe()}" for d in damaged[:_DAMAGED_SHOWN]]
    if len(damaged) > _DAMAGED_SHOWN:
        out.append(f"  ... and {len(damaged) - _DAMAGED_SHOWN} more damaged lines")
    out += [f"  note: match {mid} crashed (Nakama's log line) but has no capture records" for mid in orphans]
    if not clean:
        out.append("some input was skipped or is missing (see above): exit 1")
    return "\n".join(out) + "\n"
