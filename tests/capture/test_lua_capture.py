"""The Lua capture module and `ingest`: capture -> Nakama log lines -> ingest -> replay the unwrapped
handler, in CI without a Nakama; the same for logs a real Nakama 3.40 wrote; and ingest's handling of
interleaved matches, damaged lines, lost lines, Docker's log wrapper and Nakama's own crash line."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from recorder.capture import Ingest, crash_of, error_location, error_message, iter_log, write_match
from recorder.capture._nakama_log import format_log_line
from recorder.format import Header, LoopCall, read_events, verify
from replay.cli import main
from replay.lua import LuaHandler
from replay.runtime import MatchDriver, ReplayOptions, lua_error_class, reproduce
from tests.common.paths import DATA, ROOT

HANDLERS = ROOT / "fixtures" / "handlers"

SAMPLE = DATA / "nakama-3.40-lua-match-crash.log"  # copy of ../shared/samples (a real Nakama 3.40 log)

sys.path.insert(0, str(ROOT / "fixtures"))
import make_recordings  # noqa: E402


def nakama_log(driver: MatchDriver, started_ms: int = 1_764_000_000_000) -> list[str]:
    """The lines a Nakama server would print for this match: the handler's logger lines (with mid, as the
    match logger adds it) and, if the match crashed, Nakama's own crash line."""
    mid = driver.header.match_id.split(".", 1)[0]
    out = [
        format_log_line(level, msg, ts_ms=started_ms + i, mid=mid, runtime="lua")
        for i, (level, msg) in enumerate(driver.runtime.logger.lines)
    ]
    crash = driver.runtime.crash
    if crash is not None:
        out.append(
            format_log_line(
                "warn",
                f"Stopping match after error from {crash.callback} execution",
                ts_ms=started_ms + len(out),
                caller="server/match_handler.go:292",
                mid=mid,
                tick=crash.tick,
                error=f"{crash.error}\n{crash.traceback}",
            )
        )
    return out


def captured_arena(**play):  # type: ignore[no-untyped-def]
    with MatchDriver(LuaHandler(HANDLERS / "arena_captured.lua"), make_recordings.arena_header()) as d:
        make_recordings.play_arena(d, **play)
        return d, nakama_log(d)


def ingest(lines, source="log"):  # type: ignore[no-untyped-def]
    ing = Ingest()
    ing.feed(lines, source)
    return ing, ing.matches()


# -- the round trip in CI --------------------------------------------------------------------------------


def test_capture_ingest_replay_round_trip(tmp_path: Path) -> None:
    wrapped, lines = captured_arena()
    ing, [match] = ingest(lines)
    assert ing.stats.damaged == [] and match.problems == []
    assert (
        match.header.match_id == make_recordings.MATCH_ID
        and match.header.log_match_id == make_recordings.MATCH_ID.split(".")[0]
    )
    assert (match.header.module, match.header.tick_rate, match.header.source) == ("arena", 10, "lua-capture")
    path = write_match(match, tmp_path, handler=str(HANDLERS / "arena.lua"))
    assert verify(path).state == "complete"  # ingest seals what it writes
    result = reproduce(path, str(HANDLERS / "arena.lua"))  # the unwrapped arena.lua
    assert result.reproduced, result.verdict
    assert result.divergence_count == 0
    assert (result.crash.callback, result.crash.tick) == (wrapped.runtime.crash.callback, wrapped.runtime.crash.tick)
    assert result.crash.error == wrapped.runtime.crash.error  # the capture re-raises the same error value
    # outcomes were compared: broadcasts on every call, state digests every 10 ticks
    _, events = read_events(path)
    loops = [e for e in events if isinstance(e, LoopCall) and e.outcome is not None]  # the crashing loop has none
    assert sum(1 for e in loops if e.outcome.digest is not None) == 6
    assert sum(len(e.outcome.broadcasts) for e in loops) > 10  # positions every 5 ticks, chat, kills, phase
    # and the check can fail: the fixed handler does not reproduce, a tampered recording diverges
    assert not reproduce(path, str(HANDLERS / "arena_fixed.lua")).reproduced


