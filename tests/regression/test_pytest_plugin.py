"""The pytest plugin, run through pytest's own ``pytester`` on real recordings and handlers."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

import replay.diff._kernels  # inner runs drop the modules they imported: the inner runs must find them loaded
import replay.diff._state  # numpy and numba cannot be imported twice in a process, and pytester's
import replay.regression._expectations
from tests.common.paths import ROOT

# numba registers some of its types only when it first compiles; do that here, outside the inner runs
replay.diff._kernels.first_difference(np.zeros(1, np.uint64), np.zeros(1, np.uint64))

pytest_plugins = ["pytester"]
# plugins the inner runs do not need (hypothesis alone costs a second per run to import)
QUIET = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:cacheprovider")

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
CLEAN_REC = ROOT / "fixtures" / "recordings" / "arena-clean.nkrec"
HANDLERS = ROOT / "fixtures" / "handlers"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUIET, *args)


def _rehome(recording: Path, copy: Path, handler: str) -> None:
    """Copy a recording with its header naming ``handler`` instead."""
    from recorder.format import open_recording, write_recording

    with open_recording(recording) as rec:
        header, events = rec.header, list(rec.events())
    write_recording(copy, dataclasses.replace(header, handler=handler), events)


def _layout(pytester: pytest.Pytester, expect: str | None, recording: Path = CRASH_REC, folder: str = "regs") -> Path:
    """``regs/NAME.nkrec`` (+ ``NAME.expect.toml``) and ``handlers/arena.py, arena_fixed.py`` under pytester
    (for expectations) and under ``regs`` (for the header, which names a handler inside its own folder)."""
    regs = pytester.path / folder
    for handlers in (pytester.path / "handlers", regs / "handlers"):
        handlers.mkdir(parents=True, exist_ok=True)
        for name in ("arena.py", "arena_fixed.py"):
            shutil.copy(HANDLERS / name, handlers / name)
    rec = regs / recording.name
    _rehome(recording, rec, "handlers/arena.py")
    if expect is not None:
        (regs / (recording.stem + ".expect.toml")).write_text(expect)
    return rec


def test_fixed_handler_passes_and_rebroken_handler_fails_with_the_crash_summary(pytester):
    _layout(pytester, 'handler = "../handlers/arena_fixed.py"\nno_crash = true\n')
    result = run(pytester, "--nkreplay-dir", "regs", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*regs/arena-reconnect-crash.nkrec::arena-reconnect-crash PASSED*"])

    # re-break the fix: the old session is deleted again
    fixed = pytester.path / "handlers" / "arena_fixed.py"
    fixed.write_text(
        fixed.read_text().replace('state["sessions"][session_id] = None', 'del state["sessions"][session_id]')
    )
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED: expected no crash, but match_loop crashed at tick 58: KeyError: *",
            "CRASHED in match_loop at tick 58: KeyError: *",
            "Traceback (most recent call last):",
            '*File "*arena.py", line *, in match_loop',
            "inputs of the last 3 ticks:",
            "*tick    58  match_loop*",
            "*op 1    from bob*",
        ]
    )


def test_pyproject_dirs_are_collected_beside_testpaths(pytester, monkeypatch):
    _layout(pytester, 'handler = "../handlers/arena_fixed.py"\nno_crash = true\n')
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n\n[tool.nakama-replay]\nregression_dirs = ["regs"]\n'
    )
    tests = pytester.mkdir("tests")
    (tests / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    result = run(pytester, "-v")  # no paths: testpaths plus the regression folders
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        ["*tests/test_plain.py::test_plain PASSED*", "*regs/arena-reconnect-crash.nkrec::*PASSED*"]
    )
    # explicit paths run what they name; configured folders are not added to them
    result = run(pytester, "tests")
    result.assert_outcomes(passed=1)
    monkeypatch.chdir(tests)  # nor to a run from a sub-folder
    run(pytester).assert_outcomes(passed=1)
    monkeypatch.chdir(pytester.path)
    # and -m selects the recordings alone
    result = run(pytester, "-m", "nkreplay")
    result.assert_outcomes(passed=1, deselected=1)


def test_missing_configured_folder_is_a_usage_error(pytester):
    pytester.makepyprojecttoml('[tool.nakama-replay]\nregression_dirs = ["nowhere"]\n')
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nakama-replay regression folder *nowhere does not exist*"])


def test_crash_expectation_and_update(pytester):
    rec = _layout(pytester, None)  # no expectation: skipped, saying how to add one
    result = run(pytester, "--nkreplay-dir", "regs", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*no expectation for arena-reconnect-crash.nkrec: add arena-reconnect-crash.expect.toml*"]
    )

    result = run(pytester, "--nkreplay-dir", "regs", "--nkreplay-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*wrote *arena-reconnect-crash.expect.toml"])
    written = tomllib.loads(rec.with_name("arena-reconnect-crash.expect.toml").read_text())
    assert written["matches_recorded"] is True and "handler" not in written  # the header's handler (buggy arena.py)
    assert written["crash"]["callback"] == "match_loop" and written["crash"]["tick"] == 58
    assert written["crash"]["signature"] == "match_loop|KeyError|arena.py:match_loop"
    run(pytester, "--nkreplay-dir", "regs").assert_outcomes(passed=1)

    # the same expectation against the fix: no crash where one is required
    exp = rec.with_name("arena-reconnect-crash.expect.toml")
    exp.write_text('handler = "../handlers/arena_fixed.py"\n' + exp.read_text().split("\n", 1)[1])
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED: expected a crash in match_loop at tick 58 matching /KeyError: *, but the replay ran to the end without one",
            "FAILED: expected the recorded outcomes, but the recording crashed in match_loop at tick 58*",
            "first divergent tick 58 (match_join, call #*): digest",
        ]
    )


def test_wrong_crash_details_are_each_reported(pytester):
    _layout(
        pytester,
        '[crash]\ncallback = "match_join"\ntick = 57\nerror = "^IndexError"\nsignature = "match_loop|IndexError|arena.py:x"\n',
    )
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED: expected the crash in match_join, got match_loop",
            "FAILED: expected the crash at tick 57, got tick 58",
            "FAILED: expected an error matching /^IndexError/, got: KeyError: *",
            "FAILED: expected crash signature 'match_loop|IndexError|arena.py:x', got 'match_loop|KeyError|arena.py:match_loop'",
        ]
    )


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("no_crash = true\nmax_tick = 3\n", "*expect.toml: field 'max_tick': unknown key*"),
        ("no_crash = 1\n", "*field 'no_crash': must be a boolean, got 1*"),
        ('no_crash = true\n[crash]\ncallback = "match_loop"\n', "*field 'no_crash': contradicts the [[]crash] table*"),
        ('[crash]\nerror = "(unclosed"\n', "*field 'crash.error': not a valid regular expression*"),
        ('handler = "../handlers/arena.py"\n', "*checks nothing: set no_crash = true*"),
        ("no_crash = true\nmax_ticks = 0\n", "*field 'max_ticks': must be at least 1, got 0*"),
        ("no_crash = true\nhang_timeout = 0\n", "*field 'hang_timeout': must be a number of seconds above 0, got 0*"),
        ("no_crash = [true\n", "*expect.toml: not valid TOML*"),
    ],
)
def test_bad_expectations_name_the_file_and_field(pytester, expect, message):
    _layout(pytester, expect)
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["ExpectationError: " + message])


def test_max_ticks_stops_before_the_crash(pytester):
    _layout(pytester, "no_crash = true\nmax_ticks = 50\n")  # the header's (buggy) handler, but only ticks 0..49
    run(pytester, "--nkreplay-dir", "regs").assert_outcomes(passed=1)


def test_header_tag_expectation(pytester, tmp_path):
    from recorder.format import open_recording, write_recording

    with open_recording(CRASH_REC) as rec:
        header, events = rec.header, list(rec.events())
    tagged = tmp_path / "tagged.nkrec"
    write_recording(tagged, dataclasses.replace(header, tags={"expect": {"crash": {"tick": 58}}}), events)
    _layout(pytester, None, recording=tagged)
    run(pytester, "--nkreplay-dir", "regs").assert_outcomes(passed=1)
    # a handler named by the recording's own tag is as untrusted as its header: not run from outside
    outside = {"expect": {"handler": "../handlers/arena_fixed.py", "no_crash": True}}
    write_recording(tagged, dataclasses.replace(header, tags=outside), events)
    _layout(pytester, None, recording=tagged)
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*names handler '../handlers/arena_fixed.py' outside its folder*pass --handler to run it*"]
    )


def test_sibling_modules_do_not_leak_between_recordings(pytester):
    """Two folders, each with its own ``arena.py`` imported by an identical ``arena_fixed.py``."""
    _layout(pytester, 'handler = "handlers/arena_fixed.py"\nno_crash = true\n', folder="a")
    b = pytester.path / "b"
    shutil.copytree(pytester.path / "a", b)
    for folder in ("a", "b"):
        shutil.copytree(pytester.path / "handlers", pytester.path / folder / "handlers", dirs_exist_ok=True)
    broken = b / "handlers" / "arena.py"  # b's arena raises in every match_loop from tick 5
    broken.write_text(
        broken.read_text().replace(
            "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n",
            "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n"
            "    if tick >= 5:\n        raise RuntimeError('arena b')\n",
        )
    )
    (b / "arena-reconnect-crash.expect.toml").write_text(
        'handler = "handlers/arena_fixed.py"\n[crash]\ntick = 5\nerror = "arena b"\n'
    )
    result = run(pytester, "--nkreplay-dir", "a", "--nkreplay-dir", "b")
    result.assert_outcomes(passed=2)


def test_replay_recording_fixture(pytester):
    shutil.copy(CRASH_REC, pytester.path / "crash.nkrec")
    shutil.copytree(HANDLERS, pytester.path / "handlers")
    pytester.makepyfile(
        """
        def test_hand_written(replay_recording):
            result = replay_recording("crash.nkrec", handler="handlers/arena.py", until_tick=60)
            assert (result.crash.callback, result.crash.tick) == ("match_loop", 58)
            fixed = replay_recording("crash.nkrec", handler="handlers/arena_fixed.py")
            assert fixed.crash is None and fixed.outcome == "completed"
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_state_paths_are_named_where_a_snapshot_was_recorded(pytester):
    _layout(pytester, 'handler = "../handlers/fast_arena.py"\nmatches_recorded = true\n', recording=CLEAN_REC)
    fast = pytester.path / "handlers" / "fast_arena.py"
    fast.write_text(
        (HANDLERS / "arena.py").read_text().replace("SPEED, BULLET_SPEED", "SPEED_, BULLET_SPEED") + "\nSPEED = 3.0\n"
    )
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED: expected the recorded outcomes, but * outcomes diverged from the recording",
            "first divergent tick * (match_loop, call #*): *",
            "state paths differing from the recorded snapshot at tick *",
            "  bullets[[]0[]].x: recorded *, replayed *",
        ]
    )


