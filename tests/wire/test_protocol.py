"""recorder.wire.protocol: Nakama's JSON realtime envelopes, parsed and built without I/O."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recorder.wire import protocol as P
from tests.common.paths import DATA

TRANSCRIPT = (
    DATA / "nakama-3.40-echo-crash.transcript.jsonl"
)  # every envelope three clients saw in a real Nakama 3.40 echo match

text = st.text(max_size=12)
int64 = st.integers(-(2**63), 2**63 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
presence = st.builds(P.UserPresence, text, text, text, st.booleans(), st.none() | text)
presences = st.lists(presence, max_size=3).map(tuple)
str_map = st.dictionaries(text, text, max_size=3)
json_leaf = st.none() | st.booleans() | st.integers(-1000, 1000) | text
json_value = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=6
)

messages = st.one_of(
    st.builds(P.MatchCreate, text),
    st.builds(P.MatchJoin, st.none() | text, st.none(), str_map),
    st.builds(P.MatchJoin, st.none(), st.none() | text, str_map),
    st.builds(P.Match, text, st.booleans(), st.none() | text, int32, presences, st.none() | presence),
    st.builds(P.MatchDataSend, text, int64, st.binary(max_size=40), presences, st.booleans()),
    st.builds(P.MatchData, text, st.none() | presence, int64, st.binary(max_size=40), st.booleans()),
    st.builds(P.MatchPresenceEvent, text, presences, presences),
    st.builds(P.MatchLeave, text),
    st.builds(P.Rpc, text, text, text),
    st.builds(P.Error, int32, text, str_map),
    st.builds(P.StatusPresenceEvent, presences, presences),
    st.just(P.Ping()),
    st.just(P.Pong()),
    st.builds(
        P.Unmodelled,
        st.sampled_from(sorted(P.NAKAMA_KINDS - set(P.MESSAGE_TYPES))),
        st.dictionaries(text, json_value, max_size=3),
    ),
)
envelopes = st.builds(P.Envelope, messages, text)


@settings(max_examples=300)
@given(envelopes)
@example(P.Envelope(P.MatchDataSend("m.n", 2**63 - 1, b""), "1"))
@example(P.Envelope(P.MatchDataSend("m.n", -(2**63), b"\x00\xff"), ""))
@example(P.Envelope(P.MatchData("m.n", P.UserPresence("u", "s", "n"), 0, b"", False)))
@example(P.Envelope(P.MatchJoin(match_id=""), "7"))
@example(P.Envelope(P.Match(label=""), ""))
@example(P.Envelope(P.Ping(), "1"))
def test_every_kind_round_trips(env: P.Envelope) -> None:
    out = P.build(env)
    assert P.parse(out) == env
    assert P.parse(out.encode("utf-8")) == env
    assert P.build(P.parse(out)) == out  # type: ignore[arg-type]


@settings(max_examples=100)
@given(envelopes)
def test_defaults_are_omitted_and_op_code_is_a_string(env: P.Envelope) -> None:
    obj = P.to_object(env)
    body = obj.get(env.kind, {})

    def walk(v):  # type: ignore[no-untyped-def]
        """Field values (list elements themselves are not fields: an all-default presence is ``{}``)."""
        if isinstance(v, dict):
            for x in v.values():
                yield x
                yield from walk(x)
        elif isinstance(v, list):
            for x in v:
                yield from walk(x)

    if not isinstance(env.message, P.Unmodelled):
        assert not [v for v in walk(body) if v is not None and not isinstance(v, str) and v in (0, False, [])]
        assert "" not in [v for k, v in body.items() if k not in ("match_id", "token", "label")]
    if "op_code" in body:
        assert isinstance(body["op_code"], str) and body["op_code"] != "0"
    if "data" in body:
        assert len(body["data"]) % 4 == 0  # padded


def transcript() -> list[dict]:
    return [json.loads(line) for line in TRANSCRIPT.read_text().splitlines() if line.strip()]


def test_real_nakama_transcript_parses_and_rebuilds_exactly() -> None:
    rows = transcript()
    kinds = set()
    for i, row in enumerate(rows):
        raw = json.dumps(row["envelope"])
        env = P.parse(raw)
        assert isinstance(env, P.Envelope), f"line {i + 1}: {env}"
        assert not isinstance(env.message, P.Unmodelled)
        kinds.add(env.kind)
        assert P.to_object(env) == row["envelope"], f"line {i + 1}"
    assert kinds == {"rpc", "match_join", "match", "match_presence_event", "match_data_send", "match_data"}


def test_transcript_values_decode_to_nakama_types() -> None:
    rows = transcript()
    sends = [P.parse(json.dumps(r["envelope"])) for r in rows if "match_data_send" in r["envelope"]]
    crash = sends[-1].message  # type: ignore[union-attr]
    assert crash == P.MatchDataSend("1762518a-825f-467c-a416-1a7ad0afe835.nakama1", 99, b"boom")
    binary = next(s.message for s in sends if s.message.op_code == 2)  # type: ignore[union-attr]
    assert binary.data == b"\x00\x01\xfa\xff"
    first_match = next(P.parse(json.dumps(r["envelope"])) for r in rows if "match" in r["envelope"])
    m = first_match.message  # type: ignore[union-attr]
    assert m.authoritative and m.size == 0 and m.presences == () and m.self_presence.username == "ana-smpl1"


@pytest.mark.parametrize(
    "text, field, problem",
    [
        ("{", "", "invalid JSON"),
        ("[]", "", "JSON object"),
        ('{"cid": 1, "ping": {}}', "cid", "expected a string"),
        ('{"pingg": {}}', "pingg", "unknown field"),
        ('{"ping": {"x": 1}}', "ping.x", "unknown field"),
        ('{"match_data_send": {"op_code": "1.5"}}', "match_data_send.op_code", "integer"),
        ('{"match_data_send": {"op_code": "9223372036854775808"}}', "match_data_send.op_code", "out of range"),
        ('{"match_data_send": {"op_code": true}}', "match_data_send.op_code", "integer"),
        ('{"match_data_send": {"data": "***"}}', "match_data_send.data", "base64"),
        ('{"match_data_send": {"reliable": "yes"}}', "match_data_send.reliable", "true or false"),
        ('{"match_join": {"match_id": "a", "token": "b"}}', "match_join", "oneof"),
        ('{"match_join": {"metadata": {"v": 1}}}', "match_join.metadata.v", "expected a string"),
        ('{"match": {"self": {"user_idd": "x"}}}', "match.self.user_idd", "unknown field"),
        ('{"ping": {}, "pong": {}}', "pong", "more than one"),
        ('{"ping": {}, "ping": {}}', "ping", "duplicate"),
        ('{"rpc": {"id": "\\ud800"}}', "rpc.id", "UTF-8"),
        ('{"match_data_send": {"op_code": NaN}}', "", "NaN"),
    ],
)
def test_malformed_input_is_a_violation_naming_the_field(text: str, field: str, problem: str) -> None:
    v = P.parse(text)
    assert isinstance(v, P.Violation)
    assert v.field == field and problem in v.problem, v
    assert v.reply is None and v.close_reason == P.CLOSE_MALFORMED


def test_missing_message_gets_nakamas_error_reply() -> None:
    v = P.parse('{"cid": "4"}')
    assert isinstance(v, P.Violation)
    assert v.reply == P.Envelope(P.Error(P.ErrorCode.MISSING_PAYLOAD, "Missing message."), "4")
    assert v.close_reason == P.CLOSE_PROCESSING


def test_input_leniency_matches_protojson() -> None:
    env = P.parse('{"match_data_send": {"op_code": 7, "data": "AAH6_w", "presences": null, "reliable": null}}')
    assert env == P.Envelope(P.MatchDataSend(op_code=7, data=b"\x00\x01\xfa\xff"))
    assert P.build(env) == '{"match_data_send":{"op_code":"7","data":"AAH6/w=="}}'  # type: ignore[arg-type]
    assert P.parse('{"error": {"code": "5"}}') == P.Envelope(P.Error(5))
    assert P.parse(b"\xff") == P.Violation("invalid UTF-8 at byte 0")


def test_unmodelled_kinds_pass_through_untouched() -> None:
    obj = {"cid": "3", "channel_join": {"target": "lobby", "type": 1, "persistence": False}}
    env = P.parse(json.dumps(obj))
    assert env == P.Envelope(P.Unmodelled("channel_join", obj["channel_join"]), "3")
    assert P.to_object(env) == obj  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.text(max_size=60) | json_value.map(json.dumps) | st.binary(max_size=40))
def test_parse_never_raises(data) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(P.parse(data), (P.Envelope, P.Violation))


def test_helpers_read_kind_and_match_id_without_validation() -> None:
    obj = {"cid": "1", "match_data": {"match_id": "m.n"}}
    assert P.envelope_kind(obj) == "match_data" and P.envelope_match_id(obj) == "m.n"
    assert P.envelope_match_id({"rpc": {"match_id": 5}}) == "" and P.envelope_kind({"cid": "1"}) == ""
