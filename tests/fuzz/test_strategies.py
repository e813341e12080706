"""replay.fuzz._strategies and replay.fuzz._actions: payload shapes, and generated actions always make a call stream
Nakama could produce (the stream rules of replay.fuzz._streams, queue drops, join-attempt-then-join order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.format import InitCall, JoinAttemptCall, JoinCall, LeaveCall, LoopCall, PresenceReason
from replay.errors import ProfileError
from replay.fuzz import (
    DEFAULT_PROFILE,
    Burst,
    Connect,
    FuzzProfile,
    Leave,
    MatchPlayer,
    Send,
    Tick,
    by_version,
    call_streams,
    client_actions,
    load_profile,
    play,
)
from replay.fuzz._actions import fuzz_header
from replay.fuzz._strategies import json_shape, payload_strategy
from replay.fuzz._streams import StreamRules, run_stream
from replay.runtime import load_handler
from tests.common.paths import ROOT

FIXED = str(ROOT / "fixtures" / "handlers" / "arena_fixed.py")
ARENA_PROFILE = str(ROOT / "fixtures" / "handlers" / "arena_payloads.py")
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


def test_by_version_picks_the_longest_dotted_prefix() -> None:
    shapes = by_version({"1": "one", "1.3": "one-three", "*": "other"})
    assert shapes.shape_for("1.3.2") == "one-three"
    assert shapes.shape_for("1.30.0") == "one"  # prefixes are dotted components, not characters
    assert shapes.shape_for("1.4.0") == "one"
    assert shapes.shape_for("2.0.0") == "other"
    assert shapes.shape_for(None) == "other"
    assert by_version({"1.3": "x"}).shape_for("2.0") is bytes  # nothing matches: arbitrary bytes


@given(st.data())
@FAST
def test_json_shapes_make_values_of_that_shape(data: st.DataObject) -> None:
    shape = {"dx": int, "name": str, "tag": "fixed", "aim?": (float, float), "items": [bool], "none": None}
    value = data.draw(json_shape(shape))
    assert set(value) - {"aim"} == {"dx", "name", "tag", "items", "none"}
    assert isinstance(value["dx"], int) and isinstance(value["name"], str) and value["tag"] == "fixed"
    assert all(isinstance(b, bool) for b in value["items"]) and len(value["items"]) <= 4
    assert value["none"] is None
    if "aim" in value:
        assert len(value["aim"]) == 2 and all(isinstance(x, float) for x in value["aim"])
    encoded = data.draw(payload_strategy(shape))
    assert isinstance(json.loads(encoded), dict)  # JSON on the wire


@given(st.data())
@FAST
def test_top_level_payload_shapes(data: st.DataObject) -> None:
    assert data.draw(payload_strategy(None)) is None
    assert isinstance(data.draw(payload_strategy(bytes)), bytes)
    assert isinstance(data.draw(payload_strategy(str)).decode("utf-8"), str)
    assert data.draw(payload_strategy(st.just(b"\x00raw"))) == b"\x00raw"  # bytes from a strategy: as they are
    assert data.draw(payload_strategy(st.just([1, 2]))) == b"[1,2]"  # other values: JSON


def test_bad_shapes_and_profiles_are_refused_with_the_place() -> None:
    with pytest.raises(ProfileError, match=r"\[shape\]"):
        json_shape([int, str])
    with pytest.raises(ProfileError, match="not a shape"):
        json_shape({"x": object()})
    with pytest.raises(ProfileError, match="PAYLOADS"):
        FuzzProfile(payloads={})
    with pytest.raises(ProfileError, match="op codes are integers"):
        FuzzProfile(payloads={"1": None})
    with pytest.raises(ProfileError, match="MAX_USERS"):
        FuzzProfile(payloads={1: None}, max_users=9)


def test_load_profile_from_module_names(tmp_path: Path) -> None:
    p = load_profile(ARENA_PROFILE)
    assert p.op_codes == [1, 2, 3] and p.client_versions == ("1.4.0", "1.3.2", "2.0.0")
    assert p.params == {"max_players": 3, "tick_rate": 10} and len(p.invariants) == 2
    bad = tmp_path / "bad_profile.py"
    bad.write_text("PAYLOADS = 3\n")
    with pytest.raises(ProfileError, match="PAYLOADS"):
        load_profile(bad)
    broken = tmp_path / "broken_profile.py"
    broken.write_text("raise RuntimeError('nope')\n")
    with pytest.raises(ProfileError, match="RuntimeError: nope"):
        load_profile(broken)
    with pytest.raises(ProfileError, match="no such file"):
        load_profile(tmp_path / "missing.py")


def test_version_skew_sends_each_version_its_own_shape() -> None:
    """A 1.3 client never sends an aim vector; a 1.4 client may (arena_payloads.py)."""
    profile = load_profile(ARENA_PROFILE)

    @given(st.data())
    @FAST
    def check(data: st.DataObject) -> None:
        old = json.loads(data.draw(profile.payload_for(1, "1.3.2")))
        assert "aim" not in old and set(old) <= {"dx", "dy", "shoot"}
        new = json.loads(data.draw(profile.payload_for(1, "1.4.0")))
        assert set(new) <= {"dx", "dy", "shoot", "aim"}

    check()


@pytest.fixture(scope="module")
def fixed_handler():  # type: ignore[no-untyped-def]
    return load_handler(FIXED)


def test_generated_actions_always_make_a_valid_nakama_stream(fixed_handler) -> None:  # type: ignore[no-untyped-def]
    """Whatever the actions, the calls obey the stream rules, every join follows its accepted attempt,
    ticks count loops, and no loop holds more than the input queue."""
    profile = load_profile(ARENA_PROFILE)
    header = fuzz_header(FIXED, dict(profile.params))

    @given(client_actions(profile, max_actions=40))
    @settings(FAST, max_examples=60)
    def check(actions: list) -> None:  # type: ignore[type-arg]
        calls, player = play(fixed_handler, actions, header, queue_size=16)
        assert player.runtime.crash is None
        assert type(calls[0]) is InitCall
        run = run_stream(fixed_handler, header, calls)
        assert run.valid, run.problem
        loops = 0
        for i, c in enumerate(calls):
            assert c.tick == loops
            if type(c) is LoopCall:
                loops += 1
                assert len(c.messages) <= 16
            if type(c) is JoinCall:
                before = calls[i - 1]
                assert type(before) is JoinAttemptCall and before.outcome.accept
                assert before.presence.session_id == c.presences[0].session_id

    check()


def test_player_mirrors_nakama_for_reconnects_duplicates_bursts_and_leaves(fixed_handler) -> None:  # type: ignore[no-untyped-def]
    header = fuzz_header(FIXED, {"max_players": 3})
    actions = [
        Connect(0, {"client_version": "1.4.0"}),
        Send(0, 1, b'{"dx":1,"dy":0}'),
        Connect(0, {"client_version": "1.4.0"}, duplicate=True),  # reconnect, join request sent twice
        Burst(1, 3, None, 5),  # user 1 has no session: dropped, as Nakama's pipeline does
        Burst(0, 3, None, 20),  # past the queue of 8
        Leave(0, PresenceReason.LEAVE),  # the oldest session: the stale one
        Send(0, 2, b'{"text":"hi"}', session="oldest"),
        Tick(),
        Send(5, 2, b"{}"),  # nobody
    ]
    with MatchPlayer(fixed_handler, header, queue_size=8) as player:
        player.start()
        player.play_all(actions)
        calls = player.calls()
        kinds = [type(c).__name__ for c in calls]
        assert kinds == [
            "InitCall",
            "JoinAttemptCall",
            "JoinCall",
            "JoinAttemptCall",
            "JoinAttemptCall",
            "JoinCall",
            "LeaveCall",
            "LoopCall",
        ]
        first, second = player.sessions[0]
        loop = calls[-1]
        # the first session's input, then 7 of the 20 "ready" messages: the queue holds 8, so the rest
        # and the chat sent after them are dropped
        assert [m.sender.session_id for m in loop.messages] == [first.session_id] + [second.session_id] * 7
        assert player.driver.dropped == 13 + 1
        leave = calls[6]
        assert isinstance(leave, LeaveCall) and leave.presences[0].session_id == first.session_id
        assert leave.presences[0].reason == PresenceReason.LEAVE
        assert [p.session_id for p in player.presences] == [second.session_id]


def test_call_streams_strategy_yields_valid_streams_for_users_tests(fixed_handler) -> None:  # type: ignore[no-untyped-def]
    header = fuzz_header(FIXED)

    @given(call_streams(fixed_handler, DEFAULT_PROFILE, header, max_actions=12))
    @settings(FAST, max_examples=15)
    def check(calls: list) -> None:  # type: ignore[type-arg]
        assert type(calls[0]) is InitCall
        run = run_stream(fixed_handler, header, calls)
        assert run.valid, run.problem

    check()


def test_stream_rules_reject_what_nakama_cannot_produce() -> None:
    from recorder.format import MatchMessage, Presence

    a = Presence("u", "s1", "a", "n")

    def first_problem(*calls: object, present: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        rules = StreamRules()
        for c in calls:
            problem = rules.before(c, set(present))  # type: ignore[arg-type]
            if problem:
                return problem
        return ""

    assert first_problem(InitCall({}), LoopCall(0, ()), LoopCall(1, ())) == ""
    assert "first call" in first_problem(LoopCall(0, ()))
    assert "first call" in first_problem(InitCall({}), InitCall({}))
    assert "tick 3, expected 0" in first_problem(InitCall({}), LoopCall(3, ()))
    assert "without an accepted join attempt" in first_problem(InitCall({}), JoinCall(0, (a,)))
    assert "not in the match since the last loop" in first_problem(
        InitCall({}), LoopCall(0, (MatchMessage(a, 1, b"", True, 0),))
    )
    assert "already in the match" in first_problem(InitCall({}), JoinAttemptCall(0, a), present={"s1"})
