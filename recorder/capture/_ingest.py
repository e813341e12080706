"""Turn Nakama logs written through the capture modules into handler-call recordings.

``recorder/capture/modules/nkreplay_capture.lua`` (and ``nkreplay_capture.js`` for JavaScript matches, with the
same records and ``h.src`` ``"js-capture"``) logs one record per handler call through ``nk.logger_info``:
``nkreplay:1 {json}`` (or ``nkreplay:1 P seq/i/n text`` parts of a long one). ``Ingest`` collects them
from any number of log sources (lines of many matches interleaved; lines that are not ours skipped;
damaged lines and records kept with their source and line number), adds the crash marker Nakama itself
logs (``Stopping match after error from <callback> execution``, fields ``mid``, ``tick``, ``error``), and
``matches()`` builds one ``Header`` and call list per match:

- calls in the order of their sequence numbers; a gap (lost lines) is reported, the rest still written;
- broadcast targets filtered through the match's presence list as Nakama does (joins append, leaves swap
  the leaver with the last presence; targets that are not in the match are dropped, an empty target list
  sends nothing), so recorded outcomes compare with a replay's;
- a logged state snapshot becomes the outcome's ``snapshot`` and ``digest`` (``recorder.format._canonical``);
- the header keeps both match ids: ``match_id`` as clients see it (``uuid.node``, from the records) and
  ``log_match_id`` as the log prints it (``mid``, no node).

Nothing in a log stops the run: every line and record is checked at the door (``recorder.format._validate``:
JSON nesting, 64-bit integers, finite numbers, match ids, field types) and one that fails is reported as
damaged with its file, line and field and left out. ``write_matches`` writes each recording whole or not
at all (``recorder.format._atomic``) under a file name made from its match id that no other match id maps to
(``recording_name``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recorder.capture._nakama_log import DamagedLine, LogEntry, LogStats, crash_of, iter_log, open_log, parse_ts_ms
from recorder.errors import InvalidValue, LogError, RecordingError, StateError
from recorder.format import (
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
    RecordingWriter,
    SignalCall,
    TerminateCall,
    canonical_bytes,
    open_recording,
    parse_json,
    state_digest,
)
from recorder.format._atomic import atomic_location
from recorder.format._integrity import SOURCE_GAPS_TAG
from recorder.format._validate import INT64_MAX, MAX_DEPTH, integer, match_id, show, text, value
from recorder.storage import kind_of, local_path

__all__ = ["TAG", "Ingest", "IngestedMatch", "recording_name", "write_match", "write_matches"]

TAG = "nkreplay:1 "
_KINDS = ("init", "join_attempt", "join", "leave", "loop", "loops", "nd", "signal", "terminate")
#: the capture modules that write the records (the init record's ``h.src``; absent: the Lua module)
CAPTURE_SOURCES = ("lua-capture", "js-capture")
#: arrays and maps a capture record itself adds around the free-form values it carries (record, nd, pair;
#: a lean "loops" record adds its entry list and entry)
_RECORD_NESTING = 3
_LOOPS_NESTING = 5
#: most loop ticks one lean "loops" record may stand for (the module flushes every flush_seconds of ticks)
MAX_LOOPS_PER_RECORD = 100_000
#: most loop ticks ingest infers between two records of a lean match whose quiet loops are not written
#: (h.quiet): 55 hours at 10 Hz
MAX_INFERRED_LOOPS = 2_000_000
_MAX_PARTS = 100_000  # parts of one split record (the capture module's max_line is thousands of bytes)


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
        """Read one log source. Never raises for what the lines hold: bad ones are counted as damaged."""
        for item in iter_log(lines, source, self.stats):
            if isinstance(item, DamagedLine):
                continue
            try:
                self._entry(item)
            except InvalidValue as exc:
                self._damaged(item.source, item.line, _describe(exc))

    def feed_file(self, name: str) -> None:
        """Read the log file ``name`` (gzip-compressed or not), or standard input for ``-``. A file that
        cannot be opened raises ``LogError``; compressed input that ends early keeps what was read."""
        if name == "-":
            self.feed(_maybe_gzip(sys.stdin.buffer), "<stdin>")
            return
        try:
            f = open_log(name)
        except OSError as exc:
            raise LogError(name, f"cannot read the log: {exc.strerror or exc}") from exc
        with f:
            self.feed(f, name)

    def merge(self, other: Ingest) -> None:
        """Add what ``other`` read (from other sources) to this one, as if this one had read them after its
        own: records of one match from several files come together (assembled in sequence order by
        ``matches()``), record parts split across files are joined, the same record twice counts once, and
        two different records with one sequence number are reported as damaged. Lets each log file be read
        by its own task (``ingest --executor dask``), then merged in the order the files were named."""
        self.stats.lines += other.stats.lines
        self.stats.entries += other.stats.entries
        self.stats.other += other.stats.other
        self.stats.damaged.extend(other.stats.damaged)
        self.ours += other.ours
        self.crashes.update(other.crashes)
        for match, mid in other.mids.items():
            self.mids.setdefault(match, mid)
        for match, records in other.records.items():
            seen = self.records.setdefault(match, {})
            for seq, rec in records.items():
                if seq not in seen:
                    seen[seq] = rec
                elif seen[seq].body != rec.body:
                    self._damaged(
                        rec.source,
                        rec.line,
                        f"s: match {match}: two different records with sequence number {seq}",
                    )
        for key, got in other.parts.items():
            mine = self.parts.setdefault(key, {})
            for i, part in got.items():
                mine.setdefault(i, part)
            n = next(iter(mine.values()))[0]
            if len(mine) == n and all(mine[k][0] == n for k in mine):
                whole = "".join(mine[k][1] for k in range(1, n + 1))
                first = mine[1]
                del self.parts[key]
                try:
                    self._record(whole, first[2], first[3], first[4], key[0] or None)
                except InvalidValue as exc:
                    self._damaged(first[2], first[3], _describe(exc))

    def _damaged(self, source: str, line: int, problem: str) -> None:
        self.stats.damaged.append(DamagedLine(source, line, problem))

    def _entry(self, e: LogEntry) -> None:
        try:
            crash = crash_of(e)
        except InvalidValue as exc:
            raise InvalidValue("", f"Nakama's crash line: {_describe(exc)}") from None
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
        if mid is not None:
            match_id(mid, "mid")
        if body.startswith("P "):
            self._part(e, body, ts_ms, mid)
            return
        self._record(body, e.source, e.line, ts_ms, mid)

    def _part(self, e: LogEntry, body: str, ts_ms: int, mid: str | None) -> None:
        try:
            _, position, text_ = body.split(" ", 2)
            seq_s, i_s, n_s = position.split("/")
            seq, i, n = int(seq_s), int(i_s), int(n_s)
        except ValueError as exc:
            raise InvalidValue("", f"malformed record part ({str(exc)[:80]})") from None
        integer(seq, "part sequence number", 0, INT64_MAX)
        integer(n, "part count", 1, _MAX_PARTS)
        integer(i, "part number", 1, n)
        key = (mid or "", seq)
        got = self.parts.setdefault(key, {})
        got[i] = (n, text_, e.source, e.line, ts_ms)
        if len(got) == n and all(got[k][0] == n for k in got):
            whole = "".join(got[k][1] for k in range(1, n + 1))
            first = got[1]
            del self.parts[key]
            try:
                self._record(whole, first[2], first[3], first[4], mid)
            except InvalidValue as exc:
                self._damaged(first[2], first[3], _describe(exc))

    def _record(self, body: str, source: str, line: int, ts_ms: int, mid: str | None) -> None:
        rec = _parse_record(body)
        match, seq = rec["m"], rec["s"]
        if mid is not None:
            self.mids.setdefault(match, mid)
        seen = self.records.setdefault(match, {})
        if seq in seen:
            if seen[seq].body != rec:
                raise InvalidValue("s", f"match {match}: two different records with sequence number {seq}")
            return  # the same line twice (a log shipped twice)
        seen[seq] = _Record(rec, source, line, ts_ms)

    # -- assembling -------------------------------------------------------------------------------------
    def matches(self) -> list[IngestedMatch]:
        """One recording per match that has usable capture records, in order of first appearance."""
        out = []
        for match, records in self.records.items():
            m = self._match(match, records)
            if m.calls:
                out.append(m)
            else:
                r = records[min(records)]
                self._damaged(r.source, r.line, f"match {match}: no usable records, no recording written")
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

    def _match(self, match: str, records: dict[int, _Record]) -> IngestedMatch:
        log_mid = self.mids.get(match) or match.split(".", 1)[0]
        problems: list[str] = []
        seqs = sorted(records)
        expected = 0
        for s in seqs:
            if s > expected:
                which = f"record {expected}" if s == expected + 1 else f"records {expected}..{s - 1}"
                problems.append(f"{which} missing (lost log lines, or damaged ones reported above)")
            expected = s + 1
        builder = _Builder(match)
        expected = 0
        for s in seqs:
            r = records[s]
            if s > expected:
                builder.lost()
            expected = s + 1
            if "capture_error" in r.body:
                problems.append(
                    f"{r.source}:{r.line}: the capture module could not record a {show(r.body.get('k'))} call: "
                    f"{show(r.body['capture_error'], 200)}"
                )
                continue
            try:
                builder.add(r.body, r.ts_ms)
            except InvalidValue as exc:
                builder.lost()
                self._damaged(r.source, r.line, f"match {match} record {s}: {_describe(exc)}")
                problems.append(f"{r.source}:{r.line}: record {s} is damaged, its calls are missing: {_describe(exc)}")
        problems.extend(builder.problems)
        if builder.init is None:
            problems.append("no init record: the match started before the capture module, or its first lines are lost")
        crash = self.crashes.get(log_mid) or builder.error_crash
        if builder.quiet and crash is not None and crash is not builder.error_crash:
            # Nakama's crash line: the loops before it ran (those run unobserved were not written), and a
            # loop that raised unobserved is the crashing call
            try:
                if crash.callback == "match_loop":
                    builder.crashed_loop(crash.tick)
                else:
                    builder.infer_loops(crash.tick)
            except InvalidValue as exc:
                problems.append(f"the loops before Nakama's crash line at tick {crash.tick}: {_describe(exc)}")
        events: list[Event] = list(builder.calls)
        if crash is not None:
            events.append(crash)
        header = Header(
            match_id=match,
            log_match_id=log_mid,
            module=builder.module,
            tick_rate=builder.tick_rate,
            label=builder.label,
            params=builder.params,
            node=builder.node or (match.split(".", 1)[1] if "." in match else ""),
            source=builder.source,
            started_ms=builder.started_ms,
            tags={
                "capture_version": builder.capture_version,
                "snapshot_every": builder.snapshot_every,
                "capture_mode": builder.mode,
                **({SOURCE_GAPS_TAG: problems} if problems else {}),  # the verdicts' "gapped": not complete
            },
            redactions=builder.redactions,
        )
        return IngestedMatch(header, events, len(builder.calls), builder.loops, problems)


def read_log(name: str) -> Ingest:
    """What one log file (a path or URL) holds, read on its own: one task of ``ingest_files``."""
    ingest = Ingest()
    ingest.feed_file(name)
    return ingest


def ingest_files(names: Iterable[str], executor: Any = None) -> Ingest:
    """Read each log file in a task of its own on ``executor`` (anything with ``submit(fn, *args)``
    returning a future: a process pool, ``replay.regression.load_executor("dask", n)``; None: here, one
    after another), then merge them in the order named, so the result is the same as one ``Ingest`` fed
    every file in turn. A file that cannot be opened raises ``LogError`` as ``feed_file`` does; a task lost
    with its worker is reported as a damaged line of that file (the run goes on, and says so)."""
    names = list(names)
    total = Ingest()
    if executor is None:
        for name in names:
            total.feed_file(name)
        return total
    futures = [executor.submit(read_log, name) for name in names]
    for name, future in zip(names, futures):
        try:
            part = future.result()
        except LogError:
            raise
        except Exception as exc:  # the worker's or the cluster's failure, not the log's
            total._damaged(name, 0, f"not read: the task reading it failed ({type(exc).__name__}: {exc})")
            continue
        total.merge(part)
    return total


def _describe(exc: InvalidValue) -> str:
    return f"{exc.field}: {exc.problem}" if exc.field else exc.problem


def _maybe_gzip(stream: Any) -> Any:
    """Standard input, decompressed when it starts like gzip (``cat nakama.log.gz | ingest -``)."""
    peek = getattr(stream, "peek", None)
    if peek is not None and peek(2)[:2] == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def _parse_record(body: str) -> dict[str, Any]:
    """A capture record's JSON, checked as a whole: an object with a match id (m), a sequence number (s)
    and a kind (k); nesting, integers and numbers within the limits everywhere in it."""
    rec = parse_json(body)
    if type(rec) is not dict:
        raise InvalidValue("", f"a capture record is a JSON object, got {show(rec)}")
    nesting = _LOOPS_NESTING if rec.get("k") == "loops" else _RECORD_NESTING
    value(rec, "", from_json=True, max_depth=MAX_DEPTH + nesting)
    if "m" not in rec or "s" not in rec:
        raise InvalidValue("", "capture record without match id (m) and sequence number (s)")
    match_id(rec["m"], "m")
    integer(rec["s"], "s", 0, INT64_MAX)
    if rec.get("k") not in _KINDS and "capture_error" not in rec:
        raise InvalidValue("k", f"capture record of unknown kind {show(rec.get('k'))}")
    return rec


# -- record fields (short keys, as nkreplay_capture.lua writes them) --------------------------------------


def _whole(v: Any, field: str, lo: int = -(1 << 63), hi: int = INT64_MAX) -> int:
    """A whole number (Lua numbers are doubles: ``3.0`` is 3)."""
    return integer(v, field, lo, hi, whole_floats=True)


def _tick(v: Any, field: str) -> int:
    return _whole(v, field, 0, INT64_MAX)


def _list(v: Any, field: str) -> list[Any]:
    """A JSON array as Nakama's json_encode writes it (an empty Lua table is ``{}``; absent is empty)."""
    if v is None or v == {}:
        return []
    if type(v) is not list:
        raise InvalidValue(field, f"must be an array, got {show(v)}")
    return v


