"""The .nkrec file: round trips, truncation at every byte, corruption, fuzzing, seeking, bounded memory."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recorder import (
    CorruptRecording,
    Header,
    IncompleteRecording,
    LoopCall,
    MatchMessage,
    Presence,
    RecordingError,
    RecordingWriter,
    TruncatedRecording,
    TruncationWarning,
    open_recording,
    read_events,
    write_recording,
)
from recorder.format import summarize, verify
from recorder.format._nkrec import FRAME_SIZE, MAGIC, _frame, _pack, _unpack
from tests.common.model_strategies import assert_same, event_lists, headers, pinned_events, pinned_header
from tests.common.paths import ROOT

FIXTURES = ROOT / "fixtures" / "recordings"
REAL_RECORDINGS = sorted(FIXTURES.glob("*.nkrec"))
HEADER = Header(match_id="m1.nakama1", module="arena", tick_rate=10, node="nakama1")
ALICE = Presence("u1", "s1", "alice", "nakama1")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for hypothesis tests (they cannot take the function-scoped ``tmp_path``)."""
    return tmp_path_factory.mktemp("scratch")


def loops(first: int, count: int, per_loop: int = 2) -> list[LoopCall]:
    return [
        LoopCall(
            t, tuple(MatchMessage(ALICE, 1 + i, b'{"t":%d}' % t, True, 1_700_000_000_000 + t) for i in range(per_loop))
        )
        for t in range(first, first + count)
    ]


def all_chunks(path: Path) -> list:
    with open_recording(path) as rec:
        return [(info, events) for info, events in rec.chunks()]


