"""Nakama's match semantics in MatchRuntime, each rule against a hand-computed expectation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from recorder.format import (
    Broadcast,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
)
from replay.errors import HandlerLoadError, MatchStopped, NotAvailableInReplay
from replay.runtime import MatchRuntime, ReplayOptions, load_handler, reproduce
from tests.common.paths import TEST_HANDLERS

PROBE = str(TEST_HANDLERS / "probe.py")
HEADER = Header(match_id="m1.n1", node="n1", tick_rate=10, started_ms=1_000_000)


def P(name: str, reason: int = 0) -> Presence:
    return Presence(f"user-{name}", f"sess-{name}", name, "n1", reason)


def msg(who: str, op: int, data: bytes | None = b"") -> MatchMessage:
    return MatchMessage(P(who), op, data, True, 0)


#: the hang guard's limit where a test makes a callback hang on purpose: far above what a callback takes even on a
#: loaded machine (milliseconds), so that only the hanging one trips it
HANG = 1.0


@pytest.fixture
def rt() -> MatchRuntime:
    runtime = MatchRuntime(load_handler(PROBE), HEADER, hang_timeout=30.0)  # a limit no test means to reach
    step = runtime.apply(InitCall({}))
    assert step.crash is None
    yield runtime
    runtime.close()


def join(rt: MatchRuntime, *names: str, tick: int = 0, metadata: dict | None = None) -> None:
    for n in names:
        rt.apply(JoinAttemptCall(tick, P(n), metadata or {}))
        rt.apply(JoinCall(tick, (P(n, 1),)))


def test_init_sets_context_label_and_tick_rate(rt: MatchRuntime) -> None:
    assert rt.tick_rate == 10 and rt.label == "probe"
    assert rt.ctx["match_label"] == "probe" and rt.ctx["match_tick_rate"] == 10
    assert rt.state["seen"][0] == ["init", 0, ["env", "execution_mode", "match_id", "match_node", "node"]]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("rate", "match_init returned invalid tick rate, must be between 1 and 60"),
        ("label", "match_init returned invalid label, must be 2048 bytes or less"),
        ("nil", "Match initial state must not be nil"),
        ("arity", "match_init returned too many arguments, must be: state, tick rate number, label string"),
    ],
)
def test_init_validation_uses_nakamas_wording(bad: str, message: str) -> None:
    runtime = MatchRuntime(load_handler(PROBE), HEADER)
    step = runtime.apply(InitCall({"bad": bad}))
    assert step.crash is not None and step.crash.callback == "match_init"
    assert step.crash.error == message
    assert runtime.stopped


def test_tick_numbering_and_calls_between_loops_see_next_tick(rt: MatchRuntime) -> None:
    rt.apply(LoopCall(0))
    rt.apply(LoopCall(1))
    assert rt.tick == 2
    join(rt, "a", tick=rt.tick)
    rt.apply(LoopCall(2))
    seen = [s[:2] for s in rt.state["seen"][1:]]
    assert seen == [["loop", 0], ["loop", 1], ["join_attempt", 2], ["join", 2], ["loop", 2]]


def test_join_attempt_ctx_has_session_fields_and_accepted_presence_joins(rt: MatchRuntime) -> None:
    rt.apply(JoinAttemptCall(0, P("a"), {"v": "1"}, vars={"client_version": "1.2"}))
    assert rt.state["seen"][-1] == ["join_attempt", 0, "sess-a", "sess-a", {"v": "1"}]
    assert rt.presences == []  # the attempt alone adds nobody
    rt.apply(JoinCall(0, (P("a", 1),)))
    assert [p.session_id for p in rt.presences] == ["sess-a"]


def test_duplicate_join_is_not_called_again(rt: MatchRuntime) -> None:
    join(rt, "a")
    step = rt.apply(JoinCall(0, (P("a", 1),)))
    assert not step.executed
    assert [s[0] for s in rt.state["seen"]].count("join") == 1


def test_leave_swaps_with_last_and_gets_whole_list(rt: MatchRuntime) -> None:
    join(rt, "a", "b", "c", "d")
    rt.apply(LeaveCall(0, (P("b", 4), P("zz", 4))))
    # Nakama: b's slot takes the last element (d): a, d, c
    assert [p.username for p in rt.presences] == ["a", "d", "c"]
    # match_leave gets the whole list, absent presence included
    assert rt.state["seen"][-1] == ["leave", 0, [["sess-b", 4], ["sess-zz", 4]]]


def test_leave_of_absent_presences_makes_no_call(rt: MatchRuntime) -> None:
    step = rt.apply(LeaveCall(0, (P("ghost", 4),)))
    assert not step.executed


def test_leaver_is_no_longer_a_broadcast_target(rt: MatchRuntime) -> None:
    join(rt, "a", "b")
    rt.apply(LeaveCall(0, (P("b", 4),)))
    step = rt.apply(LoopCall(0, (msg("a", 2, json.dumps(["sess-a", "sess-b"]).encode()),)))
    (b,) = step.outcome.broadcasts
    assert b.targets == (P("a", 1),)


def test_broadcast_to_everyone_empty_list_and_absent_targets(rt: MatchRuntime) -> None:
    join(rt, "a", "b")
    step = rt.apply(LoopCall(0, (msg("a", 1, b"hi"), msg("a", 2, b"[]"), msg("a", 2, b'["sess-x"]'))))
    assert step.outcome.broadcasts == (Broadcast(100, b"hi", None, None, True, False),)


def test_broadcast_target_filter_swaps_like_nakama(rt: MatchRuntime) -> None:
    join(rt, "a", "b", "c")
    step = rt.apply(LoopCall(0, (msg("a", 2, json.dumps(["sess-x", "sess-b", "sess-c"]).encode()),)))
    # FilterPresenceIDs: x is replaced by the last (c), then the list shrinks: c, b
    assert [t.session_id for t in step.outcome.broadcasts[0].targets] == ["sess-c", "sess-b"]


def test_deferred_broadcasts_flush_after_the_call_and_limit_is_128(rt: MatchRuntime) -> None:
    join(rt, "a")
    step = rt.apply(LoopCall(0, (msg("a", 3, b"later"), msg("a", 1, b"now"))))
    assert [(b.op_code, b.deferred) for b in step.outcome.broadcasts] == [(102, True), (100, False)]
    step = rt.apply(LoopCall(1, (msg("a", 11),)))
    assert step.crash is not None
    assert "too many deferred message broadcasts per tick" in step.crash.error


def test_nil_state_stops_quietly_and_later_calls_are_skipped(rt: MatchRuntime) -> None:
    join(rt, "a")
    step = rt.apply(LoopCall(0, (msg("a", 6),)))
    assert rt.stopped and rt.stop_reason == "nil-state" and step.crash is None
    assert step.outcome.stopped
    assert rt.tick == 0  # no tick increment after a loop that returned no state
    assert not rt.apply(LoopCall(0)).executed
    assert not rt.apply(TerminateCall(0, 10)).executed  # no terminate call either


def test_error_stops_with_callback_tick_and_traceback(rt: MatchRuntime) -> None:
    join(rt, "a")
    rt.apply(LoopCall(0))
    step = rt.apply(LoopCall(1, (msg("a", 7),)))
    crash = step.crash
    assert (crash.callback, crash.tick, crash.error_type) == ("match_loop", 1, "ValueError")
    assert crash.error == "ValueError: probe asked to fail"
    assert "probe.py" in crash.traceback and "raise ValueError" in crash.traceback
    assert rt.stopped and rt.stop_reason == "error"
    with pytest.raises(MatchStopped, match="match stopped"):
        rt.dispatcher.broadcast_message(1, b"x")


def test_kick_then_leave_with_reason_3(rt: MatchRuntime) -> None:
    join(rt, "a", "b")
    step = rt.apply(LoopCall(0, (msg("b", 4),)))
    assert step.outcome.kicks == (P("b"),)
    assert [p.username for p in rt.presences] == ["a", "b"]  # kicked on a later call, not now
    from replay.runtime import iter_steps

    steps = list(iter_steps(rt, [LoopCall(1)]))
    assert steps[0].synthetic and isinstance(steps[0].call, LeaveCall)
    assert rt.state["seen"][-2] == ["leave", 1, [["sess-b", 3]]]
    assert [p.username for p in rt.presences] == ["a"]


def test_signal_reply_and_terminate_grace_zero_stops(rt: MatchRuntime) -> None:
    step = rt.apply(SignalCall(0, "ping"))
    assert step.outcome.reply == "reply:ping"
    rt.apply(TerminateCall(0, 0))
    assert rt.stopped and rt.stop_reason == "terminated"


def test_label_update(rt: MatchRuntime) -> None:
    join(rt, "a")
    step = rt.apply(LoopCall(0, (msg("a", 5, b"new-label"),)))
    assert step.outcome.label_updates == ("new-label",)
    assert rt.label == "new-label" and rt.ctx["match_label"] == "new-label"


def test_hang_guard_reports_hang_and_process_stays_usable() -> None:
    rt = MatchRuntime(load_handler(PROBE), HEADER, hang_timeout=30.0)  # the clean calls: a limit never reached
    assert rt.apply(InitCall({})).crash is None
    join(rt, "a")
    rt.hang_guard.limit = HANG  # only the call that never returns runs under the short limit
    step = rt.apply(LoopCall(0, (msg("a", 8),)))
    assert step.crash is not None and step.crash.hung and step.crash.callback == "match_loop"
    rt.close()
    fresh = MatchRuntime(load_handler(PROBE), HEADER, hang_timeout=30.0)
    assert fresh.apply(InitCall({})).crash is None
    fresh.close()


def test_nondeterministic_values_come_from_the_recording_then_the_seed(rt: MatchRuntime) -> None:
    join(rt, "a")
    recorded = (Nondeterministic("time", 42), Nondeterministic("random", 0.25), Nondeterministic("uuid", "u-1"))
    rt.apply(LoopCall(0, (msg("a", 9),), None, recorded))
    assert rt.state["nd"] == [42, 0.25, "u-1"]
    rt.apply(LoopCall(1, (msg("a", 9),)))
    t, r, u = rt.state["nd"]
    assert t == 1_000_000 + 1 * 100  # started_ms + tick * 1000 / tick_rate
    other = MatchRuntime(load_handler(PROBE), HEADER)
    other.apply(InitCall({}))
    join(other, "a")
    other.apply(LoopCall(0, (msg("a", 9),), None, recorded))
    other.apply(LoopCall(1, (msg("a", 9),)))
    assert other.state["nd"] == [t, r, u]  # same seed, same values
    other.close()


def test_storage_version_rules(rt: MatchRuntime) -> None:
    join(rt, "a")
    value = {"b": 1, "a": [1, 2.0]}
    version = hashlib.md5(b'{"a":[1,2],"b":1}').hexdigest()  # Go's json.Marshal of the value

    def write(*objs: dict) -> list:
        rt.apply(LoopCall(rt.tick, (msg("a", 10, json.dumps(list(objs)).encode()),)))
        return rt.state["storage"][-1]

    base = {"collection": "c", "key": "k", "user_id": "user-a", "value": value}
    assert write({**base, "version": "*"}) == ["ok", [version]]  # insert-only on a new object
    assert write({**base, "version": "*"}) == ["rejected", "Storage write rejected - version check failed."]
    assert write({**base, "version": "nope"}) == ["rejected", "Storage write rejected - version check failed."]
    assert write({**base, "value": {"b": 2}, "version": version})[0] == "ok"  # compare-and-set
    assert write({**base, "value": {"b": 3}, "version": ""})[0] == "ok"  # upsert
    assert write({**base, "key": "other", "version": "abc"})[0] == "rejected"  # CAS on a missing object
    assert rt.nk.storage_read(
        [{"collection": "c", "key": "k", "user_id": "user-a"}, {"collection": "c", "key": "missing"}]
    ) == [
        {
            "collection": "c",
            "key": "k",
            "user_id": "user-a",
            "value": {"b": 3},
            "version": hashlib.md5(b'{"b":3}').hexdigest(),
            "permission_read": 1,
            "permission_write": 1,
        }
    ]


def test_unsupported_nk_function_is_a_clear_error(rt: MatchRuntime) -> None:
    with pytest.raises(NotAvailableInReplay, match=r"not available in replay: nk\.leaderboard_create"):
        rt.nk.leaderboard_create("x")


def test_missing_callback_is_a_load_error(tmp_path: Path) -> None:
    f = tmp_path / "half.py"
    f.write_text("def match_init(ctx, logger, nk, params):\n    return {}, 1, ''\n")
    with pytest.raises(HandlerLoadError, match="missing callback 'match_join_attempt'"):
        load_handler(str(f))


def test_class_handlers_load(tmp_path: Path) -> None:
    f = tmp_path / "cls.py"
    body = "\n".join(
        f"    def {name}(self, *a):\n        return {ret}"
        for name, ret in [
            ("match_init", "({'n': 0}, 5, 'cls')"),
            ("match_join_attempt", "(a[5], True, '')"),
            ("match_join", "a[5]"),
            ("match_leave", "a[5]"),
            ("match_loop", "dict(a[5], n=a[5]['n'] + 1)"),
            ("match_terminate", "a[5]"),
            ("match_signal", "(a[5], 'ok')"),
        ]
    )
    f.write_text("class Match:\n" + body + "\n")
    runtime = MatchRuntime(load_handler(f"{f}:Match"), HEADER)
    runtime.apply(InitCall({}))
    runtime.apply(LoopCall(0))
    assert runtime.state == {"n": 1} and runtime.label == "cls"
    runtime.close()


def test_replay_follows_handler_and_reports_divergence() -> None:
    """The recording says the join was accepted; the handler now rejects it: it is not added."""
    calls = [
        InitCall({}),
        JoinAttemptCall(0, P("a"), {"reject": "yes"}, Outcome(accept=True)),
        JoinCall(0, (P("a", 1),)),
        LoopCall(0, (), Outcome()),
    ]
    result = reproduce((HEADER, calls), PROBE)
    assert result.presences == ()
    assert not result.reproduced and result.outcome == "completed"
    assert [(d.callback, d.field, d.a, d.b) for d in result.divergences][:2] == [
        ("match_join_attempt", "accept", True, False),
        ("match_join_attempt", "reason", None, "rejected by probe"),
    ]


def test_replay_until_tick(tmp_path: Path) -> None:
    calls = [InitCall({})] + [LoopCall(t) for t in range(10)]
    result = reproduce((HEADER, calls), PROBE, ReplayOptions(until_tick=4))
    assert result.ticks_replayed == 5 and result.reproduced
