"""The one progress display of every command: on stderr, never stdout (``--json`` stays clean).

On a terminal a live tqdm bar (done of total, rate, time left), shown only once the work has lasted
``DELAY`` seconds and erased when it ends, so a quick command prints nothing; off a terminal a plain line
every ``interval`` seconds (``NAKAMA_REPLAY_PROGRESS_INTERVAL``, default 5; the tests set it low, which
also shortens the bar's delay to it), the same words as the bar without the bar, and a last line when the
work ends if any was printed. Nothing at all when the command's ``--no-progress`` is given
(``Progress(enabled=False)``).

Replays report their ticks through the supervisor's beacon (``replay.runtime._hang``): ``replay_watch``
turns its slots into updates of a ``Progress`` (the supervisor calls it as it polls the handler process;
``watching`` does the same for an in-process replay), so progress adds nothing to the replay's own loop.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

__all__ = [
    "DELAY",
    "INTERVAL_ENV",
    "Progress",
    "bytes_read",
    "interval",
    "reading",
    "replay_progress",
    "replay_watch",
]

#: seconds of work before the terminal bar appears (quicker commands show nothing)
DELAY = 1.0
#: the environment variable with the seconds between plain progress lines off a terminal
INTERVAL_ENV = "NAKAMA_REPLAY_PROGRESS_INTERVAL"
_DEFAULT_INTERVAL = 5.0
_UNKNOWN = object()


def interval() -> float:
    """Seconds between plain progress lines: ``$NAKAMA_REPLAY_PROGRESS_INTERVAL`` or 5."""
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text) if text else _DEFAULT_INTERVAL
    except ValueError:
        return _DEFAULT_INTERVAL
    return value if value >= 0 else _DEFAULT_INTERVAL


class Progress:
    """Progress of one piece of work on stderr: ``label``, ``n`` done of ``total`` (None: unknown) ``unit``s,
    the rate and the time left, and a short ``status``. Update it with ``set`` (absolute) or ``advance``;
    ``note`` prints a line that stays; ``close`` (or the ``with`` block) ends it. Thread-safe."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "tick",
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.n = 0
        self.status = ""
        self.interval = interval()
        self.lines = 0  # plain lines printed
        self._lock = threading.RLock()
        self._start = self._last = time.monotonic()
        self._bar: Any = None
        if enabled and self.tty:
            self._bar = _bar(label, total, unit, self.stream)

    # -- updates --------------------------------------------------------------------------------------------
    def set(
        self,
        n: int,
        *,
        total: Any = _UNKNOWN,
        label: str | None = None,
        status: str | None = None,
        restart: bool = False,
    ) -> None:
        """``n`` done (of ``total``, when it changes); ``label`` and ``status`` replace the shown ones;
        ``restart`` starts the rate and the time left afresh (a new pass over the recording)."""
        if not self.enabled:
            return
        with self._lock:
            if total is not _UNKNOWN:
                self.total = total
            if label is not None:
                self.label = label
            if status is not None or restart:
                status = status or ""
                self.status = status
            bar = self._bar
            if bar is not None:
                if restart:
                    bar.reset(self.total)
                    self.n = 0
                elif total is not _UNKNOWN:
                    bar.total = self.total
                if label is not None:
                    bar.set_description_str(label, refresh=False)
                if status is not None:
                    bar.set_postfix_str(status, refresh=False)
                bar.update(n - self.n)
                self.n = n
                return
            if restart:
                self._start = time.monotonic()
            self.n = n
            self._plain()

    def advance(self, k: int = 1, *, status: str | None = None) -> None:
        """``k`` more done."""
        if self.enabled:
            with self._lock:
                self.set(self.n + k, status=status)

    def note(self, line: str) -> None:
        """A line that stays on stderr (above the bar on a terminal); nothing with progress off."""
        if not self.enabled:
            return
        with self._lock:
            if self._bar is not None:
                self._bar.write(line, file=self.stream)
            else:
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        """The end: the bar is erased; off a terminal a last line, if the work printed any before."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self.enabled and self.lines:
                self._plain(force=True)
            self.enabled = False

    @contextmanager
    def following(self, position: Callable[[], int | None], period: float = 0.2) -> Iterator[Progress]:
        """Show ``position()`` (bytes read so far, ...) every ``period`` seconds from a thread while the
        block runs, so the reading loop itself does nothing for its progress; closes at the end."""
        if not self.enabled:
            with self:
                yield self
            return
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(period):
                self._follow(position)

        thread = threading.Thread(target=follow, name="nkreplay-progress", daemon=True)
        thread.start()
        try:
            with self:
                yield self
                stop.set()
                thread.join()
                self._follow(position)
        finally:
            stop.set()
            thread.join()

    def _follow(self, position: Callable[[], int | None]) -> None:
        try:
            n = position()
        except (OSError, ValueError):  # a stream closed or not seekable any more: the work is ending
            return
        if n is not None:
            self.set(min(n, self.total) if self.total is not None else n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the plain line ---------------------------------------------------------------------------------------
    def line(self) -> str:
        """The current progress as one line (what the plain output prints)."""
        from tqdm.std import tqdm

        elapsed = time.monotonic() - self._start
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        shape = "{desc}: {n_fmt}/{total_fmt} " + units + " [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
        if self.total is None:
            shape = "{desc}: {n_fmt} " + units + " [{elapsed}, {rate_fmt}{postfix}]"
        total = self.total if self.total is None or self.total >= self.n else self.n
        scaled = self.unit == "B"  # bytes: 12.3MB/223MB, rates in MB/s
        if scaled:
            shape = shape.replace("{n_fmt}/{total_fmt} " + units, "{n_fmt}B/{total_fmt}B").replace(
                "{n_fmt} " + units, "{n_fmt}B"
            )
        meter = tqdm.format_meter(
            self.n,
            total,  # type: ignore[arg-type]  # None: no total known (tqdm takes it; its stub says float)
            elapsed,
            prefix=self.label,
            unit=self.unit,
            bar_format=shape,
            postfix=self.status or None,
            unit_scale=scaled,
            unit_divisor=1024,
        )
        return str(meter)

    def _plain(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.lines += 1
        self.stream.write(self.line() + "\n")
        self.stream.flush()


def bytes_read() -> Callable[[], int | None]:
    """Bytes this process has read since the call (Linux ``/proc/self/io``; None elsewhere): the position
    of a command that reads one big input through code that keeps its file to itself."""
    try:
        with open("/proc/self/io", "rb") as f:
            start = _rchar(f.read())
    except OSError:
        return lambda: None

    def position() -> int | None:
        with open("/proc/self/io", "rb") as f:
            return _rchar(f.read()) - start

    return position


def _rchar(text: bytes) -> int:
    for line in text.splitlines():
        if line.startswith(b"rchar:"):
            return int(line.split()[1])
    raise OSError("no rchar in /proc/self/io")


def reading(
    label: str, locations: Sequence[str], *, enabled: bool, position: Callable[[], int | None] | None = None
) -> Any:
    """A ``Progress`` in bytes of the inputs at ``locations`` (their sizes add up to the total) following
    ``position`` (default: ``bytes_read()``, about what was read of them); use as ``with reading(...):``."""
    total: int | None = None
    if enabled:
        from recorder.storage import open_input

        try:
            total = 0
            for location in locations:
                f, size = open_input(location)
                f.close()
                total += size
        except Exception:  # standard input, a URL that cannot be asked: the command's own reading says why
            total = None
    progress = Progress(label, total or None, unit="B", enabled=enabled)
    return progress.following(position or bytes_read())


def _bar(label: str, total: int | None, unit: str, stream: TextIO) -> Any:
    from tqdm.std import tqdm

    if TYPE_CHECKING:
        base = tqdm[Any]  # generic in its stubs, not subscriptable at runtime
    else:
        base = tqdm

    class _Bar(base):
        monitor_interval = 0  # no tqdm monitor thread: our updates come from one place

    return _Bar(
        total=total,
        desc=label,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024,
        file=stream,
        delay=min(DELAY, interval()),
        mininterval=0.2,
        leave=False,
        dynamic_ncols=True,
        smoothing=0.1,
    )


# -- replays ---------------------------------------------------------------------------------------------------


def replay_watch(progress: Progress, passes: Sequence[str] = ("replay",)) -> Callable[[memoryview], None]:
    """A ``HandlerProcess.on_poll`` (or ``watching`` callback) showing the replay's tick in ``progress``,
    with the label of the pass it is in (``passes``: a diff's sides, ...); a pass number past the last
    means the runs are being compared."""
    from replay.runtime._hang import Beacon

    current = [-1]

    def label(number: int) -> str:
        return passes[number] if len(passes) == 1 else f"{passes[number]} ({number + 1}/{len(passes)})"

    def on_poll(slots: memoryview) -> None:
        number, tick = Beacon.progress_of(slots)
        if number >= len(passes) > 1:  # the last pass ended (where its tick shows): comparing
            if number != current[0]:
                current[0] = number
                progress.set(max(tick, 0), label=label(len(passes) - 1), status="comparing the runs")
            return
        if number != current[0]:
            first, current[0] = current[0] < 0, max(number, 0)
            progress.set(max(tick, 0), label=label(current[0]), restart=not first)
        else:
            progress.set(max(tick, 0))

    return on_poll


@contextmanager
def replay_progress(
    recording: str,
    *,
    enabled: bool,
    passes: Sequence[str] = ("replay",),
    until_tick: int | None = None,
    worker: Any = None,
    supervised: bool = False,
    stream: TextIO | None = None,
    tty: bool | None = None,
) -> Iterator[Progress]:
    """Progress of the replays of ``recording`` in the ``with`` block: through ``worker``'s polls (a
    ``HandlerProcess``), through the polls of the handler processes the block starts (``supervised``), or
    else an in-process beacon watch. The total is the recording's last
    tick (``until_tick`` when lower), read from its tail. ``stream`` and ``tty``: as for ``Progress``."""
    from recorder.format._nkrec import last_tick_hint
    from replay.runtime._hang import watching

    total = last_tick_hint(recording) if enabled else None
    if total is not None and until_tick is not None:
        total = min(total, until_tick)
    progress = Progress(passes[0], total, enabled=enabled, stream=stream, tty=tty)
    on_poll = replay_watch(progress, passes) if enabled else None
    try:
        if worker is not None:
            worker.on_poll = on_poll
            try:
                yield progress
            finally:
                worker.on_poll = None
        elif supervised:  # handler processes the code in the block starts itself
            from replay.runtime._supervisor import observing

            with observing(on_poll):
                yield progress
        else:
            with watching(on_poll):
                yield progress
    finally:
        progress.close()
