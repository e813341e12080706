"""One vocabulary for every command: walks every subcommand's parser, so a new command cannot drift.

Outputs are `-o/--out`; commands that report take `--json`; the progress switch is `--no-progress`; commands
that load Lua take `--module-path`; `--help` shows defaults and ends with examples (which must parse) and the
exit codes (only the shared ones)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from replay.cli._main import COMMANDS, _load, build_parser, main
from replay.cli._reference import subcommands, visible_options
from tests.common.paths import DATA, HANDLERS, RECORDINGS


def _walk(prefix: str, parser: argparse.ArgumentParser, found: dict[str, argparse.ArgumentParser]) -> None:
    for name, sub in subcommands(parser).items():
        found[f"{prefix}{name}"] = sub
        _walk(f"{prefix}{name} ", sub, found)


PARSERS = subcommands(build_parser())
#: every command and every subcommand of a command (``triage ingest``)
ALL: dict[str, argparse.ArgumentParser] = {}
_walk("", build_parser(), ALL)
#: the parsers that run something (a command made of subcommands only dispatches)
LEAVES = {name: p for name, p in ALL.items() if not subcommands(p)}
#: the exit codes every command may use (TEAM-wide; new ones go into the docs' verdict table first)
SHARED_EXITS = {0, 1, 2, 3, 70, 130}
#: option names that mean "an output" in some other spelling: none of them may come back
OTHER_OUTPUT_SPELLINGS = {"--output", "--out-dir", "--output-dir", "--dest", "--write"}
#: the commands that load a Lua handler (and so need --module-path for its require)
LOADS_LUA = {"reproduce", "diff", "lua-check", "serve", "bisect", "run-all", "fuzz"}
#: the commands that have a progress display
HAS_PROGRESS = {
    *("run-all", "fuzz", "triage ingest", "reproduce", "diff", "lua-check", "bisect"),
    *("import", "export", "convert", "ingest", "view", "slice", "live", "inspect"),
}


def _options(command: str) -> dict[str, argparse.Action]:
    return {name: a for a in ALL[command]._actions for name in a.option_strings}


def test_every_registered_command_is_walked() -> None:
    assert set(PARSERS) == set(COMMANDS) and len(PARSERS) >= 15


@pytest.mark.parametrize("command", list(ALL))
def test_outputs_are_dash_o_dash_dash_out(command: str) -> None:
    options = _options(command)
    visible = {name for a in visible_options(ALL[command]) for name in a.option_strings}
    assert not (visible & OTHER_OUTPUT_SPELLINGS), command
    out = options.get("--out")
    if out is not None:
        assert out.option_strings == ["-o", "--out"] and out.dest == "out", command
    assert "-o" not in options or options["-o"] is out, command


@pytest.mark.parametrize("command", list(LEAVES))
def test_every_command_reports_in_json(command: str) -> None:
    assert "--json" in _options(command), f"{command} has no --json"


@pytest.mark.parametrize("command", sorted(LOADS_LUA))
def test_module_path_wherever_lua_is_loaded(command: str) -> None:
    action = _options(command).get("--module-path")
    assert action is not None, command
    assert isinstance(action, argparse._AppendAction) and action.metavar == "DIR"


@pytest.mark.parametrize("command", list(ALL))
def test_one_progress_switch(command: str) -> None:
    options = _options(command)
    visible = {name for a in visible_options(ALL[command]) for name in a.option_strings}
    assert "--quiet" not in visible and "--no-bar" not in visible, command
    if command in HAS_PROGRESS:
        assert "--no-progress" in visible, command
    if "--quiet" in options:  # an old spelling kept as a hidden alias of the same switch
        assert options["--quiet"].dest == options["--no-progress"].dest


@pytest.mark.parametrize("command", list(ALL))
def test_help_shows_defaults_examples_and_exit_codes(command: str) -> None:
    parser = ALL[command]
    text = parser.format_help()
    assert "Example:\n  nakama-replay " + command in text, command
    assert "\nExit codes:\n" in text, command
    for action in visible_options(parser):
        default = action.default
        if action.option_strings and default not in (None, False, [], argparse.SUPPRESS):
            helped = parser._get_formatter()._get_help_string(action)
            assert "default" in helped, f"{command} {action.option_strings}: default {default!r} not shown"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_examples_parse_and_exit_codes_are_the_shared_ones(command: str) -> None:
    module = _load(command)
    assert module.EXAMPLES and set(module.EXIT_CODES) <= SHARED_EXITS and 0 in module.EXIT_CODES, command
    parser = build_parser()
    for example in module.EXAMPLES:
        line = example.replace("\\\n", " ").split(" # ")[0].split("|")[-1].rstrip(" &")
        words = shlex.split(line, comments=True)
        assert words[0] == "nakama-replay", example
        args = parser.parse_args(words[1:])  # an example that stopped parsing fails here
        assert args.command in COMMANDS, example


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("nakama-replay ")


@pytest.mark.parametrize(("old", "new"), [("--output", "--out"), ("-o", "--out")])
def test_old_output_spelling_still_works(old: str, new: str) -> None:
    parser = build_parser()
    a = parser.parse_args(["export", "r.nkrec", old, "x.jsonl"])
    b = parser.parse_args(["export", "r.nkrec", new, "x.jsonl"])
    assert a.out == b.out == "x.jsonl"
    assert parser.parse_args(["fuzz", "--handler", "h.py", "--quiet"]).no_progress is True


# --- what the vocabulary does, run for real -------------------------------------------------------------------


LUA_CRASH = RECORDINGS / "arena-lua-reconnect-crash.nkrec"
WIRE = DATA / "nakama-3.40-proxy-arena-crash.nkrec"


@pytest.fixture
def split_lua(tmp_path: Path) -> tuple[Path, Path]:
    """``arena_fixed.lua`` alone in one folder; the ``arena`` module it requires in another (a --module-path)."""
    (tmp_path / "h").mkdir()
    (tmp_path / "lib").mkdir()
    shutil.copy(HANDLERS / "arena_fixed.lua", tmp_path / "h")
    shutil.copy(HANDLERS / "arena.lua", tmp_path / "lib")
    return tmp_path / "h" / "arena_fixed.lua", tmp_path / "lib"


def test_import_and_export_report_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl, rec = tmp_path / "m.jsonl", tmp_path / "m.nkrec"
    assert main(["export", str(LUA_CRASH), "-o", str(jsonl), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["out"] == str(jsonl) and exported["integrity"]["state"] == "complete"
    assert exported["events"] == len(jsonl.read_text().splitlines()) - 1 and exported["exit"] == 0
    assert main(["import", str(jsonl), "--out", str(rec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"input": str(jsonl), "out": str(rec), "events": exported["events"]}
    assert main(["export", str(LUA_CRASH), "--json"]) == 2  # stdout holds the JSON Lines without -o
    assert "needs -o/--out" in capsys.readouterr().err


def test_run_all_and_bisect_take_module_path(split_lua: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    handler, lib = split_lua
    base = ["run-all", str(LUA_CRASH), "--handler", str(handler), "-j", "1", "--no-progress", "--json"]
    assert main([*base, "--in-process"]) == 1  # `arena` is not beside the handler: it cannot load
    assert json.loads(capsys.readouterr().out)["counts"]["error"] == 1
    assert main([*base, "--module-path", str(lib)]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert counts["error"] == 0 and counts["diverged"] == 1  # the fix runs past the recorded crash

    versions = handler.parent.parent / "versions"
    versions.mkdir()
    shutil.copy(handler, versions / "v1.lua")
    (versions / "v2.lua").write_text('return require("arena")\n')
    bisect = ["bisect", str(LUA_CRASH), "--handlers", str(versions), "--check-ends", "--json"]
    assert main([*bisect, "--module-path", str(lib)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["first_bad"]["name"] == "v2.lua" and f"--module-path {lib}" in found["reproduce"]
    assert main(bisect) == 1  # neither version loads without it: nothing to find


def test_fuzz_takes_module_path_into_its_handler_process(split_lua: tuple[Path, Path], tmp_path: Path) -> None:
    handler, lib = split_lua
    base = [sys.executable, "-m", "replay.cli", "fuzz", "--handler", str(handler), "--max-examples", "3", "--json"]
    ok = subprocess.run(
        [*base, "-o", str(tmp_path / "f"), "--module-path", str(lib)], capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["examples"] == 3
    bad = subprocess.run([*base, "-o", str(tmp_path / "g")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "module 'arena' not found" in bad.stderr


def _run_until(command: list[str], ready: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Start a long-running command, wait (bounded) for ``ready`` on stderr, stop it with SIGINT as a user
    would, and return its exit status, stdout and stderr."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not seen.wait(0.2) and proc.poll() is None and time.monotonic() < deadline:
            pass
        assert seen.is_set(), f"{command[3]} never said {ready!r} (exit {proc.poll()}): {''.join(lines)}"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)  # stdout is small (one JSON document): it fits the pipe until read here
        out = proc.stdout.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(30)
    return proc.returncode, out, "".join(lines)


def test_serve_writes_into_the_documented_default_folder_and_reports_in_json(
    split_lua: tuple[Path, Path], tmp_path: Path
) -> None:
    handler, lib = split_lua
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    serve = [sys.executable, "-m", "replay.cli", "serve", "--handler", str(handler), "--listen", "127.0.0.1:0"]
    code, out, err = _run_until([*serve, "--module-path", str(lib), "--json"], "serving", cwd, env)
    assert code == 0, err
    summary = json.loads(out)  # stdout holds the JSON alone; the human lines went to stderr
    folder = tmp_path / "data" / "nakama-replay" / "serve"
    assert summary["out"] == str(folder) and folder.is_dir() and summary["recordings"] == []
    assert summary["listen"].startswith("http://127.0.0.1:") and summary["handler"] == str(handler)
    assert f"no -o/--out given: writing into {folder}" in err and "stopped; 0 match recordings" in err
    assert list(cwd.iterdir()) == []  # nothing in the current folder
    no_lib = subprocess.run(serve, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert no_lib.returncode == 2 and "module 'arena' not found" in no_lib.stderr


def test_proxy_and_playback_report_in_json(tmp_path: Path) -> None:
    env = dict(os.environ)
    proxy = [sys.executable, "-m", "replay.cli", "proxy", "--listen", "127.0.0.1:0", "-o", str(tmp_path / "w")]
    code, out, err = _run_until(
        [*proxy, "--upstream", "http://127.0.0.1:9", "--json"], "proxy listening", tmp_path, env
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["out"] == str(tmp_path / "w") and summary["sockets"] == 0 and summary["files"] == []
    assert "proxy stopped: 0 sockets" in err

    playback = [sys.executable, "-m", "replay.cli", "playback", str(WIRE), "--listen", "127.0.0.1:0", "--json"]
    code, out, err = _run_until(playback, "playback of", tmp_path, env)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["played"] == [] and len(summary["sockets"]) >= 2
    assert summary["integrity"]["state"] == "complete" and summary["listen"].startswith("http://127.0.0.1:")


def test_progress_off_a_terminal_is_plain_lines_and_no_progress_silences_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAKAMA_REPLAY_PROGRESS_INTERVAL", "0")  # a line per update instead of every 5 s
    fuzz = ["fuzz", "--handler", str(HANDLERS / "arena_fixed.py"), "--max-examples", "3", "--in-process"]
    assert main([*fuzz, "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("fuzz ")]
    assert lines and "/3 matches [" in lines[0] and ", 0 failures, search]" in lines[0]
    assert "\r" not in err and "\x1b[" not in err
    assert main([*fuzz, "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "matches, 0 failures" not in capsys.readouterr().err
