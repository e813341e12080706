"""Crash signatures: built from replays, crash markers, tracebacks and Nakama's own log lines."""

from __future__ import annotations

import hashlib
import json
import traceback
from pathlib import Path

import pytest

from replay.runtime import (
    Crash,
    CrashSignature,
    js_error_class,
    lua_error_class,
    parse_crash_log_line,
    reproduce,
    same_crash,
)
from replay.runtime._signature import normalise_message
from tests.common.paths import DATA, ROOT

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
NAKAMA_LOG = DATA / "nakama-3.40-lua-match-crash.log"  # a real Nakama 3.40 log

# the crash line of that log, pinned
LOGGED = (
    '{"level":"warn","ts":"2026-11-27T16:15:08.230Z","caller":"server/match_handler.go:292","msg":"Stopping match '
    'after error from match_loop execution","mid":"1762518a-825f-467c-a416-1a7ad0afe835","tick":16,"error":"/nakama/'
    "data/modules/match_echo.lua:39: deliberate crash: op_code 99 from 28da6aa3-653a-4714-a51e-b42999555c74 at tick "
    "16\\nstack traceback:\\n\\t[G]: in function 'error'\\n\\t/nakama/data/modules/match_echo.lua:39: in main chunk"
    '\\n\\t[G]: ?"}'
)


def test_replayed_crash_has_the_recorded_signature():
    recorded = CrashSignature.of_recording(CRASH_REC)
    replayed = CrashSignature.from_result(reproduce(str(CRASH_REC), str(ROOT / "fixtures" / "handlers" / "arena.py")))
    assert recorded is not None and replayed is not None
    assert recorded.key == "match_loop|KeyError|arena.py:match_loop"
    assert recorded.op_code == 1 and replayed.op_code == 1  # tick 58's batch ends with an input (op 1)
    assert replayed.same_crash(recorded) and same_crash(recorded, replayed)
    assert recorded.short_hash == hashlib.blake2b(recorded.key.encode(), digest_size=6).hexdigest()


def test_a_clean_replay_has_no_signature():
    clean = reproduce(str(CRASH_REC), str(ROOT / "fixtures" / "handlers" / "arena_fixed.py"))
    assert CrashSignature.from_result(clean) is None
    assert not same_crash(None, CrashSignature.of_recording(CRASH_REC))


def _real_traceback() -> tuple[str, str]:
    def match_loop():
        return helper()

    def helper():
        return json.loads("{not json")  # raises inside the standard library

    try:
        match_loop()
    except ValueError as exc:
        return f"{type(exc).__name__}: {exc}", traceback.format_exc()
    raise AssertionError("json.loads accepted invalid JSON")


def test_python_frames_skip_the_standard_library_and_line_numbers():
    error, trace = _real_traceback()
    sig = CrashSignature.from_error("match_loop", error, trace, error_type="JSONDecodeError")
    assert sig.frames[:2] == ("test_signature.py:helper", "test_signature.py:match_loop")
    moved = trace.replace(str(Path(__file__).parent), "/elsewhere/checkout")
    moved = "".join(
        line.replace(", line ", ", line 1") if line.lstrip().startswith("File") else line
        for line in moved.splitlines(True)
    )
    assert moved != trace
    assert CrashSignature.from_error("match_loop", error, moved, error_type="JSONDecodeError") == sig


def test_error_type_from_the_text_when_not_given():
    sig = CrashSignature.from_error("match_join", "KeyError: 'abc'", "")
    assert sig.error_type == "KeyError" and sig.location == "?"
    # a text ending with a JavaScript frame is a JavaScript error: its class, as a replayed one gets it
    js = CrashSignature.from_error(
        "match_loop", "TypeError: Cannot read property 'hp' of undefined\n    at matchLoop (index.js:88:12(40))"
    )
    assert (js.error_type, js.frames) == ("js:read property 'hp'", ("index.js:matchLoop",))
    # a stack given apart from a text that names no frame: its frames as file:function (file alone when anonymous)
    other = CrashSignature.from_error(
        "match_loop", "TypeError: boom", "TypeError: boom\n    at step (lib/engine.js:3:9)\n    at index.js:88:12\n"
    )
    assert (other.error_type, other.frames) == ("TypeError", ("engine.js:step", "index.js"))


