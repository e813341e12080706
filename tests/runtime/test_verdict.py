"""Verdicts: what "reproduced" means (the same callback, tick and error class, every outcome before it equal),
the statuses and exit codes of ``replay.runtime.decide``, and crash identity through real replays (Python and
Lua handlers, PUC Lua and gopher-lua wordings)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from recorder.format import CrashMarker, Damage, Header, Integrity, read_events, write_recording
from replay.cli import main
from replay.runtime import AfterStop, Crash, MatchDriver, Verdict, decide, reproduce
from replay.runtime._verdict import EXIT_CODES, crash_mismatch
from tests.common.paths import ROOT

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
ARENA = ROOT / "fixtures" / "handlers" / "arena.py"
BUGGY = ARENA.read_text()

KEYERROR = Crash("match_loop", 58, "KeyError: 'x'", "KeyError", 'File "arena.py", line 3, in match_loop\nKeyError')
MARKER = CrashMarker("match_loop", 58, "KeyError: 'y'", 'File "arena.py", line 3, in match_loop\nKeyError', "KeyError")
COMPLETE = Integrity("complete", 2, 3, 9, 500, 600, (), 0, {"chunks": 3, "events": 9, "last_tick": 58})
UNSEALED = Integrity("unsealed", 2, 2, 6, 400, 420, (Damage("truncated", 400, 3, "the file ends inside chunk 3", 6),))
DAMAGED = Integrity("damaged", 2, 1, 3, 300, 600, (Damage("corrupt", 300, 2, "checksum mismatch", 3),), 1)
LEGACY = Integrity("legacy", 1, 3, 9, 500, 500)


# -- the pure decision ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crash", "marker", "divergences", "stopped", "status", "mismatch", "sentence"),
    [
        (KEYERROR, MARKER, 0, True, "reproduced", (), "match_loop crashed at tick 58, as recorded"),
        (None, None, 0, False, "reproduced", (), "ran to the end as recorded"),
        (None, None, 0, True, "reproduced", (), "stopped as recorded"),
        (
            None,
            MARKER,
            0,
            False,
            "not-reproduced",
            ("crash",),
            "the recording crashed in match_loop at tick 58, the replay ran to the end without a crash",
        ),
        (
            None,
            MARKER,
            0,
            True,
            "not-reproduced",
            ("crash",),
            "the recording crashed in match_loop at tick 58, the replay stopped without a crash",
        ),
        (
            replace(KEYERROR, tick=57),
            MARKER,
            0,
            True,
            "not-reproduced",
            ("tick",),
            "another crash, in match_loop at tick 57 (recorded: match_loop at tick 58)",
        ),
        (
            replace(KEYERROR, callback="match_leave"),
            MARKER,
            0,
            True,
            "not-reproduced",
            ("callback",),
            "another crash, in match_leave at tick 58 (recorded: match_loop at tick 58)",
        ),
        (
            replace(KEYERROR, error="IndexError: list index out of range", error_type="IndexError"),
            MARKER,
            0,
            True,
            "not-reproduced",
            ("error_type",),
            "crashed at the recorded tick, but with a different error: recorded KeyError (KeyError: 'y'), replayed "
            "IndexError (IndexError: list index out of range)",
        ),
        (
            KEYERROR,
            MARKER,
            2,
            True,
            "not-reproduced",
            ("outcomes",),
            "crash reproduced in match_loop at tick 58, but 2 outcomes diverged before it",
        ),
        (
            KEYERROR,
            None,
            0,
            True,
            "not-reproduced",
            ("crash",),
            "the replay crashed in match_loop at tick 58; the recording did not",
        ),
        (None, None, 1, False, "not-reproduced", ("outcomes",), "1 outcomes diverged from the recording"),
    ],
)
def test_decide_from_a_complete_recording(crash, marker, divergences, stopped, status, mismatch, sentence) -> None:
    for integrity in (COMPLETE, None):  # None: events handed in from memory
        v = decide(crash, marker, divergences, stopped, integrity)
        assert (v.status, v.reproduced, v.mismatch, v.sentence) == (status, status == "reproduced", mismatch, sentence)
        assert v.exit_code == EXIT_CODES[status] == {"reproduced": 0, "not-reproduced": 1}[status]


@pytest.mark.parametrize("integrity", [UNSEALED, DAMAGED, LEGACY], ids=lambda i: i.state)
@pytest.mark.parametrize(("crash", "marker", "stopped"), [(KEYERROR, MARKER, True), (None, None, False)])
def test_no_verdict_from_an_incomplete_recording(integrity, crash, marker, stopped) -> None:
    v = decide(crash, marker, 0, stopped, integrity, calls=7, ticks=5)
    assert (v.status, v.reproduced, v.exit_code, v.mismatch) == ("incomplete", False, 3, ())
    assert v.sentence.startswith(
        f"no verdict: the recording is {integrity.state}, so {integrity.missing()} was not "
        "replayed; replayed 7 calls (5 ticks) from the intact part, in which "
    )
    assert (
        "match_loop crashed at tick 58: KeyError: 'x'" if crash else "ran to the end of the intact part"
    ) in v.sentence
    allowed = decide(crash, marker, 0, stopped, integrity, allow_incomplete=True, calls=7, ticks=5)
    assert (allowed.status, allowed.reproduced, allowed.exit_code) == ("reproduced", True, 0)
    assert allowed.sentence.endswith(
        f"(--allow-incomplete: replayed 7 calls (5 ticks) from the intact part; not replayed: {integrity.missing()})"
    )


def test_an_incomplete_recording_with_another_crash_is_still_no_verdict() -> None:
    other = replace(KEYERROR, tick=3)
    assert decide(other, MARKER, 0, True, UNSEALED).status == "incomplete"
    assert decide(other, MARKER, 0, True, UNSEALED, allow_incomplete=True).status == "not-reproduced"
    hung = replace(KEYERROR, error="match_loop did not return within 5.0 s", error_type="Hang", hung=True)
    assert "match_loop hung at tick 58" in decide(hung, None, 0, True, DAMAGED).sentence


def test_calls_after_the_stop_are_never_reproduced() -> None:
    made = AfterStop(4, "match_loop", 59, True, "match_loop", 58)
    v = decide(KEYERROR, MARKER, 0, True, COMPLETE, after_stop=made)
    assert (v.status, v.mismatch) == ("not-reproduced", ("after_stop",))
    assert v.sentence.startswith(
        "the replay crashed in match_loop at tick 58 as recorded, but the recording goes on with 4 calls after the stop"
    )
    impossible = replace(made, nakama_could_make=False)
    v = decide(None, None, 0, True, COMPLETE, after_stop=impossible)
    assert v.sentence.startswith("the replay stopped in match_loop at tick 58 as recorded, but the recording holds")
    v = decide(replace(KEYERROR, tick=57), MARKER, 0, True, COMPLETE, after_stop=made)
    assert v.mismatch == ("tick", "after_stop") and v.sentence.startswith("another crash, in match_loop at tick 57")
    assert decide(KEYERROR, MARKER, 0, True, UNSEALED, after_stop=made).status == "incomplete"


def test_crash_mismatch_names_every_field_that_differs() -> None:
    assert crash_mismatch(KEYERROR, MARKER) == ()
    other = Crash("match_leave", 3, "boom.lua:1: boom", "lua:error boom", "")
    assert crash_mismatch(other, MARKER) == ("callback", "tick", "error_type")
    assert Verdict("incomplete", False, "").exit_code == 3


# -- crash identity through real replays ----------------------------------------------------------------------


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = BUGGY.replace(old, new)
    assert text != BUGGY
    path = tmp_path / name
    path.write_text(text)
    return path


def test_another_error_at_the_recorded_tick_does_not_reproduce(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue: the arena's KeyError recording replayed into a handler failing with another error at the same
    callback and tick said REPRODUCED."""
    other = _variant(
        tmp_path,
        "arena_other.py",
        'user_id = state["sessions"][m.sender.session_id]',
        'user_id = [][1] if m.sender.session_id not in state["sessions"] else state["sessions"][m.sender.session_id]',
    )
    r = reproduce(str(CRASH_REC), str(other))
    assert (r.outcome, r.crash.callback, r.crash.tick, r.crash.error_type) == (
        "crashed",
        "match_loop",
        58,
        "IndexError",
    )
    assert (r.status, r.reproduced, r.mismatch) == ("not-reproduced", False, ("error_type",))
    assert r.verdict.startswith(
        "crashed at the recorded tick, but with a different error: recorded KeyError (KeyError: "
    )
    assert "replayed IndexError (IndexError: list index out of range)" in r.verdict
    assert main(["reproduce", str(CRASH_REC), "--handler", str(other), "--json", "--in-process"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["mismatch"] == ["error_type"] and doc["status"] == "not-reproduced"
    assert doc["signature"]["error_type"] == "IndexError" and doc["recorded_signature"]["error_type"] == "KeyError"
    assert doc["recorded_signature"]["key"] == "match_loop|KeyError|arena.py:match_loop"
    assert doc["recorded_crash"]["error_type"] == "KeyError" and doc["integrity"]["state"] == "complete"


def test_the_same_crash_still_reproduces_and_earlier_divergences_spoil_it(tmp_path: Path) -> None:
    r = reproduce(str(CRASH_REC), str(ARENA))
    assert (r.status, r.mismatch, r.exit_code) == ("reproduced", (), 0)
    slower = tmp_path / "arena_slow.py"
    slower.write_text(BUGGY.replace("SPEED, BULLET_SPEED", "SPEED_, BULLET_SPEED") + "\nSPEED = 3.0\n")
    r = reproduce(str(CRASH_REC), str(slower))
    assert (r.crash.callback, r.crash.tick, r.crash.error_type) == ("match_loop", 58, "KeyError")  # the same crash
    assert r.divergence_count > 0 and (r.status, r.reproduced, r.mismatch) == ("not-reproduced", False, ("outcomes",))
    assert r.verdict.startswith(
        f"crash reproduced in match_loop at tick 58, but {r.divergence_count} outcomes diverged"
    )


LUA_MODULE = """
local M = {}
function M.match_init(context, params) return { n = 0 }, 10, "" end
function M.match_join_attempt(context, dispatcher, tick, state, presence, metadata) return state, true end
function M.match_join(context, dispatcher, tick, state, presences) return state end
function M.match_leave(context, dispatcher, tick, state, presences) return state end
function M.match_loop(context, dispatcher, tick, state, messages)
  if tick == 58 then
    FAIL
  end
  return state
end
function M.match_terminate(context, dispatcher, tick, state, grace) return state end
function M.match_signal(context, dispatcher, tick, state, data) return state, "" end
return M
"""


def _lua(tmp_path: Path, name: str, fail: str) -> Path:
    path = tmp_path / name
    path.write_text(LUA_MODULE.replace("FAIL", fail))
    return path


def test_a_python_keyerror_recording_into_a_lua_module_failing_otherwise(tmp_path: Path) -> None:
    lua = _lua(tmp_path, "arena_port.lua", 'error("no such session")')
    r = reproduce(str(CRASH_REC), str(lua))
    assert (r.crash.callback, r.crash.tick) == ("match_loop", 58)
    assert (r.status, r.mismatch) == ("not-reproduced", ("error_type",))
    assert "recorded KeyError" in r.verdict and "replayed lua:error no such session" in r.verdict


def _lua_recording(tmp_path: Path, fail: str) -> Path:
    """A Lua match recorded by the in-process capture: it crashes at tick 58 with ``fail``."""
    handler = _lua(tmp_path, "recorded.lua", fail)
    rec = tmp_path / "lua-crash.nkrec"
    with MatchDriver(
        str(handler), Header(match_id="m.n1", module="m", tick_rate=10, handler="recorded.lua"), capture=str(rec)
    ) as d:
        d.init({})
        d.tick(60)
    return rec


def test_lua_arithmetic_on_nil_replayed_into_an_index_error(tmp_path: Path) -> None:
    """The issue: 'attempt to perform arithmetic on a nil value' replayed into a handler failing with an index
    error said REPRODUCED."""
    rec = _lua_recording(tmp_path, "local x = nil; state.n = state.n + x")
    marker = next(e for e in read_events(rec)[1] if isinstance(e, CrashMarker))
    assert "attempt to perform arithmetic" in marker.error and marker.error_type == "lua:arithmetic"
    index = _lua(tmp_path, "index.lua", "local holder = nil; state.n = holder.team")
    r = reproduce(str(rec), str(index))
    assert (r.crash.tick, r.status, r.mismatch) == (58, "not-reproduced", ("error_type",))
    assert "recorded lua:arithmetic" in r.verdict and "replayed lua:index nil" in r.verdict
    same = _lua(tmp_path, "same.lua", "local y = nil; state.n = 2 * y")  # another line and operator, one class
    assert reproduce(str(rec), str(same)).status == "reproduced"


def test_gopher_lua_wording_of_the_recorded_error_reproduces_in_puc_lua(tmp_path: Path) -> None:
    """A crash marker as Nakama (gopher-lua) logs it, without an error type: the replay's PUC Lua text of the
    same error is the same class."""
    rec = _lua_recording(tmp_path, "local x = nil; state.n = state.n + x")
    header, events = read_events(rec)
    gopher = [
        replace(
            e, error="recorded.lua:9: cannot perform add operation between number and nil", traceback="", error_type=""
        )
        if isinstance(e, CrashMarker)
        else e
        for e in events
    ]
    logged = tmp_path / "logged.nkrec"
    write_recording(logged, header, gopher)
    r = reproduce(str(logged), str(tmp_path / "recorded.lua"))
    assert r.status == "reproduced", r.verdict
    length = [
        replace(e, error="recorded.lua:9: __len undefined", error_type="") if isinstance(e, CrashMarker) else e
        for e in events
    ]
    write_recording(logged, header, length)
    r = reproduce(str(logged), str(tmp_path / "recorded.lua"))
    assert (r.status, r.mismatch) == ("not-reproduced", ("error_type",))  # a length error is another class
    assert "recorded lua:length" in r.verdict


def test_a_recorded_crash_without_its_error_is_no_verdict_at_the_same_place() -> None:
    """A converted wire recording's marker may not know the error (only the disconnect was seen): the same
    callback and tick is then no proof of the same crash, nor of another one (unless outcomes diverged)."""
    unknown = CrashMarker("match_loop", 58, "")
    v = decide(KEYERROR, unknown, 0, True, COMPLETE)
    assert (v.status, v.reproduced, v.mismatch, v.exit_code) == ("incomplete", False, ("error_type",), 3)
    assert v.sentence.startswith(
        "match_loop crashed at tick 58, where the recording's crash is, but the recording "
        "does not know that crash's error"
    )
    assert decide(KEYERROR, unknown, 2, True, COMPLETE).status == "not-reproduced"  # diverged before: a real answer
    typed = CrashMarker("match_loop", 58, "", "", "KeyError")  # no text, but the type: known
    assert decide(KEYERROR, typed, 0, True, COMPLETE).status == "reproduced"
    assert decide(replace(KEYERROR, tick=3), unknown, 0, True, COMPLETE).status == "not-reproduced"  # another place


def test_the_allowance_keeps_the_mismatch_and_the_signatures_are_built() -> None:
    from replay.runtime._verdict import error_known, recorded_signature, replayed_signature

    other = replace(KEYERROR, error="IndexError: x", error_type="IndexError")
    allowed = decide(other, MARKER, 0, True, UNSEALED, allow_incomplete=True)
    assert (allowed.status, allowed.mismatch) == ("not-reproduced", ("error_type",))
    assert replayed_signature(None) is None and recorded_signature(None) is None
    assert replayed_signature(KEYERROR).error_type == recorded_signature(MARKER).error_type == "KeyError"
    assert error_known(MARKER) and not error_known(CrashMarker("match_loop", 1, "  \n"))
    assert decide(None, None, 0, False, UNSEALED).sentence.endswith(
        "in which it ran to the end of the intact part without a crash (--allow-incomplete draws a verdict from it)"
    )
    assert "in which the match stopped without a crash" in decide(None, None, 0, True, UNSEALED).sentence


def test_a_typed_marker_without_text_is_known_and_verdict_flags_stay_false() -> None:
    typed = CrashMarker("match_loop", 58, "", "", "KeyError")  # the type was recorded, the text was not
    other = replace(KEYERROR, error="   ", error_type="IndexError")  # and a replayed error with no text either
    v = decide(other, typed, 0, True, COMPLETE)
    assert (v.status, v.reproduced, v.mismatch) == ("not-reproduced", False, ("error_type",))
    assert (
        v.sentence
        == "crashed at the recorded tick, but with a different error: recorded KeyError (), replayed IndexError ()"
    )
    made = AfterStop(1, "match_loop", 59, True, "match_loop", 58)
    for crash, marker in ((KEYERROR, MARKER), (None, None)):
        after = decide(crash, marker, 0, True, COMPLETE, after_stop=made)
        assert after.reproduced is False and after.status == "not-reproduced"
    assert "replayed 0 calls (0 ticks) from the intact part" in decide(None, None, 0, False, UNSEALED).sentence
