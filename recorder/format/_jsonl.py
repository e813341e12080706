"""JSON Lines interchange: one JSON object per line, lossless in both directions, streamed.

The first line is the header (``kind: header``); every later line is one event whose ``kind`` is
``init``, ``join_attempt``, ``join``, ``leave``, ``loop``, ``signal``, ``terminate``, ``crash`` or
``wire``. Message data, broadcast data and snapshots are standard base64 strings (or null). Call lines
may carry an ``outcome`` object and a ``nondeterministic`` list. README.md ("JSON Lines interchange")
shows every shape.

Free-form values (params, metadata, tags, nondeterministic values, wire envelopes) are JSON where JSON
can say it exactly, and a one-key tagged object where it cannot:

    {"$bytes": "<base64>"}          bytes
    {"$float": "<16 hex digits>"}   a float by its IEEE-754 bits (NaN with payload, +-inf)
    {"$map": [[key, value], ...]}   a map with a key that is not a string, or whose only key starts
                                    with "$" (so it cannot be mistaken for a tag)
    {"$str": "<base64>"}            a string holding UTF-16 surrogates, as surrogate-passing UTF-8
    {"$ext": [code, "<base64>"]}    a msgpack extension value

Every one-key object whose key starts with ``$`` is a tag; an unknown tag is an error. A malformed line
raises ``InterchangeError`` naming the file, line number and field (``messages[2].sender.user_id``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgpack

from recorder.errors import InterchangeError, InvalidValue
from recorder.format import _validate as validate
from recorder.format._atomic import atomic_output
from recorder.format._model import (
    Broadcast,
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
    WireEvent,
)
from recorder.format._nkrec import RecordingWriter
from recorder.format._validate import MAX_DEPTH, boolean, each, int64, optional, parse_json, show, tick, uint64

__all__ = [
    "to_json_value",
    "from_json_value",
    "header_to_json",
    "event_to_json",
    "jsonl_lines",
    "write_jsonl",
    "read_jsonl",
    "import_jsonl",
    "INTEGRITY_TAG",
]

#: header tag naming the integrity state of the recording an interchange file was exported from, when it
#: was not complete (``nakama-replay export``); ``import_jsonl`` then writes no seal
INTEGRITY_TAG = "nkreplay.integrity"
_DOUBLE = struct.Struct(">d")
_Q = struct.Struct(">Q")


# -- free-form values ---------------------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def to_json_value(v: Any) -> Any:
    """A msgpack-ready value -> a JSON-ready value, tagging what JSON cannot say exactly."""
    t = type(v)
    if t is str:
        return v if v.isascii() or not _has_surrogates(v) else _str_tag(v)
    if t is int or t is bool or v is None:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$float": f"{_Q.unpack(_DOUBLE.pack(v))[0]:016x}"}
    if t is dict:
        if all(type(k) is str and (k.isascii() or not _has_surrogates(k)) for k in v) and not (
            len(v) == 1 and next(iter(v)).startswith("$")
        ):
            return {k: to_json_value(x) for k, x in v.items()}
        return {"$map": [[to_json_value(k), to_json_value(x)] for k, x in v.items()]}
    if t is list or t is tuple:
        return [to_json_value(x) for x in v]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": _b64(bytes(v))}
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return to_json_value(float(v))
    if isinstance(v, str):
        return str(v)
    if isinstance(v, msgpack.Timestamp):
        return {"$ext": [-1, _b64(v.to_bytes())]}
    if isinstance(v, msgpack.ExtType):
        return {"$ext": [v.code, _b64(v.data)]}
    raise TypeError(f"cannot represent {type(v).__name__} in a recording")


def from_json_value(j: Any, field: str = "value") -> Any:
    """Inverse of ``to_json_value``. Raises ``ValueError`` (``recorder.format._validate.InvalidValue``) naming the field
    on a malformed value."""
    return _value(j, field)


def _value(j: Any, field: str, depth: int = 0) -> Any:
    """A free-form value from its JSON form; ``depth`` counts the arrays and maps around it."""
    t = type(j)
    if t is str or t is bool or j is None:
        return j
    if t is int:
        if not validate.INT64_MIN <= j <= validate.UINT64_MAX:
            raise InvalidValue(field, f"an integer must fit in 64 bits (int64 or uint64), got {show(j)}")
        return j
    if t is float:
        if not math.isfinite(j):
            raise InvalidValue(field, 'number out of range; write non-finite floats as {"$float": "<16 hex digits>"}')
        return j
    if t is list:
        _within_depth(depth, field)
        return [_value(x, f"{field}[{i}]", depth + 1) for i, x in enumerate(j)]
    if t is dict:
        if len(j) == 1:
            k = next(iter(j))
            if k.startswith("$"):
                return _untag(k, j[k], field, depth)
        _within_depth(depth, field)
        return {k: _value(x, f"{field}.{k}", depth + 1) for k, x in j.items()}
    raise InvalidValue(field, f"unexpected JSON value {show(j)}")


_KEY_TYPES = (type(None), bool, int, float, str, bytes)


def _within_depth(depth: int, field: str) -> None:
    """An array or map at ``depth`` (0: the value itself) is allowed up to ``MAX_DEPTH`` levels (as
    ``recorder.format._validate.value`` counts them in a chunk)."""
    if depth >= MAX_DEPTH:
        raise InvalidValue(field, f"nested deeper than {MAX_DEPTH} levels of arrays and maps")


def _untag(tag: str, x: Any, field: str, depth: int = 0) -> Any:
    where = f"{field}.{tag}"
    if tag == "$bytes":
        return _b64decode(x, where)
    if tag == "$float":
        if type(x) is not str or len(x) != 16:
            raise InvalidValue(where, f"must be 16 hex digits (the float's IEEE-754 bits), got {x!r}")
        try:
            return _DOUBLE.unpack(bytes.fromhex(x))[0]
        except ValueError:
            raise InvalidValue(where, f"must be 16 hex digits (the float's IEEE-754 bits), got {x!r}") from None
    if tag == "$map":
        _within_depth(depth, field)
        if type(x) is not list:
            raise InvalidValue(where, "must be a list of [key, value] pairs")
        out: dict[Any, Any] = {}
        for i, pair in enumerate(x):
            if type(pair) is not list or len(pair) != 2:
                raise InvalidValue(f"{where}[{i}]", "must be a [key, value] pair")
            key = _value(pair[0], f"{where}[{i}][0]", depth + 1)
            if type(key) not in _KEY_TYPES:
                raise InvalidValue(f"{where}[{i}][0]", "a map key must be a scalar (null, bool, number, string, bytes)")
            if key in out:
                raise InvalidValue(f"{where}[{i}][0]", f"duplicate map key {key!r}")
            out[key] = _value(pair[1], f"{where}[{i}][1]", depth + 1)
        return out
    if tag == "$str":
        raw = _b64decode(x, where)
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise InvalidValue(where, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if tag == "$ext":
        if type(x) is not list or len(x) != 2 or type(x[0]) is not int or not -128 <= x[0] <= 127:
            raise InvalidValue(where, "must be [code (-128..127), base64 data]")
        return msgpack.ExtType(x[0], _b64decode(x[1], f"{where}[1]"))
    raise InvalidValue(
        where,
        "unknown tag (one-key objects whose key starts with '$' are tags: $bytes, $float, $map, $str, $ext; "
        'write a plain map with such a key as {"$map": [[key, value]]})',
    )


def _b64decode(x: Any, field: str) -> bytes:
    if type(x) is not str:
        raise InvalidValue(field, f"must be a base64 string, got {show(x)}")
    try:
        return base64.b64decode(x, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidValue(field, f"not standard base64 ({exc})") from None


# -- model -> JSON ------------------------------------------------------------------------------------


def _presence(p: Presence) -> dict[str, Any]:
    return {
        "user_id": p.user_id,
        "session_id": p.session_id,
        "username": p.username,
        "node": p.node,
        "reason": p.reason,
    }


def _data(b: bytes | None) -> str | None:
    return None if b is None else _b64(b)


def _outcome(o: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if o.accept is not None:
        out["accept"] = o.accept
    if o.reason is not None:
        out["reason"] = o.reason
    if o.tick_rate is not None:
        out["tick_rate"] = o.tick_rate
    if o.label is not None:
        out["label"] = o.label
    if o.broadcasts:
        out["broadcasts"] = [
            {
                "op_code": b.op_code,
                "data": _data(b.data),
                "targets": None if b.targets is None else [_presence(p) for p in b.targets],
                "sender": None if b.sender is None else _presence(b.sender),
                "reliable": b.reliable,
                "deferred": b.deferred,
            }
            for b in o.broadcasts
        ]
    if o.kicks:
        out["kicks"] = [_presence(p) for p in o.kicks]
    if o.label_updates:
        out["label_updates"] = list(o.label_updates)
    if o.reply is not None:
        out["reply"] = o.reply
    if o.digest is not None:
        out["digest"] = o.digest
    if o.snapshot is not None:
        out["snapshot"] = _b64(o.snapshot)
    if o.stopped:
        out["stopped"] = True
    return out


def _call_tail(out: dict[str, Any], e: Any) -> dict[str, Any]:
    if e.outcome is not None:
        out["outcome"] = _outcome(e.outcome)
    if e.nondeterministic:
        out["nondeterministic"] = [{"source": n.source, "value": to_json_value(n.value)} for n in e.nondeterministic]
    return out


def header_to_json(h: Header) -> dict[str, Any]:
    """The header line. Every header field is written, so an export keeps all of them."""
    return {
        "kind": "header",
        "match_id": h.match_id,
        "module": h.module,
        "tick_rate": h.tick_rate,
        "label": h.label,
        "params": to_json_value(h.params),
        "node": h.node,
        "handler": h.handler,
        "client_versions": to_json_value(h.client_versions),
        "started_ms": h.started_ms,
        "source": h.source,
        "tags": to_json_value(h.tags),
        "recording_kind": h.recording_kind,
        "log_match_id": h.log_match_id,
        "redactions": list(h.redactions),
        "format_version": h.format_version,
    }


def event_to_json(e: Event) -> dict[str, Any]:
    """One event line as a JSON-ready dict."""
    t = type(e)
    if t is LoopCall:
        msgs = [
            {
                "sender": _presence(m.sender),
                "op_code": m.op_code,
                "data": None if m.data is None else _b64(m.data),
                "reliable": m.reliable,
                "receive_time_ms": m.receive_time_ms,
            }
            for m in e.messages
        ]
        return _call_tail({"kind": "loop", "tick": e.tick, "messages": msgs}, e)
    if t is JoinCall or t is LeaveCall:
        return _call_tail({"kind": e.kind, "tick": e.tick, "presences": [_presence(p) for p in e.presences]}, e)
    if t is JoinAttemptCall:
        out = {"kind": "join_attempt", "tick": e.tick, "presence": _presence(e.presence)}
        out["metadata"] = to_json_value(e.metadata)
        if e.vars:
            out["vars"] = to_json_value(e.vars)
        return _call_tail(out, e)
    if t is InitCall:
        return _call_tail({"kind": "init", "tick": e.tick, "params": to_json_value(e.params)}, e)
    if t is SignalCall:
        return _call_tail({"kind": "signal", "tick": e.tick, "data": e.data}, e)
    if t is TerminateCall:
        return _call_tail({"kind": "terminate", "tick": e.tick, "grace_seconds": e.grace_seconds}, e)
    if t is CrashMarker:
        out = {"kind": "crash", "callback": e.callback, "tick": e.tick, "error": e.error}
        if e.traceback:
            out["traceback"] = e.traceback
        if e.error_type:
            out["error_type"] = e.error_type
        return out
    if t is WireEvent:
        out = {"kind": "wire", "socket": e.socket, "direction": e.direction, "t": to_json_value(e.t), "event": e.event}
        if e.envelope is not None:
            out["envelope"] = to_json_value(e.envelope)
        for name in ("raw", "close_code", "close_reason"):
            v = getattr(e, name)
            if v is not None:
                out[name] = v
        return out
    raise TypeError(f"not a recordable event: {e!r}")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# characters that some line splitters (Python's str.splitlines, JavaScript) take for line ends; JSON
# allows them raw inside strings, but escaped they keep one event on one line for every reader
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")


def _line(obj: dict[str, Any]) -> str:
    text = _ENCODER.encode(obj)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a string holds UTF-16 surrogates: JSON text cannot carry them exactly
            text = _ENCODER.encode(_wrap_surrogates(obj))
        text = _LINE_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text + "\n"


def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _str_tag(s: str) -> dict[str, str]:
    return {"$str": _b64(s.encode("utf-8", "surrogatepass"))}


def _wrap_surrogates(x: Any) -> Any:
    """Replace every string holding surrogates by ``{"$str": ...}`` (maps with such keys become ``$map``)."""
    if type(x) is str:
        return _str_tag(x) if _has_surrogates(x) else x
    if type(x) is list:
        return [_wrap_surrogates(v) for v in x]
    if type(x) is dict:
        if any(_has_surrogates(k) for k in x):
            return {"$map": [[_wrap_surrogates(k), _wrap_surrogates(v)] for k, v in x.items()]}
        return {k: _wrap_surrogates(v) for k, v in x.items()}
    return x


def jsonl_lines(header: Header, events: Iterable[Event]) -> Iterator[str]:
    """The interchange form, one line (ending in ``\\n``) at a time."""
    yield _line(header_to_json(header))
    for e in events:
        yield _line(event_to_json(e))


def write_jsonl(out: IO[bytes], header: Header, events: Iterable[Event]) -> int:
    """Stream a recording's interchange form to a binary file; returns the number of events written."""
    lines = 0
    write = out.write
    for line in jsonl_lines(header, events):
        write(line.encode("utf-8"))
        lines += 1
    return lines - 1  # the first line is the header


