"""Find secrets in written recordings: every string a recording holds, decoded, searched for token values.

A recording is read back (header and every event), and each string in it is collected: dataclass fields,
dict keys and values, list items, bytes (as Latin-1 text, so an ASCII token shows), and the decoded form of
anything that is valid base64 (wire ``data`` fields, binary frames). A token leaks if the token itself, or
any of its three JWT parts, appears in one of them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from recorder.format import read_events


def strings(value: Any) -> Iterator[str]:
    """Every string inside ``value``, with base64 text and bytes decoded as well."""
    if isinstance(value, str):
        yield value
        if len(value) >= 4 and len(value) % 4 == 0:
            try:
                yield base64.b64decode(value, validate=True).decode("latin-1")
            except (binascii.Error, ValueError):
                pass
    elif isinstance(value, (bytes, bytearray)):
        yield bytes(value).decode("latin-1")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from strings(getattr(value, f.name))
    elif isinstance(value, Iterable):
        for v in value:
            yield from strings(v)


def recording_strings(path: Path) -> list[str]:
    header, events = read_events(path)
    return [*strings(header), *(s for e in events for s in strings(e))]


def fragments(token: str) -> list[str]:
    """The token and each of its JWT parts (header, claims, signature), the shortest 8 characters long."""
    return [token, *(p for p in token.split(".") if len(p) >= 8)]


def leaks(paths: Iterable[Path], secrets: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(file name, secret fragment, string holding it)`` for every leak found; empty when none."""
    found = []
    needles = [f for s in secrets for f in fragments(s)]
    for path in paths:
        for text in recording_strings(path):
            for needle in needles:
                if needle in text:
                    found.append((path.name, needle[:24], text[:120]))
    return found
