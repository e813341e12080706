"""Route observed realtime traffic into wire recordings: one ``.nkrec`` per match id, plus one for
sockets outside a match. No network here: the proxy (and a live replay) calls ``open_socket``,
``envelope`` and ``close_socket``; this module decides which file each event belongs to and writes it.

A socket's events before it joins a match are held back, up to ``hold_bytes`` per socket, until the
server confirms a join (the ``match`` reply names the match); then its ``open`` event and everything held
back go to that match's file, and its later events follow. Events naming another match the socket is in
go to that match's file; events naming no match (``rpc``, ``ping``) go to the socket's latest match.
Held-back events beyond ``hold_bytes`` (the oldest first) are written to ``unmatched.nkrec`` as they go,
after the socket's ``open``, so a socket that never joins a match costs no more memory than that however
long it talks. A socket's close is written to every file it reached; a socket that never joined a match
and never overflowed writes its events to ``unmatched.nkrec`` when it closes. Within a file, events of one
socket are in order; ``t`` (monotonic seconds since the recorder started) orders sockets. Each file's
buffer is written out as a chunk after ``chunk_events`` events or ``chunk_bytes`` bytes, whichever
comes first.

Secrets never reach a file: every event goes through one ``recorder.wire.Redactor`` (tokens,
refresh tokens, JWTs, credential headers, user-named keys; its labels are the header's
``redactions``); sockets carry a pseudonym (``session_token.pseudonym``), and the client version comes
from the session vars (``client_version``) or the join metadata.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recorder.format import Header, RecordingWriter, WireEvent, open_recording
from recorder.wire._redact import Redactor
from recorder.wire.protocol import envelope_kind, envelope_match_id

__all__ = ["WireRecorder", "UNMATCHED", "client_version_of", "DEFAULT_HOLD_BYTES", "DEFAULT_CHUNK_BYTES"]

UNMATCHED = "unmatched"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_VERSION_KEYS = ("client_version", "clientVersion", "version", "v")
DEFAULT_HOLD_BYTES = 64 * 1024
DEFAULT_CHUNK_BYTES = 1024 * 1024
_EVENT_OVERHEAD = 512  # what a held event costs beyond its text (the record, a parsed envelope's objects)


def client_version_of(values: Any) -> str | None:
    """A client version from session vars or join metadata, if one of the usual keys holds a string."""
    if isinstance(values, dict):
        for k in _VERSION_KEYS:
            v = values.get(k)
            if isinstance(v, str) and v:
                return v
    return None


@dataclass
class _Socket:
    name: str
    open_event: WireEvent
    user_id: str
    held: deque[tuple[WireEvent, int]] = field(default_factory=deque)  # before a join: (event, cost)
    held_bytes: int = 0
    matches: list[str] = field(default_factory=list)  # in join order; the last is the current one
    unmatched: bool = False  # held events overflowed into unmatched.nkrec (its open is there)


@dataclass
class _File:
    writer: RecordingWriter
    header: Header
    versions: dict[str, str] = field(default_factory=dict)  # as written in the header
    users: set[str] = field(default_factory=set)  # users whose sockets reached this file
    buffered_bytes: int = 0  # since the last chunk was written


class WireRecorder:
    """Writes wire recordings under ``out_dir``. Call ``close()`` (or use as a context manager) to flush."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        tags: dict[str, Any] | None = None,
        chunk_events: int = 256,
        source: str = "proxy",
        redactor: Redactor | None = None,
        hold_bytes: int = DEFAULT_HOLD_BYTES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        self.redactor = redactor if redactor is not None else Redactor()
        self.hold_bytes = hold_bytes
        self.chunk_bytes = chunk_bytes
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.started_ms = int(time.time() * 1000)
        self.tags = dict(tags or {})
        self.source = source  # the header's `source`: "proxy", or "replay" for a replay's capture
        self.chunk_events = chunk_events
        self.sockets: dict[str, _Socket] = {}
        self.files: dict[str, _File] = {}
        self.versions: dict[str, str] = {}  # user id -> client version
        self.events = 0
        self.paths: list[Path] = []
        self._serial = 0
        self._users: dict[str, str] = {}  # socket name -> user id

    def __enter__(self) -> WireRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> float:
        return round(time.monotonic() - self.started, 6)

    # -- sockets ----------------------------------------------------------------------------------
    def open_socket(
        self,
        session: str,
        user_id: str = "",
        username: str = "",
        vars: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        t: float | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
    ) -> str:
        """Register a new socket; returns its name in the recording (``ws<n>``). ``query`` (the socket URL's
        parameters) and ``headers`` (the upgrade request's) are written redacted."""
        self._serial += 1
        name = f"ws{self._serial}"
        info: dict[str, Any] = {
            "session": session,
            "user_id": user_id,
            "username": username,
            "vars": dict(vars or {}),
            "query": dict(query or {}),
        }
        info = self.redactor.value(info)
        if headers is not None:
            info["headers"] = self.redactor.headers(headers)
        ev = WireEvent(name, "out", self.now() if t is None else t, "open", envelope=info)
        self.sockets[name] = _Socket(name, ev, user_id)
        self._users[name] = user_id
        version = client_version_of(vars)
        if version and user_id:
            self.versions[user_id] = version
        return name

    def envelope(self, socket: str, direction: str, text: str | bytes, t: float | None = None) -> None:
        """Record one message; ``direction`` is ``out`` (client to server) or ``in``."""
        s = self.sockets.get(socket)
        if s is None:
            return
        t = self.now() if t is None else t
        obj: dict[str, Any] | None = None
        cost = len(text) + _EVENT_OVERHEAD
        redact = self.redactor
        if isinstance(text, (bytes, bytearray)):
            raw = base64.b64encode(redact.bytes(bytes(text))).decode("ascii")
            ev = WireEvent(socket, direction, t, "binary", raw=raw)
        else:
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                value = None
            if isinstance(value, dict):
                obj = redact.value(value)
                ev = WireEvent(socket, direction, t, "envelope", envelope=obj)
            else:
                ev = WireEvent(socket, direction, t, "envelope", raw=redact.text(text))
        if obj is None:
            self._route(s, ev, "", cost)
            return
        kind, mid = envelope_kind(obj), envelope_match_id(obj)
        if kind == "match_join" and direction == "out" and s.user_id:
            version = client_version_of((obj.get("match_join") or {}).get("metadata"))
            if version:
                self.versions[s.user_id] = version
        if kind == "match" and direction == "in" and mid:
            self._join(s, mid)
        self._route(s, ev, mid if mid in s.matches else "", cost)

    def close_socket(self, socket: str, direction: str, code: int | None, reason: str, t: float | None = None) -> None:
        """Record the socket's close: ``direction`` ``in`` when the server (or the proxy for it) closed."""
        s = self.sockets.pop(socket, None)
        if s is None:
            return
        ev = WireEvent(
            socket,
            direction,
            self.now() if t is None else t,
            "close",
            close_code=code,
            close_reason=self.redactor.text(reason) if reason else reason,
        )
        if not s.matches:
            self._spill(s, len(s.held))
        for mid in s.matches:
            self._write(mid, ev)
        if s.unmatched:
            self._write(UNMATCHED, ev)

    # -- routing ----------------------------------------------------------------------------------
    def _join(self, s: _Socket, mid: str) -> None:
        if mid in s.matches:
            s.matches.remove(mid)
            s.matches.append(mid)
            return
        first = not s.matches
        s.matches.append(mid)
        self._write(mid, s.open_event)
        if first:
            for e, _ in s.held:
                self._write(mid, e)
            s.held.clear()
            s.held_bytes = 0

    def _route(self, s: _Socket, ev: WireEvent, mid: str, cost: int) -> None:
        if mid:
            self._write(mid, ev, cost)
        elif s.matches:
            self._write(s.matches[-1], ev, cost)
        else:
            s.held.append((ev, cost))
            s.held_bytes += cost
            n = 0
            over = s.held_bytes
            while over > self.hold_bytes and n < len(s.held):
                over -= s.held[n][1]
                n += 1
            if n:
                self._spill(s, n)

    def _spill(self, s: _Socket, n: int) -> None:
        """Write the socket's ``n`` oldest held events to ``unmatched.nkrec`` (after its open, once)."""
        if not s.unmatched:
            s.unmatched = True
            self._write(UNMATCHED, s.open_event)
        for _ in range(n):
            e, cost = s.held.popleft()
            s.held_bytes -= cost
            self._write(UNMATCHED, e, cost)

    def _write(self, mid: str, ev: WireEvent, cost: int = _EVENT_OVERHEAD) -> None:
        f = self.files.get(mid)
        if f is None:
            f = self.files[mid] = self._open_file(mid)
        chunks = f.writer.chunks_written
        f.writer.append(ev)
        self.events += 1
        f.buffered_bytes += cost
        if f.buffered_bytes >= self.chunk_bytes:
            f.writer.flush()
        if f.writer.chunks_written != chunks:  # a chunk was just written (here or after chunk_events)
            f.buffered_bytes = 0
        uid = self._users.get(ev.socket)
        if uid:
            f.users.add(uid)

    def _open_file(self, mid: str) -> _File:
        base = UNMATCHED if mid == UNMATCHED else _SAFE.sub("_", mid)
        path = self.out_dir / f"{base}.nkrec"
        n = 1
        while path.exists() or path in self.paths:
            n += 1
            path = self.out_dir / f"{base}-{n}.nkrec"
        match_id = "" if mid == UNMATCHED else mid
        uuid_part, _, node = match_id.partition(".")
        header = Header(
            match_id=match_id,
            node=node,
            source=self.source,
            recording_kind="wire",
            started_ms=self.started_ms,
            client_versions={},
            tags=dict(self.tags),
            log_match_id=uuid_part,
            redactions=self.redactor.labels,
        )
        self.paths.append(path)
        return _File(RecordingWriter(path, header, chunk_events=self.chunk_events), header)

    # -- flushing ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Push every buffered event to disk (one frame per file with pending events)."""
        for f in self.files.values():
            f.writer.flush()
            f.buffered_bytes = 0

    def close(self) -> None:
        """Close open sockets' records as abnormal (1006), flush, and update headers with client versions
        learnt after a file was started."""
        for name in list(self.sockets):
            self.close_socket(name, "in", 1006, "recorder stopped")
        for f in self.files.values():
            f.writer.close()
            versions = {u: v for u, v in self.versions.items() if u in f.users}
            if versions != f.versions:
                self._rewrite_header(f, versions)
        self.files.clear()

    def _rewrite_header(self, f: _File, versions: dict[str, str]) -> None:
        """Copy the file with the client versions in its header, chunk by chunk (never the whole file in
        memory), then put the copy in its place."""
        path = Path(f.writer.path)
        tmp = path.with_name(path.name + ".tmp")
        with (
            open_recording(path) as rec,
            RecordingWriter(tmp, replace(rec.header, client_versions=versions), chunk_events=self.chunk_events) as w,
        ):
            for _info, events in rec.chunks():
                w.extend(events)
                w.flush()
        os.replace(tmp, path)
