"""The deterministic ``nk`` module a handler sees, and the logger.

Every nondeterministic value (``time``, ``random``, ``uuid``, ``storage_read``, ``http``, and ``os_time`` for
Lua) comes from the values the recording stored with the current call, in consumption order; when the
recording has none left, from a ``Sources`` object: ``DerivedSources`` (seeded, computed from the tick:
replays and scripted captures) or ``LiveSources`` (wall clock and OS randomness: the live server). Every
value handed out is kept in ``consumed`` so a capture can record it and a replay can compare.

Storage is in memory with Nakama's rules: an object's version is the MD5 hex of its JSON value; a write
with version ``""`` upserts, ``"*"`` only inserts, any other version must match (compare-and-set); a
rejected write raises ``StorageRejected`` with Nakama's message and changes nothing; reads omit missing
objects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random as _random
import time as _time
import uuid as _uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from recorder.format import Nondeterministic
from replay.errors import NotAvailableInReplay, StorageRejected
from replay.gocompat import _json as gojson

_T = TypeVar("_T")

__all__ = ["Sources", "DerivedSources", "LiveSources", "Logger", "Storage", "Nk"]

REJECTED_VERSION = "Storage write rejected - version check failed."
REJECTED_PERMISSION = "Storage write rejected - permission denied."


class Sources:
    """Where nondeterministic values come from when the recording has none for a call."""

    def time_ms(self, tick: int) -> int:
        raise NotImplementedError

    def random(self) -> float:
        raise NotImplementedError

    def uuid(self) -> str:
        raise NotImplementedError


class DerivedSources(Sources):
    """Deterministic values: the clock follows the tick, randomness is a private seeded generator."""

    def __init__(self, seed: int = 0, started_ms: int = 1_700_000_000_000, tick_rate: int = 10) -> None:
        self.started_ms = started_ms
        self.tick_rate = max(1, tick_rate)
        self._rng = _random.Random(seed)

    def time_ms(self, tick: int) -> int:
        return self.started_ms + tick * 1000 // self.tick_rate

    def random(self) -> float:
        return self._rng.random()

    def uuid(self) -> str:
        return str(_uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def getstate(self) -> Any:
        return self._rng.getstate()

    def setstate(self, state: Any) -> None:
        self._rng.setstate(state)


class LiveSources(Sources):
    """The real world, for the live server: wall clock and OS randomness (values are recorded)."""

    def time_ms(self, tick: int) -> int:
        return _time.time_ns() // 1_000_000

    def random(self) -> float:
        return int.from_bytes(os.urandom(7), "big") / float(1 << 56)

    def uuid(self) -> str:
        return str(_uuid.uuid4())


class Logger:
    """Nakama's runtime logger: ``debug/info/warn/error(format, *args)``; lines are kept in ``lines``."""

    def __init__(self, echo: Callable[[str, str], None] | None = None) -> None:
        self.lines: list[tuple[str, str]] = []
        self.echo = echo

    def _log(self, level: str, msg: Any, *args: Any) -> None:
        text = str(msg) % args if args else str(msg)
        self.lines.append((level, text))
        if self.echo is not None:
            self.echo(level, text)

    def debug(self, msg: Any, *args: Any) -> None:
        self._log("debug", msg, *args)

    def info(self, msg: Any, *args: Any) -> None:
        self._log("info", msg, *args)

    def warn(self, msg: Any, *args: Any) -> None:
        self._log("warn", msg, *args)

    warning = warn

    def error(self, msg: Any, *args: Any) -> None:
        self._log("error", msg, *args)


