"""Find crashes before players do: generated matches, checks after every call, minimal recordings.

``fuzz(handler, FuzzOptions(...))`` searches generated matches (``_strategies``: hypothesis strategies of client
actions per ``FuzzProfile``; the action model is ``replay.realtime``'s, shared with live replay and serve) played
through ``MatchPlayer`` (``_actions``) as the call streams Nakama could make
(``_streams``), checked after every call (``_checks``), minimised (``_minimize``) and written as recordings.
``match_state_machine`` (``_stateful``) is the same search as a hypothesis state machine for your own tests.
Needs hypothesis (``pip install nakama-replay[fuzz]``), imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.fuzz._actions import MatchPlayer, play
    from replay.fuzz._checks import Invariant, MatchChecks
    from replay.fuzz._fuzz import Finding, FuzzOptions, FuzzReport, fuzz
    from replay.fuzz._minimize import reduce_actions, reduce_calls
    from replay.fuzz._parallel import fuzz_seeds
    from replay.fuzz._stateful import match_state_machine
    from replay.fuzz._strategies import (
        DEFAULT_PROFILE,
        FuzzProfile,
        by_version,
        call_streams,
        client_actions,
        load_profile,
    )
    from replay.realtime._actions import Action, Burst, Connect, Leave, Send, Signal, Terminate, Tick

__all__ = [
    "DEFAULT_PROFILE",
    "Action",
    "Burst",
    "Connect",
    "Finding",
    "FuzzOptions",
    "FuzzProfile",
    "FuzzReport",
    "Invariant",
    "Leave",
    "MatchChecks",
    "MatchPlayer",
    "Send",
    "Signal",
    "Terminate",
    "Tick",
    "by_version",
    "call_streams",
    "client_actions",
    "fuzz",
    "fuzz_seeds",
    "load_profile",
    "match_state_machine",
    "play",
    "reduce_actions",
    "reduce_calls",
]

__getattr__, __dir__ = lazy_exports(__name__)