def test_puc_lua_and_gopher_lua_texts_of_one_error_agree():
    puc = CrashSignature.from_error(
        "match_loop",
        "ctf.lua:88: attempt to index local 'holder' (a nil value)",
        "stack traceback:\n\tctf.lua:88: in function 'match_loop'",
    )
    gopher = CrashSignature.from_error(
        "match_loop",
        "/nakama/data/modules/ctf.lua:91: attempt to index a non-table object(nil) with key 'team'\n"
        "stack traceback:\n\t/nakama/data/modules/ctf.lua:91: in main chunk\n\t[G]: ?",
    )
    chunk = CrashSignature.from_error(
        "match_loop", "[string \"ctf.lua\"]:88: attempt to index field 'holder' (a nil value)"
    )
    assert puc.key == gopher.key == chunk.key == "match_loop|lua:index nil|ctf.lua"
    assert puc.same_crash(gopher)
    number = CrashSignature.from_error("match_loop", "ctf.lua:88: attempt to index local 'x' (a number value)")
    assert not number.same_crash(puc)


@pytest.mark.parametrize(
    ("puc", "gopher", "cls"),
    [
        ("attempt to call global 'spawn' (a nil value)", "attempt to call a non-function object", "lua:call"),
        (
            "attempt to perform arithmetic on field 'hp' (a nil value)",
            "cannot perform sub operation between nil and number",
            "lua:arithmetic",
        ),
        (
            "attempt to concatenate local 'name' (a nil value)",
            "cannot perform concat operation between string and nil",
            "lua:concatenate",
        ),
        ("attempt to compare number with nil", "attempt to compare number with nil", "lua:compare"),
    ],
)
def test_lua_error_classes(puc, gopher, cls):
    assert lua_error_class(puc) == lua_error_class(gopher) == cls


def test_nakama_log_line():
    logged = parse_crash_log_line(LOGGED)
    assert logged is not None
    assert (logged.mid, logged.tick, logged.callback) == ("1762518a-825f-467c-a416-1a7ad0afe835", 16, "match_loop")
    sig = CrashSignature.from_log_line(LOGGED)
    assert sig is not None and sig == logged.signature
    assert sig.frames == ("match_echo.lua",)
    assert sig.error_type == "lua:error deliberate crash: op_code <n> from <uuid> at tick <n>"
    # the same user error raised by our Lua runtime, at another line, from another folder, for another user
    ours = CrashSignature.from_error(
        "match_loop",
        "fixtures/handlers/match_echo.lua:41: deliberate crash: op_code 99 from 0b0e7c2a-1111-4a4a-8b8b-0123456789ab at tick 3",
        "stack traceback:\n\t[C]: in function 'error'\n\tfixtures/handlers/match_echo.lua:41: in function 'match_loop'",
    )
    assert ours.same_crash(sig)


def test_the_sample_log_has_exactly_one_crash_line():
    found = [c for c in map(parse_crash_log_line, NAKAMA_LOG.read_text().splitlines()) if c is not None]
    assert len(found) == 1 and found[0].signature == CrashSignature.from_log_line(LOGGED)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json at all",
        '{"msg":"Match started","mid":"x"}',
        '{"msg":"Stopping match after error from match_loop execution"',  # cut off
        '["Stopping match after error from match_loop execution"]',
        # the phrase, but not as Nakama's crash message: no callback, so no crash
        '{"msg":"Stopping match after error from a test","mid":"x"}',
        '{"msg":"Match ended","error":"Stopping match after error from match_loop execution"}',
    ],
)
def test_other_lines_are_not_crashes(line):
    assert parse_crash_log_line(line) is None and CrashSignature.from_log_line(line) is None


def test_op_codes_compare_only_when_both_are_known():
    base = CrashSignature("match_loop", "KeyError", ("arena.py:match_loop",))
    assert base.same_crash(CrashSignature("match_loop", "KeyError", ("arena.py:match_loop",), 1))
    one = CrashSignature("match_loop", "KeyError", ("arena.py:match_loop",), 1)
    assert not one.same_crash(CrashSignature("match_loop", "KeyError", ("arena.py:match_loop",), 2))
    assert not base.same_crash(CrashSignature("match_join", "KeyError", ("arena.py:match_loop",)))


def test_hangs_and_broken_rules():
    hang = CrashSignature.from_crash(Crash("match_loop", 9, "match_loop did not return within 5 s", "Hang", "", True))
    assert hang.key == "match_loop|Hang|?"
    rule = CrashSignature.from_crash(
        Crash("match_init", 0, "match_init returned invalid tick rate, must be between 1 and 60", "HandlerError")
    )
    assert rule.error_type == "HandlerError match_init returned invalid tick rate, must be between <n> and <n>"


