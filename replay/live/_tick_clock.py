"""Where a live match's loops fall on the client's clock.

A server ticks at a fixed period ``p = 1 / tick_rate`` (Nakama's Go ticker; ``nakama-replay serve`` keeps a
fixed grid too), so loop ``k`` is seen by a client at ``t0 + k * p`` plus a delay (the loop's own work before
it broadcasts, and the network). ``t0`` starts from an estimate (Nakama runs loop 0 one period after
``match_create`` returns; for a match joined while running, a guess whose phase the first arrival sets)
and is phase-locked on arrivals of broadcasts that only ``match_loop`` sends: the earliest arrival relative
to the grid is the best estimate, since delays only make arrivals later. Arrivals more than half a period
off the grid are not trusted for the phase.
"""

from __future__ import annotations

import math

__all__ = ["TickClock", "EARLY"]

#: An arrival up to this fraction of a period before the estimated grid still counts for that loop.
EARLY = 0.2


class TickClock:
    """Client-clock times of a live match's loops; ``t0`` is loop 0."""

    def __init__(self, tick_rate: int, t0: float, *, locked: bool = True) -> None:
        if not 1 <= tick_rate <= 60:
            raise ValueError(f"tick rate must be 1..60, got {tick_rate}")
        self.period = 1.0 / tick_rate
        self.t0 = t0
        self.initial = t0
        self.observations = 0  # arrivals that moved or confirmed the phase
        # locked: t0 is an upper bound (a create reply); unlocked: a guess whose phase the first arrival sets
        self.locked = locked

    def time_of(self, tick: float) -> float:
        """When loop ``tick`` is seen (fractions allowed: ``tick - 0.6`` is inside the window before it)."""
        return self.t0 + tick * self.period

    def tick_of_arrival(self, t: float) -> int:
        """The loop that sent a broadcast seen at ``t``."""
        return math.floor((t - self.t0) / self.period + EARLY)

    def landing_of_send(self, t: float) -> int:
        """The first loop after ``t``: where a message sent at ``t`` lands."""
        return math.floor((t - self.t0) / self.period) + 1

    def observe(self, t: float) -> bool:
        """Lock the phase on a loop broadcast seen at ``t``; True when the arrival was usable."""
        if not self.locked:  # the first arrival sets the phase: it is the loop nearest to the guess
            k = round((t - self.t0) / self.period)
            self.t0, self.locked = t - k * self.period, True
            self.observations += 1
            return True
        k = self.tick_of_arrival(t)
        residual = t - self.t0 - k * self.period
        if residual >= 0.5 * self.period:
            return False
        self.observations += 1
        if residual < 0:
            self.t0 = t - k * self.period
        return True
