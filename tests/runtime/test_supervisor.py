"""The supervised handler process: every way a handler can hang or die is reported with its callback and
tick, through the library and the command line, and batch work, comparisons, bisect, fuzz and the pytest
plugin carry on past it. Bounded in time: hang limits of one second (the supervisor ends a callback
blocked in C ``GRACE`` seconds later), small recordings, one worker process reused where possible."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder import open_recording, write_recording
from recorder.errors import CorruptRecording, OptionError
from replay.cli import main
from replay.errors import HandlerDied, HandlerLoadError
from replay.regression import CATEGORIES, find_recordings, run_all
from replay.runtime import CrashSignature, Death, HandlerProcess, Limits, ReplayOptions, reproduce, reproduce_supervised
from replay.runtime._supervisor import GRACE, parse_size
from tests.common.paths import ROOT

RECS = ROOT / "fixtures" / "recordings"
HANDLERS = ROOT / "fixtures" / "handlers"
CLEAN = RECS / "arena-clean.nkrec"  # tick 3 has a match_loop; the recording runs to tick 59
CRASH = RECS / "arena-reconnect-crash.nkrec"
HANG = 1.0  # seconds: far above a clean callback on a loaded machine (milliseconds), so only the hostile one trips it
CAP = 600 << 20  # far above a replay's needs (about 200 MiB of address space), low enough to hit quickly

#: what each hostile handler does in match_loop at tick 3 (otherwise it is arena_fixed.py)
BODIES = {
    "sleep": "import time; time.sleep(3600)",
    "regex": "import re; re.match(r'(a+)+$', 'a' * 64 + 'b')",
    "sysexit": "import sys; sys.exit(3)",
    "osexit": "import os; os._exit(7)",
    "segfault": "import ctypes; ctypes.string_at(0)",
    "hog": "hoard = []\n        while True: hoard.append(bytes(64 << 20))",
    "interrupt": "raise KeyboardInterrupt",
    "loop": "while True: pass",
}
#: (outcome, error type) each one ends with under the supervisor
EXPECTED = {
    "sleep": ("hung", "Hang"),
    "regex": ("hung", "Hang"),
    "sysexit": ("exited", "HandlerExit"),
    "osexit": ("exited", "HandlerExit"),
    "segfault": ("killed", "FatalSignalError"),
    "hog": ("out-of-memory", "MemoryError"),
    "interrupt": ("crashed", "KeyboardInterrupt"),
    "loop": ("hung", "Hang"),
}


def hostile(folder: Path, kind: str, tick: int = 3) -> Path:
    """A copy of the fixed arena whose match_loop does ``BODIES[kind]`` at ``tick``."""
    for name in ("arena.py", "arena_fixed.py"):
        if not (folder / name).exists():
            shutil.copy(HANDLERS / name, folder / name)
    path = folder / f"h_{kind}.py"
    path.write_text(
        "from arena_fixed import *  # noqa\nfrom arena_fixed import match_loop as _loop\n\n\n"
        "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n"
        f"    if tick == {tick}:\n        {BODIES[kind]}\n"
        "    return _loop(ctx, logger, nk, dispatcher, tick, state, messages)\n"
    )
    return path


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    return {kind: hostile(folder, kind) for kind in BODIES}


@pytest.fixture(scope="module")
def worker() -> HandlerProcess:
    with HandlerProcess(Limits(HANG, CAP)) as w:
        yield w


def calls_up_to_tick_3() -> int:
    """Handler calls an in-process replay makes up to and including match_loop at tick 3."""
    with open_recording(CLEAN) as rec:
        calls = [e for e in rec.events() if hasattr(e, "callback") and e.tick <= 3]
    return len(calls)


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_ending_is_reported_with_callback_and_tick(kind: str, handlers, worker) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    r = reproduce_supervised(CLEAN, handlers[kind], ReplayOptions(hang_timeout=HANG), process=worker)
    took = time.monotonic() - started
    outcome, error_type = EXPECTED[kind]
    assert (r.outcome, r.crash.callback, r.crash.tick, r.crash.error_type) == (outcome, "match_loop", 3, error_type)
    assert r.calls_replayed == calls_up_to_tick_3() and r.ticks_replayed == 4
    assert not r.reproduced  # the recording runs to its end
    assert took < 60  # by wall clock, whatever the handler blocks in (HANG + GRACE, plus a busy machine)
    if kind in ("sleep", "regex"):  # blocked in C: the supervisor ended the process
        assert r.death is not None and r.death.kind == "hung" and r.death.ended
        assert took >= HANG + GRACE * 0.9
        assert [i["tick"] for i in r.last_inputs][-1] == 3  # the inputs come from the recording
    if kind in ("sleep", "regex", "segfault"):  # faulthandler said where the handler was
        assert f'{handlers[kind].name}", line 7, in match_loop' in r.crash.traceback, r.crash.traceback
    if kind == "loop":  # interrupted inside the process: the whole report, as in-process
        assert r.death is None and r.presences
    if kind in ("sysexit", "osexit"):
        assert r.death.status == {"sysexit": 3, "osexit": 7}[kind]
    if kind == "segfault":
        assert r.death.signal_name == "SIGSEGV"
        assert CrashSignature.from_result(r).key == "match_loop|FatalSignalError|h_segfault.py:match_loop"
    if kind == "hog":
        assert r.death.max_memory == CAP and "MemoryError" in r.crash.error
    if kind == "interrupt":  # the handler's own KeyboardInterrupt is its crash, not the user's Ctrl-C
        assert r.death is None and r.stop_reason == "error"


def test_a_recorded_death_reproduces_only_when_nothing_diverged_before_it(tmp_path: Path, handlers, worker) -> None:  # type: ignore[no-untyped-def]
    from recorder.format import CrashMarker

    with open_recording(CLEAN) as rec:
        header, events = rec.header, [e for e in rec.events() if e.tick <= 3]
    marker = CrashMarker("match_loop", 3, "FatalSignalError: the handler process was killed by SIGSEGV")
    recording = tmp_path / "died.nkrec"
    write_recording(recording, header, [*events, marker])
    same = reproduce_supervised(recording, handlers["segfault"], process=worker)
    assert (same.outcome, same.reproduced) == ("killed", True), same.verdict
    noisy = hostile(tmp_path, "segfault")  # the same death, after an outcome the recording does not have
    noisy.write_text(
        noisy.read_text().replace(
            "    if tick == 3:",
            "    if tick == 1:\n        dispatcher.broadcast_message(99, b'extra')\n    if tick == 3:",
        )
    )
    diverged = reproduce_supervised(recording, noisy, process=worker)
    assert diverged.outcome == "killed" and not diverged.reproduced and diverged.divergence_count == 1, diverged.verdict


def test_a_death_raises_handler_died_from_a_worker_that_then_starts_again(handlers, worker) -> None:  # type: ignore[no-untyped-def]
    worker.start()
    before = worker.starts
    with pytest.raises(HandlerDied) as info:
        worker.call("replay.runtime._supervisor:replay_job", str(CLEAN), str(handlers["osexit"]), ReplayOptions())
    assert (info.value.death.kind, info.value.death.callback, info.value.death.tick) == ("exited", "match_loop", 3)
    assert worker.call("os:getpid") != os.getpid() and worker.starts == before + 1


def test_errors_of_ours_cross_the_process_boundary_as_they_are(tmp_path: Path, worker) -> None:  # type: ignore[no-untyped-def]
    damaged = tmp_path / "damaged.nkrec"
    data = bytearray(CRASH.read_bytes())
    data[200] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CorruptRecording) as supervised:
        reproduce_supervised(damaged, None, process=worker)
    with pytest.raises(CorruptRecording) as here:
        reproduce(damaged)
    assert str(supervised.value) == str(here.value) and supervised.value.offset == here.value.offset
    with pytest.raises(HandlerLoadError):
        reproduce_supervised(CLEAN, tmp_path / "missing.py", process=worker)


def test_a_handler_that_hangs_while_loading_does_not_load(tmp_path: Path) -> None:
    """Loading gets its own, longer limit (a slow import on a busy machine is no hang), and a hang in it ends."""
    stuck = tmp_path / "stuck.py"
    stuck.write_text("import time\ntime.sleep(3600)\n")
    with (
        HandlerProcess(Limits(0.5, CAP, load_timeout=2.0)) as w,
        pytest.raises(HandlerLoadError, match=r"did not finish loading within 2\.0 s"),
    ):
        reproduce_supervised(CLEAN, stuck, process=w)
    slow = tmp_path / "slow.py"
    slow.write_text(f"import time\ntime.sleep(2.5)\nexec(open({str(HANDLERS / 'arena.py')!r}).read())\n")
    with HandlerProcess(Limits(0.5, CAP, load_timeout=60.0)) as w:
        assert reproduce_supervised(CLEAN, slow, process=w).reproduced  # 2.5 s to load, 0.5 s per callback
    assert Limits(None).loading_limit is None and Limits(90.0).loading_limit == 90.0
    with pytest.raises(ValueError, match="load_timeout"):
        Limits(1.0, load_timeout=0)


@pytest.mark.parametrize("recording", [CRASH, CLEAN], ids=["crash", "clean"])
def test_supervised_json_is_the_in_process_json(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for extra in ([], ["--in-process"]):
        code = main(["reproduce", str(recording), "--handler", str(HANDLERS / "arena.py"), "--json", *extra])
        outputs.append((code, capsys.readouterr().out))
    assert outputs[0] == outputs[1] and outputs[0][0] == 0
    assert json.loads(outputs[0][1])["process"] is None


def test_a_python_loop_hang_reports_the_same_in_and_out_of_process(handlers, capsys) -> None:  # type: ignore[no-untyped-def]
    outputs = []
    for extra in ([], ["--in-process"]):
        code = main(
            ["reproduce", str(CLEAN), "--handler", str(handlers["loop"]), "--hang-timeout", str(HANG), "--json", *extra]
        )
        outputs.append((code, capsys.readouterr().out))
    assert outputs[0] == outputs[1] and outputs[0][0] == 1
    assert json.loads(outputs[0][1])["outcome"] == "hung"


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_ending_through_the_command_line(kind: str, handlers, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = [
        "reproduce",
        str(CLEAN),
        "--handler",
        str(handlers[kind]),
        "--hang-timeout",
        str(HANG),
        "--max-memory",
        "600M",
    ]
    assert main([*argv, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    outcome, error_type = EXPECTED[kind]
    assert (out["outcome"], out["callback"], out["tick"], out["error_type"]) == (outcome, "match_loop", 3, error_type)
    assert (out["process"] is not None) == (kind not in ("interrupt", "loop"))
    if kind == "segfault":
        assert out["process"]["signal"] == "SIGSEGV"
    if kind == "sleep":
        assert main(argv) == 1
        text = capsys.readouterr().out
        assert "HUNG in match_loop at tick 3: match_loop did not return within 1.0 s" in text
        assert "presences at the end: not known" in text


@pytest.mark.parametrize(
    "option",
    [
        ["--hang-timeout", "0"],
        ["--hang-timeout", "-1"],
        ["--hang-timeout", "nan"],
        ["--max-memory", "0"],
        ["--max-memory", "lots"],
    ],
)
def test_limits_out_of_range_are_bad_input(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", str(CLEAN), *option]) == 2
    assert capsys.readouterr().err.startswith("OptionError: " + option[0])


def test_no_hang_guard_and_sizes() -> None:
    assert parse_size("512M") == 512 << 20 and parse_size("4G") == 4 << 30 and parse_size("1.5GiB") == 3 << 29
    assert parse_size("1000") == 1000
    for bad in ("0", "-1M", "x", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_size(bad)
    with pytest.raises(ValueError):
        Limits(hang_timeout=0)
    assert Limits(hang_timeout=None).hang_timeout is None  # what --no-hang-guard asks for
    d = Death("killed", "match_loop", 3, True, 11, 4, 11, signal=signal.SIGSEGV)
    assert d.describe() == "the handler process was killed by SIGSEGV" and d.where == "in match_loop at tick 3"
    assert d.crash().error == "FatalSignalError: the handler process was killed by SIGSEGV"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_an_interruption_and_ends_the_handler_process(tmp_path: Path) -> None:
    handler = hostile(tmp_path, "sleep")
    pid_file = tmp_path / "worker.pid"
    handler.write_text(
        handler.read_text().replace(
            "import time; time.sleep(3600)",
            f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(3600)",
        )
    )
    # stderr into a file, not a pipe: the answer is the CLI's exit, not the end of a pipe that any process forked
    # meanwhile (by another thread of this test process) could hold open
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        cli = subprocess.Popen(
            [sys.executable, "-m", "replay.cli", "reproduce", str(CLEAN), "--handler", str(handler), "--no-hang-guard"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # as from a terminal: a suite started in the background (`cmd &` without job control) ignores SIGINT,
            # and the ignore is inherited, so the CLI would never see this Ctrl-C
            preexec_fn=_default_sigint,
        )
        try:
            deadline = time.monotonic() + 60
            while not pid_file.exists() or not pid_file.read_text():
                assert time.monotonic() < deadline and cli.poll() is None
                time.sleep(0.05)
            worker_pid = int(pid_file.read_text())
            cli.send_signal(signal.SIGINT)
            cli.wait(timeout=60)
        finally:
            if cli.poll() is None:
                cli.kill()
        stderr.seek(0)
        err = stderr.read()
    assert cli.returncode == 130 and "interrupted" in err, (cli.returncode, err)
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)


def test_run_all_classifies_each_ending_and_carries_on(tmp_path: Path) -> None:
    with open_recording(CLEAN) as rec:
        header, events = rec.header, list(rec.events())
    for kind in BODIES:  # each recording names its handler, beside it
        path = hostile(tmp_path, kind)
        write_recording(tmp_path / f"{kind}.nkrec", dataclasses.replace(header, handler=path.name), events)
    for name in ("arena-clean.nkrec", "arena-reconnect-crash.nkrec"):
        with open_recording(RECS / name) as rec:
            h, ev = rec.header, list(rec.events())
        write_recording(tmp_path / name, dataclasses.replace(h, handler="arena.py"), ev)
    summary = run_all(
        find_recordings([tmp_path]), None, options={"hang_timeout": HANG}, jobs=2, limits=Limits(HANG, CAP)
    )
    got = {Path(r["path"]).stem: r["category"] for r in summary.results}
    want = {kind: {"crashed": "crashed"}.get(EXPECTED[kind][0], EXPECTED[kind][0]) for kind in BODIES}
    assert got == want | {"arena-clean": "clean", "arena-reconnect-crash": "reproduced"}
    assert set(summary.counts) == set(CATEGORIES)
    rows = {Path(r["path"]).stem: r for r in summary.results}
    assert rows["segfault"]["crash"]["tick"] == 3 and rows["segfault"]["process"]["signal"] == "SIGSEGV"


def test_run_all_cli_with_two_jobs_survives_exits(tmp_path: Path, handlers, capsys) -> None:  # type: ignore[no-untyped-def]
    for kind in ("osexit", "segfault"):
        shutil.copy(CLEAN, tmp_path / f"{kind}.nkrec")
    shutil.copy(CRASH, tmp_path / "crash.nkrec")
    code = main(
        [
            "run-all",
            str(tmp_path / "osexit.nkrec"),
            str(tmp_path / "segfault.nkrec"),
            "--handler",
            str(handlers["osexit"]),
            "-j",
            "2",
            "--json",
            "--no-progress",
            "--fail-on",
            "killed",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["counts"]["exited"] == 2 and out["counts"]["error"] == 0


def test_diff_never_says_no_divergence_over_part_of_the_recording(handlers, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(
        [
            "diff",
            str(CLEAN),
            "--handler",
            str(handlers["loop"]),
            "--determinism",
            "--no-hash-seed-pass",
            "--hang-timeout",
            str(HANG),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and not out["diverged"]
    assert out["ended_early"]["side"] == "both" and out["ended_early"]["outcome"] == "hung"
    assert (out["ended_early"]["callback"], out["ended_early"]["tick"]) == ("match_loop", 3)
    assert out["ended_early"]["calls_left"] > 0
    code = main(
        [
            "diff",
            str(CLEAN),
            "--handler",
            str(HANDLERS / "arena_fixed.py"),
            "--against",
            str(handlers["segfault"]),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["ended_early"]["side"] == "b" and out["ended_early"]["outcome"] == "killed"
    assert out["ended_early"]["tick"] == 3


def test_diff_against_itself_stops_where_both_runs_crash(handlers, capsys) -> None:  # type: ignore[no-untyped-def]
    crashing = str(handlers["interrupt"])
    assert main(["diff", str(CLEAN), "--handler", crashing, "--against", crashing, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["diverged"] and out["ended_early"]["side"] == "both"
    assert (out["ended_early"]["outcome"], out["ended_early"]["tick"]) == ("crashed", 3)
    assert out["ended_early"]["error"].startswith("KeyboardInterrupt")


def test_diff_determinism_hash_seed_runs_are_supervised_too(handlers, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["diff", str(CLEAN), "--handler", str(handlers["sysexit"]), "--determinism", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["ended_early"]["outcome"] == "exited" and out["ended_early"]["tick"] == 3


def test_lua_check_reports_a_run_that_stops_early(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    looping = tmp_path / "arena.lua"
    looping.write_text(
        (HANDLERS / "arena.lua")
        .read_text()
        .replace(
            "  function M.match_loop(context, dispatcher, tick, state, messages)\n",
            "  function M.match_loop(context, dispatcher, tick, state, messages)\n    if tick == 5 then while true do end end\n",
        )
    )
    assert "while true do end" in looping.read_text()
    code = main(
        [
            "lua-check",
            str(RECS / "arena-lua-reconnect-crash.nkrec"),
            "--handler",
            str(looping),
            "--hang-timeout",
            str(HANG),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and not out["sensitive"]
    assert out["ended_early"] == {
        "run": "both",
        "outcome": "hung",
        "callback": "match_loop",
        "tick": 5,
        "error": "match_loop did not return within 1.0 s",
        "calls_left": out["ended_early"]["calls_left"],
    }
    assert out["ended_early"]["calls_left"] > 0


def test_bisect_skips_versions_whose_handler_dies_before_the_crash(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for i, kind in enumerate(["fixed", "segfault", "sleep", "buggy"], 1):
        folder = tmp_path / f"v{i}"
        folder.mkdir()
        if kind == "buggy":
            shutil.copy(HANDLERS / "arena.py", folder / "arena.py")
            (folder / "match.py").write_text("from arena import *  # noqa\n")
        elif kind == "fixed":
            for name in ("arena.py", "arena_fixed.py"):
                shutil.copy(HANDLERS / name, folder / name)
            (folder / "match.py").write_text("from arena_fixed import *  # noqa\n")
        else:
            hostile(folder, kind, tick=10).rename(folder / "match.py")
    code = main(
        [
            "bisect",
            str(CRASH),
            "--handlers",
            str(tmp_path),
            "--handler-name",
            "match.py",
            "--check-ends",
            "--hang-timeout",
            str(HANG),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    verdicts = {s["version"]: s["verdict"] for s in out["steps"]}
    assert verdicts == {"v1": "good", "v2": "skip", "v3": "skip", "v4": "bad"}
    assert code == 1 and out["first_bad"] is None and [c["name"] for c in out["candidates"]] == ["v2", "v3", "v4"]


def test_fuzz_survives_a_handler_that_exits(tmp_path: Path) -> None:
    from replay.fuzz import FuzzOptions, FuzzProfile, fuzz

    handler = tmp_path / "quits.py"
    handler.write_text(
        "import os\n"
        "def match_init(ctx, logger, nk, params): return {}, 10, ''\n"
        "def match_join_attempt(ctx, logger, nk, d, tick, state, presence, metadata): return state, True, ''\n"
        "def match_join(ctx, logger, nk, d, tick, state, presences): return state\n"
        "def match_leave(ctx, logger, nk, d, tick, state, presences): return state\n"
        "def match_loop(ctx, logger, nk, d, tick, state, messages): return state\n"
        "def match_terminate(ctx, logger, nk, d, tick, state, grace): return state\n"
        "def match_signal(ctx, logger, nk, d, tick, state, data):\n"
        "    if data == 'quit':\n        os._exit(5)\n"
        "    return state, ''\n"
    )
    profile = FuzzProfile(payloads={1: None}, signals=("", "quit"), source="quits")
    report = fuzz(
        str(handler),
        FuzzOptions(max_examples=80, seed=1, out=tmp_path / "out", profile=profile, database=False, shrink=False),
    )
    [finding] = report.findings
    assert finding.key == "match_signal|HandlerExit|?"
    assert [type(a).__name__ for a in finding.actions] == ["Signal"]
    assert main(["reproduce", str(finding.recording), "--handler", str(handler)]) == 0  # the exit again


def test_option_error_type_is_shared() -> None:
    from replay.cli._args import byte_size

    assert byte_size("2G") == 2 << 30
    with pytest.raises(Exception) as info:
        byte_size("0")
    assert "size above 0" in str(info.value)
    assert issubclass(OptionError, ValueError)


def test_a_fault_dump_keeps_only_the_handlers_frames() -> None:
    """faulthandler's dump of a dead worker: the thread running the handler is found, and the frames of
    nakama-replay's own packages (every subpackage of replay, and recorder) are left out of its traceback."""
    import recorder.format._nkrec
    import replay.lua._handler
    import replay.runtime._runtime
    from replay.runtime._supervisor import handler_traceback

    ours = [m.__file__ for m in (replay.runtime._runtime, replay.lua._handler, recorder.format._nkrec)]
    handler = str(HANDLERS / "arena.py")
    dump = (
        "Thread 0x00007f0000000001 (most recent call first):\n"
        '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n'
        "\n"
        "Current thread 0x00007f0000000002 (most recent call first):\n"
        f'  File "{handler}", line 120 in match_loop\n'
        + "".join(f'  File "{f}", line 10 in ours\n' for f in ours)
        + '  File "<string>", line 1 in <module>\n'
    )
    trace = handler_traceback(dump)
    assert 'arena.py", line 120, in match_loop' in trace
    assert not any(os.path.basename(f) in trace for f in ours), trace


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt
def test_a_ctrl_c_swallowed_by_a_finaliser_still_ends_the_wait(tmp_path: Path) -> None:
    """SIGINT landing inside ``__del__`` becomes an "ignored" KeyboardInterrupt; the wait must stop anyway."""
    from replay.runtime._interrupt import catching_interrupts

    class SignalsWhileFinalised:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the finaliser, and is swallowed

    def too_late(signum: int, frame: object) -> None:
        raise TimeoutError("the wait ignored the interrupt")  # without the latch: a sleep(3600), no hang guard

    handler = hostile(tmp_path, "sleep")
    previous = signal.signal(signal.SIGALRM, too_late)
    signal.alarm(60)
    try:
        with catching_interrupts():
            SignalsWhileFinalised()  # collected at once: the interrupt is raised and dropped inside __del__
            with pytest.raises(KeyboardInterrupt):
                reproduce_supervised(CLEAN, handler, ReplayOptions(hang_timeout=None))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
