"""Turn Nakama logs written through the Lua capture module into handler-call recordings.

``recorder/runtime/nkreplay_capture.lua`` logs one record per handler call through ``nk.logger_info``:
``nkreplay:1 {json}`` (or ``nkreplay:1 P seq/i/n text`` parts of a long one). ``Ingest`` collects them
from any number of log sources (lines of many matches interleaved; lines that are not ours skipped;
damaged lines and records kept with their source and line number), adds the crash marker Nakama itself
logs (``Stopping match after error from <callback> execution``, fields ``mid``, ``tick``, ``error``), and
``matches()`` builds one ``Header`` and call list per match:

- calls in the order of their sequence numbers; a gap (lost lines) is reported, the rest still written;
- broadcast targets filtered through the match's presence list as Nakama does (joins append, leaves swap
  the leaver with the last presence; targets that are not in the match are dropped, an empty target list
  sends nothing), so recorded outcomes compare with a replay's;
- a logged state snapshot becomes the outcome's ``snapshot`` and ``digest`` (``recorder.canonical``);
- the header keeps both match ids: ``match_id`` as clients see it (``uuid.node``, from the records) and
  ``log_match_id`` as the log prints it (``mid``, no node).

A record that contradicts its schema is reported as damaged with its line and left out.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.canonical import canonical_bytes, state_digest
from recorder.errors import StateError
from recorder.model import (
    Broadcast,
    Call,
    CrashMarker,
    Event,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
)
from recorder.nakama_log import DamagedLine, LogEntry, LogStats, crash_of, iter_log, parse_ts_ms
from recorder.nkrec import RecordingWriter

__all__ = ["TAG", "Ingest", "IngestedMatch", "write_match"]

TAG = "nkreplay:1 "
_KINDS = ("init", "join_attempt", "join", "leave", "loop", "signal", "terminate")


class _Bad(Exception):
    """A record field that is not what the capture module writes."""


@dataclass(slots=True)
class _Record:
    body: dict[str, Any]
    source: str
    line: int
    ts_ms: int


@dataclass(slots=True)
class IngestedMatch:
    """One match's recording, ready to write: header, calls (and crash marker), and what went wrong."""

    header: Header
    events: list[Event]
    calls: int
    ticks: int
    problems: list[str] = field(default_factory=list)

    @property
    def crash(self) -> CrashMarker | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, CrashMarker) else None


