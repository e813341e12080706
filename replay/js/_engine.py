"""One QuickJS context on its own thread, driven synchronously from the caller's thread.

Why a thread: quickjs-ng's Python binding refuses host functions while a CPU time limit is set ("Can not
call into Python with a time limit set", every released version up to 0.17.0.2), and a handler's ``nk``
and dispatcher are host functions. Without a time limit nothing can interrupt a pure JavaScript loop
(``while (true) {}``), and the binding releases the GIL while JavaScript runs. So every call into the
context runs on one worker thread (a QuickJS runtime must stay on the thread that made it) while the
caller waits in short slices: the hang guard's asynchronous ``CallbackHung`` (``replay.runtime._hang``) and
Ctrl-C reach the caller between slices. The engine is then *abandoned*: its worker keeps spinning until
the process exits (a daemon thread; QuickJS gives no way to stop it from outside), every later call
raises ``EngineAbandoned`` and its host functions answer with an error (it must not draw from a later
match's sources). ``replay.runtime._hang.abandon_thread`` is told: a supervised worker process is then ended
after its job, an unsupervised process warns. A new ``JsEngine`` starts a fresh context.

Host functions run on the worker thread. A Python exception must never escape one into QuickJS (the
binding turns it into a ``SystemError`` at the next call), so ``host`` is wrapped: any exception becomes
the error string the JavaScript side throws (see ``replay/js/prelude.js``, ``hostCall``).
"""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable
from typing import Any

import quickjs

from replay.errors import HandlerError
from replay.runtime._hang import CallbackHung, abandon_thread

__all__ = ["EngineAbandoned", "JsEngine", "host_error"]

_STACK_BYTES = 8 * 1024 * 1024  # QuickJS checks its stack against the thread's: give it glibc's default
_WAIT_SLICE = 0.05  # seconds the caller blocks at a time: how soon a hang or Ctrl-C is noticed


class EngineAbandoned(HandlerError):
    """The JavaScript engine was left running after a hang or an interruption."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the JavaScript runtime was abandoned after {why}; load the handler again")


def host_error(kind: str, message: str) -> str:
    """The string a host function returns to make the JavaScript side throw ``kind(message)``."""
    return f"\x00{kind}\x00{message}"


class JsEngine:
    """A QuickJS context owned by one worker thread. ``run(fn, *args)`` calls ``fn(context, *args)`` there."""

    def __init__(self, host: Callable[..., Any]) -> None:
        self._request: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
        self._result: tuple[bool, Any] = (True, None)
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self.abandoned = ""
        self._host = host
        old = threading.stack_size()
        try:
            threading.stack_size(_STACK_BYTES)
            self._thread = threading.Thread(target=self._serve, name="nkreplay-js", daemon=True)
            self._thread.start()
        finally:
            threading.stack_size(old)
        self.context: Any = None
        self.run(self._make_context)

    def _make_context(self, _: Any) -> None:
        context = quickjs.Context()
        context.set_max_stack_size(1024 * 1024)
        context.add_callable("__nkr_host", self._safe_host)
        self.context = context

    def _safe_host(self, *args: Any) -> Any:
        if self.abandoned:  # the runtime has moved on: this context must not touch its nk or dispatcher
            return host_error("Error", f"the replay abandoned this JavaScript runtime after {self.abandoned}")
        try:
            result = self._host(*args)
        except BaseException as exc:
            return host_error("Error", f"internal error in the replay runtime: {type(exc).__name__}: {exc}")
        if type(result) is int and not -(2**31) <= result < 2**31:
            return float(result)  # the binding wraps integers to int32 silently
        return result

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

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(context, *args)`` on the worker; its result, or its exception raised here."""
        if self.abandoned:
            raise EngineAbandoned(self.abandoned)
        self._request = (fn, args)
        self._go.release()
        done = self._done
        try:
            while not done.acquire(True, _WAIT_SLICE):
                pass
        except BaseException as exc:  # a hang or Ctrl-C while JavaScript runs: the worker cannot be stopped
            if done.acquire(False):  # it finished just now after all
                raise
            self.abandoned = "a hang" if isinstance(exc, CallbackHung) else type(exc).__name__
            abandon_thread(self._thread, f"a JavaScript callback abandoned after {self.abandoned}")
            raise
        ok, value = self._result
        self._result = (True, None)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the worker (not possible once abandoned: it is still inside JavaScript)."""
        if not self.abandoned and self._thread.is_alive():
            self.run(lambda _: setattr(self, "context", None))  # the context dies on its own thread
            self._request = None
            self._go.release()
            self._thread.join(5)
