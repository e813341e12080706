"""Recordings are untrusted input: a handler named by a recording's header runs only when it resolves
inside the recording's own folder tree, and reading a recording (inspect, export, import) never runs one.

The hostile handler below writes a marker file when it is imported; every test checks the marker is
absent, so a refusal that came after the import would fail."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from recorder.format import open_recording, write_recording
from replay.cli import main
from replay.errors import HandlerLoadError, UntrustedHandler
from replay.runtime import reproduce
from tests.common.paths import ROOT

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
ARENA = ROOT / "fixtures" / "handlers" / "arena.py"


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """``tmp/outside/evil.py`` (writes ``tmp/RAN`` when imported) and the recordings' folder ``tmp/recs``."""
    marker = tmp_path / "RAN"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n" + ARENA.read_text())
    (outside / "evil.lua").write_text(f"io.open({json.dumps(str(marker))}, 'w'):write('ran')\nreturn {{}}\n")
    recs = tmp_path / "recs"
    recs.mkdir()
    return outside / "evil.py", recs


def _recording(path: Path, handler: str) -> Path:
    with open_recording(CRASH_REC) as rec:
        header, events = rec.header, list(rec.events())
    write_recording(path, dataclasses.replace(header, handler=handler), events)
    return path


def _hostile_names(evil_py: Path, recs: Path) -> list[tuple[str, str]]:
    (recs / "link.py").symlink_to(evil_py)  # a symlink inside the folder that leads out
    (recs / "sub").mkdir()
    return [
        (str(evil_py), "absolute"),
        ("../outside/evil.py", "'..' climbs out"),
        ("sub/../../outside/evil.py", "'..' climbs out"),
        ("link.py", "a symlink leads out"),
        (f"{evil_py}:Arena", "absolute"),
        ("../outside/evil.lua", "'..' climbs out"),
        ("evil\x00.py", "not a usable file name"),
    ]


