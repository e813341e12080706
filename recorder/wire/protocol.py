"""Nakama's JSON realtime protocol without I/O: text in, typed envelopes out, and back.

``parse(text)`` never raises: it returns an ``Envelope`` or a ``Violation`` (a typed error event that tells
the layer above what Nakama would do: reply with an ``error`` envelope and/or close the socket).
``build(envelope)`` returns the text Nakama would send. The rules are Nakama's (protojson with
``UseProtoNames``, ``EmitUnpopulated: false``, ``DiscardUnknown: false``; facts from heroiclabs/nakama
``main.go``, ``server/session_ws.go``, ``server/pipeline.go`` and nakama-common ``rtapi/realtime.proto``):

- ``op_code`` (int64) is a JSON string on output; input takes a string or a number holding an integer.
- ``data`` (bytes) is standard padded base64 on output; input also takes URL-safe and unpadded forms.
- fields holding their default value are omitted on output; ``null`` on input means the default.
- an unknown field, a wrong JSON type, a duplicate key or two message kinds in one envelope is malformed:
  Nakama closes the socket (1000, "received malformed payload") without a reply.
- an envelope with no message kind gets error 2 "Missing message." and the socket is closed.

Envelope kinds modelled here: ``match_create``, ``match_join``, ``match``, ``match_data_send``,
``match_data``, ``match_presence_event``, ``match_leave``, ``rpc``, ``error``, ``status_presence_event``,
``ping``, ``pong``. Every other kind Nakama's ``Envelope`` defines (chat, parties, matchmaker, ...) parses
into ``Unmodelled`` holding its JSON object, so a proxy forwards and records it untouched.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from recorder._b64 import b64
from recorder.errors import InvalidValue

__all__ = [
    "ErrorCode",
    "CLOSE_NORMAL",
    "CLOSE_MALFORMED",
    "CLOSE_PROCESSING",
    "CLOSE_SERVER_DISCONNECT",
    "UserPresence",
    "MatchCreate",
    "MatchJoin",
    "Match",
    "MatchDataSend",
    "MatchData",
    "MatchPresenceEvent",
    "MatchLeave",
    "Rpc",
    "Error",
    "StatusPresenceEvent",
    "Ping",
    "Pong",
    "Unmodelled",
    "Message",
    "Envelope",
    "Violation",
    "MESSAGE_TYPES",
    "NAKAMA_KINDS",
    "parse",
    "parse_object",
    "build",
    "to_object",
    "envelope_kind",
    "envelope_match_id",
]

#: WebSocket close code Nakama uses for every server-initiated close, and its reasons.
CLOSE_NORMAL = 1000
CLOSE_MALFORMED = "received malformed payload"
CLOSE_PROCESSING = "error processing message"
CLOSE_SERVER_DISCONNECT = "server-side session disconnect"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")


class ErrorCode:
    """``rtapi.Error.Code``."""

    RUNTIME_EXCEPTION = 0
    UNRECOGNIZED_PAYLOAD = 1
    MISSING_PAYLOAD = 2
    BAD_INPUT = 3
    MATCH_NOT_FOUND = 4
    MATCH_JOIN_REJECTED = 5
    RUNTIME_FUNCTION_NOT_FOUND = 6
    RUNTIME_FUNCTION_EXCEPTION = 7


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserPresence:
    """``rtapi.UserPresence``. ``status`` is a ``StringValue``: None when absent."""

    user_id: str = ""
    session_id: str = ""
    username: str = ""
    persistence: bool = False
    status: str | None = None


@dataclass(frozen=True, slots=True)
class MatchCreate:
    name: str = ""
    kind: ClassVar[str] = "match_create"


@dataclass(frozen=True, slots=True)
class MatchJoin:
    """``match_id`` and ``token`` are a oneof: at most one is set (None = unset)."""

    match_id: str | None = None
    token: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "match_join"


@dataclass(frozen=True, slots=True)
class Match:
    """``self_presence`` is the wire's ``self``; ``label`` is a ``StringValue`` (None when absent)."""

    match_id: str = ""
    authoritative: bool = False
    label: str | None = None
    size: int = 0
    presences: tuple[UserPresence, ...] = ()
    self_presence: UserPresence | None = None
    kind: ClassVar[str] = "match"


