"""The ``.nkrec`` file: crash-safe, checksummed, streamable msgpack chunks.

Layout::

    magic      8 bytes   b"\\x89NKREC\\r\\n"
    frame*     the first frame holds the header, every later one a chunk of events

    frame      sync   2 bytes  b"NK"
               length u32 LE   payload bytes
               crc    u32 LE   CRC-32 of the tick field and the payload
               tick   i64 LE   first tick of the chunk's events (-1: none, e.g. header or wire events)
               payload         msgpack: the header map, or ``recorder.codec`` chunk ``[presences, events]``

A writer appends one frame per chunk and flushes it, so a recorder killed mid-write loses at most the
chunk in flight. The reader streams frame by frame; a file that ends inside a frame yields every complete
chunk and then warns (``TruncationWarning``) or, in strict mode, raises ``TruncatedRecording``. A checksum
or frame error raises ``CorruptRecording`` with the byte offset and chunk number, unless ``salvage`` is
set, in which case the reader resynchronises on the next valid frame and records the damage. A length
field above ``max_chunk_bytes`` is refused before anything is allocated.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgpack

from recorder.codec import decode_chunk, decode_header, encode_chunk, encode_header, event_tick, iter_events
from recorder.errors import CorruptRecording, InvalidValue, RecordingError, TruncatedRecording
from recorder.model import Event, Header
from recorder.sniff import not_a_recording

__all__ = [
    "MAGIC",
    "DEFAULT_MAX_CHUNK_BYTES",
    "TruncationWarning",
    "Damage",
    "ChunkInfo",
    "RecordingWriter",
    "Recording",
    "open_recording",
    "write_recording",
    "read_events",
]

MAGIC = b"\x89NKREC\r\n"
SYNC = b"NK"
_FRAME = struct.Struct("<2sIIq")
FRAME_SIZE = _FRAME.size
_TICK = struct.Struct("<q")
DEFAULT_MAX_CHUNK_BYTES = 64 * 1024 * 1024


class TruncationWarning(UserWarning):
    """A recording ends inside a chunk; every complete chunk before it was read."""


@dataclass(frozen=True, slots=True)
class Damage:
    """Where and how a recording is damaged."""

    kind: str  # "truncated" or "corrupt"
    offset: int
    chunk: int
    problem: str
    events_recovered: int


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One frame as the tick index sees it."""

    index: int
    offset: int
    tick: int
    length: int


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogatepass")


def _unpack(payload: bytes) -> Any:
    return msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors="surrogatepass", use_list=True)


def _frame(payload: bytes, tick: int) -> bytes:
    tick_bytes = _TICK.pack(tick)
    crc = zlib.crc32(payload, zlib.crc32(tick_bytes))
    return _FRAME.pack(SYNC, len(payload), crc, tick) + payload


@contextmanager
def _as_corrupt(path: str, offset: int, chunk: int, what: str) -> Iterator[None]:
    """Translate msgpack's and the decoder's exceptions into ``CorruptRecording`` in one place."""
    try:
        yield
    except RecordingError:
        raise
    except InvalidValue as exc:  # a field check of recorder.validate
        raise CorruptRecording(path, offset, chunk, f"{what}: {exc}", field=exc.field) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on checksummed bytes means a bad writer
        raise CorruptRecording(path, offset, chunk, f"{what}: {type(exc).__name__}: {exc}") from exc


class RecordingWriter:
    """Appends events to a new ``.nkrec`` file, one checksummed frame per chunk.

    Events are buffered until ``chunk_events`` are pending or ``flush()`` is called; each flush writes a
    whole frame and flushes the OS buffer (``fsync=True`` also syncs the disk).
    """

    def __init__(self, path: str | os.PathLike[str], header: Header, *, chunk_events: int = 256, fsync: bool = False):
        self.path = str(path)
        self.header = header
        self.chunk_events = max(1, chunk_events)
        self.fsync = fsync
        self.events_written = 0
        self.chunks_written = 0
        self._pending: list[Event] = []
        self._file: IO[bytes] | None = open(self.path, "wb")
        self._file.write(MAGIC + _frame(_pack(encode_header(header)), -1))
        self._sync()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, event: Event) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        self._pending.append(event)
        if len(self._pending) >= self.chunk_events:
            self.flush()

    def extend(self, events: Iterable[Event]) -> None:
        for e in events:
            self.append(e)

    def flush(self) -> None:
        """Write pending events as one frame and push it to the OS."""
        if self._file is None or not self._pending:
            return
        events, self._pending = self._pending, []
        tick = next((t for t in map(event_tick, events) if t >= 0), -1)
        self._file.write(_frame(_pack(encode_chunk(events)), tick))
        self.events_written += len(events)
        self.chunks_written += 1
        self._sync()

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None


