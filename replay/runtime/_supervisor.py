"""The supervisor: handler work runs in a child process that the handler can neither block nor take down.

A ``HandlerProcess`` is one worker process (``python -c ...``, started with ``subprocess``) that runs jobs
one at a time: a job is a module-level function and its arguments (``"replay.runtime._supervisor:replay_job"``), its
result comes back pickled. While a job runs, the worker's ``replay.runtime._hang.Beacon`` tells the parent through
shared memory which callback at which tick is running; the parent only watches (no round trip per call).
The worker ends in one of these ways, each reported with the callback and tick it was in (``Death``):

- ``hung``: a callback ran past the hang timeout by wall clock. The in-process guard (``HangGuard``)
  inside the worker stops Python and Lua loops at the limit and the replay reports them as usual (a
  JavaScript loop is reported the same way, but its thread cannot be stopped: the worker is ended after
  that job, ``replay.runtime._hang.runaway_threads``); what it
  cannot stop (a callback blocked in C such as ``time.sleep(3600)`` or a catastrophic regular expression,
  a handler that swallows the interruption) the parent ends with SIGKILL ``GRACE`` seconds later;
- ``exited``: the worker exited (``sys.exit``, ``os._exit``) with a status;
- ``killed``: a signal ended it (a segfault: SIGSEGV);
- ``out-of-memory``: it reached ``max_memory`` (``RLIMIT_AS`` on Linux; a ``MemoryError`` inside a callback
  is reported the same way, with its traceback).

The worker ignores SIGINT, so a ``KeyboardInterrupt`` inside it can only come from the handler (a crash,
``replay.runtime._hang.interrupts_come_from_handlers``) while the user's Ctrl-C reaches the parent alone, which ends
the worker and exits 130. A worker that died is replaced on the next job; a worker is also ended when its
parent dies (Linux: ``PR_SET_PDEATHSIG``; elsewhere when it next reads a job). On systems without
``RLIMIT_AS`` enforcement (macOS) the memory cap is not applied and a warning says so once.

What crosses the pipe is pickled (``multiprocessing.connection``) between our two processes only: jobs
(our functions' names, options, paths) from the parent, results from the worker. A recording is read in the
worker as data and never reaches the pipe as code: its values are strings, bytes and numbers inside our
result objects. The one code that could write a hostile pickle is the handler itself, which runs with the
user's rights in the worker anyway (and is only ever a file the user named or one inside the recording's own
folder tree, ``replay.runtime._handlers.recorded_handler``).

Errors we raise on purpose inside the worker (``NakamaReplayError``: a bad recording, a handler that does
not load) are raised again in the parent with their type, message and attributes; an unexpected
exception becomes a ``RuntimeError`` carrying the worker's traceback.

``reproduce_supervised`` is ``replay.runtime.reproduce_isolated`` in a worker: its ``ReplayResult`` is
bit-identical to the in-process one (the same code runs, the result is pickled), and a death becomes the
result (``death_result``: outcome ``hung``/``exited``/``killed``/``out-of-memory``, the callback and
tick, the inputs of the last ticks read from the recording, the verdict against the recorded crash).
"""

from __future__ import annotations

import errno
import importlib
import mmap
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from recorder.errors import NakamaReplayError, OptionError
from replay.errors import HandlerDied, HandlerLoadError
from replay.runtime._hang import CALLBACKS, LOADING, Beacon, install_beacon, runaway_threads
from replay.runtime._interrupt import raise_if_interrupted

__all__ = [
    "DEATHS",
    "DEFAULT_MAX_MEMORY",
    "GRACE",
    "Death",
    "HandlerProcess",
    "Limits",
    "death_result",
    "format_size",
    "handler_traceback",
    "observing",
    "parse_size",
    "portable_error",
    "rebuild_error",
    "reproduce_supervised",
    "thread_worker",
]

