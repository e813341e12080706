"""Recording integrity: the one state a reader reports (complete, unsealed, damaged, legacy), resync after
damage, and that no damaged or unsealed recording ever yields a verdict of success.

The damage cases are the issue's observations: cuts (at any byte and exactly at frame boundaries), bit flips
(length fields included), dropped, duplicated and swapped chunks, a writer killed with SIGKILL; and version-1
files, which read as ``legacy``."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder import (
    CorruptRecording,
    Header,
    IncompleteRecording,
    LoopCall,
    MatchMessage,
    Presence,
    RecordingError,
    open_recording,
    verify,
    write_recording,
)
from recorder.format._integrity import Damage, Integrity, Ledger, source_gaps
from recorder.format._nkrec import FRAME_SIZE, MAGIC_V1, V1_FRAME_SIZE
from replay.cli import main
from replay.diff import diff_against, diff_recorded
from replay.regression import reproduce_one
from replay.runtime import ReplayOptions, reproduce
from tests.common.paths import ROOT

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
CLEAN_REC = ROOT / "fixtures" / "recordings" / "arena-clean.nkrec"
ARENA = ROOT / "fixtures" / "handlers" / "arena.py"
ARENA_FIXED = ROOT / "fixtures" / "handlers" / "arena_fixed.py"
V1_REC = ROOT / "tests" / "data" / "arena-reconnect-crash-v1.nkrec"  # written by the version-1 writer
ALICE = Presence("u1", "s1", "alice", "n1")
HEADER = Header(match_id="m1.n1", module="m", tick_rate=10, node="n1")


def loops(n: int) -> list[LoopCall]:
    return [LoopCall(t, (MatchMessage(ALICE, 1, b"%d" % t),)) for t in range(n)]


def frames_of(data: bytes) -> list[bytes]:
    """The frames after the magic, cut by their length fields (after damage, whatever those say)."""
    frames = []
    pos = len(MAGIC_V1)
    while pos + 6 <= len(data):
        length = struct.unpack_from("<I", data, pos + 2)[0]
        frames.append(data[pos : pos + FRAME_SIZE + length])
        pos += FRAME_SIZE + length
    if pos < len(data):
        frames.append(data[pos:])
    return frames


def split(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """A version-2 file as (magic + header frame, chunk frames, seal frame)."""
    head, *chunks, seal = frames_of(data)
    return data[: len(MAGIC_V1)] + head, chunks, seal


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("sealed") / "r.nkrec"
    write_recording(path, HEADER, loops(12), chunk_events=3)
    return path.read_bytes()


def state_of(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "x.nkrec"
    path.write_bytes(data)
    try:
        return verify(path).state
    except RecordingError:
        return "unreadable"


# -- the states ------------------------------------------------------------------------------------------------


def test_a_closed_writer_seals_and_the_reader_proves_it(tmp_path: Path, sealed: bytes) -> None:
    path = tmp_path / "r.nkrec"
    path.write_bytes(sealed)
    integrity = verify(path)
    assert integrity.state == "complete" and integrity.complete and integrity.damage == ()
    assert (integrity.chunks, integrity.events, integrity.format_version) == (4, 12, 2)
    assert integrity.seal == {"chunks": 4, "events": 12, "last_tick": 11}
    assert integrity.describe() == "complete: sealed after 4 chunks, 12 events, last tick 11"
    with open_recording(path, strict=True) as rec:
        assert [e.tick for e in rec.events()] == list(range(12))


def test_bundled_fixtures_are_complete() -> None:
    for path in [
        *(ROOT / "fixtures" / "recordings").glob("*.nkrec"),
        *(ROOT / "fixtures" / "regressions").glob("*.nkrec"),
    ]:
        assert verify(path).state == "complete", path


@pytest.mark.parametrize(
    ("name", "build", "state", "kind"),
    [
        ("no seal", lambda h, c, s: h + b"".join(c), "unsealed", None),
        ("chunk 2 dropped", lambda h, c, s: h + c[0] + b"".join(c[2:]) + s, "damaged", "gap"),
        ("last chunk dropped", lambda h, c, s: h + b"".join(c[:-1]) + s, "damaged", "seal"),
        ("chunk 2 twice", lambda h, c, s: h + c[0] + c[1] + c[1] + b"".join(c[2:]) + s, "damaged", "duplicate"),
        ("chunks 2 and 3 swapped", lambda h, c, s: h + c[0] + c[2] + c[1] + c[3] + s, "damaged", "gap"),
        ("seal twice", lambda h, c, s: h + b"".join(c) + s + s, "damaged", "trailing"),
        ("garbage after the seal", lambda h, c, s: h + b"".join(c) + s + b"\x00" * 7, "damaged", "corrupt"),
        ("a chunk after the seal", lambda h, c, s: h + b"".join(c) + s + c[0], "damaged", "trailing"),
        ("a cut frame after the seal", lambda h, c, s: h + b"".join(c) + s + c[0][:10], "damaged", "trailing"),
        ("seal of a shorter file", lambda h, c, s: h + b"".join(c[:2]) + s, "damaged", "seal"),
    ],
)
def test_frame_level_damage_is_never_complete(tmp_path: Path, sealed: bytes, name, build, state, kind) -> None:
    head, chunks, seal = split(sealed)
    path = tmp_path / "x.nkrec"
    path.write_bytes(build(head, chunks, seal))
    integrity = verify(path)
    assert integrity.state == state, name
    assert (integrity.first_damage.kind if integrity.damage else None) == kind, name
    with pytest.raises(IncompleteRecording):
        open_recording(path, strict=True)


def test_swapped_chunks_report_the_gap_then_the_late_chunk(tmp_path: Path, sealed: bytes) -> None:
    head, c, seal = split(sealed)
    path = tmp_path / "x.nkrec"
    path.write_bytes(head + c[0] + c[2] + c[1] + c[3] + seal)
    integrity = verify(path)
    offsets = [len(head), len(head) + len(c[0]), len(head) + len(c[0]) + len(c[2])]
    assert [(d.kind, d.offset, d.chunk) for d in integrity.damage] == [
        ("gap", offsets[1], 3),
        ("reordered", offsets[2], 2),
    ]
    assert integrity.chunks == 1 and integrity.chunks_after == 3
    with open_recording(path, on_damage="stop") as rec:  # a replay reads the intact prefix only
        assert [e.tick for e in rec.events()] == [0, 1, 2]
    with open_recording(path, salvage=True) as rec:  # salvage: every intact chunk once, in file order
        assert [e.tick for e in rec.events()] == [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]
    with open_recording(path) as rec, pytest.raises(CorruptRecording, match="chunk 2 missing before chunk 3"):
        list(rec.events())


def test_a_duplicated_chunk_is_read_once_by_salvage(tmp_path: Path, sealed: bytes) -> None:
    head, c, seal = split(sealed)
    path = tmp_path / "x.nkrec"
    path.write_bytes(head + c[0] + c[1] + c[1] + c[2] + c[3] + seal)
    with open_recording(path, salvage=True) as rec:
        assert [e.tick for e in rec.events()] == list(range(12))
        integrity = rec.integrity()
    assert integrity.state == "damaged" and integrity.first_damage.problem == "chunk 2 appears again"


def test_every_cut_at_a_frame_boundary_is_unsealed(tmp_path: Path, sealed: bytes) -> None:
    head, chunks, _ = split(sealed)
    for n in range(len(chunks) + 1):
        data = head + b"".join(chunks[:n])
        path = tmp_path / "x.nkrec"
        path.write_bytes(data)
        integrity = verify(path)
        assert (integrity.state, integrity.chunks, integrity.damage) == ("unsealed", n, ())
        assert integrity.end_offset == len(data)


def test_every_single_bit_flip_is_caught(tmp_path: Path, sealed: bytes) -> None:
    """Each of the file's bits flipped in turn: never complete (the header's bits make it unreadable)."""
    path = tmp_path / "x.nkrec"
    path.write_bytes(sealed)
    seen = set()
    with open(path, "r+b") as f:  # flip in place and back: much faster than writing a file per flip
        for bit in range(len(sealed) * 8):
            at, was = bit // 8, sealed[bit // 8]
            os.pwrite(f.fileno(), bytes([was ^ (1 << (bit % 8))]), at)
            try:
                seen.add(verify(path).state)
            except RecordingError:
                seen.add("unreadable")
            os.pwrite(f.fileno(), bytes([was]), at)
    assert seen == {"damaged", "unreadable"}


def test_a_flipped_length_field_resyncs_and_salvage_keeps_what_follows(tmp_path: Path, sealed: bytes) -> None:
    head, chunks, _seal = split(sealed)
    for bit in range(32):  # every bit of chunk 2's length field
        data = bytearray(sealed)
        data[len(head) + len(chunks[0]) + 2 + bit // 8] ^= 1 << (bit % 8)
        path = tmp_path / "x.nkrec"
        path.write_bytes(bytes(data))
        integrity = verify(path)
        assert integrity.state == "damaged" and integrity.first_damage.kind == "corrupt", bit
        assert integrity.first_damage.offset == len(head) + len(chunks[0])
        assert (integrity.chunks, integrity.chunks_after) == (1, 2), bit
        with open_recording(path, salvage=True) as rec:
            assert [e.tick for e in rec.events()] == [0, 1, 2, 6, 7, 8, 9, 10, 11], bit
    assert main(["inspect", str(path)]) == 3


def test_version_1_length_field_flip_resyncs_too(tmp_path: Path) -> None:
    """Version 1 has no head checksum: a length pointing past the end with an intact frame after it is damage
    (the issue saw such files taken for truncated ones, every later chunk dropped)."""
    data = bytearray(V1_REC.read_bytes())
    with open_recording(V1_REC) as rec:
        index = rec.tick_index()
    data[index[10].offset + 5] ^= 0x10  # the length field's top byte: now far past the end of the file
    path = tmp_path / "v1.nkrec"
    path.write_bytes(bytes(data))
    integrity = verify(path)
    assert integrity.state == "damaged" and integrity.first_damage.kind == "corrupt"
    assert integrity.first_damage.offset == index[10].offset and integrity.chunks_after == len(index) - 11
    with open_recording(path, salvage=True) as rec:
        assert sum(1 for _ in rec.events()) == 72 - 1  # only chunk 11 (one event) is lost


def test_version_1_recordings_read_as_legacy(capsys: pytest.CaptureFixture[str]) -> None:
    assert V1_REC.read_bytes().startswith(MAGIC_V1) and V1_FRAME_SIZE == 18
    integrity = verify(V1_REC)
    assert (integrity.state, integrity.format_version, integrity.chunks, integrity.events) == ("legacy", 1, 60, 72)
    with open_recording(V1_REC) as rec:
        assert sum(1 for _ in rec.events()) == 72
    args = ["reproduce", str(V1_REC), "--handler", str(ARENA)]
    assert main(args) == 3
    out = capsys.readouterr().out
    assert "INCOMPLETE: no verdict: the recording is legacy" in out and "CRASHED in match_loop at tick 58" in out
    assert main([*args, "--allow-incomplete"]) == 0
    out = capsys.readouterr().out
    assert "REPRODUCED: match_loop crashed at tick 58, as recorded (--allow-incomplete" in out
    assert "version-1 file" in out


def test_a_writer_killed_with_sigkill_leaves_an_unsealed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "killed.nkrec"
    script = textwrap.dedent(f"""
        import sys, time
        from recorder import Header, LoopCall, RecordingWriter
        w = RecordingWriter({str(path)!r}, Header(match_id="m"), chunk_events=5)
        for t in range(23):
            w.append(LoopCall(t, ()))
        w.flush()
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    integrity = verify(path)
    assert (integrity.state, integrity.chunks, integrity.events, integrity.damage) == ("unsealed", 5, 23, ())
    assert main(["inspect", "--strict", str(path)]) == 3
    assert "unsealed: the writer did not finish" in capsys.readouterr().err