class Ingest:
    """Collects capture records and crash lines from Nakama logs; ``matches()`` assembles recordings."""

    def __init__(self) -> None:
        self.stats = LogStats()
        self.records: dict[str, dict[int, _Record]] = {}  # match id -> seq -> record
        self.parts: dict[tuple[str, int], dict[int, tuple[int, str, str, int, int]]] = {}
        self.crashes: dict[str, CrashMarker] = {}  # log mid -> Nakama's crash line
        self.mids: dict[str, str] = {}  # match id -> mid seen on its lines
        self.ours = 0

    # -- reading ----------------------------------------------------------------------------------------
    def feed(self, lines: Iterable[str | bytes], source: str = "<stdin>") -> None:
        """Read one log source."""
        for item in iter_log(lines, source, self.stats):
            if isinstance(item, DamagedLine):
                continue
            self._entry(item)

    def _damaged(self, source: str, line: int, problem: str) -> None:
        self.stats.damaged.append(DamagedLine(source, line, problem))

    def _entry(self, e: LogEntry) -> None:
        crash = crash_of(e)
        if crash is not None:
            self.crashes[crash[0]] = crash[1]
            return
        msg = e.msg
        if not msg.startswith(TAG):
            return
        self.ours += 1
        body = msg[len(TAG) :]
        ts_ms = parse_ts_ms(e.ts)
        mid = e.fields.get("mid")
        if body.startswith("P "):
            self._part(e, body, ts_ms, mid)
            return
        self._record(body, e.source, e.line, ts_ms, mid)

    def _part(self, e: LogEntry, body: str, ts_ms: int, mid: Any) -> None:
        try:
            _, position, text = body.split(" ", 2)
            seq_s, i_s, n_s = position.split("/")
            seq, i, n = int(seq_s), int(i_s), int(n_s)
            if not 1 <= i <= n:
                raise ValueError("part number out of range")
        except ValueError as exc:
            self._damaged(e.source, e.line, f"malformed record part ({exc})")
            return
        key = (str(mid or ""), seq)
        got = self.parts.setdefault(key, {})
        got[i] = (n, text, e.source, e.line, ts_ms)
        if len(got) == n and all(got[k][0] == n for k in got):
            whole = "".join(got[k][1] for k in range(1, n + 1))
            first = got[1]
            del self.parts[key]
            self._record(whole, first[2], first[3], first[4], mid)

    def _record(self, body: str, source: str, line: int, ts_ms: int, mid: Any) -> None:
        try:
            rec = json.loads(body)
        except ValueError as exc:
            self._damaged(source, line, f"capture record is not valid JSON ({exc})")
            return
        if not isinstance(rec, dict) or not isinstance(rec.get("m"), str) or not isinstance(rec.get("s"), int):
            self._damaged(source, line, "capture record without match id (m) and sequence number (s)")
            return
        if rec.get("k") not in _KINDS and "capture_error" not in rec:
            self._damaged(source, line, f"capture record of unknown kind {rec.get('k')!r}")
            return
        match_id, seq = rec["m"], rec["s"]
        if isinstance(mid, str):
            self.mids.setdefault(match_id, mid)
        seen = self.records.setdefault(match_id, {})
        if seq in seen:
            if seen[seq].body != rec:
                self._damaged(source, line, f"match {match_id}: two different records with sequence number {seq}")
            return  # the same line twice (a log shipped twice)
        seen[seq] = _Record(rec, source, line, ts_ms)

    # -- assembling -------------------------------------------------------------------------------------
    def matches(self) -> list[IngestedMatch]:
        """One recording per match that has capture records, in order of first appearance."""
        out = []
        for match_id, records in self.records.items():
            out.append(self._match(match_id, records))
        for (mid, seq), got in self.parts.items():
            first = min(got)
            _, _, source, line, _ = got[first]
            self._damaged(source, line, f"record {seq} of match {mid or '?'}: only {len(got)} of {got[first][0]} parts")
        self.parts.clear()
        return out

    def unmatched_crashes(self) -> list[str]:
        """Log match ids with a Nakama crash line but no capture records."""
        known = {self.mids.get(m) or m.split(".", 1)[0] for m in self.records}
        return [mid for mid in self.crashes if mid not in known]

    def _match(self, match_id: str, records: dict[int, _Record]) -> IngestedMatch:
        log_mid = self.mids.get(match_id) or match_id.split(".", 1)[0]
        problems: list[str] = []
        seqs = sorted(records)
        expected = 0
        for s in seqs:
            if s > expected:
                problems.append(f"records {expected}..{s - 1} missing (lost log lines?)")
            expected = s + 1
        builder = _Builder(match_id)
        for s in seqs:
            r = records[s]
            if "capture_error" in r.body:
                problems.append(f"{r.source}:{r.line}: the capture module could not record a {r.body.get('k')} call: {r.body['capture_error']}")
                continue
            try:
                builder.add(r.body, r.ts_ms)
            except (_Bad, KeyError, TypeError, ValueError, IndexError, binascii.Error, StateError) as exc:
                self._damaged(r.source, r.line, f"match {match_id} record {s}: {exc}")
        crash = self.crashes.get(log_mid) or builder.error_crash
        events: list[Event] = list(builder.calls)
        if crash is not None:
            events.append(crash)
        init = builder.init
        h = init.get("h", {}) if init else {}
        header = Header(
            match_id=match_id,
            log_match_id=log_mid,
            module=str(h.get("mod") or ""),
            tick_rate=builder.tick_rate,
            label=builder.label,
            params=builder.params,
            node=str(h.get("node") or (match_id.split(".", 1)[1] if "." in match_id else "")),
            source="lua-capture",
            started_ms=builder.started_ms,
            tags={"capture_version": h.get("v", 1), "snapshot_every": h.get("snap", 0)},
            redactions=tuple([f"key:{k}" for k in _list(h.get("red"))] + [f"op:{op}" for op in _list(h.get("redop"))]),
        )
        if init is None:
            problems.append("no init record: the match started before the capture module, or its first lines are lost")
        return IngestedMatch(header, events, len(builder.calls), builder.loops, problems)


