"""bisect: git bisect's search and run verdicts over handler revisions, handler folders and client versions."""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from replay.cli import main
from replay.errors import BisectError
from replay.regression import Version, bisect, folder_versions
from replay.regression._bisect import BAD, GOOD, SKIP, verdict_from_exit, version_key
from tests.common.paths import ROOT

CRASH_REC = str(ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec")
CLEAN_REC = str(ROOT / "fixtures" / "recordings" / "arena-clean.nkrec")
BUGGY = (ROOT / "fixtures" / "handlers" / "arena.py").read_text()
FIXED = BUGGY.replace('del state["sessions"][session_id]', 'state["sessions"][session_id] = None')
assert FIXED != BUGGY


def _venv_on_path() -> dict[str, str]:
    """The environment with this interpreter's scripts folder first on PATH: the printed command runs as the user
    would type it (``nakama-replay ...``), found whether or not a virtual environment was activated."""
    scripts = str(Path(sys.executable).parent)
    assert shutil.which("nakama-replay", path=scripts), f"nakama-replay is not installed next to {sys.executable}"
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "game"
    (repo / "modules").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    return repo


def _commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
        _git(repo, "add", name)
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["bisect", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_ten_revisions_bug_at_seven_found_in_at_most_four_replays(tmp_path, capsys, monkeypatch):
    # the printed command checks revision 7 out below the temp folder: this test's own, not a /tmp folder whose
    # name (the revision's sha, the same in every run) a concurrent run of the suite shares and removes
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    repo = _repo(tmp_path)
    shas = []
    for i in range(1, 11):
        text = (FIXED if i < 7 else BUGGY) + f"\nREVISION = {i}\n"
        shas.append(_commit(repo, f"revision {i}", {"modules/arena.py": text}))
        if i == 4:  # a commit outside the handler's folder is not a version
            _commit(repo, "docs", {"README.md": "arena\n"})
    code, out = _run_json(
        capsys, CRASH_REC, "--handler-file", str(repo / "modules" / "arena.py"), "--revs", f"{shas[0]}..{shas[-1]}"
    )
    assert code == 0
    assert out["first_bad"]["ref"] == shas[6] and out["first_bad"]["name"].endswith("revision 7")
    assert out["versions"] == 10
    assert 1 <= out["replays"] == len(out["steps"]) <= 4
    for step in out["steps"]:
        revision = int(step["version"].rsplit(" ", 1)[1])
        assert step["verdict"] == (BAD if revision >= 7 else GOOD), step
    bad_steps = [s for s in out["steps"] if s["verdict"] == BAD]
    assert bad_steps and "match_loop|KeyError|arena.py:match_loop" in bad_steps[0]["why"]
    # the printed command reproduces the crash with revision 7
    command = out["reproduce"]
    assert command.count(" && nakama-replay reproduce ") == 1  # check out revision 7, then what the user runs
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=False, timeout=300, env=_venv_on_path()
    )
    assert proc.returncode == 0, proc.stderr
    assert "REPRODUCED: match_loop crashed at tick 58, as recorded" in proc.stdout
    assert (tmp_path / f"nkreplay-bisect-{shas[6][:10]}" / "modules" / "arena.py").is_file()


LUA_BUGGY = (ROOT / "fixtures" / "handlers" / "arena.lua").read_text()
LUA_FIXED = LUA_BUGGY.replace("      state.sessions[session_id] = nil\n", "      state.sessions[session_id] = false\n")
assert LUA_FIXED != LUA_BUGGY


def test_lua_handler_history_with_a_required_sibling(tmp_path, capsys):
    """A crash recorded from the Lua arena; the handler file requires arena.lua, whose history has the bug."""
    sys.path.insert(0, str(ROOT / "fixtures"))
    try:
        from make_recordings import arena_header, play_arena
    finally:
        sys.path.remove(str(ROOT / "fixtures"))
    from replay.runtime import MatchDriver

    rec = tmp_path / "lua-crash.nkrec"
    with MatchDriver(
        str(ROOT / "fixtures" / "handlers" / "arena.lua"), arena_header("arena.lua"), capture=str(rec)
    ) as d:
        play_arena(d)
    repo = _repo(tmp_path)
    shas = []
    for i in range(1, 11):
        shas.append(
            _commit(
                repo,
                f"revision {i}",
                {
                    "modules/arena.lua": (LUA_FIXED if i < 7 else LUA_BUGGY) + f"\n-- revision {i}\n",
                    "modules/main.lua": 'return require("arena")\n',
                },
            )
        )
    code, out = _run_json(
        capsys, str(rec), "--handler-file", str(repo / "modules" / "main.lua"), "--revs", f"{shas[0]}..{shas[-1]}"
    )
    assert code == 0, out
    assert out["first_bad"]["ref"] == shas[6] and len(out["steps"]) <= 4
    assert any("match_loop|lua:index nil|arena.lua" in s["why"] for s in out["steps"] if s["verdict"] == BAD)


def test_text_output_names_each_step_and_the_first_bad(tmp_path, capsys):
    repo = _repo(tmp_path)
    shas = [
        _commit(repo, f"r{i}", {"modules/arena.py": (FIXED if i < 2 else BUGGY) + f"\nR = {i}\n"}) for i in range(4)
    ]
    code = main(
        ["bisect", CRASH_REC, "--handler-file", str(repo / "modules" / "arena.py"), "--revs", f"{shas[0]}..HEAD"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"FIRST BAD: {shas[2][:10]} r2" in out
    assert "GOOD  ran to the end without the crash" in out and "BAD   match_loop crashed at tick 58" in out
    checkout = os.path.join(tempfile.gettempdir(), f"nkreplay-bisect-{shas[2][:10]}")
    assert f"reproduce: mkdir -p {shlex.quote(checkout)} && git" in out


def test_siblings_are_materialised_and_broken_revisions_skipped(tmp_path, capsys):
    """The handler file never changes; the module it imports does (the bug comes with revision 6).
    Revision 4 does not even parse: skipped, and the search goes on around it."""
    repo = _repo(tmp_path)
    entry = "from arena import *  # noqa\n"
    shas = []
    for i in range(1, 9):
        arena = (FIXED if i < 6 else BUGGY) + f"\nREVISION = {i}\n"
        if i == 4:
            arena += "def broken(:\n"
        shas.append(_commit(repo, f"revision {i}", {"modules/arena.py": arena, "modules/entry.py": entry}))
    code, out = _run_json(
        capsys, CRASH_REC, "--handler-file", str(repo / "modules" / "entry.py"), "--revs", f"{shas[0]}..{shas[-1]}"
    )
    assert code == 0, out
    assert out["first_bad"]["ref"] == shas[5]
    skipped = [s for s in out["steps"] if s["verdict"] == SKIP]
    assert [s["ref"] for s in skipped] == [shas[3]]
    assert "handler does not load" in skipped[0]["why"] and "syntax error" in skipped[0]["why"]


def test_handler_folder_in_version_order_with_renamed_files(tmp_path, capsys):
    folder = tmp_path / "releases"
    folder.mkdir()
    for i in range(1, 13):
        (folder / f"arena_v{i}.py").write_text((FIXED if i < 9 else BUGGY) + f"\nV = {i}\n")
    assert [v.name for v in folder_versions(folder)][8:10] == ["arena_v9.py", "arena_v10.py"]
    code, out = _run_json(capsys, CRASH_REC, "--handlers", str(folder))
    assert code == 0 and out["first_bad"]["name"] == "arena_v9.py"
    assert len(out["steps"]) <= math.ceil(math.log2(11))
    assert out["reproduce"].endswith(f"--handler {folder / 'arena_v9.py'}")
    # by name, arena_v10.py .. arena_v12.py come before arena_v2.py
    assert [v.name for v in folder_versions(folder, order="name")][:3] == [
        "arena_v1.py",
        "arena_v10.py",
        "arena_v11.py",
    ]


def test_predicate_diverges(tmp_path, capsys):
    folder = tmp_path / "versions"
    folder.mkdir()
    for i in range(1, 6):
        text = BUGGY if i < 4 else BUGGY.replace("SPEED, BULLET_SPEED", "SPEED_, BULLET_SPEED") + "\nSPEED = 3.0\n"
        (folder / f"v{i}").mkdir()
        (folder / f"v{i}" / "arena.py").write_text(text)
    with pytest.raises(BisectError, match="no crash marker"):
        main_raising(["bisect", CLEAN_REC, "--handlers", str(folder), "--handler-name", "arena.py"])
    code, out = _run_json(
        capsys, CLEAN_REC, "--handlers", str(folder), "--handler-name", "arena.py", "--predicate", "diverges"
    )
    assert code == 0 and out["first_bad"]["name"] == "v4"
    assert any("first divergence at tick" in s["why"] for s in out["steps"] if s["verdict"] == BAD)


def main_raising(argv: list[str]) -> int:
    """Run a command and let our errors through (``main`` prints them and returns 2)."""
    from replay.cli import build_parser
    from replay.cli._main import _load

    args = build_parser().parse_args(argv)
    return _load(args.command).run(args)


def test_client_versions_with_run_command(tmp_path, capsys):
    judge = tmp_path / "judge.py"
    judge.write_text(
        "import sys\n"
        "version, recording = sys.argv[1], sys.argv[2]\n"
        "assert recording.endswith('.nkrec'), recording\n"
        "minor = int(version.split('.')[1])\n"
        "if minor == 3: sys.exit(125)\n"
        "print(f'client {version}: ' + ('crash' if minor >= 5 else 'ok'))\n"
        "sys.exit(1 if minor >= 5 else 0)\n"
    )
    versions = [f"1.{m}.0" for m in range(0, 8)]
    cmd = f"{sys.executable} {judge} {{version}} {{recording}}"
    code, out = _run_json(capsys, CRASH_REC, "--versions", *versions, "--run", cmd)
    assert code == 0 and out["first_bad"]["name"] == "1.5.0"
    assert all(
        s["why"].startswith(f"exit {0 if s['verdict'] == GOOD else 1}: client ")
        for s in out["steps"]
        if s["verdict"] != SKIP
    )
    assert out["reproduce"] == f"{sys.executable} {judge} 1.5.0 {CRASH_REC}"
    # every version untestable but the ends: git's "could be any of"
    cmd125 = f"{sys.executable} -c 'import sys; sys.exit(125)' {{version}}"
    code, out = _run_json(capsys, CRASH_REC, "--versions", "a", "b", "c", "d", "--run", cmd125)
    assert code == 1 and out["first_bad"] is None
    assert [c["name"] for c in out["candidates"]] == ["b", "c", "d"] and len(out["steps"]) == 2
    # an exit status above 127 aborts
    cmd200 = f"{sys.executable} -c 'import sys; sys.exit(200)' {{version}}"
    code, out = _run_json(capsys, CRASH_REC, "--versions", "a", "b", "c", "--run", cmd200)
    assert code == 2 and out["aborted"] and len(out["steps"]) == 1


def test_check_ends(tmp_path, capsys):
    folder = tmp_path / "releases"
    folder.mkdir()
    for i in range(1, 4):
        (folder / f"arena_v{i}.py").write_text(FIXED + f"\nV = {i}\n")  # the crash never comes back
    code, out = _run_json(capsys, CRASH_REC, "--handlers", str(folder), "--check-ends")
    assert code == 1 and out["first_bad"] is None and "is good, not bad: nothing to bisect" in out["message"]
    assert len(out["steps"]) == 1


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (0, GOOD),
        (1, BAD),
        (2, BAD),
        (124, BAD),
        (125, SKIP),
        (126, BAD),
        (127, BAD),
        (128, "abort"),
        (255, "abort"),
        (-9, "abort"),
    ],
)
def test_git_bisect_run_exit_codes(code, verdict):
    assert verdict_from_exit(code) == verdict


def test_search_is_logarithmic_for_every_position():
    for n in range(2, 40):
        versions = [Version(str(i), str(i)) for i in range(n)]
        for first_bad in range(1, n):
            result = bisect(versions, lambda v, first_bad=first_bad: (BAD if int(v.ref) >= first_bad else GOOD, ""))
            assert result.first_bad_index == first_bad
            assert len(result.steps) <= math.ceil(math.log2(n - 1)) if n > 2 else len(result.steps) == 0


def test_version_key_orders_numbers_naturally():
    names = ["1.10.0", "1.9.2", "1.9.10", "v2", "v10", "v1"]
    assert sorted(names, key=version_key) == ["1.9.2", "1.9.10", "1.10.0", "v1", "v2", "v10"]


def test_bad_input_is_reported(tmp_path, capsys):
    assert (
        main(
            ["bisect", CRASH_REC, "--handler-file", str(ROOT / "fixtures" / "handlers" / "arena.py"), "--revs", "HEAD"]
        )
        == 2
    )
    assert "write REV1..REV2" in capsys.readouterr().err
    assert main(["bisect", CRASH_REC, "--versions", "1", "2"]) == 2
    assert "--versions needs --run" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["bisect", CRASH_REC, "--handlers", str(empty)]) == 2
    assert "no handler files" in capsys.readouterr().err
    with pytest.raises(BisectError, match="at least two versions"):
        bisect([Version("a", "a")], lambda v: (GOOD, ""))


