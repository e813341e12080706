"""Crash reports: the one record every triage input becomes, and the client report schema.

A ``CrashReport`` is one occurrence of a crash on either side: a client that threw in a handler (from a
client report or a Sentry event) or a server runtime error (a match handler error, an RPC error, a crash
record of the Lua capture module, a recording's crash marker). Each carries its ``uid``, the key that makes
ingest idempotent: the same input read twice gives the same uid and is stored once.

Client report schema (``"schema": 1``; one JSON object per report, JSON Lines or a JSON array). Only
``timestamp`` and an error (``error_type`` or ``error_message``) are required; every other field may be
missing or ``null``. Unity, Godot and other clients mirror these names:

==========================  =========  ==========================================================================
field                       type       meaning
==========================  =========  ==========================================================================
``schema``                  int        1
``id``                      string     unique report id (a uuid the client makes); ingest keeps one per id
``side``                    string     ``"client"``
``timestamp``               str|int    when it crashed: ISO 8601 (``2025-11-24T16:00:06.120Z``) or epoch ms
``session_id``, ``user_id`` string     the Nakama session and user
``match_id``                string     the match, with or without its ``.node`` suffix
``tick``                    int        the match tick the client last saw, when its messages carry one
``presence_count``          int        presences in the match as the client saw them (itself included)
``op_code``                 int        op code of the last match data received
``op_code_size``            int        its data size in bytes
``rpc_id``                  string     the last RPC called
``rpc_error``               bool       it returned an error
``rpc_unexpected_shape``    bool       it returned, but not the shape the client expected
``socket_state``            string     ``connecting``, ``connected``, ``reconnecting`` or ``closed``
``session_valid``           bool       the session token had not expired
``ms_since_last_message``   int        ms since the socket last received anything
``reconnecting``            bool       a reconnect was in progress
``storage_collection``      string     the last storage read: collection
``storage_key``             string     ... key
``storage_ok``              bool       ... and whether it succeeded
``client_version``          string     the game's version (``1.4.0``)
``platform``                string     ``android``, ``ios``, ``webgl``, ``windows``, ``node``...
``handler``                 string     the client callback that threw (``onmatchdata``, ``ondisconnect``, ``rpc:ID``)
``error_type``              string     ``TypeError``, ``NullReferenceException``...
``error_message``           string     the error's message
``stack_trace``             string     the stack trace as the client's runtime prints it
``extra``                   object     anything else; kept, not interpreted
==========================  =========  ==========================================================================

Unknown fields and values of the wrong type are errors naming the field (a typo must not silently drop
data); a bad report is skipped and reported, the others are ingested.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from replay.errors import ReportError
from replay.runtime._signature import CrashSignature
from replay.triage._client_signature import client_signature

__all__ = [
    "CrashReport",
    "CLIENT_FIELDS",
    "SOCKET_STATES",
    "parse_client_report",
    "parse_timestamp",
    "match_key",
    "content_uid",
]

SCHEMA_VERSION = 1
SOCKET_STATES = ("connecting", "connected", "reconnecting", "closed")

#: field -> allowed JSON types (bool is not an int here)
CLIENT_FIELDS: dict[str, tuple[type, ...]] = {
    "schema": (int,),
    "id": (str,),
    "side": (str,),
    "timestamp": (str, int, float),
    "session_id": (str,),
    "user_id": (str,),
    "match_id": (str,),
    "tick": (int,),
    "presence_count": (int,),
    "op_code": (int,),
    "op_code_size": (int,),
    "rpc_id": (str,),
    "rpc_error": (bool,),
    "rpc_unexpected_shape": (bool,),
    "socket_state": (str,),
    "session_valid": (bool,),
    "ms_since_last_message": (int, float),
    "reconnecting": (bool,),
    "storage_collection": (str,),
    "storage_key": (str,),
    "storage_ok": (bool,),
    "client_version": (str,),
    "platform": (str,),
    "handler": (str,),
    "error_type": (str,),
    "error_message": (str,),
    "stack_trace": (str,),
    "extra": (dict,),
}
_INT64 = (-(2**63), 2**63 - 1)


def match_key(match_id: str | None) -> str | None:
    """The match id as logs print it (``mid``): without the ``.node`` suffix, lower case. Client ids
    (``uuid.node``), log ids (``uuid``) and recording headers compare equal through it."""
    if not match_id:
        return None
    return match_id.strip().split(".", 1)[0].lower() or None


def parse_timestamp(value: Any, field_name: str = "timestamp") -> int:
    """Milliseconds since the epoch from ISO 8601 text or a number (seconds when below 10^11, else ms)."""
    if isinstance(value, bool):
        raise ValueError(f"{field_name}: expected a time, got a boolean")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{field_name}: not a finite number")
        return int(value * 1000) if abs(value) < 1e11 else int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                return parse_timestamp(float(text), field_name)
            except ValueError:
                raise ValueError(f"{field_name}: {value!r} is not ISO 8601 or epoch time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    raise ValueError(f"{field_name}: expected a time, got {type(value).__name__}")


@functools.lru_cache(maxsize=4096)
def _short_hash(signature: CrashSignature) -> str:
    """A signature's short hash, computed once per distinct signature (ingest asks for it per report)."""
    return signature.short_hash