class Recording:
    """A streaming reader over one ``.nkrec`` file. Use ``open_recording``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        strict: bool = False,
        salvage: bool = False,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    ) -> None:
        self.path = str(path)
        self.strict = strict
        self.salvage = salvage
        self.max_chunk_bytes = max_chunk_bytes
        self.damage: list[Damage] = []
        self._presence_cache: dict[tuple, Any] = {}  # presence rows seen in earlier chunks, built once
        self.events_read = 0
        self._file: IO[bytes] = open(self.path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size
        try:
            magic = self._file.read(len(MAGIC))
            if magic != MAGIC:
                raise CorruptRecording(self.path, 0, 0, not_a_recording(self.path, len(MAGIC)))
            try:
                frame = self._read_frame(len(MAGIC), 0)
            except _Truncated:
                frame = None
            if frame is None:
                raise CorruptRecording(self.path, len(MAGIC), 0, "the header frame is missing or cut off")
            _, payload, _ = frame
            with _as_corrupt(self.path, len(MAGIC), 0, "header"):
                self.header: Header = decode_header(_unpack(payload))
            self._data_start = self._file.tell()
        except BaseException:
            self._file.close()
            raise

    # -- context management -------------------------------------------------------------------------
    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def tell(self) -> int:
        """Byte offset of the next frame the reader will read."""
        return self._file.tell()

    # -- frames -------------------------------------------------------------------------------------
    def _read_frame(self, offset: int, chunk: int) -> tuple[int, bytes, int] | None:
        """Read the frame at ``offset``. None at a clean end of file. Raises on damage."""
        f = self._file
        f.seek(offset)
        head = f.read(FRAME_SIZE)
        if not head:
            return None
        if len(head) < FRAME_SIZE:
            raise _Truncated(offset, chunk)
        sync, length, crc, tick = _FRAME.unpack(head)
        if sync != SYNC:
            raise CorruptRecording(self.path, offset, chunk, f"bad frame sync {sync!r}")
        if length > self.max_chunk_bytes:
            raise CorruptRecording(
                self.path, offset, chunk, f"chunk length {length} exceeds the maximum of {self.max_chunk_bytes} bytes"
            )
        if offset + FRAME_SIZE + length > self.size:
            raise _Truncated(offset, chunk)
        payload = f.read(length)
        if len(payload) < length:
            raise _Truncated(offset, chunk)
        if zlib.crc32(payload, zlib.crc32(head[10:18])) != crc:
            raise CorruptRecording(self.path, offset, chunk, "checksum mismatch")
        return tick, payload, offset + FRAME_SIZE + length

    def _resync(self, start: int) -> int | None:
        """Offset of the next frame after ``start`` whose checksum holds, or None."""
        f = self._file
        pos = start + 1
        while pos < self.size:
            f.seek(pos)
            window = f.read(1 << 20)
            at = window.find(SYNC)
            while at >= 0:
                candidate = pos + at
                try:
                    if self._read_frame(candidate, -1) is not None:
                        return candidate
                except (CorruptRecording, _Truncated):
                    pass
                at = window.find(SYNC, at + 1)
            pos += max(1, len(window) - 1)
        return None

    def _payloads(self, start: int | None, chunk: int) -> Iterator[tuple[ChunkInfo, Any]]:
        """Yield ``(ChunkInfo, msgpack tree)`` frame by frame: checksums, truncation and salvage live here."""
        offset = self._data_start if start is None else start
        while True:
            try:
                frame = self._read_frame(offset, chunk)
            except _Truncated:
                self._report_truncation(offset, chunk)
                return
            except CorruptRecording as exc:
                if not self.salvage:
                    raise
                self.damage.append(Damage("corrupt", offset, chunk, exc.problem, self.events_read))
                nxt = self._resync(offset)
                if nxt is None:
                    return
                offset, chunk = nxt, chunk + 1
                continue
            if frame is None:
                return
            tick, payload, end = frame
            with _as_corrupt(self.path, offset, chunk, "chunk payload"):
                tree = _unpack(payload)
            self._file.seek(end)
            yield ChunkInfo(chunk, offset, tick, end - offset - FRAME_SIZE), tree
            offset, chunk = end, chunk + 1

    def chunks(self, start: int | None = None, first_chunk: int = 1) -> Iterator[tuple[ChunkInfo, list[Event]]]:
        """Yield ``(ChunkInfo, events)`` frame by frame from ``start`` (default: the first chunk)."""
        for info, tree in self._payloads(start, first_chunk):
            with _as_corrupt(self.path, info.offset, info.index, "chunk payload"):
                events = decode_chunk(tree, (self.path, info.offset, info.index))
            self.events_read += len(events)
            yield info, events

    def _report_truncation(self, offset: int, chunk: int) -> None:
        if self.strict:
            raise TruncatedRecording(self.path, offset, chunk, self.events_read)
        self.damage.append(Damage("truncated", offset, chunk, "file ends inside a chunk", self.events_read))
        warnings.warn(
            f"{self.path}: truncated at byte offset {offset} (chunk {chunk}); "
            f"{self.events_read} events recovered before it",
            TruncationWarning,
            stacklevel=3,
        )

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self, from_tick: int | None = None) -> Iterator[Event]:
        """Every event in order; with ``from_tick``, seek by the tick index and start at that tick."""
        start, first = None, 1
        if from_tick is not None:
            for info in self.tick_index():
                if 0 <= info.tick <= from_tick:
                    start, first = info.offset, info.index
                elif info.tick > from_tick:
                    break
        # records are built one at a time as the caller asks (codec.iter_events), so that each is dropped
        # before the next exists; a malformed event raises CorruptRecording when the reader reaches it
        for info, tree in self._payloads(start, first):
            events = iter_events(tree, (self.path, info.offset, info.index), self._presence_cache)
            if from_tick is None:
                yield from events
            else:
                for e in events:
                    if event_tick(e) >= from_tick:
                        yield e
            self.events_read += len(tree[1])

    def tick_index(self) -> list[ChunkInfo]:
        """Every complete frame's offset and first tick, read from frame heads alone (no payload decode)."""
        out: list[ChunkInfo] = []
        f = self._file
        here = f.tell()
        offset, chunk = self._data_start, 1
        try:
            while offset + FRAME_SIZE <= self.size:
                f.seek(offset)
                sync, length, _, tick = _FRAME.unpack(f.read(FRAME_SIZE))
                if sync != SYNC or offset + FRAME_SIZE + length > self.size:
                    break
                out.append(ChunkInfo(chunk, offset, tick, length))
                offset, chunk = offset + FRAME_SIZE + length, chunk + 1
        finally:
            f.seek(here)
        return out


class _Truncated(Exception):
    def __init__(self, offset: int, chunk: int) -> None:
        self.offset, self.chunk = offset, chunk


def open_recording(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    salvage: bool = False,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> Recording:
    """Open a recording for streaming. ``recording.header`` is read at once; events stream on iteration."""
    if Path(path).is_dir():
        raise RecordingError(f"{path}: is a folder, not a recording file")
    if not Path(path).is_file():
        raise RecordingError(f"{path}: no such recording file")
    return Recording(path, strict=strict, salvage=salvage, max_chunk_bytes=max_chunk_bytes)


def write_recording(path: str | os.PathLike[str], header: Header, events: Iterable[Event], **kw: Any) -> int:
    """Write a whole recording at once; returns the number of events."""
    with RecordingWriter(path, header, **kw) as w:
        w.extend(events)
    return w.events_written


def read_events(path: str | os.PathLike[str], **kw: Any) -> tuple[Header, list[Event]]:
    """Read a whole (small) recording into memory."""
    with open_recording(path, **kw) as rec:
        return rec.header, list(rec.events())
