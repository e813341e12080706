"""Does a Lua handler depend on ``pairs`` order? Replay twice and compare.

Nakama's Lua (gopher-lua) walks a table's positive integer keys first, then the other keys in insertion
order; the replay runtime's PUC Lua walks its hash layout. Both are deterministic, so a handler whose
decisions depend on that order (picking "the first player", building a list to broadcast from ``pairs``)
replays consistently here and yet may act differently in Nakama. ``check_pairs_order`` replays a
recording with the native order and with a perturbed one (integer keys ascending, the others reversed:
``LuaHandler(pairs_order="reverse")``), state digests on every call, and reports the first call where
the two runs differ. No difference means the recording never exercised an order-dependent path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recorder.nkrec import open_recording
from replay.lua_handler import LuaHandler
from replay.result import StepResult
from replay.runtime import MatchRuntime, ReplayOptions, iter_steps

__all__ = ["PairsOrderReport", "check_pairs_order"]

_FIELDS = ("accept", "reason", "tick_rate", "label", "broadcasts", "kicks", "label_updates", "reply", "digest", "stopped")


@dataclass(frozen=True, slots=True)
class PairsOrderReport:
    """``sensitive`` is True when the perturbed run differs; then where and how."""

    sensitive: bool
    calls_compared: int
    index: int | None = None
    callback: str | None = None
    tick: int | None = None
    field: str | None = None
    native: Any = None
    perturbed: Any = None

    def describe(self) -> str:
        if not self.sensitive:
            return (
                f"pairs order: no effect on this recording ({self.calls_compared} calls compared with a "
                "perturbed order); behaviour here should match Nakama's insertion order"
            )
        return (
            f"pairs order CHANGES BEHAVIOUR: call #{self.index} {self.callback} at tick {self.tick}, {self.field}: "
            f"native order {_short(self.native)}, perturbed order {_short(self.perturbed)}. Nakama (gopher-lua) "
            "walks tables in insertion order, so production may have acted differently from this replay; "
            "iterate over sorted keys or an array where the order matters."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sensitive": self.sensitive,
            "calls_compared": self.calls_compared,
            "index": self.index,
            "callback": self.callback,
            "tick": self.tick,
            "field": self.field,
            "native": _short(self.native),
            "perturbed": _short(self.perturbed),
        }


def _short(v: Any, limit: int = 160) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


def _steps(path: str, handler: str, order: str, options: ReplayOptions) -> Iterator[StepResult]:
    with open_recording(path) as rec:
        lua = LuaHandler(handler, module_path=options.module_path, pairs_order=order)
        runtime = MatchRuntime(lua, rec.header, seed=options.seed, hang_timeout=options.hang_timeout, env=options.env, digests="always")
        try:
            calls = (e for e in rec.events() if hasattr(e, "callback") and not getattr(e, "kind", "") == "crash")
            for step in iter_steps(runtime, calls):
                if step.executed:
                    yield step
                if runtime.stopped:
                    return
        finally:
            runtime.close()


def check_pairs_order(recording: str | os.PathLike[str], handler: str | os.PathLike[str], options: ReplayOptions | None = None) -> PairsOrderReport:
    """Replay ``recording`` into the Lua ``handler`` with the native and a perturbed ``pairs`` order."""
    options = options or ReplayOptions()
    native = _steps(str(recording), str(handler), "native", options)
    perturbed = _steps(str(recording), str(handler), "reverse", options)
    compared = 0
    for a, b in zip(native, perturbed):
        compared += 1
        if (a.crash is None) != (b.crash is None) or (a.crash and b.crash and (a.crash.error != b.crash.error)):
            return PairsOrderReport(True, compared, a.index, a.call.callback, a.call.tick, "crash", a.crash and a.crash.error, b.crash and b.crash.error)
        if a.outcome is None or b.outcome is None:
            continue
        for name in _FIELDS:
            x, y = getattr(a.outcome, name), getattr(b.outcome, name)
            if x != y:
                return PairsOrderReport(True, compared, a.index, a.call.callback, a.call.tick, name, x, y)
    return PairsOrderReport(False, compared)
