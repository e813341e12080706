"""Base64 text of bytes, one spelling for every writer (JSON Lines, Nakama's wire JSON, reports)."""

from __future__ import annotations

import base64

__all__ = ["b64"]


def b64(data: bytes) -> str:
    """Standard base64 with padding, as ASCII text (what protobuf's JSON mapping writes for ``bytes``)."""
    return base64.b64encode(data).decode("ascii")
