"""What a file that is not a recording looks like, for the error that says so.

``not_a_recording(path)`` is the problem text of the ``CorruptRecording`` a reader raises when a file does
not start with the ``.nkrec`` signature: an empty file, a file cut off inside the signature, JSON Lines
(`nakama-replay import` makes a recording of it), a Nakama JSON log (`nakama-replay ingest`), gzip, or
something else. It reads at most the first 4 KiB and never raises.
"""

from __future__ import annotations

import json
import os

from recorder.errors import NakamaReplayError

__all__ = ["not_a_recording"]

_SIGNATURE_PREFIX = b"\x89NK"  # every .nkrec format version starts so
_PEEK = 4096


def not_a_recording(path: str | os.PathLike[str], signature_size: int = 8) -> str:
    """Why ``path`` is not an ``.nkrec`` recording, and what to do with it where there is something to do."""
    from recorder.storage import open_input

    try:
        f, size = open_input(path)
        with f:
            head = f.read(_PEEK)
    except (OSError, NakamaReplayError) as exc:
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if size == 0:
        return "the file is empty (0 bytes): no recording was written to it"
    if size < signature_size and (_SIGNATURE_PREFIX.startswith(head) or head.startswith(_SIGNATURE_PREFIX)):
        return (
            f"the file ends after {size} bytes, inside the {signature_size}-byte .nkrec signature: "
            "a recording cut off before its header; nothing in it can be read"
        )
    if head.startswith(b"\x1f\x8b"):
        return "this is a gzip file, not an .nkrec recording (a compressed Nakama log? `nakama-replay ingest` reads it)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        return _json_kind(text)
    shown = head[:signature_size]
    return f"not an .nkrec file (it starts with {shown!r}, not the .nkrec signature)"


def _json_kind(text: bytes) -> str:
    first = text.split(b"\n", 1)[0]
    try:
        obj = json.loads(first)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("kind") == "header":
        return (
            "this is JSON Lines, not an .nkrec recording; make a recording of it with "
            "`nakama-replay import FILE -o OUT.nkrec`"
        )
    if isinstance(obj, dict) and ("level" in obj or "msg" in obj or "log" in obj):
        return "this is a JSON log, not an .nkrec recording; `nakama-replay ingest` turns Nakama logs into recordings"
    return "this is JSON, not an .nkrec recording (JSON Lines interchange files go through `nakama-replay import`)"