def test_an_earlier_other_crash_is_a_skip(tmp_path, capsys):
    folder = tmp_path / "releases"
    folder.mkdir()
    early = FIXED.replace(
        "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n",
        "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n    if tick == 5:\n        raise ValueError('early')\n",
    )
    for i, text in enumerate((FIXED, early, BUGGY), 1):
        (folder / f"arena_v{i}.py").write_text(text)
    code, out = _run_json(capsys, CRASH_REC, "--handlers", str(folder))
    assert code == 1 and out["first_bad"] is None
    [step] = out["steps"]
    assert step["verdict"] == SKIP and step["why"].startswith(
        "another crash first, in match_loop at tick 5: ValueError: early"
    )
    assert [c["name"] for c in out["candidates"]] == ["arena_v2.py", "arena_v3.py"]


def test_a_handler_at_the_top_of_its_repository_is_found_at_every_revision(tmp_path, capsys):
    """``ctf.py``-style: the handler sits at the top level, with no .lua file beside it (git archive used to fail
    as a whole on the unmatched ``*.lua`` pathspec, so every version was skipped)."""
    repo = tmp_path / "top"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    shas = [_commit(repo, "readme only", {"README.md": "game\n"})]  # the handler does not exist yet: skipped
    for i in range(1, 9):
        shas.append(_commit(repo, f"revision {i}", {"arena.py": (FIXED if i < 5 else BUGGY) + f"\nREVISION = {i}\n"}))
    code, out = _run_json(
        capsys, CRASH_REC, "--handler-file", str(repo / "arena.py"), "--revs", f"{shas[1]}..{shas[-1]}", "--check-ends"
    )
    assert code == 0, out
    assert out["first_bad"]["ref"] == shas[5]
    assert all(s["verdict"] in (GOOD, BAD) for s in out["steps"]), out["steps"]
    from replay.regression import GitSource
    from replay.regression import Version as V

    source = GitSource(repo, "arena.py")
    assert source.pathspecs(V("r0", shas[0])) is None  # no handler at that revision
    assert source.pathspecs(V("r1", shas[1])) == ["arena.py"]


