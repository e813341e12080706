"""Nakama's server log, line by line.

Nakama logs one JSON object per line (zap): ``level``, ``ts``, ``caller``, ``msg`` and fields such as
``mid`` (the match id without its ``.node`` suffix) and ``runtime``. ``iter_log`` reads such lines from a
file or stdin, also inside Docker's json-file wrapper (``{"log": "...", "stream": ..., "time": ...}``,
long lines split over several entries and joined again) and in the Stackdriver layout (``severity``,
``message``). It never raises on a bad line: it yields ``LogEntry`` for every log object and
``DamagedLine`` for a line that should have been ours (it mentions ``nkreplay:``) but is not valid JSON;
every other line is counted in ``LogStats.other`` and skipped.

``crash_of`` recognises Nakama's own crash line, ``Stopping match after error from <callback>
execution`` (fields ``mid``, ``tick``, ``error`` with the Lua traceback), and ``format_log_line`` writes a
line in Nakama's layout (tests and the CI round trip use it to produce the log a real server would).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from recorder.errors import json_error_text
from recorder.lua_errors import split_traceback
from recorder.model import CrashMarker

__all__ = ["LogEntry", "DamagedLine", "LogStats", "iter_log", "crash_of", "format_log_line", "parse_ts_ms", "TAG_HINT"]

#: lines mentioning this are ours: a bad one is reported, not skipped silently
TAG_HINT = "nkreplay:"
_CRASH = re.compile(r"^Stopping match after error from (?P<callback>match_\w+) execution$")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log object: where it was (source, 1-based line), its level, time, message and fields."""

    source: str
    line: int
    level: str
    ts: str
    msg: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DamagedLine:
    """A line that carries our tag but cannot be read; ``problem`` says why."""

    source: str
    line: int
    problem: str

    def describe(self) -> str:
        return f"{self.source}:{self.line}: {self.problem}"


@dataclass(slots=True)
class LogStats:
    lines: int = 0
    entries: int = 0
    other: int = 0  # not JSON log objects and not ours: skipped
    damaged: list[DamagedLine] = field(default_factory=list)


def _entry(obj: dict[str, Any], source: str, line: int) -> LogEntry | None:
    msg = obj.get("msg", obj.get("message"))
    if not isinstance(msg, str):
        return None
    level = obj.get("level", obj.get("severity", ""))
    ts = obj.get("ts", obj.get("timestamp", obj.get("time", "")))
    fields = {k: v for k, v in obj.items() if k not in ("msg", "message", "level", "severity", "ts", "timestamp", "caller")}
    return LogEntry(source, line, str(level).lower(), str(ts), msg, fields)


def _json_object(text: str, source: str, line: int, where: str) -> dict[str, Any] | DamagedLine | None:
    """The JSON object on a log line; a ``DamagedLine`` when it is ours (it carries our tag) but broken; None
    when it is somebody else's line."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        if TAG_HINT in text:
            return DamagedLine(source, line, f"not a JSON log line{where} ({json_error_text(exc)})")
        return None
    return obj if isinstance(obj, dict) else None


def _docker_part(obj: Any) -> str | None:
    """The text of a Docker json-file log entry (``{"log": ..., "stream": ...}``), else None."""
    if isinstance(obj, dict) and "msg" not in obj and "message" not in obj and isinstance(obj.get("log"), str):
        return obj["log"]
    return None


def iter_log(lines: Iterable[str | bytes], source: str = "<stdin>", stats: LogStats | None = None) -> Iterator[LogEntry | DamagedLine]:
    """Log entries (and damaged lines of ours) from an iterable of text lines."""
    stats = stats if stats is not None else LogStats()
    pending = ""  # a Docker json-file entry split over several lines
    pending_line = 0
    for number, raw in enumerate(lines, 1):
        stats.lines += 1
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        obj = _json_object(text, source, number, "")
        part = _docker_part(obj)
        if part is not None:
            if not pending:
                pending_line = number
            pending += part
            if not part.endswith("\n"):
                continue  # Docker split a long line; the rest follows
            inner, pending = pending.rstrip("\r\n"), ""
            obj = _json_object(inner, source, pending_line, " inside the Docker entry")
            number = pending_line
        if isinstance(obj, DamagedLine):
            stats.damaged.append(obj)
            yield obj
            continue
        entry = None if obj is None else _entry(obj, source, number)
        if entry is None:
            stats.other += 1
            continue
        stats.entries += 1
        yield entry
    if pending and TAG_HINT in pending:
        d = DamagedLine(source, pending_line, "the log ends inside a split Docker entry")
        stats.damaged.append(d)
        yield d


def parse_ts_ms(ts: Any) -> int:
    """Milliseconds since the epoch of a log timestamp (ISO 8601 or epoch seconds); 0 when unknown."""
    if isinstance(ts, (int, float)):
        return int(ts * 1000)
    try:
        return int(datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        try:
            return int(float(ts) * 1000)
        except ValueError:
            return 0


def crash_of(entry: LogEntry) -> tuple[str, CrashMarker] | None:
    """``(mid, crash marker)`` when the entry is Nakama's "Stopping match after error from X execution"."""
    m = _CRASH.match(entry.msg)
    if m is None:
        return None
    mid = entry.fields.get("mid")
    tick = entry.fields.get("tick")
    error = entry.fields.get("error", "")
    if not isinstance(mid, str) or not isinstance(tick, int) or isinstance(tick, bool):
        return None
    head, trace = split_traceback(str(error))
    return mid, CrashMarker(m.group("callback"), tick, head, trace)


def format_log_line(level: str, msg: str, *, ts_ms: int, caller: str = "server/runtime_lua_nakama.go:2373", **fields: Any) -> str:
    """One line as Nakama's JSON logger writes it (key order: level, ts, caller, msg, fields)."""
    ts = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
    obj = {"level": level, "ts": ts, "caller": caller, "msg": msg, **fields}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