def test_wrapped_handler_behaves_like_the_unwrapped_one() -> None:
    wrapped, _ = captured_arena(ticks=45, reconnect_race_at=40)
    with MatchDriver(LuaHandler(HANDLERS / "arena.lua"), make_recordings.arena_header()) as plain:
        make_recordings.play_arena(plain, ticks=45, reconnect_race_at=40)
    assert [s.outcome for s in wrapped.steps] == [s.outcome for s in plain.steps]
    assert [s.nondeterministic for s in wrapped.steps] == [s.nondeterministic for s in plain.steps]
    assert wrapped.runtime.crash.error == plain.runtime.crash.error


def test_nondeterministic_values_make_the_replay(tmp_path: Path) -> None:
    with MatchDriver(
        LuaHandler(HANDLERS / "clock_match.lua"),
        Header(match_id="c0ffee00-0000-4000-8000-000000000001.n1", node="n1", tick_rate=10),
    ) as d:
        d.init({"k": 1})
        alice = d.join("alice")
        d.tick(8)
        d.send(alice, 9, "stop")
        d.tick()
        lines = nakama_log(d)
    _ing, [match] = ingest(lines)
    assert any(line.count('"nkreplay:1 P ') for line in lines)  # clock_match splits records above 400 bytes
    path = write_match(match, tmp_path, handler=str(HANDLERS / "clock_match.lua"))
    result = reproduce(path, str(HANDLERS / "clock_match.lua"))
    assert result.reproduced and result.divergence_count == 0 and result.crash.tick == 8
    # without the recorded values the replay draws other times, uuids and numbers: the broadcasts differ
    stripped = [
        dataclasses.replace(e, nondeterministic=()) if hasattr(e, "nondeterministic") else e for e in match.events
    ]
    other = reproduce((match.header, stripped), str(HANDLERS / "clock_match.lua"))
    assert any(d.field == "broadcasts" for d in other.divergences)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# -- logs a real Nakama 3.40 wrote (tests/data) ----------------------------------------------------------


def test_real_nakama_arena_log_reproduces(tmp_path: Path) -> None:
    ing, [match] = ingest(open(DATA / "nakama-3.40-lua-capture-arena.log", encoding="utf-8"))
    assert ing.stats.damaged == [] and match.problems == []
    crash = match.crash
    assert (crash.callback, crash.tick) == ("match_loop", 29)
    assert crash.error.endswith(
        "arena.lua:54: attempt to index a non-table object(nil) with key 'pos'"
    )  # gopher-lua's words
    path = write_match(match, tmp_path, handler=str(HANDLERS / "arena.lua"))
    result = reproduce(path, str(HANDLERS / "arena.lua"))
    assert result.reproduced and result.divergence_count == 0
    # the signature view: same class and same line, though PUC Lua words it differently
    assert (
        lua_error_class(error_message(result.crash.error))
        == lua_error_class(error_message(crash.error))
        == "lua:index nil"
    )
    assert error_location(result.crash.error)[1] == error_location(crash.error)[1] == 54


def test_real_nakama_clock_log_serves_every_recorded_value(tmp_path: Path) -> None:
    ing, [match] = ingest(open(DATA / "nakama-3.40-lua-capture-clock.log", encoding="utf-8"))
    assert ing.stats.damaged == [] and match.problems == []
    sources = {v.source for e in match.events for v in getattr(e, "nondeterministic", ())}
    assert sources == {"time", "uuid", "random", "os_time", "os_date", "os_clock", "storage_read"}
    result = reproduce(write_match(match, tmp_path), str(HANDLERS / "clock_match.lua"))
    assert result.reproduced and result.divergence_count == 0 and result.crash.tick == 12


# -- ingest robustness -----------------------------------------------------------------------------------


