"""The recording format: frozen records, the ``.nkrec`` file, its integrity, JSON Lines, canonical states.

- records (``_model``): what a match saw, as frozen slotted dataclasses: a ``Header``, the handler calls
  (``InitCall`` .. ``TerminateCall``) with their recorded ``Outcome``, a ``CrashMarker``, ``WireEvent``;
- the file (``_nkrec``, ``_codec``, ``_integrity``, ``_sniff``): sequenced, checksummed, sealed msgpack chunks,
  streamed by ``open_recording`` and written by ``RecordingWriter``; every reader reports one ``Integrity``;
- JSON Lines (``_jsonl``): the lossless text form, both ways, streamed;
- canonical states (``_canonical``): one byte string and one 64-bit digest per match state;
- validation at the door (``_validate``) and whole-or-nothing outputs (``_atomic``); ``summarize`` (``_summary``)
  is what ``nakama-replay inspect`` prints.
"""

from recorder.format._atomic import atomic_output
from recorder.format._canonical import (
    canonical_bytes,
    canonicalize,
    digest_bytes,
    flatten,
    leaves,
    mask_pointers,
    state_digest,
)
from recorder.format._codec import decode_chunk, decode_header, encode_chunk, encode_header, iter_events
from recorder.format._integrity import Damage, Integrity
from recorder.format._jsonl import INTEGRITY_TAG, import_jsonl, jsonl_lines, read_jsonl, write_jsonl
from recorder.format._model import (
    CALLBACKS,
    FORMAT_VERSION,
    Broadcast,
    Call,
    CrashMarker,
    Event,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    MessageBatch,
    Nondeterministic,
    Outcome,
    Presence,
    PresenceReason,
    SignalCall,
    TerminateCall,
    WireEvent,
)
from recorder.format._nkrec import (
    ChunkInfo,
    Recording,
    RecordingWriter,
    TruncationWarning,
    incomplete_error,
    open_recording,
    read_events,
    verify,
    write_recording,
)
from recorder.format._summary import Summary, summarize
from recorder.format._validate import parse_json

__all__ = [
    "CALLBACKS",
    "FORMAT_VERSION",
    "INTEGRITY_TAG",
    "Broadcast",
    "Call",
    "ChunkInfo",
    "CrashMarker",
    "Damage",
    "Event",
    "Header",
    "InitCall",
    "Integrity",
    "JoinAttemptCall",
    "JoinCall",
    "LeaveCall",
    "LoopCall",
    "MatchMessage",
    "MessageBatch",
    "Nondeterministic",
    "Outcome",
    "Presence",
    "PresenceReason",
    "Recording",
    "RecordingWriter",
    "SignalCall",
    "Summary",
    "TerminateCall",
    "TruncationWarning",
    "WireEvent",
    "atomic_output",
    "canonical_bytes",
    "canonicalize",
    "decode_chunk",
    "decode_header",
    "digest_bytes",
    "encode_chunk",
    "encode_header",
    "flatten",
    "import_jsonl",
    "incomplete_error",
    "iter_events",
    "jsonl_lines",
    "leaves",
    "mask_pointers",
    "open_recording",
    "parse_json",
    "read_events",
    "read_jsonl",
    "state_digest",
    "summarize",
    "verify",
    "write_jsonl",
    "write_recording",
]
