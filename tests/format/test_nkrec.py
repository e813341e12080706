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
from dataclasses import replace
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
from recorder.format import summarize
from recorder.format._codec import encode_chunk, encode_header
from recorder.format._integrity import SealDigest
from recorder.format._nkrec import (
    FRAME_SIZE,
    KIND_CHUNK,
    KIND_HEADER,
    KIND_SEAL,
    MAGIC,
    MAGIC_V1,
    SYNC,
    _frame,
    _pack,
    _unpack,
    verify,
)
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
            inside = (
                "frame" if cut - damage.offset < FRAME_SIZE else "the seal" if damage.offset >= max(ends) else "chunk"
            )
            assert damage.problem == f"the file ends inside {inside}" + (
                "" if inside == "the seal" else f" {damage.chunk}"
            )
            assert damage.offset == (last.offset + FRAME_SIZE + last.length if last else data_start)
            assert damage.events_recovered == sum(len(ev) for _, ev in whole)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "stop" (what replays use) reports the state, it does not warn
            with open_recording(cut_file, on_damage="stop") as rec:
                assert len(list(rec.chunks())) == len(whole) and rec.tell() == cut
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
    except Exception:
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


# -- the reader's decisions, frame by frame (what it tells recorder.integrity) -------------------------------------


def _forge(path: Path, chunks: list, *, last_tick: int | None = None) -> list[int]:
    """Write a version-2 file frame by frame with whatever frame heads a test needs: ``chunks`` are (the count
    the head states, the events or a raw payload); a seal agreeing with the heads when ``last_tick`` is given.
    Returns the chunk frames' offsets."""
    head, header_crc = _frame(KIND_HEADER, 0, 0, -1, _pack(encode_header(HEADER)))
    digest, out, offsets = SealDigest(header_crc), bytearray(MAGIC + head), []
    for seq, (count, body) in enumerate(chunks, 1):
        payload = body if isinstance(body, bytes) else _pack(encode_chunk(body))
        tick = body[0].tick if not isinstance(body, bytes) and body else -1
        frame, crc = _frame(KIND_CHUNK, seq, count, tick, payload)
        offsets.append(len(out))
        out += frame
        digest.add(seq, count, len(payload), tick, crc)
    if last_tick is not None:
        seal = {
            "chunks": len(chunks),
            "events": sum(c for c, _ in chunks),
            "last_tick": last_tick,
            "digest": digest.digest(),
        }
        out += _frame(KIND_SEAL, len(chunks) + 1, 0, last_tick, _pack(seal))[0]
    path.write_bytes(bytes(out))
    return offsets


def _fields(err: CorruptRecording) -> tuple:
    return err.path, err.offset, err.chunk, err.problem


def test_a_chunk_holding_other_than_its_head_counts_is_damage(tmp_path: Path) -> None:
    """The seal agrees with the heads, so only decoding shows it: reading raises, a replay's "stop" read ends
    before it and the recording is then damaged (never complete), salvage skips those chunks."""
    path = tmp_path / "lying.nkrec"
    ev = loops(0, 10, per_loop=1)
    at = _forge(path, [(3, ev[0:3]), (2, ev[3:6]), (0, ev[6:7]), (3, ev[7:10])], last_tick=9)
    two, zero = "the frame head counts 2 events, the chunk holds 3", "the frame head counts 0 events, the chunk holds 1"
    with open_recording(path) as rec, pytest.raises(CorruptRecording) as err:
        list(rec.events())
    assert _fields(err.value) == (str(path), at[1], 2, two)
    with open_recording(path, on_damage="stop") as rec:
        assert [e.tick for e in rec.events()] == [0, 1, 2]
        integrity = rec.integrity()
    d = integrity.first_damage
    assert (integrity.state, d.kind, d.offset, d.chunk, d.problem) == ("damaged", "corrupt", at[1], 2, two)
    with open_recording(path, salvage=True) as rec:
        assert [e.tick for e in rec.events()] == [0, 1, 2, 7, 8, 9]
        assert [(d.offset, d.chunk, d.problem) for d in rec.integrity().damage] == [(at[1], 2, two), (at[2], 3, zero)]