def test_normalise_message():
    text = "player 7f3a9c12-0000-4b8e-9c3d-2e7f6a1b9d40 hp -25 at 0x7ffd3a2c table: 0x55d0c0ffee12 id deadbeef01"
    assert normalise_message(text) == "player <uuid> hp <n> at <hex> table: <hex> id <hex>"
    assert normalise_message("") == ""
    # quoted values vary between occurrences of one bug; the names Lua quotes do not
    assert (
        normalise_message("invalid character '\\x00' looking for beginning of value")
        == normalise_message("invalid character '\\x01' looking for beginning of value")
        == "invalid character '<q>' looking for beginning of value"
    )
    assert normalise_message("unknown key \"a b\" in 'x'") == "unknown key \"<q>\" in '<q>'"
    assert (
        normalise_message("attempt to index local 'holder' (a nil value)")
        == "attempt to index local 'holder' (a nil value)"
    )
    assert normalise_message("bad argument #1 to 'insert', can't") == "bad argument #<n> to 'insert', can't"


# -- both Lua runtimes' texts of one error, pinned with real texts ---------------------------------------------

PROBE = ROOT / "fixtures" / "nakama" / "error_probe.lua"
GOPHER = dict(json.loads((ROOT / "tests" / "data" / "lua_error_probe_nakama_3.40.json").read_text())["answers"])
EXPECTED_CLASS = {
    **dict.fromkeys(
        ["add nil", "sub nil", "mul nil", "div nil", "mod nil", "pow nil", "unm nil", "mod table", "arith string"],
        "lua:arithmetic",
    ),
    **dict.fromkeys(["len nil", "len number", "len field"], "lua:length"),
    "stack overflow": "lua:stack overflow",
    **dict.fromkeys(["compare tables", "compare number nil", "compare string number", "compare le nil"], "lua:compare"),
    **dict.fromkeys(["concat table", "concat nil"], "lua:concatenate"),
    **dict.fromkeys(["index nil", "index field nil", "newindex nil"], "lua:index nil"),
    **dict.fromkeys(["call nil", "call field", "call number"], "lua:call"),
}


@pytest.fixture(scope="module")
def puc_texts() -> dict[str, str]:
    """The probe's cases run in LuaJIT (lupa.luajit21), the replay runtime's Lua (its interpreter, as the replay
    runs it)."""
    import lupa.luajit21 as lupa

    lua = lupa.LuaRuntime()
    lua.eval("jit.off")()
    lua.execute('package.preload["nakama"] = function() return {register_rpc = function() end} end')
    module = lua.execute(PROBE.read_text())
    answers = module.probe()
    return {answers[i][1]: answers[i][2] for i in range(1, len(answers) + 1)}


def test_the_probe_covers_every_case_in_both_runtimes(puc_texts: dict[str, str]) -> None:
    assert set(GOPHER) == set(puc_texts) == set(EXPECTED_CLASS)
    assert "no error" not in GOPHER.values() and "no error" not in puc_texts.values()


@pytest.mark.parametrize("case", sorted(EXPECTED_CLASS))
def test_both_runtimes_wordings_of_one_error_get_one_class(case: str, puc_texts: dict[str, str]) -> None:
    if case == "stack overflow":  # caught by the probe's pcall, LuaJIT's text has no position
        pytest.skip("the replay writes a handler's stack overflow with its position: tests/lua/test_luajit.py")
    gopher = CrashSignature.from_error("match_loop", GOPHER[case])
    puc = CrashSignature.from_error("match_loop", puc_texts[case])
    assert gopher.error_type == puc.error_type == EXPECTED_CLASS[case], (GOPHER[case], puc_texts[case])


