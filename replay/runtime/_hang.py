"""The hang guard: a callback that runs past its time limit is interrupted and reported as a hang.

One watchdog thread per guard polls a deadline; when a callback overruns, it raises ``CallbackHung``
asynchronously in the thread running the callback (``PyThreadState_SetAsyncExc``), so a Python
``while True: pass`` stops at its next bytecode and the process stays usable. ``CallbackHung`` derives from
``BaseException`` so a handler's ``except Exception`` cannot swallow it. A callback blocked inside one long
C call (``time.sleep(3600)``) is interrupted when that call returns. Lua handlers arm the same deadline
through an instruction-count hook (``replay.lua._handler``). The clock read here never reaches a handler,
so it cannot affect results.

A JavaScript callback runs in QuickJS, which runs no Python bytecode: the guard calls the interrupter the
engine registered for that thread instead (``js_stoppers``); QuickJS stops at its next interrupt poll and the
engine raises ``CallbackHung`` (``replay.js._engine``). Where the engine cannot install one (a quickjs-ng whose layout it does not know), the
callback runs on a thread of its own: the guard interrupts the wait for it, but nothing can stop that thread,
which is then abandoned (``abandon_thread``). In a supervised worker the supervisor ends the whole worker after
that job (``runaway_threads``); in an unsupervised process a warning says that the thread keeps running until
the process exits.

What a guard inside the process cannot stop (a callback blocked in C, a catastrophic regular expression,
a segfault, ``os._exit``) is the supervisor's job (``replay.runtime._supervisor``): it runs the replay in a child
process whose ``Beacon`` tells it, through shared memory, which callback at which tick is running, and ends
the child by wall clock.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import get_ident as _get_ident
from typing import Any

__all__ = [
    "Beacon",
    "CallbackHung",
    "abandon_thread",
    "runaway_threads",
    "HangGuard",
    "ProgressBeacon",
    "active_beacon",
    "begin_pass",
    "js_stoppers",
    "begin_run",
    "forward_progress",
    "set_run",
    "install_beacon",
    "interrupts_come_from_handlers",
    "reporting",
    "watching",
]


class CallbackHung(BaseException):
    """Raised inside a callback that exceeded the hang guard's limit."""


#: thread id -> what interrupts the JavaScript that thread is running (``replay.js._engine`` sets it for the
#: length of each call; True when it did). QuickJS runs no Python bytecode to raise an asynchronous exception
#: in, and one raised in Python code it calls would be lost in the binding: the engine raises it itself
js_stoppers: dict[int, Callable[[str], bool]] = {}


class HangGuard:
    """Arms a deadline around each callback. ``limit`` in seconds; ``None`` or 0 disables the guard.

    Arming costs a callback two stores and a counter (it runs tens of thousands of times a second in a
    replay): the watchdog times each callback from the poll that first sees it running, so a hang is
    reported between ``limit`` and ``limit`` plus two poll periods (0.1 s at most) after it began, never
    before ``limit``."""

    def __init__(self, limit: float | None = 5.0) -> None:
        self.limit = limit if limit and limit > 0 else None
        self._lock = threading.Lock()
        self._calls = 0  # callbacks armed so far: which one is running
        self._running = False
        self._deadline: float | None = None  # of the running callback, as the watchdog measures it
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
        seen = -1  # the callback the watchdog is timing
        while not self._stop.wait(period):
            with self._lock:
                limit = self.limit
                if not self._running or self._fired or limit is None:
                    seen, self._deadline = -1, None
                    continue
                now = time.monotonic()
                if self._calls != seen:  # it began after the last poll: its clock starts now
                    seen, self._deadline = self._calls, now + limit
                elif self._deadline is not None and now >= self._deadline and self._target is not None:
                    self._fired = True
                    stop_js = js_stoppers.get(self._target)
                    if stop_js is None or not stop_js("a hang"):  # QuickJS, stopped, raises CallbackHung itself
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(self._target), ctypes.py_object(CallbackHung)
                        )

    @property
    def deadline(self) -> float | None:
        """The monotonic deadline of the running callback, once the watchdog has seen it (else None)."""
        return self._deadline

    def arm(self) -> None:
        """Start the clock for a callback about to run in this thread."""
        if self.limit is None:
            return
        if self._thread is None:
            self._ensure_thread()
        self._target = _get_ident()
        self._calls += 1
        self._running = True

    def disarm(self) -> None:
        """Stop the clock; raises ``CallbackHung`` if the watchdog fired but the exception is still pending."""
        if self.limit is None:
            return
        lock = self._lock
        lock.acquire()  # not ``with``: this runs once per callback, and the statement costs twice the calls
        try:
            self._running = False
            fired = self._fired
            self._fired = False
        finally:
            lock.release()
        if fired:
            # the asynchronous exception may still be pending if the body finished just in time:
            # deliver it here, where the caller expects it, rather than at a random later bytecode
            try:
                for _ in range(1000):
                    pass
            except CallbackHung:
                raise CallbackHung() from None

    def close(self) -> None:
        self._stop.set()