# -- JSON -> model ------------------------------------------------------------------------------------

_MISSING: Any = object()


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _get(d: dict[str, Any], key: str, prefix: str, check: Callable[[Any, str], Any], default: Any = _MISSING) -> Any:
    if key in d:
        return check(d[key], _join(prefix, key))
    if default is _MISSING:
        raise InvalidValue(_join(prefix, key), "missing")
    return default


def _only(d: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    if not d.keys() <= allowed:
        extra = sorted(set(d) - allowed)
        raise InvalidValue(_join(prefix, extra[0]), f"unknown field (known: {', '.join(sorted(allowed))})")


def _text(v: Any, field: str) -> str:
    if type(v) is str:
        return v
    if type(v) is dict and len(v) == 1 and "$str" in v:
        return _untag("$str", v["$str"], field)  # type: ignore[no-any-return]
    raise InvalidValue(field, f"must be a string, got {show(v)}")


def _bytes(v: Any, field: str) -> bytes:
    return _b64decode(v, field)


def _number(v: Any, field: str) -> float | int:
    x = _value(v, field)
    if type(x) not in (int, float):
        raise InvalidValue(field, f"must be a number, got {show(v)}")
    return x


def _map(v: Any, field: str) -> dict[Any, Any]:
    if type(v) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    x = _value(v, field)
    if type(x) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    return x


def _string_map(v: Any, field: str) -> dict[str, str]:
    """A map of strings to strings (session vars; user id -> client version)."""
    x = _map(v, field)
    for key, item in x.items():
        if type(key) is not str or type(item) is not str:
            raise InvalidValue(field, f"must map strings to strings, got {show(key)}: {show(item)}")
    return x


def _obj(v: Any, field: str, allowed: frozenset[str]) -> dict[str, Any]:
    if type(v) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    _only(v, allowed, field)
    return v


_PRESENCE_KEYS = frozenset({"user_id", "session_id", "username", "node", "reason"})


def _read_presence(v: Any, field: str) -> Presence:
    d = _obj(v, field, _PRESENCE_KEYS)
    return Presence(
        _get(d, "user_id", field, _text),
        _get(d, "session_id", field, _text),
        _get(d, "username", field, _text),
        _get(d, "node", field, _text, ""),
        _get(d, "reason", field, int64, 0),
    )


_read_presences = each(_read_presence)
_MESSAGE_KEYS = frozenset({"sender", "op_code", "data", "reliable", "receive_time_ms"})


def _read_message(v: Any, field: str) -> MatchMessage:
    d = _obj(v, field, _MESSAGE_KEYS)
    return MatchMessage(
        _get(d, "sender", field, _read_presence),
        _get(d, "op_code", field, int64),
        _get(d, "data", field, optional(_bytes), None),
        _get(d, "reliable", field, boolean, True),
        _get(d, "receive_time_ms", field, int64, 0),
    )


_BROADCAST_KEYS = frozenset({"op_code", "data", "targets", "sender", "reliable", "deferred"})


def _read_broadcast(v: Any, field: str) -> Broadcast:
    d = _obj(v, field, _BROADCAST_KEYS)
    targets = _get(d, "targets", field, optional(_read_presences), None)
    return Broadcast(
        _get(d, "op_code", field, int64),
        _get(d, "data", field, optional(_bytes), None),
        None if targets is None else tuple(targets),
        _get(d, "sender", field, optional(_read_presence), None),
        _get(d, "reliable", field, boolean, True),
        _get(d, "deferred", field, boolean, False),
    )


_OUTCOME_KEYS = frozenset(
    {
        "accept",
        "reason",
        "tick_rate",
        "label",
        "broadcasts",
        "kicks",
        "label_updates",
        "reply",
        "digest",
        "snapshot",
        "stopped",
    }
)


def _read_outcome(v: Any, field: str) -> Outcome:
    d = _obj(v, field, _OUTCOME_KEYS)
    return Outcome(
        accept=_get(d, "accept", field, optional(boolean), None),
        reason=_get(d, "reason", field, optional(_text), None),
        tick_rate=_get(d, "tick_rate", field, optional(int64), None),
        label=_get(d, "label", field, optional(_text), None),
        broadcasts=tuple(_get(d, "broadcasts", field, each(_read_broadcast), ())),
        kicks=tuple(_get(d, "kicks", field, _read_presences, ())),
        label_updates=tuple(_get(d, "label_updates", field, each(_text), ())),
        reply=_get(d, "reply", field, optional(_text), None),
        digest=_get(d, "digest", field, optional(uint64), None),
        snapshot=_get(d, "snapshot", field, optional(_bytes), None),
        stopped=_get(d, "stopped", field, boolean, False),
    )


_ND_KEYS = frozenset({"source", "value"})


def _read_nd(v: Any, field: str) -> Nondeterministic:
    d = _obj(v, field, _ND_KEYS)
    return Nondeterministic(_get(d, "source", field, _text), _get(d, "value", field, _value))


_read_nds = each(_read_nd)
_CALL_TAIL = frozenset({"kind", "tick", "outcome", "nondeterministic"})


def _tail(d: dict[str, Any]) -> tuple[Outcome | None, tuple[Nondeterministic, ...]]:
    return _get(d, "outcome", "", optional(_read_outcome), None), tuple(_get(d, "nondeterministic", "", _read_nds, ()))


def _read_init(d: dict[str, Any], header_params: Callable[[], dict[str, Any]]) -> InitCall:
    params = _get(d, "params", "", _map) if "params" in d else header_params()
    return InitCall(params, *_tail(d), _get(d, "tick", "", tick, 0))


def _read_join_attempt(d: dict[str, Any]) -> JoinAttemptCall:
    return JoinAttemptCall(
        _get(d, "tick", "", tick),
        _get(d, "presence", "", _read_presence),
        _get(d, "metadata", "", _map, {}),
        *_tail(d),
        _get(d, "vars", "", _string_map, {}),
    )


def _read_join(d: dict[str, Any]) -> JoinCall:
    return JoinCall(_get(d, "tick", "", tick), tuple(_get(d, "presences", "", _read_presences)), *_tail(d))


def _read_leave(d: dict[str, Any]) -> LeaveCall:
    return LeaveCall(_get(d, "tick", "", tick), tuple(_get(d, "presences", "", _read_presences)), *_tail(d))


def _read_loop(d: dict[str, Any]) -> LoopCall:
    msgs = d.get("messages", [])
    if type(msgs) is not list:
        raise InvalidValue("messages", f"must be a list, got {show(msgs)}")
    messages = tuple(_read_message(m, f"messages[{i}]") for i, m in enumerate(msgs))
    return LoopCall(_get(d, "tick", "", tick), messages, *_tail(d))


def _read_signal(d: dict[str, Any]) -> SignalCall:
    return SignalCall(_get(d, "tick", "", tick), _get(d, "data", "", _text), *_tail(d))


def _read_terminate(d: dict[str, Any]) -> TerminateCall:
    return TerminateCall(_get(d, "tick", "", tick), _get(d, "grace_seconds", "", int64), *_tail(d))


def _read_crash(d: dict[str, Any]) -> CrashMarker:
    return CrashMarker(
        _get(d, "callback", "", _text),
        _get(d, "tick", "", tick),
        _get(d, "error", "", _text),
        _get(d, "traceback", "", _text, ""),
        _get(d, "error_type", "", _text, ""),
    )


def _read_wire(d: dict[str, Any]) -> WireEvent:
    return WireEvent(
        _get(d, "socket", "", _text),
        _get(d, "direction", "", _text),
        _get(d, "t", "", _number),
        _get(d, "event", "", _text, "envelope"),
        _get(d, "envelope", "", optional(_map), None),
        _get(d, "raw", "", optional(_text), None),
        _get(d, "close_code", "", optional(int64), None),
        _get(d, "close_reason", "", optional(_text), None),
    )


_READERS: dict[str, tuple[Callable[..., Event], frozenset[str]]] = {
    "init": (_read_init, _CALL_TAIL | {"params"}),
    "join_attempt": (_read_join_attempt, _CALL_TAIL | {"presence", "metadata", "vars"}),
    "join": (_read_join, _CALL_TAIL | {"presences"}),
    "leave": (_read_leave, _CALL_TAIL | {"presences"}),
    "loop": (_read_loop, _CALL_TAIL | {"messages"}),
    "signal": (_read_signal, _CALL_TAIL | {"data"}),
    "terminate": (_read_terminate, _CALL_TAIL | {"grace_seconds"}),
    "crash": (_read_crash, frozenset({"kind", "callback", "tick", "error", "traceback", "error_type"})),
    "wire": (
        _read_wire,
        frozenset({"kind", "socket", "direction", "t", "event", "envelope", "raw", "close_code", "close_reason"}),
    ),
}

_HEADER_KEYS = frozenset(header_to_json(Header())) - {"kind"}


def _read_header(d: dict[str, Any]) -> Header:
    _only(d, _HEADER_KEYS | {"kind"}, "")
    versions = _get(d, "client_versions", "", _string_map, {})
    return Header(
        match_id=_get(d, "match_id", "", _text, ""),
        module=_get(d, "module", "", _text, ""),
        tick_rate=_get(d, "tick_rate", "", int64, 0),
        label=_get(d, "label", "", _text, ""),
        params=_get(d, "params", "", _map, {}),
        node=_get(d, "node", "", _text, ""),
        source=_get(d, "source", "", _text, "jsonl"),
        started_ms=_get(d, "started_ms", "", int64, 0),
        client_versions=versions,
        tags=_get(d, "tags", "", _map, {}),
        handler=_get(d, "handler", "", _text, ""),
        recording_kind=_get(d, "recording_kind", "", _text, "calls"),
        log_match_id=_get(d, "log_match_id", "", _text, ""),
        redactions=tuple(_get(d, "redactions", "", each(_text), ())),
        format_version=_get(d, "format_version", "", int64, Header().format_version),
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise InvalidValue(k, "appears twice in one object")
            seen.add(k)
    return d


def _reject_constant(name: str) -> Any:
    raise InvalidValue("", f'{name} is not JSON; write non-finite floats as {{"$float": "<16 hex digits>"}}')


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


class _Lines:
    """Numbered JSON objects from a stream of lines; blank lines are skipped."""

    def __init__(self, lines: Iterable[bytes | str], path: str) -> None:
        self.path = path
        self.lineno = 0
        self._it = iter(lines)

    def error(self, field: str, problem: str) -> InterchangeError:
        return InterchangeError(self.path, self.lineno, field, problem)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for raw in self._it:
            self.lineno += 1
            if isinstance(raw, bytes):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise self.error("", f"not UTF-8 (byte {exc.start} of the line)") from None
            else:
                text = raw
            if self.lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            if not text.strip():
                continue
            try:
                obj = parse_json(text, _DECODER)
            except InvalidValue as exc:
                raise self.error(exc.field, exc.problem) from None
            if type(obj) is not dict:
                raise self.error("", f"must be a JSON object, got {show(obj)}")
            yield obj


def read_jsonl(lines: Iterable[bytes | str], path: str = "<jsonl>") -> tuple[Header, Iterator[Event]]:
    """Parse the interchange form: the header at once, then events one line at a time.

    ``lines`` is any iterable of lines (a file opened in binary or text mode). Raises
    ``InterchangeError`` with the line number and field of the first malformed line.
    """
    src = _Lines(lines, str(path))
    objs = iter(src)
    first = next(objs, None)
    if first is None:
        raise InterchangeError(src.path, max(src.lineno, 1), "kind", "no header line: the file is empty")
    if first.get("kind") != "header":
        raise src.error("kind", f'the first line must be the header (kind "header"), got {show(first.get("kind"))}')
    try:
        header = _read_header(first)
    except InvalidValue as exc:
        raise src.error(exc.field, exc.problem) from None
    raw_params = first.get("params", {})

    def header_params() -> dict[str, Any]:  # a fresh copy for each init line that leaves params out
        return _map(raw_params, "params")

    def events() -> Iterator[Event]:
        for obj in objs:
            kind = obj.get("kind", _MISSING)
            entry = _READERS.get(kind) if type(kind) is str else None
            if entry is None:
                if kind is _MISSING:
                    raise src.error("kind", "missing")
                known = ", ".join(_READERS)
                extra = " (only the first line is a header)" if kind == "header" else f" (known: {known})"
                raise src.error("kind", f"unknown kind {show(kind)}{extra}")
            read, allowed = entry
            try:
                _only(obj, allowed, "")
                yield read(obj, header_params) if kind == "init" else read(obj)
            except InvalidValue as exc:
                raise src.error(exc.field, exc.problem) from None

    return header, events()


def import_jsonl(
    source: str | os.PathLike[str] | IO[bytes],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    **writer_kw: Any,
) -> int:
    """Convert an interchange file (a path, or a binary stream named ``name``) into ``out`` (.nkrec).

    Streams line by line into ``OUT.incomplete.tmp`` (``recorder.format._atomic``), renamed to ``out`` only when
    the whole input was read: on an error nothing is left behind, and what a killed import leaves is
    removed by the next import to ``out``. The recording is sealed, unless the header's ``INTEGRITY_TAG``
    says the file was exported from an incomplete recording. Returns the number of events written.
    """
    own = isinstance(source, (str, os.PathLike))
    label = str(source) if own else (name or getattr(source, "name", "<stream>"))
    with atomic_output(out) as tmp:
        stream: IO[bytes] = open(source, "rb") if own else source  # type: ignore[arg-type]
        try:
            header, events = read_jsonl(stream, label)
            exported_from = header.tags.get(INTEGRITY_TAG)
            with RecordingWriter(tmp, header, **writer_kw) as w:
                for e in events:
                    w.append(e)
                if isinstance(exported_from, str) and not exported_from.startswith("complete"):
                    w.abandon()  # exported from an incomplete recording: no seal, so it stays incomplete
                    warnings.warn(
                        f"{label}: exported from an incomplete recording ({exported_from}); {out} is written unsealed",
                        stacklevel=2,
                    )
        finally:
            if own:
                stream.close()
    return w.events_written
