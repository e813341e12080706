"""Small helpers shared by command modules."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["print_json", "add_json_flag"]


def add_json_flag(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts instead of text")


def print_json(obj: Any) -> None:
    """One JSON object on stdout, keys in a stable order, bytes as base64."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=_default, ensure_ascii=False)
    sys.stdout.write("\n")


def _default(o: Any) -> Any:
    import base64

    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(bytes(o)).decode("ascii")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
