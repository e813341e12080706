"""Nakama's server log, line by line.

Nakama logs one JSON object per line (zap): ``level``, ``ts``, ``caller``, ``msg`` and fields such as
``mid`` (the match id without its ``.node`` suffix) and ``runtime``. ``iter_log`` reads such lines from a
file or stdin (``open_log`` decompresses gzip), also inside Docker's json-file wrapper (``{"log": "...",
"stream": ..., "time": ...}``, long lines split over several entries and joined again) and in the
Stackdriver layout (``severity``, ``message``). It never raises on a bad line: it yields ``LogEntry`` for
every log object and ``DamagedLine`` for a line that should have been ours (it mentions ``nkreplay:``) but
is not valid JSON (or nests deeper than ``recorder.format._validate.MAX_DEPTH``); every other line is counted in
``LogStats.other`` and skipped. Compressed input that ends early or is damaged ends the source with a
``DamagedLine`` saying after which line; every line before it is kept.

``log_entry`` reads one line, ``crashed_callback`` recognises Nakama's own crash line and ``crash_of``
checks it strictly into a crash marker: the line, ``Stopping match after error from <callback>
execution`` (fields ``mid``, ``tick``, ``error`` with the Lua traceback), and ``format_log_line`` writes a
line in Nakama's layout (tests and the CI round trip use it to produce the log a real server would).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, cast

from recorder.capture._lua_errors import split_traceback
from recorder.errors import InvalidValue
from recorder.format import CrashMarker, parse_json
from recorder.format._validate import match_id, show, tick

__all__ = [
    "LogEntry",
    "DamagedLine",
    "LogStats",
    "open_log",
    "iter_log",
    "crash_of",
    "crashed_callback",
    "format_log_line",
    "log_entry",
    "parse_ts_ms",
    "TAG_HINT",
]

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
    fields = {
        k: v for k, v in obj.items() if k not in ("msg", "message", "level", "severity", "ts", "timestamp", "caller")
    }
    return LogEntry(source, line, _scalar_text(level).lower(), _scalar_text(ts), msg, fields)


def _scalar_text(v: Any) -> str:
    """A log field that should be a string or a number, as text ("" for anything else)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v) if isinstance(v, float) else (str(v) if v.bit_length() < 64 else "")
    return ""


def _json_object(text: str, source: str, line: int, where: str) -> dict[str, Any] | DamagedLine | None:
    """The JSON object on a log line; a ``DamagedLine`` when it is ours (it carries our tag) but broken; None
    when it is somebody else's line."""
    try:
        obj = parse_json(text)
    except InvalidValue as exc:
        if TAG_HINT in text:
            return DamagedLine(
                source, line, f"not a JSON log line{where} ({exc.problem.removeprefix('not valid JSON: ')})"
            )
        return None
    return obj if isinstance(obj, dict) else None


def open_log(path: str) -> IO[bytes]:
    """A log file opened for reading lines as bytes; gzip-compressed files (recognised by their first
    bytes, whatever their name) are decompressed as they are read. ``path`` may be a URL (``s3://...``:
    ``recorder.storage``), read block by block."""
    from recorder.storage import open_input

    f, _ = open_input(path)
    try:
        compressed = f.read(2) == b"\x1f\x8b"
        f.seek(0)
    except BaseException:
        f.close()
        raise
    if compressed:
        return cast(IO[bytes], _OwningGzipFile(f))  # a BufferedIOBase: every IO[bytes] method the readers call
    return f


class _OwningGzipFile(gzip.GzipFile):
    """Decompresses ``f`` and closes it when closed (a plain GzipFile leaves a file it was given open)."""

    def __init__(self, f: IO[bytes]) -> None:
        super().__init__(fileobj=f, mode="rb")
        self._owned = f

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()


