"""Triage inputs, each read into ``CrashReport``s (or ``RecordingInfo``s) without ever stopping at a bad item:
a malformed report or line becomes a ``ReportError`` in the stream, naming its file, line and field, and
reading goes on.

- ``read_client_reports(path)``: client reports (``replay.triage._schema``), JSON Lines or one JSON array;
- ``read_sentry_events(path)``: Sentry event JSON (one event, an array, or JSON Lines), as the Sentry API
  exports it: the schema's fields are read from ``contexts.nakama`` and from ``nakama.*`` tags, the rest
  from the event (``event_id``, ``timestamp``, ``release`` ``name@version``, ``user.id``, ``contexts.os``,
  the last exception value with its structured frames, in ``exception`` or ``entries``);
- ``read_server_log(path)``: Nakama's JSON log through ``recorder.capture._nakama_log``: match handler errors
  (``Stopping match after error from <callback> execution``: ``mid``, ``tick``, ``error``), RPC errors
  (Lua: ``Runtime RPC function caused an error`` with ``id``; JavaScript: ``JavaScript runtime function
  raised an uncaught exception`` with ``mode: rpc`` and ``id``, as server/runtime_lua.go and
  runtime_javascript.go log them) and the Lua capture module's records of a callback that raised (field
  ``e``, through ``recorder.capture._ingest``);
- ``read_recording(path)``: a recording's match, crash marker, signature, integrity state, ticks.

A match handler error has one uid per match, callback and tick (``match:<mid>:<callback>:<tick>``), so
Nakama's crash line, the capture module's record of the same error and the recording's crash marker are
one occurrence, whichever is ingested first.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recorder.capture._ingest import TAG, Ingest
from recorder.capture._nakama_log import DamagedLine, LogStats, crash_of, iter_log, parse_ts_ms
from recorder.errors import NakamaReplayError
from recorder.storage import check_location, find_files, is_url, kind_of
from replay.errors import ReportError
from replay.runtime._signature import CrashSignature
from replay.triage._client_signature import sentry_frames
from replay.triage._schema import CLIENT_FIELDS, CrashReport, content_uid, match_key, parse_client_report

__all__ = [
    "RecordingInfo",
    "read_client_reports",
    "read_sentry_events",
    "read_server_log",
    "read_recording",
    "find_recordings",
    "RPC_ERROR_MESSAGES",
]

#: Nakama log messages of a runtime RPC function that failed (Lua; JavaScript with mode "rpc")
RPC_ERROR_MESSAGES = (
    "Runtime RPC function caused an error",
    "JavaScript runtime function raised an uncaught exception",
)
_CALLBACKS = {
    "init": "match_init",
    "join_attempt": "match_join_attempt",
    "join": "match_join",
    "leave": "match_leave",
    "loop": "match_loop",
    "signal": "match_signal",
    "terminate": "match_terminate",
}


# -- JSON documents: one object, an array, or JSON Lines ----------------------------------------------------
def _json_items(path: str) -> Iterator[tuple[int, Any] | ReportError]:
    """``(line, object)`` per item: line numbers for JSON Lines, the item's index + 1 within a JSON array
    (line 0 would mean the whole file)."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", "replace")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            yield ReportError(f"not valid JSON ({exc})", path=path)
            return
        yield from enumerate(items, 1)
        return
    lines = text.splitlines()
    if stripped.startswith("{") and len([ln for ln in lines if ln.strip()]) > 1:
        try:  # one pretty-printed object
            yield 1, json.loads(text)
            return
        except ValueError:
            pass  # JSON Lines
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield ReportError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=path, line=number)


def read_client_reports(path: str) -> Iterator[CrashReport | ReportError]:
    """Client reports from a JSON Lines file or a JSON array."""
    for item in _json_items(path):
        if isinstance(item, ReportError):
            yield item
            continue
        line, obj = item
        try:
            yield parse_client_report(obj, path, line)
        except ReportError as exc:
            yield exc