@pytest.mark.parametrize(
    ("text", "cls"),
    [  # gopher-lua (Nakama 3.40) and PUC Lua 5.1 texts as the probe printed them, one row per pattern
        ("error_probe.lua:14: cannot perform mod operation between number and nil", "lua:arithmetic"),
        ("error_probe.lua:15: cannot perform pow operation between number and nil", "lua:arithmetic"),
        ("error_probe.lua:16: __unm undefined", "lua:arithmetic"),
        ("x.lua:11: attempt to perform arithmetic on local 'x' (a nil value)", "lua:arithmetic"),
        ("error_probe.lua:19: __len undefined", "lua:length"),
        ("x.lua:16: attempt to get length of local 'x' (a nil value)", "lua:length"),
        ("error_probe.lua:22: stack overflow", "lua:stack overflow"),
        ("error_probe.lua:23: attempt to compare table with table", "lua:compare"),
        ("x.lua:21: attempt to compare two table values", "lua:compare"),
        ("x.lua:22: attempt to compare number with nil", "lua:compare"),
        ("error_probe.lua:27: cannot perform concat operation between string and table", "lua:concatenate"),
        ("x.lua:25: attempt to concatenate a table value", "lua:concatenate"),
        ("error_probe.lua:32: attempt to call a non-function object", "lua:call"),
        ("x.lua:30: attempt to call local 'f' (a nil value)", "lua:call"),
        ("x.lua:30: attempt to index local 'n' (a number value)", "lua:index number"),
        ("error_probe.lua:29: attempt to index a non-table object(nil) with key 'team'", "lua:index nil"),
        (
            "x.lua:3: cannot perform unm operation between nil and nil",
            "lua:error cannot perform unm operation between nil and nil",
        ),
    ],
)
def test_each_lua_class_row(text: str, cls: str) -> None:
    assert CrashSignature.from_error("match_loop", text).error_type == cls


def test_short_hash_pinned_and_as_documented() -> None:
    """BLAKE2b with a 48-bit digest of the key, as 12 hex digits. The literals come from coreutils
    (``printf %s KEY | b2sum -l 48``), not from the code under test; the docs page and the docstring say the same."""
    arena = CrashSignature("match_loop", "KeyError", ("arena.py:match_loop",))
    assert arena.key == "match_loop|KeyError|arena.py:match_loop"
    assert arena.short_hash == "235ca6a08bd5"
    assert CrashSignature("match_join", "lua:index nil", ("ctf.lua",)).short_hash == "eca5123090f0"
    assert CrashSignature("match_loop", "Hang").short_hash == "62b4e5ab5464"  # key match_loop|Hang|?
    assert hashlib.blake2b(arena.key.encode()).hexdigest()[:12] == "93c2b4c144bc" != arena.short_hash  # not a cut
    page = " ".join((ROOT / "docs" / "workflows" / "reproduce.md").read_text().split())
    assert "is BLAKE2b with a 48-bit digest of the UTF-8 key, as 12 hex digits (`b2sum -l 48`" in page
    assert "`235ca6a08bd5` for the arena crash" in page
    assert "BLAKE2b with a 6-byte (48-bit) digest" in " ".join(replay_signature_doc().split())


def replay_signature_doc() -> str:
    import replay.runtime._signature

    return replay.runtime._signature.__doc__ or ""


def test_same_error_class() -> None:
    from replay.runtime._signature import same_error_class

    assert same_error_class("KeyError", "KeyError") and not same_error_class("KeyError", "IndexError")
    assert same_error_class(
        "error Match initial state must not be nil", "HandlerError Match initial state must not be nil"
    )
    assert same_error_class(
        "HandlerError Match initial state must not be nil", "error Match initial state must not be nil"
    )
    assert not same_error_class("error a", "HandlerError b") and not same_error_class("error a", "KeyError a")
    assert not same_error_class("HandlerError a", "lua:error a")


def test_a_marker_keeps_its_error_type_and_the_hang_text_is_a_hang() -> None:
    from recorder.format import CrashMarker

    typed = CrashSignature.from_marker(CrashMarker("match_loop", 3, "boom", "", "RuntimeError"))
    assert typed.error_type == "RuntimeError"
    assert CrashSignature.from_marker(CrashMarker("match_loop", 3, "boom")).error_type == "error boom"
    hang = CrashSignature.from_marker(CrashMarker("match_loop", 3, "match_loop did not return within 5.0 s"))
    assert hang.error_type == "Hang"