def test_lua_state_paths(pytester, tmp_path):
    """The same for a Lua handler: its state (a Lua table) is compared with the recorded snapshot."""
    import sys

    sys.path.insert(0, str(ROOT / "fixtures"))
    try:
        from make_recordings import arena_header, play_arena
    finally:
        sys.path.remove(str(ROOT / "fixtures"))
    from replay.runtime import MatchDriver

    rec = tmp_path / "lua-clean.nkrec"
    with MatchDriver(
        str(HANDLERS / "arena.lua"), arena_header("../handlers/arena.lua"), capture=str(rec), snapshot_every=10
    ) as d:
        play_arena(d, ticks=25, reconnect_race_at=None)
    _layout(pytester, 'handler = "../handlers/fast.lua"\nmatches_recorded = true\n', recording=rec)
    shutil.copy(HANDLERS / "arena.lua", pytester.path / "handlers" / "arena.lua")
    (pytester.path / "handlers" / "fast.lua").write_text(
        (HANDLERS / "arena.lua")
        .read_text()
        .replace(
            "local SIZE, SPEED, BULLET_SPEED, HIT_RADIUS, DAMAGE = 100.0, 2.0,",
            "local SIZE, SPEED, BULLET_SPEED, HIT_RADIUS, DAMAGE = 100.0, 3.0,",
        )
    )
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "first divergent tick * (match_loop, call #*): *",
            "state paths differing from the recorded snapshot at tick *",
            "  *: recorded *, replayed *",
        ]
    )
    # the unchanged Lua handler reproduces its own recording
    (pytester.path / "regs" / "lua-clean.expect.toml").write_text(
        'handler = "../handlers/arena.lua"\nmatches_recorded = true\nno_crash = true\n'
    )
    run(pytester, "--nkreplay-dir", "regs").assert_outcomes(passed=1)


def test_a_handler_that_segfaults_fails_its_own_item_and_the_run_goes_on(pytester):
    _layout(pytester, 'handler = "../handlers/crashes_hard.py"\nno_crash = true\n', recording=CLEAN_REC)
    (pytester.path / "handlers" / "crashes_hard.py").write_text(
        "from arena_fixed import *  # noqa\nfrom arena_fixed import match_loop as _loop\n\n\n"
        "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n"
        "    if tick == 3:\n        import ctypes; ctypes.string_at(0)\n"
        "    return _loop(ctx, logger, nk, dispatcher, tick, state, messages)\n"
    )
    _layout(pytester, 'handler = "../handlers/arena_fixed.py"\nno_crash = true\n')
    result = run(pytester, "--nkreplay-dir", "regs")
    result.assert_outcomes(passed=1, failed=1)  # the replay ran in a supervised process, not in pytest's
    result.stdout.fnmatch_lines(
        ["*expected no crash, but match_loop was killed at tick 3: FatalSignalError: *SIGSEGV*"]
    )
