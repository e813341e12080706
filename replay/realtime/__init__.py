"""Nakama's realtime rules without I/O: the core that serve, playback and live replay loop around.

- ``Realtime`` (``_core``): sessions and matches; a client's envelope in, the envelopes to send and the sockets
  to close out (``SendEnvelope``, ``CloseSocket``), with Nakama's presence, join, leave, broadcast and
  error-code rules, and ``MatchStarted``/``MatchEnded`` for the loop that ticks matches;
- the client actions (``_actions``): ``Join``, ``Leave``, ``Send``, ``Burst``, ``Rpc``, ``Tick``, ``Signal``,
  ``Terminate``, one model for fuzz, live replay and serve, and ``apply_action`` that plays one on a match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.realtime._actions import (
        Action,
        Burst,
        Connect,
        Join,
        Leave,
        Rpc,
        Send,
        Signal,
        Terminate,
        Tick,
        apply_action,
    )
    from replay.realtime._core import (
        CloseSocket,
        Effect,
        MatchEnded,
        MatchStarted,
        Realtime,
        SendEnvelope,
        Session,
    )

__all__ = [
    "Action",
    "Burst",
    "CloseSocket",
    "Connect",
    "Effect",
    "Join",
    "Leave",
    "MatchEnded",
    "MatchStarted",
    "Realtime",
    "Rpc",
    "Send",
    "SendEnvelope",
    "Session",
    "Signal",
    "Terminate",
    "Tick",
    "apply_action",
]

__getattr__, __dir__ = lazy_exports(__name__)
