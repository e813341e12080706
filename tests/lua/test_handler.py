"""Nakama Lua match modules in the replay runtime: module rules, Nakama's return checks and wording, the
nakama module, the dispatcher, errors with tracebacks, the hang guard, and the Lua arena."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.format import Header, InitCall, LoopCall, MatchMessage, Nondeterministic, Presence
from replay.errors import HandlerLoadError
from replay.lua import LuaHandler
from replay.lua._convert import go_tonumber, lua_to_plain
from replay.runtime import MatchDriver, MatchRuntime, reproduce
from tests.common.paths import ROOT

HANDLERS = ROOT / "fixtures" / "handlers"
HEADER = Header(match_id="m1.n1", node="n1", tick_rate=10, started_ms=1_000_000)
UID = "5b3c2e6a-5faf-433d-8cff-5e8f1a652977"
SID = "d08b2c7a-ea85-11f1-8e12-006100a0eb06"
ALICE = Presence(UID, SID, "alice", "n1")

sys.path.insert(0, str(ROOT / "fixtures"))
import make_recordings  # noqa: E402

SKELETON = """
local nk = require("nakama")
local M = {{}}
function M.match_init(context, params) {init} end
function M.match_join_attempt(context, dispatcher, tick, state, presence, metadata) {join_attempt} end
function M.match_join(context, dispatcher, tick, state, presences) return state end
function M.match_leave(context, dispatcher, tick, state, presences) return state end
function M.match_loop(context, dispatcher, tick, state, messages) {loop} end
function M.match_terminate(context, dispatcher, tick, state, grace_seconds) return state end
function M.match_signal(context, dispatcher, tick, state, data) {signal} end
return M
"""


def module(
    tmp_path: Path,
    name: str = "m",
    *,
    init: str = 'return {n = 0}, 10, "label"',
    join_attempt: str = "return state, true",
    loop: str = "return state",
    signal: str = "return state, data",
) -> Path:
    path = tmp_path / f"{name}.lua"
    path.write_text(SKELETON.format(init=init, join_attempt=join_attempt, loop=loop, signal=signal))
    return path


def run_calls(path: Path, *calls, **kw):  # type: ignore[no-untyped-def]
    rt = MatchRuntime(LuaHandler(path), HEADER, **kw)
    try:
        return rt, [rt.apply(c) for c in calls]
    finally:
        rt.close()


# -- the Lua arena ---------------------------------------------------------------------------------------


def test_lua_arena_crashes_like_the_python_arena_with_a_lua_traceback() -> None:
    with MatchDriver(str(HANDLERS / "arena.py"), make_recordings.arena_header()) as d:
        make_recordings.play_arena(d)
        py_crash = d.runtime.crash
    with MatchDriver(LuaHandler(HANDLERS / "arena.lua"), make_recordings.arena_header()) as d:
        make_recordings.play_arena(d)
        crash = d.runtime.crash
    assert crash is not None and py_crash is not None
    assert (crash.callback, crash.tick) == (py_crash.callback, py_crash.tick) == ("match_loop", 58)
    assert crash.error.endswith("arena.lua:54: attempt to index local 'player' (a nil value)")
    assert crash.error_type == "lua:index nil"  # replay.runtime._signature's class, the same for gopher-lua's text
    # gopher-lua's layout, as Nakama logs it: innermost first, the callback as "main chunk", then [G]: ?
    lines = crash.traceback.splitlines()
    assert lines[0] == "stack traceback:"
    assert lines[1].endswith("arena.lua:54: in function 'handle_input'")
    assert lines[2].endswith("arena.lua:184: in main chunk")
    assert lines[3] == "\t[G]: ?"


def test_fixed_lua_arena_survives_and_answers_the_signal(tmp_path: Path) -> None:
    with MatchDriver(LuaHandler(HANDLERS / "arena_fixed.lua"), make_recordings.arena_header()) as d:
        make_recordings.play_arena(d)
        assert d.runtime.crash is None
        scores = json.loads(next(s for s in d.steps if s.call.kind == "signal").outcome.reply)
    assert set(scores) == {"alice", "bob", "cho"} and all(isinstance(v, int) for v in scores.values())


def test_lua_replay_of_its_own_capture_reproduces_with_state_digests(tmp_path: Path) -> None:
    rec = tmp_path / "arena-lua.nkrec"
    with MatchDriver(
        LuaHandler(HANDLERS / "arena.lua"), make_recordings.arena_header(), capture=str(rec), snapshot_every=10
    ) as d:
        make_recordings.play_arena(d)
    result = reproduce(rec, str(HANDLERS / "arena.lua"))
    assert result.reproduced and result.divergence_count == 0 and result.crash.tick == 58
    fixed = reproduce(rec, str(HANDLERS / "arena_fixed.lua"))
    assert not fixed.reproduced and fixed.crash is None
    assert any(d.field == "digest" for d in fixed.divergences)  # the fixed bookkeeping changes the state


def test_lua_arena_replays_the_python_arena_recording_to_the_same_crash() -> None:
    # same state layout, same inputs: the Lua port crashes at the recorded tick; broadcasts differ only in
    # JSON spacing (Python's json.dumps vs nk.json_encode), and the state digests agree until the first
    # leave, where Python marks a session None and Lua (which cannot store nil) marks it false
    from replay.runtime import ReplayOptions

    options = ReplayOptions(max_divergences=1000)
    result = reproduce(
        ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec", str(HANDLERS / "arena.lua"), options
    )
    assert (result.crash.callback, result.crash.tick) == (result.recorded_crash.callback, result.recorded_crash.tick)
    assert {d.field for d in result.divergences} <= {"broadcasts", "label", "label_updates", "digest"}
    first_digest = next(d for d in result.divergences if d.field == "digest")
    assert (first_digest.callback, first_digest.tick) == ("match_leave", 23)


# -- loading ---------------------------------------------------------------------------------------------


def test_module_rules_use_nakamas_wording(tmp_path: Path) -> None:
    missing = tmp_path / "missing.lua"
    missing.write_text(
        SKELETON.format(init="", join_attempt="", loop="", signal="").replace(
            "function M.match_signal", "local function no_signal"
        )
    )
    with pytest.raises(HandlerLoadError, match="match_signal not found or not a function"):
        LuaHandler(missing)
    number = tmp_path / "number.lua"
    number.write_text("return 42\n")
    with pytest.raises(HandlerLoadError, match="must return a table containing the match callback functions"):
        LuaHandler(number)
    broken = tmp_path / "broken.lua"
    broken.write_text("local M = {\nreturn M\n")
    with pytest.raises(HandlerLoadError, match=r"error loading match module: .*broken\.lua:2:"):
        LuaHandler(broken)


def test_require_finds_modules_by_dotted_name_and_in_module_path(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "util.lua").write_text("return { twice = function(x) return 2 * x end }\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "consts.lua").write_text("return { RATE = 7 }\n")
    path = module(
        tmp_path, init='local u = require("lib.util"); local c = require("consts"); return {}, u.twice(c.RATE) - 7, "x"'
    )
    _, [step] = run_calls(path, InitCall({}))
    assert step.crash is not None and "module 'consts' not found" in step.crash.error
    rt = MatchRuntime(LuaHandler(path, module_path=[str(shared)]), HEADER)
    step = rt.apply(InitCall({}))
    assert step.crash is None and step.outcome.tick_rate == 7


def test_only_nakamas_library_set_is_there(tmp_path: Path) -> None:
    path = module(
        tmp_path,
        signal=textwrap.dedent("""
        local seen = {}
        for _, name in ipairs({"io", "debug", "coroutine", "python", "bit32", "os", "string", "table", "math", "package"}) do
          seen[#seen + 1] = name .. "=" .. type(_G[name])
        end
        seen[#seen + 1] = "os.exit=" .. type(os.exit)
        seen[#seen + 1] = "os.getenv=" .. type(os.getenv)
        return state, table.concat(seen, ",")"""),
    )
    rt = MatchRuntime(LuaHandler(path), HEADER)
    rt.apply(InitCall({}))
    from recorder.format import SignalCall

    reply = rt.apply(SignalCall(0, "x")).outcome.reply
    assert reply == (
        "io=nil,debug=nil,coroutine=nil,python=nil,bit32=table,os=table,string=table,table=table,"
        "math=table,package=table,os.exit=nil,os.getenv=nil"
    )


# -- Nakama's return checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("init", "error"),
    [
        ('return {}, 0, "x"', "match_init returned invalid tick rate, must be between 1 and 60"),
        ("return {}, 10, 5", "match_init returned unexpected third value, must be a label string"),
        ("return {}, 10", "match_init returned unexpected third value, must be a label string"),
        ('return {}, 10, "l", "extra"', "match_init returned unexpected second value, must be a tick rate number"),
        ('return nil, 10, "x"', "Match initial state must not be nil"),
        ('return {}, 10, string.rep("x", 2049)', "match_init returned invalid label, must be 2048 bytes or less"),
    ],
)
def test_init_return_checks(tmp_path: Path, init: str, error: str) -> None:
    _, [step] = run_calls(module(tmp_path, init=init), InitCall({}))
    assert step.crash is not None and step.crash.error == error and step.crash.error_type == "HandlerError"


def test_init_tick_rate_is_truncated_like_gopher_lua(tmp_path: Path) -> None:
    _, [step] = run_calls(module(tmp_path, init='return {}, 10.7, "l"'), InitCall({}))
    assert step.crash is None and step.outcome.tick_rate == 10 and step.outcome.label == "l"


@pytest.mark.parametrize(
    ("body", "accept", "reason", "error"),
    [
        ("return state, true", True, None, None),
        ('return state, false, "full"', False, "full", None),
        (
            "return state",
            None,
            None,
            "Match join attempt returned non-boolean join result or non-string reject reason, stopping match",
        ),
        ('return state, "why"', None, None, "Match join attempt returned non-boolean join result, stopping match"),
        (
            'return state, true, "r", 1',
            None,
            None,
            "Match join attempt returned non-boolean join result or non-string reject reason, stopping match",
        ),
        ('return 1, state, true, "r"', None, None, "Match join attempt returned too many values, stopping match"),
        (
            "return",
            None,
            None,
            "Match join attempt returned too few values, stopping match - expected: state, join result boolean, optional reject reason string",
        ),
    ],
)
def test_join_attempt_return_checks(tmp_path: Path, body: str, accept, reason, error) -> None:  # type: ignore[no-untyped-def]
    from recorder.format import JoinAttemptCall

    _, [_, step] = run_calls(module(tmp_path, join_attempt=body), InitCall({}), JoinAttemptCall(0, ALICE, {"v": "1"}))
    if error is None:
        assert step.crash is None and step.outcome.accept is accept and step.outcome.reason == reason
    else:
        assert step.crash is not None and step.crash.error == error


def test_nil_state_stops_quietly_and_extra_values_are_errors(tmp_path: Path) -> None:
    rt, [_, step] = run_calls(module(tmp_path, "a", loop="return nil"), InitCall({}), LoopCall(0))
    assert step.crash is None and rt.stop_reason == "nil-state"
    rt, [_, step] = run_calls(module(tmp_path, "b", loop="return state, 1"), InitCall({}), LoopCall(0))
    assert step.crash.error == "Match loop returned too many values, stopping match"
    from recorder.format import SignalCall

    rt, [_, step] = run_calls(module(tmp_path, "c", signal="return state"), InitCall({}), SignalCall(0, "d"))
    assert step.crash.error == "Match signal returned non-string result, stopping match"
    rt, [_, step] = run_calls(module(tmp_path, "d", signal="return state, nil"), InitCall({}), SignalCall(0, "d"))
    assert step.crash is None and step.outcome.reply == ""


# -- the nakama module, the dispatcher --------------------------------------------------------------------


def test_nk_functions_and_conversions(tmp_path: Path) -> None:
    body = textwrap.dedent("""
        local out = {}
        out.enc = nk.json_encode({ b = 1.5, a = { 1, 2, nil, 4 }, c = 3.0, e = {} })
        local d = nk.json_decode('{"x": [1, "two", null, {"y": true}], "big": 1e3}')
        out.dec = d.x[2] .. "/" .. tostring(d.x[3]) .. "/" .. tostring(d.x[4].y) .. "/" .. tostring(d.big)
        out.b64 = nk.base64_encode("hi there") .. " " .. nk.base64_decode("aGkgdGhlcmU")
        out.md5 = nk.md5_hash("abc")
        out.sha = nk.sha256_hash("abc")
        out.log = nk.logger_info("hello")
        out.time = nk.time()
        out.uuid = nk.uuid_v4()
        out.die = math.random(1, 6)
        out.r = math.random()
        out.os = os.time()
        out.ok, out.err = pcall(nk.json_decode, "{bad")
        local w = nk.storage_write({ { collection = "c", key = "k", value = { v = 1 } } })
        out.version = w[1].version
        out.read = nk.storage_read({ { collection = "c", key = "k" } })[1].value.v
        return state, nk.json_encode(out)""")
    path = module(tmp_path, signal=body)
    from recorder.format import SignalCall

    recorded = (
        Nondeterministic("time", 1_795_799_588_126),
        Nondeterministic("uuid", "bc4a2e6a-5faf-433d-8cff-5e8f1a652977"),
        Nondeterministic("random", 6),
        Nondeterministic("random", 0.25),
        Nondeterministic("os_time", 1_795_799_588),
    )
    rt = MatchRuntime(LuaHandler(path), HEADER)
    rt.apply(InitCall({}))
    step = rt.apply(SignalCall(0, "x", nondeterministic=recorded))
    out = json.loads(step.outcome.reply)
    assert out["enc"] == '{"a":[1,2,null,4],"b":1.5,"c":3,"e":{}}'
    assert out["dec"] == "two/nil/true/1000"
    assert out["b64"] == "aGkgdGhlcmU= hi there"
    assert out["md5"] == hashlib.md5(b"abc").hexdigest() and out["sha"] == hashlib.sha256(b"abc").hexdigest()
    assert out["log"] == "hello" and ("info", "hello") in rt.logger.lines
    assert (out["time"], out["uuid"], out["die"], out["r"], out["os"]) == (
        1_795_799_588_126,
        "bc4a2e6a-5faf-433d-8cff-5e8f1a652977",
        6,
        0.25,
        1_795_799_588,
    )
    assert out["ok"] is False and out["err"].endswith(
        "not a valid JSON string: invalid character 'b' looking for beginning of object key string"
    )
    assert out["version"] == hashlib.md5(b'{"v":1}').hexdigest() and out["read"] == 1
    # the storage read was not in the recording: served from the in-memory storage, and reported as missing
    assert step.nondeterministic[:5] == recorded and step.nondeterministic[5].source == "storage_read"
    assert [(d.field, d.b) for d in step.divergences] == [("nondeterministic", "5 used, 1 missing")]


def test_dispatcher_calls_and_argument_errors(tmp_path: Path) -> None:
    loop = textwrap.dedent("""
        for _, m in ipairs(messages) do
          if m.op_code == 1 then
            dispatcher.broadcast_message(5, m.data, { m.sender }, m.sender, false)
            dispatcher.broadcast_message_deferred(6, nil)
            dispatcher.broadcast_message(7, "none", {})
            dispatcher.match_label_update("new label")
          elseif m.op_code == 2 then
            dispatcher.broadcast_message("x")
          end
        end
        return state""")
    path = module(tmp_path, loop=loop)
    from recorder.format import JoinCall

    rt = MatchRuntime(LuaHandler(path), HEADER)
    rt.apply(InitCall({}))
    rt.apply(JoinCall(0, (ALICE.with_reason(1),)))
    step = rt.apply(LoopCall(0, (MatchMessage(ALICE, 1, b"hey", True, 5),)))
    b = step.outcome.broadcasts
    assert [(x.op_code, x.data, x.deferred, x.reliable) for x in b] == [
        (5, b"hey", False, False),
        (6, None, True, True),
    ]
    assert b[0].targets == (ALICE.with_reason(1),) and b[0].sender == Presence(UID, SID, "alice")
    assert step.outcome.label_updates == ("new label",) and rt.label == "new label"
    step = rt.apply(LoopCall(1, (MatchMessage(ALICE, 2, None, True, 5),)))
    line = path.read_text().splitlines().index('    dispatcher.broadcast_message("x")') + 1
    assert step.crash.error == f"{path}:{line}: bad argument #1 to broadcast_message (number expected, got string)"
    assert step.crash.error_type.startswith("lua:error bad argument #<n> to broadcast_message")


def test_hang_guard_stops_lua_loops_even_under_pcall(tmp_path: Path) -> None:
    for body in ("while true do end", "while true do pcall(function() local x = 1 end) end"):
        path = module(tmp_path, f"h{len(body)}", loop=body)
        rt = MatchRuntime(LuaHandler(path), HEADER, hang_timeout=30.0)  # loading and match_init: never reached
        try:
            assert rt.apply(InitCall({})).crash is None
            rt.hang_guard.limit = 1.0  # only the loop that never ends runs under the short limit
            step = rt.apply(LoopCall(0))
        finally:
            rt.close()
        assert step.crash is not None and step.crash.hung and step.crash.callback == "match_loop"
        assert rt.stop_reason == "hung"


def test_pairs_order_can_be_perturbed(tmp_path: Path) -> None:
    path = module(
        tmp_path,
        signal=textwrap.dedent("""
        local t = { x = 1, y = 2, z = 3, w = 4 }
        t[2], t[1] = "b", "a"
        local keys = {}
        for k in pairs(t) do keys[#keys + 1] = tostring(k) end
        return state, table.concat(keys, ",")"""),
    )
    from recorder.format import SignalCall

    replies = []
    for order in ("native", "reverse"):
        rt = MatchRuntime(LuaHandler(path, pairs_order=order), HEADER)
        rt.apply(InitCall({}))
        replies.append(rt.apply(SignalCall(0, "")).outcome.reply.split(","))
    assert replies[0] != replies[1] and sorted(replies[0]) == sorted(replies[1])
    assert replies[1][:2] == ["1", "2"]  # integer keys first and ascending, as gopher-lua walks them


def test_state_value_follows_nakamas_json_conversion(tmp_path: Path) -> None:
    h = LuaHandler(module(tmp_path))
    state = h._lua.execute(
        b"return { seq = {1, 2, nil, 4}, mixed = {1, x = 2}, empty = {}, f = 2.5, w = 3.0, [7] = 'k' }"
    )
    assert lua_to_plain(state) == [None, None, None, None, None, None, "k"]
    state = h._lua.execute(
        b"return { seq = {1, 2, nil, 4}, mixed = {1, x = 2}, empty = {}, f = 2.5, w = 3.0, neg = {[0] = 'z'} }"
    )
    assert h.state_value(state) == {
        "seq": [1, 2, None, 4],
        "mixed": [1],
        "empty": {},
        "f": 2.5,
        "w": 3,
        "neg": {"0": "z"},
    }
    copy = h.copy_state(state)
    h._lua.execute(b"local s = ...; s.seq[1] = 99", state)
    assert h.state_value(copy)["seq"][0] == 1


def test_go_tonumber() -> None:
    assert [
        go_tonumber(x)
        for x in (b"0x10", b" 10 ", b"1e2", b"5.", b"", b"-12", b"1.5e3", b"99999999999999999999", b"inf")
    ] == [16, 10, None, 5.0, None, -12, 1500.0, None, None]
    assert go_tonumber(b"z", 36) == 35 and go_tonumber(b"12", 2) is None and go_tonumber(7.5) == 7.5


def test_binary_message_data_round_trips(tmp_path: Path) -> None:
    path = module(
        tmp_path,
        loop=textwrap.dedent("""
        for _, m in ipairs(messages) do dispatcher.broadcast_message(m.op_code, m.data) end
        return state"""),
    )
    from recorder.format import JoinCall

    rt = MatchRuntime(LuaHandler(path), HEADER)
    rt.apply(InitCall({}))
    rt.apply(JoinCall(0, (ALICE.with_reason(1),)))
    payloads = [b"\x00\xff\xfe binary", "héllo".encode(), b"", None]
    step = rt.apply(LoopCall(0, tuple(MatchMessage(ALICE, i, p, True, 0) for i, p in enumerate(payloads))))
    assert [b.data for b in step.outcome.broadcasts] == payloads


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    # nil is absence in Lua: no None inside containers (Nakama cannot represent them either)
    lambda inner: (
        st.lists(inner.filter(lambda x: x is not None), min_size=1, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner.filter(lambda x: x is not None), max_size=4)
    ),
    max_leaves=20,
)


@given(_JSONISH)
@settings(max_examples=150, deadline=None)
def test_python_lua_python_is_lossless_for_what_nakama_represents(value: object) -> None:
    # doubles, 1-based arrays, string keys: the canonical form (and so the digest) survives the trip
    from recorder.format import canonical_bytes

    h = _shared_handler()
    assert canonical_bytes(lua_to_plain(h._to_lua(value))) == canonical_bytes(value)


_SHARED: list[LuaHandler] = []


def _shared_handler() -> LuaHandler:
    if not _SHARED:
        _SHARED.append(LuaHandler(HANDLERS / "arena.lua"))
    return _SHARED[0]
