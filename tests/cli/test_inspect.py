"""`nakama-replay inspect` (and the docs' JSON Lines example, which imports and inspects)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from recorder import (
    Header,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Presence,
    RecordingWriter,
    open_recording,
    write_recording,
)
from recorder.format._nkrec import FRAME_SIZE
from replay.cli import main
from tests.common.paths import ROOT

EXAMPLE = ROOT / "fixtures" / "recordings" / "example.jsonl"
CRASH_FIXTURE = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"


def _docs_section(page: str, title: str) -> str:
    """A page of the docs site from its ``# title`` to its first ``## `` heading."""
    text = (ROOT / "docs" / page).read_text()
    start = text.index(f"# {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_docs_example_is_the_bundled_file_and_imports_and_inspects_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    section = _docs_section("reference/jsonl.md", "JSON Lines interchange")
    jsonl = re.search(r"```jsonl\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    assert jsonl == EXAMPLE.read_text()
    console = re.search(r"```console\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    (tmp_path / "fixtures" / "recordings").mkdir(parents=True)
    shutil.copy(EXAMPLE, tmp_path / "fixtures" / "recordings")
    monkeypatch.chdir(tmp_path)
    commands = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", console, re.M)
    assert [c.split()[:2] for c, _ in commands] == [["nakama-replay", "import"], ["nakama-replay", "inspect"]]
    for command, expected in commands:
        assert main(shlex.split(command)[1:]) == 0, command
        out = capsys.readouterr()
        assert out.out + out.err == expected, command


def test_inspect_json_of_the_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "example.nkrec"
    assert main(["import", str(EXAMPLE), "-o", str(rec)]) == 0
    capsys.readouterr()
    assert main(["inspect", "--json", str(rec)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["match_id"], s["module"], s["tick_rate"], s["ticks"], s["events"]) == (
        "4c2f7d0e-8a51-4b8e-9c3d-2e7f6a1b9d40.nakama1",
        "arena",
        10,
        4,
        11,
    )
    assert s["crash"] == {
        "callback": "match_loop",
        "tick": 4,
        "error": "arena.lua:88: attempt to index local 'holder' (a nil value)",
    }
    bob = next(p for p in s["presences"] if p["username"] == "bob")
    assert (bob["join_tick"], bob["leave_tick"], bob["leave_reason"], bob["client_version"]) == (0, 3, 4, "1.3.2")
    assert [(o["op_code"], o["count"], o["bytes"]) for o in s["op_codes"]] == [(1, 3, 26), (2, 1, 13)]
    assert s["duration_s"] == 0.4 and s["damage"] == []


def test_inspect_bundled_crash_recording(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(CRASH_FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"recording  {CRASH_FIXTURE} (") and "crash      match_" in out


def _small(path: Path) -> list:
    alice, bob = Presence("u1", "s1", "alice"), Presence("u2", "s2", "bob")
    events = [JoinCall(0, (alice.with_reason(1), bob.with_reason(1)))]
    events += [LoopCall(t, (MatchMessage(alice, 1, b"abc"), MatchMessage(bob, 7, None))) for t in range(12)]
    events.append(LeaveCall(12, (bob.with_reason(3),)))
    write_recording(path, Header(match_id="m", module="arena", tick_rate=5), events, chunk_events=4)
    return events


def test_inspect_text_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "r.nkrec"
    _small(rec)
    assert main(["inspect", str(rec)]) == 0
    out = capsys.readouterr().out
    assert "ticks      12 loops at 5 Hz, ticks 0..12, wall duration 2.400 s" in out
    assert "       1: 12 messages, 36 bytes\n       7: 12 messages, 0 bytes\n" in out
    assert re.search(r"bob +session s2 +joined 0 +left 12 \(leave\)", out)


def _frames(rec: Path) -> list:
    with open_recording(rec) as r:
        return r.tick_index()


def test_inspect_truncated_exits_3_strict_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "r.nkrec"
    _small(rec)
    last = _frames(rec)[-1]
    cut = tmp_path / "cut.nkrec"
    cut.write_bytes(rec.read_bytes()[: last.offset + FRAME_SIZE + 2])  # inside the last chunk
    assert main(["inspect", "--json", str(cut)]) == 3
    s = json.loads(capsys.readouterr().out)
    (damage,) = s["damage"]
    assert damage["kind"] == "truncated" and damage["events_recovered"] == s["events"] == 12
    assert s["integrity"]["state"] == "unsealed" and s["integrity"]["chunks"] == 3
    assert damage["offset"] == last.offset
    assert main(["inspect", str(cut)]) == 3
    out = capsys.readouterr().out
    assert (
        f"integrity  unsealed: the writer did not finish (no seal); chunks 1..3 (12 events, up to byte offset {last.offset})"
        in out
    )
    assert f"damage     truncated at byte offset {damage['offset']} (chunk 4)" in out
    assert main(["inspect", "--allow-incomplete", str(cut)]) == 0
    capsys.readouterr()
    assert main(["inspect", "--strict", str(cut)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("TruncatedRecording: ") and str(cut) in captured.err
    assert f"byte offset {damage['offset']}" in captured.err
    assert main(["inspect", "--strict", "--allow-incomplete", str(cut)]) == 2
    assert "contradict" in capsys.readouterr().err
    for command in ("inspect", "export"):  # one refuses damage, the other reads past it: a mistake, not a choice
        assert main([command, "--strict", "--salvage", str(cut)]) == 2
        err = capsys.readouterr().err
        assert "--strict and --salvage contradict each other" in err and len(err.strip().splitlines()) == 1


def test_inspect_a_killed_writer_fails_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer that never closed (SIGKILL) leaves every chunk intact but no seal: not complete."""
    rec = tmp_path / "r.nkrec"
    events = _small(tmp_path / "whole.nkrec")
    w = RecordingWriter(rec, Header(match_id="m", module="arena", tick_rate=5), chunk_events=4)
    w.extend(events)
    w.flush()  # every event is on disk, as a killed process leaves it; no close(), so no seal
    assert main(["inspect", "--strict", str(rec)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("IncompleteRecording: ") and "unsealed" in err
    assert main(["inspect", "--json", str(rec)]) == 3
    s = json.loads(capsys.readouterr().out)
    assert (s["integrity"]["state"], s["events"], s["damage"]) == ("unsealed", 14, [])
    w.close()
    assert main(["inspect", "--strict", str(rec)]) == 0
    assert "integrity  complete: sealed after 4 chunks, 14 events, last tick 12" in capsys.readouterr().out


def test_inspect_corrupt_exits_3_and_salvage_reads_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "r.nkrec"
    _small(rec)
    frames = _frames(rec)
    data = bytearray(rec.read_bytes())
    data[frames[1].offset + FRAME_SIZE + 3] ^= 0x01  # inside chunk 2's payload
    rec.write_bytes(bytes(data))
    assert main(["inspect", str(rec)]) == 3
    out = capsys.readouterr().out
    assert (
        f"integrity  damaged: corrupt at byte offset {frames[1].offset} (chunk 2): checksum mismatch; chunk 1 "
        f"(4 events, up to byte offset {frames[1].offset}) intact before it; 2 intact chunks after it "
        "(--salvage reads them)"
    ) in out
    assert "ticks      3 loops" in out  # the summary counts the intact chunk before the damage
    assert main(["inspect", "--salvage", "--json", str(rec)]) == 3
    s = json.loads(capsys.readouterr().out)
    assert s["events"] == 10 and [d["kind"] for d in s["damage"]] == ["corrupt"]
    assert s["integrity"]["state"] == "damaged" and s["integrity"]["chunks_after"] == 2


def test_inspect_bad_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "nope.nkrec")]) == 2
    assert "nope.nkrec: no such file" in capsys.readouterr().err
    (tmp_path / "x.nkrec").write_bytes(b"hello, world")
    assert main(["inspect", str(tmp_path / "x.nkrec")]) == 2
    err = capsys.readouterr().err
    assert "x.nkrec: not an .nkrec file (it starts with b'hello, w'" in err
    assert "salvage" not in err  # nothing before offset 0 is intact: no advice that cannot help
