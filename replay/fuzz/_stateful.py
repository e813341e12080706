"""A hypothesis state machine that drives a match handler with client actions and checks every call.

``match_state_machine(handler, profile)`` returns a ``RuleBasedStateMachine`` subclass; use its
``TestCase`` in a test module::

    from hypothesis import settings
    from replay.fuzz._stateful import match_state_machine

    ArenaMachine = match_state_machine("fixtures/handlers/arena_fixed.py", "fixtures/handlers/arena_payloads.py")
    TestArena = ArenaMachine.TestCase
    TestArena.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)

Each rule is one kind of client action (connect, leave, send, burst, tick, signal, terminate), drawn from
``replay.fuzz._strategies.action_of`` and played through ``replay.fuzz.MatchPlayer``, so the handler sees a
call stream Nakama could make (once the match has stopped, rules do nothing, as Nakama would). After every handler call the checks of ``replay.fuzz._checks`` run: no exception
or hang, no broadcast to a presence not in the match, the profile's invariants plus ``invariants``. A
failure raises ``MatchCheckFailed`` (an ``AssertionError``) and hypothesis shrinks the rule sequence.
Subclass the machine to add your own ``@invariant()`` methods; ``self.player`` is the match
(``player.state``, ``player.presences``, ``player.calls()``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from replay.fuzz._actions import MatchPlayer, fuzz_header
from replay.fuzz._checks import MatchChecks
from replay.fuzz._strategies import ACTION_KINDS, DEFAULT_PROFILE, ClientModel, FuzzProfile, action_of, load_profile
from replay.runtime._handlers import load_handler

__all__ = ["match_state_machine"]


def match_state_machine(
    handler: Any,
    profile: FuzzProfile | str | os.PathLike[str] | None = None,
    *,
    invariants: Sequence[Callable[[Any], Any]] = (),
    max_users: int | None = None,
    absent_targets: bool = True,
    hang_timeout: float | None = 1.0,
    seed: int = 0,
) -> type[RuleBasedStateMachine]:
    """A state machine class for ``handler`` with clients described by ``profile`` (a ``FuzzProfile`` or a
    profile module path; default: ``DEFAULT_PROFILE``). Given a path, each run loads the handler afresh
    (a new Lua VM, a new instance of a handler class); a loaded handler serves every run."""
    by_path = isinstance(handler, (str, os.PathLike))
    loaded = load_handler(handler) if by_path else handler  # fails early on a handler that does not load
    prof = load_profile(profile) if isinstance(profile, (str, os.PathLike)) else profile or DEFAULT_PROFILE
    header = fuzz_header(getattr(loaded, "path", ""), dict(prof.params), seed)
    checks = MatchChecks(tuple(prof.invariants) + tuple(invariants), absent_targets=absent_targets)

    def __init__(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        self.model = ClientModel(prof, max_users)
        self.player = MatchPlayer(
            load_handler(handler) if by_path else loaded,
            header,
            seed=seed,
            queue_size=prof.queue_size,
            hang_timeout=hang_timeout,
            checks=checks,
        )
        self.player.start()

    def teardown(self: Any) -> None:
        self.player.close()

    def rule_for(kind: str) -> Callable[..., None]:
        def play(self: Any, data: Any) -> None:
            self.player.play(data.draw(action_of(kind, self.model), label=kind))

        play.__name__ = play.__qualname__ = kind
        return rule(data=st.data())(play)

    body: dict[str, Any] = {"__init__": __init__, "teardown": teardown}
    body.update({kind: rule_for(kind) for kind in ACTION_KINDS})  # one rule per kind of client action
    MatchMachine = type(f"MatchMachine_{header.module or 'handler'}", (RuleBasedStateMachine,), body)
    return MatchMachine