def test_a_run_command_that_cannot_run_stops_before_the_first_step(tmp_path, capsys):
    versions = ["1", "2", "3"]
    assert main(["bisect", CRASH_REC, "--versions", *versions, "--run", "./nonexistent-cmd {version}"]) == 2
    captured = capsys.readouterr()
    assert "'./nonexistent-cmd' does not exist, so no version could be tested" in captured.err
    assert "FIRST BAD" not in captured.out and "bisecting" not in captured.out
    script = tmp_path / "judge.sh"
    script.write_text("#!/bin/sh\nexit 0\n")  # no execute bit: the shell would answer 126
    assert main(["bisect", CRASH_REC, "--versions", *versions, "--run", f"{script} {{version}}"]) == 2
    assert "is not an executable file" in capsys.readouterr().err
    assert main(["bisect", CRASH_REC, "--versions", *versions, "--run", "no-such-program-here {version}"]) == 2
    assert "is not a command on PATH" in capsys.readouterr().err


@pytest.mark.parametrize("status", [126, 127])
def test_exit_126_and_127_abort_with_exit_2_naming_the_command(status, capsys):
    """git bisect run counts them as bad; a command the shell could not run tested nothing."""
    cmd = f"sh -c 'exit {status}' {{version}}"
    code, out = _run_json(capsys, CRASH_REC, "--versions", "1", "2", "3", "4", "--run", cmd)
    assert code == 2 and out["aborted"] and out["first_bad"] is None and len(out["steps"]) == 1
    assert out["steps"][0]["verdict"] == "abort"
    assert f"exit {status}" in out["message"] and "sh -c 'exit" in out["message"]
    assert ("cannot be executed" if status == 126 else "was not found") in out["message"]
    help_text = subprocess.run(
        [sys.executable, "-m", "replay.cli", "bisect", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert (
        "126 (cannot execute) and 127 (command not found) abort" in help_text and "git bisect run counts" in help_text
    )


def _crash_at(tick: int, error: str = "ValueError('other')") -> str:
    """The fixed arena, crashing in match_loop at ``tick`` with another error than the recorded KeyError."""
    return FIXED.replace(
        "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n",
        f"def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n    if tick == {tick}:\n        raise {error}\n",
    )


def test_a_different_crash_at_exactly_the_recorded_tick_is_a_skip(tmp_path, capsys):
    folder = tmp_path / "releases"
    folder.mkdir()
    for i, text in enumerate((FIXED, _crash_at(58), BUGGY), 1):
        (folder / f"arena_v{i}.py").write_text(text)
    code, out = _run_json(capsys, CRASH_REC, "--handlers", str(folder))
    [step] = out["steps"]
    assert step["verdict"] == SKIP, step
    assert step["why"].startswith("another crash first, in match_loop at tick 58: ValueError: other")
    assert code == 1 and out["first_bad"] is None


def test_a_different_crash_after_the_recorded_tick_is_not_this_crash(tmp_path, capsys):
    """A recording whose crash marker (tick 20) comes before calls it still holds: a version crashing otherwise
    later (tick 30) is good, "not this crash"; one crashing otherwise before it, skipped."""
    from recorder.format import CrashMarker, read_events, write_recording

    header, events = read_events(CLEAN_REC)
    marker = CrashMarker(
        "match_loop", 20, "KeyError: 'gone'", 'File "arena.py", line 1, in match_loop\nKeyError', "KeyError"
    )
    at = next(i for i, e in enumerate(events) if getattr(e, "tick", 0) > 20)
    rec = tmp_path / "marked.nkrec"
    write_recording(rec, header, [*events[:at], marker, *events[at:]])
    folder = tmp_path / "releases"
    folder.mkdir()
    from replay.regression import ReplayTest

    for name, text in (("later", _crash_at(30)), ("earlier", _crash_at(10))):
        (folder / f"{name}.py").write_text(text)
    test = ReplayTest(str(rec))
    later = test(Version("later", "later", str(folder / "later.py")))
    earlier = test(Version("earlier", "earlier", str(folder / "earlier.py")))
    assert later[0] == GOOD and later[1].startswith("not this crash: match_loop crashed at tick 30: ValueError: other")
    assert earlier[0] == SKIP and earlier[1].startswith("another crash first, in match_loop at tick 10")


def test_an_incomplete_recording_is_not_bisected(tmp_path, capsys):
    folder = tmp_path / "releases"
    folder.mkdir()
    for i, text in enumerate((FIXED, BUGGY), 1):
        (folder / f"arena_v{i}.py").write_text(text)
    cut = tmp_path / "cut.nkrec"
    cut.write_bytes(Path(CRASH_REC).read_bytes()[:-20])  # the seal is cut: every chunk is there, unproven
    assert main(["bisect", str(cut), "--handlers", str(folder)]) == 3
    captured = capsys.readouterr()
    assert "unsealed" in captured.err and "FIRST BAD" not in captured.out
    assert main(["bisect", str(cut), "--handlers", str(folder), "--allow-incomplete"]) == 0
    assert "FIRST BAD: arena_v2.py" in capsys.readouterr().out


def _scripted(verdicts: dict[int, str]):  # type: ignore[no-untyped-def]
    """A test that answers from a table (default: good below the first bad index), recording what it was asked."""
    asked: list[int] = []

    def test(v: Version) -> tuple[str, str]:
        i = int(v.ref)
        asked.append(i)
        return verdicts[i], f"v{i}"

    return test, asked


def test_check_ends_decisions() -> None:
    versions = [Version(f"v{i}", str(i)) for i in range(6)]
    test, asked = _scripted({5: BAD, 0: BAD})
    r = bisect(versions, test, check_ends=True)
    assert (r.first_bad_index, r.first_bad.name, r.message, asked) == (
        0,
        "v0",
        "the first version v0 is already bad",
        [5, 0],
    )
    test, _ = _scripted({5: BAD, 0: "abort"})
    r = bisect(versions, test, check_ends=True)
    assert r.aborted is True and r.first_bad is None and r.message == "aborted at v0"
    test, _ = _scripted({5: "abort"})
    r = bisect(versions, test, check_ends=True)
    assert r.aborted is True and r.message == "the last version v5 is abort, not bad: nothing to bisect"
    test, _ = _scripted({5: GOOD})
    r = bisect(versions, test, check_ends=True)
    assert r.aborted is False and r.first_bad is None


def test_skips_are_never_retested_and_the_ends_never_tested_unasked() -> None:
    versions = [Version(f"v{i}", str(i)) for i in range(8)]
    table = {1: GOOD, 2: GOOD, 3: SKIP, 4: SKIP, 5: BAD, 6: BAD}
    test, asked = _scripted(table)
    r = bisect(versions, test)
    assert 0 not in asked and 7 not in asked and len(asked) == len(set(asked))  # no version twice
    assert asked == [3, 2, 4, 5]  # after a skip, the nearest untested version to the middle, the lower one on a tie
    assert r.first_bad is None and [c.name for c in r.candidates] == ["v3", "v4", "v5"]
    assert r.message == "only skipped versions are left to test: the first bad version could be any of v3, v4, v5"
    test, asked = _scripted({1: GOOD, 2: SKIP, 3: BAD, 4: BAD, 5: BAD, 6: BAD})
    r = bisect(versions, test)
    assert asked[0] == 3 and r.first_bad is None and [c.name for c in r.candidates] == ["v2", "v3"]
    test, asked = _scripted({i: (BAD if i >= 4 else GOOD) for i in range(8)})
    r = bisect(versions, test)
    assert asked == [3, 5, 4] and r.first_bad_index == 4 and r.message == "v4 is the first bad version"