def test_the_seal_is_checked_against_the_last_chunk_it_closes(tmp_path: Path) -> None:
    path = tmp_path / "s.nkrec"
    _forge(path, [(0, [])], last_tick=-1)  # an empty last chunk: no last event, last tick -1
    assert verify(path).state == "complete"
    _forge(path, [(4, loops(0, 4, per_loop=1))], last_tick=9)
    integrity = verify(path)
    assert (integrity.state, integrity.size) == ("damaged", path.stat().st_size)
    assert integrity.first_damage.problem == "the seal's last tick is 9, the last event's is 3"
    at = _forge(path, [(1, b"\xc1")], last_tick=0)  # checksummed, but not msgpack: a bad writer
    with pytest.raises(CorruptRecording) as err:
        verify(path)
    assert _fields(err.value)[:3] == (str(path), at[0], 1) and err.value.problem.startswith("chunk payload: ")
    at = _forge(path, [(1, _pack([[], [[99, 0]]]))], last_tick=0)
    with pytest.raises(CorruptRecording) as err:
        verify(path)
    assert _fields(err.value) == (str(path), at[0], 1, "event 0: unknown event kind code 99")


def test_a_chunk_payload_that_does_not_decode_names_its_chunk(tmp_path: Path) -> None:
    path = tmp_path / "p.nkrec"
    at = _forge(path, [(1, loops(0, 1, per_loop=1)), (1, _pack(5)), (1, loops(2, 1, per_loop=1))], last_tick=2)
    with open_recording(path) as rec, pytest.raises(CorruptRecording) as err:
        list(rec.events())
    assert _fields(err.value)[:3] == (str(path), at[1], 2) and err.value.problem.startswith("chunk payload: TypeError")


@pytest.mark.parametrize(
    ("name", "data", "offset", "problem"),
    [
        (
            "a newer format",
            b"\x89NKRC3\r\n" + b"\x00" * 40,
            0,
            "unsupported .nkrec format (magic b'\\x89NKRC3\\r\\n'); it may come from a newer nakama-replay",
        ),
        (
            "cut in the magic",
            b"\x89NKRC2",
            0,
            "the file ends after 6 bytes, inside the 8-byte .nkrec signature: a "
            "recording cut off before its header; nothing in it can be read",
        ),
        (
            "a chunk first",
            MAGIC + _frame(KIND_CHUNK, 1, 0, -1, _pack([[], []]))[0],
            len(MAGIC),
            "the header frame is missing, damaged or cut off",
        ),
        (
            "a header frame numbered 1",
            MAGIC + _frame(KIND_HEADER, 1, 0, -1, _pack(encode_header(HEADER)))[0],
            len(MAGIC),
            "the header frame is missing, damaged or cut off",
        ),
        ("a header that is no header", MAGIC + _frame(KIND_HEADER, 0, 0, -1, _pack(5))[0], len(MAGIC), "header: "),
    ],
)
def test_what_cannot_be_opened_is_named_at_offset_0_or_the_header(tmp_path: Path, name, data, offset, problem) -> None:
    path = tmp_path / "x.nkrec"
    path.write_bytes(data)
    with pytest.raises(CorruptRecording) as err:
        open_recording(path)
    assert (err.value.path, err.value.offset, err.value.chunk) == (str(path), offset, 0), name
    assert err.value.problem.startswith(problem) if problem.endswith(" ") else err.value.problem == problem, name


def _frame_of(kind: int, seq: int, payload: bytes) -> bytes:
    return _frame(kind, seq, 0, -1, payload)[0]


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[int]]:
    """A sealed file of four chunks of three events, and the offsets of its chunks and seal; chunk 2's messages
    carry the frame sync b"NK" (a candidate the resync must look past)."""
    path = tmp_path_factory.mktemp("four") / "r.nkrec"
    events = [LoopCall(t, (MatchMessage(ALICE, 1, b"NK%dNK" % t),)) for t in range(12)]
    write_recording(path, HEADER, events, chunk_events=3)
    with open_recording(path) as rec:
        starts = [i.offset for i in rec.tick_index()]
    data = path.read_bytes()
    return data, [*starts, starts[-1] + FRAME_SIZE + struct.unpack_from("<I", data, starts[-1] + 2)[0]]


