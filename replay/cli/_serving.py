"""What the long-running commands (proxy, serve, playback) share: wait for SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

__all__ = ["run_until_signal"]


async def run_until_signal(done: asyncio.Future[None] | None = None, ready: Callable[[], None] | None = None) -> None:
    """Return on SIGINT or SIGTERM (or when ``done`` completes), so the caller can shut down cleanly.
    ``ready`` runs once the signals are caught: a line it prints promises that Ctrl-C now stops cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if done is not None:
        waiters.append(asyncio.ensure_future(done))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