class Storage:
    """In-memory storage objects keyed by (collection, key, user_id)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def read(self, object_ids: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for oid in object_ids:
            obj = self.objects.get((oid["collection"], oid["key"], oid.get("user_id") or ""))
            if obj is not None:
                out.append(dict(obj))
        return out

    def write(self, writes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        staged = dict(self.objects)  # all-or-nothing, as one transaction
        acks = []
        for w in writes:
            collection, key = w.get("collection"), w.get("key")
            if not isinstance(collection, str) or not collection:
                raise StorageRejected("write error: expects collection to be a non-empty string")
            if not isinstance(key, str) or not key:
                raise StorageRejected("write error: expects key to be a non-empty string")
            value = w.get("value")
            if isinstance(value, str):
                value_json, value = value, json.loads(value)
            elif isinstance(value, dict):
                value_json = gojson.dumps(value)
            else:
                raise StorageRejected("write error: value must be a JSON-encoded object")
            user_id = w.get("user_id") or ""
            version = w.get("version") or ""
            ident = (collection, key, user_id)
            existing = staged.get(ident)
            if version == "*" and existing is not None:
                raise StorageRejected(REJECTED_VERSION)
            if version not in ("", "*") and (existing is None or existing["version"] != version):
                raise StorageRejected(REJECTED_VERSION)
            new_version = hashlib.md5(value_json.encode("utf-8")).hexdigest()
            staged[ident] = {
                "collection": collection,
                "key": key,
                "user_id": user_id,
                "value": value,
                "version": new_version,
                "permission_read": int(w.get("permission_read", 1)),
                "permission_write": int(w.get("permission_write", 1)),
            }
            acks.append({"collection": collection, "key": key, "user_id": user_id, "version": new_version})
        self.objects = staged
        return acks

    def delete(self, object_ids: Iterable[dict[str, Any]]) -> None:
        staged = dict(self.objects)
        for oid in object_ids:
            ident = (oid["collection"], oid["key"], oid.get("user_id") or "")
            version = oid.get("version") or ""
            existing = staged.get(ident)
            if version and (existing is None or existing["version"] != version):
                raise StorageRejected(
                    "Storage delete rejected - not found, version check failed, or permission denied."
                )
            staged.pop(ident, None)
        self.objects = staged


class Nk:
    """The ``nk`` argument of Python handlers (and the core behind Lua's ``require("nakama")``)."""

    def __init__(self, sources: Sources, storage: Storage | None = None, logger: Logger | None = None) -> None:
        self._sources = sources
        self.storage = storage if storage is not None else Storage()
        self.logger = logger if logger is not None else Logger()
        self.tick = 0
        self.consumed: list[Nondeterministic] = []
        self._served: dict[str, deque[Any]] = {}
        self.fallbacks = 0  # values the recording did not have for this call

    # -- per-call plumbing used by the runtime --------------------------------------------------------
    def begin_call(self, tick: int, recorded: Iterable[Nondeterministic] = ()) -> None:
        self.tick = tick
        if self.consumed:  # an empty list is kept: the runtime copies what a call consumed
            self.consumed = []
        self.fallbacks = 0
        if not recorded:  # most calls: nothing recorded to serve
            if self._served:
                self._served = {}
            return
        served: dict[str, deque[Any]] = {}
        for v in recorded:
            served.setdefault(v.source, deque()).append(v.value)
        self._served = served

    def unconsumed(self) -> int:
        return sum(len(q) for q in self._served.values())

    def take(self, source: str, fallback: Callable[[], _T]) -> _T:
        """Next recorded value of ``source`` for this call, else ``fallback()``; remembered in ``consumed``.
        A recorded value stands where ``fallback()``'s would: it is of the type the recording's source had."""
        q = self._served.get(source)
        value: _T
        if q:
            value = q.popleft()
        else:
            value = fallback()
            self.fallbacks += 1
        self.consumed.append(Nondeterministic(source, value))
        return value

    # -- nondeterministic sources -----------------------------------------------------------------------
    def time(self) -> int:
        """Milliseconds since the epoch."""
        return self.take("time", lambda: self._sources.time_ms(self.tick))

    def random(self) -> float:
        """A float in [0, 1)."""
        return self.take("random", self._sources.random)

    def random_int(self, low: int, high: int) -> int:
        """An integer in [low, high], drawn from ``random()``."""
        return low + int(self.random() * (high - low + 1))

    def uuid_v4(self) -> str:
        return self.take("uuid", self._sources.uuid)

    def os_time(self) -> int:
        """Seconds since the epoch (Lua's ``os.time()``)."""
        return self.take("os_time", lambda: self._sources.time_ms(self.tick) // 1000)

    def os_clock(self) -> float:
        """Seconds of CPU time (Lua's ``os.clock()``); derived from the tick when not recorded."""
        return self.take("os_clock", lambda: (self._sources.time_ms(self.tick) - self._sources.time_ms(0)) / 1000)

    def storage_read(self, object_ids: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.take("storage_read", lambda: self.storage.read(object_ids))

    def storage_write(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.storage.write(objects)

    def storage_delete(self, object_ids: list[dict[str, Any]]) -> None:
        self.storage.delete(object_ids)

    def http_request(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None, timeout: Any = None
    ) -> Any:
        def unavailable() -> Any:
            raise NotAvailableInReplay("http_request (no recorded response for this call)")

        return self.take("http", unavailable)

    # -- pure helpers -----------------------------------------------------------------------------------
    @staticmethod
    def json_encode(value: Any) -> str:
        return gojson.dumps(value)

    @staticmethod
    def json_decode(text: str | bytes) -> Any:
        return json.loads(text)

    @staticmethod
    def base64_encode(data: str | bytes, padding: bool = True) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        out = base64.b64encode(raw).decode("ascii")
        return out if padding else out.rstrip("=")

    @staticmethod
    def base64_decode(text: str, padding: bool = True) -> bytes:
        if not padding:
            text += "=" * (-len(text) % 4)
        return base64.b64decode(text, validate=True)

    @staticmethod
    def md5_hash(text: str | bytes) -> str:
        return hashlib.md5(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()

    @staticmethod
    def sha256_hash(text: str | bytes) -> str:
        return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()

    def logger_debug(self, msg: Any, *args: Any) -> None:
        self.logger.debug(msg, *args)

    def logger_info(self, msg: Any, *args: Any) -> None:
        self.logger.info(msg, *args)

    def logger_warn(self, msg: Any, *args: Any) -> None:
        self.logger.warn(msg, *args)

    def logger_error(self, msg: Any, *args: Any) -> None:
        self.logger.error(msg, *args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotAvailableInReplay(name)
