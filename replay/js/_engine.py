"""One QuickJS context, driven synchronously; a hang or Ctrl-C interrupts it.

quickjs-ng's Python binding refuses host functions while a CPU time limit is set ("Can not call into Python
with a time limit set", every released version up to 0.17.0.2), and a handler's ``nk`` and dispatcher are host
functions. QuickJS's own interrupt handler (``JS_SetInterruptHandler``, polled every few thousand operations
and in regular expressions) is exported by the binding's library but not by its Python API, so it is installed
here through ctypes on the context's ``JSRuntime`` (read from the binding's object, then checked: the runtime's
opaque pointer must be that very object, else nothing is installed). The handler is ``dict.get`` on a flag
table keyed by the runtime: C code only, no Python bytecode (an asynchronous exception raised in Python code
called from QuickJS would be lost). What sets the flag:

- the hang guard (``replay.runtime._hang``): it raises ``CallbackHung`` in the thread and calls the stopper
  this engine registered for that thread (``js_stoppers``) for the length of each call;
- Ctrl-C: QuickJS runs no bytecode, so Python's SIGINT handler would wait; a wakeup fd
  (``signal.set_wakeup_fd``, installed once by the main thread when no other is) lets a small thread see the
  signal and set the flag; the ``KeyboardInterrupt`` is then raised as usual when QuickJS returns;
- a host function that received ``CallbackHung`` or ``KeyboardInterrupt``.

So the caller's thread runs the JavaScript itself: no hand-off between threads per call (on this 2-vCPU VM a
hand-off cost 6-10 us of CPU when both threads shared a core and 60-100 us per tick when they ran on two:
notes and figures in docs/javascript.md, Speed). An interrupted context is *abandoned* (its state may be
half-changed): every later call raises ``EngineAbandoned``; a new ``JsEngine`` starts a fresh context.

Where the interrupt cannot be installed (a binding whose layout is not the one checked, or
``NAKAMA_REPLAY_JS_THREAD=worker`` in the environment), or on the main thread
when Ctrl-C cannot be watched (another wakeup fd is set), calls run on a worker thread as before this change:
the caller waits in short slices, so the hang guard's ``CallbackHung`` and Ctrl-C reach it between slices, and
the worker, which nothing can stop, is abandoned (``replay.runtime._hang.abandon_thread``: a supervised worker
process is ended after its job, an unsupervised process warns).

A Python exception must never escape a host function into QuickJS (the binding turns it into a
``SystemError`` at the next call), so ``host`` is wrapped: any exception becomes the error string the
JavaScript side throws (see ``replay/js/prelude.js``, ``hostCall``).
"""

from __future__ import annotations

import _thread
import ctypes
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import quickjs

from replay.errors import HandlerError
from replay.runtime._hang import CallbackHung, abandon_thread, js_stoppers

__all__ = ["EngineAbandoned", "JsEngine", "host_error"]

THREAD_ENV = "NAKAMA_REPLAY_JS_THREAD"  # "worker": always the worker thread, no interrupt handler (as before)
_STACK_BYTES = 8 * 1024 * 1024  # QuickJS checks its stack against the thread's: give it glibc's default
_WAIT_SLICE = 0.05  # seconds the caller blocks at a time: how soon a hang or Ctrl-C is noticed