def test_interleaved_matches_noise_damage_and_duplicates(tmp_path: Path) -> None:
    arena = open(DATA / "nakama-3.40-lua-capture-arena.log", encoding="utf-8").read().splitlines()
    clock = open(DATA / "nakama-3.40-lua-capture-clock.log", encoding="utf-8").read().splitlines()
    mixed = []
    for i in range(max(len(arena), len(clock))):
        mixed += arena[i : i + 1] + clock[i : i + 1]
    mixed.insert(5, "plain text from another process")
    mixed.insert(9, mixed[8])  # a line shipped twice
    damaged = next(line for line in arena if "nkreplay:1 {" in line)[:200]  # cut mid-record
    mixed.insert(12, damaged)
    ing, matches = ingest(mixed, "mixed.log")
    assert sorted(m.header.module for m in matches) == ["arena", "clock_match"]
    assert [(d.line, d.problem.split(" (")[0]) for d in ing.stats.damaged] == [(13, "not a JSON log line")]
    assert all(m.problems == [] for m in matches)
    for m in matches:
        assert reproduce(
            write_match(m, tmp_path), str(HANDLERS / ("arena.lua" if m.header.module == "arena" else "clock_match.lua"))
        ).reproduced


def test_lost_lines_are_reported_and_docker_wrapped_logs_read(tmp_path: Path) -> None:
    lines = open(DATA / "nakama-3.40-lua-capture-arena.log", encoding="utf-8").read().splitlines()
    ours = [i for i, line in enumerate(lines) if "nkreplay:1" in line]
    lost = lines[: ours[10]] + lines[ours[12] :]
    _, [match] = ingest(lost)
    assert match.problems == ["records 10..11 missing (lost log lines, or damaged ones reported above)"]
    # the recording says so, and no verdict of success is drawn from it: the crash is still reached, but the
    # calls of the lost records were never compared
    path = write_match(match, tmp_path, handler=str(HANDLERS / "arena.lua"))
    gapped = reproduce(path, str(HANDLERS / "arena.lua"))
    assert gapped.status == "incomplete" and not gapped.reproduced, gapped.verdict
    assert "records 10..11 missing" in gapped.verdict, gapped.verdict
    code, out, err = _cli("reproduce", str(path), "--handler", str(HANDLERS / "arena.lua"))
    assert code == 3 and "REPRODUCED" not in out.replace("NOT REPRODUCED", ""), (out, err)
    code, out, _ = _cli("inspect", str(path), "--strict")
    assert code != 0 and "gapped: the file is sealed and intact" in out + _, out
    # drawn from what is there anyway, the lost calls show: the state the replay built without them diverges
    allowed = reproduce(path, str(HANDLERS / "arena.lua"), ReplayOptions(allow_incomplete=True))
    assert allowed.status == "not-reproduced" and allowed.divergence_count > 0, allowed.verdict
    assert "not replayed: the calls the log it was made from lost (records 10..11" in allowed.verdict
    # Docker's json-file driver: one JSON object per line around each line, long lines split in 16 KiB parts
    wrapped = []
    for line in lines:
        text = line + "\n"
        parts = [text[i : i + 700] for i in range(0, len(text), 700)]
        wrapped += [json.dumps({"log": p, "stream": "stderr", "time": "2026-11-27T17:10:33Z"}) for p in parts]
    assert len(wrapped) > len(lines)
    ing, [match2] = ingest(wrapped)
    assert ing.stats.damaged == [] and match2.calls == 37 and match2.crash.tick == 29


