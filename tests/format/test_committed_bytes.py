"""The bytes on disk do not move: every committed recording reads back and encodes to the very same bytes.

Recordings made by earlier versions (and by the Lua capture module, the proxy, version-1 writers) must
keep reading, and a recording read and written again must not change: the msgpack codec and the JSON
Lines form are both driven by one field table (``recorder.format._schema``), and a change to that table
that altered a single byte would show here. Three checks per file:

- every frame payload (header and chunks) decodes and re-encodes to its own bytes;
- a version-2 file written again through ``RecordingWriter`` (same chunk boundaries) is the same file;
- its JSON Lines export is the one pinned below (SHA-256 of the export made before the field table
  existed, at commit a9b2a7a), and reading that export back gives the same events and the same text.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from recorder.format import (
    decode_chunk,
    decode_header,
    encode_chunk,
    encode_header,
    import_jsonl,
    jsonl_lines,
    open_recording,
    read_jsonl,
)
from recorder.format._nkrec import MAGIC, RecordingWriter, _pack, _unpack
from tests.common.paths import DATA, FIXTURES, RECORDINGS, ROOT

COMMITTED = sorted([*FIXTURES.rglob("*.nkrec"), *DATA.glob("*.nkrec")])

#: SHA-256 of ``jsonl_lines(header, events)`` for each committed recording (made at a9b2a7a)
EXPORTS = {
    "fixtures/recordings/arena-clean.nkrec": "3037d60b27a09238",
    "fixtures/recordings/arena-lua-reconnect-crash.nkrec": "f5f40af3d50a9221",
    "fixtures/recordings/arena-reconnect-crash.nkrec": "c7cca1d54ff6d242",
    "fixtures/recordings/arena-ts-reconnect-crash.nkrec": "1a4dabdfc97e5153",  # made by fixtures/make_js_recordings.py
    "fixtures/regressions/arena-reconnect-crash.nkrec": "c7cca1d54ff6d242",
    "tests/data/arena-reconnect-crash-v1.nkrec": "1f6392b57d23426d",
    "tests/data/nakama-3.40-proxy-arena-crash.nkrec": "6e4df89095a8af39",
}


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_every_committed_recording_is_pinned() -> None:
    assert sorted(map(_name, COMMITTED)) == sorted(EXPORTS), "a committed recording without a pinned export"


@pytest.mark.parametrize("path", COMMITTED, ids=_name)
def test_frames_encode_back_to_their_bytes(path: Path) -> None:
    with open_recording(path) as rec:
        header_frame = rec._read_frame(len(MAGIC))
        assert header_frame is not None
        assert _pack(encode_header(decode_header(_unpack(header_frame.payload)))) == header_frame.payload
        chunks = 0
        for info, _events in rec.chunks():
            frame = rec._read_frame(info.offset)
            assert frame is not None
            again = _pack(encode_chunk(decode_chunk(_unpack(frame.payload))))
            assert again == frame.payload, f"chunk {info.index} at byte {info.offset} encodes differently"
            chunks += 1
    assert chunks > 0


@pytest.mark.parametrize("path", [p for p in COMMITTED if p.read_bytes().startswith(MAGIC)], ids=_name)
def test_a_recording_written_again_is_the_same_file(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.nkrec"
    with open_recording(path) as rec:
        complete = rec.integrity().complete
        with RecordingWriter(out, rec.header) as w:
            for _info, events in rec.chunks():
                w.extend(events)
                w.flush()  # the same chunk boundaries as the original
            if not complete:
                w.abandon()
    assert out.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("path", COMMITTED, ids=_name)
def test_the_jsonl_export_is_unchanged_and_reads_back(path: Path) -> None:
    with open_recording(path) as rec:
        header, events = rec.header, list(rec.events())
    text = "".join(jsonl_lines(header, events))
    assert _sha(text.encode("utf-8")) == EXPORTS[_name(path)]
    header2, events2 = read_jsonl(text.splitlines(keepends=True), "export.jsonl")
    events2 = list(events2)
    assert header2 == header
    assert events2 == events
    assert "".join(jsonl_lines(header2, events2)) == text


def test_the_example_jsonl_imports_to_the_same_recording(tmp_path: Path) -> None:
    """The hand-written example (defaults left out, keys in its own order) becomes the same .nkrec and
    exports to the same normal form."""
    out = tmp_path / "example.nkrec"
    import_jsonl(RECORDINGS / "example.jsonl", out)
    assert _sha(out.read_bytes()) == "69d2ba63f23ef47a"
    with open_recording(out) as rec:
        text = "".join(jsonl_lines(rec.header, rec.events()))
    assert _sha(text.encode("utf-8")) == "10a271d5bb880974"
