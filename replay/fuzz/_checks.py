"""What a match driven by client actions must not do, checked after every handler call.

``MatchChecks`` is called by ``replay.fuzz.MatchPlayer`` after each call it makes and raises the first
failure it sees (all are ``replay.errors.MatchCheckFailed``, an ``AssertionError``):

- ``HandlerCrashed``: the callback raised or hung (the runtime's hang guard); its key is the crash
  signature's (``replay.runtime._signature``: ``callback|error type|innermost handler frame``);
- ``BroadcastToAbsentPresence``: a broadcast named a presence that is not in the match; Nakama drops such
  targets without a word, so a player silently misses the message (off with ``absent_targets=False``);
- ``InvariantViolated``: a user invariant, a callable taking the match state (as plain data:
  ``handler.state_value``), returned False or raised. Invariants run after every call that returned a
  state.

``failure_key(exc)`` is the grouping key of any failure: two failures with one key are the same bug.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from recorder.format import LoopCall
from replay.errors import BroadcastToAbsentPresence, HandlerCrashed, InvariantViolated, MatchCheckFailed
from replay.runtime._result import StepResult
from replay.runtime._signature import CrashSignature

__all__ = ["Invariant", "MatchChecks", "crash_signature", "failure_key"]

#: A user invariant: takes the state (plain data), returns None/True when it holds.
Invariant = Callable[[Any], Any]


def crash_signature(step: StepResult) -> CrashSignature:
    """The signature of the crash in ``step``, with the op code of the batch's last message for a loop."""
    assert step.crash is not None
    op = None
    call = step.call
    if type(call) is LoopCall and len(call.messages):
        op = call.messages[-1].op_code
    return CrashSignature.from_crash(step.crash, op)


def failure_key(exc: MatchCheckFailed) -> str:
    """The grouping key: the crash signature's key, or the check and its location."""
    return exc.key


class MatchChecks:
    """The checks to run after each call; pass one to ``MatchPlayer(checks=...)``."""

    def __init__(self, invariants: Sequence[Invariant] = (), *, absent_targets: bool = True) -> None:
        self.invariants = tuple(invariants)
        self.absent_targets = absent_targets

    def __call__(self, player: Any, step: StepResult) -> None:
        if not step.executed:
            return
        if step.crash is not None:
            raise HandlerCrashed(step.crash, crash_signature(step))
        if self.absent_targets:
            for t in player.absent_targets:
                if t.index == step.index:
                    raise BroadcastToAbsentPresence(
                        step.call.callback, step.call.tick, t.op_code, t.presence.session_id, t.location
                    )
        if self.invariants and step.state is not None and not player.stopped:
            value = player.driver.handler.state_value(player.state)
            for inv in self.invariants:
                name = getattr(inv, "__name__", None) or repr(inv)
                try:
                    ok = inv(value)
                except AssertionError as exc:
                    problem = str(exc) or "assertion failed"
                    raise InvariantViolated(name, step.call.callback, step.call.tick, problem) from exc
                except Exception as exc:  # an invariant that raises does not hold
                    raise InvariantViolated(
                        name, step.call.callback, step.call.tick, f"raised {type(exc).__name__}: {exc}"
                    ) from exc
                if ok is False:
                    raise InvariantViolated(name, step.call.callback, step.call.tick, "returned False")
