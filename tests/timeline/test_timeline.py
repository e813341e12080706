"""replay.timeline: the model streamed from a recording, per-tick details and their budget, the text and
HTML renderers, `view`, `inspect --timeline` and `inspect --tick` (the browser test is in
test_timeline_browser.py)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from recorder import (
    Broadcast,
    CrashMarker,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    write_recording,
)
from recorder.format._summary import summarize
from replay.cli import main
from replay.timeline import build_timeline
from replay.timeline._details import payload, payload_text
from replay.timeline._html import render_html
from replay.timeline._text import format_timeline
from tests.common.paths import ROOT

CRASH = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
HANDLERS = ROOT / "fixtures" / "handlers"

ALICE = Presence("u-alice", "s-alice-1", "alice", "n1")
BOB = Presence("u-bob", "s-bob-1", "bob", "n1")
BOB2 = Presence("u-bob", "s-bob-2", "bob", "n1")


def _match(path: Path, ticks: int = 40, crash_at: int | None = None) -> Path:
    """A small match: alice and bob join; bob disconnects at 10 and reconnects at 15; a signal at 20 with a
    label update; alice sends JSON (op 1) every tick and a binary (op 2) every 5th; a clock value per loop."""
    events: list = [InitCall({"m": 1}, Outcome(tick_rate=10, label="open"))]
    for p in (ALICE, BOB):
        events += [JoinAttemptCall(0, p, {"client_version": "2.0"}, Outcome(accept=True)), JoinCall(0, (p,))]
    for t in range(ticks):
        if t == 10:
            events.append(LeaveCall(t, (BOB.with_reason(4),)))
        if t == 15:
            events += [JoinAttemptCall(t, BOB2, {}, Outcome(accept=True)), JoinCall(t, (BOB2,))]
        if t == 20:
            events.append(SignalCall(t, "pause", Outcome(reply="ok", label_updates=("closed",))))
        msgs = [MatchMessage(ALICE, 1, json.dumps({"t": t}).encode())]
        if t % 5 == 0:
            msgs.append(MatchMessage(ALICE, 2, bytes([0, 255, t % 256])))
        events.append(
            LoopCall(
                t, tuple(msgs), Outcome(broadcasts=(Broadcast(9, b"s%d" % t),)), (Nondeterministic("time", 1000 + t),)
            )
        )
        if crash_at == t:
            events.append(CrashMarker("match_loop", t, "ValueError: boom", "Traceback ...\nValueError: boom"))
            break
    write_recording(path, Header(match_id="m1", module="test", tick_rate=10), events)
    return path


# ---------------------------------------------------------------- the model


def test_bundled_crash_lanes_reconnects_and_crash() -> None:
    tl = build_timeline(CRASH)
    assert (tl.first_tick, tl.last_tick) == (0, 58)
    lanes = {lane.username: lane for lane in tl.lanes}
    assert list(lanes) == ["alice", "bob", "cho"]
    bob = lanes["bob"].sessions
    assert [(s.join_tick, s.leave_tick, s.reconnect, s.overlaps) for s in bob] == [
        (0, None, False, False),
        (58, None, True, True),
    ]
    cho = lanes["cho"].sessions
    assert [(s.join_tick, s.leave_tick, s.leave_reason, s.reconnect, s.overlaps) for s in cho] == [
        (0, 23, 4, False, False),
        (29, None, None, True, False),
    ]
    assert tl.crash is not None and tl.crash["tick"] == 58 and tl.crash["callback"] == "match_loop"
    assert "KeyError" in tl.crash["error"] and "arena.py" in tl.crash["traceback"]
    assert [m.kind for m in tl.markers if m.tick == 58] == ["crash"]
    # the densities count what inspect counts
    s = summarize(CRASH)
    for o in s.op_codes:
        assert int(tl.densities[f"op {o.op_code}"].sum()) == o.count
    assert tl.loops == s.ticks


def test_small_match_sessions_markers_and_series(tmp_path: Path) -> None:
    tl = build_timeline(_match(tmp_path / "m.nkrec"))
    bob = tl.lane_of("u-bob")
    assert bob is not None and [
        (s.session_id, s.join_tick, s.leave_tick, s.leave_reason, s.reconnect) for s in bob.sessions
    ] == [("s-bob-1", 0, 10, 4, False), ("s-bob-2", 15, None, None, True)]
    assert [(m.tick, m.kind) for m in tl.markers] == [(20, "signal"), (20, "label")]
    assert tl.densities["op 1"].tolist() == [1] * 40
    assert tl.densities["op 2"].tolist() == [1 if t % 5 == 0 else 0 for t in range(40)]
    assert int(tl.densities["nondeterministic"].sum()) == 40 and int(tl.densities["broadcasts"].sum()) == 40


def test_long_matches_are_bucketed_without_losing_counts(tmp_path: Path) -> None:
    tl = build_timeline(_match(tmp_path / "m.nkrec", ticks=100), max_samples=10)
    assert tl.bucket > 1
    assert len(tl.densities["op 1"]) == -(-100 // tl.bucket)
    assert int(tl.densities["op 1"].sum()) == 100 and int(tl.densities["op 2"].sum()) == 20


def test_a_tick_range_starts_with_the_presences_already_there(tmp_path: Path) -> None:
    tl = build_timeline(_match(tmp_path / "m.nkrec"), from_tick=12, to_tick=30)
    assert (tl.first_tick, tl.last_tick) == (12, 30)
    alice = tl.lane_of("u-alice")
    assert alice is not None and alice.sessions[0].present_at_start
    bob = tl.lane_of("u-bob")  # bob's first session left before the range: only the reconnect is shown
    assert bob is not None and [s.session_id for s in bob.sessions] == ["s-bob-2"]
    assert tl.densities["op 1"].tolist() == [1] * 19


# ---------------------------------------------------------------- details and their budget


def test_details_of_the_crash_tick_hold_every_call_with_payloads() -> None:
    tl = build_timeline(CRASH)
    calls = tl.details[58]
    assert [c["callback"] for c in calls] == ["match_join_attempt", "match_join", "match_loop"]
    loop = calls[2]
    assert [m["from"] for m in loop["messages"]] == ["alice", "bob", "cho"]
    assert json.loads(payload_text(loop["messages"][1]["data"]))["dx"] == -1


def test_payload_text_pretty_json_text_and_hex() -> None:
    assert payload_text(payload(b'{"a":[1,2]}')) == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert payload_text(payload(b"\x00\xffab")) == "hex 00 ff 61 62"
    assert payload_text(payload(b"hello")) == '"hello"'
    assert payload_text(payload(b"a\x01b")) == "hex 61 01 62"
    assert payload_text(payload(b"")) == '""' and payload_text(None) == "nil"
    big = payload(b"x" * 70000)
    assert big is not None and big["cut"] and big["size"] == 70000
    assert "(70000 bytes, first 65536 shown)" in payload_text(big)


def test_detail_budget_keeps_the_ticks_before_the_crash_first(tmp_path: Path) -> None:
    rec = _match(tmp_path / "m.nkrec", ticks=400, crash_at=399)
    full = build_timeline(rec, detail_budget=1 << 40)
    assert len(full.details) == full.detail_ticks_total == 400
    small = build_timeline(rec, detail_budget=20_000)
    kept = sorted(small.details)
    assert 0 < len(kept) < 400
    # the minute before the crash comes before the neighbourhoods of joins, leaves and the signal
    assert kept == list(range(400 - len(kept), 400))
    assert small.details[399] == full.details[399]
    assert json.dumps(small.to_json()["details"]).__len__() < 2 * 20_000  # the estimate is near the truth
    assert build_timeline(rec, detail_budget=0).details == {}


# ---------------------------------------------------------------- renderers


def test_text_timeline_strips_and_events() -> None:
    text = format_timeline(build_timeline(CRASH), width=100)
    lines = text.splitlines()
    bob = next(line for line in lines if line.startswith("bob "))
    cho = next(line for line in lines if line.startswith("cho "))
    assert bob.rstrip().endswith("R")  # the reconnect at the last tick
    assert "x" in cho and cho.index("R") > cho.index("x")
    assert (
        "tick 58  bob reconnected (session bd5d6b19); the earlier session had not left (two sessions at once)" in text
    )
    assert "tick 58  CRASH in match_loop: KeyError: 'be143068-e8b3-5322-b98d-44347b7899e5'" in text
    assert "tick 23  cho left (session 28ba9575, reason 4: disconnect)" in text


def test_html_is_self_contained_and_script_safe(tmp_path: Path) -> None:
    rec = _match(tmp_path / "m.nkrec")
    hostile = "</script><script>alert(1)</script>\u2028"
    header = Header(match_id=hostile, module="x", tick_rate=10)
    write_recording(
        tmp_path / "h.nkrec",
        header,
        [InitCall({}, Outcome(label=hostile)), LoopCall(0, (), Outcome(label_updates=(hostile,)))],
    )
    for path in (rec, tmp_path / "h.nkrec"):
        page = render_html(build_timeline(path))
        assert page.count("<script") == 2 and page.count("</script>") == 2  # the data and the code, nothing injected
        assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)  # loads nothing
        data = page.split('<script type="application/json" id="timeline-data">')[1].split("</script>")[0]
        parsed = json.loads(data)
        assert parsed["first_tick"] == 0
    assert json.loads(data)["recording"]["match_id"] == hostile


# ---------------------------------------------------------------- commands


def test_view_without_out_writes_to_the_documented_folder_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = tmp_path / "crash.nkrec"
    shutil.copy(CRASH, rec)
    monkeypatch.chdir(tmp_path)  # the recording is in the current folder: the page still is not
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["view", "crash.nkrec", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    page = tmp_path / "data" / "nakama-replay" / "view" / "crash.html"
    assert out["output"] == str(page) and page.is_file()
    assert f"no -o/--out given: writing {page}" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crash.nkrec", "data"]  # nothing in the current folder
    assert out["crash"]["tick"] == 58 and out["lanes"] == ["alice", "bob", "cho"]


def test_view_refuses_bad_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(CRASH), "-o", str(tmp_path / "missing" / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["view", str(CRASH), "-o", str(tmp_path / "x.nkrec")]) == 2
    assert "FILE.html" in capsys.readouterr().err
    assert main(["view", str(CRASH), "--handler", str(HANDLERS / "arena.py"), "-o", str(tmp_path / "x.html")]) == 2
    assert "--against" in capsys.readouterr().err


def test_view_against_marks_the_first_divergence_with_its_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d.html"
    assert (
        main(
            [
                "view",
                str(CRASH),
                "--handler",
                str(HANDLERS / "arena.py"),
                "--against",
                str(HANDLERS / "arena_fixed.py"),
                "--in-process",
                "-o",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)["divergence"]
    assert d["diverged"] and d["tick"] == 58 and d["callback"] == "match_join"
    assert any(p["path"].startswith('sessions["be143068') for p in d["paths"])
    page = out.read_text()
    assert '"mode":"against"' in page and "first divergence: match_join at tick 58" in page


def test_view_diff_with_a_second_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _match(tmp_path / "a.nkrec")
    b = tmp_path / "b.nkrec"
    shutil.copy(a, b)
    assert main(["view", str(a), "--diff-with", str(b), "-o", str(tmp_path / "same.html"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)["divergence"]
    assert same["diverged"] is False
    # b's signal reply differs at tick 20
    from recorder import read_events

    header, events = read_events(a)
    changed = [
        SignalCall(e.tick, e.data, Outcome(reply="NO", label_updates=("closed",))) if isinstance(e, SignalCall) else e
        for e in events
    ]
    write_recording(b, header, changed)
    assert main(["view", str(a), "--diff-with", str(b), "-o", str(tmp_path / "d.html"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["divergence"]
    assert d["diverged"] and d["tick"] == 20 and d["callback"] == "match_signal"
    assert d["outcomes"] == [{"field": "reply", "a": "ok", "b": "NO"}]


def test_inspect_tick_shows_every_call_decoded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(CRASH), "--tick", "58"]) == 0
    text = capsys.readouterr().out
    assert (
        "in the match: alice (session 8a05716c), bob (session be143068), bob (session bd5d6b19), cho (session 332ca3df)"
        in text
    )
    assert text.index("match_join_attempt") < text.index("match_join\n") < text.index("match_loop")
    assert '"dx": -1' in text and "CRASH in match_loop at tick 58" in text and "arena.py" in text
    assert main(["inspect", str(CRASH), "--tick", "58", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["callback"] for c in data["calls"]] == ["match_join_attempt", "match_join", "match_loop"]
    assert base64.b64decode(data["calls"][2]["messages"][0]["data"]["b64"]).startswith(b"{")


def test_inspect_tick_binary_payload_and_range_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = _match(tmp_path / "m.nkrec")
    assert main(["inspect", str(rec), "--tick", "5"]) == 0
    text = capsys.readouterr().out
    assert "hex 00 ff 05" in text and "consumed time: 1005" in text
    assert main(["inspect", str(rec), "--tick", "40"]) == 2
    assert "outside the recording's ticks (0..39)" in capsys.readouterr().err
    assert main(["inspect", str(rec), "--timeline", "--from-tick", "9", "--to-tick", "3"]) == 2
    assert "after --to-tick" in capsys.readouterr().err
    assert main(["inspect", str(rec), "--from-tick", "3"]) == 2
    assert "goes with --timeline" in capsys.readouterr().err
    assert main(["inspect", str(rec), "--tick", "3", "--timeline"]) == 2


def test_inspect_timeline_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = _match(tmp_path / "m.nkrec")
    assert main(["inspect", str(rec), "--timeline", "--from-tick", "8", "--to-tick", "22", "--width", "15"]) == 0
    text = capsys.readouterr().out
    assert "ticks 8..22, 1 column = 1 tick" in text
    assert "tick 10  bob left (session s-bob-1, reason 4: disconnect)" in text
    assert "tick 15  bob reconnected (session s-bob-2)" in text
    assert "tick 20  signal pause -> ok" in text


def test_view_inspect_and_slice_read_a_recording_at_a_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fsspec = pytest.importorskip("fsspec", reason="fsspec (recorder.storage's URL layer) is not installed")
    fsspec.filesystem("memory").pipe("/timeline-test/crash.nkrec", CRASH.read_bytes())
    url = "memory://timeline-test/crash.nkrec"
    page = tmp_path / "u.html"
    assert main(["view", url, "-o", str(page), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["crash"]["tick"] == 58 and page.is_file()
    assert main(["inspect", url, "--tick", "58"]) == 0
    assert "CRASH in match_loop at tick 58" in capsys.readouterr().out
    out = tmp_path / "s.nkrec"
    assert main(["slice", url, "--from-tick", "51", "--to-tick", "58", "-o", str(out)]) == 0
    assert main(["inspect", str(out), "--strict"]) == 0