def _lines_until_damage(lines: Iterable[str | bytes], source: str) -> Iterator[str | bytes | DamagedLine]:
    """The lines of a source; compressed input that ends early or is damaged ends with a ``DamagedLine``."""
    number = 0
    try:
        for number, raw in enumerate(lines, 1):  # noqa: B007 - number is read after the loop
            yield raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        yield DamagedLine(
            source,
            number + 1,
            f"the compressed log ends early or is damaged after line {number} ({exc}); "
            f"the {number} lines before it were read",
        )


def _docker_part(obj: Any) -> str | None:
    """The text of a Docker json-file log entry (``{"log": ..., "stream": ...}``), else None."""
    if isinstance(obj, dict) and "msg" not in obj and "message" not in obj:
        text = obj.get("log")
        if isinstance(text, str):
            return text
    return None


def iter_log(
    lines: Iterable[str | bytes], source: str = "<stdin>", stats: LogStats | None = None
) -> Iterator[LogEntry | DamagedLine]:
    """Log entries (and damaged lines of ours) from an iterable of text lines."""
    stats = stats if stats is not None else LogStats()
    pending = ""  # a Docker json-file entry split over several lines
    pending_line = 0
    for number, raw in enumerate(_lines_until_damage(lines, source), 1):
        if isinstance(raw, DamagedLine):
            stats.damaged.append(raw)
            yield raw
            break
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


#: epoch seconds a log timestamp may hold: years 1 to 9999, as ISO 8601 can write them
_TS_RANGE = (-62135596800.0, 253402300799.999)


def parse_ts_ms(ts: Any) -> int:
    """Milliseconds since the epoch of a log timestamp (ISO 8601 or epoch seconds); 0 when the format is
    unknown. A number outside years 1..9999 (``1e308``, ``inf``, ``nan``) raises ``InvalidValue("ts", ...)``."""
    if isinstance(ts, bool):
        return 0
    if not isinstance(ts, (int, float)):
        try:
            return int(datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() * 1000)
        except (ValueError, OverflowError, OSError):
            try:
                ts = float(ts)
            except ValueError:
                return 0
    if not (math.isfinite(ts) and _TS_RANGE[0] <= ts <= _TS_RANGE[1]):
        raise InvalidValue("ts", f"timestamp {show(ts)} is out of range (years 1 to 9999)")
    return int(ts * 1000)


def log_entry(text: str, source: str = "", line: int = 0) -> LogEntry | None:
    """One line of Nakama's JSON log (zap or Stackdriver layout) as a ``LogEntry``; None for any other line."""
    obj = _json_object(text, source, line, "")
    return _entry(obj, source, line) if isinstance(obj, dict) else None


def crashed_callback(entry: LogEntry) -> str | None:
    """The callback of Nakama's "Stopping match after error from <callback> execution" line; None for any
    other entry. The one place that recognises the crash line: ``crash_of`` here, the crash signatures of
    log lines in ``replay.runtime`` and live replay's server-log reading all ask it."""
    m = _CRASH.match(entry.msg)
    return None if m is None else m.group("callback")


def crash_of(entry: LogEntry) -> tuple[str, CrashMarker] | None:
    """``(mid, crash marker)`` when the entry is Nakama's "Stopping match after error from X execution";
    None for any other line. Such a line whose ``mid``, ``tick`` or ``error`` is unusable raises
    ``InvalidValue`` naming the field."""
    callback = crashed_callback(entry)
    if callback is None:
        return None
    error = entry.fields.get("error", "")
    if not isinstance(error, str):
        raise InvalidValue("error", f"must be a string, got {show(error)}")
    mid = match_id(entry.fields.get("mid"), "mid")
    head, trace = split_traceback(error)
    return mid, CrashMarker(callback, tick(entry.fields.get("tick"), "tick"), head, trace)


def format_log_line(
    level: str, msg: str, *, ts_ms: int, caller: str = "server/runtime_lua_nakama.go:2373", **fields: Any
) -> str:
    """One line as Nakama's JSON logger writes it (key order: level, ts, caller, msg, fields)."""
    ts = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
    obj = {"level": level, "ts": ts, "caller": caller, "msg": msg, **fields}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
