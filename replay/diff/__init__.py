"""Where two runs of a match first go apart.

``diff_recorded`` (a replay against its recording), ``diff_against`` (two handler versions) and
``diff_determinism`` (a handler against itself) compare call by call (``_calls``) and return a ``MatchDiff``.
States are compared in canonical form (``_state``: ``first_divergence``, ``field_diff``, ``diff_trajectories``)
by small numba kernels behind validating functions (``_kernels``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.diff._calls import MatchDiff, diff_against, diff_determinism, diff_recorded
    from replay.diff._state import (
        MISSING,
        FieldDiff,
        StateDivergence,
        Tolerance,
        diff_trajectories,
        encode_states,
        field_diff,
        first_divergence,
        trajectory_digests,
    )

__all__ = [
    "MISSING",
    "FieldDiff",
    "MatchDiff",
    "StateDivergence",
    "Tolerance",
    "diff_against",
    "diff_determinism",
    "diff_recorded",
    "diff_trajectories",
    "encode_states",
    "field_diff",
    "first_divergence",
    "trajectory_digests",
]

__getattr__, __dir__ = lazy_exports(__name__)
