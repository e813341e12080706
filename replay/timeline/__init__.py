"""A match as a timeline: what happened, and when (``nakama-replay view``, ``inspect --timeline``,
``inspect --tick``), and slices of a recording (``nakama-replay slice``).

``build_timeline(path)`` streams a recording into a ``Timeline`` (a ``Lane`` per user with its ``Session``\\ s,
densities per op code, ``Marker``\\ s, the crash, per-tick details within a byte budget); ``render_html`` makes
it one self-contained HTML page (canvas, inlined script and style, no network), ``format_timeline`` and
``format_tick`` the terminal views. ``divergence_against`` and ``divergence_between`` find the first divergent
tick to mark (a replay into a handler, or a second recording). ``slice_recording`` writes ticks A..B as a
sealed recording that starts from the state at A (``Slice``; ``replay.errors.SliceError`` when it cannot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.timeline._divergence import against as divergence_against
    from replay.timeline._divergence import between_recordings as divergence_between
    from replay.timeline._html import render_html
    from replay.timeline._model import Lane, Marker, Session, Timeline, build_timeline
    from replay.timeline._slicing import Slice, slice_recording
    from replay.timeline._text import format_tick, format_timeline

__all__ = [
    "Lane",
    "Marker",
    "Session",
    "Slice",
    "Timeline",
    "build_timeline",
    "divergence_against",
    "divergence_between",
    "format_tick",
    "format_timeline",
    "render_html",
    "slice_recording",
]

__getattr__, __dir__ = lazy_exports(__name__)