def test_the_branches_of_from_error() -> None:
    # a Lua error raised without a position (error(msg, 0)) is still Lua: its traceback says so
    bare = CrashSignature.from_error("match_loop", "boom", "stack traceback:\n\t[C]: in function 'error'")
    assert bare.error_type == "lua:error boom"
    framed = CrashSignature.from_error("match_loop", "boom", "\tctf.lua:12: in function 'match_loop'")
    assert framed.error_type == "lua:error boom" and framed.frames == ("ctf.lua",)
    assert CrashSignature.from_error("match_loop", "boom").error_type == "error boom"  # neither: not Lua
    pos = CrashSignature.from_error("match_join", "ctf.lua:3: attempt to call a non-function object", op_code=4)
    assert (pos.callback, pos.frames, pos.op_code) == ("match_join", ("ctf.lua",), 4)
    hang = CrashSignature.from_error("match_leave", "whatever it printed", error_type="Hang", op_code=2)
    assert (hang.callback, hang.error_type, hang.frames, hang.op_code) == ("match_leave", "Hang", (), 2)
    rule = CrashSignature.from_error(
        "match_init", "Match initial state must not be nil", error_type="HandlerError", op_code=5
    )
    assert (rule.callback, rule.error_type, rule.frames, rule.op_code) == (
        "match_init",
        "HandlerError Match initial state must not be nil",
        (),
        5,
    )
    js = CrashSignature.from_error("match_loop", "TypeError: x", "    at index.js:3:1")
    assert js.frames == ("index.js",)
    assert CrashSignature.from_error("match_loop", "").error_type == "error "


def test_a_log_line_without_mid_or_an_integer_tick() -> None:
    line = json.dumps({"msg": "Stopping match after error from match_loop execution", "tick": "x", "error": "e"})
    logged = parse_crash_log_line(line)
    assert logged is not None and (logged.mid, logged.tick, logged.callback, logged.error) == (
        "",
        -1,
        "match_loop",
        "e",
    )


# -- pinned by the mutation run (tests/mutation/run.py replay.runtime._signature) -------------------------------


def test_windows_paths_name_the_same_frame() -> None:
    trace = 'Traceback (most recent call last):\n  File "C:\\game\\modules\\arena.py", line 9, in match_loop\n'
    sig = CrashSignature.from_error("match_loop", "KeyError: 'x'", trace)
    assert sig.frames == ("arena.py:match_loop",) and sig.key == "match_loop|KeyError|arena.py:match_loop"


def test_a_hang_has_no_frames_whatever_its_traceback_says() -> None:
    trace = 'Traceback (most recent call last):\n  File "arena.py", line 9, in match_loop\n'
    hang = CrashSignature.from_error("match_loop", "stuck", trace, error_type="Hang", op_code=3)
    assert (hang.error_type, hang.frames, hang.op_code) == ("Hang", (), 3)
    crash = Crash(callback="match_loop", tick=4, error="x", error_type="Hang", traceback=trace, hung=True)
    from_crash = CrashSignature.from_crash(crash, op_code=6)
    assert (from_crash.error_type, from_crash.frames, from_crash.op_code) == ("Hang", (), 6)


def test_a_long_message_is_cut_at_160_characters() -> None:
    assert normalise_message("x" * 400) == "x" * 160
    assert normalise_message("y" * 400, limit=20) == "y" * 20


def test_describe_and_to_json_say_every_field() -> None:
    sig = CrashSignature("match_loop", "KeyError", ("arena.py:match_loop", "arena.py:helper"), 7)
    assert sig.describe() == "KeyError in match_loop at arena.py:match_loop, last op code 7"
    assert CrashSignature("match_join", "Hang").describe() == "Hang in match_join at ?"
    assert sig.to_json() == {
        "key": "match_loop|KeyError|arena.py:match_loop",
        "hash": sig.short_hash,
        "callback": "match_loop",
        "error_type": "KeyError",
        "frames": ["arena.py:match_loop", "arena.py:helper"],
        "op_code": 7,
    }


def test_a_crash_line_without_an_error_field_has_an_empty_error() -> None:
    line = '{"msg":"Stopping match after error from match_loop execution","mid":"m","tick":3}'
    logged = parse_crash_log_line(line)
    assert logged is not None and logged.error == "" and (logged.mid, logged.tick) == ("m", 3)


def test_the_op_code_is_the_last_message_of_the_crashing_match_loop_call() -> None:
    from types import SimpleNamespace

    crash = Crash(callback="match_loop", tick=9, error="KeyError: 'x'", error_type="KeyError")
    loop = {"callback": "match_loop", "tick": 9, "messages": [{"op_code": 4}, {"op_code": 5}, {"op_code": 6}]}
    leave = {"callback": "match_leave", "tick": 9, "messages": []}
    older = {"callback": "match_loop", "tick": 8, "messages": [{"op_code": 1}]}
    assert CrashSignature.from_result(SimpleNamespace(crash=crash, last_inputs=[older, loop, leave])).op_code == 6
    empty = {"callback": "match_loop", "tick": 9, "messages": []}
    assert CrashSignature.from_result(SimpleNamespace(crash=crash, last_inputs=[older, empty])).op_code is None
    join = Crash(callback="match_join", tick=9, error="KeyError: 'x'", error_type="KeyError")
    assert CrashSignature.from_result(SimpleNamespace(crash=join, last_inputs=[loop])).op_code is None


