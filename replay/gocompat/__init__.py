"""Go's behaviour where Nakama's runtimes show it to a handler: ``fmt`` (``_fmt``), ``encoding/json``
output (``_json``) and syntax errors (``_json_errors``), ``encoding/base64`` and ``encoding/hex`` decoding with
Go's error texts (``_decode``). Shared by the Lua runtime and the JavaScript one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.gocompat._decode import GoDecodeError, go_base64_decode, go_hex_decode
    from replay.gocompat._fmt import go_float_g, go_format, go_number_string
    from replay.gocompat._json_errors import go_json_error

__all__ = [
    "GoDecodeError",
    "go_base64_decode",
    "go_float_g",
    "go_format",
    "go_hex_decode",
    "go_json_error",
    "go_number_string",
]

__getattr__, __dir__ = lazy_exports(__name__)
