"""The server's side of one recorded socket, played to a real client, without I/O (``nakama-replay playback``).

A ``SocketScript`` is what the server sent one recorded socket (``Step``: an envelope, its offset after the
socket opened, and the kind of client request it answers) and how the socket ended. ``ScriptPlayer`` holds
where the play is: ``receive`` takes each frame from the client (a ``ping`` gets its ``pong`` at once, a
request with a cid is noted under its kind, malformed input (a binary frame too) closes the socket as Nakama
does: 1000 "received malformed payload"); ``ready(step)`` says whether a reply's request has arrived, and ``outgoing(step)`` is
the recorded envelope with the client's cid in place of the recorded one. The I/O layer
(``replay.live._playback``) keeps the clock: when each step is due and how long a reply waits.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from recorder.wire import protocol as P
from replay.realtime._core import CloseSocket, Effect, SendEnvelope

__all__ = ["Step", "SocketScript", "ScriptPlayer"]


@dataclass(frozen=True, slots=True)
class Step:
    """One server->client envelope: ``offset`` seconds after the socket opened; ``reply_to`` is the kind of
    the client request it answers ("" when unsolicited)."""

    offset: float
    envelope: dict[str, Any]
    reply_to: str = ""


@dataclass(frozen=True, slots=True)
class SocketScript:
    name: str
    user_id: str = ""
    username: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    close: tuple[float, int | None, str] | None = None  # server close: (offset, code, reason)
    client_closes: bool = False


class ScriptPlayer:
    """One recorded socket being played (see the module docstring). ``closed`` once the player closed it
    (malformed input); ``violation`` says why."""

    def __init__(self, script: SocketScript) -> None:
        self.script = script
        self.requests: dict[str, deque[str]] = defaultdict(deque)  # request kind -> the client's cids, in order
        self.closed = False
        self.violation: P.Violation | None = None
        self._out: list[Effect] = []

    def take(self) -> list[Effect]:
        """What to send or close now, in order."""
        out, self._out = self._out, []
        return out

    def receive(self, text: str | bytes) -> None:
        """A frame from the client."""
        if self.closed:
            return
        parsed = P.parse(text) if isinstance(text, str) else P.Violation("binary frame on a JSON socket")
        if isinstance(parsed, P.Violation):
            self.closed, self.violation = True, parsed
            self._out.append(CloseSocket(self.script.name, P.CLOSE_NORMAL, parsed.close_reason))
        elif parsed.kind == "ping":
            self._out.append(SendEnvelope(self.script.name, P.Envelope(P.Pong(), parsed.cid)))
        elif parsed.cid:
            self.requests[parsed.kind].append(parsed.cid)

    def ready(self, step: Step) -> bool:
        """Whether ``step`` can go out: unsolicited, or the request it answers has arrived."""
        return not step.reply_to or bool(self.requests[step.reply_to])

    def outgoing(self, step: Step) -> tuple[dict[str, Any], bool]:
        """The envelope to send for ``step`` and whether it answers a request the client made (then it carries
        that request's cid; a reply whose request never came goes out as recorded)."""
        if step.reply_to and self.requests[step.reply_to]:
            return {**step.envelope, "cid": self.requests[step.reply_to].popleft()}, True
        return step.envelope, not step.reply_to