def test_a_writer_leaving_by_an_exception_does_not_seal(tmp_path: Path) -> None:
    path = tmp_path / "r.nkrec"
    from recorder import RecordingWriter

    with pytest.raises(RuntimeError), RecordingWriter(path, HEADER, chunk_events=4) as w:
        w.extend(loops(6))
        raise RuntimeError("the producer failed")
    integrity = verify(path)
    assert (integrity.state, integrity.events) == ("unsealed", 6)  # pending events written, no seal


def test_ledger_counts_a_chunk_after_a_corrupt_stretch_without_a_second_gap() -> None:
    ledger = Ledger(2, 100, 1000)
    assert ledger.chunk(100, 150, 1, 2, 18, 0, 7) == "prefix"
    ledger.corrupt(150, "checksum mismatch")
    assert ledger.chunk(200, 250, 3, 2, 18, 4, 9) == "salvaged"
    assert [d.kind for d in ledger.damage] == ["corrupt"]
    assert ledger.chunk(250, 300, 5, 2, 18, 8, 9) == "salvaged"  # a gap after an intact chunk is reported
    assert [d.kind for d in ledger.damage] == ["corrupt", "gap"]
    assert ledger.chunk(300, 350, 4, 2, 18, 6, 9) == "salvaged" and ledger.damage[-1].kind == "reordered"
    assert ledger.chunk(350, 400, 3, 2, 18, 4, 9) == "duplicate"
    integrity = ledger.integrity()
    assert (integrity.state, integrity.chunks, integrity.events, integrity.chunks_after) == ("damaged", 1, 2, 3)