#: The memory cap of a handler process unless told otherwise: far above any match state, far below the machine.
DEFAULT_MAX_MEMORY = 4 << 30
#: Seconds a handler may take to load at least, whatever the hang timeout (``Limits.load_timeout``).
LOAD_TIMEOUT = 60.0
#: Seconds past the hang timeout before the supervisor ends a callback that the in-process guard could not stop.
GRACE = 1.0
#: How a supervised handler process can end without handing back a result.
DEATHS = ("hung", "exited", "killed", "out-of-memory")

_LOADING_CODE = CALLBACKS.index(LOADING)
_START_TIMEOUT = 120.0  # seconds for a worker to start on a very busy machine
_WORKER = "import sys; from replay.runtime._supervisor import _worker_main; sys.exit(_worker_main(sys.argv[1:]))"


@dataclass(frozen=True, slots=True)
class Limits:
    """What the supervisor enforces: ``hang_timeout`` seconds per callback (None: no hang guard at all),
    ``max_memory`` bytes of address space (None: no cap), and ``load_timeout`` seconds to load the handler
    (import it, compile TypeScript, run ``InitModule``): loading legitimately takes longer than one callback,
    so it gets the larger of the two (the hang guard off: no limit either)."""

    hang_timeout: float | None = 5.0
    max_memory: int | None = DEFAULT_MAX_MEMORY
    load_timeout: float = LOAD_TIMEOUT

    @property
    def loading_limit(self) -> float | None:
        """Seconds the handler may take to load (None: no limit)."""
        return None if self.hang_timeout is None else max(self.hang_timeout, self.load_timeout)

    def __post_init__(self) -> None:
        if self.hang_timeout is not None and not self.hang_timeout > 0:
            raise ValueError(f"hang_timeout must be positive seconds or None, got {self.hang_timeout!r}")
        if not self.load_timeout > 0:
            raise ValueError(f"load_timeout must be positive seconds, got {self.load_timeout!r}")
        if self.max_memory is not None and self.max_memory <= 0:
            raise ValueError(f"max_memory must be positive bytes or None, got {self.max_memory!r}")


@dataclass(frozen=True, slots=True)
class Death:
    """How a supervised handler process ended without handing back a result, and where it was."""

    kind: str  # one of DEATHS
    callback: str  # the callback it was in (or the last one started); LOADING while loading the handler
    tick: int
    in_call: bool  # False: it died between callbacks, after ``callback``
    calls: int  # handler calls started in this run (the last one is where it died)
    loops: int  # match_loop calls started
    position: int  # recorded calls read
    run: int = 0  # which run of the job (a diff's side a is 0, side b 1)
    status: int | None = None  # exit status (exited)
    signal: int | None = None  # signal number (killed)
    hang_timeout: float | None = None
    max_memory: int | None = None
    ended: bool = True  # False: the process survived (a callback's MemoryError under the cap), the report is whole
    traceback: str = ""  # where its Python code was when it was ended or died of a signal (faulthandler), if known
    divergences: int = 0  # outcomes that had differed from the recording before it ended

    @property
    def signal_name(self) -> str:
        if self.signal is None:
            return ""
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    @property
    def where(self) -> str:
        if self.callback == LOADING:
            return "while loading the handler"
        if not self.callback:
            return "before the first callback"
        return f"{'in' if self.in_call else 'after'} {self.callback} at tick {self.tick}"

    @property
    def error_type(self) -> str:
        """The crash type of a death, named so that a crash marker's text gives it back (``replay.runtime._signature``
        reads ``Type:`` prefixes): ``Hang`` as the in-process guard says, ``HandlerExit``,
        ``FatalSignalError``, and ``MemoryError`` as Python says when an allocation fails under the cap."""
        return {"hung": "Hang", "exited": "HandlerExit", "killed": "FatalSignalError"}.get(self.kind, "MemoryError")

    def describe(self) -> str:
        """One sentence: what happened (the callback and tick come separately, see ``where``)."""
        if self.kind == "hung":
            if self.callback == LOADING:
                return f"the handler did not finish loading within {self.hang_timeout} s"
            return f"{self.callback or 'the handler'} did not return within {self.hang_timeout} s"
        if self.kind == "exited":
            return f"the handler process exited with status {self.status}"
        if self.kind == "killed":
            return f"the handler process was killed by {self.signal_name}"
        cap = f" (limit {format_size(self.max_memory)})" if self.max_memory else ""
        return f"the handler process ran out of memory{cap}"

    def crash(self) -> Any:
        """The death as the runtime's ``Crash`` (hung: the same text the in-process guard gives)."""
        from replay.runtime._result import Crash

        text = self.describe() if self.kind == "hung" else f"{self.error_type}: {self.describe()}"
        return Crash(self.callback, self.tick, text, self.error_type, self.traceback, self.kind == "hung")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "callback": self.callback,
            "tick": self.tick,
            "in_call": self.in_call,
            "calls": self.calls,
            "status": self.status,
            "signal": self.signal_name or None,
            "hang_timeout": self.hang_timeout,
            "max_memory": self.max_memory,
            "process_ended": self.ended,
        }