# -- Sentry ------------------------------------------------------------------------------------------------
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _tag_value(name: str, value: Any) -> Any:
    """A tag's text as the schema's type (Sentry tags are strings)."""
    types = CLIENT_FIELDS[name]
    if not isinstance(value, str):
        return value
    if bool in types:
        return _BOOL_TEXT.get(value.strip().lower(), value)
    if int in types and str not in types:
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _tags(event: dict[str, Any]) -> dict[str, Any]:
    tags = event.get("tags")
    out: dict[str, Any] = {}
    if isinstance(tags, dict):
        out.update(tags)
    elif isinstance(tags, list):
        for t in tags:
            if isinstance(t, (list, tuple)) and len(t) == 2:
                out[str(t[0])] = t[1]
            elif isinstance(t, dict) and "key" in t:
                out[str(t["key"])] = t.get("value")
    return out


def _exception(event: dict[str, Any]) -> dict[str, Any] | None:
    values: Any = None
    exc = event.get("exception")
    if isinstance(exc, dict):
        values = exc.get("values")
    elif isinstance(exc, list):
        values = exc
    if values is None:
        for entry in event.get("entries") or []:
            if isinstance(entry, dict) and entry.get("type") == "exception" and isinstance(entry.get("data"), dict):
                values = entry["data"].get("values")
    if isinstance(values, list) and values and isinstance(values[-1], dict):
        return values[-1]  # Sentry lists chained exceptions oldest first: the last one is what was raised
    return None


def _frames_text(frames: list[Any]) -> str:
    lines = []
    for f in reversed(frames):
        if isinstance(f, dict):
            where = f.get("filename") or f.get("abs_path") or f.get("module") or "?"
            line = f":{f['lineno']}" if isinstance(f.get("lineno"), int) else ""
            lines.append(f"    at {f.get('function') or '?'} ({where}{line})")
    return "\n".join(lines)


def parse_sentry_event(event: Any, source: str = "", line: int = 0) -> CrashReport:
    """A ``CrashReport`` from one Sentry event (see the module docstring for where each field comes from)."""
    if not isinstance(event, dict):
        raise ReportError(f"a Sentry event is a JSON object, got {type(event).__name__}", path=source, line=line)
    fields: dict[str, Any] = {}
    for key, value in _tags(event).items():
        if key.startswith("nakama.") and key[7:] in CLIENT_FIELDS and key[7:] != "extra":
            fields[key[7:]] = _tag_value(key[7:], value)
    found = event.get("contexts")
    contexts = found if isinstance(found, dict) else {}
    nakama = contexts.get("nakama")
    if isinstance(nakama, dict):
        fields.update({k: v for k, v in nakama.items() if k in CLIENT_FIELDS and k != "type"})
    release = event.get("release")
    if "client_version" not in fields and isinstance(release, str) and release:
        fields["client_version"] = release.rsplit("@", 1)[-1]
    os_ctx = contexts.get("os")
    if "platform" not in fields:
        if isinstance(os_ctx, dict) and isinstance(os_ctx.get("name"), str):
            fields["platform"] = os_ctx["name"].lower()
        elif isinstance(event.get("platform"), str):
            fields["platform"] = event["platform"]
    user = event.get("user")
    if "user_id" not in fields and isinstance(user, dict) and isinstance(user.get("id"), str):
        fields["user_id"] = user["id"]
    if "timestamp" not in fields:
        fields["timestamp"] = event.get("timestamp", event.get("dateCreated", event.get("datetime")))
    exc = _exception(event)
    frames: tuple[str, ...] | None = None
    if exc is not None:
        fields.setdefault("error_type", exc.get("type") if isinstance(exc.get("type"), str) else None)
        fields.setdefault("error_message", exc.get("value") if isinstance(exc.get("value"), str) else None)
        st = exc.get("stacktrace")
        raw_frames = st.get("frames") if isinstance(st, dict) else None
        if isinstance(raw_frames, list):
            frames = sentry_frames(raw_frames)
            fields.setdefault("stack_trace", _frames_text(raw_frames))
    else:
        message = event.get("message")
        logentry = event.get("logentry")
        if isinstance(logentry, dict):
            message = logentry.get("formatted") or logentry.get("message") or message
        fields.setdefault("error_message", message if isinstance(message, str) else None)
    fields = {k: v for k, v in fields.items() if v is not None}
    report = parse_client_report(fields, source, line)
    event_id = event.get("event_id", event.get("eventID", event.get("id")))
    uid = report.uid
    if "id" not in fields:
        uid = f"sentry:{event_id}" if isinstance(event_id, str) and event_id else content_uid("sentry", event)
    if frames:  # Sentry's structured frames say in_app; they beat re-parsing the text
        sig = report.signature
        report = replace(report, signature=CrashSignature(sig.callback, sig.error_type, frames, sig.op_code))
    return replace(report, uid=uid, kind="sentry")


