"""Reduce a failing match to a minimal one, at the client-action level and at the call level.

Minimal means (``removable_calls`` checks it): removing any single call from the stream either breaks a
rule of ``replay.fuzz._streams`` (the stream is not one Nakama could make, so it proves nothing) or makes the
failure with the same key go away. Removing a loop renumbers later ticks; messages inside a loop are
reduced one by one too.

``reduce_actions`` works on client actions: it deletes chunks, then single actions, until no deletion
keeps the failure (1-minimal), and tries simpler variants of each action (a burst as one send, one tick
instead of several, a plain join instead of a duplicate one, the default leave reason, users renumbered
in order of appearance). ``reduce_calls`` then deletes calls and messages of the resulting stream, under
the stream rules. Both take a predicate ``fails(candidate) -> bool`` and only accept candidates for which
it holds, so the result fails exactly as the input did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from recorder.format import Call, LoopCall, PresenceReason
from replay.fuzz._streams import remove_call, remove_message
from replay.realtime._actions import Action, Burst, Connect, Leave, Send, Tick, Who

_BY_USER = (Connect, Leave, Send, Burst)  # the actions of one user

__all__ = ["reduce_actions", "reduce_calls", "removable_calls", "simpler_variants"]


def _delete_chunks(items: list[Any], fails: Callable[[list[Any]], bool]) -> list[Any]:
    """Delete chunks of halving size, then single items, until no single deletion keeps ``fails``."""
    size = max(1, len(items) // 2)
    while True:
        i = len(items) - size
        while i >= 0:
            cand = items[:i] + items[i + size :]
            if fails(cand):
                items = cand
                i = min(i, len(items) - size)
            else:
                i -= 1
        if size == 1:
            return items
        size //= 2


def simpler_variants(a: Action) -> list[Action]:
    """Simpler versions of one action, simplest first."""
    if isinstance(a, Burst):
        variants: list[Action] = [Send(a.user, a.op_code, a.data)]
        if a.count > 3:
            variants.append(dataclasses.replace(a, count=a.count // 2))
        return variants
    if isinstance(a, Tick) and a.n > 1:
        return [Tick(1), Tick(a.n - 1)]
    if isinstance(a, Connect) and a.duplicate:
        return [dataclasses.replace(a, duplicate=False)]
    if isinstance(a, Leave):
        out: list[Action] = []
        if a.reason != PresenceReason.DISCONNECT:
            out.append(dataclasses.replace(a, reason=PresenceReason.DISCONNECT))
        if a.session != "oldest":
            out.append(dataclasses.replace(a, session="oldest"))
        return out
    if isinstance(a, Send) and a.session != "latest":
        return [dataclasses.replace(a, session="latest")]
    return []


def _renumber_users(actions: list[Action]) -> list[Action]:
    order: dict[Who, int] = {}
    for a in actions:
        if isinstance(a, _BY_USER) and a.user not in order:
            order[a.user] = len(order)
    return [dataclasses.replace(a, user=order[a.user]) if isinstance(a, _BY_USER) else a for a in actions]


def reduce_actions(actions: Sequence[Action], fails: Callable[[list[Action]], bool]) -> list[Action]:
    """A 1-minimal sublist of simplified actions that still ``fails`` (which must hold for ``actions``)."""
    current = list(actions)
    while True:
        before = current
        current = _delete_chunks(current, fails)
        for i in range(len(current)):
            for variant in simpler_variants(current[i]):
                cand = [*current[:i], variant, *current[i + 1 :]]
                if fails(cand):
                    current = cand
                    break
        renumbered = _renumber_users(current)
        if renumbered != current and fails(renumbered):
            current = renumbered
        if current == before:
            return current


def reduce_calls(calls: Sequence[Call], fails: Callable[[list[Call]], bool]) -> list[Call]:
    """Delete calls (renumbering ticks after a removed loop) and single loop messages while ``fails``
    holds for the result; ``fails`` must reject streams that break the rules (``replay.fuzz._streams``)."""
    current = list(calls)
    changed = True
    while changed:
        changed = False
        i = len(current) - 1
        while i >= 0:
            cand = remove_call(current, i)
            if fails(cand):
                current, changed = cand, True
            i = min(i, len(current)) - 1
        for i, call in enumerate(current):
            if not isinstance(call, LoopCall):
                continue
            j = len(call.messages) - 1
            while j >= 0:
                cand = remove_message(current, i, j)
                if fails(cand):
                    current, changed = cand, True
                    call = current[i]  # the same loop without message j
                    assert isinstance(call, LoopCall)
                j = min(j, len(call.messages)) - 1
    return current


def removable_calls(calls: Sequence[Call], fails: Callable[[list[Call]], bool]) -> list[int]:
    """Indices of the calls whose removal still ``fails`` (empty: the stream is minimal)."""
    return [i for i in range(len(calls)) if fails(remove_call(calls, i))]
