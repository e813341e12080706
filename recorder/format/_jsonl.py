"""JSON Lines interchange: one JSON object per line, lossless in both directions, streamed.

The first line is the header (``kind: header``); every later line is one event whose ``kind`` is
``init``, ``join_attempt``, ``join``, ``leave``, ``loop``, ``signal``, ``terminate``, ``crash`` or
``wire``. Message data, broadcast data and snapshots are standard base64 strings (or null). Call lines
may carry an ``outcome`` object and a ``nondeterministic`` list. docs/reference/jsonl.md
shows every shape; the field tables of ``recorder.format._schema`` define them (keys, types, defaults).

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

import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import IO, Any

from recorder.errors import InterchangeError, InvalidValue
from recorder.format._atomic import atomic_location
from recorder.format._jsonvalue import from_json_value, to_json_value, wrap_surrogates
from recorder.format._jsonvalue import obj as _map
from recorder.format._model import Event, Header
from recorder.format._nkrec import RecordingWriter
from recorder.format._schema import KIND_NAMES, event_to_json, header_to_json, read_event, read_header
from recorder.format._validate import parse_json, show
from recorder.storage import open_input

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

_MISSING: Any = object()


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
            text = _ENCODER.encode(wrap_surrogates(obj))
        text = _LINE_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text + "\n"


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
        header = read_header(first)
    except InvalidValue as exc:
        raise src.error(exc.field, exc.problem) from None
    raw_params = first.get("params", {})

    def header_params() -> dict[str, Any]:  # a fresh copy for each init line that leaves params out
        return _map(raw_params, "params")

    def events() -> Iterator[Event]:
        for obj in objs:
            kind = obj.get("kind", _MISSING)
            if type(kind) is not str or kind not in KIND_NAMES:
                if kind is _MISSING:
                    raise src.error("kind", "missing")
                known = ", ".join(KIND_NAMES)
                extra = " (only the first line is a header)" if kind == "header" else f" (known: {known})"
                raise src.error("kind", f"unknown kind {show(kind)}{extra}")
            try:
                yield read_event(obj, header_params)
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
    """Convert an interchange file (a path or URL, or a binary stream named ``name``) into ``out`` (.nkrec, a
    path or URL: ``recorder.storage``).

    Streams line by line into ``OUT.incomplete.tmp`` (``recorder.format._atomic``), renamed to ``out`` only when
    the whole input was read: on an error nothing is left behind, and what a killed import leaves is
    removed by the next import to ``out``. The recording is sealed, unless the header's ``INTEGRITY_TAG``
    says the file was exported from an incomplete recording. Returns the number of events written.
    """
    own = isinstance(source, (str, os.PathLike))
    label = str(source) if own else (name or str(getattr(source, "name", "<stream>")))
    with atomic_location(out) as tmp:
        stream: IO[bytes] = open_input(source)[0] if isinstance(source, (str, os.PathLike)) else source
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
