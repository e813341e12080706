"""The recording reader's decisions at the edges the mutation run (tests/mutation/run.py) found unpinned: which
bytes a walk reads and which integrity state, offsets and salvage it draws from them.

Files are written with the public writer and damaged by byte offsets taken from ``tick_index()`` and the
documented frame layout (recorder/format/_nkrec.py's docstring), so the tests hold for any reader that keeps
the format."""

from __future__ import annotations

import gc
import struct
import zlib
from pathlib import Path

import pytest

from recorder import (
    Header,
    LoopCall,
    MatchMessage,
    Presence,
    RecordingWriter,
    TruncationWarning,
    open_recording,
    read_events,
    write_recording,
)
from recorder.storage import BLOCK_SIZE
from tests.common.paths import DATA

HEADER = Header(match_id="m1.nakama1", module="arena", tick_rate=10, node="nakama1")
ALICE = Presence("u1", "s1", "alice", "nakama1")
HEAD_V2 = 32  # sync 2, length 4, kind 1, flags 1, seq 4, count 4, tick 8, body crc 4, head crc 4
HEAD_V1 = 18  # sync 2, length 4, crc 4, tick 8


def loops(first: int, count: int) -> list[LoopCall]:
    return [
        LoopCall(t, (MatchMessage(ALICE, 1, b'{"t":%d}' % t, True, 1_700_000_000_000 + t),))
        for t in range(first, first + count)
    ]


def chunk_offsets(path: Path) -> list[int]:
    with open_recording(path) as rec:
        return [i.offset for i in rec.tick_index()]


def salvaged_ticks(path: Path) -> list[int]:
    with open_recording(path, salvage=True) as rec:
        return [e.tick for e in rec.events()]


def test_a_resync_never_reads_back_into_the_frame_before_the_damage(tmp_path: Path) -> None:
    """Chunk 1's payload ends in b"N" (a receive time of 78); chunk 2 loses its first byte, so chunk 1's last
    byte and chunk 2's remaining bytes spell an intact frame starting one byte before the damage. The resync
    looks only after the damaged offset: that frame shares a byte with chunk 1 and is not read, so chunk 2 is
    lost with the damage and salvage reads chunks 1, 3, 4."""
    path = tmp_path / "r.nkrec"
    write_recording(
        path, HEADER, [LoopCall(t, (MatchMessage(ALICE, 1, b"x", True, 78),)) for t in range(4)], chunk_events=1
    )
    at = chunk_offsets(path)
    data = path.read_bytes()
    assert data[at[1] - 1 : at[1] + 2] == b"NNK"  # the premise: chunk 1 ends in b"N"
    path.write_bytes(data[: at[1]] + data[at[1] + 1 :])
    with open_recording(path) as rec:
        integrity = rec.integrity()
    assert integrity.state == "damaged"
    assert [(d.kind, d.offset, d.chunk) for d in integrity.damage] == [("corrupt", at[1], 2)]
    assert (integrity.chunks, integrity.chunks_after) == (1, 2)
    assert salvaged_ticks(path) == [0, 2, 3]


def test_a_recording_still_being_written_is_judged_on_the_bytes_there_at_open(tmp_path: Path) -> None:
    """The size is taken when the file is opened: chunks the writer adds afterwards (and its seal) are not
    read, so the recording is unsealed after the chunks that were there, never complete."""
    path = tmp_path / "live.nkrec"
    with RecordingWriter(path, HEADER, chunk_events=2) as writer:
        writer.extend(loops(0, 4))  # two chunks, each flushed whole
        with open_recording(path, on_damage="stop") as rec:
            size = rec.size
            writer.extend(loops(4, 4))
            writer.close()
            assert path.stat().st_size > size
            assert [e.tick for e in rec.events()] == [0, 1, 2, 3]
            integrity = rec.integrity()
    assert (integrity.state, integrity.chunks, integrity.events, integrity.end_offset) == ("unsealed", 2, 4, size)