def _reheaded(data: bytes, offset: int, **fields: int) -> bytes:
    """``data`` with the frame head at ``offset`` rewritten (``kind``, ``seq``) and its head checksum made valid."""
    sync, length, kind, flags, seq, count, tick, crc = struct.unpack_from("<2sIBBIIqI", data, offset)
    head = struct.pack(
        "<2sIBBIIqI", sync, length, fields.get("kind", kind), flags, fields.get("seq", seq), count, tick, crc
    )
    return data[:offset] + head + struct.pack("<I", zlib.crc32(head)) + data[offset + FRAME_SIZE :]


def _flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("name", "damage", "problem", "salvaged"),
    [
        ("bad sync", lambda d, o: _flip(d, o[1], 0x16), "bad frame sync b'XK'", [*range(3), *range(6, 12)]),
        ("head checksum", lambda d, o: _flip(d, o[1] + 12), "frame head checksum mismatch", [*range(3), *range(6, 12)]),
        (
            "unknown kind",
            lambda d, o: _reheaded(d, o[1], kind=0x51),
            "unknown frame kind 0x51",
            [*range(3), *range(6, 12)],
        ),
        ("payload flip", lambda d, o: _flip(d, o[1] + FRAME_SIZE + 2), "checksum mismatch", [*range(3), *range(6, 12)]),
        ("a stray byte", lambda d, o: d[: o[1]] + b"\x00" + d[o[1] :], "bad frame sync b'\\x00N'", list(range(12))),
        (
            "a second header",
            lambda d, o: d[: o[1]] + d[len(MAGIC) : o[0]] + d[o[1] :],
            "a second header frame",
            list(range(12)),
        ),
        ("garbage after the seal", lambda d, o: d + b"\x00" * 7, "bad frame sync b'\\x00\\x00'", list(range(12))),
    ],
)
def test_each_frame_damage_is_named_and_the_walk_resyncs_past_it(
    tmp_path: Path, four, name, damage, problem, salvaged
) -> None:
    data, offsets = four
    path = tmp_path / "x.nkrec"
    path.write_bytes(damage(data, offsets))
    where = len(data) if name == "garbage after the seal" else offsets[1]
    integrity = verify(path)
    assert integrity.state == "damaged", name
    assert (integrity.first_damage.kind, integrity.first_damage.offset, integrity.first_damage.problem) == (
        "corrupt",
        where,
        problem,
    ), name
    with open_recording(path) as rec, pytest.raises(CorruptRecording) as err:
        list(rec.events())
    assert (err.value.offset, err.value.problem) == (where, problem), name
    with open_recording(path, salvage=True) as rec:
        assert [e.tick for e in rec.events()] == salvaged, name


def test_resync_finds_a_frame_right_at_the_end_of_its_read_window(tmp_path: Path) -> None:
    """The resync reads 1 MiB windows overlapping by a byte: a frame starting just past a window is found."""
    path = tmp_path / "big.nkrec"
    size = 1 << 20
    for _ in range(3):  # the message size putting chunk 2 where the first window ends (msgpack's overhead is fixed)
        write_recording(
            path, HEADER, [LoopCall(0, (MatchMessage(ALICE, 1, b"x" * size),)), *loops(1, 2)], chunk_events=1
        )
        with open_recording(path) as rec:
            first, second = rec.tick_index()[:2]
        size -= second.offset - (first.offset + 1 + (1 << 20))
    assert second.offset == first.offset + 1 + (1 << 20)
    path.write_bytes(_flip(path.read_bytes(), first.offset + FRAME_SIZE + 100))
    with open_recording(path, salvage=True) as rec:
        assert [e.tick for e in rec.events()] == [1, 2]