#: Callback names as the beacon numbers them (0: not in a callback). ``LOADING`` is the handler's import.
LOADING = "loading the handler"
CALLBACKS = (
    "",
    "match_init",
    "match_join_attempt",
    "match_join",
    "match_leave",
    "match_loop",
    "match_signal",
    "match_terminate",
    LOADING,
)
_CODES = {name: i for i, name in enumerate(CALLBACKS)}


class Beacon:
    """Where this process's handler is, written into shared memory that a supervisor reads (no clock, no
    syscall: a few stores per callback). Slots of int64: whether a callback is running, its code in
    ``CALLBACKS``, its tick, callbacks and loops started, the run within the job (a diff's side a or b),
    the recorded calls read, a flag set on running out of memory, the job number, the divergences so far;
    for progress displays the pass of a job of several passes over the recording (``begin_pass``) and the
    tick (plus one; 0: none) a nested supervised process forwarded (``forward_progress``). The supervisor
    takes a callback as hung when (run, callbacks started) stays the same while one is running. Progress
    costs the replay nothing more: the parent reads the tick the beacon already holds (``progress_of``)."""

    IN_CALL, CALLBACK, TICK, CALLS, LOOPS, RUN, POSITION, OOM, JOB, DIVERGENCES, PASS, FORWARDED = range(12)
    SLOTS = 16

    __slots__ = ("slots",)

    def __init__(self, slots: memoryview | list[int]) -> None:
        self.slots = slots  # int64 items (memoryview.cast("q")) over a shared mapping, or a plain list

    def enter(self, callback: str, tick: int) -> None:
        s = self.slots
        code = _CODES.get(callback, 0)
        s[1] = code
        s[2] = tick
        if code == 5:
            s[4] += 1
        if code != 8:  # loading the handler is not a call
            s[3] += 1
        s[0] = 1

    def leave(self) -> None:
        self.slots[0] = 0

    def diverged(self, count: int) -> None:
        """Outcomes that differed from the recording so far (written only when one does)."""
        self.slots[9] = count

    def position(self, n: int) -> None:
        """Recorded calls read so far (the death report shows the inputs before this point)."""
        self.slots[6] = n

    def start(self, job: int, run: int = 0) -> None:
        """A new job (or a new run within one: ``run`` 1 is a diff's side b): counters back to zero."""
        s = self.slots
        for i in (0, 1, 2, 3, 4, 6, 7, 9, 11):
            s[i] = 0
        s[5] = run
        s[8] = job
        if run == 0:
            s[10] = 0

    @staticmethod
    def progress_of(slots: memoryview) -> tuple[int, int]:
        """(pass, tick) for a progress display: the tick of the callback running or last run, or the one a
        nested process forwarded."""
        forwarded = slots[11]
        return int(slots[10]), int(forwarded - 1 if forwarded else slots[2])


