"""Nakama's realtime rules without I/O: the core that serve, playback and live replay loop around.

- ``Realtime`` (``_core``): sessions and matches; a client's envelope in, the envelopes to send and the sockets
  to close out (``SendEnvelope``, ``CloseSocket``), with Nakama's presence, join, leave, broadcast and
  error-code rules, and ``MatchStarted``/``MatchEnded`` for the loop that ticks matches (``nakama-replay serve``);
- ``ScriptPlayer`` (``_playback``): one recorded socket's server side played to a client (``playback``);
- ``ClientView`` (``_client``): the same rules read from a client's end, for a replay into a real Nakama
  (``live``): join verdicts, presence events, the crash close;
- the client actions (``_actions``): ``Connect``, ``Leave``, ``Send``, ``Burst``, ``Rpc``, ``Tick``, ``Signal``,
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
        Leave,
        Rpc,
        Send,
        Signal,
        Terminate,
        Tick,
        apply_action,
    )
    from replay.realtime._client import ClientView
    from replay.realtime._core import (
        CloseSocket,
        Effect,
        MatchEnded,
        MatchStarted,
        Realtime,
        SendEnvelope,
        Session,
    )
    from replay.realtime._playback import ScriptPlayer

__all__ = [
    "Action",
    "Burst",
    "ClientView",
    "CloseSocket",
    "Connect",
    "Effect",
    "Leave",
    "MatchEnded",
    "MatchStarted",
    "Realtime",
    "Rpc",
    "ScriptPlayer",
    "Send",
    "SendEnvelope",
    "Session",
    "Signal",
    "Terminate",
    "Tick",
    "apply_action",
]

__getattr__, __dir__ = lazy_exports(__name__)
