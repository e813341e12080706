"""The recording reader's decisions at the edges the mutation run (tests/mutation/run.py) found unpinned: which
bytes a walk reads and which integrity state, offsets and salvage it draws from them.

Files are written with the public writer and damaged by byte offsets taken from ``tick_index()`` and the
documented frame layout (recorder/format/_nkrec.py's docstring), so the tests hold for any reader that keeps
the format."""

from __future__ import annotations

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
    write_recording,
)

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
    big = [LoopCall(t, (MatchMessage(ALICE, 1, b"x" * 20_000),)) for t in range(6)]  # past the read buffer
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