def parse_size(text: str) -> int:
    """``"512M"``, ``"4G"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (K, M, G, T are powers of 1024)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if t and t[-1] in "KMGT":
        scale = 1024 ** ("KMGT".index(t[-1]) + 1)
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (use bytes or a K, M, G suffix, e.g. 512M or 4G)") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a size must be positive, got {text!r}")
    return int(value * scale)


def format_size(n: int | None) -> str:
    if n is None:
        return "none"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % (scale // 16 or 1) == 0:
            value = n / scale
            return f"{value:g} {unit}iB"
    return f"{n} bytes"


# -- the parent side ------------------------------------------------------------------------------------


class HandlerProcess:
    """A supervised worker process running one job at a time (see the module docstring).

    ``call(target, *args)`` runs ``module:function(*args)`` in the worker and returns its result; a death
    raises ``HandlerDied`` (``.death``) and the next call starts a new worker. ``env`` replaces the
    worker's environment (a diff's ``PYTHONHASHSEED`` runs). Use it from the thread that created it: on
    Linux the worker is bound to that thread's life. ``on_poll``, when set, is handed the beacon's slots
    each time the supervisor looks at the worker (every ``poll`` seconds at most, 0.1 by default) while a
    job runs: progress displays read the tick there (``Beacon.progress_of``), at no cost to the worker."""

    def __init__(self, limits: Limits | None = None, env: dict[str, str] | None = None) -> None:
        self.limits = limits or Limits()
        self.env = env
        self.on_poll: Callable[[memoryview], None] | None = None
        self.starts = 0  # workers started so far: the first, then one after each death
        self.memory_cap = ""  # "" while enforced (or not asked for); else why it is not
        self._proc: subprocess.Popen[bytes] | None = None
        self._jobs: Connection | None = None
        self._results: Connection | None = None
        self._beacon: mmap.mmap | None = None
        self._slots: Any = None
        self._ready = False
        self._job = 0
        self._finalizer: Any = None
        self._stacks: Any = None
        self._stacks_from = 0  # where this job's part of the stack file starts

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker now (``call`` does it when needed; starting early overlaps its start-up)."""
        if self._proc is not None:
            return
        if os.name != "posix":
            raise NakamaReplayError(
                "the supervised handler process needs a POSIX system (Linux, macOS); run with --in-process"
            )
        fd, path = tempfile.mkstemp(prefix="nkreplay-beacon-")
        os.unlink(path)  # only the two processes hold it
        self._stacks = tempfile.TemporaryFile(prefix="nkreplay-stacks-")  # the worker's faulthandler writes here
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        stacks = self._stacks.fileno()
        try:
            os.ftruncate(fd, Beacon.SLOTS * 8)
            self._beacon = mmap.mmap(fd, Beacon.SLOTS * 8)
            self._slots = memoryview(self._beacon).cast("q")
            argv = [
                sys.executable,
                "-P",
                "-c",
                _WORKER,
                str(job_r),
                str(res_w),
                str(fd),
                str(stacks),
                str(self.limits.max_memory or 0),
            ]
            self._proc = subprocess.Popen(
                argv,
                pass_fds=(job_r, res_w, fd, stacks),
                stdin=subprocess.DEVNULL,
                stdout=_stderr_fd(),
                env=self.env,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            for f in (job_w, res_r):
                os.close(f)
            raise
        finally:
            for f in (job_r, res_w, fd):
                os.close(f)
        self._jobs = Connection(job_w, readable=False)
        self._results = Connection(res_r, writable=False)
        self._ready = False
        self.starts += 1
        self._finalizer = weakref.finalize(self, _release, self._proc, self._stacks)

    def close(self) -> None:
        """Ask the worker to leave; end it if it does not within two seconds."""
        proc = self._proc
        if proc is None:
            return
        try:
            assert self._jobs is not None
            self._jobs.send(None)
            proc.wait(timeout=2.0)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        self._end()

    def __enter__(self) -> HandlerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _end(self) -> None:
        """Kill the worker (if alive) and release everything that belonged to it."""
        proc = self._proc
        if proc is not None:
            _kill_quietly(proc)
            if self._finalizer is not None:
                self._finalizer.detach()
        for conn in (self._jobs, self._results):
            if conn is not None:
                conn.close()
        self._proc = self._jobs = self._results = None
        if self._slots is not None:
            self._slots.release()
            self._slots = None
        if self._beacon is not None:
            self._beacon.close()
            self._beacon = None
        if self._stacks is not None:
            self._stacks.close()
            self._stacks = None

    # -- jobs ---------------------------------------------------------------------------------------------
    def call(self, target: str, *args: Any) -> Any:
        """Run ``target`` (``"package.module:function"``) with ``args`` in the worker; its return value.

        Raises ``HandlerDied`` when the worker hung or died, the worker's ``NakamaReplayError`` as it was,
        ``RuntimeError`` for anything unexpected there. Ctrl-C (``KeyboardInterrupt``) ends the worker."""
        self.start()
        assert self._jobs is not None
        self._job += 1
        job = self._job
        message = (job, os.getcwd(), target, args)
        self._stacks_from = os.fstat(self._stacks.fileno()).st_size
        try:
            self._jobs.send(message)
        except (BrokenPipeError, ConnectionResetError):  # it died while idle: not this job's doing
            self._end()
            self.start()
            assert self._jobs is not None
            self._jobs.send(message)
        try:
            return self._watch(job)
        except NakamaReplayError as exc:
            if isinstance(exc, HandlerDied):
                self._end()
            raise
        except BaseException:  # Ctrl-C, or something broken: the worker is mid-job and cannot be reused
            self._end()
            raise

    def _watch(self, job: int) -> Any:
        limit = self.limits.hang_timeout
        poll = 0.1 if limit is None else max(0.01, min(0.1, limit / 10))
        assert self._results is not None and self._proc is not None
        slots = self._slots
        last_seq, since = (-1, -1), time.monotonic()
        while True:
            raise_if_interrupted()  # a Ctrl-C whose KeyboardInterrupt a finaliser swallowed
            if wait([self._results], timeout=poll):
                try:
                    message = self._results.recv()
                except (EOFError, OSError):
                    raise HandlerDied(self._death_of_exit()) from None
                kind = message[0]
                if kind == "ready":
                    self._ready = True
                    self.memory_cap = message[1]
                    if self.memory_cap:
                        _warn_once(f"the handler process runs without a memory cap: {self.memory_cap}")
                    continue
                if message[1] != job:
                    continue  # an answer to a job abandoned earlier (cannot happen: such workers are ended)
                if kind in ("ok", "error") and message[3]:
                    self._end()  # a thread in it could not be stopped (a hung JavaScript context): no job shares it
                if kind == "ok":
                    on_poll = self.on_poll or _observer
                    if on_poll is not None:
                        on_poll(slots)  # where the job ended
                    return message[2]
                if kind == "error":
                    raise rebuild_error(message[2])
                if kind == "oom":
                    raise HandlerDied(self._death("out-of-memory"))
                raise RuntimeError(f"unexpected error in the handler process:\n{message[2]}")
            if self._proc.poll() is not None:  # dead, though something else holds its end of the pipe
                raise HandlerDied(self._death_of_exit())
            on_poll = self.on_poll or _observer
            if on_poll is not None:
                on_poll(slots)
            seq = (slots[Beacon.RUN], slots[Beacon.CALLS])
            now = time.monotonic()
            if seq != last_seq:
                last_seq, since = seq, now
            elif slots[Beacon.IN_CALL] and limit is not None and now - since > self._limit_now() + GRACE:
                self._ask_for_stack()
                raise HandlerDied(self._death("hung"))

    def _limit_now(self) -> float:
        """The hang timeout of what the handler process is in now: a callback's, or loading's (longer)."""
        loading = self._slots[Beacon.CALLBACK] == _LOADING_CODE
        limit = self.limits.loading_limit if loading else self.limits.hang_timeout
        assert limit is not None
        return limit

    def _death(self, kind: str, status: int | None = None, sig: int | None = None) -> Death:
        s = self._slots
        code = s[Beacon.CALLBACK]
        return Death(
            kind,
            CALLBACKS[code] if 0 <= code < len(CALLBACKS) else "",
            int(s[Beacon.TICK]),
            bool(s[Beacon.IN_CALL]),
            int(s[Beacon.CALLS]),
            int(s[Beacon.LOOPS]),
            int(s[Beacon.POSITION]),
            int(s[Beacon.RUN]),
            status,
            sig,
            self.limits.loading_limit if code == _LOADING_CODE else self.limits.hang_timeout,
            self.limits.max_memory,
            traceback=self._stack(),
            divergences=int(s[Beacon.DIVERGENCES]),
        )

    def _ask_for_stack(self) -> None:
        """Have the hung worker's faulthandler write where it is (SIGUSR1; works inside C code and with the
        GIL held), and give it a moment to finish before it is killed."""
        assert self._proc is not None and self._stacks is not None
        try:
            os.kill(self._proc.pid, signal.SIGUSR1)
        except (OSError, AttributeError):
            return
        size, deadline = -1, time.monotonic() + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = os.fstat(self._stacks.fileno()).st_size
            if now > self._stacks_from and now == size:
                return
            size = now

    def _stack(self) -> str:
        """What the worker's faulthandler wrote during this job, as a traceback of the handler's thread."""
        if self._stacks is None:
            return ""
        self._stacks.seek(self._stacks_from)
        return handler_traceback(self._stacks.read(1 << 20).decode("utf-8", "replace"))

    def _death_of_exit(self) -> Death:
        proc = self._proc
        assert proc is not None
        try:
            code = proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            _kill_quietly(proc)
            code = proc.wait()
        if not self._ready:
            if self.limits.max_memory is not None and code != 0:
                raise OptionError(
                    "--max-memory",
                    format_size(self.limits.max_memory),
                    "the handler process cannot even start under this cap (it needs about 200 MiB of address "
                    "space before the handler runs): give it more",
                )
            raise RuntimeError(f"the handler process did not start (exit status {code}); its error is printed above")
        if self._slots[Beacon.OOM]:
            return self._death("out-of-memory")
        if code < 0:
            return self._death("killed", sig=-code)
        return self._death("exited", status=code)


_FAULT_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', re.M)
_REPLAY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OURS = (_REPLAY_DIR, os.path.join(os.path.dirname(_REPLAY_DIR), "recorder"))  # nakama-replay's own packages


def handler_traceback(dump: str) -> str:
    """A faulthandler dump (most recent call first, every thread) as a Python-style traceback of the thread
    that was running the handler: the one with frames outside nakama-replay's own packages (the others are
    the hang guard's watchdog and such). Frames of nakama-replay itself are left out, as in replay crashes."""
    best: list[tuple[str, str, str]] = []
    for section in re.split(
        r"^(?:Current thread|Thread) 0x[0-9a-fA-F]+ \(most recent call first\):$", dump, flags=re.M
    )[1:]:
        frames = [(m["file"], m["line"], m["func"]) for m in _FAULT_FRAME.finditer(section)]
        mine = [f for f in frames if not f[0].startswith(_OURS) and f[0] != "<string>"]  # <string>: the worker's -c
        if any(not f[0].startswith(_OURS) and "/python3" not in f[0] for f in frames):
            best = mine
            break
    if not best:
        return ""
    lines = [f'  File "{_display(file)}", line {line}, in {func}\n' for file, line, func in reversed(best)]
    return "Traceback (most recent call last, where the handler process was when it ended):\n" + "".join(lines)


def _display(path: str) -> str:
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


def _release(proc: subprocess.Popen[bytes], stacks: Any) -> None:
    """What a worker left behind when its ``HandlerProcess`` is forgotten without ``close()``."""
    _kill_quietly(proc)
    stacks.close()


def _kill_quietly(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            pass


def _stderr_fd() -> int | None:
    """The worker's standard output: our standard error (handler prints must not mix into ``--json``)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


_warned: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        warnings.warn(text, RuntimeWarning, stacklevel=3)


def portable_error(exc: NakamaReplayError) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
    """An error of ours as plain data that crosses processes (their ``__init__`` signatures differ)."""
    cls = type(exc)
    return cls.__module__, cls.__qualname__, exc.args, dict(vars(exc))


def rebuild_error(data: tuple[str, str, tuple[Any, ...], dict[str, Any]]) -> BaseException:
    """The worker's error again, with its type, message and attributes (its ``__init__`` is not rerun)."""
    module, qualname, args, attrs = data
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    exc = cls.__new__(cls)
    if not isinstance(exc, BaseException):
        raise TypeError(f"{module}.{qualname} is not an exception class")
    exc.args = args
    exc.__dict__.update(attrs)
    return exc


_observer: Callable[[memoryview], None] | None = None


@contextmanager
def observing(on_poll: Callable[[memoryview], None] | None) -> Iterator[None]:
    """``on_poll`` for every ``HandlerProcess`` of this process that has none of its own, inside the block:
    progress of code that starts its own handler processes (``slice``, ``view --against``)."""
    global _observer
    before, _observer = _observer, on_poll
    try:
        yield
    finally:
        _observer = before


# -- a worker per thread ----------------------------------------------------------------------------------

_local = threading.local()


def thread_worker(limits: Limits | None = None) -> HandlerProcess:
    """This thread's worker for ``limits`` (started on first use, replaced after a death, ended at exit):
    what batch jobs on any executor use, so each executor thread supervises its own handler process."""
    limits = limits or Limits()
    workers: dict[Limits, HandlerProcess] = getattr(_local, "workers", None) or {}
    _local.workers = workers
    worker = workers.get(limits)
    if worker is None:
        worker = workers[limits] = HandlerProcess(limits)
    return worker


# -- replays ----------------------------------------------------------------------------------------------


def replay_job(recording: str, handler: str | None, options: Any) -> Any:
    """(Runs in the worker.) ``replay.runtime.reproduce_isolated``."""
    from replay.runtime._isolation import reproduce_isolated

    return reproduce_isolated(recording, handler, options)


def reproduce_supervised(
    recording: str | os.PathLike[str],
    handler: str | os.PathLike[str] | None = None,
    options: Any = None,
    *,
    limits: Limits | None = None,
    process: HandlerProcess | None = None,
) -> Any:
    """Replay ``recording`` into ``handler`` (a path; None: the one the header names) in a supervised
    worker: ``process`` when given (it is reused), else a new one for this replay. The options' hang
    timeout is the supervisor's unless ``limits`` says otherwise. Returns a ``ReplayResult``; a death
    is the result's outcome (see ``death_result``)."""
    from replay.runtime._runtime import ReplayOptions

    options = options or ReplayOptions()
    if limits is None:
        limits = process.limits if process is not None else Limits(options.hang_timeout or None)
    recording = os.fspath(recording)
    spec = None if handler is None else os.fspath(handler)
    own = process is None
    worker = HandlerProcess(limits) if process is None else process
    try:
        try:
            result = worker.call("replay.runtime._supervisor:replay_job", recording, spec, options)
        except HandlerDied as died:
            return death_result(died.death, recording, spec, options)
        return mark_out_of_memory(result, worker.limits)
    finally:
        if own:
            worker.close()


def mark_out_of_memory(result: Any, limits: Limits) -> Any:
    """A callback that failed to allocate under the memory cap ran out of memory: say so in the outcome."""
    c = result.crash
    if limits.max_memory is None or c is None or not _is_memory_error(c):
        return result
    result.outcome = "out-of-memory"
    result.death = Death(
        "out-of-memory",
        c.callback,
        c.tick,
        True,
        result.calls_replayed,
        result.ticks_replayed,
        0,
        hang_timeout=limits.hang_timeout,
        max_memory=limits.max_memory,
        ended=False,
    )
    return result


def _is_memory_error(crash: Any) -> bool:
    """Python's ``MemoryError``, or Lua's "not enough memory" (its allocator failed under the cap)."""
    return crash.error_type == "MemoryError" or "not enough memory" in crash.error


def death_result(death: Death, recording: str, handler: str | None, options: Any) -> Any:
    """The ``ReplayResult`` of a replay whose handler process hung or died: outcome ``death.kind``, the
    crash at the callback and tick the beacon last showed, the inputs of the last ticks up to that call
    (read from the recording), the verdict against the recorded crash. What only the dead process knew
    (presences, logs, the divergences themselves) is not there; ``death`` says why."""
    from recorder.format import CrashMarker, WireEvent, open_recording
    from replay.runtime._handlers import split_spec
    from replay.runtime._result import ReplayResult, describe_call
    from replay.runtime._verdict import decide

    spec = handler
    if spec is None:
        with open_recording(recording) as rec:
            named = rec.header.handler
        spec = str(Path(recording).parent / named) if named else None
    shown = os.path.normpath(str(split_spec(spec)[0])) if spec else ""
    if death.callback == LOADING:
        what = death.describe() if death.kind == "hung" else f"{death.describe()} while it was being loaded"
        raise HandlerLoadError(shown or recording, what)
    crash = death.crash()
    calls: list[Any] = []
    markers: list[CrashMarker] = []
    with open_recording(recording, on_damage="stop") as rec:  # the intact part, as the child read it
        for e in rec.events():
            match e:
                case CrashMarker():
                    markers.append(e)
                case WireEvent():
                    pass
                case _ if len(calls) < death.position and (options.until_tick is None or e.tick <= options.until_tick):
                    calls.append(e)
        integrity = rec.integrity()
    recorded = markers[-1] if markers else None
    if recorded is not None and options.until_tick is not None and recorded.tick > options.until_tick:
        recorded = None
    window = [c for c in calls if c.tick >= crash.tick - options.last_ticks + 1]

    verdict = decide(
        crash,
        recorded,
        death.divergences,
        True,
        integrity,
        allow_incomplete=options.allow_incomplete,
        calls=death.calls,
        ticks=death.loops,
    )
    return ReplayResult(
        outcome=death.kind,
        reproduced=verdict.reproduced,
        verdict=verdict.sentence,
        ticks_replayed=death.loops,
        calls_replayed=death.calls,
        crash=crash,
        recorded_crash=recorded,
        stop_reason=death.kind,
        last_inputs=[describe_call(c) for c in window],
        divergence_count=death.divergences,
        recording=recording,
        handler=shown,
        death=death,
        status=verdict.status,
        mismatch=verdict.mismatch,
        integrity=integrity,
    )


# -- the worker side --------------------------------------------------------------------------------------


def _worker_main(argv: list[str]) -> int:
    """The worker: ``JOB_FD RESULT_FD BEACON_FD STACKS_FD MAX_MEMORY``; runs jobs until told to stop or orphaned."""
    import faulthandler

    job_fd, result_fd, beacon_fd, stacks_fd, max_memory = (int(a) for a in argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the user's Ctrl-C is the parent's to handle
    faulthandler.enable(file=stacks_fd, all_threads=True)  # a fatal signal writes where every thread was
    faulthandler.register(signal.SIGUSR1, file=stacks_fd, all_threads=True)  # the parent asks before it kills
    _die_with_parent()
    cap = _cap_memory(max_memory)
    try:
        beacon_map = mmap.mmap(beacon_fd, Beacon.SLOTS * 8)
        os.close(beacon_fd)
        beacon = Beacon(memoryview(beacon_map).cast("q"))
        install_beacon(beacon)
        jobs = Connection(job_fd, writable=False)
        results = Connection(result_fd, readable=False)
        results.send(("ready", cap))
    except MemoryError:
        return 1  # the cap leaves no room to start: the parent says so
    except OSError as exc:
        if exc.errno == errno.ENOMEM:
            return 1
        raise
    while True:
        try:
            job = jobs.recv()
        except (EOFError, OSError):
            return 0
        if job is None:
            return 0
        number, cwd, target, args = job
        beacon.start(number)
        try:
            os.chdir(cwd)
            module, _, name = target.partition(":")
            reply: tuple[Any, ...] = ("ok", number, getattr(importlib.import_module(module), name)(*args))
        except MemoryError:
            beacon.slots[Beacon.OOM] = 1
            reply = ("oom", number)
        except NakamaReplayError as exc:
            reply = ("error", number, portable_error(exc))
        except (Exception, KeyboardInterrupt):  # a bug of ours: the parent shows the traceback
            reply = ("bug", number, traceback.format_exc())
        for stream in (sys.stdout, sys.stderr):  # what the handler printed, before the parent moves on
            stream.flush()
        if reply[0] in ("ok", "error"):  # a thread left running (a hung JavaScript context): end this worker
            reply = (*reply, bool(runaway_threads()))
        try:
            results.send(reply)
        except MemoryError:
            beacon.slots[Beacon.OOM] = 1
            return 1
        except Exception as exc:  # e.g. a result that does not pickle
            results.send(("bug", number, f"the result could not be sent back: {type(exc).__name__}: {exc}"))


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent (thread) that started it ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(0)  # the parent is already gone
    except (OSError, AttributeError):
        pass


def _cap_memory(max_memory: int) -> str:
    """Cap the address space; "" when done (or not asked), else why it could not be."""
    if max_memory <= 0:
        return ""
    # glibc loads libgcc_s the first time a thread exits; under a cap that is used up it cannot, and aborts
    # the process ("libgcc_s.so.1 must be installed for pthread_exit to work"): let one thread exit first
    warm_up = threading.Thread(target=lambda: None)
    warm_up.start()
    warm_up.join()
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and max_memory > hard:
            max_memory = hard
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, hard))
    except (ImportError, ValueError, OSError, AttributeError) as exc:
        return f"RLIMIT_AS cannot be set here ({type(exc).__name__}: {exc})"
    if sys.platform == "darwin":
        return "macOS does not enforce RLIMIT_AS"
    return ""
