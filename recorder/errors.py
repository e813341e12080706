"""The root of nakama-replay's one exception tree, and the errors of reading and writing recordings.

::

    NakamaReplayError                      root: catch this to catch anything we raise on purpose
    ├── RecordingError (ValueError)        a recording file or interchange file cannot be used
    │   ├── CorruptRecording               a checksum, frame or payload is wrong at a byte offset
    │   ├── IncompleteRecording            not proven complete (unsealed, damaged, version 1) where required
    │   │   └── TruncatedRecording         the file ends inside its last chunk (``strict`` mode)
    │   └── InterchangeError               a JSON Lines line is malformed (line number, field)
    ├── LogError (ValueError)              a server log to ingest cannot be used (no capture records, unreadable)
    ├── InvalidValue (ValueError)          one value read from a file or log breaks a rule (field, problem);
    │                                      readers turn it into CorruptRecording / InterchangeError / a damaged line
    ├── StateError (ValueError)            a match state cannot be put in canonical form (path, problem)
    ├── OptionError (ValueError)           an option's value is malformed or out of range (option, value)
    ├── PathError (ValueError)             a file or folder to read or write cannot be used (path, problem)
    └── ...                                the errors of running handlers: ``replay.errors`` (it draws the whole tree)

``recorder`` never imports ``replay``, so the errors only ``replay`` raises live there, under this root.
Every error keeps its data on attributes (path, offset, chunk, line, field, tick, callback) and builds
its message from them, ending with what to do about it where there is something to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recorder.format import Integrity

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
    "OptionError",
    "PathError",
    "json_error_text",
]


class NakamaReplayError(Exception):
    """Root of every error nakama-replay raises on purpose."""


class RecordingError(NakamaReplayError, ValueError):
    """A recording (``.nkrec``) or interchange (``.jsonl``) file cannot be used."""


class CorruptRecording(RecordingError):
    """A chunk's frame, checksum or payload is damaged (chunk 0: the signature or the header, so nothing
    of the file can be used; only then is salvage advice left out). ``field`` names the bad field of a
    payload (``events[3].messages[2].op_code``) when one is to blame."""

    def __init__(self, path: str, offset: int, chunk: int, problem: str, field: str = "") -> None:
        self.path, self.offset, self.chunk, self.problem, self.field = str(path), offset, chunk, problem, field
        if chunk == 0:
            text = (
                f"{self.path}: {problem}"
                if offset == 0
                else f"{self.path}: corrupt header at byte offset {offset}: {problem}"
            )
        else:
            text = (
                f"{self.path}: corrupt recording at byte offset {offset} (chunk {chunk}): {problem}. "
                "Every chunk before this offset is intact; `nakama-replay inspect --salvage` reads past the damage."
            )
        super().__init__(text)


class IncompleteRecording(RecordingError):
    """A recording that is not proven complete where completeness is required (``strict``, or a command
    that draws no verdict from part of a recording). ``integrity`` is the reader's
    ``recorder.format.Integrity``; ``offset``, ``chunk`` and ``events_recovered`` locate its first
    problem (for a file without damage: the end of its intact chunks)."""

    def __init__(self, path: str, integrity: Integrity) -> None:
        self.path, self.integrity, self.state = str(path), integrity, integrity.state
        d = integrity.first_damage
        self.offset = d.offset if d is not None else integrity.end_offset
        self.chunk = d.chunk if d is not None else integrity.chunks + 1
        self.events_recovered = d.events_recovered if d is not None else integrity.events
        super().__init__(
            f"{self.path}: {integrity.describe()}. No verdict is drawn from an incomplete recording; "
            "--allow-incomplete draws one from its intact part."
        )


class TruncatedRecording(IncompleteRecording):
    """The file ends in the middle of a chunk (a recorder killed mid-write), in ``strict`` mode."""


class InterchangeError(RecordingError):
    """A JSON Lines interchange line cannot be read."""

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = f" field {field!r}" if field else ""
        super().__init__(f"{self.path}:{line}:{where} {problem}")


class LogError(NakamaReplayError, ValueError):
    """A server log given to ``ingest`` cannot be used."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


class InvalidValue(NakamaReplayError, ValueError):
    """One value read from untrusted input (a chunk payload, a JSON Lines line, a log record) breaks a rule
    of ``recorder.format._validate``: ``field`` says where (empty for the whole input), ``problem`` what. Readers
    turn it into their own error naming the file and line or offset."""

    def __init__(self, field: str, problem: str) -> None:
        if len(field) > 120:  # a path into a deeply nested value
            field = f"{field[:60]}...{field[-50:]}"
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}" if field else problem)


class StateError(NakamaReplayError, ValueError):
    """A match state holds a value that has no canonical form (a set, an object, a lone surrogate...)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        where = path or "(root)"
        super().__init__(
            f"state at {where}: {problem}. States must be JSON-like: dicts, lists, tuples, str, bytes, "
            "int, float, bool, None."
        )


class OptionError(NakamaReplayError, ValueError):
    """An option's value is malformed or out of range: a port of 99999, a negative tick, a URL without a
    port number. ``option`` names it as the user wrote it (``--listen``), empty when unknown."""

    def __init__(self, option: str, value: object, problem: str) -> None:
        self.option, self.value, self.problem = option, value, problem
        parts = [option] if option else []
        if value is not None:
            parts.append(repr(str(value)))
        super().__init__(": ".join([*parts, problem]))


class PathError(NakamaReplayError, ValueError):
    """A file or folder to read or write cannot be used: missing, the wrong kind (a folder given as a file),
    unreadable, or an output whose parent folder does not exist."""

    def __init__(self, path: object, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def json_error_text(exc: ValueError) -> str:
    """What is wrong with a JSON text, for a message: ``Expecting value at column 5``. Python's own text for
    some errors ends in a dangling "at" ("Invalid control character at"); other ValueErrors (an integer
    too long to convert) have no position and keep their text."""
    msg, column = getattr(exc, "msg", None), getattr(exc, "colno", None)
    if not isinstance(msg, str) or column is None:
        return str(exc)
    return f"{msg.removesuffix(' at').rstrip()} at column {column}"