@dataclass(frozen=True, slots=True)
class MatchDataSend:
    match_id: str = ""
    op_code: int = 0
    data: bytes = b""
    presences: tuple[UserPresence, ...] = ()
    reliable: bool = False
    kind: ClassVar[str] = "match_data_send"


@dataclass(frozen=True, slots=True)
class MatchData:
    match_id: str = ""
    presence: UserPresence | None = None
    op_code: int = 0
    data: bytes = b""
    reliable: bool = False
    kind: ClassVar[str] = "match_data"


@dataclass(frozen=True, slots=True)
class MatchPresenceEvent:
    match_id: str = ""
    joins: tuple[UserPresence, ...] = ()
    leaves: tuple[UserPresence, ...] = ()
    kind: ClassVar[str] = "match_presence_event"


@dataclass(frozen=True, slots=True)
class MatchLeave:
    match_id: str = ""
    kind: ClassVar[str] = "match_leave"


@dataclass(frozen=True, slots=True)
class Rpc:
    """``api.Rpc``: ``payload`` is a string (JSON text by convention)."""

    id: str = ""
    payload: str = ""
    http_key: str = ""
    kind: ClassVar[str] = "rpc"


@dataclass(frozen=True, slots=True)
class Error:
    """``rtapi.Error``; ``code`` is one of ``ErrorCode``."""

    code: int = 0
    message: str = ""
    context: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "error"


@dataclass(frozen=True, slots=True)
class StatusPresenceEvent:
    joins: tuple[UserPresence, ...] = ()
    leaves: tuple[UserPresence, ...] = ()
    kind: ClassVar[str] = "status_presence_event"


@dataclass(frozen=True, slots=True)
class Ping:
    kind: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class Pong:
    kind: ClassVar[str] = "pong"


@dataclass(frozen=True, slots=True)
class Unmodelled:
    """A kind Nakama knows but this module does not model; ``body`` is its JSON object, untouched."""

    kind: str
    body: Mapping[str, Any] = field(default_factory=dict)