def read_sentry_events(path: str) -> Iterator[CrashReport | ReportError]:
    """Sentry events from one event, a JSON array of events, or JSON Lines."""
    for item in _json_items(path):
        if isinstance(item, ReportError):
            yield item
            continue
        line, obj = item
        try:
            yield parse_sentry_event(obj, path, line)
        except ReportError as exc:
            yield exc


# -- Nakama's server log -------------------------------------------------------------------------------------
def _match_error(
    mid: str,
    callback: str,
    tick: int,
    error: str,
    traceback: str,
    ts_ms: int,
    source: str,
    line: int,
    op_code: int | None = None,
) -> CrashReport:
    sig = CrashSignature.from_error(callback, error, traceback)
    if op_code is not None:
        sig = CrashSignature(sig.callback, sig.error_type, sig.frames, op_code)
    key = match_key(mid) or mid
    text = error if not traceback else f"{error}\n{traceback}"
    return CrashReport(
        uid=f"match:{key}:{callback}:{tick}",
        side="server",
        kind="match_error",
        ts_ms=ts_ms,
        signature=sig,
        error=error,
        stack=traceback,
        match_id=mid,
        tick=tick,
        source=source,
        line=line,
        extra={"text": text} if traceback else {},
    )


def read_server_log(path: str) -> Iterator[CrashReport | ReportError]:
    """Server runtime errors in one Nakama log file (plain JSON lines, Docker json-file or Stackdriver)."""
    stats = LogStats()
    tagged = False
    with open(path, "rb") as f:
        for item in iter_log(f, path, stats):
            if isinstance(item, DamagedLine):
                yield ReportError(item.problem, path=path, line=item.line)
                continue
            crash = crash_of(item)
            if crash is not None:
                mid, marker = crash
                yield _match_error(
                    mid,
                    marker.callback,
                    marker.tick,
                    marker.error,
                    marker.traceback,
                    parse_ts_ms(item.ts),
                    path,
                    item.line,
                )
                continue
            if item.msg in RPC_ERROR_MESSAGES:
                fields = item.fields
                if item.msg != RPC_ERROR_MESSAGES[0] and fields.get("mode") != "rpc":
                    continue
                rpc_id, error = fields.get("id"), fields.get("error")
                if not isinstance(rpc_id, str) or not isinstance(error, str):
                    yield ReportError(
                        "an RPC error line without 'id' and 'error'",
                        path=path,
                        line=item.line,
                        field="id" if not isinstance(rpc_id, str) else "error",
                    )
                    continue
                ts_ms = parse_ts_ms(item.ts)
                uid = content_uid("rpc", [item.ts, rpc_id, error, fields.get("trace_id"), item.msg])
                sig = CrashSignature.from_error(f"rpc:{rpc_id}", error)
                yield CrashReport(
                    uid=uid,
                    side="server",
                    kind="rpc_error",
                    ts_ms=ts_ms,
                    signature=sig,
                    error=error,
                    rpc_id=rpc_id,
                    rpc_error=True,
                    source=path,
                    line=item.line,
                )
                continue
            if item.msg.startswith(TAG):
                tagged = True
    if stats.entries == 0 and stats.lines > 0 and not stats.damaged:
        yield ReportError("no Nakama JSON log lines in this file (is it a Nakama log?)", path=path)
    if tagged:
        yield from _capture_errors(path)


def _capture_errors(path: str) -> Iterator[CrashReport | ReportError]:
    """Callbacks that raised, as the Lua capture module recorded them (records with ``e``)."""
    ingest = Ingest()
    with open(path, "rb") as f:
        ingest.feed(f, path)
    for match_id, records in ingest.records.items():
        mid = ingest.mids.get(match_id) or match_id
        for seq in sorted(records):
            r = records[seq]
            body = r.body
            if "e" not in body:
                continue
            callback = _CALLBACKS.get(str(body.get("k")))
            tick = body.get("t")
            if callback is None or not isinstance(tick, int) or isinstance(tick, bool):
                yield ReportError("a capture crash record without kind or tick", path=r.source, line=r.line, field="k")
                continue
            messages = body.get("ms") if callback == "match_loop" else None
            op = None
            if isinstance(messages, list) and messages and isinstance(messages[-1], list) and len(messages[-1]) > 1:
                op = messages[-1][1] if isinstance(messages[-1][1], int) else None
            report = _match_error(mid, callback, tick, str(body["e"]), "", r.ts_ms, r.source, r.line, op)
            yield replace(report, match_id=match_id)  # the capture record knows the id with its node
    for d in ingest.stats.damaged:
        yield ReportError(d.problem, path=d.source, line=d.line)


