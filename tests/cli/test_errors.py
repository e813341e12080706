"""Every user mistake is exit 2 and one line naming the culprit, never a traceback; with --json also a
JSON object on stdout. Run in-process through ``replay.cli.main`` (a few real subprocesses at the end
prove that nothing else reaches stderr)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder import CorruptRecording, open_recording
from replay.cli import main
from tests.common.paths import ROOT

REC = str(ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec")
JSONL = str(ROOT / "fixtures" / "recordings" / "example.jsonl")
ARENA = str(ROOT / "fixtures" / "handlers" / "arena.py")


def _busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def _copy(src: str, folder: Path) -> str:
    """A scratch copy named ``in`` + the suffix (a test that writes over its input must not hit a fixture)."""
    copy = folder / ("in" + Path(src).suffix)
    copy.write_bytes(Path(src).read_bytes())
    return str(copy)


def _cyclic(src: str, folder: Path, after: str, line: str) -> str:
    """A copy of the arena handler ``src`` whose loop first stores the state inside itself (no JSON form)."""
    text = Path(src).read_text()
    assert after in text
    copy = folder / ("cyclic" + Path(src).suffix)
    copy.write_text(text.replace(after, after + "\n" + line, 1))
    return str(copy)


ARENA_LUA = str(ROOT / "fixtures" / "handlers" / "arena.lua")
ARENA_TS = str(ROOT / "fixtures" / "handlers" / "ts" / "arena" / "build" / "index.js")
TS_REC = str(ROOT / "fixtures" / "recordings" / "arena-ts-reconnect-crash.nkrec")


#: (id, argv builder given a scratch folder, text the one-line message must contain)
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # outputs: a folder where a file goes, a missing parent, a file where a folder goes
    ("import -o folder", lambda t: ["import", JSONL, "-o", str(t)], "is a folder; give the name of the file"),
    (
        "import -o no parent",
        lambda t: ["import", JSONL, "-o", str(t / "no" / "x.nkrec")],
        "does not exist (create it first",
    ),
    ("export -o folder", lambda t: ["export", REC, "-o", str(t)], "is a folder; give the name of the file"),
    (
        "export -o the input",
        lambda t: ["export", _copy(REC, t), "-o", str(t / "in.nkrec")],
        "is also the input file; write to another",
    ),
    ("import -o the input", lambda t: ["import", _copy(JSONL, t), "-o", str(t / "in.jsonl")], "is also the input file"),
    ("export -o no parent", lambda t: ["export", REC, "-o", str(t / "no" / "x.jsonl")], "does not exist"),
    ("ingest -o file", lambda t: ["ingest", JSONL, "-o", JSONL], "is a file, not a folder"),
    ("ingest -o no parent", lambda t: ["ingest", JSONL, "-o", str(t / "no" / "out")], "does not exist"),
    (
        "serve --out file",
        lambda t: ["serve", "--handler", ARENA, "--listen", "127.0.0.1:0", "--out", JSONL],
        "is a file, not a folder",
    ),
    (
        "proxy --out no parent",
        lambda t: ["proxy", "--listen", "127.0.0.1:0", "--out", str(t / "no" / "w")],
        "does not exist",
    ),
    ("fuzz --out file", lambda t: ["fuzz", "--handler", ARENA, "--out", JSONL], "is a file, not a folder"),
    ("fuzz --out no parent", lambda t: ["fuzz", "--handler", ARENA, "--out", str(t / "no" / "f")], "does not exist"),
    # addresses
    (
        "live --nakama notaport",
        lambda t: ["live", REC, "--nakama", "http://127.0.0.1:notaport", "--out", str(t)],
        "--nakama: 'http://127.0.0.1:notaport': the port 'notaport' is not a number",
    ),
    (
        "proxy --upstream notaport",
        lambda t: ["proxy", "--upstream", "http://127.0.0.1:notaport", "--out", str(t)],
        "--upstream: 'http://127.0.0.1:notaport'",
    ),
    (
        "proxy --upstream notaurl",
        lambda t: ["proxy", "--upstream", "notaurl", "--out", str(t)],
        "--upstream: 'notaurl': not a URL",
    ),
    (
        "serve --listen 99999",
        lambda t: ["serve", "--handler", ARENA, "--listen", "127.0.0.1:99999"],
        "the port 99999 is out of range",
    ),
    (
        "proxy --listen :-1",
        lambda t: ["proxy", "--listen", ":-1", "--out", str(t)],
        "--listen: ':-1': the port -1 is out of range",
    ),
    # ranges
    (
        "reproduce --last-ticks -3",
        lambda t: ["reproduce", REC, "--last-ticks", "-3"],
        "--last-ticks: '-3': must be at least 0",
    ),
    ("reproduce --until-tick -1", lambda t: ["reproduce", REC, "--until-tick", "-1"], "--until-tick: '-1'"),
    ("diff --until-tick -1", lambda t: ["diff", REC, "--recorded", "--until-tick", "-1"], "--until-tick: '-1'"),
    ("run-all --until-tick -1", lambda t: ["run-all", REC, "--until-tick", "-1"], "--until-tick: '-1'"),
    (
        "import --chunk-events 0",
        lambda t: ["import", JSONL, "-o", str(t / "o.nkrec"), "--chunk-events", "0"],
        "--chunk-events: '0': must be at least 1",
    ),
    (
        "import --chunk-events -1",
        lambda t: ["import", JSONL, "-o", str(t / "o.nkrec"), "--chunk-events", "-1"],
        "--chunk-events: '-1'",
    ),
    ("live --tick-rate -10", lambda t: ["live", REC, "--tick-rate", "-10"], "--tick-rate: '-10': must be at least 1"),
    ("reproduce --hang-timeout 0", lambda t: ["reproduce", REC, "--hang-timeout", "0"], "--hang-timeout: '0'"),
    ("run-all -j 0", lambda t: ["run-all", REC, "-j", "0"], "-j/--jobs: '0': must be at least 1"),
    ("playback --gate-timeout -1", lambda t: ["playback", REC, "--gate-timeout", "-1"], "--gate-timeout: '-1'"),
    # inputs: a folder given as a file, a file given as a folder, a missing file
    ("inspect folder", lambda t: ["inspect", str(t)], "is a folder, not a recording"),
    ("reproduce folder", lambda t: ["reproduce", str(t)], "is a folder, not a recording"),
    ("export folder", lambda t: ["export", str(t)], "is a folder, not a recording"),
    ("import folder", lambda t: ["import", str(t), "-o", str(t / "o.nkrec")], "is a folder, not a JSON Lines file"),
    ("ingest folder", lambda t: ["ingest", str(t), "-o", str(t / "out")], "is a folder, not a log"),
    (
        "live --server-log folder",
        lambda t: ["live", REC, "--server-log", str(t), "--out", str(t)],
        "is a folder, not a server log",
    ),
    ("inspect missing", lambda t: ["inspect", str(t / "nope.nkrec")], "nope.nkrec: no such file"),
    ("run-all missing", lambda t: ["run-all", str(t / "nope")], "nope"),
    (
        "reproduce --handler folder",
        lambda t: ["reproduce", REC, "--handler", str(t)],
        "is a folder; a handler is a .py file",
    ),
    ("run-all --handler folder", lambda t: ["run-all", REC, "--handler", str(t)], "is a folder, not a handler file"),
    ("run-all --handler missing", lambda t: ["run-all", REC, "--handler", str(t / "nope.py")], "nope.py: no such file"),
    (
        "reproduce --module-path file",
        lambda t: ["reproduce", REC, "--handler", ARENA, "--module-path", JSONL],
        "is a file, not a --module-path folder",
    ),
    (
        "diff --module-path missing",
        lambda t: ["diff", REC, "--recorded", "--module-path", str(t / "nope")],
        "no such --module-path folder",
    ),
    (
        "serve --rpc folder",
        lambda t: ["serve", "--handler", ARENA, "--rpc", str(t), "--out", str(t)],
        "is a folder, not a Python or JavaScript RPC file",
    ),
    ("bisect --handlers file", lambda t: ["bisect", REC, "--handlers", JSONL], "not a folder of handler versions"),
    # a state with no canonical form where the recording has digests to compare: no verdict, the reason
    (
        "reproduce: a Python state inside itself",
        lambda t: ["reproduce", REC, "--handler", _cyclic(ARENA, t, "state, messages):", '    state["me"] = [state]')],
        "state at me[0]: holds a container it is inside of (a cycle) (the state match_loop returned at tick 0)",
    ),
    (
        "reproduce: a Lua state inside itself",
        lambda t: ["reproduce", REC, "--handler", _cyclic(ARENA_LUA, t, "state, messages)", "state.me = {state}")],
        "error encoding to JSON: table nesting too deep (a cycle?) (the state match_loop returned at tick 0)",
    ),
    (
        "reproduce: a JavaScript state inside itself",
        lambda t: ["reproduce", TS_REC, "--handler", _cyclic(ARENA_TS, t, "state, messages) {", "state.me = [state];")],
        "JSON.stringify refuses it (TypeError: circular reference) (the state match_loop returned at tick 0)",
    ),
    # usage
    ("no such command", lambda t: ["frobnicate"], "invalid choice: 'frobnicate'"),
    ("missing argument", lambda t: ["reproduce"], "the following arguments are required: recording"),
]


@pytest.mark.parametrize(("argv", "culprit"), [pytest.param(a, c, id=i) for i, a, c in CASES])
def test_user_mistake_is_exit_2_and_one_line(
    argv: Callable[[Path], list[str]], culprit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv(tmp_path)) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert culprit in err


def test_unreadable_files_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Root reads every file, so as root the CLI runs without the capabilities that bypass file permissions
    (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): it stays uid 0, so it still reads the checkout and
    the virtual environment wherever they are, but not a file whose mode is 0."""
    folder = Path(tempfile.mkdtemp(prefix="nkreplay-locked-"))
    drop = "-dac_override,-dac_read_search"
    try:
        locked = folder / "locked.nkrec"
        locked.write_bytes(Path(REC).read_bytes())
        locked.chmod(0)
        for argv in (["inspect", str(locked)], ["reproduce", str(locked), "--handler", ARENA], ["export", str(locked)]):
            if os.geteuid() != 0:
                code, err = main(argv), capsys.readouterr().err
            elif shutil.which("setpriv"):
                run = subprocess.run(
                    [
                        "setpriv",
                        f"--bounding-set={drop}",
                        f"--inh-caps={drop}",
                        sys.executable,
                        "-m",
                        "replay.cli",
                        *argv,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    cwd=folder,
                )
                code, err = run.returncode, run.stderr
            else:
                pytest.skip("running as root without setpriv: no way to make a file unreadable")
            assert code == 2 and "locked.nkrec: the recording is not readable (permission denied)" in err, err
    finally:
        shutil.rmtree(folder)


def test_port_in_use_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held, port = _busy_port()
    with held:
        assert main(["proxy", "--listen", f"127.0.0.1:{port}", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"--listen: '127.0.0.1:{port}': cannot listen: the port is already in use" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_json_errors_are_an_object_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", REC, "--last-ticks", "-3", "--json"]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exit"] == 2 and doc["type"] == "OptionError" and doc["field"] == "--last-ticks"
    assert doc["error"] in err
    assert main(["inspect", "--json", str(tmp_path)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["type"] == "PathError" and doc["file"] == str(tmp_path)


def test_damaged_gzip_is_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "nakama.log.gz"
    cut.write_bytes(gzip.compress(b'{"level":"info","msg":"hello"}\n' * 200)[:40])
    code = main(["ingest", str(cut), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "nakama.log.gz" in err


def test_real_processes_print_no_traceback(tmp_path: Path) -> None:
    for argv in (
        ["reproduce", REC, "--last-ticks", "-3"],
        ["import", JSONL, "-o", str(tmp_path)],
        ["live", REC, "--nakama", "http://127.0.0.1:notaport"],
    ):
        run = subprocess.run([sys.executable, "-m", "replay.cli", *argv], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


# -- messages give advice only where it is true -------------------------------------------------------------


def _damaged(tmp_path: Path) -> dict[str, Path]:
    data = Path(REC).read_bytes()
    files = {
        "empty": b"",
        "cut4": data[:4],
        "cut30": data[:30],
        "random": bytes(range(7, 107)),
        "jsonl": Path(JSONL).read_bytes(),
        "log": b'{"level":"info","ts":"2025-01-01T00:00:00Z","msg":"Startup done"}\n',
    }
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.nkrec"
        out[name].write_bytes(content)
    return out


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("empty", "the file is empty (0 bytes)"),
        ("cut4", "the file ends after 4 bytes, inside the 8-byte .nkrec signature"),
        ("cut30", "corrupt header at byte offset 8: the header frame is missing, damaged or cut off"),
        ("random", "not an .nkrec file (it starts with b'\\x07\\x08"),
        (
            "jsonl",
            "this is JSON Lines, not an .nkrec recording; make a recording of it with `nakama-replay import FILE",
        ),
        ("log", "this is a JSON log, not an .nkrec recording; `nakama-replay ingest`"),
    ],
)
def test_unusable_files_say_what_they_are_without_false_advice(
    name: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _damaged(tmp_path)[name]
    for argv in (
        ["inspect", str(path)],
        ["inspect", "--salvage", str(path)],
        ["reproduce", str(path), "--handler", ARENA],
        ["export", str(path)],
    ):
        assert main(argv) == 2
        _out, err = capsys.readouterr()
        assert err.startswith(f"CorruptRecording: {path}: {says}"), err
        assert "salvage" not in err and "intact" not in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_chunk_keeps_the_salvage_advice_that_is_true(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(Path(REC).read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped = tmp_path / "flipped.nkrec"
    flipped.write_bytes(bytes(data))
    assert main(["inspect", "--json", str(flipped)]) == 3  # damaged: summarised up to the damage, no verdict
    before = json.loads(capsys.readouterr().out)
    assert before["integrity"]["state"] == "damaged" and before["integrity"]["chunks_after"] > 0
    assert "intact chunks after it (--salvage reads them)" in before["integrity"]["summary"]
    assert main(["inspect", "--salvage", "--json", str(flipped)]) == 3  # and the advice holds
    assert json.loads(capsys.readouterr().out)["events"] > before["events"]
    with open_recording(flipped) as rec, pytest.raises(CorruptRecording) as err:  # the library's own error
        list(rec.events())
    assert "Every chunk before this offset is intact; `nakama-replay inspect --salvage` reads past the damage" in str(
        err.value
    )


def test_json_errors_say_at_column_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    lines = Path(JSONL).read_text().splitlines()
    bad.write_text(lines[0] + "\n" + '{"kind": "init", "params": {"a": "x\ty"}}\n')
    assert main(["import", str(bad), "-o", str(tmp_path / "o.nkrec")]) == 2
    err = capsys.readouterr().err
    assert "Invalid control character at column" in err and "at at" not in err


def test_a_wire_recording_names_only_commands_that_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recorder.format import Header, WireEvent, write_recording
    from replay.cli import COMMANDS

    wire = tmp_path / "wire.nkrec"
    write_recording(wire, Header(match_id="m.nakama1", source="proxy"), [WireEvent("s1", "out", 0.0, "open")])
    assert main(["reproduce", str(wire), "--handler", ARENA]) == 2
    err = capsys.readouterr().err
    assert f"{wire}: a wire recording" in err and "`nakama-replay live REC --nakama URL`" in err
    assert ("nakama-replay convert" in err) == ("convert" in COMMANDS)
    # a tick rate is the option's fault when the option gave it, the recording's otherwise
    assert main(["live", str(wire), "--out", str(tmp_path / "w"), "--tick-rate", "100"]) == 2
    assert "OptionError: --tick-rate: '100': Nakama's tick rates are 1..60" in capsys.readouterr().err
    assert main(["live", str(wire), "--out", str(tmp_path / "w")]) == 2
    assert "does not know the match's tick rate; pass --tick-rate N (1..60)" in capsys.readouterr().err


def test_a_bug_is_exit_70_with_its_traceback_never_a_verdict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import replay.cli._commands.inspect as inspect_command

    def broken(args: object) -> int:
        raise TypeError("an internal mistake")

    monkeypatch.setattr(inspect_command, "run", broken)
    assert main(["inspect", REC, "--json"]) == 70
    out, err = capsys.readouterr()
    assert "Traceback" in err and "internal error: TypeError: an internal mistake (a bug in nakama-replay" in err
    assert json.loads(out) == {"error": "an internal mistake", "exit": 70, "type": "TypeError", "internal": True}


def test_the_old_name_of_live_still_works_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`nakama-replay replay` (into a server) was renamed `live`: the old name runs the same command, after a
    one-line notice on stderr; --help lists only the new name."""
    missing = str(tmp_path / "missing.nkrec")
    assert main(["replay", missing]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: `nakama-replay replay` is now `nakama-replay live`; the old name will be removed"
    assert err[1].startswith("PathError: ") and missing in err[1]
    assert main(["live", missing]) == 2
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert "\n    live " in listing and "\n    replay " not in listing
