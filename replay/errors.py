"""The errors of running match handlers, under ``recorder.errors``' root: the whole tree.

::

    NakamaReplayError                      root (recorder.errors): catch this to catch anything we raise on purpose
    ├── RecordingError (ValueError)        a recording file or interchange file cannot be used (recorder.errors)
    │   ├── CorruptRecording               a checksum, frame or payload is wrong at a byte offset
    │   ├── IncompleteRecording            not proven complete (unsealed, damaged, version 1) where required
    │   │   └── TruncatedRecording         the file ends inside its last chunk (``strict`` mode)
    │   └── InterchangeError               a JSON Lines line is malformed (line number, field)
    ├── LogError (ValueError)              a server log to ingest cannot be used (recorder.errors)
    ├── InvalidValue (ValueError)          one value read from a file or log breaks a rule (recorder.errors)
    ├── StateError (ValueError)            a match state cannot be put in canonical form (recorder.errors)
    │   └── SnapshotError                  state snapshot bytes are not a valid msgpack state (blob, offset)
    ├── OptionError (ValueError)           an option's value is malformed or out of range (recorder.errors)
    ├── PathError (ValueError)             a file or folder to read or write cannot be used (recorder.errors)
    ├── HandlerError                       a match handler cannot be loaded or breaks a rule
    │   ├── HandlerLoadError               file missing, syntax error, missing callback
    │   └── UntrustedHandler               a recording names a handler outside its own folder (not run)
    ├── LuaError                           a Lua match handler raised an error (text with file:line, traceback)
    ├── MatchStopped (RuntimeError)        a dispatcher call on a match that has stopped
    ├── NotAvailableInReplay (AttributeError)  an ``nk`` function the replay runtime does not offer
    ├── StorageRejected                    a storage write rejected by version rules (Nakama's message)
    ├── ExpectationError (ValueError)      a regression expectation (NAME.expect.toml) is malformed (path, field)
    ├── BisectError (ValueError)           bisect cannot run: bad revision range, no versions, git failed
    ├── ProfileError (ValueError)          a fuzz profile (``--payloads MODULE``) cannot be loaded or is malformed
    ├── LiveReplayError                    a live Nakama refused or failed a step of a replay (url, step)
    ├── HandlerDied                        a supervised handler process hung, exited, was killed or ran out of
    │                                      memory (``death``: kind, callback, tick; ``replay.runtime.Death``)
    ├── SliceError                         the state at a slice's first tick cannot be had (path, tick, reason)
    ├── MatchCheckFailed (AssertionError)  a fuzzed or stateful match broke a check (``replay.fuzz``)
    │   ├── HandlerCrashed                 a callback raised or hung (callback, tick, error, signature)
    │   ├── BroadcastToAbsentPresence      a broadcast named a presence that is not in the match
    │   └── InvariantViolated              a user-declared invariant on the match state does not hold
    └── TriageError (ValueError)           crash triage cannot use an input or its store (``replay.triage``)
        ├── ReportError                    a client report, Sentry event or log line is malformed (path, line, field)
        ├── StoreError                     the crash store cannot be opened, migrated or written (url, problem)
        └── UnknownGroup (LookupError)     a group id that names no group, or more than one

The classes marked ``recorder.errors`` are defined there and exported here too, so ``replay.errors`` is the one
place to import any of them from. Every error keeps its data on attributes (path, offset, chunk, line, field,
tick, callback) and builds its message from them, ending with what to do about it where there is something to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recorder.errors import (
    CorruptRecording,
    IncompleteRecording,
    InterchangeError,
    InvalidValue,
    LogError,
    NakamaReplayError,
    OptionError,
    PathError,
    RecordingError,
    StateError,
    TruncatedRecording,
)

if TYPE_CHECKING:
    from replay.runtime._result import Crash
    from replay.runtime._signature import CrashSignature
    from replay.runtime._supervisor import Death

__all__ = [
    "NakamaReplayError",
    "RecordingError",
    "CorruptRecording",
    "IncompleteRecording",
    "TruncatedRecording",
    "InterchangeError",
    "LogError",
    "InvalidValue",
    "StateError",
    "SnapshotError",
    "OptionError",
    "PathError",
    "HandlerError",
    "HandlerLoadError",
    "UntrustedHandler",
    "LuaError",
    "MatchStopped",
    "NotAvailableInReplay",
    "StorageRejected",
    "ExpectationError",
    "BisectError",
    "ProfileError",
    "LiveReplayError",
    "HandlerDied",
    "SliceError",
    "MatchCheckFailed",
    "HandlerCrashed",
    "BroadcastToAbsentPresence",
    "InvariantViolated",
    "TriageError",
    "ReportError",
    "StoreError",
    "UnknownGroup",
]


class HandlerError(NakamaReplayError):
    """A match handler breaks one of Nakama's rules."""


