"""The ``.nkrec`` file: sequenced, checksummed, sealed, streamable msgpack chunks.

Layout (format version 2)::

    magic      8 bytes   b"\\x89NKRC2\\r\\n"
    frame*     a header frame, chunk frames, and a seal frame when the writer closed cleanly

    frame      sync     2 bytes  b"NK"
               length   u32 LE   payload bytes
               kind     u8       H header, C chunk, S seal
               flags    u8       0
               seq      u32 LE   sequence number: header 0, chunks 1..N, seal N+1
               count    u32 LE   events in the chunk (0 for header and seal)
               tick     i64 LE   first tick of the chunk's events (-1: none; the seal: the last event's tick)
               body_crc u32 LE   CRC-32 of the payload
               head_crc u32 LE   CRC-32 of the 28 bytes before it
               payload           msgpack: the header map, a ``recorder.format._codec`` chunk ``[presences, events]``,
                                 or the seal ``{"chunks", "events", "last_tick", "digest"}``

The head has its own checksum, so a damaged length field is recognised as damage (and the reader
resynchronises on the next valid frame) rather than taken for a file that ends early. A writer appends
one frame per chunk and flushes it, so a recorder killed mid-write loses at most the chunk in flight and
leaves an *unsealed* file; ``close()`` writes the seal (``recorder.format._integrity`` says what it proves).

Version-1 files (magic ``b"\\x89NKREC\\r\\n"``, frames ``sync | length u32 | crc u32 | tick i64 | payload``
with the CRC over tick and payload, no sequence numbers, no seal) are read as before; their integrity
state is ``legacy``, or ``damaged`` when a chunk is corrupt or cut.

Reading. ``Recording.integrity()`` walks the whole file and returns its one integrity state. Iterating
(``chunks()``, ``events()``) yields the intact prefix; what happens at the first damage is the
``on_damage`` policy: ``"raise"`` (default) raises ``CorruptRecording`` there, except that a file ending
inside its last frame only warns (``TruncationWarning``); ``"stop"`` ends the iteration quietly (the
caller asks ``integrity()`` what was missing: what replays do); ``"skip"`` (``salvage=True``) reads on
past the damage and yields every further intact chunk once. ``strict=True`` checks the integrity when
the file is opened and raises ``IncompleteRecording`` (``TruncatedRecording`` for a cut last frame)
unless it is ``complete``. A length field above ``max_chunk_bytes`` is refused before anything is
allocated.
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

import msgpack
from isal.isal_zlib import crc32  # zlib's CRC-32, the same values, 13x as fast (pyproject)

from recorder.errors import CorruptRecording, IncompleteRecording, InvalidValue, RecordingError, TruncatedRecording
from recorder.format._codec import decode_chunk, decode_header, encode_header, event_tick, iter_events, pack_chunk_into
from recorder.format._integrity import COMPLETE, Damage, Integrity, Ledger, SealDigest, source_gaps
from recorder.format._model import FORMAT_VERSION, Event, Header
from recorder.format._schema import iter_replay, iter_replay_typed, plain_loops, typed_chunk
from recorder.format._sniff import not_a_recording
from recorder.storage import is_url, kind_of, open_input, open_output

__all__ = [
    "MAGIC",
    "MAGIC_V1",
    "FORMAT_VERSION",
    "DEFAULT_MAX_CHUNK_BYTES",
    "TruncationWarning",
    "Damage",
    "ChunkInfo",
    "Integrity",
    "RecordingWriter",
    "Recording",
    "incomplete_error",
    "open_recording",
    "verify",
    "last_tick_hint",
    "write_recording",
    "read_events",
]

MAGIC = b"\x89NKRC2\r\n"
MAGIC_V1 = b"\x89NKREC\r\n"
SYNC = b"NK"
KIND_HEADER, KIND_CHUNK, KIND_SEAL = 0x48, 0x43, 0x53
_KINDS = {KIND_HEADER: "header", KIND_CHUNK: "chunk", KIND_SEAL: "seal"}
_HEAD = struct.Struct("<2sIBBIIqI")
_CRC = struct.Struct("<I")
FRAME_SIZE = _HEAD.size + _CRC.size
_V1_HEAD = struct.Struct("<2sIIq")
V1_FRAME_SIZE = _V1_HEAD.size
_TICK = struct.Struct("<q")
DEFAULT_MAX_CHUNK_BYTES = 64 * 1024 * 1024
_POLICIES = ("raise", "stop", "skip")


class TruncationWarning(UserWarning):
    """A recording ends inside a chunk; every complete chunk before it was read."""


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One chunk frame: ``index`` its position among the file's chunks (1-based), ``seq`` its sequence
    number (version 1: the position), ``count`` its events (-1: not in a version-1 head)."""

    index: int
    offset: int
    tick: int
    length: int
    seq: int = 0
    count: int = -1


