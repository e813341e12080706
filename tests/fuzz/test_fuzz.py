"""replay.fuzz._fuzz and `nakama-replay fuzz`: the arena bug is found from scratch in Python and Lua, the fixed
handlers survive the same budget, the written recording reproduces and is minimal, the search is
seed-reproducible and its example database makes the next run start from the known failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder.format import read_events, verify
from replay.cli import main
from replay.fuzz import FuzzOptions, FuzzProfile, MatchChecks, fuzz, load_profile, play
from replay.fuzz._minimize import removable_calls
from replay.fuzz._streams import remove_call, run_stream, strip_outcomes
from replay.regression import check, load_expectation, run_expectation
from replay.runtime import CrashSignature, ReplayOptions, reproduce
from tests.common.paths import ROOT, TEST_HANDLERS

HANDLERS = ROOT / "fixtures" / "handlers"
PROFILE = str(HANDLERS / "arena_payloads.py")
# Over 10 seeds the crash was first seen after 52..143 matches (benchmarks/bench_fuzz.py); the CLI default
# budget is 1000. The runs below stop at their first finding; the fixed handlers play the whole budget.
BUDGET = 400
ARENA_KEYS = {
    "arena.py": "match_loop|KeyError|arena.py:match_loop",
    "arena.lua": "match_loop|lua:index nil|arena.lua",
}

# Two bugs: a signal that divides by the number of messages seen, and a goodbye broadcast to the presence
# that just left (it also hangs on op code 9, which the profile below never sends).
TWO_BUGS = str(TEST_HANDLERS / "fuzz_goodbye.py")


def _arena(name: str) -> str:
    if name.endswith(".lua"):
        pytest.importorskip("lupa", reason="Lua handlers need lupa")
    return str(HANDLERS / name)


@pytest.fixture(scope="module", params=["arena.py", "arena.lua"])
def arena_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("fuzz-" + request.param.replace(".", "-"))
    handler = _arena(request.param)
    # without hypothesis's shrinking (the two-bug tests below take the default path): the reducers alone
    # must make the recording minimal, from the raw failing match
    options = FuzzOptions(
        max_examples=BUDGET, seed=0, out=out, profile=load_profile(PROFILE), max_findings=1, shrink=False
    )
    return request.param, handler, out, fuzz(handler, options)


def test_the_arena_reconnection_crash_is_found_from_scratch(arena_run) -> None:  # type: ignore[no-untyped-def]
    name, _, out, report = arena_run
    assert [f.key for f in report.findings] == [ARENA_KEYS[name]]
    f = report.findings[0]
    assert f.is_crash and f.callback == "match_loop" and f.examples == report.examples <= BUDGET
    assert f.recording is not None and f.recording.parent == out and f.expectation is not None
    # the client actions are the race: the same user connects twice and the old session's message is
    # processed after the new session's join
    connects = [a for a in f.actions if type(a).__name__ == "Connect"]
    assert len(connects) == 2 and connects[0].user == connects[1].user


def test_the_recording_reproduces_and_the_fixed_handler_does_not_crash(arena_run, capsys) -> None:  # type: ignore[no-untyped-def]
    name, handler, _, report = arena_run
    rec = str(report.findings[0].recording)
    result = reproduce(rec, handler, ReplayOptions(hang_timeout=30.0))  # no hang expected: a limit never reached
    assert result.reproduced and result.crash is not None and result.crash.callback == "match_loop"
    assert report.findings[0].reproduce_command() == f"nakama-replay reproduce {rec} --handler {handler}"
    assert main(["reproduce", rec, "--handler", handler]) == 0
    assert main(["reproduce", rec]) == 2  # its header names ../handler: outside the recording's folder
    assert "outside its folder; pass --handler to run it" in capsys.readouterr().err
    fixed = str(HANDLERS / name.replace("arena", "arena_fixed"))
    assert main(["reproduce", rec, "--handler", fixed]) == 1
    assert "DID NOT REPRODUCE" in capsys.readouterr().out
    # the expectation is one the regression plugin reads: it fails on the buggy handler, holds on the fix
    exp = load_expectation(rec)
    assert exp is not None and exp.no_crash
    assert check(run_expectation(rec, exp).result, exp) != []
    assert check(run_expectation(rec, exp, handler=fixed).result, exp) == []


def test_the_recording_has_no_removable_call(arena_run) -> None:  # type: ignore[no-untyped-def]
    """Minimal: removing any one call (a loop's removal moves later calls a tick earlier) gives a stream
    Nakama could not produce, or one without the same crash (replay.fuzz._streams has the rules)."""
    _name, handler, _, report = arena_run
    f = report.findings[0]
    assert verify(f.recording).state == "complete"  # fuzz seals the recordings it writes
    header, events = read_events(f.recording)
    calls = [e for e in events if hasattr(e, "callback") and type(e).__name__ != "CrashMarker"]
    assert len(calls) == 6  # init, attempt+join, attempt+join of the same user, the loop with the stale message
    checks = MatchChecks(load_profile(PROFILE).invariants)
    from replay.runtime import load_handler

    loaded = load_handler(handler)
    full = run_stream(loaded, header, calls, checks)
    assert full.valid and full.key == f.key
    verdicts = []
    for i in range(len(calls)):
        run = run_stream(loaded, header, remove_call(calls, i), checks)
        assert not (run.valid and run.key == f.key), f"call #{i} ({calls[i].callback}) can be removed"
        verdicts.append("invalid" if not run.valid else "no crash")
    assert "no crash" in verdicts and "invalid" in verdicts  # both ways of not being removable occur
    assert removable_calls(calls, lambda c: run_stream(loaded, header, c, checks).key == f.key) == []
    # and at the client-action level: without any one action, the crash is gone
    for i in range(len(f.actions)):
        _, player = play(loaded, f.actions[:i] + f.actions[i + 1 :], header, checks=None)
        crash = player.runtime.crash
        assert crash is None or CrashSignature.from_crash(crash).key != f.key


@pytest.mark.parametrize("name", ["arena_fixed.py", "arena_fixed.lua"])
def test_the_fixed_arenas_survive_the_same_budget(name: str) -> None:
    report = fuzz(_arena(name), FuzzOptions(max_examples=BUDGET, seed=0, out=None, profile=load_profile(PROFILE)))
    assert report.findings == [] and report.examples == BUDGET


@pytest.fixture(scope="module")
def two_bugs() -> tuple[str, FuzzProfile]:
    return TWO_BUGS, FuzzProfile(payloads={1: None}, signals=("", "reset"), source="two-bugs")


def test_distinct_failures_each_get_a_recording_and_a_seed_finds_the_same_ones(two_bugs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler, profile = two_bugs
    reports = [
        fuzz(handler, FuzzOptions(max_examples=120, seed=7, out=tmp_path / f"run{i}", profile=profile, database=False))
        for i in range(2)
    ]
    keys = [f.key for f in reports[0].findings]
    assert sorted(keys) == [
        "match_leave|BroadcastToAbsentPresence|fuzz_goodbye.py:match_leave",
        "match_signal|ZeroDivisionError|fuzz_goodbye.py:match_signal",
    ]
    assert [f.key for f in reports[1].findings] == keys
    assert [f.examples for f in reports[1].findings] == [f.examples for f in reports[0].findings]
    for a, b in zip(reports[0].findings, reports[1].findings):
        assert a.recording.read_bytes() == b.recording.read_bytes()  # byte-identical recordings
    crash = next(f for f in reports[0].findings if f.is_crash)
    absent = next(f for f in reports[0].findings if not f.is_crash)
    assert crash.expectation is not None and absent.expectation is None  # the plugin checks crashes only
    assert [type(a).__name__ for a in crash.actions] == ["Signal"]  # 1 / 0 before any message: no loop needed
    assert [type(a).__name__ for a in absent.actions] == ["Connect", "Leave"]


def test_the_example_database_makes_the_next_run_start_from_known_failures(two_bugs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler, profile = two_bugs
    first = fuzz(handler, FuzzOptions(max_examples=120, seed=3, out=tmp_path, profile=profile))
    second = fuzz(handler, FuzzOptions(max_examples=120, seed=3, out=tmp_path, profile=profile))
    assert (tmp_path / ".hypothesis").is_dir()
    assert [f.key for f in second.findings] == [f.key for f in first.findings]
    # the saved failure is replayed first: each is seen again at the first match of its round
    rounds = [f.examples for f in second.findings]
    assert rounds[0] == 1 and rounds[1] == 2
    assert first.findings[0].examples > 1 or first.findings[1].examples > 2


def test_cli_fuzz_json_and_bad_input(two_bugs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    handler, _ = two_bugs
    module = tmp_path / "two_bugs_profile.py"
    module.write_text("PAYLOADS = {1: None}\nSIGNALS = ('', 'reset')\n")
    out = tmp_path / "cli"
    code = main(
        ["fuzz", "--handler", handler, "--payloads", str(module), "--out", str(out), "--max-examples", "60", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["examples"] == 60 and len(doc["findings"]) == 2
    crash = next(f for f in doc["findings"] if f["kind"] == "HandlerCrashed")
    assert crash["reproduce"] == f"nakama-replay reproduce {out / Path(crash['recording']).name} --handler {handler}"
    assert main(["reproduce", crash["recording"], "--handler", handler]) == 0
    capsys.readouterr()
    assert main(["fuzz", "--handler", handler, "--payloads", str(tmp_path / "nope.py"), "--out", str(out)]) == 2
    assert "ProfileError" in capsys.readouterr().err
    assert main(["fuzz", "--handler", str(tmp_path / "nope.py"), "--out", str(out)]) == 2
    assert "HandlerLoadError" in capsys.readouterr().err
    assert main(["fuzz", "--handler", handler, "--max-examples", "0", "--out", str(out)]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["fuzz", "--handler", handler, "--users", "9", "--out", str(out)]) == 2
    assert "max_users: must be 1..8" in capsys.readouterr().err


def test_cli_fuzz_text_report_for_a_handler_that_survives(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(
        [
            "fuzz",
            "--handler",
            str(HANDLERS / "arena_fixed.py"),
            "--payloads",
            PROFILE,
            "--out",
            str(tmp_path),
            "--max-examples",
            "30",
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "30 matches" in text and "no failure found" in text
    assert not list(tmp_path.glob("*.nkrec"))


def test_stripped_streams_keep_inputs() -> None:
    from recorder.format import InitCall, Outcome

    calls = [InitCall({"a": 1}, outcome=Outcome(tick_rate=10))]
    assert strip_outcomes(calls) == [InitCall({"a": 1})]


def test_each_generated_match_gets_a_fresh_handler() -> None:
    """Given a path, no state leaks from one match into the next (a class handler gets a new instance per
    match, a Lua module a new VM, as each match has its own in Nakama); a loaded handler is shared."""
    from replay.runtime import load_handler

    spec = str(TEST_HANDLERS / "fuzz_leaky.py") + ":Leaky"
    profile = FuzzProfile(payloads={1: None}, signals=("",))
    assert fuzz(spec, FuzzOptions(max_examples=20, out=None, profile=profile)).findings == []
    shared = fuzz(load_handler(spec), FuzzOptions(max_examples=20, out=None, profile=profile))
    assert [f.key for f in shared.findings] == ["match_init|RuntimeError|fuzz_leaky.py:match_init"]


def test_a_lua_handlers_findings_are_located_in_its_lua_code_and_quoted_values_group(tmp_path: Path) -> None:
    """Issue #14, item 7: a broadcast to an absent presence made from Lua is located from the Lua stack (not
    from whichever Python function called the replay, which made fuzz fail on its own finding), and crashes
    whose messages differ only in a quoted value ('\\x00', '\\x01') are one failure."""
    pytest.importorskip("lupa", reason="Lua handlers need lupa")
    from hypothesis import strategies as st

    handler = str(TEST_HANDLERS / "fuzz_goodbye.lua")
    profile = FuzzProfile(payloads={5: st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x03"])}, source="bad-json")
    report = fuzz(
        handler, FuzzOptions(max_examples=150, seed=1, out=tmp_path, profile=profile, database=False, shrink=False)
    )
    keys = sorted(f.key for f in report.findings)
    assert keys == [
        "match_leave|BroadcastToAbsentPresence|fuzz_goodbye.lua",
        "match_loop|lua:error not a valid JSON string: invalid character '<q>' looking for beginning of value"
        "|fuzz_goodbye.lua",
    ]
    assert report.stopped_by in ("budget", "exhausted") and not report.capped


def test_max_findings_ends_the_search_and_says_so(two_bugs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    handler, profile = two_bugs
    report = fuzz(handler, FuzzOptions(max_examples=120, seed=7, out=None, profile=profile, max_findings=1))
    assert len(report.findings) == 1 and report.capped and report.examples < 120
    assert report.to_json()["stopped_by"] == "max_findings"
    module = tmp_path / "two_bugs_profile.py"
    module.write_text("PAYLOADS = {1: None}\nSIGNALS = ('', 'reset')\n")
    args = [
        "fuzz",
        "--handler",
        handler,
        "--payloads",
        str(module),
        "--out",
        str(tmp_path / "o"),
        "--max-examples",
        "120",
        "--seed",
        "7",
        "--quiet",
        "--no-database",
    ]
    assert main([*args, "--max-findings", "1"]) == 1
    assert "stopped  at --max-findings 1 after" in capsys.readouterr().out
    assert main([*args, "--max-findings", "5"]) == 1
    out = capsys.readouterr().out
    assert "2 distinct failures" in out and "--max-findings" not in out
    assert main([*args, "--max-findings", "0"]) == 2
    assert "OptionError: --max-findings: '0': must be at least 1" in capsys.readouterr().err
