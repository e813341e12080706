"""Reading a recording for the timeline: the intact part, seeking by the tick index, damage noted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from recorder.format._model import Event
from recorder.format._nkrec import ChunkInfo, Recording, open_recording

__all__ = ["open_for_reading", "read_chunks", "start_of"]


def open_for_reading(path: str | os.PathLike[str]) -> Recording:
    """Open for streaming; damage ends the reading where it starts and is reported, not raised."""
    return open_recording(path)


def start_of(rec: Recording, from_tick: int | None) -> tuple[int | None, int]:
    """The offset and index of the last chunk whose first tick is at or before ``from_tick``."""
    start, first = None, 1
    if from_tick is not None:
        for info in rec.tick_index():
            if 0 <= info.tick <= from_tick:
                start, first = info.offset, info.index
            elif info.tick > from_tick:
                break
    return start, first


def read_chunks(
    rec: Recording, damage: list[dict[str, Any]], from_tick: int | None = None, *, seek: bool = False
) -> Iterator[tuple[ChunkInfo, list[Event]]]:
    """Every chunk's events in order (from the chunk holding ``from_tick`` when ``seek``); the damage the
    reader met is appended to ``damage`` when the reading ends."""
    start, first = start_of(rec, from_tick) if seek else (None, 1)
    try:
        yield from rec.chunks(start, first)
    finally:
        for d in rec.damage:
            entry = {"kind": d.kind, "offset": d.offset, "chunk": d.chunk, "problem": d.problem}
            if entry not in damage:
                damage.append(entry)
