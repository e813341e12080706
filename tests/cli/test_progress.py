"""Progress on long work (issue 19, item 4): one display on stderr for every long command, a plain line
every few seconds off a terminal, a bar on one, nothing with --no-progress, never a byte on stdout.

The interval between plain lines comes from NAKAMA_REPLAY_PROGRESS_INTERVAL: 0 here, so a line appears at
every update and the tests need no long recording (the replay commands also draw where a run ended).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.format._nkrec import last_tick_hint
from replay.cli import main
from replay.cli._progress import INTERVAL_ENV, Progress, replay_watch
from replay.runtime._hang import Beacon, forward_progress, install_beacon
from tests.common.paths import HANDLERS, RECORDINGS, ROOT

CRASH = str(RECORDINGS / "arena-reconnect-crash.nkrec")  # crashes at tick 58, its last
LUA_CRASH = str(RECORDINGS / "arena-lua-reconnect-crash.nkrec")
ARENA = str(HANDLERS / "arena.py")
BUGGY = (HANDLERS / "arena.py").read_text()


@pytest.fixture
def every_update(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")


def _lines(err: str, prefix: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(prefix)]


# -- the display itself ------------------------------------------------------------------------------------------


def test_plain_lines_say_done_of_total_rate_and_time_left(every_update: None) -> None:
    out = io.StringIO()
    with Progress("reproduce", 200, stream=out, tty=False) as p:
        p.set(50)
        p.set(120, status="side b")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("reproduce: 50/200 ticks [00:00<") and "tick/s" in lines[0]
    assert lines[1].startswith("reproduce: 120/200 ticks [") and lines[1].endswith(", side b]")
    assert (len(lines) == 3 and lines[2] == lines[1]) or lines[2].startswith("reproduce: 120/200 ticks")  # the last
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_plain_lines_wait_for_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "3600")
    out = io.StringIO()
    with Progress("import", None, unit="line", stream=out, tty=False) as p:
        for n in range(1000):
            p.set(n)
    assert out.getvalue() == ""  # a command quicker than the interval prints nothing, not even at its end


def test_disabled_prints_nothing(every_update: None) -> None:
    out = io.StringIO()
    with Progress("fuzz", 10, stream=out, tty=False, enabled=False) as p:
        p.set(5)
        p.note("found something")
    assert out.getvalue() == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place_and_erased(every_update: None) -> None:
    out = _Terminal()
    with Progress("reproduce", 100, stream=out) as p:
        p._bar.mininterval = p._bar.miniters = 0  # every update redrawn, without sleeping between them
        for n in range(0, 101, 10):
            p.set(n)
        p.note("a line that stays")
    text = out.getvalue()
    assert "\rreproduce: 100%|" in text and "100/100" in text and "tick/s]" in text
    assert "a line that stays\n" in text
    assert text.rstrip(" ").endswith("\r")  # leave=False: the bar's line is cleared at the end


def test_pass_labels_restarts_and_the_comparing_phase(every_update: None) -> None:
    out = io.StringIO()
    slots = memoryview(bytearray(Beacon.SLOTS * 8)).cast("q")
    p = Progress("diff: side a", 58, stream=out, tty=False)
    watch = replay_watch(p, ("diff: side a", "diff: side b"))
    slots[Beacon.TICK] = 30
    watch(slots)
    slots[Beacon.PASS], slots[Beacon.TICK] = 1, 12
    watch(slots)
    slots[Beacon.PASS] = 2  # past the last pass: the runs are compared
    watch(slots)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("diff: side a (1/2): 30/58 ticks [")
    assert lines[1].startswith("diff: side b (2/2): 12/58 ticks [")
    assert lines[2].startswith("diff: side b (2/2): 12/58 ticks [") and lines[2].endswith("comparing the runs]")


def test_a_nested_process_forwards_its_tick_as_a_pass_of_the_outer_one() -> None:
    outer = Beacon(memoryview(bytearray(Beacon.SLOTS * 8)).cast("q"))
    outer.enter("match_loop", 40)
    child = memoryview(bytearray(Beacon.SLOTS * 8)).cast("q")
    install_beacon(outer)
    try:
        forward = forward_progress(2)
    finally:
        install_beacon(None)
    assert forward is not None and Beacon.progress_of(outer.slots) == (2, 40)
    child[Beacon.TICK] = 7
    forward(child)
    assert Beacon.progress_of(outer.slots) == (2, 7)
    assert forward_progress(1) is None  # outside a supervised worker there is nothing to forward to


def test_the_total_comes_from_the_recordings_tail(tmp_path: Path) -> None:
    assert last_tick_hint(CRASH) == 58  # the seal's tick
    data = Path(CRASH).read_bytes()
    cut = tmp_path / "unsealed.nkrec"
    cut.write_bytes(data[:-60])  # the seal (and maybe part of the last chunk) gone, as after a kill
    hint = last_tick_hint(cut)
    assert hint is not None and 0 < hint <= 58
    junk = tmp_path / "junk.nkrec"
    junk.write_bytes(b"not a recording at all")
    assert last_tick_hint(junk) is None


# -- the commands --------------------------------------------------------------------------------------------


def test_reproduce_shows_ticks_on_stderr_only_and_not_with_no_progress(
    every_update: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for in_process in ([], ["--in-process"]):
        assert main(["reproduce", CRASH, "--handler", ARENA, "--json", *in_process]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["reproduced"] is True  # stdout: the JSON document alone
        lines = _lines(err, "reproduce: ")
        assert lines and lines[-1].startswith("reproduce: 58/58 ticks ["), (in_process, err)
        assert main(["reproduce", CRASH, "--handler", ARENA, "--json", "--no-progress", *in_process]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["reproduced"] is True and "ticks [" not in err


def test_diff_and_lua_check_show_their_passes(every_update: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", CRASH, "--handler", ARENA, "--against", ARENA, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "no-divergence"
    assert _lines(err, "diff: side b (2/2): 58/58 ticks"), err  # where it ended: side b, then the comparison
    code = main(["lua-check", LUA_CRASH, "--handler", str(HANDLERS / "arena.lua"), "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] in ("clean", "sensitive") and code in (0, 1)
    assert _lines(err, "lua-check"), err
    assert main(["diff", CRASH, "--handler", ARENA, "--recorded", "--json", "--no-progress"]) in (0, 1)
    assert "ticks [" not in capsys.readouterr().err


def test_bisect_shows_the_replay_within_each_step(
    every_update: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed = BUGGY.replace('del state["sessions"][session_id]', 'state["sessions"][session_id] = None')
    for name, text in (("v1", fixed), ("v2", fixed), ("v3", BUGGY)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "arena.py").write_text(text)
    assert main(["bisect", CRASH, "--handlers", str(tmp_path), "--handler-name", "arena.py"]) == 0
    out, err = capsys.readouterr()
    assert "FIRST BAD: v3" in out and "ticks [" not in out
    assert _lines(err, "bisect step 1: v2: 58/58 ticks ["), err


def test_fuzz_reports_its_minimizing_phase(
    every_update: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz = ["fuzz", "--handler", ARENA, "--max-examples", "60", "--max-findings", "1", "--in-process"]
    assert main([*fuzz, "-o", str(tmp_path / "a"), "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["findings"]
    assert _lines(err, "fuzz ") and "found " in err
    assert [line for line in _lines(err, "fuzz ") if "minimize: " in line and " candidates tried" in line], err


@pytest.mark.skipif(not hasattr(os, "openpty") or shutil.which("true") is None, reason="needs a POSIX pty")
def test_a_terminal_sees_a_live_bar(tmp_path: Path) -> None:
    import fcntl
    import struct
    import termios

    env = dict(os.environ, **{INTERVAL_ENV: "0"})  # the bar's delay shortens to it: no long recording needed
    command = [sys.executable, "-m", "replay.cli", "reproduce", CRASH, "--handler", ARENA, "--json"]
    seen = {}
    for extra in ([], ["--no-progress"]):
        main_fd, child_fd = os.openpty()
        fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        out = tmp_path / "stdout.json"
        with out.open("wb") as stdout:
            proc = subprocess.Popen(
                [*command, *extra], stdin=subprocess.DEVNULL, stdout=stdout, stderr=child_fd, cwd=ROOT, env=env
            )
        os.close(child_fd)
        chunks = []
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=300) == 0
        os.close(main_fd)
        seen[bool(extra)] = b"".join(chunks).decode("utf-8", "replace")
        assert json.loads(out.read_text())["reproduced"] is True  # stdout stays clean
    assert "reproduce: " in seen[False] and "%|" in seen[False] and "/58 [" in seen[False] and "\r" in seen[False]
    assert "%|" not in seen[True] and "reproduce: " not in seen[True]


def test_file_commands_show_bytes_read_on_stderr_only(
    every_update: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.common.paths import DATA

    jsonl, back = tmp_path / "crash.jsonl", tmp_path / "back.nkrec"
    assert main(["export", CRASH, "-o", str(jsonl), "--json"]) == 0
    out, err = capsys.readouterr()
    size = Path(CRASH).stat().st_size
    assert json.loads(out)["events"] > 0 and _lines(err, "export: ")[-1].startswith(f"export: {size / 1024:.1f}kB/")
    assert main(["import", str(jsonl), "-o", str(back), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["events"] > 0 and _lines(err, "import: ")[-1].startswith("import: ")
    assert "B/" in _lines(err, "import: ")[-1]
    wire, log = DATA / "nakama-3.40-proxy-arena-crash.nkrec", DATA / "nakama-3.40-proxy-arena-crash.log"
    convert = ["convert", str(wire), "--server-log", str(log), "--tick-rate", "10", "-o", str(tmp_path / "c.nkrec")]
    assert main([*convert, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) and _lines(err, "convert: "), err
    assert main(["inspect", CRASH, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["events"] > 0 and _lines(err, "inspect: ")[-1].startswith(f"inspect: {size / 1024:.1f}kB/")
    assert main(["view", CRASH, "-o", str(tmp_path / "v.html"), "--json"]) == 0
    assert _lines(capsys.readouterr().err, "view: reading: ")
    ingest = ["ingest", str(DATA / "nakama-3.40-lua-capture-arena.log"), "-o", str(tmp_path / "in"), "--json"]
    assert main(ingest) == 0
    assert _lines(capsys.readouterr().err, "ingest: ")
    assert main(["inspect", CRASH, "--no-progress"]) == 0
    assert main(["export", CRASH, "-o", str(tmp_path / "q.jsonl"), "--no-progress"]) == 0
    assert main(["import", str(jsonl), "-o", str(tmp_path / "q.nkrec"), "--no-progress"]) == 0
    assert main([*convert[:-1], str(tmp_path / "q2.nkrec"), "--no-progress"]) == 0
    assert main(["ingest", ingest[1], "-o", str(tmp_path / "in2"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert not [
        line
        for line in err.splitlines()
        if line.startswith(("export: ", "import: ", "convert: ", "ingest: ", "inspect: "))
    ]


def test_slice_shows_its_replay_up_to_the_first_tick(
    every_update: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for mode in ([], ["--in-process"]):
        out = tmp_path / f"s{len(mode)}.nkrec"
        argv = ["slice", CRASH, "--from-tick", "51", "--to-tick", "58", "--replay-state", "--handler", ARENA]
        argv += ["-o", str(out), "--json"]
        assert main([*argv, *mode]) == 0
        out_text, err = capsys.readouterr()
        assert json.loads(out_text)["from_tick"] == 51
        assert _lines(err, "slice: replaying up to the first tick: ")[-1].startswith(
            "slice: replaying up to the first tick: 50/51 ticks"
        ), err


def test_each_run_of_a_diff_says_its_pass() -> None:
    from recorder.format import open_recording
    from replay.diff._calls import _records
    from replay.runtime._hang import ProgressBeacon
    from replay.runtime._runtime import ReplayOptions, resolve_handler

    with open_recording(CRASH) as rec:
        handler = resolve_handler(ARENA, rec.header, CRASH, [])
    beacon = ProgressBeacon()
    install_beacon(beacon)
    try:
        for run in (0, 1):
            _records(CRASH, handler, ReplayOptions(), run)
            assert Beacon.progress_of(beacon.slots) == (run, 58)  # side a is pass 0, side b pass 1
    finally:
        install_beacon(None)