def content_uid(prefix: str, obj: Any) -> str:
    """A stable id for an input that carries none: BLAKE2b-128 of its canonical JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{prefix}:{hashlib.blake2b(text.encode('utf-8'), digest_size=16).hexdigest()}"


@dataclass(frozen=True, slots=True)
class CrashReport:
    """One crash occurrence, client or server side. ``kind`` says where it came from: ``client`` (a client
    report), ``sentry``, ``match_error`` (Nakama's "Stopping match after error" line, a capture record or a
    recording's crash marker), ``rpc_error`` (a runtime RPC error line)."""

    uid: str
    side: str
    kind: str
    ts_ms: int
    signature: CrashSignature
    error: str = ""
    stack: str = ""
    match_id: str | None = None
    tick: int | None = None
    session_id: str | None = None
    user_id: str | None = None
    presence_count: int | None = None
    op_code: int | None = None
    op_code_size: int | None = None
    rpc_id: str | None = None
    rpc_error: bool | None = None
    rpc_unexpected_shape: bool | None = None
    socket_state: str | None = None
    session_valid: bool | None = None
    ms_since_last_message: int | None = None
    reconnecting: bool | None = None
    storage_collection: str | None = None
    storage_key: str | None = None
    storage_ok: bool | None = None
    version: str | None = None
    platform: str | None = None
    source: str = ""
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: derived once (ingest reads them several times per report): ``match_key(match_id)``, the group id
    match_key: str | None = field(init=False, repr=False, compare=False, hash=False)
    group_id: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "match_key", match_key(self.match_id))
        object.__setattr__(self, "group_id", _short_hash(self.signature))

    def located(self, source: str, line: int) -> CrashReport:
        return replace(self, source=source, line=line)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uid": self.uid,
            "side": self.side,
            "kind": self.kind,
            "ts_ms": self.ts_ms,
            "group": self.group_id,
            "signature": self.signature.key,
        }
        for name in (
            "error",
            "match_id",
            "tick",
            "session_id",
            "user_id",
            "presence_count",
            "op_code",
            "op_code_size",
            "rpc_id",
            "rpc_error",
            "rpc_unexpected_shape",
            "socket_state",
            "session_valid",
            "ms_since_last_message",
            "reconnecting",
            "storage_collection",
            "storage_key",
            "storage_ok",
            "version",
            "platform",
            "source",
            "line",
        ):
            value = getattr(self, name)
            if value is not None and value != "":
                out[name] = value
        return out


def _check(obj: dict[str, Any], name: str, source: str, line: int) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    types = CLIENT_FIELDS[name]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        want = " or ".join(
            "boolean"
            if t is bool
            else "integer"
            if t is int
            else "number"
            if t is float
            else "string"
            if t is str
            else "object"
            for t in types
        )
        raise ReportError(f"expected {want}, got {json.dumps(value)[:40]}", path=source, line=line, field=name)
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise ReportError("out of the 64-bit integer range", path=source, line=line, field=name)
    if name in ("tick", "presence_count", "op_code_size", "ms_since_last_message") and value < 0:
        raise ReportError("must be >= 0", path=source, line=line, field=name)
    return value


def parse_client_report(obj: Any, source: str = "", line: int = 0) -> CrashReport:
    """A ``CrashReport`` from one client report object; ``ReportError`` naming the field when it does not
    fit the schema (see the module docstring)."""
    if not isinstance(obj, dict):
        raise ReportError(f"a client report is a JSON object, got {type(obj).__name__}", path=source, line=line)
    unknown = sorted(set(obj) - set(CLIENT_FIELDS))
    if unknown:
        raise ReportError("unknown field (put extra data under 'extra')", path=source, line=line, field=unknown[0])
    values = {name: _check(obj, name, source, line) for name in CLIENT_FIELDS}
    if values["schema"] not in (None, SCHEMA_VERSION):
        raise ReportError(
            f"schema {values['schema']} is not supported (this version reads {SCHEMA_VERSION})",
            path=source,
            line=line,
            field="schema",
        )
    if values["side"] not in (None, "client"):
        raise ReportError("a client report has side 'client'", path=source, line=line, field="side")
    if values["socket_state"] is not None and values["socket_state"] not in SOCKET_STATES:
        raise ReportError(f"one of {', '.join(SOCKET_STATES)}", path=source, line=line, field="socket_state")
    if values["timestamp"] is None:
        raise ReportError("missing: when the client crashed", path=source, line=line, field="timestamp")
    try:
        ts_ms = parse_timestamp(values["timestamp"])
    except ValueError as exc:
        raise ReportError(str(exc).split(": ", 1)[-1], path=source, line=line, field="timestamp") from None
    if not values["error_type"] and not values["error_message"]:
        raise ReportError(
            "missing: a client report needs error_type or error_message", path=source, line=line, field="error_message"
        )
    signature = client_signature(
        values["handler"],
        values["error_type"],
        values["error_message"],
        values["stack_trace"],
        op_code=values["op_code"],
    )
    uid = f"client:{values['id']}" if values["id"] else content_uid("client", obj)
    error = values["error_message"] or ""
    if values["error_type"] and not error.startswith(values["error_type"]):
        error = f"{values['error_type']}: {error}" if error else values["error_type"]
    ms = values["ms_since_last_message"]
    return CrashReport(
        uid=uid,
        side="client",
        kind="client",
        ts_ms=ts_ms,
        signature=signature,
        error=error,
        stack=values["stack_trace"] or "",
        match_id=values["match_id"],
        tick=values["tick"],
        session_id=values["session_id"],
        user_id=values["user_id"],
        presence_count=values["presence_count"],
        op_code=values["op_code"],
        op_code_size=values["op_code_size"],
        rpc_id=values["rpc_id"],
        rpc_error=values["rpc_error"],
        rpc_unexpected_shape=values["rpc_unexpected_shape"],
        socket_state=values["socket_state"],
        session_valid=values["session_valid"],
        ms_since_last_message=None if ms is None else int(ms),
        reconnecting=values["reconnecting"],
        storage_collection=values["storage_collection"],
        storage_key=values["storage_key"],
        storage_ok=values["storage_ok"],
        version=values["client_version"],
        platform=values["platform"],
        source=source,
        line=line,
        extra=values["extra"] or {},
    )
