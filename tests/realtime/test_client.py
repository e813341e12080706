"""live replay's reading of a server's envelopes and closes, fed literals (replay.realtime._client)."""

from __future__ import annotations

from replay.realtime import ClientView
from replay.realtime._client import JoinVerdict, crash_close, join_verdict, match_crashed, probe_verdict

ME = {"user_id": "u", "session_id": "s1", "username": "ana"}


def test_join_and_probe_verdicts() -> None:
    assert join_verdict({"cid": "1", "match": {"match_id": "m.n", "self": ME}}) == JoinVerdict(True, "s1")
    assert join_verdict({"cid": "1", "error": {"code": 5, "message": "full"}}) == JoinVerdict(
        False, "", "error 5: full"
    )
    assert join_verdict({"cid": "1", "match": "?"}) == JoinVerdict(False, "", "error 0: ")
    assert probe_verdict({"match": {}}) == "running"
    assert probe_verdict({"error": {"code": 4, "message": "Match not found"}}) == "gone"
    assert probe_verdict({"error": {"code": 3, "message": "Invalid match ID"}}) == ""


def test_the_view_follows_joins_kicks_and_broadcasts() -> None:
    view = ClientView()
    view.joined(join_verdict({"match": {"self": ME}}))
    assert (view.session_id, view.in_match, view.joined_ever) == ("s1", True, True)
    seen = view.receive({"match_presence_event": {"joins": [ME, {"session_id": "s2"}]}})
    assert seen.joins == ("s1", "s2") and view.joins_seen == {"s1", "s2"} and seen.match_data is None
    assert view.receive({"match_presence_event": {"leaves": [{"session_id": "s2"}]}}).cid == ""
    assert view.in_match  # another's leave
    seen = view.receive({"cid": "4", "match_data": {"op_code": "1"}})
    assert seen.cid == "4" and seen.match_data == {"op_code": "1"}
    view.receive({"match_presence_event": {"leaves": [ME]}})  # kicked
    assert not view.in_match and view.joined_ever


def test_a_crash_is_every_socket_in_the_match_closed_by_the_server_that_way() -> None:
    crash = ("server", 1000, "server-side session disconnect")
    assert crash_close(*crash)
    assert not crash_close("client", 1000, "server-side session disconnect")
    assert not crash_close("server", 1000, "session outgoing queue full")
    assert match_crashed([crash, crash])
    assert not match_crashed([crash, None])  # one still open
    assert not match_crashed([crash, ("server", 1001, "")])
    assert not match_crashed([])
