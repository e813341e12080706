"""The match dispatcher a handler broadcasts, kicks and relabels through, with Nakama's rules.

- ``broadcast_message(op_code, data=None, presences=None, sender=None, reliable=True)`` sends now to every
  presence (``presences=None``) or to the listed ones still in the match (others are dropped silently, in
  Nakama's swap-with-last order; an empty list sends nothing).
- ``broadcast_message_deferred`` (same arguments) is sent after the callback returns; at most
  ``deferred_limit`` (Nakama: 128) per call, then "too many deferred message broadcasts per tick".
- ``match_kick(presences)`` removes them with a leave (reason 3) on a later call.
- ``match_label_update(label)``: at most 2048 bytes.
- Every call on a stopped match raises ``MatchStopped`` ("match stopped").
Presences may be ``Presence`` objects or dicts/tables with the same keys.
"""

from __future__ import annotations

from typing import Any, Literal

from recorder.format import Broadcast, Presence
from replay.errors import HandlerError, MatchStopped

__all__ = ["Dispatcher", "LABEL_MAX_BYTES", "as_presence"]

LABEL_MAX_BYTES = 2048


def as_presence(p: Any, where: str = "presence") -> Presence:
    """A ``Presence`` from a Presence, a dict, or anything with the attributes."""
    if isinstance(p, Presence):
        return p
    get = p.get if isinstance(p, dict) else (lambda k, d=None: getattr(p, k, d))
    user_id, session_id = get("user_id"), get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise HandlerError(f"{where}: expects each presence to have a valid session_id")
    return Presence(
        str(user_id or ""), session_id, str(get("username") or ""), str(get("node") or ""), int(get("reason") or 0)
    )


def _data_bytes(data: Any) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise HandlerError("bad argument #2 to broadcast_message: expects data to be a string or nil")


class Dispatcher:
    """One per match; the runtime reads and resets the per-call outcome lists after each callback."""

    def __init__(self, presences: list[Presence], deferred_limit: int = 128, ctx: dict[str, Any] | None = None) -> None:
        self._presences = presences  # the runtime's live list (Nakama's PresenceList order)
        self._ctx = ctx if ctx is not None else {}  # the match context: a label update shows in it at once
        self.deferred_limit = deferred_limit
        self.stopped = False
        self.label = ""
        self.broadcasts: list[Broadcast] = []
        self.kicks: list[Presence] = []
        self.label_updates: list[str] = []
        self._deferred_count = 0

    def reset(self) -> None:
        """A new call: the lists the runtime read after the last one start again (a list left empty is
        kept: most calls leave all three empty, and this runs once per call)."""
        if self.broadcasts:
            self.broadcasts = []
        if self.kicks:
            self.kicks = []
        if self.label_updates:
            self.label_updates = []
        self._deferred_count = 0

    def _check(self) -> None:
        if self.stopped:
            raise MatchStopped()

    def _targets(self, presences: Any) -> tuple[Presence, ...] | Literal[False] | None:
        """None for everyone, a tuple of members, or False when nothing is to be sent."""
        if presences is None:
            return None
        wanted = [as_presence(p, "broadcast_message presences") for p in presences]
        if not wanted:
            return False
        members = {(p.session_id, p.node): p for p in self._presences}
        ids = list(wanted)
        i = 0
        while i < len(ids):  # Nakama's FilterPresenceIDs: swap the missing one with the last, shrink
            if (ids[i].session_id, ids[i].node) not in members:
                ids[i] = ids[-1]
                ids.pop()
                continue
            i += 1
        if not ids:
            return False
        return tuple(members[(p.session_id, p.node)] for p in ids)

    def _broadcast(self, deferred: bool, op_code: Any, data: Any, presences: Any, sender: Any, reliable: Any) -> None:
        self._check()
        if isinstance(op_code, bool) or not isinstance(op_code, int):
            if isinstance(op_code, float) and op_code.is_integer():
                op_code = int(op_code)
            else:
                raise HandlerError(f"bad argument #1 to broadcast_message: number expected, got {op_code!r}")
        payload = _data_bytes(data)
        targets = self._targets(presences)
        sender_p = None if sender is None else as_presence(sender, "broadcast_message sender")
        if targets is False:
            return
        if deferred:
            if self._deferred_count >= self.deferred_limit:
                raise HandlerError("error deferring message broadcast: too many deferred message broadcasts per tick")
            self._deferred_count += 1
        self.broadcasts.append(
            Broadcast(op_code, payload, targets, sender_p, bool(True if reliable is None else reliable), deferred)
        )

    def broadcast_message(
        self, op_code: int, data: Any = None, presences: Any = None, sender: Any = None, reliable: bool = True
    ) -> None:
        self._broadcast(False, op_code, data, presences, sender, reliable)

    def broadcast_message_deferred(
        self, op_code: int, data: Any = None, presences: Any = None, sender: Any = None, reliable: bool = True
    ) -> None:
        self._broadcast(True, op_code, data, presences, sender, reliable)

    def match_kick(self, presences: Any) -> None:
        self._check()
        if not presences:
            return
        self.kicks.extend(as_presence(p, "match_kick") for p in presences)

    def match_label_update(self, label: Any = "") -> None:
        self._check()
        label = "" if label is None else str(label)
        if len(label.encode("utf-8")) > LABEL_MAX_BYTES:
            raise HandlerError("error updating match label: match label too long, must be 0-2048 bytes")
        self.label = label
        self._ctx["match_label"] = label
        self.label_updates.append(label)
