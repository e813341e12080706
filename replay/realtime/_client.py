"""What a client learns from a Nakama server's envelopes and closes, without I/O (live replay's side).

The same rules ``Realtime`` applies as a server, read from the client's end of a socket to a real Nakama (or
serve): a ``match`` reply is a join accepted (its ``self`` is the session's presence), an ``error`` reply a join
refused (code and message); a member's ``match_join`` answered with error 4 means the match is gone; a
presence event's joins tell that a join has reached the match, its leaves naming the session a kick; a close
with 1000 "server-side session disconnect" is Nakama's answer to a handler error, and when every socket in the
match got one, the match crashed. ``ClientView`` keeps one socket's view; ``replay.live._feed`` is the loop.
Envelopes stay JSON objects here (what the run records), read leniently: a real server may add fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from recorder.wire import protocol as P

__all__ = ["ClientView", "Seen", "JoinVerdict", "join_verdict", "probe_verdict", "crash_close", "match_crashed"]


@dataclass(frozen=True, slots=True)
class Seen:
    """What one envelope from the server says: the ``cid`` it answers ("" for none), the sessions whose
    joins it announces, and its ``match_data`` body (None when it is something else)."""

    cid: str = ""
    joins: tuple[str, ...] = ()
    match_data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JoinVerdict:
    """A ``match_join`` reply read: ``joined`` with the session's id, or refused with ``detail``."""

    joined: bool
    session_id: str = ""
    detail: str = ""


def _error_of(reply: dict[str, Any]) -> dict[str, Any]:
    err = reply.get("error")
    return err if isinstance(err, dict) else {}


def join_verdict(reply: dict[str, Any]) -> JoinVerdict:
    """Accepted (a ``match`` reply; its ``self`` is this session) or refused (``error N: message``)."""
    if "match" in reply and isinstance(reply["match"], dict):
        me = reply["match"].get("self") or {}
        return JoinVerdict(True, str(me.get("session_id", "")) if isinstance(me, dict) else "")
    err = _error_of(reply)
    return JoinVerdict(False, "", f"error {err.get('code', 0)}: {err.get('message', '')}")


def probe_verdict(reply: dict[str, Any]) -> str:
    """A member's ``match_join`` answered: ``running`` (the match again), ``gone`` (error 4), else ""."""
    if "match" in reply:
        return "running"
    return "gone" if _error_of(reply).get("code") == P.ErrorCode.MATCH_NOT_FOUND else ""


def crash_close(closed_by: str, code: int | None, reason: str) -> bool:
    """Whether a close is Nakama's answer to a handler error: from the server, 1000 "server-side session
    disconnect"."""
    return closed_by == "server" and code == P.CLOSE_NORMAL and reason == P.CLOSE_SERVER_DISCONNECT


def match_crashed(closes: Iterable[tuple[str, int | None, str] | None]) -> bool:
    """Every socket in the match (``(closed_by, code, reason)``, None while open) got the crash close."""
    seen = list(closes)
    return bool(seen) and all(c is not None and crash_close(*c) for c in seen)


@dataclass
class ClientView:
    """One client socket's view of its session: its id once a join was accepted, whether it is in the match,
    and the sessions whose joins it has seen announced."""

    session_id: str = ""
    in_match: bool = False
    joined_ever: bool = False
    joins_seen: set[str] = field(default_factory=set)

    def receive(self, obj: dict[str, Any]) -> Seen:
        """One envelope from the server (a JSON object)."""
        cid = obj.get("cid")
        joins: list[str] = []
        event = obj.get("match_presence_event")
        if isinstance(event, dict):
            for p in event.get("joins") or ():
                sid = p.get("session_id", "") if isinstance(p, dict) else ""
                self.joins_seen.add(sid)
                joins.append(sid)
            for p in event.get("leaves") or ():  # kicked: no longer in the match
                if isinstance(p, dict) and p.get("session_id") and p.get("session_id") == self.session_id:
                    self.in_match = False
        data = obj.get("match_data")
        return Seen(cid if isinstance(cid, str) else "", tuple(joins), data if isinstance(data, dict) else None)

    def joined(self, verdict: JoinVerdict) -> None:
        """Our join was answered."""
        if verdict.joined:
            self.session_id = verdict.session_id
            self.in_match = self.joined_ever = True

    def left(self) -> None:
        """We left (``match_leave``) or closed the socket."""
        self.in_match = False
