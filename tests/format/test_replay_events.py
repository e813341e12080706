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
from recorder.format import Broadcast, JoinCall, LoopCall, MatchMessage, Nondeterministic, Outcome, Presence
from recorder.format._codec import encode_chunk, iter_events
from recorder.format._model import MessageBatch
from recorder.format._nkrec import _ChunkTree, _pack, _unpack
from recorder.format._schema import PLAIN_LOOP_FIELDS, decode_loop, iter_replay, iter_replay_typed, typed_chunk
from tests.common.model_strategies import (
    U64_MAX,
    binaries,
    event_lists,
    int64s,
    messages,
    nondeterministic,
    outcomes,
    presence_pool,
    ticks,
)

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
        assert parts["messages"] is None  # the reference leaves them to rows_decoder
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


def _damaged_plain(data: st.DataObject, wheres: list[str], event_items: tuple[int, int]) -> list[Any]:
    """PLAIN's chunk payload (unpacked) with one value replaced by junk, in one of ``wheres``: an outcome key, a
    broadcast row's item, a message row's item, the presence row's, or (otherwise) the event's item at an index
    in ``event_items``."""
    payload = _unpack(_pack(encode_chunk(PLAIN)))
    ev = payload[1][data.draw(st.integers(0, len(PLAIN) - 1))]
    where = data.draw(st.sampled_from(wheres))
    if where == "outcome":
        if len(ev) < 4 or ev[3] is None:
            ev[3:] = [{}]
        ev[3][data.draw(PLAIN_KEYS)] = data.draw(JUNK)
    elif where == "row" and len(ev) > 3 and isinstance(ev[3], dict) and ev[3].get("b"):
        row = ev[3]["b"][0]
        row[data.draw(st.integers(0, len(row) - 1))] = data.draw(JUNK)
    elif where == "message" and ev[2]:
        _put(ev[2][0], data.draw(st.integers(0, 5)), data.draw(st.one_of(JUNK, st.integers(-3, 4))))
    elif where == "presence":
        _put(payload[0][0], data.draw(st.integers(0, 5)), data.draw(JUNK))
    else:
        k = data.draw(st.integers(*event_items))
        ev[k:] = [data.draw(JUNK), *ev[k + 1 :]]
    return payload


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_iter_replay_agrees_with_iter_events_on_damaged_plain_loops(data: st.DataObject) -> None:
    """Plain loops with one part of their outcome, a broadcast row or the event itself replaced by junk:
    plain where the reference accepts the value and it changes nothing a plain loop holds, else decoded
    (or refused) by the reference."""
    payload = _damaged_plain(data, ["outcome", "row", "event"], (1, 4))
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


# -- the typed decoding (a replay's fast path) against the reference --------------------------------------


def _message_list(part: tuple[Any, ...], decoded: Any) -> Any:
    """A plain loop's messages as the replay hands them over: ``decoded`` (the reader's), or its rows decoded
    and checked as ``reproduce`` does (the error text and field when they are refused)."""
    if decoded is not None:
        return tuple(decoded)
    try:
        return tuple(MessageBatch.rows_decoder(part[1], part[5]))
    except (ValueError, TypeError, IndexError, KeyError):
        try:
            tuple(MessageBatch(part[1], part[5], part[8], part[7]))
        except CorruptRecording as exc:
            return f"{exc} [{exc.field}]"
        raise


def _typed_holds_to_reference(data: bytes) -> bool:
    """Where the typed decoding accepts chunk bytes, a replay reads what the reference reads from them: the
    reference takes every event for a plain loop, both give the same parts (rows and broadcast rows as values),
    the same messages (or the same error for them), the same records (``decode_loop``) and the same error.
    Returns whether the typed decoding accepted them."""
    typed = typed_chunk(data)
    try:
        tree = _unpack(data)
    except Exception:
        assert typed is None, "the typed decoding accepts bytes msgpack refuses"
        return False
    if typed is None:
        return False
    ref, ref_error = _decoded(copy.deepcopy(tree), iter_replay)
    got, got_error = _decoded(_ChunkTree(typed, data, ORIGIN), lambda t, o: iter_replay_typed(t.typed, t, o))
    assert got_error == ref_error
    assert len(got) == len(ref)
    assert all(type(r) is tuple for r in ref), (
        "the typed decoding accepts an event the reference does not take as plain"
    )
    for g, r in zip(got, ref, strict=True):
        gp, rp = dict(zip(PLAIN_LOOP_FIELDS, g, strict=True)), dict(zip(PLAIN_LOOP_FIELDS, r, strict=True))
        for name in ("tick", "has_outcome", "digest", "presences", "index", "origin"):
            assert gp[name] == rp[name], name
        assert [list(x) for x in gp["rows"]] == rp["rows"]
        assert (gp["broadcasts"] is None) == (rp["broadcasts"] is None)
        assert [list(x) for x in gp["broadcasts"] or []] == (rp["broadcasts"] or [])
        assert rp["messages"] is None
        assert _message_list(g, gp["messages"]) == _message_list(r, None)
        mine = decode_loop(gp["payload"], gp["index"], gp["presences"], gp["origin"])
        theirs = decode_loop(rp["payload"], rp["index"], rp["presences"], rp["origin"])
        assert (mine.tick, mine.outcome, mine.nondeterministic) == (
            theirs.tick,
            theirs.outcome,
            theirs.nondeterministic,
        )
        assert _messages(mine) == _messages(theirs)
    return True


