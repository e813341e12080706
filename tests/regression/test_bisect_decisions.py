"""bisect's decisions one by one, found by the mutation run (tests/mutation/run.py replay.regression._bisect):
what a ``--run`` command says of a version, the runnable check, what a replay says, which files a revision holds."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from replay.errors import BisectError
from replay.regression import GitSource, Version
from replay.regression._bisect import ABORT, BAD, GOOD, SKIP, CommandTest, ReplayTest, kary_bisect
from replay.runtime import Crash, Limits, ReplayOptions
from tests.common.paths import ROOT

CRASH_REC = str(ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec")
ARENA = str(ROOT / "fixtures" / "handlers" / "arena.py")
V = Version("v1", "v1")


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


# -- --run commands -------------------------------------------------------------------------------------------


def test_the_handler_placeholder_is_the_versions_handler(tmp_path: Path) -> None:
    buggy, fixed = tmp_path / "buggy.py", tmp_path / "fixed.py"
    buggy.write_text("BUG = 1\n")
    fixed.write_text("OK = 1\n")
    files = {"b": str(buggy), "f": str(fixed)}
    test = CommandTest("! grep -q BUG {handler}", CRASH_REC, handler_for=lambda v: files[v.ref])
    assert test(Version("b", "b"))[0] == BAD and test(Version("f", "f"))[0] == GOOD


def test_the_command_runs_in_its_folder(tmp_path: Path) -> None:
    _script(tmp_path, "judge.sh", "exit 1")
    test = CommandTest("./judge.sh {version}", CRASH_REC, cwd=str(tmp_path))
    test.check(V)  # found relative to cwd, not to the current directory
    assert test(V) == (BAD, "exit 1")  # no output: nothing quoted after the code


def test_side_by_side_commands_run_in_their_folder_and_answer_in_version_order(tmp_path: Path) -> None:
    """``bisect --run -j K``: each command runs in the command's folder on the executor's worker."""
    _script(tmp_path, "judge.sh", 'test "$1" = bad && exit 1; exit 0')
    test = CommandTest("./judge.sh {version}", CRASH_REC, cwd=str(tmp_path))
    with ThreadPoolExecutor(2) as pool:
        answers = test.many([Version("bad", "bad"), Version("good", "good")], pool)
    assert answers == [(BAD, "exit 1"), (GOOD, "exit 0")]


def test_a_command_the_executor_could_not_run_aborts_naming_it(tmp_path: Path) -> None:
    """The worker fails before the shell runs (here: the folder is gone): nothing was tested, so the answer
    is abort, naming the command and the error, never good or bad."""
    gone = tmp_path / "gone"
    gone.mkdir()
    test = CommandTest("true {version}", CRASH_REC, cwd=str(gone))
    gone.rmdir()
    with ThreadPoolExecutor(2) as pool:
        [(verdict, why)] = test.many([V], pool)
    assert verdict == ABORT
    assert why.startswith("the command 'true v1' could not be run: FileNotFoundError: "), why


def test_check_ends_with_several_jobs_tests_both_ends_once_in_the_first_round() -> None:
    """``--check-ends -j K``: the first round is the two ends; the first version is not tested again, and the
    search goes on from them to the first bad version."""
    versions = [Version(f"v{i}", str(i)) for i in range(10)]
    rounds: list[list[int]] = []

    def test_many(chosen: list[Version]) -> list[tuple[str, str]]:
        rounds.append([int(v.ref) for v in chosen])
        return [(BAD, "bad") if int(v.ref) >= 7 else (GOOD, "good") for v in chosen]

    result = kary_bisect(versions, test_many, 2, check_ends=True)
    assert rounds[0] == [0, 9] and sum(r.count(0) for r in rounds) == 1
    assert result.first_bad_index == 7 and not result.aborted


def test_a_relative_program_without_cwd_is_looked_up_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(tmp_path, "judge.sh", "exit 0")
    monkeypatch.chdir(tmp_path)
    CommandTest("./judge.sh {version}", CRASH_REC).check(V)


def test_the_check_skips_variable_assignments_and_shell_syntax() -> None:
    with pytest.raises(BisectError, match=r"'\./missing\.sh' does not exist"):
        CommandTest("FOO=1 BAR=2 ./missing.sh {version}", CRASH_REC).check(V)
    CommandTest("if true; then exit 0; fi", CRASH_REC).check(V)  # a keyword: the shell has it
    CommandTest("true", CRASH_REC).check(V)  # one word
    CommandTest("{handler} {version}", CRASH_REC).check(V)  # the handler itself: not known before the step
    with pytest.raises(BisectError, match="not a valid shell command: No closing quotation"):
        CommandTest("echo 'unbalanced {version}", CRASH_REC).check(V)


def test_what_the_command_printed_is_quoted_cut_and_decoded_whatever_the_bytes(tmp_path: Path) -> None:
    _script(tmp_path, "long.sh", "printf 'x%.0s' $(seq 1 300); echo; exit 1")
    verdict, why = CommandTest("./long.sh", CRASH_REC, cwd=str(tmp_path))(V)
    assert verdict == BAD and why == "exit 1: " + "x" * 160
    _script(tmp_path, "bytes.sh", "printf 'caf\\351\\n'; exit 0")
    assert CommandTest("./bytes.sh", CRASH_REC, cwd=str(tmp_path))(V) == (GOOD, "exit 0: caf\ufffd")


@pytest.mark.parametrize(("status", "what"), [(126, "cannot be executed"), (127, "was not found")])
def test_126_and_127_say_why_nothing_was_tested(status: int, what: str) -> None:
    verdict, why = CommandTest(f"sh -c 'exit {status}'", CRASH_REC)(V)
    assert verdict == ABORT
    assert why == (
        f"exit {status}: the command \"sh -c 'exit {status}'\" {what}; a command that did not run says nothing "
        "about the version (git bisect run would count it as bad)"
    )


# -- replays ----------------------------------------------------------------------------------------------------


def test_the_replay_options_are_the_ones_given() -> None:
    """The crash is at tick 58: replaying only up to tick 10 cannot show it."""
    early = ReplayTest(CRASH_REC, options=ReplayOptions(until_tick=10), handler_for=lambda v: ARENA)
    assert early(V)[0] == GOOD
    full = ReplayTest(CRASH_REC, options=ReplayOptions(), handler_for=lambda v: ARENA)
    assert full(V)[0] == BAD
    supervised = ReplayTest(
        CRASH_REC, options=ReplayOptions(until_tick=10), handler_for=lambda v: ARENA, limits=Limits()
    )
    try:
        assert supervised(V)[0] == GOOD  # the same options in the handler process
    finally:
        supervised.close()


def _result(crash: Crash | None, **fields: object) -> SimpleNamespace:
    base = {"outcome": "crashed", "ticks_replayed": 59, "last_inputs": [], "recorded_crash": None}
    return SimpleNamespace(crash=crash, **{**base, **fields})


def test_a_renamed_handler_keeps_its_op_code_when_compared() -> None:
    test = ReplayTest(CRASH_REC, handler_for=lambda v: ARENA)
    assert test.reference is not None and test.reference.op_code == 1
    trace = 'Traceback (most recent call last):\n  File "/r/arena_v2.py", line 9, in match_loop\n'
    crash = Crash("match_loop", 58, "KeyError: 'x'", "KeyError", trace)
    other_op = [{"callback": "match_loop", "tick": 58, "messages": [{"op_code": 2}]}]
    recorded = SimpleNamespace(tick=58)
    verdict, _ = test._crash(_result(crash, last_inputs=other_op, recorded_crash=recorded), "arena_v2.py")
    assert verdict == SKIP  # same place, another last op code: not provably this crash
    same_op = [{"callback": "match_loop", "tick": 58, "messages": [{"op_code": 1}]}]
    assert test._crash(_result(crash, last_inputs=same_op, recorded_crash=recorded), "arena_v2.py")[0] == BAD


def test_a_crash_without_text_and_a_result_without_a_recorded_crash() -> None:
    test = ReplayTest(CRASH_REC, handler_for=lambda v: ARENA)
    crash = Crash("match_join", 3, "", "ValueError")
    assert test._crash(_result(crash), "arena.py") == (
        GOOD,
        "not this crash: match_join crashed at tick 3: ValueError (match_join|ValueError|?)",
    )


def test_diverges_names_the_first_divergence() -> None:
    test = ReplayTest(CRASH_REC, predicate="diverges", handler_for=lambda v: ARENA)
    one = SimpleNamespace(tick=7, callback="match_loop", field="state.score")
    result = SimpleNamespace(reproduced=False, verdict="did not reproduce", divergences=[one])
    assert test._diverges(result) == (
        BAD,
        "did not reproduce; first divergence at tick 7 (match_loop): state.score",
    )


# -- which files a revision holds ----------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "game"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    return repo


def test_a_top_level_lua_handler_and_odd_file_names(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "arena.lua").write_text("return {}\n")
    (repo / "util.lua").write_text("return {}\n")
    (repo / "odd\tname.py").write_text("X = 1\n")
    os.close(os.open(os.fsencode(repo) + b"/caf\xe9.py", os.O_CREAT | os.O_WRONLY, 0o644))
    (repo / "notes.txt").write_text("not a module\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "top level")
    head = Version("head", _git(repo, "rev-parse", "HEAD"))
    specs = GitSource(repo, "arena.lua").pathspecs(head)
    assert specs is not None
    assert sorted(specs) == sorted(["arena.lua", "util.lua", "odd\tname.py", "caf\udce9.py"])


def test_a_top_level_javascript_or_typescript_handler_is_found_with_its_siblings(tmp_path: Path) -> None:
    """A bundle (``index.js``) or a TypeScript entry (``main.ts``) at the top of its repository: each revision gives
    it with the other .js/.ts/.py/.lua files there, nothing else."""
    repo = _repo(tmp_path)
    (repo / "index.js").write_text("function InitModule(ctx, logger, nk, initializer) {}\n")
    (repo / "helpers.js").write_text("var X = 1;\n")
    (repo / "main.ts").write_text("let x: number = 1;\n")
    (repo / "package.json").write_text("{}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "top level")
    head = Version("head", _git(repo, "rev-parse", "HEAD"))
    for handler in ("index.js", "main.ts"):
        specs = GitSource(repo, handler).pathspecs(head)
        assert specs is not None and sorted(specs) == ["helpers.js", "index.js", "main.ts"], handler
        found = GitSource(repo, handler).materialise(head, tmp_path / handler)
        assert found is not None and found.read_text() == (repo / handler).read_text()


def test_a_handler_folder_missing_at_a_revision_is_no_handler(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "README.md").write_text("game\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "before the modules")
    before = Version("before", _git(repo, "rev-parse", "HEAD"))
    (repo / "modules").mkdir()
    (repo / "modules" / "arena.py").write_text("X = 1\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "modules")
    after = Version("after", _git(repo, "rev-parse", "HEAD"))
    source = GitSource(repo, "modules/arena.py")
    assert source.pathspecs(before) is None and source.pathspecs(after) == ["modules"]