Message = (
    MatchCreate
    | MatchJoin
    | Match
    | MatchDataSend
    | MatchData
    | MatchPresenceEvent
    | MatchLeave
    | Rpc
    | Error
    | StatusPresenceEvent
    | Ping
    | Pong
    | Unmodelled
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One realtime message: ``cid`` pairs a request with its reply ("" when absent). ``message`` None
    only for an envelope that carried no kind (Nakama answers it with error 2)."""

    message: Message | None
    cid: str = ""

    @property
    def kind(self) -> str:
        return "" if self.message is None else self.message.kind


@dataclass(frozen=True, slots=True)
class Violation:
    """Input that breaks the wire rules, and what Nakama does about it.

    ``reply`` is the error envelope Nakama sends first (or None); the socket is then closed with
    ``CLOSE_NORMAL`` and ``close_reason``. ``field`` is a dotted path to the offending field ("" for the
    whole text).
    """

    problem: str
    field: str = ""
    text: str = ""
    reply: Envelope | None = None
    close_reason: str = CLOSE_MALFORMED

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem


MESSAGE_TYPES: dict[str, type] = {
    t.kind: t
    for t in (
        MatchCreate,
        MatchJoin,
        Match,
        MatchDataSend,
        MatchData,
        MatchPresenceEvent,
        MatchLeave,
        Rpc,
        Error,
        StatusPresenceEvent,
        Ping,
        Pong,
    )
}

#: Every message kind of nakama-common ``rtapi.Envelope`` (its oneof field names).
NAKAMA_KINDS = frozenset(
    [
        "channel",
        "channel_join",
        "channel_leave",
        "channel_message",
        "channel_message_ack",
        "channel_message_send",
        "channel_message_update",
        "channel_message_remove",
        "channel_presence_event",
        "error",
        "match",
        "match_create",
        "match_data",
        "match_data_send",
        "match_join",
        "match_leave",
        "match_presence_event",
        "matchmaker_add",
        "matchmaker_matched",
        "matchmaker_remove",
        "matchmaker_ticket",
        "notifications",
        "rpc",
        "status",
        "status_follow",
        "status_presence_event",
        "status_unfollow",
        "status_update",
        "stream_data",
        "stream_presence_event",
        "ping",
        "pong",
        "party",
        "party_create",
        "party_join",
        "party_leave",
        "party_promote",
        "party_leader",
        "party_accept",
        "party_remove",
        "party_close",
        "party_join_request_list",
        "party_join_request",
        "party_matchmaker_add",
        "party_matchmaker_remove",
        "party_matchmaker_ticket",
        "party_data",
        "party_data_send",
        "party_presence_event",
        "party_update",
    ]
)


# -- parsing --------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidValue(k, f"duplicate field {k!r}")
        out[k] = v
    return out


def _typename(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(v), "number")


def _str(v: Any, path: str) -> str:
    if v is None:
        return ""
    if type(v) is not str:
        raise InvalidValue(path, f"expected a string, got {_typename(v)}")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidValue(path, "string is not valid UTF-8 (lone surrogate escape)") from None
    return v


def _opt_str(v: Any, path: str) -> str | None:
    return None if v is None else _str(v, path)


def _bool(v: Any, path: str) -> bool:
    if v is None:
        return False
    if type(v) is not bool:
        raise InvalidValue(path, f"expected true or false, got {_typename(v)}")
    return v


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if v is None:
        return 0
    if type(v) is str:
        text = v
        if _INT_TEXT.fullmatch(text):
            n = int(text)
        else:
            try:
                f = float(text)
            except ValueError:
                raise InvalidValue(path, f"expected an integer, got string {v!r}") from None
            if not f.is_integer():
                raise InvalidValue(path, f"expected an integer, got string {v!r}")
            n = int(f)
    elif type(v) is int:
        n = v
    elif type(v) is float:
        if not v.is_integer():
            raise InvalidValue(path, f"expected an integer, got {v!r}")
        n = int(v)
    else:
        raise InvalidValue(path, f"expected an integer, got {_typename(v)}")
    if not lo <= n <= hi:
        raise InvalidValue(path, f"integer {n} out of range [{lo}, {hi}]")
    return n


def _bytes(v: Any, path: str) -> bytes:
    if v is None:
        return b""
    if type(v) is not str:
        raise InvalidValue(path, f"expected a base64 string, got {_typename(v)}")
    text = v.rstrip("=")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(path, "invalid base64") from None


def _str_map(v: Any, path: str) -> dict[str, str]:
    if v is None:
        return {}
    if type(v) is not dict:
        raise InvalidValue(path, f"expected an object, got {_typename(v)}")
    for k, item in v.items():
        _str(k, path)
        _str(item, f"{path}.{k}")
    return dict(v)


def _object(v: Any, path: str, allowed: frozenset[str]) -> dict[str, Any]:
    if type(v) is not dict:
        raise InvalidValue(path, f"expected an object, got {_typename(v)}")
    for k in v:
        if k not in allowed:
            raise InvalidValue(f"{path}.{k}" if path else k, "unknown field")
    return v


_PRESENCE_FIELDS = frozenset(("user_id", "session_id", "username", "persistence", "status"))


def _presence(v: Any, path: str) -> UserPresence:
    d = _object(v, path, _PRESENCE_FIELDS)
    return UserPresence(
        _str(d.get("user_id"), f"{path}.user_id"),
        _str(d.get("session_id"), f"{path}.session_id"),
        _str(d.get("username"), f"{path}.username"),
        _bool(d.get("persistence"), f"{path}.persistence"),
        _opt_str(d.get("status"), f"{path}.status"),
    )


def _opt_presence(v: Any, path: str) -> UserPresence | None:
    return None if v is None else _presence(v, path)


def _presences(v: Any, path: str) -> tuple[UserPresence, ...]:
    if v is None:
        return ()
    if type(v) is not list:
        raise InvalidValue(path, f"expected an array, got {_typename(v)}")
    return tuple(_presence(p, f"{path}[{i}]") for i, p in enumerate(v))


def _decode_message(kind: str, v: Any) -> Message:
    p = kind
    if kind == "match_data":
        d = _object(v, p, frozenset(("match_id", "presence", "op_code", "data", "reliable")))
        return MatchData(
            _str(d.get("match_id"), p + ".match_id"),
            _opt_presence(d.get("presence"), p + ".presence"),
            _int(d.get("op_code"), p + ".op_code", _INT64_MIN, _INT64_MAX),
            _bytes(d.get("data"), p + ".data"),
            _bool(d.get("reliable"), p + ".reliable"),
        )
    if kind == "match_data_send":
        d = _object(v, p, frozenset(("match_id", "op_code", "data", "presences", "reliable")))
        return MatchDataSend(
            _str(d.get("match_id"), p + ".match_id"),
            _int(d.get("op_code"), p + ".op_code", _INT64_MIN, _INT64_MAX),
            _bytes(d.get("data"), p + ".data"),
            _presences(d.get("presences"), p + ".presences"),
            _bool(d.get("reliable"), p + ".reliable"),
        )
    if kind == "match_join":
        d = _object(v, p, frozenset(("match_id", "token", "metadata")))
        match_id, token = _opt_str(d.get("match_id"), p + ".match_id"), _opt_str(d.get("token"), p + ".token")
        if match_id is not None and token is not None:
            raise InvalidValue(p, "match_id and token are a oneof: set only one")
        return MatchJoin(match_id, token, _str_map(d.get("metadata"), p + ".metadata"))
    if kind == "match":
        d = _object(v, p, frozenset(("match_id", "authoritative", "label", "size", "presences", "self")))
        return Match(
            _str(d.get("match_id"), p + ".match_id"),
            _bool(d.get("authoritative"), p + ".authoritative"),
            _opt_str(d.get("label"), p + ".label"),
            _int(d.get("size"), p + ".size", _INT32_MIN, _INT32_MAX),
            _presences(d.get("presences"), p + ".presences"),
            _opt_presence(d.get("self"), p + ".self"),
        )
    if kind == "match_presence_event":
        d = _object(v, p, frozenset(("match_id", "joins", "leaves")))
        return MatchPresenceEvent(
            _str(d.get("match_id"), p + ".match_id"),
            _presences(d.get("joins"), p + ".joins"),
            _presences(d.get("leaves"), p + ".leaves"),
        )
    if kind == "status_presence_event":
        d = _object(v, p, frozenset(("joins", "leaves")))
        return StatusPresenceEvent(_presences(d.get("joins"), p + ".joins"), _presences(d.get("leaves"), p + ".leaves"))
    if kind == "match_leave":
        d = _object(v, p, frozenset(("match_id",)))
        return MatchLeave(_str(d.get("match_id"), p + ".match_id"))
    if kind == "match_create":
        d = _object(v, p, frozenset(("name",)))
        return MatchCreate(_str(d.get("name"), p + ".name"))
    if kind == "rpc":
        d = _object(v, p, frozenset(("id", "payload", "http_key")))
        return Rpc(
            _str(d.get("id"), p + ".id"),
            _str(d.get("payload"), p + ".payload"),
            _str(d.get("http_key"), p + ".http_key"),
        )
    if kind == "error":
        d = _object(v, p, frozenset(("code", "message", "context")))
        return Error(
            _int(d.get("code"), p + ".code", _INT32_MIN, _INT32_MAX),
            _str(d.get("message"), p + ".message"),
            _str_map(d.get("context"), p + ".context"),
        )
    if kind == "ping":
        _object(v, p, frozenset())
        return Ping()
    if kind == "pong":
        _object(v, p, frozenset())
        return Pong()
    if type(v) is not dict:
        raise InvalidValue(p, f"expected an object, got {_typename(v)}")
    return Unmodelled(kind, v)


def _missing(cid: str, text: str) -> Violation:
    reply = Envelope(Error(ErrorCode.MISSING_PAYLOAD, "Missing message."), cid)
    return Violation("envelope holds no message", "", text, reply, CLOSE_PROCESSING)


def parse_object(obj: Any, text: str = "") -> Envelope | Violation:
    """Decode an already-parsed JSON value; never raises."""
    try:
        d = obj if type(obj) is dict else None
        if d is None:
            raise InvalidValue("", f"an envelope is a JSON object, got {_typename(obj)}")
        cid = _str(d.get("cid"), "cid")
        kinds = [k for k in d if k != "cid"]
        for k in kinds:
            if k not in NAKAMA_KINDS:
                raise InvalidValue(k, "unknown field")
        kinds = [k for k in kinds if d[k] is not None]  # protojson: null leaves a oneof member unset
        if not kinds:
            return _missing(cid, text)
        if len(kinds) > 1:
            raise InvalidValue(kinds[1], f"more than one message kind ({', '.join(kinds)}) in one envelope")
        return Envelope(_decode_message(kinds[0], d[kinds[0]]), cid)
    except InvalidValue as bad:
        return Violation(bad.problem, bad.field, text)
    except (RecursionError, MemoryError) as exc:
        return Violation(f"envelope too deep or too large ({type(exc).__name__})", "", text[:200])


def parse(text: str | bytes) -> Envelope | Violation:
    """Parse one text frame. Returns an ``Envelope`` or a ``Violation``; never raises."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Violation(f"invalid UTF-8 at byte {exc.start}", "", "")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except InvalidValue as bad:
        return Violation(bad.problem, bad.field, text)
    except (ValueError, RecursionError) as exc:
        return Violation(f"invalid JSON: {exc}", "", text)
    return parse_object(obj, text)


def _reject_constant(name: str) -> Any:
    raise InvalidValue("", f"{name} is not JSON")


# -- building -------------------------------------------------------------------------------------


def _presence_obj(p: UserPresence) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.user_id:
        out["user_id"] = p.user_id
    if p.session_id:
        out["session_id"] = p.session_id
    if p.username:
        out["username"] = p.username
    if p.persistence:
        out["persistence"] = True
    if p.status is not None:
        out["status"] = p.status
    return out


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value:
        out[key] = value


def _message_obj(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    match m:
        case MatchData():
            _put(out, "match_id", m.match_id)
            if m.presence is not None:
                out["presence"] = _presence_obj(m.presence)
            if m.op_code:
                out["op_code"] = str(m.op_code)
            _put(out, "data", b64(m.data) if m.data else "")
            _put(out, "reliable", m.reliable)
        case MatchDataSend():
            _put(out, "match_id", m.match_id)
            if m.op_code:
                out["op_code"] = str(m.op_code)
            _put(out, "data", b64(m.data) if m.data else "")
            _put(out, "presences", [_presence_obj(p) for p in m.presences])
            _put(out, "reliable", m.reliable)
        case MatchJoin():
            if m.match_id is not None:
                out["match_id"] = m.match_id
            if m.token is not None:
                out["token"] = m.token
            _put(out, "metadata", dict(m.metadata))
        case Match():
            _put(out, "match_id", m.match_id)
            _put(out, "authoritative", m.authoritative)
            if m.label is not None:
                out["label"] = m.label
            _put(out, "size", m.size)
            _put(out, "presences", [_presence_obj(p) for p in m.presences])
            if m.self_presence is not None:
                out["self"] = _presence_obj(m.self_presence)
        case MatchPresenceEvent():
            _put(out, "match_id", m.match_id)
            _put(out, "joins", [_presence_obj(p) for p in m.joins])
            _put(out, "leaves", [_presence_obj(p) for p in m.leaves])
        case StatusPresenceEvent():
            _put(out, "joins", [_presence_obj(p) for p in m.joins])
            _put(out, "leaves", [_presence_obj(p) for p in m.leaves])
        case MatchLeave():
            _put(out, "match_id", m.match_id)
        case MatchCreate():
            _put(out, "name", m.name)
        case Rpc():
            _put(out, "id", m.id)
            _put(out, "payload", m.payload)
            _put(out, "http_key", m.http_key)
        case Error():
            _put(out, "code", m.code)
            _put(out, "message", m.message)
            _put(out, "context", dict(m.context))
        case Ping() | Pong():
            pass
        case Unmodelled():
            return dict(m.body)
        case _:
            raise TypeError(f"not a realtime message: {m!r}")
    return out


def to_object(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the JSON object Nakama would send (defaults omitted)."""
    out: dict[str, Any] = {}
    if envelope.cid:
        out["cid"] = envelope.cid
    if envelope.message is not None:
        out[envelope.message.kind] = _message_obj(envelope.message)
    return out


def build(envelope: Envelope) -> str:
    """The envelope as compact JSON text, fields in ``realtime.proto`` order."""
    return json.dumps(to_object(envelope), separators=(",", ":"), ensure_ascii=False)


# -- helpers for layers that only look --------------------------------------------------------------


def envelope_kind(obj: Mapping[str, Any]) -> str:
    """The message kind of a JSON envelope object ("" if none), without validating it."""
    for k in obj:
        if k != "cid":
            return k
    return ""


def envelope_match_id(obj: Mapping[str, Any]) -> str:
    """The ``match_id`` a JSON envelope object names, or ""; never raises."""
    for k, v in obj.items():
        if k != "cid" and isinstance(v, dict):
            mid = v.get("match_id")
            return mid if isinstance(mid, str) else ""
    return ""