def test_of_recording_takes_the_last_op_code_of_the_crash_tick_and_only_for_match_loop(tmp_path: Path) -> None:
    import dataclasses

    from recorder.format import CrashMarker, LoopCall, MatchMessage, open_recording, write_recording

    with open_recording(CRASH_REC) as rec:
        header, events = rec.header, list(rec.events())
    marker = next(e for e in events if isinstance(e, CrashMarker))
    at = next(i for i, e in enumerate(events) if isinstance(e, LoopCall) and e.tick == marker.tick)
    first = events[at].messages[0]
    three = tuple(dataclasses.replace(first, op_code=op) for op in (11, 12, 13))
    assert all(isinstance(m, MatchMessage) for m in three)
    events[at] = dataclasses.replace(events[at], messages=three)
    loop_crash = tmp_path / "loop.nkrec"
    write_recording(loop_crash, header, events)
    sig = CrashSignature.of_recording(loop_crash)
    assert sig is not None and sig.op_code == 13
    events[events.index(marker)] = dataclasses.replace(marker, callback="match_join")
    join_crash = tmp_path / "join.nkrec"
    write_recording(join_crash, header, events)
    sig = CrashSignature.of_recording(join_crash)
    assert sig is not None and sig.callback == "match_join" and sig.op_code is None


def test_one_parser_reads_crash_lines_for_signatures_and_ingest() -> None:
    """The signature's reading of a crash line and ingest's (recorder.capture.crash_of) agree, in zap's layout
    and in Stackdriver's (``message``, ``severity``)."""
    from recorder.capture import crash_of
    from recorder.capture._nakama_log import log_entry

    stackdriver = json.dumps(
        {**{k: v for k, v in json.loads(LOGGED).items() if k != "msg"}, "message": json.loads(LOGGED)["msg"]}
    )
    for line in (LOGGED, stackdriver):
        logged, entry = parse_crash_log_line(line), log_entry(line)
        assert logged is not None and entry is not None
        mid, marker = crash_of(entry)
        assert (logged.mid, logged.tick, logged.callback) == (mid, marker.tick, marker.callback)
        assert logged.error.startswith(marker.error) and logged.error.endswith(marker.traceback)


# -- JavaScript (real goja crash lines: tests/js/test_js_signatures.py) ---------------------------------------

TS_REC = ROOT / "fixtures" / "recordings" / "arena-ts-reconnect-crash.nkrec"


def test_a_js_recording_keeps_its_frames_and_op_code() -> None:
    assert CrashSignature.of_recording(TS_REC) == CrashSignature(
        "match_loop", "js:read property 'pos'", ("index.js:handleInput", "index.js:arenaLoop"), op_code=1
    )


def test_frames_of_gojas_stack_format() -> None:
    """goja's ``e.stack`` (builtin_error.go formatStack, StackFrame.WriteToValueBuilder): a line per frame,
    ``\\tat f (index.js:1:2(3))``, ``\\tat index.js:1:2(3)`` for an anonymous function, ``\\tat f (native)`` and
    ``\\tat native`` for Go functions; a frame repeated (recursion) counts once, three frames at most."""
    text = "TypeError: Cannot read property 'x' of undefined at r (index.js:8:34(12))"
    stack = (
        "TypeError: Cannot read property 'x' of undefined\n\tat r (index.js:8:34(12))\n\tat r (index.js:8:52(20))\n"
        "\tat native\n\tat forEach (native)\n\tat index.js:9:12(7)\n"
    )
    sig = CrashSignature.from_error("match_loop", text, stack)
    assert sig.frames == ("index.js:r", "native", "native:forEach")
    anonymous = "\tat index.js:9:12(7)\n\tat forEach (native)\n"
    sig = CrashSignature.from_error("match_loop", "Error: x at index.js:9:12(7)", "Error: x\n" + anonymous)
    assert sig.frames == ("index.js", "native:forEach")


def test_an_empty_js_error_text_is_a_class_not_an_exception() -> None:
    """A crash whose text is empty (nothing was thrown that prints) still gets a signature."""
    assert js_error_class("") == js_error_class(" \n") == "js:throw "
    assert CrashSignature.from_error("match_loop", "", error_type="js:throw ").frames == ()