# -- no verdict of success from an incomplete recording ------------------------------------------------------


def test_the_issue_cuts_give_no_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``head -c 1000`` and a cut at 20000 bytes: no REPRODUCED, no NO DIVERGENCE; exit 3 naming what is missing."""
    (tmp_path / "handlers").mkdir()
    (tmp_path / "recs").mkdir()
    for name in ("arena.py", "arena_fixed.py"):
        (tmp_path / "handlers" / name).write_bytes((ROOT / "fixtures" / "handlers" / name).read_bytes())
    for size in (1000, 20000):
        cut = tmp_path / "recs" / f"cut{size}.nkrec"
        cut.write_bytes(CRASH_REC.read_bytes()[:size])
        handler = ["--handler", str(tmp_path / "handlers" / "arena.py")]
        assert main(["reproduce", str(cut), *handler]) == 3
        out = capsys.readouterr().out
        assert "REPRODUCED" not in out and "INCOMPLETE: no verdict: the recording is unsealed" in out
        assert main(["reproduce", "--json", str(cut), *handler]) == 3
        doc = json.loads(capsys.readouterr().out)
        assert (doc["status"], doc["reproduced"], doc["integrity"]["state"]) == ("incomplete", False, "unsealed")
        assert f"replayed {doc['calls_replayed']} calls" in doc["verdict"]
        assert (
            main(
                [
                    "diff",
                    str(cut),
                    "--handler",
                    str(tmp_path / "handlers" / "arena.py"),
                    "--against",
                    str(tmp_path / "handlers" / "arena_fixed.py"),
                ]
            )
            == 3
        )
        out = capsys.readouterr().out
        assert "NO DIVERGENCE" not in out and "INCOMPLETE" in out


_DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 10**6)),
    st.tuples(st.just("drop"), st.integers(0, 100)),
    st.tuples(st.just("dup"), st.integers(0, 100)),
    st.tuples(st.just("swap"), st.integers(0, 100), st.integers(1, 100)),
    st.tuples(st.just("garbage"), st.integers(0, 10**6), st.binary(min_size=1, max_size=40)),
)


def damage(data: bytes, how: tuple) -> bytes:
    """Apply one damage to a version-2 file (frames found by their length fields; after earlier damage those
    may be garbage, which only makes other damage)."""
    op = how[0]
    if op in ("flip", "cut", "garbage"):
        return _bytes_damage(data, how)
    head, *frames = frames_of(data) or [b""]
    if len(frames) < 2:  # an earlier damage left too few frames to move: flip a bit instead
        return _bytes_damage(data, ("flip", how[1], 0))
    head = data[: len(MAGIC_V1)] + head
    i = how[1] % len(frames)
    if op == "drop":
        del frames[i]
    elif op == "dup":
        frames.insert(i, frames[i])
    else:
        j = (i + how[2]) % len(frames)
        if frames[i] == frames[j]:
            j = (i + 1) % len(frames)
        frames[i], frames[j] = frames[j], frames[i]
    return head + b"".join(frames)


def _bytes_damage(data: bytes, how: tuple) -> bytes:
    op = how[0]
    if not data:
        return b"\x00"
    if op == "flip":
        out = bytearray(data)
        out[how[1] % len(data)] ^= 1 << how[2]
        return bytes(out)
    if op == "cut":
        return data[: how[1] % len(data)]
    at = how[1] % (len(data) + 1)
    return data[:at] + how[2] + data[at:]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(_DAMAGE, min_size=1, max_size=3))
def test_property_no_damage_is_ever_reported_complete(tmp_path: Path, sealed: bytes, hows: list) -> None:
    data = sealed
    for how in hows:
        data = damage(data, how)
    if data == sealed:  # two damages that undo each other (a swap and its inverse)
        return
    assert state_of(tmp_path, data) != "complete"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["crash", "clean"]), _DAMAGE)
def test_property_no_damaged_or_unsealed_recording_yields_success(tmp_path: Path, which: str, how: tuple) -> None:
    """reproduce, diff --recorded, diff --against and run-all: never a success verdict from a damaged file."""
    source = CRASH_REC if which == "crash" else CLEAN_REC
    data = damage(source.read_bytes(), how)
    path = tmp_path / "recs" / "x.nkrec"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    fast = ReplayOptions(hang_timeout=30.0)
    try:
        result = reproduce(path, str(ARENA), fast)
    except RecordingError:
        return  # the header is gone or a forged payload broke the decoder: no verdict either
    assert result.status != "reproduced" and not result.reproduced and result.exit_code != 0
    assert result.status == "incomplete" and result.exit_code == 3
    assert reproduce_one(str(path), str(ARENA), {"hang_timeout": 30.0})["category"] in ("incomplete", "error")
    for run in (
        lambda: diff_recorded(str(path), str(ARENA), fast),
        lambda: diff_against(str(path), str(ARENA), str(ARENA), fast),
    ):
        try:
            diff = run()
        except RecordingError:
            continue
        assert diff.status == "incomplete" and diff.exit_code == 3


def test_import_seals_and_its_recording_replays_to_a_verdict(tmp_path: Path) -> None:
    from recorder.format import import_jsonl

    out = tmp_path / "example.nkrec"
    import_jsonl(ROOT / "fixtures" / "recordings" / "example.jsonl", out)
    assert verify(out).state == "complete"


def test_commands_that_cannot_stop_half_way_refuse_an_incomplete_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """replay (into a server) and playback refuse before sending anything; lua-check draws no answer."""
    cut = tmp_path / "cut.nkrec"
    cut.write_bytes(CRASH_REC.read_bytes()[:-30])  # inside the seal
    # a server address nothing listens on: a refusal must come before any connection is tried
    assert main(["live", str(cut), "--nakama", "http://127.0.0.1:9", "--out", str(tmp_path / "w")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("TruncatedRecording: ") and "unsealed: the writer did not finish" in err
    assert main(["playback", str(cut), "--listen", "127.0.0.1:0"]) == 3
    assert "unsealed" in capsys.readouterr().err
    lua_rec = ROOT / "fixtures" / "recordings" / "arena-lua-reconnect-crash.nkrec"
    lua_cut = tmp_path / "lua-cut.nkrec"
    lua_cut.write_bytes(lua_rec.read_bytes()[:-30])
    lua = str(ROOT / "fixtures" / "handlers" / "arena.lua")
    assert main(["lua-check", str(lua_cut), "--handler", lua, "--in-process"]) == 3
    out = capsys.readouterr().out
    assert "integrity  unsealed" in out and "INCOMPLETE: no answer" in out
    assert main(["lua-check", str(lua_cut), "--handler", lua, "--in-process", "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "incomplete"
    assert main(["lua-check", str(lua_cut), "--handler", lua, "--in-process", "--allow-incomplete"]) in (0, 1)
    assert main(["lua-check", str(lua_cut), "--handler", lua, "--in-process", "--strict"]) == 3


def test_the_docs_table_has_every_state_verdict_and_exit_code() -> None:
    from replay.cli import _main as cli
    from replay.runtime._verdict import EXIT_CODES

    section = (ROOT / "docs" / "verdicts.md").read_text()
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    table = "\n".join(rows)
    for state in ("complete", "unsealed", "damaged", "legacy"):
        assert f"**{state}**" in section and state in table, state
    for status in ("`reproduced`", "`not-reproduced`", "`incomplete`", "`no-divergence`", "`diverged`"):
        assert status in table, status
    exits = [row.rsplit("|", 2)[1].strip() for row in rows[1:]]
    assert exits == ["0", "1", "3", "0 or 1", "3", "2", "130 / 70"]
    assert EXIT_CODES == {"reproduced": 0, "not-reproduced": 1, "incomplete": 3}
    assert (cli.EXIT_BAD_INPUT, cli.EXIT_INCOMPLETE, cli.EXIT_INTERRUPTED, cli.EXIT_INTERNAL) == (2, 3, 130, 70)


def test_ledger_damage_records_name_kind_offset_chunk_and_problem() -> None:
    """Every damage the ledger records, field by field (what inspect and the verdict sentences print)."""
    seal = {"chunks": 1, "events": 2, "last_tick": 5, "digest": b"\x00" * 16}
    ledger = Ledger(2, 100, 1000)
    assert ledger.chunk(100, 150, 1, 2, 18, 0, 7) == "prefix"
    ledger.count_mismatch(100, 1, 2, 3)
    ledger.truncated(150, "seal")
    assert [d.to_json() for d in ledger.damage] == [
        {
            "kind": "corrupt",
            "offset": 100,
            "chunk": 1,
            "problem": "the frame head counts 2 events, the chunk holds 3",
            "events_recovered": 2,
        },
        {
            "kind": "truncated",
            "offset": 150,
            "chunk": 2,
            "problem": "the file ends inside the seal",
            "events_recovered": 2,
        },
    ]
    cut = Ledger(2, 100, 1000)
    cut.truncated(100, "chunk")
    cut.truncated(100, "")
    assert [d.problem for d in cut.damage] == ["the file ends inside chunk 1", "the file ends inside frame 1"]
    sealed = Ledger(2, 100, 1000)
    sealed.chunk(100, 150, 1, 2, 18, 0, 7)
    sealed.sealed(150, 2, "not a map")
    sealed.sealed(150, 2, {"chunks": "x"})
    sealed.sealed(150, 2, dict(seal, chunks=3))
    sealed.sealed(150, 3, seal)
    assert [(d.kind, d.offset, d.chunk, d.problem) for d in sealed.damage] == [
        ("seal", 150, 2, "the seal is not a map"),
        ("seal", 150, 2, "the seal's fields are malformed: {'chunks': 'x'}"),
        (
            "trailing",
            150,
            3,
            "a second seal",
        ),  # the third was kept (already damaged: not checked), so a fourth is one too many
    ]
    assert sealed.seal == {"chunks": 3, "events": 2, "last_tick": 5} and sealed.integrity().state == "damaged"
    honest = Ledger(2, 100, 1000)
    honest.chunk(100, 150, 1, 2, 18, 0, 7)
    honest.sealed(150, 2, dict(seal, events=9))
    assert honest.damage[0].problem == "the seal counts 9 events, the chunks hold 2"
    late = Ledger(2, 100, 1000)
    late.chunk(100, 150, 1, 2, 18, 0, 7)
    late.sealed(150, 2, dict(seal, chunks=4))
    assert late.damage[0].problem == "the seal counts 4 chunks, the file holds 1"
    after = Ledger(2, 100, 1000)
    after.chunk(100, 150, 1, 2, 18, 0, 7)
    after.seal, after.seal_offset = {"chunks": 1, "events": 2, "last_tick": 5}, 150
    after.last_tick_mismatch(4)
    assert after.damage[0].to_json() == {
        "kind": "seal",
        "offset": 150,
        "chunk": 2,
        "events_recovered": 2,
        "problem": "the seal's last tick is 5, the last event's is 4",
    }
    assert after.chunk(200, 250, 2, 1, 18, 6, 9) == "salvaged" and after.chunk(250, 300, 1, 1, 18, 0, 7) == "duplicate"
    assert [(d.kind, d.offset, d.chunk, d.problem) for d in after.damage[1:]] == [
        ("trailing", 200, 2, "a chunk after the seal"),
        ("trailing", 250, 1, "a chunk after the seal"),
    ]
    after.sealed(300, 3, seal)
    assert after.damage[-1].problem == "a second seal" and after.damage[-1].offset == 300


def test_ledger_out_of_order_chunks_field_by_field() -> None:
    """A late chunk is salvaged once: the copy after it is a duplicate (offset and chunk named), not late again."""
    ledger = Ledger(2, 100, 1000)
    verdicts = [
        ledger.chunk(100, 150, 1, 2, 18, 0, 7),
        ledger.chunk(150, 200, 5, 2, 18, 8, 7),
        ledger.chunk(200, 250, 3, 2, 18, 4, 7),
        ledger.chunk(250, 300, 3, 2, 18, 4, 7),
    ]
    assert verdicts == ["prefix", "salvaged", "salvaged", "duplicate"]
    assert [(d.kind, d.offset, d.chunk, d.problem) for d in ledger.damage] == [
        ("gap", 150, 5, "chunks 2..4 missing before chunk 5"),
        ("reordered", 200, 3, "chunk 3 comes after chunk 5"),
        ("duplicate", 250, 3, "chunk 3 appears again"),
    ]
    integrity = ledger.integrity()
    assert (integrity.state, integrity.chunks, integrity.chunks_after, integrity.size) == ("damaged", 1, 2, 1000)


def test_ledger_seal_problems_and_a_cut_frame_after_the_seal() -> None:
    seal = {"chunks": 1, "events": 2, "last_tick": 5, "digest": b"\x00" * 16}
    wrong = Ledger(2, 100, 1000)
    wrong.chunk(100, 150, 1, 2, 18, 0, 7)
    wrong.sealed(150, 2, seal)
    assert wrong.damage[0].problem == "the seal's digest does not match the chunks' checksums"
    long = Ledger(2, 100, 1000)
    long.sealed(100, 1, {"chunks": "x" * 500})
    assert long.damage[0].problem == ("the seal's fields are malformed: {'chunks': '" + "x" * 500)[:200]
    cut = Ledger(2, 100, 1000)
    cut.sealed(100, 1, dict(seal, chunks=0, events=0, digest=cut._digest.digest()))
    assert cut.seal is not None and not cut.damage
    cut.truncated(140, "chunk")
    assert [d.to_json() for d in cut.damage] == [
        {
            "kind": "trailing",
            "offset": 140,
            "chunk": 1,
            "events_recovered": 0,
            "problem": "bytes after the seal (a cut frame)",
        }
    ]
    assert cut.integrity().state == "damaged"


_SEALED = Integrity("complete", 2, 1, 1, 90, 140, seal={"chunks": 1, "events": 1, "last_tick": 0})
_LINES = [  # an Integrity, its one-line describe() (inspect's integrity line), its missing() (the verdicts' "missing")
    (_SEALED, "complete: sealed after 1 chunk, 1 event, last tick 0", ""),
    (
        _SEALED.with_gaps(("records 4..6 missing (lost log lines, or damaged ones reported above)",)),
        "gapped: the file is sealed and intact (1 chunk, 1 event, last tick 0), but the log it was made from lost "
        "calls: records 4..6 missing (lost log lines, or damaged ones reported above)",
        "the calls the log it was made from lost (records 4..6 missing (lost log lines, or damaged ones reported "
        "above))",
    ),
    (
        _SEALED.with_gaps(("a", "b", "c")),
        "gapped: the file is sealed and intact (1 chunk, 1 event, last tick 0), but the log it was made from lost "
        "calls: a; 2 more in the header's source_gaps tag",
        "the calls the log it was made from lost (a; 2 more in the header's source_gaps tag)",
    ),
    (
        Integrity("legacy", 1, 1, 1, 70, 70),
        "legacy: a version-1 recording (1 event in 1 chunk, read without damage) has no sequence numbers and no seal, "
        "so its completeness cannot be proven",
        "any chunk a version-1 file may have lost (it has no sequence numbers or seal to show one)",
    ),
    (
        Integrity("legacy", 1, 3, 9, 300, 300),
        "legacy: a version-1 recording (9 events in 3 chunks, read without damage) has no sequence numbers and no seal, "
        "so its completeness cannot be proven",
        "any chunk a version-1 file may have lost (it has no sequence numbers or seal to show one)",
    ),
    (
        Integrity("unsealed", 2, 0, 0, 60, 60),
        "unsealed: the writer did not finish (no seal); no chunk (0 events, up to byte offset 60) intact, whatever came "
        "after is missing",
        "whatever the writer recorded after the header (byte offset 60)",
    ),
    (
        Integrity("unsealed", 2, 1, 3, 120, 130, (Damage("truncated", 180, 2, "the file ends inside chunk 2", 3),)),
        "unsealed: the writer did not finish (no seal); chunk 1 (3 events, up to byte offset 120) intact, whatever came "
        "after is missing; the file ends inside chunk 2 (byte offset 180)",
        "whatever the writer recorded after chunk 1 (byte offset 120; the file ends inside chunk 2)",
    ),
    (
        Integrity("unsealed", 2, 4, 12, 400, 400),
        "unsealed: the writer did not finish (no seal); chunks 1..4 (12 events, up to byte offset 400) intact, whatever "
        "came after is missing",
        "whatever the writer recorded after chunk 4 (byte offset 400)",
    ),
    (
        Integrity("damaged", 2, 1, 1, 150, 500, (Damage("corrupt", 150, 2, "checksum mismatch", 1),)),
        "damaged: corrupt at byte offset 150 (chunk 2): checksum mismatch; chunk 1 (1 event, up to byte offset 150) "
        "intact before it",
        "everything from byte offset 150 on (corrupt: checksum mismatch)",
    ),
    (
        Integrity(
            "damaged",
            2,
            0,
            0,
            60,
            500,
            (
                Damage("corrupt", 150, 2, "checksum mismatch", 1),
                Damage("gap", 200, 4, "chunk 3 missing before chunk 4", 5),
            ),
            1,
        ),
        "damaged: corrupt at byte offset 150 (chunk 2): checksum mismatch; no chunk (0 events, up to byte offset 60) "
        "intact before it; 1 intact chunk after it (--salvage reads them); 1 more problem",
        "everything from byte offset 150 on (corrupt: checksum mismatch)",
    ),
    (
        Integrity(
            "damaged",
            2,
            2,
            6,
            200,
            500,
            (
                Damage("gap", 200, 4, "chunk 3 missing before chunk 4", 5),
                Damage("corrupt", 150, 2, "checksum mismatch", 1),
                Damage("truncated", 180, 2, "the file ends inside chunk 2", 3),
            ),
            2,
        ),
        "damaged: gap at byte offset 200 (chunk 4): chunk 3 missing before chunk 4; chunks 1..2 (6 events, up to byte "
        "offset 200) intact before it; 2 intact chunks after it (--salvage reads them); 2 more problems",
        "everything from byte offset 200 on (gap: chunk 3 missing before chunk 4)",
    ),
]


@pytest.mark.parametrize(
    ("integrity", "line", "missing"), _LINES, ids=[f"{i.state}-{n}" for n, (i, _, _) in enumerate(_LINES)]
)
def test_integrity_lines_word_for_word(integrity: Integrity, line: str, missing: str) -> None:
    """The integrity line and the missing part are what people and scripts read: pinned word for word."""
    assert integrity.describe() == line
    assert integrity.missing() == missing
    assert integrity.to_json() == {
        "state": integrity.state,
        "complete": integrity.state == "complete",
        "format_version": integrity.format_version,
        "chunks": integrity.chunks,
        "events": integrity.events,
        "end_offset": integrity.end_offset,
        "size": integrity.size,
        "chunks_after": integrity.chunks_after,
        "seal": integrity.seal,
        "damage": [d.to_json() for d in integrity.damage],
        "gaps": list(integrity.gaps),
        "summary": line,
    }


def test_source_gaps_make_only_a_complete_file_gapped() -> None:
    """What the header's ``source_gaps`` tag says, and how it changes each state: a gap is never lost."""
    assert source_gaps({}) == () and source_gaps({"source_gaps": []}) == () and source_gaps(None) == ()
    assert source_gaps({"source_gaps": ["x", "y"]}) == ("x", "y")
    for bad in ("x", [1], {"a": "b"}, None):
        [said] = source_gaps({"source_gaps": bad})
        assert said.startswith("the header's source_gaps tag is malformed"), said
    assert _SEALED.with_gaps(()) is _SEALED
    for integrity, _, _ in _LINES[3:]:
        gapped = integrity.with_gaps(("x",))
        assert gapped.state == integrity.state and gapped.gaps == ("x",) and not gapped.complete
    assert not _SEALED.with_gaps(("x",)).complete
