"""In-process capture: the sink a live match runtime writes its calls into.

A runtime (``replay.runtime.MatchDriver`` for scripted matches, ``nakama-replay serve`` for real clients)
hands every call it made, with the outcome it observed and the nondeterministic values the handler
consumed, to ``CaptureSink.record``. The sink appends them to a ``.nkrec`` file and writes a chunk once
``max_delay`` seconds of the match have been recorded (0.25 s: 15 ticks at 60 Hz, 2 at 10 Hz; at least one
tick), so a process killed mid-match loses at most that fraction of a second of calls (plus the tick in
flight). Several ticks per chunk is what makes reading a recording cheap: a chunk per tick costs its frame,
checksum and presence table once per tick.

The match clock (ticks divided by the tick rate) makes the chunks a pure function of the calls: the same
match gives the same bytes on every run, however fast it runs. A runtime that ticks in real time (``serve``)
also passes a wall ``clock``: a chunk is then written as soon as ``max_delay`` wall seconds have passed since
its first call, checked at every call, so a match that runs slower than its tick rate loses no more either.
When the handler crashes, ``crash`` writes the crash marker and flushes at once. With a ``redactor``
(``recorder.wire._redact``), every record is written without its secrets and the header lists the
redactions. ``recorder`` does not depend on any runtime: the sink only sees finished records.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from recorder.format import Call, CrashMarker, Header, LoopCall, RecordingWriter
from recorder.wire import Redactor

__all__ = ["CaptureSink", "DEFAULT_MAX_DELAY", "ticks_in"]

#: seconds of a match a killed capture may lose (the calls not yet written as a chunk)
DEFAULT_MAX_DELAY = 0.25


def ticks_in(max_delay: float, tick_rate: int) -> int:
    """The ticks in ``max_delay`` seconds of a match at ``tick_rate`` (at least one; one for an unknown rate)."""
    return max(1, int(max_delay * tick_rate)) if tick_rate > 0 else 1


class CaptureSink:
    """Writes a handler-call recording as a match runs.

    ``max_delay`` (seconds of the match) bounds what a killed process loses; ``ticks_per_chunk`` overrides
    the ticks it comes to at the header's tick rate (1: a chunk per tick). ``clock`` (``time.monotonic``
    for a match in real time) also writes the pending calls once ``max_delay`` of it has passed since the
    first of them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Header,
        *,
        max_delay: float = DEFAULT_MAX_DELAY,
        ticks_per_chunk: int | None = None,
        clock: Callable[[], float] | None = None,
        fsync: bool = False,
        redactor: Redactor | None = None,
    ):
        self.path = str(path)
        self.redactor = redactor
        if redactor is not None:
            header = replace(header, redactions=tuple(dict.fromkeys((*header.redactions, *redactor.labels))))
        self.header = header
        self.max_delay = max_delay
        self.ticks_per_chunk = max(1, ticks_per_chunk or ticks_in(max_delay, header.tick_rate))
        self.clock = clock
        self._writer = RecordingWriter(path, header, chunk_events=1 << 30, fsync=fsync)
        self._loops_pending = 0
        self._first_pending: float | None = None  # the clock when the oldest pending call was recorded
        self.calls = 0

    def __enter__(self) -> CaptureSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def record(self, call: Call) -> None:
        """Append one call (with its outcome and consumed nondeterministic values)."""
        if self.redactor is not None:
            call = self.redactor.event(call)
        self._writer.append(call)
        self.calls += 1
        if type(call) is LoopCall:
            self._loops_pending += 1
            if self._loops_pending >= self.ticks_per_chunk:
                self.flush()
                return
        clock = self.clock
        if clock is not None:
            now = clock()
            if self._first_pending is None:
                self._first_pending = now
            elif now - self._first_pending >= self.max_delay:
                self.flush()

    def crash(self, callback: str, tick: int, error: str, traceback: str = "", error_type: str = "") -> None:
        """Record how the match died (``error_type``: the runtime's class of the error), and flush."""
        marker = CrashMarker(callback, tick, error, traceback, error_type)
        self._writer.append(marker if self.redactor is None else self.redactor.event(marker))
        self.flush()

    def flush(self) -> None:
        """Write the pending calls as one chunk now."""
        self._writer.flush()
        self._loops_pending = 0
        self._first_pending = None

    def close(self) -> None:
        self._writer.close()
