"""The realtime core fed literals: envelopes in, envelopes and closes out, no sockets (replay.realtime._core).

The handler is real (tests/common/handlers/realtime_rules.py through the deterministic runtime); ids come from a
counter so every expected envelope is a literal. tests/live/test_wire.py keeps the same rules end to end over
sockets for a few cases, tests/js with the real nakama-js.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from recorder.format import Header
from recorder.wire import protocol as P
from replay.realtime import CloseSocket, MatchEnded, MatchStarted, Realtime, SendEnvelope
from replay.runtime._driver import MatchDriver
from tests.common.paths import TEST_HANDLERS

RULES = str(TEST_HANDLERS / "realtime_rules.py")
NODE = "nakama1"


def uuid_of(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


class World:
    """A core with the rules handler, named sessions, and the effects of each step."""

    def __init__(self, handler: str = RULES) -> None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("realtime_rules_rpcs", handler)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.counter = 0
        self.events: list[str] = []
        self.drivers: list[MatchDriver] = []
        self.core = Realtime(
            self.new_match,
            node=NODE,
            rpcs={
                "echo": lambda ctx, p: module.rpc_echo(ctx, None, None, p),
                "fail": lambda ctx, p: module.rpc_fail(ctx, None, None, p),
            },
            on_event=self.events.append,
            new_id=self.new_id,
            handler="rules.py",
        )
        self.handler = handler
        self.sid: dict[str, str] = {}

    def new_id(self) -> str:
        self.counter += 1
        return uuid_of(self.counter)

    def new_match(self, match_id: str, params: dict[str, Any]) -> MatchDriver:
        d = MatchDriver(self.handler, Header(match_id=match_id, node=NODE, source="serve"), hang_timeout=None)
        self.drivers.append(d)
        return d

    def connect(self, name: str) -> str:
        s = self.core.connect(f"user-{name}", name, {"v": "1"})
        self.sid[name] = s.id
        return s.id

    def send(self, name: str, obj: dict[str, Any] | str | bytes) -> list[Any]:
        text = obj if isinstance(obj, str | bytes) else json.dumps(obj)
        self.core.receive(self.sid[name], text)
        return self.out()

    def out(self) -> list[Any]:
        """The effects, with sessions by name and envelopes as their JSON objects."""
        names = {v: k for k, v in self.sid.items()}
        shown: list[Any] = []
        for e in self.core.take():
            if isinstance(e, SendEnvelope):
                shown.append((names[e.session], P.to_object(e.envelope)))
            elif isinstance(e, CloseSocket):
                shown.append((names[e.session], "close", e.code, e.reason))
            else:
                shown.append(e)
        return shown

    def create(self, name: str) -> str:
        [started, (who, reply)] = self.send(name, {"cid": "c", "rpc": {"id": "create_match", "payload": "{}"}})
        match_id = json.loads(reply["rpc"]["payload"])["match_id"]
        assert who == name and started == MatchStarted(match_id, 10)
        return match_id

    def presence(self, name: str) -> dict[str, str]:
        return {"user_id": f"user-{name}", "session_id": self.sid[name], "username": name}


def event(match_id: str, joins: list[dict[str, str]] = (), leaves: list[dict[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    body: dict[str, Any] = {"match_id": match_id}
    if joins:
        body["joins"] = list(joins)
    if leaves:
        body["leaves"] = list(leaves)
    return {"match_presence_event": body}


def data(match_id: str, op: int, payload: bytes, sender: dict[str, str] | None = None) -> dict[str, Any]:
    import base64

    body: dict[str, Any] = {"match_id": match_id, "op_code": str(op), "data": base64.b64encode(payload).decode()}
    if sender is not None:
        body["presence"] = sender
    body["reliable"] = True
    return {"match_data": body}


@pytest.fixture
def world() -> World:
    return World()


def test_ping_pong_and_kinds_serve_does_not_model(world: World) -> None:
    world.connect("ana")
    assert world.send("ana", {"cid": "1", "ping": {}}) == [("ana", {"cid": "1", "pong": {}})]
    assert world.send("ana", {"pong": {}}) == []
    assert world.send("ana", {"cid": "2", "status_follow": {}}) == [
        ("ana", {"cid": "2", "error": {"code": 1, "message": "status_follow is not supported by nakama-replay serve"}})
    ]


def test_malformed_input_closes_the_socket_and_nothing_follows(world: World) -> None:
    world.connect("ana")
    world.connect("ben")
    assert world.send("ana", '{"match_data_send": {"op_code": "x"}}') == [
        ("ana", "close", 1000, "received malformed payload")
    ]
    assert world.send("ana", {"cid": "1", "ping": {}}) == []  # closing: the core reads no more from it
    assert world.send("ben", b"\x00") == [("ben", "close", 1000, "received unexpected WebSocket message type")]


def test_rpc_error_codes_and_results(world: World) -> None:
    world.connect("ana")
    assert world.send("ana", {"cid": "1", "rpc": {}}) == [
        ("ana", {"cid": "1", "error": {"code": 3, "message": "RPC ID must be set"}})
    ]
    assert world.send("ana", {"cid": "2", "rpc": {"id": "nope"}}) == [
        ("ana", {"cid": "2", "error": {"code": 6, "message": "RPC function not found"}})
    ]
    assert world.send("ana", {"cid": "3", "rpc": {"id": "fail"}}) == [
        ("ana", {"cid": "3", "error": {"code": 7, "message": "no such thing"}})
    ]
    assert world.send("ana", {"cid": "4", "rpc": {"id": "ECHO", "payload": "hi"}}) == [
        ("ana", {"cid": "4", "rpc": {"id": "ECHO", "payload": "ana:hi"}})  # ids are case-insensitive, ctx has the user
    ]
    assert world.send("ana", {"cid": "5", "rpc": {"id": "create_match", "payload": "[1]"}}) == [
        ("ana", {"cid": "5", "error": {"code": 7, "message": "create_match payload must be a JSON object"}})
    ]


def test_join_verdicts_and_their_error_codes(world: World) -> None:
    world.connect("eve")
    mid = world.create("eve")
    assert world.events == [f"match {mid} started: rules.py, tick rate 10, label 'rules'"]
    unknown = uuid_of(999) + ".nakama1"
    cases = [
        ({"token": "t"}, 3, "Invalid match token"),
        ({}, 3, "No match ID or token found"),
        ({"match_id": "not-a-match"}, 3, "Invalid match ID"),
        ({"match_id": uuid_of(1)}, 3, "Invalid match ID"),  # no node part
        ({"match_id": unknown}, 4, "Match not found"),
        ({"match_id": mid, "metadata": {"reject": "full"}}, 5, "full"),
    ]
    for body, code, message in cases:
        effects = world.send("eve", {"cid": "j", "match_join": body})
        assert effects[0] == ("eve", {"cid": "j", "error": {"code": code, "message": message}}), body
        assert effects[1:] == [], body  # the rejected attempt's broadcast reached nobody: nobody is in the match


def test_join_replies_then_presence_events_and_who_each_call_reaches(world: World) -> None:
    world.connect("ana")
    world.connect("ben")
    mid = world.create("ana")
    ana, ben = world.presence("ana"), world.presence("ben")
    match = {"match_id": mid, "authoritative": True, "label": "rules"}
    assert world.send("ana", {"cid": "1", "match_join": {"match_id": mid}}) == [
        ("ana", {"cid": "1", "match": {**match, "self": ana}}),
        ("ana", event(mid, joins=[ana])),
        ("ana", data(mid, 10, b"join")),  # the join's broadcast reaches the joiner; the attempt's did not
    ]
    assert world.send("ben", {"cid": "2", "match_join": {"match_id": mid, "metadata": {"v": "2"}}}) == [
        ("ben", {"cid": "2", "match": {**match, "size": 1, "presences": [ana], "self": ben}}),
        ("ana", event(mid, joins=[ben])),
        ("ben", event(mid, joins=[ben])),
        ("ana", data(mid, 9, b"join_attempt")),  # not ben: not in the match during his attempt
        ("ana", data(mid, 10, b"join")),
        ("ben", data(mid, 10, b"join")),
    ]
    # a member's join: the match again, itself included, and no handler call
    steps = len(world.drivers[0].steps)
    assert world.send("ben", {"cid": "3", "match_join": {"match_id": mid}}) == [
        ("ben", {"cid": "3", "match": {**match, "size": 2, "presences": [ana, ben], "self": ben}})
    ]
    assert len(world.drivers[0].steps) == steps


def test_data_is_queued_for_the_loop_and_targets_are_honoured(world: World) -> None:
    for name in ("ana", "ben", "cho"):
        world.connect(name)
    mid = world.create("ana")
    for name in ("ana", "ben"):
        world.send(name, {"cid": "j", "match_join": {"match_id": mid}})
    assert world.send("ana", {"match_data_send": {"match_id": mid, "op_code": "1", "data": "aGk="}}) == []
    assert world.send("cho", {"match_data_send": {"match_id": mid, "op_code": "1", "data": "aGk="}}) == []  # dropped
    assert world.send("cho", {"cid": "x", "match_data_send": {"match_id": "bad", "op_code": "1"}}) == [
        ("cho", {"error": {"code": 3, "message": "Invalid match ID"}})  # Nakama sends it without the cid
    ]
    world.core.tick(mid)
    assert world.out() == [("ana", data(mid, 12, b"hi", world.presence("ana")))]  # to the sender alone
    world.core.tick(uuid_of(999) + ".nakama1")  # a match that does not run: nothing
    assert world.out() == []


def test_leave_and_disconnect_tell_the_others(world: World) -> None:
    for name in ("ana", "ben", "cho"):
        world.connect(name)
    mid = world.create("ana")
    for name in ("ana", "ben", "cho"):
        world.send(name, {"cid": "j", "match_join": {"match_id": mid}})
    ben, cho = world.presence("ben"), world.presence("cho")
    assert world.send("ben", {"cid": "l", "match_leave": {"match_id": mid}}) == [
        ("ana", event(mid, leaves=[ben])),
        ("cho", event(mid, leaves=[ben])),
        ("ana", data(mid, 11, b"leave")),  # the leaver no longer gets the leave's broadcast
        ("cho", data(mid, 11, b"leave")),
        ("ben", {"cid": "l"}),
    ]
    assert world.send("ben", {"cid": "m", "match_leave": {"match_id": mid}}) == [("ben", {"cid": "m"})]
    world.core.disconnect(world.sid["cho"])
    assert world.out() == [("ana", event(mid, leaves=[cho])), ("ana", data(mid, 11, b"leave"))]
    leaves = [p for s in world.drivers[0].steps if s.call.kind == "leave" for p in s.call.presences]
    assert [(p.username, p.reason) for p in leaves] == [("ben", 3), ("cho", 4)]


def test_a_crash_closes_every_participant_and_ends_the_match(world: World) -> None:
    for name in ("ana", "ben", "cho"):
        world.connect(name)
    mid = world.create("ana")
    for name in ("ana", "ben"):
        world.send(name, {"cid": "j", "match_join": {"match_id": mid}})
    world.send("ben", {"match_data_send": {"match_id": mid, "op_code": "99"}})
    world.core.tick(mid)
    assert world.out() == [
        MatchEnded(mid),
        ("ana", "close", 1000, "server-side session disconnect"),
        ("ben", "close", 1000, "server-side session disconnect"),
    ]
    assert world.events[-1] == f"match {mid} crashed in match_loop at tick 0: RuntimeError: boom: op code 99"
    assert world.send("cho", {"cid": "j", "match_join": {"match_id": mid}}) == [
        ("cho", {"cid": "j", "error": {"code": 4, "message": "Match not found"}})
    ]
    world.core.disconnect(world.sid["ana"])  # its socket then closes: nothing left to leave
    assert world.out() == []


def test_a_stop_ends_the_match_without_closing_sockets(world: World) -> None:
    world.connect("ana")
    mid = world.create("ana")
    world.send("ana", {"cid": "j", "match_join": {"match_id": mid}})
    world.send("ana", {"match_data_send": {"match_id": mid, "op_code": "98"}})
    world.core.tick(mid)
    assert world.out() == [MatchEnded(mid)]
    assert world.events[-1] == f"match {mid} stopped: a callback returned no state"


def test_signal_match_rpc(world: World) -> None:
    world.connect("ana")
    mid = world.create("ana")
    payload = json.dumps({"match_id": mid, "data": "go"})
    assert world.send("ana", {"cid": "s", "rpc": {"id": "signal_match", "payload": payload}}) == [
        ("ana", {"cid": "s", "rpc": {"id": "signal_match", "payload": "signalled go"}})
    ]
    assert world.core.rpc("signal_match", "{}") == (
        None,
        'signal_match payload must be {"match_id": "...", "data": "..."}',
    )
    assert world.core.rpc("signal_match", json.dumps({"match_id": "x.y"})) == (
        None,
        "failed to signal match: match not found",
    )
    world.send("ana", {"cid": "j", "match_join": {"match_id": mid}})
    result = world.core.rpc("signal_match", json.dumps({"match_id": mid, "data": "boom"}))
    assert result == (None, "failed to signal match: RuntimeError: boom: signal")
    assert world.out() == [MatchEnded(mid), ("ana", "close", 1000, "server-side session disconnect")]


def test_stop_all_ends_every_match_quietly(world: World) -> None:
    world.connect("ana")
    mid = world.create("ana")
    world.send("ana", {"cid": "j", "match_join": {"match_id": mid}})
    world.core.stop_all()
    assert world.out() == [MatchEnded(mid)] and world.core.match_ids() == []
