"""``iter_replay`` (what a replay reads a file with) is ``iter_events`` with the plain loops left in their
encoded parts: every other event is the same record, every plain loop decodes (``decode_loop``) to the
record ``iter_events`` gives, its parts say what that record holds, and a chunk that breaks a rule raises
the same ``CorruptRecording`` at the same event."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.errors import CorruptRecording
from recorder.format import Broadcast, LoopCall, MatchMessage, Outcome, Presence
from recorder.format._codec import encode_chunk, iter_events
from recorder.format._nkrec import _pack, _unpack
from recorder.format._schema import PLAIN_LOOP_FIELDS, decode_loop, iter_replay
from tests.common.model_strategies import event_lists

ORIGIN = ("x.nkrec", 4096, 3)
ALICE, BOB = Presence("u1", "s1", "alice", "n1"), Presence("u2", "s2", "bob", "n1")

# values a damaged or hostile writer could put anywhere in an outcome map or a broadcast row
JUNK = st.sampled_from([None, -1, 0, 1, 2**63, 2**64 - 1, 1.5, "x", b"x", True, False, [], [None], {}, {"d": 1}])
PLAIN_KEYS = st.sampled_from(["d", "b", "s", "x", "a", "r", "tr", "l", "rp", "k", "lu", "zz", 7])


def _decoded(payload: Any, reader: Any) -> tuple[list[Any], str | None]:
    """The items up to the first error, and that error (its text and field) or None."""
    out: list[Any] = []
    try:
        for item in reader(payload, ORIGIN):
            out.append(item)
    except CorruptRecording as exc:
        return out, f"{exc} [{exc.field}]"
    return out, None


def _messages(call: LoopCall) -> Any:
    try:
        return tuple(call.messages)
    except CorruptRecording as exc:
        return f"{exc} [{exc.field}]"


def _holds_to_reference(payload: Any) -> None:
    ref, ref_error = _decoded(copy.deepcopy(payload), iter_events)
    got, got_error = _decoded(copy.deepcopy(payload), iter_replay)
    assert got_error == ref_error
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        if type(g) is not tuple:
            assert type(g) is type(r) and g == r
            continue
        parts = dict(zip(PLAIN_LOOP_FIELDS, g, strict=True))
        call = decode_loop(parts["payload"], parts["index"], parts["presences"], parts["origin"])
        assert type(r) is LoopCall and type(call) is LoopCall
        assert (call.tick, call.outcome, call.nondeterministic) == (r.tick, r.outcome, r.nondeterministic)
        assert _messages(call) == _messages(r)
        # the parts say what the record holds, and a plain record holds nothing more
        assert parts["tick"] == r.tick and r.nondeterministic == ()
        assert parts["has_outcome"] == (r.outcome is not None)
        if r.outcome is not None:
            o = r.outcome
            assert parts["digest"] == o.digest
            rows = parts["broadcasts"] or []
            assert tuple(Broadcast(b[0], b[1], None, None, b[4], b[5]) for b in rows) == o.broadcasts
            assert (o.accept, o.reason, o.tick_rate, o.label, o.reply) == (None,) * 5
            assert (o.kicks, o.label_updates, o.stopped) == ((), (), False)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(event_lists(max_size=8))
def test_iter_replay_agrees_with_iter_events_on_recorded_chunks(events: list[Any]) -> None:
    _holds_to_reference(_unpack(_pack(encode_chunk(events))))


PLAIN = [
    LoopCall(1, (MatchMessage(ALICE, 1, b"m", True, 5),), Outcome(broadcasts=(Broadcast(10, b"p"),), digest=7)),
    LoopCall(2, (), Outcome(digest=8)),
    LoopCall(3, (MatchMessage(BOB, 2, None),)),
    LoopCall(4, (), Outcome(broadcasts=(Broadcast(11, None, None, None, False, True), Broadcast(12, b"")), digest=9)),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_iter_replay_agrees_with_iter_events_on_damaged_plain_loops(data: st.DataObject) -> None:
    """Plain loops with one part of their outcome, a broadcast row or the event itself replaced by junk:
    plain where the reference accepts the value and it changes nothing a plain loop holds, else decoded
    (or refused) by the reference."""
    payload = _unpack(_pack(encode_chunk(PLAIN)))
    ev = payload[1][data.draw(st.integers(0, len(PLAIN) - 1))]
    where = data.draw(st.sampled_from(["outcome", "row", "event"]))
    if where == "outcome":
        if len(ev) < 4 or ev[3] is None:
            ev[3:] = [{}]
        ev[3][data.draw(PLAIN_KEYS)] = data.draw(JUNK)
    elif where == "row" and len(ev) > 3 and isinstance(ev[3], dict) and ev[3].get("b"):
        row = ev[3]["b"][0]
        row[data.draw(st.integers(0, len(row) - 1))] = data.draw(JUNK)
    else:
        k = data.draw(st.integers(1, 4))
        ev[k:] = [data.draw(JUNK), *ev[k + 1 :]]
    _holds_to_reference(payload)


def test_plain_loops_come_in_parts_and_the_others_as_records() -> None:
    """The cases the replay's speed rests on are plain, the ones it must not compare itself are not."""
    calls = [
        *PLAIN,
        LoopCall(5, (), Outcome(broadcasts=(Broadcast(10, b"p", (ALICE,)),))),  # to a presence
        LoopCall(6, (), Outcome(broadcasts=(Broadcast(10, b"p", None, BOB),))),  # with a sender
        LoopCall(7, (), Outcome(kicks=(ALICE,))),
        LoopCall(8, (), Outcome(label_updates=("l",))),
        LoopCall(9, (), Outcome(stopped=True)),
    ]
    got = list(iter_replay(_unpack(_pack(encode_chunk(calls))), ORIGIN))
    assert [type(g) is tuple for g in got] == [True] * len(PLAIN) + [False] * 5


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p[1][0][3].__setitem__("d", -1), "events[0].outcome.digest"),
        (lambda p: p[1][0][3]["b"][0].__setitem__(4, 1), "events[0].outcome.broadcasts[0].reliable"),
        (lambda p: p[1][0][3]["b"][0].__setitem__(1, "text"), "events[0].outcome.broadcasts[0].data"),
        (lambda p: p[1][0][3].__setitem__("x", None), "events[0].outcome.stopped"),
        (lambda p: p[1][0].__setitem__(1, -2), "events[0].tick"),
    ],
)
def test_a_damaged_plain_loop_is_refused_as_the_reader_refuses_it(mutate: Any, field: str) -> None:
    payload = _unpack(_pack(encode_chunk(PLAIN)))
    mutate(payload)
    with pytest.raises(CorruptRecording) as err:
        list(iter_replay(payload, ORIGIN))
    assert err.value.field == field
    _holds_to_reference(payload)