def _list(v: Any) -> list[Any]:
    """A JSON array as Nakama's json_encode writes it (an empty Lua table is ``{}``)."""
    if v is None or v == {}:
        return []
    if not isinstance(v, list):
        raise _Bad(f"expected a list, got {type(v).__name__}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise _Bad(f"{what} must be a string")
    return v


def _num(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(f"{what} must be a number")
    return int(v)


def _presence(v: Any, reason: int | None = None) -> Presence:
    items = _list(v)
    if len(items) < 4:
        raise _Bad("a presence needs user_id, session_id, username and node")
    r = reason if reason is not None else (_num(items[4], "reason") if len(items) > 4 else 0)
    return Presence(_str(items[0], "user_id"), _str(items[1], "session_id"), _str(items[2] or "", "username"), _str(items[3] or "", "node"), r)


def _data(v: Any) -> bytes | None:
    if v is None or v is False:
        return None
    return base64.b64decode(_str(v, "data"), validate=True)


class _Builder:
    """Turns one match's records, in sequence order, into calls with outcomes."""

    def __init__(self, match_id: str) -> None:
        self.match_id = match_id
        self.calls: list[Call] = []
        self.presences: list[Presence] = []  # Nakama's presence list, for broadcast targets
        self.init: dict[str, Any] | None = None
        self.tick_rate = 0
        self.label = ""
        self.params: dict[str, Any] = {}
        self.started_ms = 0
        self.loops = 0
        self.error_crash: CrashMarker | None = None

    def add(self, rec: dict[str, Any], ts_ms: int) -> None:
        kind, tick = rec["k"], _num(rec.get("t", 0), "tick")
        o = rec.get("o") or {}
        if not isinstance(o, dict):
            raise _Bad("outcome (o) must be an object")
        nd = tuple(Nondeterministic(_str(s, "source"), v) for s, v in (_pair(x) for x in _list(rec.get("nd"))))
        call: Call
        if kind == "init":
            self.init = rec
            params = rec.get("p") or {}
            if not isinstance(params, dict):
                raise _Bad("params (p) must be an object")
            self.params = params
            self.started_ms = ts_ms
            rate = o.get("tr")
            label = o.get("l")
            if isinstance(rate, (int, float)) and not isinstance(rate, bool):
                self.tick_rate = int(rate)
            if isinstance(label, str):
                self.label = label
            outcome = self._outcome(o, tick_rate=self.tick_rate or None, label=label if isinstance(label, str) else None)
            call = InitCall(params, outcome, nd)
        elif kind == "join_attempt":
            accept = o.get("a")
            reason = o.get("r")
            outcome = self._outcome(
                o, accept=accept if isinstance(accept, bool) else None, reason=reason if isinstance(reason, str) else None
            )
            metadata = rec.get("md") or {}
            vars_ = rec.get("vars") or {}
            if not isinstance(metadata, dict) or not isinstance(vars_, dict):
                raise _Bad("metadata (md) and vars must be objects")
            call = JoinAttemptCall(tick, _presence(rec["pr"], 0), metadata, outcome, nd, {str(k): str(v) for k, v in vars_.items()})
        elif kind == "join":
            joined = tuple(_presence(p) for p in _list(rec.get("ps")))
            present = {(p.session_id, p.node) for p in self.presences}
            for p in joined:
                if (p.session_id, p.node) not in present:
                    self.presences.append(p)
                    present.add((p.session_id, p.node))
            call = JoinCall(tick, joined, self._outcome(o), nd)
        elif kind == "leave":
            left = tuple(_presence(p) for p in _list(rec.get("ps")))
            for p in left:
                for i, q in enumerate(self.presences):
                    if q.session_id == p.session_id and q.node == p.node:
                        self.presences[i] = self.presences[-1]
                        self.presences.pop()
                        break
            call = LeaveCall(tick, left, self._outcome(o), nd)
        elif kind == "loop":
            senders = [_presence(p, 0) for p in _list(rec.get("ps"))]
            messages = []
            for m in _list(rec.get("ms")):
                idx, op, data, reliable, received = _list(m)[:5]
                if not 1 <= _num(idx, "sender index") <= len(senders):
                    raise _Bad("message sender index out of range")
                messages.append(MatchMessage(senders[int(idx) - 1], _num(op, "op_code"), _data(data), bool(reliable), _num(received, "receive_time_ms")))
            call = LoopCall(tick, tuple(messages), self._outcome(o), nd)
            self.loops += 1
        elif kind == "signal":
            reply = o.get("rp")
            call = SignalCall(tick, _str(rec.get("d", ""), "signal data"), self._outcome(o, reply=reply if isinstance(reply, str) else ""), nd)
        else:  # terminate
            call = TerminateCall(tick, _num(rec.get("g", 0), "grace seconds"), self._outcome(o), nd)
        if "e" in rec:
            # the call raised: no outcome to compare, and the crash in case Nakama's crash line is missing
            call = _without_outcome(call)
            self.error_crash = CrashMarker(call.callback, tick, str(rec["e"]), "")
        self.calls.append(call)

    def _outcome(self, o: dict[str, Any], **extra: Any) -> Outcome:
        broadcasts = []
        for b in _list(o.get("b")):
            op, data, targets, sender, reliable, deferred = _list(b)[:6]
            resolved = self._targets(targets)
            if resolved is False:
                continue
            sender_p = None if sender in (None, False) else Presence(*(_str(x, "sender field") for x in _list(sender)[:3]))
            broadcasts.append(Broadcast(_num(op, "op_code"), _data(data), resolved, sender_p, bool(reliable), bool(deferred)))
        kicks = tuple(_presence(p) for p in _list(o.get("kk")))
        labels = tuple(_str(x, "label") for x in _list(o.get("lu")))
        digest = snapshot = None
        if "ss" in o:
            snapshot = canonical_bytes(o["ss"])
            digest = state_digest(o["ss"])
        return Outcome(
            broadcasts=tuple(broadcasts), kicks=kicks, label_updates=labels, digest=digest, snapshot=snapshot,
            stopped=bool(o.get("st")), **extra,
        )

    def _targets(self, targets: Any) -> tuple[Presence, ...] | None | bool:
        """Nakama's FilterPresenceIDs over the match's presence list: None for everyone, False for nobody."""
        if targets in (None, False):
            return None
        wanted = [tuple(_list(t)[:2]) for t in _list(targets)]
        if not wanted:
            return False
        members = {(p.session_id, p.node): p for p in self.presences}
        i = 0
        while i < len(wanted):
            if wanted[i] not in members:
                wanted[i] = wanted[-1]
                wanted.pop()
                continue
            i += 1
        if not wanted:
            return False
        return tuple(members[w] for w in wanted)  # type: ignore[index]


def _pair(x: Any) -> tuple[Any, Any]:
    items = _list(x)
    if len(items) != 2:
        raise _Bad("a nondeterministic value is [source, value]")
    return items[0], items[1]


def _without_outcome(call: Call) -> Call:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(call, outcome=None)  # type: ignore[arg-type]


def write_match(match: IngestedMatch, out_dir: str | os.PathLike[str], *, handler: str | None = None) -> Path:
    """Write one ingested match as ``OUT/<match id>.nkrec``; ``handler`` is stored relative to OUT."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{match.header.match_id.replace('/', '_')}.nkrec"
    header = match.header
    if handler:
        import dataclasses  # noqa: PLC0415

        header = dataclasses.replace(header, handler=os.path.relpath(Path(handler).resolve(), out.resolve()))
    with RecordingWriter(path, header) as w:
        for e in match.events:
            w.append(e)
    return path
