"""The hang guard: a callback that runs past its time limit is interrupted and reported as a hang.

One watchdog thread per guard polls a deadline; when a callback overruns, it raises ``CallbackHung``
asynchronously in the thread running the callback (``PyThreadState_SetAsyncExc``), so a Python
``while True: pass`` stops at its next bytecode and the process stays usable. ``CallbackHung`` derives from
``BaseException`` so a handler's ``except Exception`` cannot swallow it. A callback blocked inside one long
C call (``time.sleep(3600)``) is interrupted when that call returns. Lua handlers arm the same deadline
through an instruction-count hook (``replay.lua_handler``). The clock read here never reaches a handler,
so it cannot affect results.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CallbackHung", "HangGuard"]


class CallbackHung(BaseException):
    """Raised inside a callback that exceeded the hang guard's limit."""


class HangGuard:
    """Arms a deadline around each callback. ``limit`` in seconds; ``None`` or 0 disables the guard."""

    def __init__(self, limit: float | None = 5.0) -> None:
        self.limit = limit if limit and limit > 0 else None
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._target: int | None = None
        self._fired = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="nkreplay-hang-guard", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        assert self.limit is not None
        period = min(0.05, self.limit / 4)
        while not self._stop.wait(period):
            with self._lock:
                if self._deadline is not None and not self._fired and time.monotonic() > self._deadline:
                    self._fired = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self._target), ctypes.py_object(CallbackHung)
                    )

    @property
    def deadline(self) -> float | None:
        """The monotonic deadline of the running callback (for Lua's instruction hook)."""
        return self._deadline

    def arm(self) -> None:
        """Start the clock for a callback about to run in this thread."""
        if self.limit is None:
            return
        if self._thread is None:
            self._ensure_thread()
        self._target = threading.get_ident()
        self._deadline = time.monotonic() + self.limit

    def disarm(self) -> None:
        """Stop the clock; raises ``CallbackHung`` if the watchdog fired but the exception is still pending."""
        if self.limit is None:
            return
        with self._lock:
            fired = self._fired
            self._deadline = None
            self._fired = False
        if fired:
            # the asynchronous exception may still be pending if the body finished just in time:
            # deliver it here, where the caller expects it, rather than at a random later bytecode
            try:
                for _ in range(1000):
                    pass
            except CallbackHung:
                raise CallbackHung() from None

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Run the body under the deadline; ``CallbackHung`` escapes from it when the limit passes."""
        self.arm()
        try:
            yield
        finally:
            self.disarm()

    def close(self) -> None:
        self._stop.set()
