"""Triage inputs: real Nakama 3.40 log lines (match crash, Lua RPC error, capture crash record), Sentry
events, the client report schema, and client stack-trace signatures (frames normalised, line numbers and
addresses stripped) built on replay.runtime._signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.errors import ReportError
from replay.runtime._signature import CrashSignature
from replay.triage import parse_client_report, parse_sentry_event, read_server_log, sentry_frames, stack_frames
from replay.triage._schema import match_key, parse_timestamp
from tests.common.paths import DATA


def reports(path: Path) -> list:
    return list(read_server_log(str(path)))


def test_real_lua_rpc_error_lines() -> None:
    # logged by a real Nakama 3.40 (server/runtime_lua.go:1400) for a Lua RPC that raised
    got = reports(DATA / "nakama-3.40-rpc-error.log")
    assert len(got) == 2 and {r.kind for r in got} == {"rpc_error"}
    r = got[0]
    assert (r.side, r.rpc_id, r.rpc_error, r.line) == ("server", "get_loadout", True, 2)
    assert r.signature.key == "rpc:get_loadout|lua:concatenate|triage_rpc.lua"
    assert r.error.startswith("/nakama/data/modules/triage_rpc.lua:4: cannot perform concat operation")
    assert got[0].uid != got[1].uid  # two calls, two occurrences (trace ids differ)


def test_real_match_crash_line() -> None:
    got = reports(DATA / "nakama-3.40-lua-match-crash.log")
    assert len(got) == 1
    r = got[0]
    assert (r.kind, r.match_id, r.tick, r.uid) == (
        "match_error",
        "1762518a-825f-467c-a416-1a7ad0afe835",
        16,
        "match:1762518a-825f-467c-a416-1a7ad0afe835:match_loop:16",
    )
    assert (
        r.signature.key
        == CrashSignature.from_log_line(
            next(
                line
                for line in (DATA / "nakama-3.40-lua-match-crash.log").read_text().splitlines()
                if "Stopping match" in line
            )
        ).key
    )


def test_capture_crash_record_and_crash_line_are_one_occurrence() -> None:
    got = reports(DATA / "nakama-3.40-lua-capture-arena.log")
    assert [r.kind for r in got] == ["match_error", "match_error"]
    line, record = got
    assert line.uid == record.uid == "match:ff5b8c3f-59e1-4b3e-80f2-80ca1d7757bb:match_loop:29"
    assert record.match_id == "ff5b8c3f-59e1-4b3e-80f2-80ca1d7757bb.nakama"  # the capture record knows the node
    assert record.signature.op_code == 1 and line.signature.key == record.signature.key


def test_javascript_rpc_error_line_and_other_modes(tmp_path: Path) -> None:
    # server/runtime_javascript.go logs uncaught exceptions with mode and id; only mode "rpc" is an RPC error
    lines = [
        {
            "level": "error",
            "ts": "2026-12-04T23:06:47.466Z",
            "caller": "server/runtime_javascript.go:593",
            "msg": "JavaScript runtime function raised an uncaught exception",
            "mode": "rpc",
            "id": "claim",
            "error": "TypeError: Cannot read property 'amount' of undefined at claim (index.js:12:20(14))",
        },
        {
            "level": "error",
            "ts": "2026-12-04T23:06:48.000Z",
            "caller": "server/runtime_javascript.go:593",
            "msg": "JavaScript runtime function raised an uncaught exception",
            "mode": "before",
            "id": "x",
            "error": "boom",
        },
    ]
    path = tmp_path / "js.log"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    got = reports(path)
    assert len(got) == 1 and got[0].rpc_id == "claim" and got[0].signature.error_type == "js:read property 'amount'"


def test_not_a_log(tmp_path: Path) -> None:
    path = tmp_path / "not.log"
    path.write_text("hello\nworld\n")
    got = reports(path)
    assert len(got) == 1 and isinstance(got[0], ReportError) and "no Nakama JSON log lines" in str(got[0])


# -- client reports -------------------------------------------------------------------------------------------
BASE = {"timestamp": "2025-11-24T16:00:06.150Z", "error_type": "TypeError", "error_message": "boom"}


def test_client_report_fields_and_uid() -> None:
    r = parse_client_report(dict(BASE, id="r1", match_id="ABC.nakama1", tick=5, socket_state="closed", rpc_error=False))
    assert (r.uid, r.match_key, r.tick, r.socket_state, r.rpc_error, r.ts_ms) == (
        "client:r1",
        "abc",
        5,
        "closed",
        False,
        1_764_000_006_150,
    )
    same = parse_client_report(dict(BASE))
    assert same.uid == parse_client_report(dict(BASE)).uid != parse_client_report(dict(BASE, tick=1)).uid
    assert r.error == "TypeError: boom"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"tick": -1}, "tick"),
        ({"tick": True}, "tick"),
        ({"op_code": 1.5}, "op_code"),
        ({"rpc_error": "yes"}, "rpc_error"),
        ({"socket_state": "gone"}, "socket_state"),
        ({"schema": 2}, "schema"),
        ({"side": "server"}, "side"),
        ({"timestamp": "noon"}, "timestamp"),
        ({"timestamp": None}, "timestamp"),
        ({"extra": []}, "extra"),
        ({"error_type": None, "error_message": None}, "error_message"),
        ({"stack": "x"}, "stack"),
    ],
)
def test_client_report_errors_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ReportError) as info:
        parse_client_report({k: v for k, v in {**BASE, **change}.items() if v is not None}, "r.jsonl", 3)
    assert info.value.field == field and info.value.line == 3 and str(info.value).startswith("r.jsonl:3: field")


def test_match_key_and_timestamps() -> None:
    assert match_key("4C2F.nakama1") == match_key("4c2f") == "4c2f" and match_key("") is None
    assert (
        parse_timestamp(1_764_000_000) == parse_timestamp(1_764_000_000_000) == parse_timestamp("2025-11-24T16:00:00Z")
    )


# -- Sentry -----------------------------------------------------------------------------------------------------
def test_sentry_event_api_export_shape() -> None:
    event = {
        "eventID": "e1",
        "dateCreated": "2025-11-24T16:00:07Z",
        "release": "arena@2.0.1",
        "platform": "csharp",
        "tags": [
            {"key": "nakama.op_code", "value": "13"},
            {"key": "nakama.session_valid", "value": "false"},
            {"key": "nakama.match_id", "value": "M1.nakama1"},
            {"key": "level", "value": "error"},
        ],
        "user": {"id": "u9"},
        "contexts": {"os": {"name": "Android"}, "nakama": {"type": "default", "socket_state": "closed"}},
        "entries": [
            {
                "type": "exception",
                "data": {
                    "values": [
                        {"type": "InnerException", "value": "first"},
                        {
                            "type": "NullReferenceException",
                            "value": "Object reference not set",
                            "stacktrace": {
                                "frames": [
                                    {"function": "Main", "filename": "Boot.cs", "in_app": True},
                                    {
                                        "function": "Arena.OnState",
                                        "filename": "Assets/Arena.cs",
                                        "lineno": 7,
                                        "in_app": True,
                                    },
                                    {"function": "Nakama.Socket.Dispatch", "in_app": False},
                                ]
                            },
                        },
                    ]
                },
            }
        ],
    }
    r = parse_sentry_event(event, "s.json", 1)
    assert (
        r.uid,
        r.kind,
        r.version,
        r.platform,
        r.user_id,
        r.op_code,
        r.session_valid,
        r.socket_state,
        r.match_key,
    ) == ("sentry:e1", "sentry", "2.0.1", "android", "u9", 13, False, "closed", "m1")
    assert r.signature.error_type == "NullReferenceException"
    assert r.signature.frames == ("Arena.cs:Arena.OnState", "Boot.cs:Main")


def test_sentry_event_with_report_id_is_the_client_report() -> None:
    report = dict(BASE, id="same-report")
    event = {
        "event_id": "e2",
        "timestamp": 1764000006.15,
        "contexts": {"nakama": {"id": "same-report"}},
        "exception": {"values": [{"type": "TypeError", "value": "boom"}]},
    }
    assert parse_sentry_event(event).uid == parse_client_report(report).uid == "client:same-report"


# -- client stack traces --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stack, frames",
    [
        (
            "TypeError: x\n    at applyState (https://cdn.example.com/app.3f9a2c1b.js:12:5)\n    at async tick (https://cdn.example.com/app.3f9a2c1b.js:40:1)\n"
            "    at DefaultSocket.onmatchdata (https://cdn.example.com/node_modules/@heroiclabs/nakama-js/dist/nakama-js.esm.mjs:3367:16)",
            ("app.js:applyState", "app.js:tick"),
        ),
        ("applyState@http://x/app.js:12:5\n@http://x/app.js:1:2", ("app.js:applyState", "app.js")),
        (
            "java.lang.NullPointerException\n\tat com.game.net.Arena.onData(Arena.java:42)\n\tat android.os.Handler.dispatch(Handler.java:1)",
            ("Arena.java:Arena.onData",),
        ),
        (
            "NullReferenceException: x\n  at Game.Net.OnData (Nakama.IMatchState s) [0x00012] in /src/Game/Net.cs:42\n"
            "  at Nakama.Socket.Receive () [0x0001] in <abc>:0",
            ("Net.cs:Net.OnData",),
        ),
        (
            "Game.Net:OnData(IMatchState) (at Assets/Scripts/Net.cs:42)\nUnityEngine.Events.InvokableCall:Invoke() (at x.cs:1)",
            ("Net.cs:Net.OnData",),
        ),
        (
            "[0] _on_match_state (res://scripts/net.gd:42)\n[1] _ready (res://scripts/main.gd:7)",
            ("net.gd:_on_match_state", "main.gd:_ready"),
        ),
        ("At: res://scripts/net.gd:42:_on_match_state()", ("net.gd:_on_match_state",)),
        (
            "#0 0x00007f3a in Arena::onData (arena.cpp:12)\n#1 0x00001234 libgame.so + 5678",
            ("arena.cpp:Arena.onData", "libgame.so"),
        ),
    ],
)
def test_stack_formats(stack: str, frames: tuple[str, ...]) -> None:
    assert stack_frames(stack) == frames


def test_line_numbers_and_addresses_do_not_split_a_group() -> None:
    a = parse_client_report(
        dict(BASE, stack_trace="TypeError: x\n    at f (https://h/a.js:10:2)\n    at g (https://h/a.js:99:1)")
    )
    b = parse_client_report(
        dict(BASE, stack_trace="TypeError: y\n    at f (https://h/a.js:11:7)\n    at g (https://h/a.js:3:3)")
    )
    c = parse_client_report(dict(BASE, stack_trace="TypeError: x\n    at h (https://h/a.js:10:2)"))
    assert a.group_id == b.group_id != c.group_id
    assert a.signature.key == "client|TypeError|a.js:f"


def test_sentry_frames_only_in_app() -> None:
    frames = [
        {"function": "lib", "filename": "node_modules/x/y.js", "in_app": True},
        {"function": "mine", "filename": "src/mine.js"},
        {"function": "sdk", "filename": "sdk.js", "in_app": False},
    ]
    assert sentry_frames(frames) == ("mine.js:mine",)