def test_a_recording_cut_after_it_was_opened_is_cut_not_corrupt(tmp_path: Path) -> None:
    """The file shrinks between open and read (a rotation, a copy being replaced): a chunk that now ends
    early is a cut (unsealed) with what was read kept, not a checksum failure."""
    path = tmp_path / "shrunk.nkrec"
    # chunks of two loops of half a read buffer each: chunk 3 begins past the first two buffers' worth
    big = [LoopCall(t, (MatchMessage(ALICE, 1, b"x" * (BLOCK_SIZE // 2)),)) for t in range(6)]
    write_recording(path, HEADER, big, chunk_events=2)
    at = chunk_offsets(path)
    with open_recording(path) as rec:
        with path.open("r+b") as f:
            f.truncate(at[2] + HEAD_V2 + 3)  # inside chunk 3's payload
        with pytest.warns(TruncationWarning):
            assert [e.tick for e in rec.events()] == [0, 1, 2, 3]
    with open_recording(path) as rec:  # reopened: the same answer from the new size
        integrity = rec.integrity()
    assert (integrity.state, integrity.chunks, integrity.first_damage.kind) == ("unsealed", 2, "truncated")
    assert integrity.first_damage.offset == at[2]


# -- every damage names the byte offset of the frame it is about; tell() after a read that ended early -------------


def frames(path: Path) -> tuple[bytes, list[int], int]:
    """The file's bytes, its chunk frames' offsets and the offset where the last chunk frame ends (the seal's)."""
    with open_recording(path) as rec:
        index = rec.tick_index()
    return path.read_bytes(), [i.offset for i in index], index[-1].offset + HEAD_V2 + index[-1].length


@pytest.mark.parametrize(
    ("name", "build", "kind", "where"),
    [  # the damaged bytes and the first damage's offset, from (data, chunk offsets, seal offset)
        ("last chunk dropped", lambda d, c, s: d[: c[-1]] + d[s:], "seal", lambda d, c, s: c[-1]),
        ("seal twice", lambda d, c, s: d + d[s:], "trailing", lambda d, c, s: len(d)),
        ("a chunk after the seal", lambda d, c, s: d + d[c[0] : c[1]], "trailing", lambda d, c, s: len(d)),
        ("a cut frame after the seal", lambda d, c, s: d + d[c[0] : c[0] + 10], "trailing", lambda d, c, s: len(d)),
        ("cut inside chunk 3", lambda d, c, s: d[: c[2] + HEAD_V2 + 1], "truncated", lambda d, c, s: c[2]),
        ("cut inside chunk 3's head", lambda d, c, s: d[: c[2] + 5], "truncated", lambda d, c, s: c[2]),
    ],
)
def test_frame_damage_names_its_offset(tmp_path: Path, name, build, kind, where) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "sealed.nkrec"
    write_recording(source, HEADER, loops(0, 8), chunk_events=2)
    data, chunks, seal = frames(source)
    path = tmp_path / "x.nkrec"
    path.write_bytes(build(data, chunks, seal))
    with open_recording(path, on_damage="stop") as rec:
        list(rec.events())
        integrity = rec.integrity()
        assert rec.tell() == rec.size, name  # the walk went to the end of the file
    assert (integrity.first_damage.kind, integrity.first_damage.offset) == (kind, where(data, chunks, seal)), name
    assert integrity.state != "complete", name


def test_a_read_ends_at_the_end_of_the_file_after_a_cut_or_unrecoverable_damage(tmp_path: Path) -> None:
    """tell() once a read is over: after a cut, or after damage with no intact frame behind it (salvage looks
    for one to the end), nothing is left to read. A "stop" read ends at the damage itself: tell() names the
    damaged frame, or the frame after a chunk whose events disagree with its head's count."""
    path = tmp_path / "x.nkrec"
    write_recording(path, HEADER, loops(0, 6), chunk_events=2)
    data, chunks, _ = frames(path)
    cut, garbage = data[: chunks[2] + HEAD_V2 + 1], data[: chunks[2]] + b"\x00" * 40
    head = bytearray(data[chunks[1] : chunks[1] + HEAD_V2])  # chunk 2's head says 3 events (it holds 2)
    struct.pack_into("<I", head, 12, 3)
    struct.pack_into("<I", head, 28, zlib.crc32(head[:28]))
    miscounted = data[: chunks[1]] + bytes(head) + data[chunks[1] + HEAD_V2 :]
    for damaged, policy, ticks, end in (
        (cut, "stop", [0, 1, 2, 3], len(cut)),
        (garbage, "skip", [0, 1, 2, 3], len(garbage)),
        (garbage, "stop", [0, 1, 2, 3], chunks[2]),
        (miscounted, "stop", [0, 1], chunks[2]),
    ):
        path.write_bytes(damaged)
        with open_recording(path, on_damage=policy) as rec:
            assert [e.tick for e in rec.events()] == ticks
            assert rec.tell() == end, policy


def test_a_version_1_length_field_pointing_past_the_end_is_damage_at_its_chunk(tmp_path: Path) -> None:
    """Version 1 has no head checksum: a length field pointing past the end of the file with an intact frame
    after it is damage at that chunk's offset (not a cut), and salvage reads on after it."""
    source = DATA / "arena-reconnect-crash-v1.nkrec"
    with open_recording(source) as rec:
        index = rec.tick_index()
        total = sum(1 for _ in rec.events())
    second = index[1]
    data = source.read_bytes()
    length_at = second.offset + 2  # sync 2 bytes, then length u32 LE
    path = tmp_path / "v1.nkrec"
    path.write_bytes(data[:length_at] + struct.pack("<I", len(data)) + data[length_at + 4 :])
    with open_recording(path, on_damage="stop") as rec:
        integrity = rec.integrity()
    first = integrity.first_damage
    assert (integrity.state, first.kind, first.offset) == ("damaged", "corrupt", second.offset)
    assert first.problem == "the length field points past the end of the file, yet a valid frame follows"
    with open_recording(path, salvage=True) as rec:
        salvaged = sum(1 for _ in rec.events())
    with open_recording(source) as rec:
        in_second = len(next(events for info, events in rec.chunks() if info.offset == second.offset))
    assert salvaged == total - in_second


def test_chunks_are_built_with_the_collector_paused_and_it_is_left_as_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader unpacks and the writer encodes a chunk with the cyclic garbage collector paused (speed:
    ``recorder.format._nkrec.collector_paused``), and leaves it running, or paused when the caller paused
    it, also when a payload does not decode."""
    from recorder.format import _nkrec

    seen: list[bool] = []
    unpackb, encode = _nkrec.msgpack.unpackb, _nkrec.pack_chunk_into
    monkeypatch.setattr(_nkrec.msgpack, "unpackb", lambda *a, **k: (seen.append(gc.isenabled()), unpackb(*a, **k))[1])
    monkeypatch.setattr(_nkrec, "pack_chunk_into", lambda *a: (seen.append(gc.isenabled()), encode(*a))[1])
    path = tmp_path / "r.nkrec"
    assert gc.isenabled()
    write_recording(path, HEADER, loops(0, 120), chunk_events=50)
    assert [e.tick for e in read_events(path)[1]] == list(range(120))
    assert seen and not any(seen) and gc.isenabled()
    with pytest.raises(_nkrec.msgpack.FormatError):
        _nkrec._unpack(b"\xc1")  # a byte msgpack never writes
    assert gc.isenabled()
    gc.disable()
    try:
        assert len(read_events(path)[1]) == 120
        assert not gc.isenabled()
    finally:
        gc.enable()
