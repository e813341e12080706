"""Which handler-call streams Nakama could produce, and running one under the match checks.

A reduced recording must still be a stream Nakama could have made, or "removing this call keeps the crash"
proves nothing. ``StreamRules`` checks these rules, call by call, against the runtime's state:

1. The first call is ``init`` and there is no other ``init``.
2. A loop's tick is the number of loops before it; any other call carries the tick of the next loop.
3. A join attempt is for a session that is not in the match (Nakama answers a session already in the
   match itself, without calling the handler).
4. A join's presences each had a join attempt accepted since they were last in the match (or are in the
   match already: a duplicate join, which the runtime drops as Nakama does).
5. A loop's messages come from sessions that were in the match at some moment since the previous loop
   (Nakama's pipeline drops data from a session that is not in the match). This is stricter than
   Nakama by one short interval: a session whose attempt was accepted can send before its join is
   processed; streams made by ``MatchPlayer`` never do.
6. Leaves may name sessions that are not in the match (the runtime skips them: the handler is not called).

``run_stream`` replays calls (their recorded outcomes set aside, their recorded nondeterministic values
kept) with ``replay.runtime.iter_steps``, the very semantics ``nakama-replay reproduce`` uses, checking
the rules before each call and ``replay.fuzz.MatchChecks`` after it. ``remove_call`` drops one call and,
when it is a loop, renumbers the later ticks so rule 2 still holds; ``remove_message`` drops one message
from a loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recorder.format import Call, Header, InitCall, JoinAttemptCall, JoinCall, LoopCall
from replay.errors import MatchCheckFailed
from replay.fuzz._actions import MatchPlayer
from replay.runtime._hang import HangGuard
from replay.runtime._result import StepResult
from replay.runtime._runtime import iter_steps

__all__ = ["StreamRules", "StreamRun", "remove_call", "remove_message", "run_stream", "strip_outcomes"]


class _Invalid(Exception):
    pass


class StreamRules:
    """The rules above, tracked over one replay. ``before`` returns the broken rule (or "")."""

    def __init__(self) -> None:
        self.index = 0
        self.loops = 0
        self.pending: set[str] = set()  # sessions with an accepted attempt and no join yet
        self.window: set[str] = set()  # sessions in the match at some moment since the last loop

    def before(self, call: Call, present: set[str]) -> str:
        i = self.index
        self.index += 1
        if (i == 0) != isinstance(call, InitCall):
            return f"call #{i}: init must be the first call and only the first"
        if not isinstance(call, InitCall) and call.tick != self.loops:
            return f"call #{i} ({call.callback}) has tick {call.tick}, expected {self.loops}"
        match call:
            case JoinAttemptCall(presence=presence) if presence.session_id in present:
                return f"call #{i}: join attempt for session {presence.session_id}, already in the match"
            case JoinCall(presences=presences):
                for p in presences:
                    if p.session_id not in self.pending and p.session_id not in present:
                        return f"call #{i}: join of session {p.session_id} without an accepted join attempt"
            case LoopCall(messages=messages):
                for m in messages:
                    if m.sender.session_id not in self.window:
                        return (
                            f"call #{i}: message from session {m.sender.session_id}, "
                            "not in the match since the last loop"
                        )
                self.loops += 1
        return ""

    def after(self, step: StepResult, present: set[str]) -> None:
        match step.call:
            case JoinAttemptCall(presence=presence) if (
                step.executed and step.outcome is not None and step.outcome.accept
            ):
                self.pending.add(presence.session_id)
            case JoinCall(presences=presences) if step.executed:
                for p in presences:
                    self.pending.discard(p.session_id)
        if isinstance(step.call, LoopCall) and not step.synthetic:
            self.window = set(present)
        else:
            self.window |= present


@dataclass(slots=True)
class StreamRun:
    """How a stream ran: ``problem`` names the broken rule (the stream is invalid, nothing else counts);
    otherwise ``failure`` is the first check that failed, or None."""

    problem: str = ""
    failure: MatchCheckFailed | None = None
    steps: list[StepResult] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problem

    @property
    def key(self) -> str | None:
        return None if self.problem or self.failure is None else self.failure.key


def strip_outcomes(calls: Sequence[Call]) -> list[Call]:
    """The calls as inputs only: recorded outcomes removed (nondeterministic values kept)."""
    return [c if c.outcome is None else dataclasses.replace(c, outcome=None) for c in calls]


def run_stream(
    handler: Any,
    header: Header,
    calls: Sequence[Call],
    checks: Callable[[MatchPlayer, StepResult], None] | None = None,
    *,
    hang_guard: HangGuard | None = None,
    hang_timeout: float | None = 1.0,
    seed: int = 0,
    digests: bool = False,
    prepare: Callable[[MatchPlayer], None] | None = None,
) -> StreamRun:
    """Replay ``calls`` from a fresh match, checking the stream rules and ``checks``; ``digests`` adds
    the state digest to every step's outcome (for writing the stream as a recording). ``prepare`` sees the
    player before the first call."""
    run = StreamRun()
    rules = StreamRules()
    player = MatchPlayer(handler, header, seed=seed, hang_timeout=hang_timeout, hang_guard=hang_guard)
    if prepare is not None:
        prepare(player)
    rt = player.runtime
    rt.digests = "always" if digests else "never"

    def checked() -> Any:
        for call in strip_outcomes(calls):
            problem = rules.before(call, {p.session_id for p in rt.presences})
            if problem:
                raise _Invalid(problem)
            yield call

    try:
        for step in iter_steps(rt, checked()):
            run.steps.append(step)
            rules.after(step, {p.session_id for p in rt.presences})
            if checks is not None:
                checks(player, step)
    except _Invalid as exc:
        run.problem = str(exc)
    except MatchCheckFailed as exc:
        run.failure = exc
    finally:
        player.close()
    return run


def remove_call(calls: Sequence[Call], i: int) -> list[Call]:
    """``calls`` without call ``i``; removing a loop moves every later call one tick earlier."""
    out = list(calls[:i])
    shift = 1 if type(calls[i]) is LoopCall else 0
    for c in calls[i + 1 :]:
        out.append(dataclasses.replace(c, tick=c.tick - shift) if shift else c)
    return out


def remove_message(calls: Sequence[Call], i: int, j: int) -> list[Call]:
    """``calls`` with message ``j`` of loop ``i`` removed."""
    loop = calls[i]
    assert type(loop) is LoopCall
    messages = tuple(loop.messages)
    out = list(calls)
    out[i] = dataclasses.replace(loop, messages=messages[:j] + messages[j + 1 :])
    return out