class ProgressBeacon(Beacon):
    """The beacon of an in-process replay whose progress is shown (``watching``): the tick alone, in a
    plain list (no supervisor reads the rest), so that it costs the replay as little as it can."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__([0] * Beacon.SLOTS)

    def enter(self, callback: str, tick: int) -> None:
        self.slots[2] = tick

    def leave(self) -> None:
        pass

    def position(self, n: int) -> None:
        pass

    def diverged(self, count: int) -> None:
        pass


_active: Beacon | None = None


def interrupts_come_from_handlers() -> bool:
    """True when a ``KeyboardInterrupt`` here cannot be the user's Ctrl-C: this process ignores SIGINT (a
    supervised worker does; its supervisor takes the user's interruption), so a handler raised it."""
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def install_beacon(beacon: Beacon | None) -> None:
    """Make ``beacon`` the one every runtime in this process reports to (the supervisor's worker does)."""
    global _active
    _active = beacon


def active_beacon() -> Beacon | None:
    """The beacon of this process, or None when no supervisor watches it (in-process replays)."""
    return _active


def begin_run(run: int) -> None:
    """A new run within this job (``run`` 1: a diff's side b): the beacon's counters start again."""
    if _active is not None:
        _active.start(_active.slots[Beacon.JOB], run)


def begin_pass(number: int) -> None:
    """Say that pass ``number`` over the recording begins (a diff's side b is pass 1): progress only."""
    if _active is not None:
        _active.slots[Beacon.PASS] = number
        _active.slots[Beacon.FORWARDED] = 0


def forward_progress(number: int) -> Callable[[memoryview], None] | None:
    """For a supervised process started from inside a supervised worker (a diff's PYTHONHASHSEED runs): a
    ``HandlerProcess.on_poll`` that shows its tick as pass ``number`` of this worker, whose own
    supervisor's progress display reads it. None outside a worker."""
    beacon = _active
    if beacon is None:
        return None
    beacon.slots[Beacon.PASS] = number

    def forward(child: memoryview) -> None:
        beacon.slots[Beacon.FORWARDED] = child[Beacon.TICK] + 1

    return forward


@contextmanager
def watching(on_poll: Callable[[memoryview], None] | None, period: float = 0.2) -> Iterator[None]:
    """Progress of an in-process replay: a beacon for the runtimes of this process (unless a supervisor's
    is already there) and a daemon thread handing its slots to ``on_poll`` every ``period`` seconds, as
    the supervisor does for a child. ``on_poll`` None: nothing at all."""
    if on_poll is None or _active is not None:
        yield
        return
    beacon = ProgressBeacon()
    slots: Any = beacon.slots
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(period):
            on_poll(slots)

    install_beacon(beacon)
    thread = threading.Thread(target=poll, name="nkreplay-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        install_beacon(None)
        on_poll(slots)  # the last position, so the display ends where the replay did


def set_run(run: int) -> None:
    """Say which run of this job is going on (two runs interleaved, as ``lua-check`` does)."""
    if _active is not None:
        _active.slots[Beacon.RUN] = run


@contextmanager
def reporting(callback: str, tick: int = 0) -> Iterator[None]:
    """Tell the supervisor (if any) that ``callback`` runs inside the block."""
    beacon = _active
    if beacon is None:
        yield
        return
    beacon.enter(callback, tick)
    try:
        yield
    finally:
        beacon.leave()


_runaways: list[tuple[threading.Thread, str]] = []


def abandon_thread(thread: threading.Thread, what: str) -> None:
    """Note a thread that could not be stopped (a hung JavaScript context): a supervised worker is ended after
    its job (``runaway_threads``); without a supervisor a ``RuntimeWarning`` says what keeps running."""
    _runaways.append((thread, what))
    if _active is None:
        warnings.warn(
            f"{what} cannot be stopped: its thread keeps running (one core busy) until this process exits; "
            "run it supervised (without --in-process) to have it ended",
            RuntimeWarning,
            stacklevel=3,
        )


def runaway_threads() -> list[str]:
    """What ``abandon_thread`` noted that is still running."""
    _runaways[:] = [(t, what) for t, what in _runaways if t.is_alive()]
    return [what for _, what in _runaways]
