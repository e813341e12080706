"""What happened in a tick: every call with its inputs, outcome and nondeterministic values, JSON-ready.

Payloads (message data, broadcast data, bytes inside params or metadata) are ``{"b64": ..., "size": n}``
(cut at ``PAYLOAD_LIMIT`` bytes with ``"cut": true``); the renderers decode them: valid UTF-8 JSON
pretty-printed, other UTF-8 text as it is, anything else as hex (``payload_text``).

The timeline keeps the details of as many ticks as fit in its byte budget, chosen before any is built from
size estimates made while streaming: the crash tick and the ticks before it, the divergence, then ticks
with markers or presence changes, then the others by their distance to those.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from recorder.format._model import (
    Broadcast,
    CrashMarker,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
)
from replay.timeline._reading import open_for_reading

__all__ = [
    "PAYLOAD_LIMIT",
    "describe",
    "payload",
    "payload_text",
    "estimate",
    "choose_ticks",
    "read_details",
]

PAYLOAD_LIMIT = 64 * 1024  # bytes of one payload kept in a detail
_CALL_BYTES = 160  # estimated JSON bytes of a call without its payloads
_ITEM_BYTES = 130  # ... of a message or broadcast without its data (names and session ids included)


def payload(data: bytes | None) -> dict[str, Any] | None:
    """A payload as the details carry it."""
    if data is None:
        return None
    cut = data[:PAYLOAD_LIMIT]
    out: dict[str, Any] = {"b64": base64.b64encode(cut).decode("ascii"), "size": len(data)}
    if len(cut) < len(data):
        out["cut"] = True
    return out


def payload_text(p: dict[str, Any] | None, indent: int = 2) -> str:
    """A payload for people: JSON pretty-printed, UTF-8 text as is, else hex (the HTML page does the same)."""
    if p is None:
        return "nil"
    raw = base64.b64decode(p["b64"])
    note = f" ... ({p['size']} bytes, first {len(raw)} shown)" if p.get("cut") else ""
    if not raw:
        return '""'
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex " + binascii.hexlify(raw, " ").decode("ascii") + note
    try:
        return json.dumps(json.loads(text), indent=indent, ensure_ascii=False) + note
    except (ValueError, RecursionError):
        pass
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        return "hex " + binascii.hexlify(raw, " ").decode("ascii") + note
    return json.dumps(text, ensure_ascii=False) + note


def _value(v: Any) -> Any:
    """A free-form value (params, metadata, nondeterministic values) JSON-ready, bytes as payloads."""
    if isinstance(v, (bytes, bytearray)):
        return payload(bytes(v))
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return repr(v)
    return v


def _who(p: Presence | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"name": p.username or p.user_id, "user_id": p.user_id, "session_id": p.session_id, "reason": p.reason}


def _broadcast(b: Broadcast) -> dict[str, Any]:
    return {
        "op": b.op_code,
        "data": payload(b.data),
        "to": None if b.targets is None else [p.username or p.user_id for p in b.targets],
        "from": None if b.sender is None else (b.sender.username or b.sender.user_id),
        "reliable": b.reliable,
        "deferred": b.deferred,
    }


def _outcome(o: Outcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    out: dict[str, Any] = {}
    if o.accept is not None:
        out["accept"] = o.accept
        if o.reason:
            out["reason"] = o.reason
    if o.tick_rate is not None:
        out["tick_rate"] = o.tick_rate
    if o.label is not None:
        out["label"] = o.label
    if o.broadcasts:
        out["broadcasts"] = [_broadcast(b) for b in o.broadcasts]
    if o.kicks:
        out["kicks"] = [_who(p) for p in o.kicks]
    if o.label_updates:
        out["label_updates"] = list(o.label_updates)
    if o.reply is not None:
        out["reply"] = o.reply
    if o.digest is not None:
        out["digest"] = f"{o.digest:016x}"
    if o.snapshot is not None:
        out["snapshot_bytes"] = len(o.snapshot)
    if o.stopped:
        out["stopped"] = True
    return out


def describe(e: Any) -> dict[str, Any]:
    """One call (or the crash marker) as the details show it."""
    if isinstance(e, CrashMarker):
        return {
            "callback": "crash",
            "in": e.callback,
            "tick": e.tick,
            "error": e.error,
            "traceback": e.traceback,
            "error_type": getattr(e, "error_type", ""),
        }
    d: dict[str, Any] = {"callback": e.callback, "tick": e.tick}
    if isinstance(e, LoopCall):
        d["messages"] = [
            {
                "from": m.sender.username or m.sender.user_id,
                "session_id": m.sender.session_id,
                "op": m.op_code,
                "data": payload(m.data),
                "reliable": m.reliable,
            }
            for m in e.messages
        ]
    elif isinstance(e, JoinAttemptCall):
        d["presence"] = _who(e.presence)
        d["metadata"] = _value(e.metadata)
        if e.vars:
            d["vars"] = dict(e.vars)
    elif isinstance(e, (JoinCall, LeaveCall)):
        d["presences"] = [_who(p) for p in e.presences]
    elif isinstance(e, SignalCall):
        d["data"] = e.data
    elif isinstance(e, TerminateCall):
        d["grace_seconds"] = e.grace_seconds
    elif isinstance(e, InitCall):
        d["params"] = _value(e.params)
    o = _outcome(e.outcome)
    if o is not None:
        d["outcome"] = o
    if e.nondeterministic:
        d["nondeterministic"] = [{"source": n.source, "value": _value(n.value)} for n in e.nondeterministic]
    return d


def estimate(e: Any, message_bytes: int = 0, messages: int = 0) -> int:
    """Bytes a call's detail will take in the page (base64 payloads), from sizes known while streaming."""
    n = _CALL_BYTES + messages * _ITEM_BYTES + message_bytes * 4 // 3
    o = e.outcome
    if o is not None:
        for b in o.broadcasts:
            n += _ITEM_BYTES + len(b.data or b"") * 4 // 3 + (0 if b.targets is None else 40 * len(b.targets))
        n += 60 * (len(o.kicks) + len(o.label_updates))
    n += 50 * len(e.nondeterministic)
    return n


