"""In-process capture: the sink a live match runtime writes its calls into.

A runtime (``replay.runtime.MatchDriver`` for scripted matches, ``nakama-replay serve`` for real clients)
hands every call it made, with the outcome it observed and the nondeterministic values the handler
consumed, to ``CaptureSink.record``. The sink appends them to a ``.nkrec`` file and flushes after every
``match_loop`` (one chunk per tick), so a process killed mid-match loses at most the tick in flight. When
the handler crashes, ``crash`` writes the crash marker and flushes at once. With a ``redactor``
(``recorder.wire._redact``), every record is written without its secrets and the header lists the redactions.
``recorder`` does not depend on any runtime: the sink only sees finished records.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from recorder.format import Call, CrashMarker, Header, LoopCall, RecordingWriter
from recorder.wire import Redactor

__all__ = ["CaptureSink"]


class CaptureSink:
    """Writes a handler-call recording as a match runs.

    ``ticks_per_chunk`` trades crash safety for size: 1 (default) flushes every tick.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Header,
        *,
        ticks_per_chunk: int = 1,
        fsync: bool = False,
        redactor: Redactor | None = None,
    ):
        self.path = str(path)
        self.redactor = redactor
        if redactor is not None:
            header = replace(header, redactions=tuple(dict.fromkeys((*header.redactions, *redactor.labels))))
        self.header = header
        self.ticks_per_chunk = max(1, ticks_per_chunk)
        self._writer = RecordingWriter(path, header, chunk_events=1 << 30, fsync=fsync)
        self._loops_pending = 0
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
                self._writer.flush()
                self._loops_pending = 0

    def crash(self, callback: str, tick: int, error: str, traceback: str = "", error_type: str = "") -> None:
        """Record how the match died (``error_type``: the runtime's class of the error), and flush."""
        marker = CrashMarker(callback, tick, error, traceback, error_type)
        self._writer.append(marker if self.redactor is None else self.redactor.event(marker))
        self._writer.flush()

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
