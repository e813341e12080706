"""The timeline for a terminal: ``format_timeline`` (``inspect --timeline``) and ``format_tick``
(``inspect --tick N``). Both return the text; the command prints it.

A timeline is a strip per user (one column per tick, or per group of ticks when the range is wider than
``width``) and per density series, then the events in order::

    ticks 0..58, 1 column = 1 tick
    alice   >=========================================================
    bob     >========================================================R
    cho     >======================x     R=============================
    op 1      :::::::::::::::::::::::::::::::::::::::::::::::::::::::::
    events  crash X at 58

Strip characters: ``>`` join, ``R`` a reconnect (a new session of the same user), ``=`` in the match,
``#`` two sessions of the user at once, ``x`` disconnect, ``|`` leave, ``K`` kick, ``?`` rejected join;
densities `` .:-=+*#%@`` from none to the range's maximum.
"""

from __future__ import annotations

from typing import Any

from replay.timeline._details import payload_text
from replay.timeline._model import REASONS, Timeline

__all__ = ["format_timeline", "format_tick", "comparison_text"]

_LEVELS = " .:-=+*#%@"


def _columns(first: int, last: int, width: int) -> tuple[int, int]:
    """(ticks per column, columns)."""
    ticks = last - first + 1
    per = max(1, -(-ticks // max(1, width)))
    return per, -(-ticks // per)


def format_timeline(tl: Timeline, width: int = 100) -> str:
    first, last = tl.first_tick, tl.last_tick
    per, cols = _columns(first, last, width)
    r = tl.recording
    out = [
        f"{r.get('file')}: match {r.get('match_id') or '-'}, module {r.get('module') or '-'}, {r.get('tick_rate')} Hz",
        f"ticks {first}..{last}, 1 column = {per} tick{'s' if per > 1 else ''}",
    ]
    names = [lane.username or lane.user_id[:12] for lane in tl.lanes]
    series = list(tl.densities)
    pad = max([len(n) for n in names] + [len(s) for s in series] + [6]) + 2

    def col(tick: int) -> int:
        return (tick - first) // per

    for name, lane in zip(names, tl.lanes):
        strip = [" "] * cols
        depth = [0] * cols
        for s in lane.sessions:
            a = first if s.join_tick is None else s.join_tick
            b = last if s.leave_tick is None else s.leave_tick
            for c in range(max(0, col(a)), min(cols - 1, col(b)) + 1):
                depth[c] += 1
        for c, d in enumerate(depth):
            strip[c] = "#" if d > 1 else "=" if d else " "
        for s in lane.sessions:
            if s.join_tick is not None and first <= s.join_tick <= last and not s.present_at_start:
                strip[col(s.join_tick)] = "R" if s.reconnect else ">"
            if s.leave_tick is not None and first <= s.leave_tick <= last:
                strip[col(s.leave_tick)] = "x" if s.leave_reason == 4 else "|"
            if s.kicked_tick is not None and first <= s.kicked_tick <= last:
                strip[col(s.kicked_tick)] = "K"
        for j in lane.rejected:
            if first <= j["tick"] <= last:
                strip[col(j["tick"])] = "?"
        out.append(f"{name:<{pad}}{''.join(strip)}")
    for name in series:
        values = tl.densities[name]
        grouped = [0] * cols
        for i, v in enumerate(values.tolist()):
            c = (i * tl.bucket) // per
            if c < cols and v > grouped[c]:
                grouped[c] = v
        peak = max(grouped) if grouped else 0
        bar = "".join(_LEVELS[0] if v == 0 else _LEVELS[max(1, round(v / peak * (len(_LEVELS) - 1)))] for v in grouped)
        out.append(f"{name:<{pad}}{bar}  max {peak}/{'tick' if per * tl.bucket == 1 else f'{per * tl.bucket} ticks'}")
    marks = [" "] * cols
    for m in tl.markers:
        if first <= m.tick <= last:
            c = col(m.tick)
            glyph = {"crash": "X", "divergence": "D"}.get(m.kind, "*")
            if marks[c] not in ("X", "D"):
                marks[c] = glyph
    out.append(f"{'events':<{pad}}{''.join(marks)}")
    out.append("")
    events = _events(tl)
    out.extend(events or ["no joins, leaves, signals, label updates or crash in this range"])
    if tl.integrity is not None and not tl.complete:
        out.append(f"INCOMPLETE recording, the timeline shows its intact part: {tl.integrity.get('summary')}")
    return "\n".join(out)


def _events(tl: Timeline) -> list[str]:
    rows: list[tuple[int, int, str]] = []
    for lane in tl.lanes:
        name = lane.username or lane.user_id
        for s in lane.sessions:
            sid = s.session_id[:8]
            if s.present_at_start:
                rows.append((tl.first_tick, 0, f"{name} in the match (session {sid})"))
            elif s.join_tick is not None:
                what = "reconnected" if s.reconnect else "joined"
                extra = "; the earlier session had not left (two sessions at once)" if s.overlaps else ""
                rows.append((s.join_tick, 0, f"{name} {what} (session {sid}){extra}"))
            if s.leave_tick is not None and s.leave_tick <= tl.last_tick:
                reason = REASONS.get(s.leave_reason or 0, str(s.leave_reason))
                rows.append((s.leave_tick, 1, f"{name} left (session {sid}, reason {s.leave_reason}: {reason})"))
    for m in tl.markers:
        if m.kind in ("crash", "divergence"):
            continue
        rows.append((m.tick, 2, m.text))
    if tl.divergence is not None and tl.divergence.get("tick") is not None:
        d = tl.divergence
        rows.append((d["tick"], 3, _divergence_text(d)))
    if tl.crash is not None:
        c = tl.crash
        first_line = c["error"].splitlines()[0] if c["error"] else "(no error text recorded)"
        rows.append((c["tick"], 4, f"CRASH in {c['callback']}: {first_line}"))
    rows.sort(key=lambda r: (r[0], r[1]))
    width = len(str(max((r[0] for r in rows), default=0)))
    return [f"tick {t:>{width}}  {text}" for t, _, text in rows]


def _divergence_text(d: dict[str, Any]) -> str:
    if d.get("ended_early"):
        return f"NOT COMPARED PAST {d.get('callback')}: {d.get('note')}"
    parts = [o["field"] for o in d.get("outcomes", [])]
    parts += [f"{p['path']}: {_short(p.get('a'))} vs {_short(p.get('b'))}" for p in d.get("paths", [])[:3]]
    more = d.get("path_count", 0) - min(3, len(d.get("paths", [])))
    return f"FIRST DIVERGENCE in {d.get('callback')}: " + "; ".join(parts) + (f" (+{more} paths)" if more > 0 else "")


def _short(v: Any, limit: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _who(p: dict[str, Any]) -> str:
    return f"{p['name']} (session {p['session_id'][:8]})"


def _indent(text: str, by: str = "      ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def format_tick(
    tick: int, calls: list[dict[str, Any]], present: list[str], crash: dict[str, Any] | None, rate: int = 0
) -> str:
    """Everything recorded at ``tick``: calls in order with inputs, payloads decoded, outcomes and the
    nondeterministic values they consumed; the crash of that tick."""
    head = f"tick {tick}" + (f" ({tick / rate:.2f} s)" if rate else "")
    out = [head, f"in the match: {', '.join(present) if present else 'nobody'}"]
    if not calls and crash is None:
        out.append("no calls were recorded at this tick")
    for c in calls:
        cb = c["callback"]
        if cb == "crash":
            continue
        out.append(f"\n{cb}")
        if "messages" in c:
            if not c["messages"]:
                out.append("  messages: none")
            for i, m in enumerate(c["messages"]):
                rel = "" if m["reliable"] else " (unreliable)"
                out.append(f"  #{i} op {m['op']} from {m['from']} (session {m['session_id'][:8]}){rel}:")
                out.append(_indent(payload_text(m["data"])))
        if "presence" in c:
            out.append(f"  presence {_who(c['presence'])}")
        if c.get("metadata"):
            out.append("  metadata " + _value_text(c["metadata"]))
        if c.get("vars"):
            out.append("  vars " + _value_text(c["vars"]))
        for p in c.get("presences", []):
            if cb == "match_leave":
                out.append(f"  leaves {_who(p)}, reason {p['reason']} ({REASONS.get(p['reason'], '?')})")
            else:
                out.append(f"  joins {_who(p)}")
        if "data" in c:
            out.append(f"  data {c['data']!r}")
        if "grace_seconds" in c:
            out.append(f"  grace {c['grace_seconds']} s")
        if "params" in c:
            out.append("  params " + _value_text(c["params"]))
        for n in c.get("nondeterministic", []):
            out.append(f"  consumed {n['source']}: {_value_text(n['value'])}")
        o = c.get("outcome")
        if o:
            if "accept" in o:
                out.append(
                    "  verdict "
                    + ("accepted" if o["accept"] else "rejected" + (f": {o['reason']}" if o.get("reason") else ""))
                )
            for i, b in enumerate(o.get("broadcasts", [])):
                to = "all" if b["to"] is None else ", ".join(b["to"]) or "nobody"
                out.append(f"  broadcast #{i} op {b['op']} to {to}{' (deferred)' if b['deferred'] else ''}:")
                out.append(_indent(payload_text(b["data"])))
            for p in o.get("kicks", []):
                out.append(f"  kicks {_who(p)}")
            for label in o.get("label_updates", []):
                out.append(f"  label update {label}")
            if "reply" in o:
                out.append(f"  reply {o['reply']!r}")
            if o.get("stopped"):
                out.append("  returned no state: the match stopped")
            if "digest" in o:
                snap = f" (snapshot {o['snapshot_bytes']} bytes)" if "snapshot_bytes" in o else ""
                out.append(f"  state digest {o['digest']}{snap}")
    if crash is not None:
        out.append(f"\nCRASH in {crash['callback']} at tick {crash['tick']}")
        out.append(_indent(crash["error"] or "(no error text recorded)", "  "))
        if crash.get("traceback") and crash["traceback"] != crash["error"]:
            out.append(_indent(crash["traceback"], "  "))
    return "\n".join(out)


def _value_text(v: Any) -> str:
    import json

    if isinstance(v, dict) and set(v) >= {"b64", "size"} and set(v) <= {"b64", "size", "cut"}:
        return payload_text(v)
    return json.dumps(v, ensure_ascii=False, default=str)


def comparison_text(found: dict[str, Any]) -> str:
    """A comparison's answer (``MatchDiff.to_json()``) in one line: where it first diverged, or that it did not,
    and never more than its inputs allow (no verdict over an incomplete recording)."""
    where = f"{found.get('callback')} at tick {found.get('tick')}"
    if found.get("diverged"):
        what = "diverged in the intact part" if found.get("status") == "incomplete" else "first divergence"
        return f"{what}: {where}"
    if found.get("ended_early"):
        return f"not compared to the end: {found.get('note')}"
    if found.get("status") == "incomplete":
        return str(found.get("integrity_note"))
    note = "; ".join(x for x in (found.get("note"), found.get("integrity_note")) if x)
    return "no divergence" + (f": {note}" if note else "")
