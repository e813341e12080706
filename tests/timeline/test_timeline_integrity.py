"""Verdicts are promises, also in the timeline: an unsealed or damaged recording is drawn only as far as it is
intact and says so (exit 3 unless --allow-incomplete; --strict refuses it), a comparison over it draws no
verdict, and a slice of it is refused or, with --allow-incomplete, written unsealed so that it is incomplete
too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recorder import RecordingWriter, open_recording, read_events, verify
from recorder.format._nkrec import FRAME_SIZE
from replay.cli import main
from tests.common.paths import ROOT

CRASH = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
ARENA = ROOT / "fixtures" / "handlers" / "arena.py"


def _unsealed(path: Path, last_tick: int = 40) -> Path:
    """The bundled crash as its writer left it when it died after tick ``last_tick``: intact, no seal."""
    header, events = read_events(CRASH)
    w = RecordingWriter(path, header, chunk_events=1)
    w.extend(e for e in events if e.tick <= last_tick)
    w.abandon()
    assert verify(path).state == "unsealed"
    return path


def _damaged(path: Path, tick: int = 20) -> Path:
    """The bundled crash with one byte flipped in the payload of the chunk that starts at ``tick``."""
    shutil.copy(CRASH, path)
    with open_recording(path) as rec:
        chunk = next(i for i in rec.tick_index() if i.tick == tick)
    data = bytearray(path.read_bytes())
    data[chunk.offset + FRAME_SIZE + chunk.length // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify(path).state == "damaged"
    return path


@pytest.fixture(params=["unsealed", "damaged"])
def incomplete(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    make = _unsealed if request.param == "unsealed" else _damaged
    return make(tmp_path / f"{request.param}.nkrec")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_view_draws_the_intact_part_under_a_banner_and_exits_3(
    incomplete: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.html"
    code, out, err = _run(capsys, "view", str(incomplete), "-o", str(page), "--json")
    state = verify(incomplete)
    assert code == 3, err
    data = json.loads(out)
    assert data["complete"] is False and data["integrity"]["state"] == state.state
    assert data["last_tick"] < 58 and data["crash"] is None  # the crash lies in the part that was not read
    text = page.read_text(encoding="utf-8")
    assert 'id="integrity-warning"' in text and state.describe() in text
    assert "INCOMPLETE" in err
    code, _, _ = _run(capsys, "view", str(incomplete), "-o", str(page), "--allow-incomplete")
    assert code == 0
    page.unlink()
    code, _, err = _run(capsys, "view", str(incomplete), "-o", str(page), "--strict")
    assert code == 3 and "IncompleteRecording" in err and not page.exists()


def test_a_complete_recording_has_no_banner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    code, out, _ = _run(capsys, "view", str(CRASH), "-o", str(page), "--json", "--strict")
    assert code == 0 and json.loads(out)["complete"] is True
    assert 'id="integrity-warning"' not in page.read_text(encoding="utf-8")


def test_inspect_timeline_and_tick_of_an_incomplete_recording(
    incomplete: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "inspect", str(incomplete), "--timeline")
    assert code == 3 and "INCOMPLETE recording, the timeline shows its intact part" in out
    code, out, _ = _run(capsys, "inspect", str(incomplete), "--tick", "12")
    assert code == 3 and "INCOMPLETE recording: tick 12" in out
    code, out, _ = _run(capsys, "inspect", str(incomplete), "--tick", "12", "--json", "--allow-incomplete")
    assert code == 0 and json.loads(out)["integrity"]["complete"] is False
    code, _, err = _run(capsys, "inspect", str(incomplete), "--tick", "50")  # past the intact part
    assert code == 2 and "its intact part" in err, err


def test_a_comparison_over_an_incomplete_recording_draws_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _unsealed(tmp_path / "cut.nkrec")
    page = tmp_path / "d.html"
    # the same match, one copy cut short: its end is the cut, not a divergence, and no verdict either
    code, out, _ = _run(capsys, "view", str(CRASH), "--diff-with", str(cut), "-o", str(page), "--json")
    found = json.loads(out)["divergence"]
    assert code == 3 and found["status"] == "incomplete" and not found["diverged"], found
    assert found["integrity_b"]["state"] == "unsealed" and "recording b" in found["integrity_note"]
    assert 'data-status="incomplete"' in page.read_text(encoding="utf-8")
    code, out, _ = _run(
        capsys, "view", str(CRASH), "--diff-with", str(cut), "-o", str(page), "--json", "--allow-incomplete"
    )
    found = json.loads(out)["divergence"]
    assert code == 0 and found["status"] == "no-divergence" and "intact part ends" in found["note"], found
    # two complete copies of the match are equal: a verdict, and the cut copy is what made the difference
    code, out, _ = _run(capsys, "view", str(CRASH), "--diff-with", str(CRASH), "-o", str(page), "--json")
    assert code == 0 and json.loads(out)["divergence"]["status"] == "no-divergence"
    # a replay against the cut recording: no verdict either
    code, out, _ = _run(capsys, "view", str(cut), "--against", str(ARENA), "-o", str(page), "--json", "--in-process")
    assert code == 3 and json.loads(out)["divergence"]["status"] == "incomplete"


def test_a_slice_of_an_incomplete_recording_is_refused_or_unsealed(
    incomplete: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.nkrec"
    argv = ["slice", str(incomplete), "--from-tick", "10", "--to-tick", "15", "-o", str(out), "--handler", str(ARENA)]
    code, _, err = _run(capsys, *argv)
    assert code == 3 and "IncompleteRecording" in err and not out.exists()
    code, text, err = _run(capsys, *argv, "--allow-incomplete", "--json")
    assert code == 0, err
    s = json.loads(text)
    assert s["complete"] is False and s["source_integrity"]["state"] == verify(incomplete).state
    assert verify(out).state == "unsealed"  # incomplete too: no seal claims the slice whole
    header, events = read_events(out)
    assert header.tags["slice"]["source_integrity"] == verify(incomplete).state
    assert header.tags["slice"]["not_sliced"] == verify(incomplete).missing()
    assert {e.tick for e in events} == set(range(10, 16))
    code, _, _ = _run(capsys, "reproduce", str(out), "--handler", str(ARENA), "--in-process")
    assert code == 3  # no verdict from it
    code, _, _ = _run(capsys, "inspect", str(out), "--strict")
    assert code == 3


def test_a_slice_range_past_the_intact_part_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = _unsealed(tmp_path / "cut.nkrec")
    argv = ["slice", str(cut), "--from-tick", "45", "--to-tick", "50", "-o", str(tmp_path / "s.nkrec")]
    code, _, err = _run(capsys, *argv, "--allow-incomplete", "--handler", str(ARENA))
    assert code == 2 and "(0..40) (its intact part: it is unsealed)" in err, err
