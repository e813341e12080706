"""Nakama Lua match modules in the replay runtime: the very file a studio deploys, in LuaJIT's
interpreter (lupa.luajit21).

``LuaHandler(path)`` loads a module as Nakama does (``_handler``: loading, callbacks, the dispatcher; ``_nk``:
the ``nk`` functions; ``_convert``: Lua <-> Python values; ``_stdlib``: the Go-written parts of Nakama's Lua
library; ``prelude.lua`` and ``gosort.lua``: the Lua side). ``check_pairs_order`` (``_check``) replays twice
with another ``pairs`` order to find handlers that depend on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.lua._check import PairsOrderReport, check_pairs_order
    from replay.lua._handler import LuaHandler

__all__ = [
    "LuaHandler",
    "PairsOrderReport",
    "check_pairs_order",
]

__getattr__, __dir__ = lazy_exports(__name__)
