"""Presence fields per callback, as Nakama 3.40 builds them (issue #14, item 4).

Read in Nakama 3.40's source: ``match_handler.go`` builds the joining presence from the accepted join
attempt without a reason (0); ``runtime_lua_match_core.go`` gives ``match_join``/``match_leave`` presences a
``reason`` key and join-attempt presences and loop senders none; ``tracker.go`` sets 3 on ``Untrack``
(``match_leave``, ``match_kick``) and ``session_ws.go`` 4 when a socket closes. The bundled real logs
(captured inside Nakama 3.40) show reason 0 on every ``match_join`` presence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder.capture import Ingest
from recorder.format import Header, JoinCall, LeaveCall, PresenceReason
from replay.fuzz import Connect, Leave, Send, Tick, play
from replay.fuzz._strategies import LEAVE_REASONS
from replay.runtime import MatchDriver
from tests.common.paths import ROOT

pytest.importorskip("lupa", reason="Lua handlers need lupa")

ECHO = str(ROOT / "fixtures" / "handlers" / "presence_echo.lua")
REAL_LOGS = sorted((ROOT / "tests" / "data").glob("nakama-3.40-lua-capture-*.log"))

#: callback -> (keys of each presence table, reason) as Nakama 3.40 hands them to a Lua handler
NAKAMA_3_40 = {
    "join_attempt": ({"user_id", "session_id", "username", "node"}, None),
    "join": ({"user_id", "session_id", "username", "node", "reason"}, 0),
    "loop": ({"user_id", "session_id", "username", "node"}, None),
    "kick": ({"user_id", "session_id", "username", "node", "reason"}, 3),
    "match_leave": ({"user_id", "session_id", "username", "node", "reason"}, 3),
    "disconnect": ({"user_id", "session_id", "username", "node", "reason"}, 4),
}


def _broadcast_presences(steps) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    """What presence_echo.lua put on the wire, by the callback (and leave cause) that sent it."""
    out: dict[str, list[dict]] = {}
    for step in steps:
        for b in step.outcome.broadcasts if step.outcome is not None else ():
            body = json.loads(b.data)
            if body["cb"] == "join_attempt":
                out.setdefault("join_attempt", []).append(body["p"])
            elif body["cb"] == "loop":
                out.setdefault("loop", []).append(body["sender"])
            else:
                for p in body["ps"]:
                    cause = body["cb"]
                    if cause == "leave":
                        cause = {3: "leave3", 4: "disconnect"}.get(p.get("reason"), "leave?")
                    out.setdefault(cause, []).append(p)
    return out


def test_lua_handler_gets_nakamas_presence_fields_per_callback() -> None:
    header = Header(match_id="5b0ad3c6-8f0e-4b43-a7c4-1d2f3e4a5b6c.nakama1", node="nakama1", module="presence_echo")
    with MatchDriver(ECHO, header) as d:
        d.init({})
        alice, bob, cho = d.join("alice"), d.join("bob"), d.join("cho")
        d.send(alice, 1)
        d.send(bob, 3)  # bob kicks himself: a leave with reason 3 follows the loop
        d.tick()
        d.leave(cho, PresenceReason.LEAVE)  # match_leave
        d.leave(alice, PresenceReason.DISCONNECT)  # the socket closed
        d.tick()
        seen = _broadcast_presences(d.steps)
    assert len(seen["join"]) == 3 and len(seen["join_attempt"]) == 3 and len(seen["loop"]) == 1
    for name in ("join_attempt", "join", "loop", "disconnect"):
        keys, reason = NAKAMA_3_40[name]
        for p in seen[name]:
            assert set(p) == keys, (name, p)
            assert p.get("reason") == reason, (name, p)
            assert p["node"] == "nakama1"
    assert sorted(p["username"] for p in seen["leave3"]) == ["bob", "cho"]  # kick and match_leave: both 3
    assert all(set(p) == NAKAMA_3_40["kick"][0] for p in seen["leave3"])


def test_real_nakama_logs_show_reason_0_on_join_and_the_driver_agrees(tmp_path: Path) -> None:
    """The capture inside a real Nakama 3.40 logged every match_join presence with reason 0."""
    assert REAL_LOGS, "the bundled real logs are missing"
    for log in REAL_LOGS:
        ingest = Ingest()
        with open(log, "rb") as f:
            ingest.feed(f, str(log))
        for m in ingest.matches():
            joins = [p for e in m.events if isinstance(e, JoinCall) for p in e.presences]
            assert joins and {p.reason for p in joins} == {0}, log.name
    header = Header(match_id="m.nakama1", node="nakama1")
    with MatchDriver(ECHO, header) as d:
        d.init({})
        d.join("alice")
        joins = [p for s in d.steps if isinstance(s.call, JoinCall) for p in s.call.presences]
    assert [p.reason for p in joins] == [0]


def test_fuzz_player_joins_with_reason_0_and_leaves_with_3_or_4() -> None:
    assert set(LEAVE_REASONS) == {PresenceReason.LEAVE, PresenceReason.DISCONNECT}
    actions = [Connect(0), Connect(1), Send(1, 3), Tick(), Leave(0, PresenceReason.DISCONNECT), Tick()]
    calls, _ = play(ECHO, actions)
    joins = [p for c in calls if isinstance(c, JoinCall) for p in c.presences]
    leaves = [p for c in calls if isinstance(c, LeaveCall) for p in c.presences]
    assert [p.reason for p in joins] == [0, 0]
    assert sorted(p.reason for p in leaves) == [3, 4]  # bob kicked (3), alice's socket closed (4)