@dataclass(slots=True)
class _Frame:
    """An intact frame as read from the file."""

    offset: int
    end: int
    kind: int
    seq: int
    count: int
    tick: int
    length: int
    crc: int
    payload: bytes


class _Truncated(Exception):
    """The file ends inside the frame at ``offset`` (``kind`` its kind when the head is intact)."""

    def __init__(self, offset: int, kind: str = "") -> None:
        self.offset, self.kind = offset, kind


def _pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogatepass")
    return packed


def _typed(payload: bytes) -> Any:
    """``typed_chunk(payload)`` (a chunk of plain loops, or None), the collector paused meanwhile (see ``_unpack``)."""
    if not gc.isenabled():
        return typed_chunk(payload)
    gc.disable()
    try:
        return typed_chunk(payload)
    finally:
        gc.enable()


class _ChunkTree:
    """The msgpack tree of a chunk a replay decoded typed (``typed_chunk``; ``typed`` that), unpacked from its
    bytes the first time the reference decoding needs it (``iter_replay_typed``, ``decode_loop``): indexable as
    the tree, which ``tree()`` returns. Its errors are the reader's (``_corruption``, "chunk payload")."""

    __slots__ = ("typed", "_payload", "_where", "_tree")

    def __init__(self, typed: Any, payload: bytes, where: tuple[str, int, int]) -> None:
        self.typed = typed
        self._payload = payload
        self._where = where
        self._tree: Any = None

    def tree(self) -> Any:
        tree = self._tree
        if tree is None:
            try:
                tree = self._tree = _unpack(self._payload)
            except Exception as exc:
                raise _corruption(exc, *self._where, "chunk payload")  # noqa: B904 - the cause is set there
        return tree

    def __getitem__(self, key: int) -> Any:
        return self.tree()[key]


def _replay_decoder(tree: Any, origin: tuple[str, int, int], cache: dict[tuple[Any, ...], Any] | None) -> Iterator[Any]:
    """A chunk's decoder for a replay: ``iter_replay_typed`` for a chunk decoded typed, else ``iter_replay``."""
    if tree.__class__ is _ChunkTree:
        return iter_replay_typed(tree.typed, tree, origin, cache)
    return iter_replay(tree, origin, cache)


def _run_decoder(tree: Any, origin: tuple[str, int, int], cache: dict[tuple[Any, ...], Any] | None) -> Iterable[Any]:
    """``_replay_decoder``, a chunk decoded typed as one ``PlainLoops`` (``plain_loops``)."""
    if tree.__class__ is _ChunkTree:
        return plain_loops(tree.typed, tree, origin, cache)
    return iter_replay(tree, origin, cache)


def _unpack(payload: bytes) -> Any:
    """The msgpack tree of ``payload``, the collector paused meanwhile (``collector_paused``, written out: this
    runs once per chunk, and the context manager costs a tenth of a small chunk's unpacking)."""
    if not gc.isenabled():
        return msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors="surrogatepass", use_list=True)
    gc.disable()
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors="surrogatepass", use_list=True)
    finally:
        gc.enable()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a chunk's msgpack tree is built or its rows encoded.
    Both are trees (nothing to collect), but tens of thousands of new containers set off collections
    that walk each of them again, now and then with the whole heap: a third of a chunk's decoding time.
    Left as it is when the caller has paused it already."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _frame(kind: int, seq: int, count: int, tick: int, payload: bytes) -> tuple[bytes, int]:
    """A whole version-2 frame and its payload checksum."""
    frame = bytearray(FRAME_SIZE) + payload
    crc = _fill_head(frame, kind, seq, count, tick)
    return bytes(frame), crc