class EngineAbandoned(HandlerError):
    """The JavaScript engine was left running after a hang or an interruption."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the JavaScript runtime was abandoned after {why}; load the handler again")


def host_error(kind: str, message: str) -> str:
    """The string a host function returns to make the JavaScript side throw ``kind(message)``."""
    return f"\x00{kind}\x00{message}"


# -- interrupting QuickJS -------------------------------------------------------------------------------------

#: JSRuntime address -> 1 while the JavaScript on it must stop. QuickJS calls ``_stop_flags.get(rt, 0)`` at
#: each interrupt poll (about 0.15 times per tick of the bench's arena): C code, no Python bytecode, so no
#: pending exception or signal handler can be raised inside the poll, where ctypes would only print it.
_stop_flags: dict[int, int] = {}
_POLL_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t)
_POLL = _POLL_TYPE(_stop_flags.get)


def _binding_library() -> Any:
    try:
        lib = ctypes.CDLL(sys.modules["_quickjs"].__file__)  # imported by quickjs: the same handle
        for name in ("JS_GetRuntimeOpaque", "JS_GetRuntime"):
            getattr(lib, name).restype = ctypes.c_size_t
            getattr(lib, name).argtypes = [ctypes.c_size_t]
        lib.JS_SetInterruptHandler.restype = None
        lib.JS_SetInterruptHandler.argtypes = [ctypes.c_size_t, _POLL_TYPE, ctypes.c_size_t]
    except (OSError, AttributeError, KeyError):
        return None
    return lib


_LIB = _binding_library()
# quickjs-ng 0.17's Context object: PyObject_HEAD, then JSRuntime *runtime, JSContext *context, ... (80 bytes
# on 64-bit CPython); the pointers read from it are checked before use (``_runtime_of``)
_HEAD = object.__basicsize__
_CONTEXT_SIZE = _HEAD + 64


def _runtime_of(context: Any) -> int | None:
    """The address of ``context``'s JSRuntime, or None when this binding's object is not laid out as expected
    (the runtime's opaque pointer must be the Python object itself, and the JSContext's runtime the runtime)."""
    if _LIB is None or type(context).__basicsize__ != _CONTEXT_SIZE or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    rt = ctypes.c_size_t.from_address(id(context) + _HEAD).value
    cx = ctypes.c_size_t.from_address(id(context) + _HEAD + 8).value
    if not rt or not cx or rt % 8 or cx % 8:
        return None
    if _LIB.JS_GetRuntimeOpaque(rt) != id(context) or _LIB.JS_GetRuntime(cx) != rt:
        return None
    return rt


_sigint_watched = False


def _watch_sigint() -> bool:
    """True when Ctrl-C interrupts JavaScript running on the main thread: a wakeup fd (set here once, from the
    main thread, if no other is set) lets a thread see SIGINT while QuickJS runs and stop it."""
    global _sigint_watched, _sigint_fd
    if _sigint_watched:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    # an asyncio loop that sets its own later (serve's) replaces this one: Ctrl-C then waits for the JavaScript
    # to call nk or return, or for the hang guard, as it waited before for that loop to get control back
    if previous != -1:  # someone else's: keep it, and run JavaScript on the worker thread
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)
        return False
    os.set_blocking(read_end, False)
    _sigint_fd = read_end
    threading.Thread(target=_read_signals, name="nkreplay-sigint", daemon=True).start()
    _sigint_watched = True
    return True


_sigint_fd = -1
_sigint_lock = threading.Lock()


def _drain_signals() -> None:
    """Read what the wakeup fd holds; on SIGINT stop the JavaScript the main thread runs. Under a lock, so that
    ``run`` draining after a failed call cannot miss a signal the watching thread has read but not handled."""
    with _sigint_lock:
        try:
            data = os.read(_sigint_fd, 64)
        except BlockingIOError:
            return
        if signal.SIGINT in data:
            stop = js_stoppers.get(_MAIN or 0)
            if stop is not None:
                stop("KeyboardInterrupt")


def _read_signals() -> None:
    while True:
        select.select([_sigint_fd], [], [])
        _drain_signals()


def _interruption_in(exc: BaseException | None) -> BaseException | None:
    """The ``KeyboardInterrupt`` or ``CallbackHung`` that ``exc`` is or was raised from: Ctrl-C's handler can run
    as Python code called from QuickJS begins, before any ``try``, and the binding then reports a ``SystemError``
    ("returned a result with an exception set") or a ``JSException`` instead."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, (KeyboardInterrupt, CallbackHung)):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class JsEngine:
    """A QuickJS context. ``run(fn, *args)`` calls ``fn(context, *args)``: on the calling thread where QuickJS
    can be interrupted, else on the engine's worker thread."""

    def __init__(self, host: Callable[..., Any]) -> None:
        self.abandoned = ""
        self._host = host
        self._pending: BaseException | None = None  # what a host function caught for the caller
        self._thread: threading.Thread | None = None  # the worker, started at its first call
        self._request: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
        self._result: tuple[bool, Any] = (True, None)
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self.context: Any = None
        self._make_context(None)
        self._rt = None if os.environ.get(THREAD_ENV) == "worker" else _runtime_of(self.context)
        if self._rt is not None:
            _stop_flags.pop(self._rt, None)  # a stopped runtime freed at this address before
            _LIB.JS_SetInterruptHandler(self._rt, _POLL, 0)
        main_ok = self._rt is not None and _watch_sigint()
        self._main_direct = main_ok  # may the main thread run the JavaScript itself
        self._direct = self._rt is not None  # may any other thread

    def _make_context(self, _: Any) -> None:
        context = quickjs.Context()
        context.set_max_stack_size(1024 * 1024)
        context.add_callable("__nkr_host", self._safe_host)
        self.context = context

    def _stop(self, why: str) -> bool:
        """Abandon the context and make its running JavaScript stop at its next interrupt poll (any thread).
        False when this engine has no interrupt or is closed: the hang guard then raises in the thread."""
        if self.context is None:
            return False
        self.abandoned = self.abandoned or why
        if self._rt is None:
            return False
        _stop_flags[self._rt] = 1
        return True

    def _safe_host(self, *args: Any) -> Any:
        if self.abandoned:  # the runtime has moved on: this context must not touch its nk or dispatcher
            return host_error("Error", f"the replay abandoned this JavaScript runtime after {self.abandoned}")
        if self._pending is not None:
            return host_error("Error", "the replay is stopping this callback")
        try:
            result = self._host(*args)
        except Exception as exc:
            return host_error("Error", f"internal error in the replay runtime: {type(exc).__name__}: {exc}")
        except BaseException as exc:  # a hang or Ctrl-C reached the thread here: stop the JavaScript, raise it later
            self._pending = exc
            self._stop("a hang" if isinstance(exc, CallbackHung) else type(exc).__name__)
            return host_error("Error", "the replay is stopping this callback")
        if type(result) is int and not -(2**31) <= result < 2**31:
            return float(result)  # the binding wraps integers to int32 silently
        return result

    # -- calls ------------------------------------------------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(context, *args)``; its result, or its exception raised here."""
        if self.abandoned:
            raise EngineAbandoned(self.abandoned)
        ident = _thread.get_ident()
        if not (self._main_direct if ident == _MAIN else self._direct):
            return self._run_on_worker(fn, args)
        js_stoppers[ident] = self._stop
        try:
            result = fn(self.context, *args)
        except BaseException as exc:
            if ident == _MAIN and _sigint_watched:
                _drain_signals()  # Ctrl-C's handler may have raised where the binding lost the exception
            if not (self.abandoned or self._pending or _interruption_in(exc)):
                raise
            self._raise_stop(exc)
        finally:
            js_stoppers.pop(ident, None)
        if self.abandoned or self._pending is not None:  # stopped just as the JavaScript returned
            self._raise_stop(None)
        return result

    def _raise_stop(self, exc: BaseException | None) -> None:
        """The call was stopped: abandon the context and raise what stopped it (``CallbackHung`` for the hang
        guard, ``KeyboardInterrupt`` for Ctrl-C, whose Python handler may run at any bytecode from here on)."""
        stopped_by, self._pending = self._pending, None
        stopped_by = stopped_by or (_interruption_in(exc) if exc is not None else None)
        if stopped_by is None:
            try:
                for _ in range(1000):  # a pending signal's handler runs here rather than anywhere later
                    pass
            except BaseException as late:
                stopped_by = late
        if not self.abandoned:
            self._stop("a hang" if isinstance(stopped_by, CallbackHung) else type(stopped_by).__name__)
        if stopped_by is None:
            stopped_by = {"a hang": CallbackHung(), "KeyboardInterrupt": KeyboardInterrupt()}.get(
                self.abandoned, EngineAbandoned(self.abandoned)
            )
        raise stopped_by

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            request = self._request
            if request is None:
                return
            fn, args = request
            try:
                self._result = (True, fn(self.context, *args))
            except BaseException as exc:
                self._result = (False, exc)
            self._done.release()

    def _run_on_worker(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._thread is None:
            old = threading.stack_size()
            try:
                threading.stack_size(_STACK_BYTES)
                self._thread = threading.Thread(target=self._serve, name="nkreplay-js", daemon=True)
                self._thread.start()
            finally:
                threading.stack_size(old)
        self._request = (fn, args)
        self._go.release()
        done = self._done
        try:
            while not done.acquire(True, _WAIT_SLICE):
                pass
        except BaseException as exc:  # a hang or Ctrl-C while JavaScript runs
            if done.acquire(False):  # it finished just now after all
                raise
            self._stop("a hang" if isinstance(exc, CallbackHung) else type(exc).__name__)
            if self._rt is not None and done.acquire(True, 2.0):  # the interrupt stopped it: end the worker
                self._request = None
                self._go.release()
            else:  # nothing could stop it
                abandon_thread(self._thread, f"a JavaScript callback abandoned after {self.abandoned}")
            raise
        ok, value = self._result
        self._result = (True, None)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Drop the context and stop the worker, if any (not possible when abandoned inside JavaScript)."""
        if self._thread is not None and self._thread.is_alive():
            if self.abandoned:
                return
            self._run_on_worker(lambda _: setattr(self, "context", None), ())
            self._request = None
            self._go.release()
            self._thread.join(5)
        self.context = None
        if self._rt is not None:
            _stop_flags.pop(self._rt, None)


_MAIN = threading.main_thread().ident
