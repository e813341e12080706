"""The redaction layer (recorder.wire._redact) on literals: what it removes, what it keeps, and that a value
without secrets comes back as the very same object (no copy on the proxy's hot path)."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.format import (
    Broadcast,
    CrashMarker,
    JoinAttemptCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    WireEvent,
)
from recorder.wire import REDACTED, Redactor, session_token
from tests.common.leaks import fragments, strings

JWT = session_token.encode(session_token.Claims("t1", "u1", "ana", {"v": "1"}, 2_000_000_000, 1_700_000_000), "key")
OPAQUE = "opaque-refresh-7f3a9c"  # a refresh token that is not a JWT: only its key gives it away
ANA = Presence("u1", "s1", "ana", "n1")
R = Redactor()


def b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def test_secret_keys_anywhere_in_any_spelling() -> None:
    env = {
        "cid": "1",
        "a": [{"token": OPAQUE}, {"Refresh_Token": OPAQUE}, {"refreshToken": {"nested": 1}}],
        "refresh-token": 7,
        "tokens": "kept",
        "token": "",
    }
    assert R.value(env) == {
        "cid": "1",
        "a": [{"token": REDACTED}, {"Refresh_Token": REDACTED}, {"refreshToken": REDACTED}],
        "refresh-token": REDACTED,
        "tokens": "kept",
        "token": "",
    }


def test_user_keys_join_the_defaults_and_are_listed() -> None:
    r = Redactor(["password", "Api_Key", "token"])
    assert r.value({"PassWord": "hunter2", "apikey": "k", "x": "y"}) == {
        "PassWord": REDACTED,
        "apikey": REDACTED,
        "x": "y",
    }
    assert r.labels == (
        "key:token",
        "key:refresh_token",
        "key:password",
        "key:Api_Key",
        "jwt",
        "header:authorization",
        "header:proxy-authorization",
        "header:cookie",
        "header:set-cookie",
    )


def test_jwts_inside_any_text() -> None:
    assert R.text(JWT) == REDACTED
    assert R.text(f"Bearer {JWT} and again {JWT}.") == f"Bearer {REDACTED} and again {REDACTED}."
    assert R.value({"note": f"session {JWT}"}) == {"note": f"session {REDACTED}"}
    assert R.text("eyJ.not.a.jwt and 1.2.3 and a9b.c.d") == "eyJ.not.a.jwt and 1.2.3 and a9b.c.d"


def test_json_inside_strings_is_redacted_inside_at_any_depth() -> None:
    inner = json.dumps({"refresh_token": OPAQUE, "keep": [1, 2.5, None]})
    payload = json.dumps({"level": 1, "inner": inner})
    out = R.value({"rpc": {"id": "x", "payload": payload}})
    got = json.loads(out["rpc"]["payload"])
    assert got["level"] == 1 and json.loads(got["inner"]) == {"refresh_token": REDACTED, "keep": [1, 2.5, None]}
    formatted = '{ "a" : 1,\n  "tokens": "no secret here" }'  # mentions a key, holds no secret: kept as written
    assert R.text(formatted) is formatted


def test_text_that_is_not_json_loses_key_value_pairs() -> None:
    assert R.text(f'{{"token": "{OPAQUE}", broken') == f'{{"token": "{REDACTED}", broken'
    assert R.text(f"a=1&refresh_token={OPAQUE}&b=2") == f"a=1&refresh_token={REDACTED}&b=2"
    assert R.text(f"mytoken={OPAQUE}") == f"mytoken={OPAQUE}"  # another key


def test_base64_data_and_binary_are_searched_decoded() -> None:
    sent = {"match_data_send": {"match_id": "m", "op_code": "1", "data": b64({"token": OPAQUE, "x": 1})}}
    out = R.value(sent)["match_data_send"]
    assert json.loads(base64.b64decode(out["data"])) == {"token": REDACTED, "x": 1}
    clean = {"data": b64({"x": 1})}
    assert R.value(clean) is clean
    assert R.value({"data": f"not base64 {JWT}"}) == {"data": f"not base64 {REDACTED}"}
    binary = b"\xff\x00" + JWT.encode() + b"\xfe"
    assert R.bytes(binary) == b"\xff\x00" + REDACTED.encode() + b"\xfe"


def test_headers() -> None:
    got = R.headers(
        [
            ("Authorization", f"Bearer {JWT}"),
            ("Cookie", "sid=abc"),
            ("X-Session", JWT),
            ("User-Agent", "nakama-js/2.8"),
            ("Accept", "a"),
            ("accept", "b"),
        ]
    )
    assert got == {
        "authorization": REDACTED,
        "cookie": REDACTED,
        "x-session": REDACTED,
        "user-agent": "nakama-js/2.8",
        "accept": "a, b",
    }


def test_events_of_both_kinds() -> None:
    loop = LoopCall(
        3,
        (MatchMessage(ANA, 1, json.dumps({"token": OPAQUE}).encode()), MatchMessage(ANA, 2, b"\x01\x02")),
        Outcome(
            broadcasts=(Broadcast(1, f"hi {JWT}".encode(), (ANA,), ANA),),
            snapshot=b"\x81\xa1s" + JWT.encode(),
            digest=5,
        ),
        (Nondeterministic("http", {"body": {"token": OPAQUE}}),),
    )
    out = R.event(loop)
    assert [m.data for m in out.messages] == [b'{"token":"<redacted>"}', b"\x01\x02"]  # rewritten compactly
    assert out.messages[0].sender is ANA and out.messages[1] is loop.messages[1]
    assert out.outcome.broadcasts[0].data == f"hi {REDACTED}".encode() and out.outcome.broadcasts[0].targets == (ANA,)
    assert out.outcome.snapshot is None and out.outcome.digest == 5  # an encoding cannot be edited: dropped
    assert out.nondeterministic[0].value == {"body": {"token": REDACTED}}
    attempt = JoinAttemptCall(0, ANA, {"client_version": "1.4", "auth": JWT}, vars={"token": OPAQUE})
    assert R.event(attempt) == JoinAttemptCall(
        0, ANA, {"client_version": "1.4", "auth": REDACTED}, vars={"token": REDACTED}
    )
    assert R.event(SignalCall(1, JWT)).data == REDACTED
    assert R.event(CrashMarker("match_loop", 3, f"KeyError: '{JWT}'", f"line 1\nKeyError: '{JWT}'")) == CrashMarker(
        "match_loop", 3, f"KeyError: '{REDACTED}'", f"line 1\nKeyError: '{REDACTED}'"
    )
    wire = WireEvent("ws1", "in", 0.5, "envelope", raw=f"not json {JWT}", close_reason="")
    assert R.event(wire).raw == f"not json {REDACTED}"


def test_values_without_secrets_are_not_copied() -> None:
    loop = LoopCall(3, (MatchMessage(ANA, 1, b'{"x":1}'),), Outcome(snapshot=b"\x80", digest=1))
    assert R.event(loop) is loop
    env = {"cid": "1", "match_data": {"match_id": "m", "presence": {"user_id": "u"}, "data": b64({"x": 1})}}
    assert R.value(env) is env


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "data", "tokens"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(
    value=_json,
    where=st.lists(st.integers(0, 3), max_size=4),
    secret=st.sampled_from([JWT, OPAQUE]),
    key=st.sampled_from(["token", "refreshToken", "REFRESH_TOKEN"]),
    as_text=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_a_secret_planted_anywhere_is_gone(
    value: object, where: list[int], secret: str, key: str, as_text: bool
) -> None:
    planted: object = {key: secret} if secret is OPAQUE else f"x {secret} y"
    if as_text:
        planted = json.dumps(planted)  # a payload string holding JSON
    root = {"root": value}
    node: object = root
    for i in where:  # walk into the random value, then plant the secret there
        if isinstance(node, dict) and node:
            k = list(node)[i % len(node)]
            if not isinstance(node[k], (dict, list)) or not node[k]:
                node[k] = planted
                break
            node = node[k]
        elif isinstance(node, list) and node:
            j = i % len(node)
            if not isinstance(node[j], (dict, list)) or not node[j]:
                node[j] = planted
                break
            node = node[j]
    else:
        root["planted"] = planted
    out = R.value(root)
    texts = list(strings(out))
    assert not [f for f in fragments(secret) for t in texts if f in t]
    assert R.value(out) == out  # redacting twice changes nothing more