def choose_ticks(tl: Any, sizes: dict[int, int], budget: int) -> list[int]:
    """The ticks whose details fit in ``budget`` bytes, in tick order: the crash tick and the ticks
    before it, the divergence, ticks with markers or presence changes first, then the nearest others."""
    if not sizes or budget <= 0:
        return []
    ticks = np.fromiter(sizes.keys(), dtype=np.int64, count=len(sizes))
    cost = np.fromiter(sizes.values(), dtype=np.int64, count=len(sizes))
    order = np.argsort(ticks, kind="stable")
    ticks, cost = ticks[order], cost[order]
    anchors = {m.tick for m in tl.markers}
    for lane in tl.lanes:
        for s in lane.sessions:
            anchors.update(t for t in (s.join_tick, s.leave_tick) if t is not None)
    anchors.add(int(ticks[0]))
    urgent = set()
    if tl.crash is not None:
        urgent.add(tl.crash["tick"])
    if tl.divergence is not None and tl.divergence.get("tick") is not None:
        urgent.add(tl.divergence["tick"])
    # distance of each tick to its nearest anchor; ticks just before an urgent one rank first
    a = np.array(sorted(anchors), dtype=np.int64)
    pos = np.searchsorted(a, ticks)
    left = np.abs(ticks - a[np.clip(pos - 1, 0, len(a) - 1)])
    right = np.abs(a[np.clip(pos, 0, len(a) - 1)] - ticks)
    rank = np.minimum(left, right).astype(np.float64)
    for u in urgent:  # the minute before the crash (or divergence) beats everything else
        before = (ticks <= u) & (ticks > u - 600)
        rank[before] = -1e9 + (u - ticks[before])
    chosen = np.argsort(rank, kind="stable")
    take = np.cumsum(cost[chosen]) <= budget
    return sorted(int(t) for t in ticks[chosen[take]])


def _runs(ticks: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for t in ticks:
        if out and t - out[-1][1] <= 32:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def read_details(
    path: str | os.PathLike[str], wanted: Iterable[int], tick_chunks: dict[int, tuple[int, int]]
) -> dict[int, list[dict[str, Any]]]:
    """The details of the ``wanted`` ticks, reading only the chunks that hold them."""
    want = sorted(set(wanted))
    if not want:
        return {}
    keep = set(want)
    out: dict[int, list[dict[str, Any]]] = {}
    with open_for_reading(path) as rec:
        for lo, hi in _runs(want):
            offset, index = tick_chunks.get(lo, (None, 1))
            for _, events in rec.chunks(offset, index):
                done = False
                for e in events:
                    if isinstance(e, WireEvent):  # a wire recording has no timeline (build_timeline refuses it)
                        continue
                    t = e.tick
                    if t > hi and not isinstance(e, CrashMarker):
                        done = True
                        break
                    if t in keep and not isinstance(e, CrashMarker):
                        out.setdefault(t, []).append(describe(e))
                if done:
                    break
    return out