def test_nakamas_crash_line_from_the_shared_sample() -> None:
    entries = [e for e in iter_log(open(SAMPLE, encoding="utf-8"), str(SAMPLE))]
    crashes = [c for c in (crash_of(e) for e in entries) if c is not None]
    assert len(crashes) == 1
    mid, marker = crashes[0]
    assert mid == "1762518a-825f-467c-a416-1a7ad0afe835"
    assert (marker.callback, marker.tick) == ("match_loop", 16)
    assert (
        marker.error
        == "/nakama/data/modules/match_echo.lua:39: deliberate crash: op_code 99 from 28da6aa3-653a-4714-a51e-b42999555c74 at tick 16"
    )
    assert (
        marker.traceback
        == "stack traceback:\n\t[G]: in function 'error'\n\t/nakama/data/modules/match_echo.lua:39: in main chunk\n\t[G]: ?"
    )
    assert error_location(marker.error) == ("/nakama/data/modules/match_echo.lua", 39) and lua_error_class(
        error_message(marker.error)
    ).startswith("lua:error deliberate crash")


def test_ingest_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recs"
    (out / "modules").mkdir(parents=True)  # the module inside the recordings' folder: reproduce finds it
    shutil.copy(HANDLERS / "arena.lua", out / "modules" / "arena.lua")
    code = main(
        [
            "ingest",
            str(DATA / "nakama-3.40-lua-capture-arena.log"),
            str(SAMPLE),
            "-o",
            str(out),
            "--handler",
            str(out / "modules" / "arena.lua"),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["crash"]["tick"] for r in report["recordings"]] == [29]
    assert report["crashes_without_records"] == ["1762518a-825f-467c-a416-1a7ad0afe835"]  # the unwrapped echo match
    assert main(["reproduce", report["recordings"][0]["path"]]) == 0
    capsys.readouterr()
    # a log without capture records is bad input, with a message that says what to check
    assert main(["ingest", str(SAMPLE), "-o", str(tmp_path / "none")]) == 2
    assert "no capture records" in capsys.readouterr().err


# -- options -----------------------------------------------------------------------------------------------


def _wrapped(tmp_path: Path, options: str) -> Path:
    path = tmp_path / "wrapped.lua"
    path.write_text(f'return require("nkreplay_capture").wrap(require("arena"), {options})\n')
    (tmp_path / "arena.lua").write_text((HANDLERS / "arena.lua").read_text())
    return path


def test_sampling_redaction_and_snapshot_failures(tmp_path: Path) -> None:
    def run(options: str) -> MatchDriver:
        with MatchDriver(LuaHandler(_wrapped(tmp_path, options)), make_recordings.arena_header()) as d:
            make_recordings.play_arena(d, ticks=12, reconnect_race_at=None)
            return d

    assert not any("nkreplay:1" in m for _, m in run("{ sample = 0 }").runtime.logger.lines)
    d = run('{ redact = { "client_version" }, redact_op_codes = { 2 } }')
    records = [json.loads(m.split(" ", 1)[1]) for _, m in d.runtime.logger.lines if m.startswith("nkreplay:1 {")]
    attempts = [r for r in records if r["k"] == "join_attempt"]
    assert attempts and all(
        r["md"]["client_version"] == "[redacted]" and r["vars"]["client_version"] == "[redacted]" for r in attempts
    )
    chats = [m for r in records if r["k"] == "loop" for m in r["ms"] if m[1] == 2]
    assert chats and all(m[2] is False for m in chats)
    _, [match] = ingest(nakama_log(d))
    assert match.header.redactions == ("key:client_version", "op:2")
    # a state that cannot be encoded loses its snapshot, not the record, and never breaks the handler
    nan = tmp_path / "nan.lua"
    nan.write_text(
        'local arena = require("arena")\nlocal loop = arena.match_loop\n'
        "arena.match_loop = function(...) local s = loop(...) s.bad = 0/0 return s end\n"
        'return require("nkreplay_capture").wrap(arena, { snapshot_every = 5 })\n'
    )
    with MatchDriver(LuaHandler(nan), make_recordings.arena_header()) as d2:
        make_recordings.play_arena(d2, ticks=12, reconnect_race_at=None)
        assert d2.runtime.crash is None
        loops = [json.loads(m.split(" ", 1)[1]) for _, m in d2.runtime.logger.lines if '"k":"loop"' in m]
    assert any("ss_error" in r["o"] for r in loops) and not any("ss" in r["o"] for r in loops)
