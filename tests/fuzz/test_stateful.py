"""replay.fuzz._stateful and replay.fuzz._checks: the state machine drives real handlers and each check fails when,
and only when, its rule is broken."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from replay.errors import BroadcastToAbsentPresence, HandlerCrashed, InvariantViolated
from replay.fuzz import Connect, FuzzProfile, Leave, MatchChecks, MatchPlayer, Send, Tick, match_state_machine
from replay.fuzz._actions import fuzz_header
from replay.runtime import load_handler
from tests.common.paths import ROOT, TEST_HANDLERS

HANDLERS = ROOT / "fixtures" / "handlers"
PROFILE = str(HANDLERS / "arena_payloads.py")
# generation only: finding is what these tests are about; shrinking is hypothesis's (and tested in test_fuzz)
FIND = settings(
    max_examples=500,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
)

ArenaFixedMachine = match_state_machine(str(HANDLERS / "arena_fixed.py"), PROFILE)
TestArenaFixedSurvives = ArenaFixedMachine.TestCase
TestArenaFixedSurvives.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

GOODBYE = str(TEST_HANDLERS / "fuzz_goodbye.py")  # goodbye to the leaver; hangs on op 9


def test_the_machine_finds_the_arena_reconnection_crash() -> None:
    machine = match_state_machine(str(HANDLERS / "arena.py"), PROFILE)
    with pytest.raises(HandlerCrashed) as info:
        run_state_machine_as_test(machine, settings=FIND)
    assert info.value.key == "match_loop|KeyError|arena.py:match_loop"
    assert info.value.callback == "match_loop"


def test_the_machine_finds_broadcasts_to_presences_that_left() -> None:
    machine = match_state_machine(GOODBYE, FuzzProfile(payloads={1: None}, signals=("",)))
    with pytest.raises(BroadcastToAbsentPresence) as info:
        run_state_machine_as_test(machine, settings=FIND)
    assert info.value.callback == "match_leave" and info.value.op_code == 99
    assert info.value.location == "fuzz_goodbye.py:match_leave"
    # the same handler passes when the check is off (leaves and broadcasts still run)
    quiet = match_state_machine(GOODBYE, FuzzProfile(payloads={1: None}, signals=("",)), absent_targets=False)
    run_state_machine_as_test(quiet, settings=settings(FIND, max_examples=20))


def test_user_invariants_are_checked_after_every_call() -> None:
    def at_most_two_players(state):  # type: ignore[no-untyped-def]
        return len(state["players"]) <= 2

    machine = match_state_machine(str(HANDLERS / "arena_fixed.py"), PROFILE, invariants=[at_most_two_players])
    with pytest.raises(InvariantViolated) as info:
        run_state_machine_as_test(machine, settings=FIND)
    assert info.value.name == "at_most_two_players" and info.value.callback == "match_join"


def test_a_hang_is_a_crash_with_the_hang_signature() -> None:
    handler = load_handler(GOODBYE)
    with MatchPlayer(handler, fuzz_header(), hang_timeout=30.0, checks=MatchChecks()) as player:
        player.start()
        player.play(Connect(0))
        player.play(Send(0, 1, b"fine"))
        player.play(Tick())
        player.play(Send(0, 9, b"stuck"))
        player.runtime.hang_guard.limit = 1.0  # only the tick that never returns runs under the short limit
        with pytest.raises(HandlerCrashed) as info:
            player.play(Tick())
    assert info.value.crash.hung and info.value.key == "match_loop|Hang|?"
    assert info.value.tick == 1


def test_checks_stay_quiet_on_a_clean_match() -> None:
    handler = load_handler(GOODBYE)
    with MatchPlayer(handler, fuzz_header(), checks=MatchChecks()) as player:
        player.start()
        player.play(Connect(0))
        player.play(Connect(1))
        player.play(Tick())
        with pytest.raises(BroadcastToAbsentPresence):
            player.play(Leave(0))
    # without the leave, nothing fails
    with MatchPlayer(handler, fuzz_header(), checks=MatchChecks()) as player:
        player.start()
        player.play_all([Connect(0), Connect(1), Send(1, 1, b"x"), Tick(2)])
        assert player.runtime.crash is None and len(player.presences) == 2