def test_hostile_header_handlers_are_refused_everywhere(
    evil: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    evil_py, recs = evil
    marker = evil_py.parent.parent / "RAN"
    for i, (name, why) in enumerate(_hostile_names(evil_py, recs)):
        rec = _recording(recs / f"r{i}.nkrec", name)
        with pytest.raises(UntrustedHandler, match=why) as err:
            reproduce(rec)
        assert err.value.path == str(rec) and err.value.handler == name
        expected = f"{rec} names handler {name!r} outside its folder; pass --handler to run it"
        for argv in (["reproduce", str(rec)], ["diff", str(rec), "--recorded"], ["lua-check", str(rec)]):
            assert main(argv) == 2, argv
            err_text = capsys.readouterr().err
            assert err_text.startswith(f"UntrustedHandler: {expected}") and "Traceback" not in err_text
        assert main(["reproduce", str(rec), "--json"]) == 2
        doc = json.loads(capsys.readouterr().out)
        assert (doc["type"], doc["exit"], doc["file"]) == ("UntrustedHandler", 2, str(rec))
        # reading it never runs it
        assert main(["inspect", str(rec)]) == 0
        assert main(["export", str(rec), "-o", str(recs / f"r{i}.jsonl")]) == 0
        assert main(["import", str(recs / f"r{i}.jsonl"), "-o", str(recs / f"again{i}.nkrec")]) == 0
        capsys.readouterr()
    # run-all refuses before it replays anything, naming the first and counting the rest
    assert main(["run-all", str(recs), "--no-progress", "-j", "1"]) == 2
    err_text = capsys.readouterr().err
    assert "outside its folder; pass --handler to run it" in err_text and "more recordings name handlers" in err_text
    assert not marker.exists(), "a handler named by a recording was imported"


def test_the_user_can_still_run_a_handler_of_their_choice(
    evil: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    evil_py, recs = evil
    rec = _recording(recs / "r.nkrec", str(evil_py))
    assert main(["reproduce", str(rec), "--handler", str(ARENA)]) == 0
    assert f"handler    {ARENA}" in capsys.readouterr().out
    assert main(["run-all", str(recs), "--handler", str(ARENA), "--no-progress", "-j", "1"]) == 0


def test_a_handler_inside_the_folder_tree_runs_and_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "recs" / "handlers").mkdir(parents=True)
    (tmp_path / "recs" / "handlers" / "arena.py").write_text(ARENA.read_text())
    (tmp_path / "recs" / "deep").mkdir()
    rec = _recording(tmp_path / "recs" / "deep" / "r.nkrec", "../handlers/arena.py")
    with pytest.raises(UntrustedHandler):  # the folder tree is the recording's own folder, recs/deep
        reproduce(rec)
    rec = _recording(tmp_path / "recs" / "r.nkrec", "handlers/../handlers/arena.py")
    result = reproduce(rec)
    assert result.reproduced and result.handler == str(tmp_path / "recs" / "handlers" / "arena.py")
    assert main(["reproduce", str(rec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["handler"] == str(tmp_path / "recs" / "handlers" / "arena.py")
    assert main(["run-all", str(rec), "--no-progress", "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert f"handler {tmp_path / 'recs' / 'handlers' / 'arena.py'} (1 recording)" in out


def test_a_missing_header_handler_says_where_the_path_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = _recording(tmp_path / "r.nkrec", "handlers/arena.py")
    with pytest.raises(HandlerLoadError, match="comes from the header of"):
        reproduce(rec)
    assert main(["reproduce", str(rec)]) == 2
    err = capsys.readouterr().err
    assert f"the path 'handlers/arena.py' comes from the header of {rec}; pass --handler FILE" in err


# -- the audit, as a test: where code can be loaded at all ------------------------------------------------

#: every place in recorder/ and replay/ that can turn text into running code, and why it is safe. A new
#: one fails this test until it is reviewed and listed: nothing read from a recording, a JSON Lines line
#: or a log line may reach one of them.
_LOADERS = {
    ("recorder/format/_model.py", "exec"): "record builders generated from dataclass field names (no input)",
    ("recorder/format/_schema.py", "compile"): "per-kind codecs generated from the field tables at import (no input)",
    ("recorder/format/_schema.py", "exec"): "the same generated codecs",
    ("replay/cli/_main.py", "import_module"): "command modules from the fixed COMMANDS table",
    ("replay/_exports.py", "import_module"): "a package's public names from the modules its own __init__ names",
    ("replay/regression/_batch.py", "import_module"): "run-all --executor MODULE:FACTORY, named by the user",
    ("replay/fuzz/_strategies.py", "import_module"): "fuzz --payloads MODULE, named by the user",
    (
        "replay/runtime/_handlers.py",
        "spec_from_file_location",
    ): "handler files: --handler, or recorded_handler's checked path",
    ("replay/runtime/_handlers.py", "exec_module"): "the same handler files",
    ("replay/live/_server.py", "spec_from_file_location"): "serve --rpc FILE.py, named by the user",
    ("replay/live/_server.py", "exec_module"): "the same --rpc files",
    ("replay/lua/_handler.py", "eval"): "lua.eval(b'loadstring'): a constant, to load the runtime's own Lua files",
    ("replay/triage/_store.py", "execute"): "SQL of the crash store: fixed statements, every value a bound parameter",
    (
        "replay/js/_handler.py",
        "eval",
    ): "QuickJS evaluates the runtime's own prelude.js and the bundle named by --handler or recorded_handler's checked path",
    (
        "replay/runtime/_supervisor.py",
        "import_module",
    ): "a supervised job's function and our error classes, named by our "
    "own code on the pipe between the two processes (never by a recording)",
}
_BANNED_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "yaml", "runpy", "code", "codeop"}
_CALLS = {
    "exec",
    "eval",
    "compile",
    "__import__",
    "import_module",
    "spec_from_file_location",
    "exec_module",
    "run_path",
    "run_module",
    "execute",
    "load_module",
}


def test_code_is_loaded_only_where_the_audit_allows() -> None:
    import ast

    found: set[tuple[str, str]] = set()
    for package in ("recorder", "replay"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    assert not {n.split(".")[0] for n in names} & _BANNED_MODULES, (
                        f"{rel}:{node.lineno} imports {names}"
                    )
                elif isinstance(node, ast.Call):
                    fn = node.func
                    name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                    if name in _CALLS and not (name == "compile" and isinstance(fn, ast.Attribute)):  # re.compile
                        found.add((rel, name))
    assert found == set(_LOADERS), f"review these code-loading calls: {sorted(found ^ set(_LOADERS))}"
