"""Ctrl-C that is never lost while the supervisor waits for a handler process.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode of the main thread; when that bytecode runs
inside a finaliser (``__del__``, a ``weakref.finalize`` callback) the exception is printed as "ignored" and
dropped, and a wait without a hang guard would then wait forever. While the CLI runs, ``catching_interrupts``
also remembers the signal, and the supervisor's wait loop calls ``raise_if_interrupted`` on every poll.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_seen = threading.Event()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _seen.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def catching_interrupts() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` as usual and is remembered until the block ends (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _seen.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _seen.clear()


def raise_if_interrupted() -> None:
    """``KeyboardInterrupt`` if Ctrl-C came while ``catching_interrupts`` was active and was swallowed."""
    if _seen.is_set():
        raise KeyboardInterrupt