def _fill_head(frame: bytearray, kind: int, seq: int, count: int, tick: int) -> int:
    """Fill in the head of the version-2 frame whose payload follows its first ``FRAME_SIZE`` bytes in
    ``frame``; returns the payload's checksum."""
    crc = crc32(memoryview(frame)[FRAME_SIZE:])
    _HEAD.pack_into(frame, 0, SYNC, len(frame) - FRAME_SIZE, kind, 0, seq, count, tick, crc)
    _CRC.pack_into(frame, _HEAD.size, crc32(memoryview(frame)[: _HEAD.size]))
    return crc


@contextmanager
def _as_corrupt(path: str, offset: int, chunk: int, what: str) -> Iterator[None]:
    """Translate msgpack's and the decoder's exceptions into ``CorruptRecording`` (``_corruption``)."""
    try:
        yield
    except Exception as exc:
        raise _corruption(exc, path, offset, chunk, what)  # noqa: B904 - the cause is set there


def _corruption(exc: Exception, path: str, offset: int, chunk: int, what: str) -> Exception:
    """What a failure ``exc`` while decoding a chunk raises, in one place: a ``RecordingError`` itself, anything
    else as ``CorruptRecording`` (a field check of ``recorder.format._validate`` naming its field; any other
    failure on checksummed bytes means a bad writer: it is kept as the cause)."""
    if isinstance(exc, RecordingError):
        return exc
    if isinstance(exc, InvalidValue):
        err = CorruptRecording(path, offset, chunk, f"{what}: {exc}", field=exc.field)
        err.__cause__ = None  # raise ... from None (setting a cause suppresses the context)
        return err
    err = CorruptRecording(path, offset, chunk, f"{what}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc  # raise ... from exc
    return err


class RecordingWriter:
    """Appends events to a new ``.nkrec`` file, one sequenced, checksummed frame per chunk.

    Events are buffered until ``chunk_events`` are pending or ``flush()`` is called; each flush writes a
    whole frame and flushes the OS buffer (``fsync=True`` also syncs the disk). ``close()`` is the clean
    end: it writes the seal. Leaving a ``with`` block by an exception, or ``abandon()``, writes what is
    pending but no seal, so readers see the file as ``unsealed``.
    """

    def __init__(self, path: str | os.PathLike[str], header: Header, *, chunk_events: int = 256, fsync: bool = False):
        self.path = str(path)
        self.header = header
        self.chunk_events = max(1, chunk_events)
        self.fsync = fsync
        self.events_written = 0
        self.chunks_written = 0
        self.last_tick = -1
        self.sealed = False
        self._pending: list[Event] = []
        self._buffer = bytearray(FRAME_SIZE)  # each chunk's frame is made in it (flush)
        payload = _pack(encode_header(header))
        frame, crc = _frame(KIND_HEADER, 0, 0, -1, payload)
        self._digest = SealDigest(crc)
        self._file: IO[bytes] | None = open_output(self.path)  # a URL: committed on close (recorder.storage)
        self._file.write(MAGIC + frame)
        self._sync()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()

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
        # the payload is packed right after the head, in the buffer the last frame was made in: written in one
        # piece, nothing copied, and no new memory to fault in per chunk (a file's write() does not keep the
        # buffer it is given: io.RawIOBase/BufferedIOBase)
        frame = self._buffer
        with collector_paused():
            pack_chunk_into(events, frame, FRAME_SIZE)
        seq = self.chunks_written + 1
        crc = _fill_head(frame, KIND_CHUNK, seq, len(events), tick)
        self._file.write(frame)
        self._digest.add(seq, len(events), len(frame) - FRAME_SIZE, tick, crc)
        self.events_written += len(events)
        self.chunks_written = seq
        self.last_tick = event_tick(events[-1])
        self._sync()

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        if self.fsync and not is_url(self.path):
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """The clean end: write what is pending, then the seal (chunk and event counts, last tick, digest)."""
        if self._file is None:
            return
        try:
            self.flush()
            seal = {
                "chunks": self.chunks_written,
                "events": self.events_written,
                "last_tick": self.last_tick,
                "digest": self._digest.digest(),
            }
            self._file.write(_frame(KIND_SEAL, self.chunks_written + 1, 0, self.last_tick, _pack(seal))[0])
            self._sync()
            self.sealed = True
        finally:
            self._file.close()
            self._file = None

    def abandon(self) -> None:
        """Stop without a seal (the producer failed): pending events are written if they can be."""
        if self._file is None:
            return
        try:
            with contextlib.suppress(Exception):  # the failure being handled matters more than this one
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
        on_damage: str = "raise",
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    ) -> None:
        if on_damage not in _POLICIES:
            raise ValueError(f"on_damage must be one of {', '.join(_POLICIES)}, got {on_damage!r}")
        self.path = str(path)
        self.strict = strict
        self.on_damage = "skip" if salvage else on_damage
        self.salvage = self.on_damage == "skip"
        self.max_chunk_bytes = max_chunk_bytes
        self._presence_cache: dict[tuple[Any, ...], Any] = {}  # presence rows seen in earlier chunks, built once
        self.events_read = 0
        self._ledger: Ledger | None = None  # of the last walk from the first chunk
        self._walk: Iterator[tuple[str, Any]] | None = None  # that walk, when it has not reached the end
        self._integrity: Integrity | None = None
        self._next = 0
        self._file: IO[bytes]
        self._file, self.size = open_input(self.path)  # a URL streams block by block (recorder.storage)
        try:
            self._open()
            if strict:
                self._require_complete()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        magic = self._file.read(len(MAGIC))
        if magic == MAGIC:
            self.format_version = 2
        elif magic == MAGIC_V1:
            self.format_version = 1
        elif magic[:4] == MAGIC[:4] and len(magic) == len(MAGIC):
            raise CorruptRecording(
                self.path, 0, 0, f"unsupported .nkrec format (magic {magic!r}); it may come from a newer nakama-replay"
            )
        else:
            raise CorruptRecording(self.path, 0, 0, not_a_recording(self.path, len(MAGIC)))
        try:
            frame = self._read_frame(len(MAGIC))
        except (_Truncated, InvalidValue):
            frame = None
        if frame is None or (self.format_version == 2 and (frame.kind != KIND_HEADER or frame.seq != 0)):
            raise CorruptRecording(self.path, len(MAGIC), 0, "the header frame is missing, damaged or cut off")
        with _as_corrupt(self.path, len(MAGIC), 0, "header"):
            self.header: Header = decode_header(_unpack(frame.payload))
        self._header_crc = frame.crc
        self._data_start = frame.end
        self._next = frame.end

    def _require_complete(self) -> None:
        integrity = self.integrity()
        if integrity.state != COMPLETE:
            raise incomplete_error(self.path, integrity)

    # -- context management -------------------------------------------------------------------------
    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def tell(self) -> int:
        """Byte offset of the next frame the reader will read."""
        return self._next

    @property
    def damage(self) -> list[Damage]:
        """Damage found so far by the last walk from the first chunk (``integrity()`` finds all of it)."""
        return list(self._ledger.damage) if self._ledger is not None else []

    # -- frames -------------------------------------------------------------------------------------
    def _read_frame(self, offset: int) -> _Frame | None:
        """The intact frame at ``offset``; None at a clean end of file. Raises ``_Truncated``, or ``InvalidValue`` naming the bad head field."""
        return self._read_v2(offset) if self.format_version == 2 else self._read_v1(offset)

    def _read_v2(self, offset: int) -> _Frame | None:
        f = self._file
        f.seek(offset)
        head = f.read(FRAME_SIZE)
        if not head:
            return None
        if len(head) < FRAME_SIZE:
            if head[: len(SYNC)] != SYNC[: len(head)]:
                raise InvalidValue("sync", f"bad frame sync {head[:2]!r}")
            raise _Truncated(offset)
        sync, length, kind, _, seq, count, tick, crc = _HEAD.unpack_from(head)
        if sync != SYNC:
            raise InvalidValue("sync", f"bad frame sync {sync!r}")
        if crc32(head[: _HEAD.size]) != _CRC.unpack_from(head, _HEAD.size)[0]:
            raise InvalidValue("head_crc", "frame head checksum mismatch")
        if kind not in _KINDS:
            raise InvalidValue("kind", f"unknown frame kind {kind:#04x}")
        if length > self.max_chunk_bytes:
            raise InvalidValue("length", f"chunk length {length} exceeds the maximum of {self.max_chunk_bytes} bytes")
        end = offset + FRAME_SIZE + length
        payload = f.read(length)
        if end > self.size or len(payload) < length:
            raise _Truncated(offset, _KINDS[kind])
        if crc32(payload) != crc:
            raise InvalidValue("body_crc", "checksum mismatch")
        return _Frame(offset, end, kind, seq, count, tick, length, crc, payload)

    def _read_v1(self, offset: int) -> _Frame | None:
        f = self._file
        f.seek(offset)
        head = f.read(V1_FRAME_SIZE)
        if not head:
            return None
        if len(head) < V1_FRAME_SIZE:
            raise _Truncated(offset)
        sync, length, crc, tick = _V1_HEAD.unpack(head)
        if sync != SYNC:
            raise InvalidValue("sync", f"bad frame sync {sync!r}")
        if length > self.max_chunk_bytes:
            raise InvalidValue("length", f"chunk length {length} exceeds the maximum of {self.max_chunk_bytes} bytes")
        end = offset + V1_FRAME_SIZE + length
        if end > self.size:
            raise _Truncated(offset)
        payload = f.read(length)
        if len(payload) < length:
            raise _Truncated(offset)
        if crc32(payload, crc32(head[10:18])) != crc:
            raise InvalidValue("body_crc", "checksum mismatch")
        return _Frame(offset, end, KIND_CHUNK, -1, -1, tick, length, crc, payload)

    def _resync(self, start: int) -> int | None:
        """Offset of the next intact frame after ``start``, or None."""
        f = self._file
        pos = start + 1
        while pos < self.size:
            f.seek(pos)
            window = f.read(1 << 20)
            at = window.find(SYNC)
            while at >= 0:
                candidate = pos + at
                try:
                    if self._read_frame(candidate) is not None:
                        return candidate
                except (_Truncated, InvalidValue):
                    pass
                at = window.find(SYNC, at + 1)
            pos += max(1, len(window) - 1)
        return None

    def _frames(self, offset: int, ledger: Ledger, first_index: int) -> Iterator[tuple[str, Any]]:
        """Walk the frames from ``offset`` to the end of the file, telling ``ledger`` what is found.

        Yields ``("chunk", (ChunkInfo, frame, verdict))`` for each intact chunk (``verdict``: ``prefix``,
        ``salvaged`` or ``duplicate``), ``("damage", None)`` after anything the ledger counted as damage,
        and ends at the end of the file."""
        index = first_index
        while True:
            self._next = offset
            try:
                frame = self._read_frame(offset)
            except _Truncated as cut:
                nxt = self._resync(offset) if self.format_version == 1 else None
                if nxt is None:
                    ledger.truncated(offset, cut.kind)
                    self._next = self.size
                    yield "truncated", offset
                    return
                # version 1 has no head checksum: a length pointing past the end with an intact frame after
                # it is a damaged length field, not a cut file
                ledger.corrupt(offset, "the length field points past the end of the file, yet a valid frame follows")
                yield "damage", None
                offset = nxt
                continue
            except InvalidValue as bad:
                ledger.corrupt(offset, bad.problem)
                yield "damage", None
                nxt = self._resync(offset)
                if nxt is None:
                    self._next = self.size
                    return
                offset = nxt
                continue
            if frame is None:
                return
            offset = frame.end
            self._next = offset
            if frame.kind == KIND_SEAL:
                before = len(ledger.damage)
                try:
                    seal = _unpack(frame.payload)
                except Exception:  # a seal that does not decode is a bad seal
                    seal = None
                ledger.sealed(frame.offset, frame.seq, seal)
                if len(ledger.damage) > before:
                    yield "damage", None
                continue
            if frame.kind == KIND_HEADER:
                ledger.corrupt(frame.offset, "a second header frame")
                yield "damage", None
                continue
            seq, count = (index, _v1_count(frame.payload)) if self.format_version == 1 else (frame.seq, frame.count)
            info = ChunkInfo(index, frame.offset, frame.tick, frame.length, seq, count)
            index += 1
            before = len(ledger.damage)
            verdict = ledger.chunk(frame.offset, frame.end, seq, max(count, 0), frame.length, frame.tick, frame.crc)
            if len(ledger.damage) > before:
                yield "damage", None
            yield "chunk", (info, frame, verdict)

    def _new_walk(
        self, start: int | None, first_index: int, first_seq: int
    ) -> tuple[Ledger, Iterator[tuple[str, Any]]]:
        offset = self._data_start if start is None else start
        ledger = Ledger(
            self.format_version, offset, self.size, self._header_crc, expected=first_seq, partial=start is not None
        )
        walk = self._frames(offset, ledger, first_index)
        if start is None:
            self._ledger, self._walk, self._integrity = ledger, walk, None
        return ledger, walk

    def _payloads(
        self, start: int | None, first_index: int, first_seq: int, typed: bool = False
    ) -> Iterator[tuple[ChunkInfo, Any, int]]:
        """Yield ``(ChunkInfo, msgpack tree, events)`` chunk by chunk, applying the ``on_damage`` policy.
        ``typed``: a chunk of plain loops comes as a ``_ChunkTree`` (``typed_chunk``), decoded by msgspec
        instead of unpacked (the msgpack tree is unpacked only if the reference needs it)."""
        ledger, walk = self._new_walk(start, first_index, first_seq)
        policy = self.on_damage
        for what, item in walk:
            if what == "truncated":
                if policy != "stop":  # "stop": the caller reports the integrity state instead
                    self._warn_truncated(item)
                return
            if what == "damage":
                if policy == "raise":
                    d = ledger.damage[-1]
                    raise CorruptRecording(self.path, d.offset, d.chunk, d.problem)
                if policy == "stop":
                    return
                continue
            info, frame, verdict = item
            if verdict == "duplicate" or (verdict == "salvaged" and policy != "skip"):
                continue
            plain = _typed(frame.payload) if typed else None
            if plain is not None:
                tree: Any = _ChunkTree(plain, frame.payload, (self.path, info.offset, info.seq))
                n = len(plain.events)
            else:
                try:  # _as_corrupt written out: this runs once per chunk
                    tree = _unpack(frame.payload)
                    n = len(tree[1])
                except Exception as exc:
                    raise _corruption(exc, self.path, info.offset, info.seq, "chunk payload")  # noqa: B904
            if info.count >= 0 and n != info.count:
                ledger.count_mismatch(info.offset, info.seq, info.count, n)
                if policy == "raise":
                    raise CorruptRecording(self.path, info.offset, info.seq, ledger.damage[-1].problem)
                if policy == "stop":
                    return
                continue
            yield info, tree, n

    def _warn_truncated(self, offset: int) -> None:
        warnings.warn(
            f"{self.path}: truncated at byte offset {offset}; {self.events_read} events recovered before it",
            TruncationWarning,
            stacklevel=4,
        )

    def chunks(
        self, start: int | None = None, first_chunk: int = 1
    ) -> Generator[tuple[ChunkInfo, list[Event]], None, None]:
        """Yield ``(ChunkInfo, events)`` chunk by chunk from ``start`` (default: the first chunk)."""
        for info, tree, _ in self._payloads(start, first_chunk, first_chunk):
            with _as_corrupt(self.path, info.offset, info.seq, "chunk payload"):
                events = decode_chunk(tree, (self.path, info.offset, info.seq))
            self.events_read += len(events)
            yield info, events

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self, from_tick: int | None = None) -> Iterator[Event]:
        """Every event in order; with ``from_tick``, seek by the tick index and start at that tick."""
        # records are built one at a time as the caller asks (codec.iter_events), so that each is dropped
        # before the next exists; a malformed event raises CorruptRecording when the reader reaches it.
        # No generator of ours between the caller and each chunk's decoder: a layer costs per event
        if from_tick is None:
            return chain.from_iterable(self._chunk_decoders(iter_events, None, 1, 1))
        return self._events_from(from_tick)

    def _events_from(self, from_tick: int) -> Iterator[Event]:
        start, first, seq = None, 1, 1
        for info in self.tick_index():
            if 0 <= info.tick <= from_tick:
                start, first, seq = info.offset, info.index, info.seq
            elif info.tick > from_tick:
                break
        for e in chain.from_iterable(self._chunk_decoders(iter_events, start, first, seq)):
            if event_tick(e) >= from_tick:
                yield e

    def replay_events(self, typed: bool = True) -> Iterator[Any]:
        """``events()`` from the first chunk, for a replay: a plain loop comes as a tuple of its encoded parts
        (``recorder.format._schema.iter_replay``), every other event as its record. A chunk of plain loops
        alone is decoded by msgspec against its types (``iter_replay_typed``: the same parts, its messages
        decoded); ``typed=False``: by the reference alone (what tests hold the typed decoding to)."""
        return chain.from_iterable(self._chunk_decoders(_replay_decoder, None, 1, 1, typed))

    def replay_runs(self) -> Iterator[Any]:
        """``replay_events()``, a chunk of plain loops alone (decoded by msgspec) as one
        ``recorder.format._schema.PlainLoops`` (what ``reproduce`` runs in one loop) instead of its tuples."""
        return chain.from_iterable(self._chunk_decoders(_run_decoder, None, 1, 1, True))

    def _chunk_decoders(
        self, decoder: Callable[..., Iterable[Any]], start: int | None, first: int, seq: int, typed: bool = False
    ) -> Iterator[Iterable[Any]]:
        """The decoder of each chunk in turn; a chunk's events count as read once the next one is asked for."""
        for info, tree, n in self._payloads(start, first, seq, typed):
            yield decoder(tree, (self.path, info.offset, info.seq), self._presence_cache)
            self.events_read += n

    def tick_index(self) -> list[ChunkInfo]:
        """Every chunk frame's offset and first tick, from frame heads alone (no payload read), up to the
        first frame whose head is not intact."""
        out: list[ChunkInfo] = []
        f = self._file
        offset, index = self._data_start, 1
        v2 = self.format_version == 2
        size = FRAME_SIZE if v2 else V1_FRAME_SIZE
        while offset + size <= self.size:
            f.seek(offset)
            head = f.read(size)
            if v2:
                sync, length, kind, _, seq, count, tick, _ = _HEAD.unpack_from(head)
                if sync != SYNC or crc32(head[: _HEAD.size]) != _CRC.unpack_from(head, _HEAD.size)[0]:
                    break
            else:
                sync, length, _, tick = _V1_HEAD.unpack(head)
                kind, seq, count = KIND_CHUNK, index, -1
                if sync != SYNC:
                    break
            if offset + size + length > self.size:
                break
            if kind == KIND_CHUNK:
                out.append(ChunkInfo(index, offset, tick, length, seq, count))
                index += 1
            offset += size + length
        return out

    def last_tick_hint(self, window: int = 1 << 16) -> int | None:
        """The recording's last tick, from its tail alone (for progress displays, never for verdicts): the
        seal's tick when the file ends in an intact seal, else the first tick of the last intact chunk head
        in the last ``window`` bytes (a lower bound: an unsealed file). None when neither is there, and
        for version-1 files (their heads have no checksum)."""
        if self.format_version != 2:
            return None
        start = max(self._data_start, self.size - window)
        self._file.seek(start)
        tail = self._file.read(self.size - start)
        at = tail.rfind(SYNC)
        while at >= 0:  # backwards over frame heads whose checksum holds (b"NK" may also occur in payloads)
            head = tail[at : at + FRAME_SIZE]
            if len(head) == FRAME_SIZE and crc32(head[: _HEAD.size]) == _CRC.unpack_from(head, _HEAD.size)[0]:
                _, length, kind, _, _, _, tick, _ = _HEAD.unpack_from(head)
                if kind == KIND_SEAL and start + at + FRAME_SIZE + length == self.size:
                    return int(tick)
                if kind == KIND_CHUNK and tick >= 0:
                    return int(tick)
            at = tail.rfind(SYNC, 0, at)
        return None

    # -- integrity ------------------------------------------------------------------------------------
    def integrity(self) -> Integrity:
        """The file's one integrity state (``recorder.format._integrity``): walks to the end of the file, past
        where an iteration stopped, without decoding chunks (but the last, to check the seal's last tick)."""
        if self._integrity is not None:
            return self._integrity
        if self._ledger is None or self._walk is None:
            self._new_walk(None, 1, 1)
        ledger, walk = self._ledger, self._walk
        assert ledger is not None and walk is not None
        for _ in walk:
            pass
        if ledger.seal is not None and not ledger.damage:
            self._check_last_tick(ledger)
        self._integrity = ledger.integrity().with_gaps(source_gaps(self.header.tags))
        return self._integrity

    def _check_last_tick(self, ledger: Ledger) -> None:
        assert ledger.seal is not None
        last = -1
        if ledger.last_chunk_offset is not None:
            frame = self._read_frame(ledger.last_chunk_offset)
            assert frame is not None
            with _as_corrupt(self.path, frame.offset, frame.seq, "chunk payload"):
                events = decode_chunk(_unpack(frame.payload), (self.path, frame.offset, frame.seq))
            last = event_tick(events[-1]) if events else -1
        if last != ledger.seal["last_tick"]:
            ledger.last_tick_mismatch(last)