def _items(v: Any, field: str, count: int, what: str) -> list[Any]:
    """The first ``count`` items of an array that must hold at least that many."""
    items = _list(v, field)
    if len(items) < count:
        raise InvalidValue(field, f"must be {what}, got {show(v)}")
    return items[:count]


def _object(v: Any, field: str) -> dict[str, Any]:
    """A JSON object (absent or an empty Lua table is empty)."""
    if v is None or v == [] or v == {}:
        return {}
    if type(v) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    return v


def _presence(v: Any, field: str, reason: int | None = None) -> Presence:
    items = _list(v, field)
    if len(items) < 4:
        raise InvalidValue(field, "a presence needs user_id, session_id, username and node")
    r = reason if reason is not None else (_whole(items[4], f"{field}[4]") if len(items) > 4 else 0)
    return Presence(
        text(items[0], f"{field}[0]"),
        text(items[1], f"{field}[1]"),
        text(items[2] or "", f"{field}[2]"),
        text(items[3] or "", f"{field}[3]"),
        r,
    )


def _data(v: Any, field: str) -> bytes | None:
    if v is None or v is False:
        return None
    try:
        return base64.b64decode(text(v, field), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidValue(field, f"not standard base64 ({exc})") from None


class _Builder:
    """Turns one match's records, in sequence order, into calls with outcomes."""

    def __init__(self, match: str) -> None:
        self.match_id = match
        self.calls: list[Call] = []
        self.presences: list[Presence] = []  # Nakama's presence list, for broadcast targets
        self.init: dict[str, Any] | None = None
        self.tick_rate = 0
        self.label = ""
        self.params: dict[str, Any] = {}
        self.started_ms = 0
        self.loops = 0
        self.error_crash: CrashMarker | None = None
        # from the init record's "h" (the capture module's own header)
        self.module = ""
        self.node = ""
        self.capture_version = 1
        self.snapshot_every = 0
        self.source = "lua-capture"  # the JS capture wrapper says "js-capture" (h.src)
        self.redactions: tuple[str, ...] = ()
        self.mode = "full"  # the capture module's mode (h.mode): "lean" records loops by their inputs only
        # h.quiet: loops with nothing to record are not written; they are inferred from the ticks of the
        # records around them (every tick from 0 runs a loop), up to the tick before each record
        self.quiet = False
        self.next_loop: int | None = 0  # the tick of the first loop not yet known (quiet mode; None: lost)
        self.problems: list[str] = []  # calls the capture module could not record (lean entries)

    def add(self, rec: dict[str, Any], ts_ms: int) -> None:
        """Add one record; raises ``InvalidValue`` naming the field when it contradicts the capture format."""
        kind = rec["k"]
        if kind == "loops":
            if self.quiet:
                self.infer_loops(_tick(rec.get("t"), "t"), "t")
            self._loops(rec)
            return
        if kind == "nd":
            self._quiet_values(rec)
            return
        if kind == "init":
            self.started_ms = ts_ms
        tick = _tick(rec.get("t", 0), "t")
        if self.quiet and kind != "init":
            self.infer_loops(tick, "t")
        self.calls.append(self._call(rec, kind, tick, ""))
        if kind == "init":
            self.next_loop = 0

    def lost(self) -> None:
        """Records were lost or damaged here: where their loops ended is not known, so none are inferred
        up to the next record (the match's problems already say calls are missing)."""
        self.next_loop = None

    def infer_loops(self, tick: int, field: str = "t") -> None:
        """Quiet mode: the loops before ``tick`` not written (nothing in them to record) as empty calls."""
        if self.next_loop is None:
            self.next_loop = tick
            return
        if tick < self.next_loop:
            return
        if tick - self.next_loop > MAX_INFERRED_LOOPS:
            raise InvalidValue(
                field, f"{tick - self.next_loop} loops after tick {self.next_loop - 1} (at most {MAX_INFERRED_LOOPS})"
            )
        self.calls.extend(LoopCall(t, (), None, ()) for t in range(self.next_loop, tick))
        self.loops += tick - self.next_loop
        self.next_loop = tick

    def crashed_loop(self, tick: int) -> None:
        """Quiet mode: Nakama's crash line says the loop at ``tick`` raised; if its record was not written (a
        loop run unobserved), it is an empty call after the inferred ones."""
        self.infer_loops(tick)
        if self.next_loop == tick:
            self.calls.append(LoopCall(tick, (), None, ()))
            self.loops += 1
            self.next_loop = tick + 1

    def _quiet_values(self, rec: dict[str, Any]) -> None:
        """An ``nd`` record: values consumed by a loop that ran unobserved, written as they were drawn."""
        if not self.quiet:
            raise InvalidValue("k", "an nd record in a match whose init did not say h.quiet")
        tick = _tick(rec.get("t"), "t")
        nd = _nondeterministic(rec.get("nd"), "")
        last = self.calls[-1] if self.calls else None
        if isinstance(last, LoopCall) and last.tick == tick and self.next_loop == tick + 1:
            self.calls[-1] = dataclasses.replace(last, nondeterministic=last.nondeterministic + nd)
            return
        if self.next_loop is not None and tick < self.next_loop:
            raise InvalidValue("t", f"values of the loop at tick {tick}, after the loops up to {self.next_loop - 1}")
        self.infer_loops(tick)
        self.calls.append(LoopCall(tick, (), None, nd))
        self.loops += 1
        self.next_loop = tick + 1

    def _loops(self, rec: dict[str, Any]) -> None:
        """A lean record: ``n`` loop calls from tick ``t``; ``ps`` the senders of its messages; ``x`` holds
        the ticks that had nondeterministic values, an error or an outcome as ``{"i": offset, nd, e, o}``
        (offsets increasing). Messages come either in the entries (``ms``, the first form) or, from the
        capture module since issue 19's second round, as flat scalars: ``mv`` six numbers per message
        (tick offset, sender index into ``ps`` from 1, op code, data length or -1 for no data, reliable,
        receive time), ``md`` the base64 of the messages' data joined in order. Outcomes are not known
        (None) unless the record says it observed them (``"o": 1``: then an absent outcome is an empty
        one). The record is checked whole before any of its calls is added."""
        first = _tick(rec.get("t"), "t")
        n = _whole(rec.get("n"), "n", 1, MAX_LOOPS_PER_RECORD)
        observed = rec.get("o") == 1
        senders = [_presence(p, f"ps[{i}]", 0) for i, p in enumerate(_list(rec.get("ps"), "ps"))]
        entries: dict[int, tuple[int, dict[str, Any]]] = {}  # offset -> (index in x, entry)
        last = -1
        for j, entry in enumerate(_list(rec.get("x"), "x")):
            if type(entry) is not dict:
                raise InvalidValue(f"x[{j}]", f"must be an object, got {show(entry)}")
            i = _whole(entry.get("i"), f"x[{j}].i", 0, n - 1)
            if i <= last:
                raise InvalidValue(f"x[{j}].i", f"offsets must increase, got {i} after {last}")
            last = i
            entries[i] = (j, entry)
        flat = self._flat_messages(rec, n, senders)
        for i in flat:
            if i in entries and "ms" in entries[i][1]:
                raise InvalidValue(f"x[{entries[i][0]}].ms", f"tick offset {i} also has messages in mv")
        calls: list[Call] = []
        loops_before, crash_before, problems_before = self.loops, self.error_crash, len(self.problems)
        try:
            for i in range(n):
                messages = flat.get(i)
                if i not in entries and messages is None:
                    calls.append(LoopCall(first + i, (), Outcome() if observed else None, ()))
                    self.loops += 1
                    continue
                j, entry = entries.get(i, (-1, {}))
                if "capture_error" in entry:
                    self.problems.append(
                        f"the capture module could not record the loop call at tick {first + i}: "
                        f"{show(entry['capture_error'], 200)}"
                    )
                    continue
                if not observed:
                    entry = {k: v for k, v in entry.items() if k != "o"}
                calls.append(
                    self._call(
                        entry,
                        "loop",
                        first + i,
                        f"x[{j}].",
                        lean=not observed,
                        senders=senders,
                        messages=tuple(messages) if messages is not None else None,
                    )
                )
        except InvalidValue:
            self.loops, self.error_crash = loops_before, crash_before
            del self.problems[problems_before:]
            raise
        if self.quiet and self.next_loop is not None and first < self.next_loop:
            self.loops = loops_before
            del self.problems[problems_before:]
            raise InvalidValue("t", f"ticks from {first} overlap the loops known up to {self.next_loop - 1}")
        self.calls.extend(calls)
        self.next_loop = first + n if self.next_loop is None else max(self.next_loop, first + n)

    @staticmethod
    def _flat_messages(rec: dict[str, Any], n: int, senders: list[Presence]) -> dict[int, list[MatchMessage]]:
        """A loops record's ``mv``/``md`` messages by tick offset (empty when the record has none)."""
        if "mv" not in rec:
            if "md" in rec:
                raise InvalidValue("md", "message data without the messages (mv)")
            return {}
        mv = _list(rec["mv"], "mv")
        if len(mv) % 6:
            raise InvalidValue("mv", f"must hold six numbers per message, got {len(mv)}")
        data = _data(rec.get("md", ""), "md") or b""
        out: dict[int, list[MatchMessage]] = {}
        pos = 0
        last = 0
        for k in range(0, len(mv), 6):
            at = f"mv[{k}]"
            i = _whole(mv[k], at, 0, n - 1)
            if i < last:
                raise InvalidValue(at, f"tick offsets must not decrease, got {i} after {last}")
            last = i
            if not senders:
                raise InvalidValue(f"mv[{k + 1}]", "a message needs a sender, and the record lists none (ps)")
            sender = _whole(mv[k + 1], f"mv[{k + 1}]", 1, len(senders))
            size = _whole(mv[k + 3], f"mv[{k + 3}]", -1, len(data) - pos)
            body = None
            if size >= 0:
                body = data[pos : pos + size]
                pos += size
            reliable = mv[k + 4]
            if type(reliable) is not bool and reliable not in (0, 1):
                raise InvalidValue(f"mv[{k + 4}]", f"must be true, false, 1 or 0, got {show(reliable)}")
            out.setdefault(i, []).append(
                MatchMessage(
                    senders[sender - 1],
                    _whole(mv[k + 2], f"mv[{k + 2}]"),
                    body,
                    bool(reliable),
                    _whole(mv[k + 5], f"mv[{k + 5}]"),
                )
            )
        if pos != len(data):
            raise InvalidValue("md", f"holds {len(data)} bytes, the messages' lengths (mv) add up to {pos}")
        return out

    def _call(
        self,
        rec: dict[str, Any],
        kind: str,
        tick: int,
        where: str,
        *,
        lean: bool = False,
        senders: list[Presence] | None = None,
        messages: tuple[MatchMessage, ...] | None = None,
    ) -> Call:
        """One record's call (fields named with the prefix ``where``); ``lean``: a loop whose outcome was
        not recorded; ``senders``: a loop's senders when its record lists them (a ``loops`` record's ``ps``);
        ``messages``: a loop's messages already read (a ``loops`` record's ``mv``)."""
        o = _object(rec.get("o"), where + "o")
        nd = _nondeterministic(rec.get("nd"), where)
        call: Call
        if kind == "init":
            params = _object(rec.get("p"), "p")
            value(params, "p", from_json=True)
            self._capture_header(_object(rec.get("h"), "h"))
            rate = o.get("tr")
            label = o.get("l")
            tick_rate = 0 if rate is None else _whole(rate, "o.tr", 0, INT64_MAX)
            if label is not None:
                text(label, "o.l")
            outcome = self._outcome(o, tick_rate=tick_rate or None, label=label)
            self.init, self.params, self.tick_rate = rec, params, tick_rate
            if label is not None:
                self.label = label
            call = InitCall(params, outcome, nd)
        elif kind == "join_attempt":
            accept = o.get("a")
            reason = o.get("r")
            outcome = self._outcome(
                o,
                accept=accept if isinstance(accept, bool) else None,
                reason=reason if isinstance(reason, str) else None,
            )
            metadata = _object(rec.get("md"), "md")
            value(metadata, "md", from_json=True)
            vars_ = _object(rec.get("vars"), "vars")
            if "pr" not in rec:
                raise InvalidValue("pr", "missing (the joining presence)")
            call = JoinAttemptCall(
                tick,
                _presence(rec["pr"], "pr", 0),
                metadata,
                outcome,
                nd,
                {str(k): _var(v, f"vars.{k}") for k, v in vars_.items()},
            )
        elif kind == "join":
            joined = tuple(_presence(p, f"ps[{i}]") for i, p in enumerate(_list(rec.get("ps"), "ps")))
            present = {(p.session_id, p.node) for p in self.presences}
            for p in joined:
                if (p.session_id, p.node) not in present:
                    self.presences.append(p)
                    present.add((p.session_id, p.node))
            call = JoinCall(tick, joined, self._outcome(o), nd)
        elif kind == "leave":
            left = tuple(_presence(p, f"ps[{i}]") for i, p in enumerate(_list(rec.get("ps"), "ps")))
            for p in left:
                for i, q in enumerate(self.presences):
                    if q.session_id == p.session_id and q.node == p.node:
                        self.presences[i] = self.presences[-1]
                        self.presences.pop()
                        break
            call = LeaveCall(tick, left, self._outcome(o), nd)
        elif kind == "loop":
            if messages is None:
                messages = self._entry_messages(rec, where, senders)
            loop_outcome = None if lean else self._outcome(o, where=where)
            call = LoopCall(tick, messages, loop_outcome, nd)
            self.loops += 1
        elif kind == "signal":
            reply = o.get("rp")
            call = SignalCall(
                tick, text(rec.get("d", ""), "d"), self._outcome(o, reply=reply if isinstance(reply, str) else ""), nd
            )
        else:  # terminate
            call = TerminateCall(tick, _whole(rec.get("g", 0), "g"), self._outcome(o), nd)
        if "e" in rec:
            # the call raised: no outcome to compare, and the crash in case Nakama's crash line is missing
            call = dataclasses.replace(call, outcome=None)
            error = rec["e"]
            self.error_crash = CrashMarker(
                call.callback, tick, error if isinstance(error, str) else show(error, 200), ""
            )
        return call

    @staticmethod
    def _entry_messages(rec: dict[str, Any], where: str, senders: list[Presence] | None) -> tuple[MatchMessage, ...]:
        """A loop record's (or the first form of a loops entry's) ``ms``: [sender index, op code, base64
        data, reliable, receive time] each, the sender an index into ``ps``."""
        if senders is None:
            senders = [_presence(p, f"ps[{i}]", 0) for i, p in enumerate(_list(rec.get("ps"), "ps"))]
        messages = []
        for j, m in enumerate(_list(rec.get("ms"), where + "ms")):
            at = f"{where}ms[{j}]"
            idx, op, data, reliable, received = _items(m, at, 5, "[sender, op_code, data, reliable, receive_time_ms]")
            sender = _whole(idx, f"{at}[0]", 1, len(senders)) if senders else None
            if sender is None:
                raise InvalidValue(f"{at}[0]", "a message needs a sender, and the record lists none (ps)")
            messages.append(
                MatchMessage(
                    senders[sender - 1],
                    _whole(op, f"{at}[1]"),
                    _data(data, f"{at}[2]"),
                    bool(reliable),
                    _whole(received, f"{at}[4]"),
                )
            )
        return tuple(messages)

    def _capture_header(self, h: dict[str, Any]) -> None:
        """The init record's ``h``: module, node, source, capture version, snapshot interval, redactions."""
        module, node, source = h.get("mod"), h.get("node"), h.get("src")
        self.module = "" if not module else text(module, "h.mod")
        self.node = "" if not node else text(node, "h.node")
        if source is not None and source not in CAPTURE_SOURCES:
            raise InvalidValue("h.src", f"must be one of {', '.join(CAPTURE_SOURCES)}, got {show(source)}")
        self.source = source or "lua-capture"
        self.capture_version = _whole(h.get("v", 1), "h.v")
        self.snapshot_every = _whole(h.get("snap", 0), "h.snap", 0, INT64_MAX)
        mode = h.get("mode", "full")
        if mode not in ("full", "lean"):
            raise InvalidValue("h.mode", f'must be "full" or "lean", got {show(mode)}')
        self.mode = mode
        self.quiet = h.get("quiet") is True
        keys = _list(h.get("red"), "h.red")
        ops = _list(h.get("redop"), "h.redop")
        self.redactions = tuple(
            [f"key:{show(k) if not isinstance(k, str) else k}" for k in keys] + [f"op:{show(op)}" for op in ops]
        )

    def _outcome(self, o: dict[str, Any], where: str = "", **extra: Any) -> Outcome:
        broadcasts = []
        prefix = where
        for j, b in enumerate(_list(o.get("b"), prefix + "o.b")):
            where = f"{prefix}o.b[{j}]"
            op, data, targets, sender, reliable, deferred = _items(
                b, where, 6, "[op_code, data, targets, sender, reliable, deferred]"
            )
            resolved = self._targets(targets, f"{where}[2]")
            if resolved is False:
                continue
            sender_p = None
            if sender not in (None, False):
                ids = _items(sender, f"{where}[3]", 3, "[user_id, session_id, username]")
                user_id, session_id, username = (text(x, f"{where}[3][{i}]") for i, x in enumerate(ids))
                sender_p = Presence(user_id, session_id, username)
            broadcasts.append(
                Broadcast(
                    _whole(op, f"{where}[0]"),
                    _data(data, f"{where}[1]"),
                    resolved,
                    sender_p,
                    bool(reliable),
                    bool(deferred),
                )
            )
        kicks = tuple(_presence(p, f"{prefix}o.kk[{i}]") for i, p in enumerate(_list(o.get("kk"), prefix + "o.kk")))
        labels = tuple(text(x, f"{prefix}o.lu[{i}]") for i, x in enumerate(_list(o.get("lu"), prefix + "o.lu")))
        digest = snapshot = None
        if "ss" in o:
            try:
                snapshot = canonical_bytes(o["ss"])
                digest = state_digest(o["ss"])
            except StateError as exc:
                raise InvalidValue(prefix + "o.ss", str(exc)) from None
        return Outcome(
            broadcasts=tuple(broadcasts),
            kicks=kicks,
            label_updates=labels,
            digest=digest,
            snapshot=snapshot,
            stopped=bool(o.get("st")),
            **extra,
        )

    def _targets(self, targets: Any, field: str) -> tuple[Presence, ...] | Literal[False] | None:
        """Nakama's FilterPresenceIDs over the match's presence list: None for everyone, False for nobody."""
        if targets in (None, False):
            return None
        wanted = []
        for i, t in enumerate(_list(targets, field)):
            ids = _items(t, f"{field}[{i}]", 2, "[session_id, node, ...]")
            wanted.append((text(ids[0], f"{field}[{i}][0]"), text(ids[1], f"{field}[{i}][1]")))
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
        return tuple(members[w] for w in wanted)


def _nondeterministic(v: Any, where: str) -> tuple[Nondeterministic, ...]:
    """A record's ``nd``: [source, value] pairs, in the order the values were consumed."""
    return tuple(
        Nondeterministic(text(pair[0], f"{where}nd[{i}][0]"), value(pair[1], f"{where}nd[{i}][1]", from_json=True))
        for i, pair in enumerate(_pairs(v, where + "nd"))
    )


def _pairs(v: Any, field: str = "nd") -> list[list[Any]]:
    out = []
    for i, x in enumerate(_list(v, field)):
        items = _list(x, f"{field}[{i}]")
        if len(items) != 2:
            raise InvalidValue(f"{field}[{i}]", "a nondeterministic value is [source, value]")
        out.append(items)
    return out


def _var(v: Any, field: str) -> str:
    """A session var: Nakama's are strings; anything else is kept as its text."""
    return v if isinstance(v, str) else show(v, 200)


# -- writing ---------------------------------------------------------------------------------------------

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def recording_name(match: str, *, hashed: bool = False) -> str:
    """The file name of a match's recording. A match id made of ``A-Z a-z 0-9 . _ -`` (at most 100, not
    starting with ``.``, ``_`` or ``-``) is used as it is (``<uuid>.<node>.nkrec``); any other id, or any
    id when ``hashed``, becomes its safe characters (others replaced by ``_``, at most 60) then ``~`` and 10
    hex digits of its BLAKE2b hash: ``a/b`` -> ``a_b~<hash>.nkrec``. A plain name never holds ``~``, so
    it cannot meet an escaped one; two escaped names meet only if their ids' hashes do."""
    if not hashed and _PLAIN_NAME.fullmatch(match):
        return f"{match}.nkrec"
    digest = hashlib.blake2b(match.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    safe = _UNSAFE.sub("_", match)[:60].lstrip("._-") or "match"
    return f"{safe}~{digest}.nkrec"


def write_matches(
    matches: list[IngestedMatch], out_dir: str | os.PathLike[str], *, handler: str | None = None
) -> list[tuple[Path | str, IngestedMatch]]:
    """Write every match into ``out_dir`` (a folder, or a URL prefix: ``recorder.storage``), each under its own
    file name: never two matches to one file (names compared without case, as some file systems do), never
    over a recording of another match already there (its header says whose it is); such a match gets its
    hashed name instead."""
    taken: dict[str, str] = {}  # name, case-folded -> match id
    written = []
    for m in matches:
        mid = m.header.match_id
        name = recording_name(mid)
        if taken.get(name.casefold(), mid) != mid or _holds_other_match(_inside(out_dir, name), mid):
            name = recording_name(mid, hashed=True)
        if taken.get(name.casefold(), mid) != mid:  # a 40-bit hash collision: say so rather than overwrite
            raise LogError(
                _inside(out_dir, name), f"matches {taken[name.casefold()]!r} and {mid!r} map to one file name"
            )
        taken[name.casefold()] = mid
        written.append((write_match(m, out_dir, handler=handler, name=name), m))
    return written


def _inside(out_dir: str | os.PathLike[str], name: str) -> str:
    """``OUT/name`` for a folder or a URL prefix."""
    if local_path(out_dir) is not None:
        return str(Path(local_path(out_dir) or ".") / name)
    return str(out_dir).rstrip("/") + "/" + name


def _holds_other_match(path: str, match: str) -> bool:
    """True when ``path`` exists and is not a recording of ``match`` (so writing there would replace it)."""
    if kind_of(path) != "file":
        return False
    try:
        with open_recording(path) as rec:
            return rec.header.match_id != match
    except (RecordingError, OSError):
        return True


def write_match(
    match: IngestedMatch, out_dir: str | os.PathLike[str], *, handler: str | None = None, name: str | None = None
) -> Path | str:
    """Write one ingested match as ``OUT/<name>`` (default ``recording_name`` of its match id), whole or not
    at all (a ``Path``; for OUT at a URL the recording's URL); the header records the file name (tag ``file_name``) and ``handler`` relative to OUT (not for an
    OUT at a URL: a header names only a handler in the recording's folder tree on this machine)."""
    name = name or recording_name(match.header.match_id)
    local = local_path(out_dir)
    if local is not None:
        Path(local).mkdir(parents=True, exist_ok=True)
    path = _inside(out_dir, name)
    header = dataclasses.replace(match.header, tags={**match.header.tags, "file_name": name})
    if handler and local is not None:
        header = dataclasses.replace(header, handler=os.path.relpath(Path(handler).resolve(), Path(local).resolve()))
    with atomic_location(path) as tmp, RecordingWriter(tmp, header) as w:
        for e in match.events:
            w.append(e)
    return Path(path) if local is not None else path  # a path on this machine, else the URL