@st.composite
def plain_loop_chunks(draw: st.DrawFn) -> list[Any]:
    """Loops as a match writes them after its first chunk (messages, a digest, broadcasts to everyone, a
    snapshot), now and then one that is not plain (nondeterministic values, any outcome)."""
    pool = draw(presence_pool)
    plain_outcomes = st.builds(
        Outcome,
        broadcasts=st.lists(
            st.builds(
                Broadcast, int64s, st.one_of(st.none(), binaries), st.none(), st.none(), st.booleans(), st.booleans()
            ),
            max_size=2,
        ).map(tuple),
        digest=st.one_of(st.none(), st.integers(0, U64_MAX)),
        snapshot=st.one_of(st.none(), binaries),
    )
    loop = st.builds(
        LoopCall,
        ticks,
        st.lists(messages(pool), max_size=4).map(tuple),
        st.one_of(st.none(), plain_outcomes, plain_outcomes, plain_outcomes, outcomes(pool)),
        st.one_of(st.just(()), st.just(()), st.just(()), nondeterministic),
    )
    return draw(st.lists(loop, min_size=1, max_size=6))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(plain_loop_chunks())
def test_the_typed_decoding_agrees_with_the_reference_on_written_chunks(loops: list[Any]) -> None:
    _typed_holds_to_reference(_pack(encode_chunk(loops)))


def test_the_typed_decoding_takes_what_a_match_writes() -> None:
    """The replay's fast path is taken where it matters: a chunk of plain loops (and refused for the rest)."""
    assert _typed_holds_to_reference(_pack(encode_chunk(PLAIN)))
    for other in (
        LoopCall(5, (), Outcome(kicks=(ALICE,))),
        LoopCall(5, (), Outcome(label_updates=("l",))),
        LoopCall(5, (), Outcome(broadcasts=(Broadcast(10, b"p", (ALICE,)),))),
        LoopCall(5, (), None, (Nondeterministic("time", 1),)),
        JoinCall(5, (ALICE,)),
    ):
        assert typed_chunk(_pack(encode_chunk([*PLAIN, other]))) is None


def _put(row: list[Any], j: int, value: Any) -> None:
    """Replace item ``j`` of ``row``, or add one at its end (``j`` past it)."""
    if j < len(row):
        row[j] = value
    else:
        row.append(value)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_the_typed_decoding_agrees_with_the_reference_on_damaged_values(data: st.DataObject) -> None:
    """Plain loops with one value replaced by junk (as in the test above), packed: the typed decoding accepts
    them only where the reference reads the same."""
    payload = _damaged_plain(data, ["outcome", "row", "message", "event", "presence"], (0, 5))
    _typed_holds_to_reference(_pack(payload))


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_the_typed_decoding_agrees_with_the_reference_on_mutated_bytes(data: st.DataObject) -> None:
    """A chunk's bytes with bytes replaced, dropped or added: whatever the typed decoding still accepts, the
    reference reads the same."""
    raw = bytearray(_pack(encode_chunk(data.draw(st.sampled_from([PLAIN, PLAIN[1:3], PLAIN[3:]])))))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        what = data.draw(st.sampled_from(["replace", "drop", "add"]))
        if what == "replace":
            raw[at] = data.draw(st.integers(0, 255))
        elif what == "drop":
            del raw[at : at + data.draw(st.integers(1, 4))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        if not raw:
            return
    _typed_holds_to_reference(bytes(raw))


@pytest.mark.parametrize(
    ("mutate", "accepted"),
    [
        (lambda p: p[1][0][2][0].__setitem__(0, -1), False),  # a sender before the table: ps[-1] would be the last
        (lambda p: p[1][0][2][0].__setitem__(0, 9), True),  # past it: the reader's error, from the rows' checks
        (lambda p: p[1][0][3].__setitem__("k", []), False),  # an outcome key a plain loop does not hold, empty
        (lambda p: p[1][0][3].__setitem__("d", 2**64 - 1), True),  # the largest digest
        (lambda p: p[1][0][2][0].__setitem__(1, 2**63), False),  # an op code past int64
        (lambda p: p[1][0][2][0].__setitem__(2, "text"), False),  # message data that is text
        (lambda p: p[1][0].append(0), False),  # nondeterministic values that are not a list
        (lambda p: p[1][0].append([]), True),  # none, written as an empty list
        (lambda p: p[1][1].__setitem__(1, -1), False),  # a negative tick
        (lambda p: p[0][0].__setitem__(4, True), False),  # a presence reason that is a boolean
        (lambda p: p[0][0].pop(), True),  # a presence row too short: the whole chunk is the reference's (its error)
    ],
)
def test_the_typed_decoding_refuses_what_the_reference_refuses(mutate: Any, accepted: bool) -> None:
    payload = _unpack(_pack(encode_chunk(PLAIN)))
    mutate(payload)
    assert _typed_holds_to_reference(_pack(payload)) is accepted
