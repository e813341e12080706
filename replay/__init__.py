"""replay: re-feed a recording into a handler, deterministically, and say whether the crash came back.

The packages, in the order a crash report walks them:

- ``replay.runtime``: the in-process match runtime (``reproduce``), handler loading, the supervisor, verdicts;
- ``replay.lua``: Nakama Lua modules in that runtime; ``replay.gocompat``: Go's behaviour the runtimes mirror;
- ``replay.diff``: where two runs first go apart (states, calls, outcomes);
- ``replay.live``: real sockets: ``serve``, playback, a recording into a live Nakama, wire conversion;
- ``replay.fuzz``: generated matches that find crashes before players do;
- ``replay.regression``: expectations, the pytest plugin, run-all, bisect;
- ``replay.cli``: the ``nakama-replay`` command; ``replay.errors``: the exception tree.

The names below are the most used entry points; every subpackage exports its own API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.diff import MatchDiff, diff_against, diff_determinism, diff_recorded
    from replay.errors import NakamaReplayError
    from replay.runtime import (
        CrashSignature,
        Limits,
        MatchRuntime,
        ReplayOptions,
        ReplayResult,
        load_handler,
        reproduce,
        reproduce_supervised,
    )

__all__ = [
    "CrashSignature",
    "Limits",
    "MatchDiff",
    "MatchRuntime",
    "NakamaReplayError",
    "ReplayOptions",
    "ReplayResult",
    "diff_against",
    "diff_determinism",
    "diff_recorded",
    "load_handler",
    "reproduce",
    "reproduce_supervised",
]

__getattr__, __dir__ = lazy_exports(__name__)
