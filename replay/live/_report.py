"""What a live replay showed: how the match ended, tick alignment, and the broadcasts compared.

``analyse(script, run, server_log=...)`` is pure (it reads the server log file, nothing else):

- **End**: ``crashed`` when every socket in the match was closed with 1000 "server-side session disconnect"
  (Nakama's answer to a handler error) or the server log has the match's "Stopping match after error from
  <callback> execution" line; ``stopped`` when the match is gone without that; ``completed`` when it still
  runs after the last action. The crash tick comes from the log line (exact) or from the time the sockets
  closed (estimated with the tick clock). ``unresponsive`` (no log line) when the match went silent: nothing
  from it (broadcast, presence event, join or signal reply) for a while although the recording has loop
  broadcasts for the replayed sessions in that time, or a request to it got no answer; it is reported from
  the last tick it was seen alive, whatever closed the sockets afterwards (a hang guard's crash, say).
- **Tick alignment**: live ticks are converted to the recording's numbering (the schedule's start maps the
  recording's first tick to a live tick). Per message: the tick it was meant for, the tick its send time
  aims at, and the tick it landed in where an echo reveals it (a broadcast with the message's sender, op
  code and data). Broadcasts that match recorded ones reveal the live tick of the recorded loop. The drift
  is the largest revealed difference (or, when nothing is revealed, the largest estimated one).
- **Compare**: per replayed session, the ``match_data`` it received against the recording's (op code, data
  and sender; targets show up as who receives what), one recorded tick at a time: within a tick the order
  may differ (messages from several sockets reach a server in an order no client controls), which is
  counted, not reported as a mismatch. Recorded user, session and match ids, node names (a JSON string
  equal to a recorded node, e.g. a presence table's ``"node"``) and usernames the server did not grant are
  mapped to the live ones first; data that is JSON on both sides compares as values, so the key order of a
  JSON object keyed by user ids does not matter. The first mismatch is reported the way ``diff`` reports a
  divergence: where, and both sides. Only what the recording holds is compared: a handler-call recording's
  deliveries come from recorded outcomes, so ticks from the first call recorded without an outcome on are
  not compared (and a recording without outcomes has nothing to compare, which the report says plainly).
- **Conclusion**: ``exit_code`` and ``conclusion`` (the last line) come from one place: 0 and "REPRODUCED"
  only when the end is as recorded and, with ``--compare``, nothing compared differs.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from replay.live._feed import LiveRun
from replay.live._script import Delivery, LiveScript, RecordedEnd
from replay.realtime._actions import Send
from replay.report._values import describe_data
from replay.runtime._result import Divergence
from replay.runtime._signature import LoggedCrash, parse_crash_log_line

__all__ = ["MessageTick", "Received", "LiveReport", "IdMap", "analyse", "find_crash_line"]


@dataclass(frozen=True, slots=True)
class MessageTick:
    """One replayed message: ``intended`` (recorded tick), ``aimed`` (the tick its send time falls before,
    estimated), ``landed`` (revealed by an echo; None when nothing reveals it)."""

    action: int
    actor: str
    op_code: int
    intended: int
    aimed: int | None
    landed: int | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """A live ``match_data``: arrival time, tick (recording numbering), op code, data, sender session."""

    t: float
    tick: int
    op_code: int
    data: bytes
    sender: str | None


class IdMap:
    """Recorded ids (and usernames, node names) -> live ones, for data and senders. Ids are replaced in the
    text wherever they occur (a uuid is unique); usernames and node names only as whole JSON strings."""

    def __init__(self, script: LiveScript, run: LiveRun) -> None:
        self.ids: dict[str, str] = {}
        self.names: dict[str, str] = {}
        for key, actor in script.actors.items():
            s = run.sockets.get(key)
            if s is None:
                continue
            if actor.user_id and s.user_id:
                self.ids[actor.user_id] = s.user_id
            if actor.session_id and s.session_id:
                self.ids[actor.session_id] = s.session_id
            if actor.username and s.username and actor.username != s.username:
                self.names[actor.username] = s.username
        rec_mid = script.header.match_id
        if rec_mid and run.match_id:
            self.ids[rec_mid] = run.match_id
            self.ids.setdefault(rec_mid.split(".")[0], run.match_id.split(".")[0])
        live_node = run.match_id.partition(".")[2]
        if live_node:  # a node name appears in data as a whole string ("node": "nakama1")
            for node in script.nodes:
                if node != live_node:
                    self.names.setdefault(node, live_node)
        self.sessions = {k: run.sockets[k].session_id for k in script.actors if k in run.sockets}
        self.labels = {run.sockets[k].session_id: a.label for k, a in script.actors.items() if k in run.sockets}

    def data(self, data: bytes) -> bytes:
        if not self.ids and not self.names:
            return data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        for rec, live in self.ids.items():
            text = text.replace(rec, live)
        if self.names:
            try:
                text = json.dumps(_rename(json.loads(text), self.names), separators=(",", ":"), ensure_ascii=False)
            except ValueError:
                pass
        return text.encode("utf-8")

    def session(self, key: str | None) -> str | None:
        return None if key is None else self.sessions.get(key, key)


def _rename(v: Any, names: dict[str, str]) -> Any:
    if isinstance(v, str):
        return names.get(v, v)
    if isinstance(v, list):
        return [_rename(x, names) for x in v]
    if isinstance(v, dict):
        return {names.get(k, k): _rename(x, names) for k, x in v.items()}
    return v


def same_data(recorded: bytes, live: bytes) -> bool:
    if recorded == live:
        return True
    try:
        return bool(json.loads(recorded) == json.loads(live))
    except ValueError:
        return False


@dataclass
class LiveReport:
    recording: str
    kind: str
    approximate: bool
    nakama: str
    match_id: str
    created: bool
    tick_rate: int
    wire_paths: list[str]
    sockets: list[dict[str, Any]]
    actions: dict[str, dict[str, int]]  # kind -> status -> count
    late: int
    skipped: list[str]
    problems: list[str]  # actions that failed or were rejected differently from the recording
    outcome: str  # crashed, stopped, completed, unresponsive, unknown
    crash_tick: int | None  # recording numbering
    crash_live_tick: int | None
    crash_source: str
    log_crash: LoggedCrash | None
    log_line: str
    recorded_end: RecordedEnd
    reproduced: bool
    verdict: str
    drift: int
    drift_revealed: bool
    revealed: int  # observations that revealed a live tick
    offset: int  # live tick of the recording's first tick
    first_tick: int
    clock: dict[str, Any]
    messages: list[MessageTick]
    compared: bool
    deliveries: int  # recorded match_data deliveries
    received: int  # live match_data deliveries
    matched: int  # deliveries equal in op code, sender and data
    aligned: int  # deliveries equal in op code and sender (data aside)
    reordered: int  # recorded ticks whose deliveries arrived in another order
    mismatch: Divergence | None  # the first match_data delivery that differs (``field`` "match_data")
    mismatches: int  # sessions whose streams differ
    notes: list[str] = field(default_factory=list)
    compare_scope: str = "all"  # all: every recorded tick; until: up to compare_until; nothing: no outcomes
    compare_until: int = 0  # last recorded tick compared
    not_compared: int = 0  # live match_data in recorded ticks whose deliveries the recording does not hold
    payload_ids: dict[str, Any] | None = None  # what mapping recorded ids inside payloads did
    unresponsive: dict[str, Any] | None = None  # last_alive_tick, silent_seconds, expected_broadcasts, unanswered

    @property
    def diverged(self) -> bool:
        return self.mismatch is not None

    @property
    def compare_summary(self) -> str:
        """What ``--compare`` checked, in one phrase."""
        if self.compare_scope == "nothing":
            return (
                "broadcasts NOT compared: the recording holds no call outcomes, so nothing it says about "
                "broadcasts could be compared"
            )
        if self.mismatch is not None:
            return f"the broadcasts differ: {self.mismatch.describe()}"
        upto = (
            ""
            if self.compare_scope == "all"
            else (
                f" up to tick {self.compare_until} (the recording holds no outcomes after it: later ticks not compared)"
            )
        )
        return f"the broadcasts match ({self.matched} of {self.deliveries} deliveries){upto}"

    @property
    def exit_code(self) -> int:
        """0 when the end is as recorded and, with compare, nothing compared differs; else 1."""
        return 0 if self.reproduced and not (self.compared and self.diverged) else 1

    @property
    def conclusion(self) -> str:
        """The report's last line; it always agrees with ``exit_code``."""
        text = self.verdict
        if self.compared:
            text += ("; but " if self.reproduced and self.diverged else "; ") + self.compare_summary
        return ("REPRODUCED: " if self.exit_code == 0 else "DID NOT REPRODUCE: ") + text

    def to_json(self) -> dict[str, Any]:
        def delivery(d: Delivery | None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {"tick": d.tick, "op_code": d.op_code, "data": describe_data(d.data), "sender": d.sender}

        def received(r: Received | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {"tick": r.tick, "op_code": r.op_code, "data": describe_data(r.data), "sender": r.sender}

        m = self.mismatch
        lc = self.log_crash
        return {
            "recording": self.recording,
            "kind": self.kind,
            "approximate": self.approximate,
            "nakama": self.nakama,
            "match_id": self.match_id,
            "created": self.created,
            "tick_rate": self.tick_rate,
            "wire_recordings": self.wire_paths,
            "outcome": self.outcome,
            "crash_tick": self.crash_tick,
            "crash_live_tick": self.crash_live_tick,
            "crash_source": self.crash_source,
            "server_log": None
            if lc is None
            else {
                "mid": lc.mid,
                "tick": lc.tick,
                "callback": lc.callback,
                "error": lc.error,
                "line": self.log_line,
            },
            "recorded": {
                "outcome": self.recorded_end.outcome,
                "tick": self.recorded_end.tick,
                "callback": self.recorded_end.callback,
                "error": self.recorded_end.error,
            },
            "reproduced": self.reproduced,
            "verdict": self.verdict,
            "drift": self.drift,
            "drift_revealed": self.drift_revealed,
            "revealed_ticks": self.revealed,
            "schedule_offset": self.offset,
            "clock": self.clock,
            "sockets": self.sockets,
            "actions": self.actions,
            "late": self.late,
            "skipped": self.skipped,
            "problems": self.problems,
            "messages": [
                {
                    "action": x.action,
                    "actor": x.actor,
                    "op_code": x.op_code,
                    "intended": x.intended,
                    "aimed": x.aimed,
                    "landed": x.landed,
                    "late": x.late,
                }
                for x in self.messages
            ],
            "payload_ids": self.payload_ids,
            "exit_code": self.exit_code,
            "conclusion": self.conclusion,
            "compare": None
            if not self.compared
            else {
                "scope": self.compare_scope,
                "compared_until_tick": None if self.compare_scope == "nothing" else self.compare_until,
                "not_compared": self.not_compared,
                "recorded": self.deliveries,
                "live": self.received,
                "matched": self.matched,
                "aligned": self.aligned,
                "ticks_reordered": self.reordered,
                "sessions_differing": self.mismatches,
                "first_mismatch": None
                if m is None
                else {
                    "actor": m.actor,
                    "index": m.index,
                    "tick": m.tick,
                    "why": m.why,
                    "recorded": delivery(m.a),
                    "live": received(m.b),
                },
            },
            "notes": self.notes,
            "unresponsive": self.unresponsive,
        }


def find_crash_line(path: str | os.PathLike[str], match_id: str) -> tuple[LoggedCrash, str] | None:
    """The "Stopping match after error" line of ``match_id`` (with or without its node) in a Nakama log."""
    mid = match_id.split(".")[0]
    found = None
    from recorder.capture._nakama_log import open_log

    with open_log(str(path)) as raw:  # a path or URL, gzip-compressed or not
        for data in raw:
            line = data.decode("utf-8", errors="replace")
            if mid not in line or "Stopping match after error" not in line:
                continue
            logged = parse_crash_log_line(line)
            if logged is not None and logged.mid.split(".")[0] == mid:
                found = (logged, line.strip())
    return found


def _match_data(obj: dict[str, Any]) -> tuple[int, bytes, str | None] | None:
    md = obj.get("match_data")
    if not isinstance(md, dict):
        return None
    try:
        op = int(md.get("op_code", 0) or 0)
        raw = md.get("data") or ""
        data = base64.b64decode(raw + "=" * (-len(raw) % 4)) if raw else b""
    except (TypeError, ValueError):
        return None
    p = md.get("presence")
    return op, data, (p.get("session_id") or None) if isinstance(p, dict) else None


def analyse(script: LiveScript, run: LiveRun, *, server_log: str | None = None, compare: bool = True) -> LiveReport:
    clock = run.clock
    shift = script.first_tick - run.offset  # recording tick = live tick + shift

    def rec_tick(live_tick: int) -> int:
        return live_tick + shift

    ids = IdMap(script, run)
    labels = {k: a.label for k, a in script.actors.items()}

    # -- live match_data per session ------------------------------------------------------------------
    live: dict[str, list[Received]] = {}
    for key, s in run.sockets.items():
        out = []
        for t, obj in s.received:
            md = _match_data(obj)
            if md is not None:
                out.append(Received(t, rec_tick(clock.tick_of_arrival(t)), md[0], md[1], md[2]))
        live[key] = out

    # -- compare (and ticks revealed by broadcasts that line up with recorded ones) ---------------------
    drifts: list[int] = []
    matched = aligned = reordered = 0
    first: Divergence | None = None
    differing = 0
    signals_sent = any(r.action.kind == "signal" and r.status != "skipped" for r in run.actions)
    after_end = expected_total = received_total = 0
    # the recording holds deliveries up to `limit` (what calls without a recorded outcome sent is unknown)
    if script.compare_until is None:
        scope, limit = "all", script.last_tick
    elif script.compare_until < script.first_tick:
        scope, limit = "nothing", script.first_tick - 1
    else:
        scope, limit = "until", min(script.last_tick, script.compare_until)
    not_compared = 0
    for key, expected in script.deliveries.items():
        if not signals_sent:  # the signals were not replayed: nothing they broadcast can arrive
            expected = [d for d in expected if d.call != "signal"]
        mine = live.get(key, [])
        after_end += sum(1 for r in mine if r.tick > script.last_tick)
        if scope == "nothing":
            not_compared += sum(1 for r in mine if r.tick <= script.last_tick)
            continue
        expected = [d for d in expected if d.tick <= limit]
        got = [r for r in mine if r.tick <= limit]  # the live match goes on after the end
        not_compared += sum(1 for r in mine if limit < r.tick <= script.last_tick)
        expected_total += len(expected)
        received_total += len(got)
        # the last compared tick's trailing live deliveries may be the next (uncompared) tick's: a call between
        # two loops is numbered with the next loop, but its broadcasts arrive in the period of the one before
        st = _compare_stream(expected, got, ids, labels.get(key, key), tail_tick=limit if scope == "until" else None)
        not_compared += st.tail
        matched += st.matched
        aligned += st.aligned
        reordered += st.reordered
        drifts.extend(st.drifts)
        differs = st.mismatch
        if differs is not None:
            differing += 1
            if first is None or (differs.tick, differs.actor) < (first.tick, first.actor):
                first = differs
    revealed_broadcasts = len(drifts)

    # -- per message: intended, aimed, landed (echo) --------------------------------------------------
    echoes: dict[tuple[str, int, bytes], list[Received]] = defaultdict(list)
    seen: set[tuple[str, int, bytes, int]] = set()
    for got in live.values():
        for r in got:
            if r.sender is None or (r.sender, r.op_code, r.data, r.tick) in seen:
                continue
            seen.add((r.sender, r.op_code, r.data, r.tick))
            echoes[(r.sender, r.op_code, r.data)].append(r)
    for lst in echoes.values():
        lst.sort(key=lambda r: r.t)
    messages: list[MessageTick] = []
    landed_drifts: list[int] = []
    aimed_drifts: list[int] = []
    for rec in run.actions:
        a = rec.action
        send = a.action
        if not isinstance(send, Send) or rec.sent_at is None:
            continue
        aimed = rec_tick(clock.landing_of_send(rec.sent_at))
        aimed_drifts.append(aimed - a.tick)
        landed = None
        sock = run.sockets.get(a.actor)
        queue = echoes.get((sock.session_id if sock else "", send.op_code, send.data or b""))
        while queue:
            r = queue.pop(0)
            if r.t >= rec.sent_at:
                landed = r.tick
                landed_drifts.append(landed - a.tick)
                break
        messages.append(
            MessageTick(rec.index, labels.get(a.actor, a.actor), send.op_code, a.tick, aimed, landed, rec.late)
        )

    # -- how it ended ------------------------------------------------------------------------------------
    log_crash, log_line = None, ""
    if server_log:
        found = find_crash_line(server_log, run.match_id) if run.match_id else None
        if found is not None:
            log_crash, log_line = found
    crash_live_tick: int | None = None
    crash_source = ""
    if log_crash is not None and log_crash.tick >= 0:
        crash_live_tick, crash_source = log_crash.tick, "server log"
    elif run.crash_at is not None:
        crash_live_tick, crash_source = clock.tick_of_arrival(run.crash_at), "socket close time (estimated)"
    if crash_live_tick is not None or run.crash_at is not None or log_crash is not None:
        outcome = "crashed"
    elif run.probe == "gone":
        outcome = "stopped"
    elif run.probe == "running":
        outcome = "completed"
    else:
        outcome = "unknown"
    unresponsive = None if log_crash is not None else _unresponsive(script, run, rec_tick)
    if unresponsive is not None:
        outcome = "unresponsive"
    relative = not run.created
    crash_tick = None
    if crash_live_tick is not None and not (relative and crash_source == "server log"):
        crash_tick = rec_tick(crash_live_tick)

    revealed = landed_drifts + drifts
    if revealed:
        drift, drift_revealed = max(abs(d) for d in revealed), True
    else:
        drift, drift_revealed = max([abs(d) for d in aimed_drifts] + [0]), False

    reproduced, verdict = _verdict(script.end, outcome, crash_tick, drift, log_crash)
    if unresponsive is not None:
        said = {"crashed": f"crashed at tick {script.end.tick}", "stopped": "stopped"}.get(
            script.end.outcome, "ran to its end"
        )
        reproduced, verdict = (
            False,
            (f"the live match stopped answering after tick {unresponsive['last_alive_tick']}; the recording {said}"),
        )

    # -- actions ------------------------------------------------------------------------------------------
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    problems: list[str] = []
    for rec in run.actions:
        a = rec.action
        counts[a.kind][rec.status] += 1
        who = labels.get(a.actor, a.actor) or "server"
        if (
            a.kind == "join"
            and a.expect is not None
            and (rec.status == "ok") != bool(a.expect)
            and rec.status in ("ok", "rejected")
        ):
            problems.append(
                f"tick {a.tick}: {who}'s join was {'accepted' if rec.status == 'ok' else 'rejected'}"
                f" live, {'accepted' if a.expect else 'rejected'} in the recording {rec.detail}".rstrip()
            )
        elif (
            a.kind == "signal"
            and rec.status == "ok"
            and a.expect is not None
            and not same_data(ids.data(str(a.expect).encode()), rec.detail.encode())
        ):
            problems.append(f"tick {a.tick}: signal reply {rec.detail!r} live, {a.expect!r} in the recording")
        elif rec.status == "error" or (rec.status == "rejected" and a.expect is None):
            problems.append(f"tick {a.tick}: {a.kind} of {who}: {rec.status}: {rec.detail}")
        elif rec.status == "skipped" and a.kind != "signal":
            problems.append(f"tick {a.tick}: {a.kind} of {who} not sent: {rec.detail}")
    skipped = list(script.skipped)
    signals_skipped = counts["signal"]["skipped"] if "signal" in counts else 0
    if signals_skipped:
        skipped.append(
            f"{signals_skipped} signal{'s' if signals_skipped != 1 else ''} (give --signal-rpc NAME to send them)"
        )

    sockets = []
    for key, actor in script.actors.items():
        sock = run.sockets.get(key)
        sockets.append(
            {
                "label": actor.label,
                "recorded_user_id": actor.user_id,
                "recorded_session_id": actor.session_id,
                "live_user_id": sock.user_id if sock else None,
                "live_session_id": sock.session_id if sock else None,
                "live_username": sock.username if sock else None,
                "close": None
                if sock is None or sock.closed_at is None
                else {
                    "by": sock.closed_by,
                    "code": sock.close_code,
                    "reason": sock.close_reason,
                    # a server close follows the loop it comes from; a client close reaches the next loop
                    "tick": rec_tick(
                        clock.tick_of_arrival(sock.closed_at)
                        if sock.closed_by == "server"
                        else clock.landing_of_send(sock.closed_at)
                    ),
                },
            }
        )
    notes = list(script.notes) + list(run.notes)
    pids = run.payload_ids
    if pids is not None and not pids.enabled:
        notes.append("recorded ids inside payloads were sent as recorded (--no-map-payload-ids)")
    elif pids is not None and pids.payloads:
        notes.append(
            f"recorded ids inside {pids.payloads} payload{'s' if pids.payloads != 1 else ''} were mapped to"
            " the live ones (--no-map-payload-ids sends them as recorded)"
        )
    if pids is not None:
        notes.extend(pids.unmapped[:5])
        if len(pids.unmapped) > 5:
            notes.append(f"... {len(pids.unmapped) - 5} more payload ids sent as recorded (see --json)")
    if compare and scope != "all":
        notes.append(f"{script.uncompared}; {not_compared} live match_data of those ticks not compared")
    if after_end:
        notes.append(
            f"{after_end} match_data arrived after the recording's last tick ({script.last_tick}): not compared"
        )
    if script.approximate:
        notes.append("wire recording: recorded ticks are approximated from times and the tick rate")
    return LiveReport(
        recording=script.path,
        kind=script.kind,
        approximate=script.approximate,
        nakama=run.nakama,
        match_id=run.match_id,
        created=run.created,
        tick_rate=script.tick_rate,
        wire_paths=run.wire_paths,
        sockets=sockets,
        actions={k: dict(v) for k, v in counts.items()},
        late=sum(1 for r in run.actions if r.late),
        skipped=skipped,
        problems=problems,
        outcome=outcome,
        crash_tick=crash_tick,
        crash_live_tick=crash_live_tick,
        crash_source=crash_source,
        log_crash=log_crash,
        log_line=log_line,
        recorded_end=script.end,
        reproduced=reproduced,
        verdict=verdict,
        drift=drift,
        drift_revealed=drift_revealed,
        revealed=len(revealed),
        offset=run.offset,
        first_tick=script.first_tick,
        clock={
            "t0": round(clock.t0, 6),
            "initial_t0": round(clock.initial, 6),
            "period": clock.period,
            "observations": clock.observations,
            "broadcasts_matched_to_ticks": revealed_broadcasts,
            "echoes": len(landed_drifts),
        },
        payload_ids=None if pids is None else pids.to_json(),
        messages=messages,
        compared=compare,
        compare_scope=scope,
        compare_until=limit,
        not_compared=not_compared,
        deliveries=expected_total,
        received=received_total,
        matched=matched,
        aligned=aligned,
        reordered=reordered,
        mismatch=first,
        mismatches=differing,
        notes=notes,
        unresponsive=unresponsive,
    )


#: Envelopes that only a running match sends: its broadcasts, presence events, join replies.
_ALIVE = ("match_data", "match_presence_event", "match")


def _unresponsive(script: LiveScript, run: LiveRun, rec_tick: Any) -> dict[str, Any] | None:
    """Did the match stop answering? (See the module docstring.) None, or where and why we think so."""
    clock = run.clock
    end_at = run.crash_at if run.crash_at is not None else run.finished_at
    alive_at = run.create_reply_at if run.create_reply_at is not None else run.started_at
    for s in run.sockets.values():
        for t, obj in s.received:
            if alive_at < t <= end_at and any(k in obj for k in _ALIVE):
                alive_at = t
    for rec in run.actions:
        if rec.action.kind == "signal" and rec.status == "ok" and rec.done_at is not None and rec.done_at <= end_at:
            alive_at = max(alive_at, rec.done_at)
    if end_at - alive_at < max(0.5, 5 * clock.period):
        return None
    last_alive = max(script.first_tick, rec_tick(clock.tick_of_arrival(alive_at)))
    end_tick = rec_tick(clock.tick_of_arrival(end_at)) if run.crash_at is not None else script.last_tick
    expected = sum(
        1
        for key, ds in script.deliveries.items()
        if key in run.sockets and run.sockets[key].joined_ever
        for d in ds
        if d.call == "loop" and last_alive + 2 <= d.tick <= end_tick - 2
    )
    unanswered = [
        f"{r.action.kind} at tick {r.action.tick}: {r.detail}"
        for r in run.actions
        if r.status == "error"
        and r.sent_at is not None
        and r.sent_at >= alive_at
        and r.action.kind in ("join", "signal", "leave", "rpc")
    ]
    if not expected and not unanswered:
        return None
    return {
        "last_alive_tick": last_alive,
        "silent_seconds": round(end_at - alive_at, 3),
        "expected_broadcasts": expected,
        "unanswered": unanswered,
        "then_closed_at_tick": end_tick if run.crash_at is not None else None,
    }


@dataclass
class _Stream:
    matched: int = 0
    aligned: int = 0
    reordered: int = 0
    drifts: list[int] = field(default_factory=list)
    mismatch: Divergence | None = None
    tail: int = 0  # trailing live deliveries left uncompared (see tail_tick)


def _compare_stream(
    expected: list[Delivery], got: list[Received], ids: IdMap, label: str, tail_tick: int | None = None
) -> _Stream:
    """One session's recorded ``match_data`` against what it received, one recorded tick at a time.

    Within a tick the order may differ (messages from different sockets reach a server in an order no
    client controls): the tick's deliveries pair up by op code and sender (and data where it can).
    The first structural difference (op code, sender, missing, extra) ends the comparison; data
    differences are noted (the first one is the mismatch) and the walk goes on.
    """
    out = _Stream()
    i = j = 0
    while i < len(expected):
        k = i
        while k < len(expected) and expected[k].tick == expected[i].tick:
            k += 1
        run, live = expected[i:k], got[j : j + (k - i)]
        pairs = _pair(run, live, ids)
        if pairs is None:  # the first structural difference, in order
            for n, e in enumerate(run):
                g = live[n] if n < len(live) else None
                why = _structure(e, g, ids)
                if why is not None:
                    out.mismatch = out.mismatch or _mismatch(label, i + n, e.tick, e, g, why)
                    return out
        for n, (e, g) in enumerate(pairs or ()):
            out.aligned += 1
            if e.from_loop:
                out.drifts.append(g.tick - e.tick)
            want = ids.data(e.data)
            if same_data(want, g.data):
                out.matched += 1
            elif out.mismatch is None:
                why = f"data differs: recorded {describe_data(want)}, live {describe_data(g.data)}"
                out.mismatch = _mismatch(label, i + n, e.tick, e, g, why)
        if pairs is not None and [g for _, g in pairs] != live:
            out.reordered += 1
        i, j = k, j + (k - i)
    if tail_tick is not None and out.mismatch is None:  # live deliveries of the tick after the compared ones
        end = len(got)
        while end > j and got[end - 1].tick == tail_tick:
            end -= 1
        out.tail, got = len(got) - end, got[:end]
    if j < len(got) and out.mismatch is None:
        g = got[j]
        out.mismatch = _mismatch(label, j, g.tick, None, g, _structure(None, g, ids) or "")
    return out


def _mismatch(
    actor: str, index: int, tick: int, recorded: Delivery | None, live: Received | None, why: str
) -> Divergence:
    """The recorded delivery ``index`` of ``actor``'s stream against what arrived live (None: nothing did)."""
    return Divergence("match_data", recorded, live, tick, index=index, actor=actor, why=why)


def _pair(run: list[Delivery], live: list[Received], ids: IdMap) -> list[tuple[Delivery, Received]] | None:
    """Pair a tick's recorded deliveries with as many live ones by op code and sender (preferring equal
    data), or None when they do not have the same op codes and senders."""
    if len(live) != len(run):
        return None
    if Counter((e.op_code, ids.session(e.sender)) for e in run) != Counter((g.op_code, g.sender) for g in live):
        return None
    unused = list(live)
    pairs = []
    for e in run:
        same = [g for g in unused if g.op_code == e.op_code and g.sender == ids.session(e.sender)]
        g = next((g for g in same if same_data(ids.data(e.data), g.data)), same[0])
        unused.remove(g)
        pairs.append((e, g))
    return pairs


def _structure(e: Delivery | None, g: Received | None, ids: IdMap) -> str | None:
    """Why a recorded and a live ``match_data`` at the same place do not line up (data aside), or None."""
    if e is None:
        assert g is not None, "a pair has a recorded or a live side"
        return f"an extra match_data live (op {g.op_code}, data {describe_data(g.data)})"
    if g is None:
        return f"recorded match_data (op {e.op_code}, data {describe_data(e.data)}) never arrived"
    if e.op_code != g.op_code:
        return f"op code {e.op_code} recorded, {g.op_code} live"
    sender = ids.session(e.sender)
    if sender != g.sender:

        def who(session: str | None) -> str:
            return "the server" if not session else ids.labels.get(session, session)

        return f"sender differs: recorded {who(sender)}, live {who(g.sender)}"
    return None


def _verdict(
    end: RecordedEnd, outcome: str, crash_tick: int | None, drift: int, log_crash: LoggedCrash | None
) -> tuple[bool, str]:
    if end.outcome == "crashed":
        if outcome != "crashed":
            return False, f"the recording crashed at tick {end.tick}; the live match {_said(outcome)}"
        if log_crash is not None and end.callback and log_crash.callback != end.callback:
            return False, f"crashed in {log_crash.callback}, the recording in {end.callback}"
        if crash_tick is None or end.tick is None:
            return True, "crashed, as recorded (tick unknown)"
        if abs(crash_tick - end.tick) <= drift:
            exact = "at the recorded tick" if crash_tick == end.tick else f"within the drift of {drift} tick(s)"
            return True, f"crashed at tick {crash_tick}, {exact} ({end.tick})"
        return False, f"crashed at tick {crash_tick}, the recording at tick {end.tick} (drift {drift})"
    if end.outcome == "stopped":
        ok = outcome == "stopped"
        return ok, "stopped, as recorded" if ok else f"the recording stopped; the live match {_said(outcome)}"
    if outcome in ("completed", "unknown"):
        return True, "ran to the end, as recorded"
    return False, f"the recording runs to its end; the live match {_said(outcome)}"


def _said(outcome: str) -> str:
    return {
        "crashed": "crashed",
        "stopped": "stopped",
        "completed": "ran to the end",
        "unresponsive": "stopped answering",
        "unknown": "did not crash (no socket left in it to ask whether it still runs)",
    }[outcome]