def test_a_cut_inside_a_chunk_holding_frame_bytes_is_still_a_cut(tmp_path: Path) -> None:
    """Version 2 never resyncs after a cut: a frame found inside the cut chunk's payload is message data."""
    path = tmp_path / "x.nkrec"
    inner = _frame(KIND_CHUNK, 9, 1, 5, _pack(encode_chunk(loops(5, 1))))[0]
    write_recording(
        path, HEADER, [*loops(0, 2), LoopCall(2, (MatchMessage(ALICE, 1, inner + b"." * 50),))], chunk_events=2
    )
    data = path.read_bytes()
    cut = data.rindex(inner) + len(inner) + 10
    path.write_bytes(data[:cut])
    integrity = verify(path)
    assert (integrity.state, integrity.chunks, integrity.chunks_after) == ("unsealed", 1, 0)
    assert integrity.first_damage.problem == "the file ends inside chunk 2"


def test_a_chunk_exactly_at_the_length_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "x.nkrec"
    write_recording(path, HEADER, loops(0, 6), chunk_events=3)
    with open_recording(path) as rec:  # the longest frame, the header's included
        index = rec.tick_index()
        longest = max(index[0].offset - len(MAGIC) - FRAME_SIZE, *(i.length for i in index))
    with open_recording(path, max_chunk_bytes=longest) as rec:
        assert len(list(rec.events())) == 6 and rec.integrity().state == "complete"


# -- version 1: no head checksum, no sequence numbers --------------------------------------------------------------


def _v1(tmp_path: Path, payloads: list[bytes]) -> tuple[Path, list[int]]:
    """A version-1 file of raw chunk payloads (ticks 0, 1, ...), and the chunks' offsets."""
    out = bytearray(MAGIC_V1)
    header = _pack(encode_header(HEADER))
    out += struct.pack("<2sIIq", SYNC, len(header), zlib.crc32(header, zlib.crc32(struct.pack("<q", -1))), -1) + header
    offsets = []
    for tick, payload in enumerate(payloads):
        offsets.append(len(out))
        crc = zlib.crc32(payload, zlib.crc32(struct.pack("<q", tick)))
        out += struct.pack("<2sIIq", SYNC, len(payload), crc, tick) + payload
    path = tmp_path / "v1.nkrec"
    path.write_bytes(bytes(out))
    return path, offsets


def test_version_1_reader_decisions(tmp_path: Path) -> None:
    chunks = [_pack(encode_chunk([LoopCall(t, (MatchMessage(ALICE, 1, b"x" * 300),))])) for t in range(4)]
    path, at = _v1(tmp_path, chunks)
    with open_recording(path) as rec:
        infos = [i for i, _ in rec.chunks()]  # the walk's: offsets, ticks, lengths, positions as the index has them
        assert [replace(i, count=-1) for i in infos] == rec.tick_index() and [i.count for i in infos] == [1] * 4
        assert rec.integrity().state == "legacy" and rec.integrity().events == 4
    longest = max(at[0] - len(MAGIC_V1) - 18, *map(len, chunks))  # the header's frame included
    with open_recording(path, max_chunk_bytes=longest) as rec:
        assert len(list(rec.events())) == 4
    data = path.read_bytes()
    cases = [  # (damaged file, first problem, events salvage reads)
        (_flip(data, at[1], 0x16), "bad frame sync b'XK'", 3),
        (_flip(data, len(data) - 1), "checksum mismatch", 3),
        # a length pointing past the end but below the maximum: a damaged field, not a cut file
        (_flip(data, at[1] + 4), "the length field points past the end of the file, yet a valid frame follows", 3),
    ]
    for damaged, problem, salvaged in cases:
        path.write_bytes(damaged)
        integrity = verify(path)
        assert (integrity.state, integrity.first_damage.kind, integrity.first_damage.problem) == (
            "damaged",
            "corrupt",
            problem,
        )
        with open_recording(path) as rec, pytest.raises(CorruptRecording) as err:
            list(rec.events())
        assert err.value.problem == problem
        with open_recording(path, salvage=True) as rec:
            assert len(list(rec.events())) == salvaged, problem
    path.write_bytes(data)
    with open_recording(path, max_chunk_bytes=len(chunks[0]) - 1) as rec, pytest.raises(CorruptRecording) as err:
        list(rec.events())
    assert err.value.problem == f"chunk length {len(chunks[0])} exceeds the maximum of {len(chunks[0]) - 1} bytes"
    path, _ = _v1(tmp_path, [chunks[0], b"\xc1", chunks[2]])  # checksummed but no msgpack: holds no event
    assert verify(path).events == 2


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
