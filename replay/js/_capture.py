"""Put the capture wrapper (``recorder/capture/modules/nkreplay_capture.js``) into a compiled bundle.

``wrap_bundle(bundle, {"matchInit": "arenaInit", ...}, {"module": "arena"})`` returns the bundle with the
wrapper in front and the one ``nkreplayCapture.wrap(...)`` statement at the end: what a studio deploys to
record its matches (the same as listing the wrapper first in ``tsconfig.json`` and adding the statement).
"""

from __future__ import annotations

import json
import re
from typing import Any

from recorder.capture import MODULES_DIR

__all__ = ["CAPTURE_JS", "wrap_bundle", "wrap_statement"]

CAPTURE_JS = MODULES_DIR / "nkreplay_capture.js"
_IDENT = re.compile(r"^[A-Za-z_$][\w$]*$")


def wrap_statement(callbacks: dict[str, str], options: dict[str, Any] | None = None) -> str:
    """The top-level statement that wraps the global functions ``callbacks`` names (callback -> function)."""
    for name in callbacks.values():
        if not _IDENT.match(name):
            raise ValueError(f"{name!r} is not a JavaScript identifier")
    handlers = ", ".join(f"{cb}: {fn}" for cb, fn in callbacks.items())
    return f"nkreplayCapture.wrap({{ {handlers} }}, {json.dumps(options or {})});\n"


def wrap_bundle(bundle: str, callbacks: dict[str, str], options: dict[str, Any] | None = None) -> str:
    """``bundle`` with the capture wrapper before it and the wrap statement after it."""
    return CAPTURE_JS.read_text(encoding="utf-8") + "\n" + bundle + "\n" + wrap_statement(callbacks, options)