# -- recordings ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What the crash store keeps about one recording."""

    location: str
    match_id: str
    integrity: str  # complete, unsealed, damaged, legacy (format 1: never provably complete)
    ticks: int
    calls: int
    started_ms: int
    size: int
    signature: CrashSignature | None
    crash_callback: str | None = None
    crash_tick: int | None = None
    crash_error: str | None = None

    @property
    def match_key(self) -> str | None:
        return match_key(self.match_id)

    def crash_report(self) -> CrashReport | None:
        """The server occurrence the crash marker stands for (same uid as Nakama's crash line)."""
        if self.signature is None or self.crash_callback is None or self.crash_tick is None or not self.match_id:
            return None
        return CrashReport(
            uid=f"match:{self.match_key}:{self.crash_callback}:{self.crash_tick}",
            side="server",
            kind="match_error",
            ts_ms=self.started_ms,
            signature=self.signature,
            error=self.crash_error or "",
            match_id=self.match_id,
            tick=self.crash_tick,
            op_code=self.signature.op_code,
            source=self.location,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "match_id": self.match_id,
            "integrity": self.integrity,
            "ticks": self.ticks,
            "calls": self.calls,
            "started_ms": self.started_ms,
            "size": self.size,
            "group": self.signature.short_hash if self.signature else None,
            "crash": None
            if self.crash_callback is None
            else {"callback": self.crash_callback, "tick": self.crash_tick, "error": self.crash_error},
        }


def _integrity(path: str, damage: list[dict[str, Any]]) -> str:
    """The reader's one integrity state where the reader has one (format 2), else from the damage found."""
    from recorder.format._nkrec import open_recording

    with open_recording(path) as rec:
        integrity = getattr(rec, "integrity", None)
        if callable(integrity):
            return str(integrity().state)
    if not damage:
        return "complete"
    return "unsealed" if all(d.get("kind") == "truncated" for d in damage) else "damaged"


def read_recording(path: str) -> RecordingInfo:
    """Index one recording (raises ``RecordingError`` when it cannot be read at all)."""
    from recorder.format._summary import summarize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = summarize(path)
        state = _integrity(path, s.damage)
        try:
            sig = CrashSignature.of_recording(path) if s.crash else None
        except NakamaReplayError:
            sig = None
        if sig is None and s.crash:
            sig = CrashSignature.from_error(s.crash["callback"], s.crash["error"])
    from recorder.format._nkrec import open_recording

    with open_recording(path) as rec:
        started = rec.header.started_ms or 0
        rate = rec.header.tick_rate or 0
    crash = s.crash or {}
    tick = crash.get("tick")
    crash_ms = started + (tick * 1000 // rate if rate and isinstance(tick, int) else 0) if started else 0
    return RecordingInfo(
        location=path if is_url(path) else str(Path(path).resolve()),
        match_id=s.match_id,
        integrity=state,
        ticks=s.ticks,
        calls=s.events - (1 if s.crash else 0),
        started_ms=crash_ms or started,
        size=s.size_bytes,
        signature=sig,
        crash_callback=crash.get("callback"),
        crash_tick=tick,
        crash_error=crash.get("error"),
    )


def find_recordings(paths: list[str]) -> Iterator[str]:
    """Every ``.nkrec`` file under the given folders or object-store prefixes (sorted), and the files given.
    URLs (``s3://bucket/prefix/``, ``gs://``, ``file://``) are listed through ``recorder.storage`` and indexed
    under their URL, which ``reproduce --group`` then reads."""
    for p in paths:
        if is_url(p):
            check_location(p)
            yield from (find_files(p, ".nkrec") if kind_of(p) == "dir" else [p])
        elif os.path.isdir(p):
            yield from sorted(str(f) for f in Path(p).rglob("*.nkrec") if f.is_file())
        else:
            yield p
