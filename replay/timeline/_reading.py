"""Reading a recording for the timeline: its intact part, without raising at damage."""

from __future__ import annotations

import os

from recorder.format._nkrec import Recording, open_recording

__all__ = ["open_for_reading"]


def open_for_reading(path: str | os.PathLike[str]) -> Recording:
    """Open for streaming the intact part: damage ends the reading quietly where it starts; the recording's
    ``integrity()`` then says what was not read (an unsealed, damaged or version-1 recording)."""
    return open_recording(path, on_damage="stop")
