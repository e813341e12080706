"""Real-time tests on a shared machine: watch the test's own event loop for stalls, run again while it
stalled, and skip (saying why) when it kept stalling.

A live replay places each client action in the middle of a tick period; where a message lands is exact
only while nothing in the process (serve, the proxy, the clients: one event loop) stalls for a good part of
a period. A run watches that loop with ``StallWatch`` around its real-time part; ``timely`` runs it again
while the worst stall exceeded a quarter period; ``require_timely`` skips a test that compares placements
exactly when even the last run stalled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def longest_stall(stop: asyncio.Event) -> float:
    """How much later than asked this event loop woke from a 5 ms sleep at worst until ``stop``: everything
    on the loop was at least that late at some moment."""
    loop, worst = asyncio.get_running_loop(), 0.0
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.005)
        worst = max(worst, loop.time() - t - 0.005)
    return worst


class StallWatch:
    """``async with StallWatch() as watch: ...``; then ``watch.worst``: the longest stall inside the block."""

    worst = 0.0

    async def __aenter__(self) -> StallWatch:
        self._done = asyncio.Event()
        self._task = asyncio.create_task(longest_stall(self._done))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        self.worst = await self._task


def timely(
    make_run: Callable[[int], Awaitable[tuple[Any, float]]], rate: int, *, tries: int = 3, timeout: float = 60.0
) -> tuple[Any, float]:
    """The last of up to ``tries`` runs of ``make_run(attempt)`` (each gives its result and its worst stall,
    measured with ``StallWatch`` around what must be timely), run again while the stall exceeded a quarter
    of a ``rate`` Hz period."""
    for attempt in range(tries):
        result, stall = asyncio.run(asyncio.wait_for(make_run(attempt), timeout))
        if stall <= limit(rate):
            break
    return result, stall


def limit(rate: int) -> float:
    """The worst stall after which placements are still exact: a quarter of a period."""
    return 0.25 / rate


def require_timely(stall: float, rate: int, tries: int = 3) -> None:
    """Skip, saying why, when the run stalled longer than ``limit(rate)`` (after ``tries`` tries)."""
    if stall > limit(rate):
        pytest.skip(
            f"this machine stalled the real-time run for {stall * 1000:.0f} ms ({tries} tries; more than "
            f"{limit(rate) * 1000:.0f} ms): where a message lands is not exact then, so the comparison would "
            "test the machine's load"
        )
