"""Is a recording whole? The bookkeeping behind a reader's one integrity state (no I/O here).

A reader walks a file's frames in order and tells a ``Ledger`` what it found: an intact frame (its kind,
sequence number, event count, checksum), a corrupt stretch, or a file that ends inside a frame. The ledger
answers with one ``Integrity``:

- ``complete``: a version-2 file whose chunks run 1..N without a gap, duplicate or reordering, closed by a
  seal whose chunk count, event count, last tick and digest agree with them, with nothing after it;
- ``unsealed``: no seal, but chunks 1..N are intact and in sequence (the writer died or is still writing;
  whatever came after chunk N is missing, and a cut inside chunk N+1 says so with its offset);
- ``damaged``: anything else in a version-2 file (a corrupt chunk, a gap, a duplicate, a chunk out of
  order, a seal that disagrees, bytes after the seal), or a version-1 file with a corrupt or cut chunk;
- ``legacy``: a version-1 file read without damage. Version 1 has no sequence numbers and no seal, so a
  dropped chunk or a cut at a chunk boundary cannot be seen: such a file can never be proven complete;
- ``gapped``: a file that would be ``complete``, but whose header says that what it was made from lost calls
  (tag ``source_gaps``: ``ingest`` of a Nakama log with lost or damaged capture records, or records the
  capture module could not write). The file is whole; the match it tells of is not.

Only ``complete`` supports a verdict of success; the commands treat every other state as incomplete unless
``--allow-incomplete`` says to draw the verdict from the intact part anyway.

The seal digest is BLAKE2b-128 over the header frame's payload checksum and then, per chunk in sequence,
its sequence number, event count, payload length, first tick and payload checksum (``<IIIqI``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMPLETE",
    "GAPPED",
    "SOURCE_GAPS_TAG",
    "source_gaps",
    "UNSEALED",
    "DAMAGED",
    "LEGACY",
    "STATES",
    "Damage",
    "Integrity",
    "Ledger",
    "SealDigest",
]

COMPLETE, GAPPED, UNSEALED, DAMAGED, LEGACY = "complete", "gapped", "unsealed", "damaged", "legacy"
STATES = (COMPLETE, GAPPED, UNSEALED, DAMAGED, LEGACY)

#: the header tag listing, one sentence each, what a recording's source lost before the file was written
SOURCE_GAPS_TAG = "source_gaps"


def source_gaps(tags: Any) -> tuple[str, ...]:
    """What a header's ``source_gaps`` tag says the source lost; a tag that is not a list of strings says that
    something was lost without saying what (a recording never loses that it had gaps)."""
    if not isinstance(tags, dict) or SOURCE_GAPS_TAG not in tags:
        return ()
    value = tags[SOURCE_GAPS_TAG]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return (f"the header's {SOURCE_GAPS_TAG} tag is malformed ({type(value).__name__}), so what was lost is not known",)


_DIGEST_ITEM = struct.Struct("<IIIqI")


@dataclass(frozen=True, slots=True)
class Damage:
    """Where and how a recording is damaged.

    ``kind``: ``truncated`` (the file ends inside a frame), ``corrupt`` (a frame whose checksum, sync or
    head is wrong), ``gap`` (chunks missing from the sequence), ``duplicate``, ``reordered``, ``seal`` (a
    seal that disagrees with the chunks), ``trailing`` (a frame after the seal). ``chunk`` is the sequence
    number concerned (version 1: the chunk's position in the file); ``events_recovered`` the events in the
    intact chunks before it."""

    kind: str
    offset: int
    chunk: int
    problem: str
    events_recovered: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "offset": self.offset,
            "chunk": self.chunk,
            "problem": self.problem,
            "events_recovered": self.events_recovered,
        }


@dataclass(frozen=True, slots=True)
class Integrity:
    """A recording's integrity state and what it rests on (see the module docstring for the states).

    ``chunks``/``events``/``end_offset``: the intact prefix, chunks 1..N in sequence from the start, and the
    byte offset where it ends. ``chunks_after``: intact chunks found after the first damage (``--salvage``
    reads them). ``seal``: what the seal says (chunks, events, last tick), when there is a valid one."""

    state: str
    format_version: int
    chunks: int
    events: int
    end_offset: int
    size: int
    damage: tuple[Damage, ...] = ()
    chunks_after: int = 0
    seal: dict[str, int] | None = None
    gaps: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    @property
    def first_damage(self) -> Damage | None:
        return self.damage[0] if self.damage else None

    def with_gaps(self, gaps: tuple[str, ...]) -> Integrity:
        """This state with what the recording's source lost (``source_gaps``): a ``complete`` file becomes
        ``gapped``; any other state stays what it is and carries them too."""
        if not gaps:
            return self
        return dataclasses.replace(self, gaps=gaps, state=GAPPED if self.state == COMPLETE else self.state)

    def _gaps_text(self) -> str:
        more = {1: ""}.get(len(self.gaps), f"; {len(self.gaps) - 1} more in the header's {SOURCE_GAPS_TAG} tag")
        return f"{self.gaps[0]}{more}"

    def describe(self) -> str:
        """One line for people: the state, then what it rests on or what is missing, with byte offsets."""
        which = {0: "no chunk", 1: "chunk 1"}.get(self.chunks, f"chunks 1..{self.chunks}")
        prefix = f"{which} ({_n(self.events, 'event')}, up to byte offset {self.end_offset})"
        if self.state == COMPLETE:
            assert self.seal is not None
            return (
                f"complete: sealed after {_n(self.seal['chunks'], 'chunk')}, {_n(self.seal['events'], 'event')}, "
                f"last tick {self.seal['last_tick']}"
            )
        if self.state == GAPPED:
            assert self.seal is not None
            return (
                f"gapped: the file is sealed and intact ({_n(self.seal['chunks'], 'chunk')}, "
                f"{_n(self.seal['events'], 'event')}, last tick {self.seal['last_tick']}), but the log it was made "
                f"from lost calls: {self._gaps_text()}"
            )
        if self.state == LEGACY:
            return (
                f"legacy: a version-1 recording ({_n(self.events, 'event')} in {_n(self.chunks, 'chunk')}, read "
                "without damage) has no sequence numbers and no seal, so its completeness cannot be proven"
            )
        if self.state == UNSEALED:
            tail = ""
            d = self.first_damage
            if d is not None:
                tail = f"; {d.problem} (byte offset {d.offset})"
            return (
                f"unsealed: the writer did not finish (no seal); {prefix} intact, whatever came after is missing{tail}"
            )
        d = self.first_damage
        assert d is not None
        more = {1: "", 2: "; 1 more problem"}.get(len(self.damage), f"; {len(self.damage) - 1} more problems")
        after = (
            f"; {_n(self.chunks_after, 'intact chunk')} after it (--salvage reads them)" if self.chunks_after else ""
        )
        return f"damaged: {d.kind} at byte offset {d.offset} (chunk {d.chunk}): {d.problem}; {prefix} intact before it{after}{more}"

    def missing(self) -> str:
        """What a reader of the intact prefix did not get, as a noun phrase (empty when complete)."""
        if self.state == COMPLETE:
            return ""
        if self.state == GAPPED:
            return f"the calls the log it was made from lost ({self._gaps_text()})"
        if self.state == LEGACY:
            return "any chunk a version-1 file may have lost (it has no sequence numbers or seal to show one)"
        d = self.first_damage
        if self.state == UNSEALED:
            cut = f"; {d.problem}" if d is not None else ""
            after = f"after chunk {self.chunks}" if self.chunks else "after the header"
            return f"whatever the writer recorded {after} (byte offset {self.end_offset}{cut})"
        assert d is not None
        return f"everything from byte offset {d.offset} on ({d.kind}: {d.problem})"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "complete": self.complete,
            "format_version": self.format_version,
            "chunks": self.chunks,
            "events": self.events,
            "end_offset": self.end_offset,
            "size": self.size,
            "chunks_after": self.chunks_after,
            "seal": self.seal,
            "damage": [d.to_json() for d in self.damage],
            "gaps": list(self.gaps),
            "summary": self.describe(),
        }


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class SealDigest:
    """The running digest a seal carries (see the module docstring)."""

    def __init__(self, header_crc: int) -> None:
        self._h = hashlib.blake2b(digest_size=16)
        self._h.update(struct.pack("<I", header_crc))

    def add(self, seq: int, count: int, length: int, tick: int, crc: int) -> None:
        self._h.update(_DIGEST_ITEM.pack(seq, count, length, tick, crc))

    def digest(self) -> bytes:
        return self._h.digest()


@dataclass(slots=True)
class Ledger:
    """Builds an ``Integrity`` from the frames of one walk over a file, in file order (version-1 files pass
    each chunk's position in the file as its ``seq``)."""

    format_version: int
    data_start: int
    size: int
    header_crc: int = 0
    expected: int = 1  # next sequence number of the intact prefix
    chunks: int = 0
    events: int = 0
    end_offset: int = 0
    chunks_after: int = 0
    damage: list[Damage] = field(default_factory=list)
    missing: set[int] = field(default_factory=set)
    seen_after: set[int] = field(default_factory=set)
    seal: dict[str, int] | None = None
    seal_offset: int | None = None
    last_chunk_offset: int | None = None
    partial: bool = False  # a walk that started after the first chunk (a seek): the seal cannot be checked
    _digest: SealDigest | None = None
    _resynced: bool = False  # the last thing found was a corrupt stretch: the gap after it is that stretch

    def __post_init__(self) -> None:
        self.end_offset = self.data_start
        self._digest = SealDigest(self.header_crc)

    @property
    def damaged(self) -> bool:
        return bool(self.damage)

    def _hurt(self, kind: str, offset: int, chunk: int, problem: str) -> None:
        self.damage.append(Damage(kind, offset, chunk, problem, self.events))

    # -- what the walk found ------------------------------------------------------------------------------
    def chunk(self, offset: int, end: int, seq: int, count: int, length: int, tick: int, crc: int) -> str:
        """An intact chunk frame at ``offset`` (ending at ``end``): ``prefix`` when it extends the intact
        prefix, ``salvaged`` for a chunk after damage (or out of order) that salvage may use, ``duplicate``
        for a sequence number seen before."""
        resynced, self._resynced = self._resynced, False
        if self.seal is not None:
            self._hurt("trailing", offset, seq, "a chunk after the seal")
            return "duplicate" if seq < self.expected or seq in self.seen_after else "salvaged"
        if not self.damage and seq == self.expected:
            self.expected += 1
            self.chunks += 1
            self.events += count
            self.end_offset = end
            self.last_chunk_offset = offset
            assert self._digest is not None
            self._digest.add(seq, count, length, tick, crc)
            return "prefix"
        # after damage, or out of sequence: count what salvage would find, and say what is wrong
        if seq in self.missing:
            self.missing.discard(seq)
            self._hurt("reordered", offset, seq, f"chunk {seq} comes after chunk {self.expected - 1}")
        elif seq < self.expected or seq in self.seen_after:
            self._hurt("duplicate", offset, seq, f"chunk {seq} appears again")
            return "duplicate"
        elif seq > self.expected:
            gap = range(self.expected, seq)
            self.missing.update(gap)
            if not resynced:
                what = f"chunk {gap[0]}" if len(gap) == 1 else f"chunks {gap[0]}..{gap[-1]}"
                self._hurt("gap", offset, seq, f"{what} missing before chunk {seq}")
            self.expected = seq + 1
        else:  # seq == expected after earlier damage
            self.expected += 1
        self.seen_after.add(seq)
        self.chunks_after += 1
        return "salvaged"

    def corrupt(self, offset: int, problem: str) -> None:
        """A stretch from ``offset`` that is not a valid frame (the walk resynchronises after it)."""
        self._hurt("corrupt", offset, self.expected, problem)
        self._resynced = True

    def truncated(self, offset: int, kind: str = "") -> None:
        """The file ends inside the frame at ``offset`` (``kind``: ``chunk`` or ``seal`` when its head was
        intact, else "")."""
        if self.seal is not None:
            self._hurt("trailing", offset, self.expected, "bytes after the seal (a cut frame)")
            return
        inside = {"seal": "the seal", "chunk": f"chunk {self.expected}"}.get(kind, f"frame {self.expected}")
        self._hurt("truncated", offset, self.expected, f"the file ends inside {inside}")

    def sealed(self, offset: int, seq: int, payload: Any) -> None:
        """A seal frame (already checksummed); ``payload`` is its decoded map."""
        if self.seal is not None:
            self._hurt("trailing", offset, seq, "a second seal")
            return
        problem = self._seal_problem(seq, payload)
        if problem:
            self._hurt("seal", offset, seq, problem)
            return
        self.seal = {k: payload[k] for k in ("chunks", "events", "last_tick")}
        self.seal_offset = offset

    def _seal_problem(self, seq: int, payload: Any) -> str:
        if not isinstance(payload, dict):
            return "the seal is not a map"
        values = {k: payload.get(k) for k in ("chunks", "events", "last_tick")}
        if any(type(v) is not int for v in values.values()) or type(payload.get("digest")) is not bytes:
            return f"the seal's fields are malformed: {payload!r}"[:200]
        if self.damage or self.partial:
            return ""  # already damaged, or not walked from the start: kept to report what the writer wrote
        if seq != self.expected:
            return f"the seal has sequence number {seq}, expected {self.expected}"
        if values["chunks"] != self.chunks:
            return f"the seal counts {values['chunks']} chunks, the file holds {self.chunks}"
        if values["events"] != self.events:
            return f"the seal counts {values['events']} events, the chunks hold {self.events}"
        assert self._digest is not None
        if payload["digest"] != self._digest.digest():
            return "the seal's digest does not match the chunks' checksums"
        return ""

    def last_tick_mismatch(self, actual: int) -> None:
        """The last event's tick, read from the last chunk, disagrees with the seal's."""
        assert self.seal is not None and self.seal_offset is not None
        self._hurt(
            "seal",
            self.seal_offset,
            self.expected,
            f"the seal's last tick is {self.seal['last_tick']}, the last event's is {actual}",
        )

    def count_mismatch(self, offset: int, seq: int, declared: int, actual: int) -> None:
        """A chunk whose decoded events disagree with the count in its frame head."""
        self._hurt("corrupt", offset, seq, f"the frame head counts {declared} events, the chunk holds {actual}")

    # -- the answer -----------------------------------------------------------------------------------------
    def integrity(self) -> Integrity:
        if self.format_version == 1:
            state = DAMAGED if self.damage else LEGACY
        elif self.seal is not None and not self.damage:
            state = COMPLETE
        elif all(d.kind == "truncated" for d in self.damage):  # no damage, or only a cut last frame
            state = UNSEALED
        else:
            state = DAMAGED
        return Integrity(
            state,
            self.format_version,
            self.chunks,
            self.events,
            self.end_offset,
            self.size,
            tuple(self.damage),
            self.chunks_after,
            dict(self.seal) if self.seal is not None else None,
        )