# -- round trips ---------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers, event_lists(max_size=20), st.sampled_from([1, 2, 7, 256]))
@example(pinned_header(), pinned_events(), 1)
@example(pinned_header(), pinned_events(), 3)
@example(pinned_header(), [], 256)
def test_file_roundtrip(scratch: Path, header: Header, events: list, chunk_events: int) -> None:
    path = scratch / "roundtrip.nkrec"
    assert write_recording(path, header, events, chunk_events=chunk_events) == len(events)
    got_header, got = read_events(path, strict=True)
    assert_same(got_header, header)
    assert_same(got, events)
    with open_recording(path) as rec:
        assert len(rec.tick_index()) == -(-len(events) // chunk_events)


def test_writer_flushes_every_chunk_to_the_os(tmp_path: Path) -> None:
    """A reader opened while the writer is still running sees every flushed chunk (a killed recorder), and
    knows the file is not finished until the writer closes it."""
    path = tmp_path / "live.nkrec"
    w = RecordingWriter(path, HEADER, chunk_events=4)
    w.extend(loops(0, 10))  # two full chunks flushed, two events pending
    _, seen = read_events(path)
    assert [e.tick for e in seen] == list(range(8))
    assert verify(path).state == "unsealed"
    with pytest.raises(IncompleteRecording, match="unsealed"):
        read_events(path, strict=True)
    w.flush()
    assert [e.tick for e in read_events(path)[1]] == list(range(10))
    w.close()
    assert [e.tick for e in read_events(path, strict=True)[1]] == list(range(10))
    assert verify(path).seal == {"chunks": 3, "events": 10, "last_tick": 9}
    with pytest.raises(ValueError, match="closed"):
        w.append(loops(0, 1)[0])


# -- truncation ----------------------------------------------------------------------------------------------


def test_truncated_at_every_byte_reads_every_whole_chunk_before_the_cut(tmp_path: Path) -> None:
    """A cut anywhere: the chunks before it are read, the file is unsealed (never complete), a cut inside a
    frame is named with its offset, and strict mode refuses the file when it is opened."""
    intact = tmp_path / "intact.nkrec"
    write_recording(intact, HEADER, pinned_events()[:5] + loops(1, 6), chunk_events=2)
    data = intact.read_bytes()
    chunks = all_chunks(intact)
    with open_recording(intact) as rec:
        data_start = rec.tick_index()[0].offset  # the first chunk starts right after the header
    ends = {info.offset + FRAME_SIZE + info.length for info, _ in chunks}
    assert len(chunks) == 6 and max(ends) < len(data)  # the seal comes last
    cut_file = tmp_path / "cut.nkrec"
    for cut in range(len(data) + 1):
        cut_file.write_bytes(data[:cut])
        if cut < data_start:  # the magic or the header frame is incomplete: nothing to recover
            with pytest.raises(CorruptRecording) as err:
                open_recording(cut_file)
            assert err.value.offset in (0, len(MAGIC))
            continue
        whole = [(i, ev) for i, ev in chunks if i.offset + FRAME_SIZE + i.length <= cut]
        at_boundary = cut == data_start or cut in ends or cut == len(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with open_recording(cut_file) as rec:
                got = list(rec.chunks())
                integrity = rec.integrity()
        assert [i for i, _ in got] == [i for i, _ in whole], cut
        for (_, a), (_, b) in zip(got, whole):
            assert_same(a, b)
        assert integrity.state == ("complete" if cut == len(data) else "unsealed"), cut
        assert integrity.chunks == len(whole) and integrity.events == sum(len(ev) for _, ev in whole)
        truncation = [w for w in caught if issubclass(w.category, TruncationWarning)]
        if at_boundary:
            assert not truncation and not integrity.damage, cut
        else:
            (damage,) = integrity.damage
            assert len(truncation) == 1 and f"offset {damage.offset}" in str(truncation[0].message), cut
            last = whole[-1][0] if whole else None
            assert damage.kind == "truncated" and damage.chunk == len(whole) + 1
            assert damage.offset == (last.offset + FRAME_SIZE + last.length if last else data_start)
            assert damage.events_recovered == sum(len(ev) for _, ev in whole)
        if cut < len(data):
            with pytest.raises(IncompleteRecording) as refused:
                open_recording(cut_file, strict=True)
            assert isinstance(refused.value, TruncatedRecording) == (not at_boundary), cut
            assert refused.value.events_recovered == integrity.events and str(cut_file) in str(refused.value)
            assert refused.value.offset == (integrity.damage[0].offset if integrity.damage else integrity.end_offset)


# -- corruption ----------------------------------------------------------------------------------------------


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "x.nkrec"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(CorruptRecording, match=r"not an \.nkrec file") as err:
        open_recording(path)
    assert err.value.offset == 0 and isinstance(err.value, ValueError)
    with pytest.raises(RecordingError, match="no such recording"):
        open_recording(tmp_path / "missing.nkrec")


def _frames(path: Path) -> list:
    return [info for info, _ in all_chunks(path)]


def test_flipped_byte_names_file_offset_and_chunk_and_salvage_reads_on(tmp_path: Path) -> None:
    path = tmp_path / "r.nkrec"
    events = loops(0, 30)
    write_recording(path, HEADER, events, chunk_events=5)
    frames = _frames(path)
    victim = frames[2]
    data = bytearray(path.read_bytes())
    data[victim.offset + FRAME_SIZE + 3] ^= 0x40
    path.write_bytes(bytes(data))
    with open_recording(path) as rec, pytest.raises(CorruptRecording) as err:
        list(rec.events())
    assert (err.value.offset, err.value.chunk) == (victim.offset, victim.index) and "checksum" in err.value.problem
    assert str(path) in str(err.value) and f"byte offset {victim.offset}" in str(err.value)
    with open_recording(path, salvage=True) as rec:
        got = list(rec.events())
        damage = rec.damage
    assert [e.tick for e in got] == [t for t in range(30) if not 10 <= t < 15]
    assert [(d.kind, d.offset, d.chunk) for d in damage] == [("corrupt", victim.offset, victim.index)]


def test_length_over_the_maximum_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "big.nkrec"
    write_recording(path, HEADER, [LoopCall(0, (MatchMessage(ALICE, 1, b"x" * 3_000_000),))])
    (frame,) = _frames(path)
    with open_recording(path, max_chunk_bytes=1_000_000) as rec:
        tracemalloc.start()
        try:
            with pytest.raises(CorruptRecording, match="exceeds the maximum") as err:
                list(rec.events())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert err.value.offset == frame.offset and peak < 500_000
    # a forged length field far beyond the file (its head checksum made to match): refused the same way
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, frame.offset + 2, 0xFFFFFFFF)
    struct.pack_into(
        "<I", data, frame.offset + FRAME_SIZE - 4, zlib.crc32(bytes(data[frame.offset : frame.offset + FRAME_SIZE - 4]))
    )
    path.write_bytes(bytes(data))
    with open_recording(path) as rec, pytest.raises(CorruptRecording, match="exceeds the maximum"):
        list(rec.events())


def _reframe(data: bytes, offset: int, payload: bytes) -> bytes:
    """Replace the payload of the frame at ``offset`` and give it valid checksums and the event count it
    holds (a buggy writer), so that the chunk decoder itself is what meets the payload."""
    _, length, kind, _, seq, count, tick, _ = struct.unpack_from("<2sIBBIIqI", data, offset)
    try:
        tree = _unpack(payload)
        count = len(tree[1]) if type(tree) is list and len(tree) == 2 and type(tree[1]) is list else count
    except Exception:  # random bytes: the reader reports them
        pass
    frame, _ = _frame(kind, seq, count, tick, payload)
    return data[:offset] + frame + data[offset + FRAME_SIZE + length :]


def _read_everything(path: Path, **kw) -> int:
    """Read every event the way consumers do, messages and outcomes included."""
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        with open_recording(path, **kw) as rec:
            for e in rec.events():
                n += 1
                if type(e) is LoopCall:
                    n += sum(size for _, size in e.messages.op_codes_and_sizes())  # the lazy path first
                    for m in e.messages:
                        n += len(m.data or b"")
        summarize(path, **kw)
    return n


_ODD_VALUES = [
    None,
    True,
    -1,
    0,
    7,
    2**64 - 1,
    -(2**63),
    1.5,
    float("nan"),
    "x",
    "",
    b"\xff",
    [],
    [0],
    [[]],
    {},
    {"a": 1},
    [0, 1, b"", True, 0],
    [[0, 1, b"", True, 0]],
]


def _mutate(tree, rnd: random.Random):  # type: ignore[no-untyped-def]
    """Replace, delete or duplicate one randomly chosen node of a decoded payload."""
    nodes = []

    def walk(x):  # type: ignore[no-untyped-def]
        if isinstance(x, list):
            for i in range(len(x)):
                nodes.append((x, i))
                walk(x[i])
        elif isinstance(x, dict):
            for k in list(x):
                nodes.append((x, k))
                walk(x[k])

    walk(tree)
    if not nodes:
        return rnd.choice(_ODD_VALUES)
    parent, key = rnd.choice(nodes)
    action = rnd.random()
    if action < 0.7:
        parent[key] = rnd.choice(_ODD_VALUES)
    elif action < 0.85:
        del parent[key]
    elif isinstance(parent, list):
        parent.insert(key, parent[key])
    return tree


@pytest.fixture(scope="module")
def fuzz_sources(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    made = tmp_path_factory.mktemp("fuzz") / "pinned.nkrec"
    write_recording(made, pinned_header(), pinned_events() + loops(6, 20, 3), chunk_events=4)
    return [p.read_bytes() for p in REAL_RECORDINGS] + [made.read_bytes()]


def test_fuzz_flips_and_cuts_raise_only_documented_errors(fuzz_sources: list[bytes], tmp_path: Path) -> None:
    """Random byte flips, cuts and forged chunk payloads (with valid checksums): any exception other than
    a RecordingError (CorruptRecording, TruncatedRecording) is a bug."""
    rnd = random.Random(20261127)
    path = tmp_path / "fuzz.nkrec"
    outcomes = {"ok": 0, "error": 0}
    for round_ in range(400):
        data = bytearray(rnd.choice(fuzz_sources))
        mode = round_ % 4
        if mode == 0:
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif mode == 1:
            del data[rnd.randrange(len(data)) :]
            if data and rnd.random() < 0.5:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
        else:  # a chunk payload a buggy writer produced, behind a valid checksum: the decoder itself must hold
            frames = []
            pos = len(MAGIC)
            while pos + FRAME_SIZE <= len(data):
                length = struct.unpack_from("<I", data, pos + 2)[0]
                frames.append((pos, length))
                pos += FRAME_SIZE + length
            offset, length = rnd.choice(frames)
            payload = bytes(data[offset + FRAME_SIZE : offset + FRAME_SIZE + length])
            if mode == 2:  # random bytes
                mutable = bytearray(payload)
                for _ in range(rnd.randint(1, 3)):
                    if mutable:
                        mutable[rnd.randrange(len(mutable))] = rnd.randrange(256)
                payload = bytes(mutable)
            else:  # well-formed msgpack, wrong structure: replace one node of the decoded tree
                payload = _pack(_mutate(_unpack(payload), rnd))
            data = bytearray(_reframe(bytes(data), offset, payload))
        path.write_bytes(bytes(data))
        for kw in ({}, {"salvage": True}, {"strict": True}):
            try:
                _read_everything(path, **kw)
                outcomes["ok"] += 1
            except RecordingError:
                outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]  # the harness reached both sides


# -- seeking -------------------------------------------------------------------------------------------------


def test_tick_index_and_seeking_skip_earlier_chunks(tmp_path: Path) -> None:
    path = tmp_path / "seek.nkrec"
    write_recording(path, HEADER, loops(0, 100), chunk_events=10)
    with open_recording(path) as rec:
        index = rec.tick_index()
        assert [i.tick for i in index] == list(range(0, 100, 10)) and [i.index for i in index] == list(range(1, 11))
        assert [e.tick for e in rec.events(from_tick=37)] == list(range(37, 100))
        assert [e.tick for e in rec.events(from_tick=0)] == list(range(100))
        assert list(rec.events(from_tick=1000)) == []
    # damage an early chunk: seeking past it never reads it
    data = bytearray(path.read_bytes())
    data[index[1].offset + FRAME_SIZE + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        assert [e.tick for e in rec.events(from_tick=50)] == list(range(50, 100))
        with pytest.raises(CorruptRecording) as err:
            list(rec.events(from_tick=5))
        assert err.value.chunk == 2


def test_tell_gives_the_offset_of_the_next_frame(tmp_path: Path) -> None:
    path = tmp_path / "tell.nkrec"
    write_recording(path, HEADER, loops(0, 9), chunk_events=3)
    with open_recording(path) as rec:
        index = rec.tick_index()
        assert rec.tell() == index[0].offset
        for info, _ in rec.chunks():
            assert rec.tell() == info.offset + FRAME_SIZE + info.length
        assert rec.tell() == rec.size


# -- bounded memory ------------------------------------------------------------------------------------------


_MEASURE = """
import json, resource, sys
from recorder import open_recording
from recorder.format import summarize
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak resident bytes (Linux: KiB)
before = rss()
s = summarize(sys.argv[1])
after_summary = rss()
count = 0
with open_recording(sys.argv[1]) as rec:
    for e in rec.events():
        for m in e.messages:
            count += 1
print(json.dumps({"before": before, "summary": after_summary, "events": rss(), "count": count,
                  "ops": sum(o.count for o in s.op_codes), "bytes": sum(o.bytes for o in s.op_codes),
                  "ticks": s.ticks}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads peak RSS from getrusage, in bytes*1024 on Linux only")
def test_a_million_messages_stream_in_bounded_memory(tmp_path: Path) -> None:
    """1,000,000 messages (about 100 MB on disk), generated chunk by chunk, read back by summarize() and
    with every message materialised, in a fresh process whose peak resident memory grows by a small
    fraction of the file. (Peak RSS rather than tracemalloc: it sees C allocations too, and tracing every
    allocation would make this test six times slower.)"""
    path = tmp_path / "million.nkrec"
    players = [Presence(f"user-{i}", f"session-{i}", f"player{i}", "nakama1") for i in range(8)]
    body = b'{"x":12,"y":-3,"aim":[1,0],"pad":"' + b"." * 50 + b'"}'
    per_loop, n_loops = 10, 100_000
    msgs = tuple(MatchMessage(players[i % 8], 1 + i % 3, body, True, 1_700_000_000_000 + i) for i in range(per_loop))
    with RecordingWriter(path, HEADER, chunk_events=500) as w:
        for t in range(n_loops):
            w.append(LoopCall(t, msgs))
    size = path.stat().st_size
    assert size > 90_000_000
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert m["ticks"] == n_loops and m["ops"] == m["count"] == 1_000_000 and m["bytes"] == 1_000_000 * len(body)
    limit = 50 * 1024 * 1024
    grown = max(m["summary"], m["events"]) - m["before"]
    assert grown < limit and grown * 8 < size, m