class HandlerLoadError(HandlerError):
    """A handler file cannot be loaded."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: cannot load match handler: {problem}")


class UntrustedHandler(HandlerError):
    """A recording's header names a handler that does not resolve inside the recording's own folder tree
    (an absolute path, a ``..`` that climbs out, a symlink that leads out, a malformed name). Recordings
    are untrusted input, so that file is not run; ``--handler`` runs a file the user chose."""

    def __init__(self, recording: str, handler: str, problem: str = "") -> None:
        self.path, self.handler, self.problem = str(recording), handler, problem
        why = f" ({problem})" if problem else ""
        super().__init__(f"{self.path} names handler {handler!r} outside its folder; pass --handler to run it{why}")


class LuaError(NakamaReplayError):
    """A Lua match handler raised an error: the Lua text (``file:line: message``), its class
    (``recorder.capture._lua_errors.error_class``) and the Lua stack traceback, as Nakama logs them."""

    def __init__(self, text: str, traceback: str = "", error_class: str = "lua:error") -> None:
        self.text, self.traceback, self.error_class = text, traceback, error_class
        super().__init__(text)


class MatchStopped(NakamaReplayError, RuntimeError):
    """A dispatcher call on a match that has already stopped (Nakama's "match stopped")."""

    def __init__(self) -> None:
        super().__init__("match stopped")


class NotAvailableInReplay(NakamaReplayError, AttributeError):
    """An ``nk`` function the deterministic replay runtime does not provide."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"not available in replay: nk.{name} (record its results, or provide it through a replay nk extension)"
        )


class StorageRejected(NakamaReplayError):
    """A storage write rejected by Nakama's version rules; the message is Nakama's."""


class SnapshotError(StateError):
    """Encoded state bytes (a snapshot) that do not hold a msgpack state with string map keys."""

    def __init__(self, blob: int | None, offset: int, problem: str) -> None:
        self.path, self.blob, self.offset, self.problem = "", blob, offset, problem
        which = "state snapshot" if blob is None else f"state snapshot #{blob}"
        NakamaReplayError.__init__(self, f"{which}: malformed at byte offset {offset}: {problem}")


class ExpectationError(NakamaReplayError, ValueError):
    """A regression expectation (``NAME.expect.toml`` or the ``expect`` header tag) cannot be used."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path, self.field, self.problem = str(path), field, problem
        where = f" field {field!r}:" if field else ""
        super().__init__(f"{self.path}:{where} {problem}")


class BisectError(NakamaReplayError, ValueError):
    """A bisection cannot start or go on (bad revision range, no versions, a git command that failed)."""


class ProfileError(NakamaReplayError, ValueError):
    """A fuzz profile (the module given to ``fuzz --payloads``) cannot be loaded or describes something
    impossible; ``field`` names the setting (``PAYLOADS[3]``, ``CLIENT_VERSIONS``)."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source, self.field, self.problem = source, field, problem
        where = f" {field}:" if field else ""
        super().__init__(f"{source}:{where} {problem}")


class LiveReplayError(NakamaReplayError):
    """A live Nakama (or ``nakama-replay serve``) cannot be reached or refused a step of a replay."""

    def __init__(self, url: str, step: str, problem: str) -> None:
        self.url, self.step, self.problem = url, step, problem
        super().__init__(
            f"{url}: {step} failed: {problem}. Check that the server runs, and the server key, RPC names and "
            "match id given to `nakama-replay live`."
        )


class HandlerDied(NakamaReplayError):
    """A supervised handler process ended without a result: it hung past the hang timeout, exited, was
    killed by a signal or ran out of memory. ``death`` (``replay.runtime.Death``) says how and where; the
    commands turn it into their answer (an outcome, a run-all category), so it is rarely seen as such."""

    def __init__(self, death: Death) -> None:
        self.death = death
        super().__init__(f"{death.describe()} {death.where}")


class SliceError(NakamaReplayError):
    """``nakama-replay slice`` cannot have the state at the slice's first tick: the replay before it crashed,
    stopped or diverged, or the source recording is not complete before it. ``tick`` is where, ``reason``
    what happened."""

    def __init__(self, path: str, tick: int | None, reason: str) -> None:
        self.path, self.tick, self.reason = path, tick, reason
        super().__init__(f"{path}: cannot slice: {reason}")


class MatchCheckFailed(NakamaReplayError, AssertionError):
    """A match driven by client actions broke a check. ``key`` groups failures that are the same bug
    (``callback|error type|location``); ``tick`` and ``callback`` say where. The fuzzer attaches the
    client actions that led here as ``actions``."""

    def __init__(self, message: str, key: str, callback: str, tick: int) -> None:
        self.key, self.callback, self.tick = key, callback, tick
        self.actions: list[object] = []
        super().__init__(message)


class HandlerCrashed(MatchCheckFailed):
    """A handler callback raised or hung. ``crash`` is the runtime's ``replay.runtime.Crash`` and
    ``signature`` its ``replay.runtime.CrashSignature`` (whose ``key`` is this failure's key)."""

    def __init__(self, crash: Crash, signature: CrashSignature) -> None:
        self.crash, self.signature = crash, signature
        what = "hung" if crash.hung else "crashed"
        trace = f"\n{crash.traceback}" if crash.traceback and crash.traceback != crash.error else ""
        super().__init__(
            f"{crash.callback} {what} at tick {crash.tick}: {crash.error}{trace}",
            signature.key,
            crash.callback,
            crash.tick,
        )


class BroadcastToAbsentPresence(MatchCheckFailed):
    """A broadcast named a presence that is not in the match (Nakama drops such targets silently, so the
    player never gets the message). ``location`` is the handler's ``file:function``, when known."""

    def __init__(self, callback: str, tick: int, op_code: int, session_id: str, location: str = "") -> None:
        self.op_code, self.session_id, self.location = op_code, session_id, location
        where = f" at {location}" if location else ""
        super().__init__(
            f"{callback} at tick {tick} broadcast op code {op_code} to session {session_id}, which is not in "
            f"the match{where}; Nakama drops that target silently",
            f"{callback}|BroadcastToAbsentPresence|{location or '?'}",
            callback,
            tick,
        )


class InvariantViolated(MatchCheckFailed):
    """A user-declared invariant returned False or raised after a call."""

    def __init__(self, name: str, callback: str, tick: int, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__(
            f"invariant {name} does not hold after {callback} at tick {tick}: {problem}",
            f"invariant|InvariantViolated|{name}",
            callback,
            tick,
        )


class TriageError(NakamaReplayError, ValueError):
    """Triage cannot use an input or its crash store."""


class ReportError(TriageError):
    """A report (client JSON, Sentry event, server log line) that does not fit the schema.

    ``path`` and ``line`` say where (line 0: the whole file), ``field`` which field (dotted), ``problem`` what
    is wrong with it."""

    def __init__(self, problem: str, *, path: str = "", line: int = 0, field: str = "") -> None:
        self.problem, self.path, self.line, self.field = problem, path, line, field
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}{what}{problem}")


class StoreError(TriageError):
    """The crash store (SQLite file or PostgreSQL database) cannot be used."""

    def __init__(self, url: str, problem: str) -> None:
        self.url, self.problem = url, problem
        self.path = url if "://" not in url else ""
        super().__init__(f"{url}: {problem}")


class UnknownGroup(TriageError, LookupError):
    """A group id (or prefix) that names no group in the store, or more than one."""
