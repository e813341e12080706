"""What clients (and the server on its own) do to a match: one model for fuzz, live replay and serve.

A fuzzer generates these (``replay.fuzz``: ``user`` is the index of a fuzzed user), a live replay's script
holds them with the recorded tick they are meant for (``replay.live._script``: ``user`` is a recorded
session's key) and sends each over a socket, and serve's core (``replay.realtime._core``) turns each
client envelope into one (``user`` is the session id). ``apply_action`` plays one on a
``replay.runtime.MatchDriver`` as Nakama would, for a presence the caller has resolved:

- ``Connect``: ``match_join_attempt`` and, when accepted, ``match_join``; ``duplicate``: the join request
  arrived twice, so two attempts run before the join (fuzz). In the fuzzer each ``Connect`` opens a new
  session of the user (a reconnect when the user still has one in the match); its ``kind`` is "join".
- ``Leave``: one of the user's sessions leaves with ``reason``: 3 (``match_leave``, or a kick), 4 (the socket
  closed: ``kind`` "disconnect") or 0 (Nakama's expired join marker).
- ``Send`` / ``Burst``: messages queued for the next loop (beyond the queue size Nakama drops them);
  ``targets`` are the presences a client named in its ``match_data_send`` (a relayed-match field an
  authoritative match ignores).
- ``Rpc``: a client's RPC (live replay); it does not reach the match runtime.
- ``Tick`` (loops), ``Signal`` (``match_signal``) and ``Terminate`` (``match_terminate``) are the server's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from recorder.format import JoinAttemptCall, Presence, PresenceReason

__all__ = [
    "Connect",
    "Leave",
    "Send",
    "Burst",
    "Rpc",
    "Tick",
    "Signal",
    "Terminate",
    "Action",
    "apply_action",
]

Who = int | str  # a fuzzed user's index, a recorded session's key, or a live session id


@dataclass(frozen=True, slots=True)
class Connect:
    """``user``'s client joins the match with ``metadata`` (``match_join``; fuzz: on a new session)."""

    user: Who
    metadata: dict[str, str] = field(default_factory=dict)
    duplicate: bool = False
    kind: ClassVar[str] = "join"


@dataclass(frozen=True, slots=True)
class Leave:
    """One of ``user``'s sessions leaves (``session``: "oldest" or "latest", for a user with several)."""

    user: Who
    reason: int = PresenceReason.DISCONNECT
    session: str = "oldest"

    @property
    def kind(self) -> str:
        """``disconnect`` (the socket closes) for reason 4, else ``leave`` (a ``match_leave``)."""
        return "disconnect" if self.reason == PresenceReason.DISCONNECT else "leave"


@dataclass(frozen=True, slots=True)
class Send:
    """One message from one of ``user``'s sessions (``session``: "latest" or "oldest")."""

    user: Who
    op_code: int
    data: bytes | None = None
    session: str = "latest"
    reliable: bool = True
    targets: tuple[str, ...] = field(default=(), repr=False)  # only a replayed wire recording's sends name any
    kind: ClassVar[str] = "send"


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` copies of one message from the user's latest session, in one tick."""

    user: Who
    op_code: int
    data: bytes | None
    count: int
    kind: ClassVar[str] = "send"


@dataclass(frozen=True, slots=True)
class Rpc:
    """``user``'s client calls RPC ``id`` with ``payload`` over its socket."""

    user: Who
    id: str
    payload: str = ""
    kind: ClassVar[str] = "rpc"


@dataclass(frozen=True, slots=True)
class Tick:
    """``n`` match loops."""

    n: int = 1
    kind: ClassVar[str] = "tick"


@dataclass(frozen=True, slots=True)
class Signal:
    """``match_signal`` with ``data`` (``nk.match_signal`` elsewhere on the server, or a signal RPC)."""

    data: str = ""
    kind: ClassVar[str] = "signal"


@dataclass(frozen=True, slots=True)
class Terminate:
    """Server shutdown: ``match_terminate`` with a grace period (0 stops the match after it)."""

    grace_seconds: int = 0
    kind: ClassVar[str] = "terminate"


Action = Connect | Leave | Send | Burst | Rpc | Tick | Signal | Terminate


def apply_action(
    driver: Any, action: Action, presence: Presence | None = None, vars: dict[str, str] | None = None
) -> Any:
    """Play ``action`` on ``driver`` (a ``MatchDriver``) for ``presence`` (the session that acts; needed by
    Connect, Leave, Send and Burst). Returns what the driver returns: the joined presence or None (Connect), the
    last step (Tick, Leave, Signal, Terminate), whether the message was queued (Send); None for an Rpc."""
    match action:
        case Tick(n=n):
            return driver.tick(max(1, n))
        case Signal(data=text):
            return driver.signal(text)
        case Terminate(grace_seconds=grace):
            return driver.terminate(grace)
        case Rpc():
            return None
    if presence is None:
        raise TypeError(f"{type(action).__name__} needs the presence of the session that acts")
    match action:
        case Connect(metadata=metadata, duplicate=duplicate):
            if duplicate:
                driver._apply(JoinAttemptCall(driver.runtime.tick, presence, dict(metadata), vars=dict(vars or {})))
                if driver.stopped:
                    return None
            return driver.join(presence, dict(metadata), dict(vars or {}))
        case Leave(reason=reason):
            return driver.leave(presence, reason)
        case Send(op_code=op, data=data, reliable=reliable):
            return driver.send(presence, op, data, reliable)
        case Burst(op_code=op, data=data, count=count):
            return all([driver.send(presence, op, data) for _ in range(max(1, count))])
    raise TypeError(f"not a client action: {action!r}")
