"""The field tables themselves: what they promise about the chunk and JSON forms they generate."""

from __future__ import annotations

import dataclasses

import pytest

from recorder.errors import CorruptRecording, InterchangeError
from recorder.format import CrashMarker, Header, InitCall, JoinAttemptCall, LoopCall, Presence, jsonl_lines, read_jsonl
from recorder.format._codec import encode_chunk, iter_events
from recorder.format._schema import BOTH, KINDS, OUTCOME, describe, source

ALICE = Presence("u1", "s1", "alice", "n1")


def test_every_kind_has_its_code_in_order_and_names_every_field() -> None:
    assert [k.code for k in KINDS] == list(range(len(KINDS)))
    for kind in KINDS:
        assert {f.name for f in kind.fields} == {f.name for f in dataclasses.fields(kind.cls)}
        assert kind.name == kind.cls.kind  # type: ignore[attr-defined]


def test_fields_holding_their_default_are_left_off_the_chunk_and_the_line() -> None:
    bare = [JoinAttemptCall(3, ALICE), CrashMarker("match_loop", 4, "boom")]
    _presences, events = encode_chunk(bare)
    assert events == [[1, 3, 0, {}], [7, "match_loop", 4, "boom", ""]]  # vars, outcome, error_type left off
    lines = list(jsonl_lines(Header(match_id="m"), bare))
    assert lines[1] == (
        '{"kind":"join_attempt","tick":3,"presence":{"user_id":"u1","session_id":"s1","username":"alice",'
        '"node":"n1","reason":0},"metadata":{}}\n'
    )
    assert lines[2] == '{"kind":"crash","callback":"match_loop","tick":4,"error":"boom"}\n'  # traceback "": left out
    assert all(f.omit == BOTH for f in OUTCOME.fields)


def test_a_chunk_event_of_the_wrong_length_is_refused_with_its_shape() -> None:
    payload = [[], [[2, 0, [], None, None, None]]]
    with pytest.raises(CorruptRecording) as err:
        list(iter_events(payload, ("x.nkrec", 10, 1)))
    assert "a join event is [2, tick, presences, outcome?, nondeterministic?] (3 to 5 items), got 6" in str(err.value)
    assert err.value.field == "events[0]"


def test_json_lines_name_the_missing_and_the_unknown_field() -> None:
    head = '{"kind":"header","match_id":"m"}\n'
    for line, field, problem in [
        ('{"kind":"signal","tick":1}\n', "data", "missing"),
        ('{"kind":"loop","tick":1,"mesages":[]}\n', "mesages", "unknown field"),
        ('{"kind":"init","params":{},"outcome":{"digest":-1}}\n', "outcome.digest", "uint64"),
    ]:
        with pytest.raises(InterchangeError) as err:
            list(read_jsonl([head, line], "f.jsonl")[1])
        assert (err.value.line, err.value.field) == (2, field) and problem in err.value.problem


def test_an_init_line_without_params_takes_the_header_params() -> None:
    head = '{"kind":"header","match_id":"m","params":{"mode":"duel"}}\n'
    (init,) = read_jsonl([head, '{"kind":"init"}\n'])[1]
    assert init == InitCall({"mode": "duel"}, tick=0)


def test_the_tables_can_be_read() -> None:
    text = describe(next(k for k in KINDS if k.cls is LoopCall))
    assert text.splitlines()[0] == "LoopCall (kind 'loop', code 4)"
    assert text.splitlines()[3].split() == ["messages", "2", "messages", "[MatchMessage]", "()"]
    assert "yield _build_loop(" in source("iter_events")