def incomplete_error(path: str, integrity: Integrity) -> IncompleteRecording:
    """The error for a recording that is not complete where it must be (``TruncatedRecording`` when its
    first problem is a cut last frame)."""
    d = integrity.first_damage
    cls = TruncatedRecording if d is not None and d.kind == "truncated" else IncompleteRecording
    return cls(path, integrity)


def _v1_count(payload: bytes) -> int:
    """Events in a version-1 chunk (its head does not say); -1 when the payload does not decode."""
    try:
        return len(_unpack(payload)[1])
    except Exception:  # the reader reports the bad payload when it decodes it
        return -1


def open_recording(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    salvage: bool = False,
    on_damage: str = "raise",
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> Recording:
    """Open a recording for streaming. ``recording.header`` is read at once; events stream on iteration.
    ``strict``: raise ``IncompleteRecording`` now unless the file is ``complete``."""
    if not is_url(path) or str(path).lower().startswith("file://"):
        kind = kind_of(path)
        if kind == "dir":
            raise RecordingError(f"{path}: is a folder, not a recording file")
        if kind is None:
            raise RecordingError(f"{path}: no such recording file")
    try:  # a URL: no separate existence check, one request fewer per recording
        return Recording(path, strict=strict, salvage=salvage, on_damage=on_damage, max_chunk_bytes=max_chunk_bytes)
    except (IsADirectoryError, FileNotFoundError):
        what = "is a folder, not a recording file" if kind_of(path) == "dir" else "no such recording file"
        raise RecordingError(f"{path}: {what}") from None


def last_tick_hint(path: str | os.PathLike[str]) -> int | None:
    """``Recording.last_tick_hint`` of the recording at ``path`` (None when it cannot be opened)."""
    try:
        with open_recording(path) as rec:
            return rec.last_tick_hint()
    except (OSError, RecordingError):
        return None


def verify(path: str | os.PathLike[str], *, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES) -> Integrity:
    """The integrity state of a recording, from one walk over its frames."""
    with open_recording(path, max_chunk_bytes=max_chunk_bytes) as rec:
        return rec.integrity()


def write_recording(path: str | os.PathLike[str], header: Header, events: Iterable[Event], **kw: Any) -> int:
    """Write a whole recording at once, sealed; returns the number of events."""
    with RecordingWriter(path, header, **kw) as w:
        w.extend(events)
    return w.events_written


def read_events(path: str | os.PathLike[str], **kw: Any) -> tuple[Header, list[Event]]:
    """Read a whole (small) recording into memory."""
    with open_recording(path, **kw) as rec:
        return rec.header, list(rec.events())
