"""Does a Lua handler depend on ``pairs`` order? Replay twice and compare.

Nakama's Lua (gopher-lua) walks a table's positive integer keys first, then the other keys in insertion
order; the replay runtime (LuaJIT) walks a fixed order of its own (integer keys ascending, then the others
sorted: ``replay/lua/prelude.lua``). Both are deterministic, so a handler whose
decisions depend on that order (picking "the first player", building a list to broadcast from ``pairs``)
replays consistently here and yet may act differently in Nakama. ``check_pairs_order`` replays a
recording with the native order and with a perturbed one (integer keys ascending, the others reversed:
``LuaHandler(pairs_order="reverse")``), state digests on every call, and reports the first call where
the two runs differ. No difference means the recording never exercised an order-dependent path, and is
only said when both runs went to the end of the recording: a run that stops first (a crash or hang in
either, a handler process that died under the supervisor) is the answer instead (``ended_early``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recorder.format import open_recording
from recorder.format._model import CALL_TYPES
from replay.lua._handler import LuaHandler
from replay.report._values import short
from replay.runtime._hang import set_run
from replay.runtime._result import StepResult
from replay.runtime._runtime import MatchRuntime, ReplayOptions, iter_steps

__all__ = ["PairsOrderReport", "check_pairs_order", "died"]

_FIELDS = (
    "accept",
    "reason",
    "tick_rate",
    "label",
    "broadcasts",
    "kicks",
    "label_updates",
    "reply",
    "digest",
    "stopped",
)


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
    ended_early: dict[str, Any] | None = None  # a run stopped before the recording's end: no verdict

    @property
    def negative(self) -> bool:
        """Exit 1: the order matters, or the runs did not reach the end (nothing is said about the rest)."""
        return self.sensitive or self.ended_early is not None

    def describe(self) -> str:
        if self.ended_early is not None:
            e = self.ended_early
            runs = {"native": "the native-order run", "perturbed": "the perturbed-order run", "both": "both runs"}
            left = f"; the {e['calls_left']} recorded calls after it were never run" if e.get("calls_left") else ""
            return (
                f"pairs order: NOT CHECKED TO THE END: {runs[e['run']]} {e['outcome']} in {e['callback']} at tick "
                f"{e['tick']}"
                + (f" ({e['error']})" if e.get("error") else "")
                + left
                + f"; {self.calls_compared} calls compared before it, with no difference"
            )
        if not self.sensitive:
            return (
                f"pairs order: no effect on this recording ({self.calls_compared} calls compared with a "
                "perturbed order); behaviour here should match Nakama's insertion order"
            )
        return (
            f"pairs order CHANGES BEHAVIOUR: call #{self.index} {self.callback} at tick {self.tick}, {self.field}: "
            f"native order {short(self.native)}, perturbed order {short(self.perturbed)}. Nakama (gopher-lua) "
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
            "native": short(self.native),
            "perturbed": short(self.perturbed),
            "ended_early": self.ended_early,
        }


class _Run:
    """One replay of the recording with a ``pairs`` order: its executed steps, then how many recorded calls
    it never reached (``left``) because the match stopped first."""

    def __init__(self, path: str, handler: str, order: str, options: ReplayOptions, run: int) -> None:
        self.path, self.handler, self.order, self.options, self.run = path, handler, order, options, run
        self.left = 0
        self.last: StepResult | None = None

    def __iter__(self) -> Iterator[StepResult]:
        with open_recording(self.path, on_damage="stop") as rec:  # the intact part; the command says what is missing
            set_run(self.run)
            lua = LuaHandler(self.handler, module_path=self.options.module_path, pairs_order=self.order)
            o = self.options
            runtime = MatchRuntime(
                lua, rec.header, seed=o.seed, hang_timeout=o.hang_timeout, env=o.env, digests="always"
            )
            calls = (e for e in rec.events() if isinstance(e, CALL_TYPES))
            try:
                for step in iter_steps(runtime, calls):
                    if step.executed:
                        self.last = step
                        yield step
                        set_run(self.run)  # the other run went in between
                    if runtime.stopped:
                        self.left = sum(1 for _ in calls)
                        return
            finally:
                runtime.close()


def check_pairs_order(
    recording: str | os.PathLike[str], handler: str | os.PathLike[str], options: ReplayOptions | None = None
) -> PairsOrderReport:
    """Replay ``recording`` into the Lua ``handler`` with the native and a perturbed ``pairs`` order."""
    options = options or ReplayOptions()
    native = _Run(str(recording), str(handler), "native", options, 0)
    perturbed = _Run(str(recording), str(handler), "reverse", options, 1)
    compared = 0
    steps_b = iter(perturbed)
    for a, b in zip(native, steps_b):
        compared += 1
        if (a.crash is None) != (b.crash is None) or (a.crash and b.crash and (a.crash.error != b.crash.error)):
            return PairsOrderReport(
                True,
                compared,
                a.index,
                a.call.callback,
                a.call.tick,
                "crash",
                a.crash and a.crash.error,
                b.crash and b.crash.error,
            )
        if a.outcome is None or b.outcome is None:
            continue
        for name in _FIELDS:
            x, y = getattr(a.outcome, name), getattr(b.outcome, name)
            if x != y:
                return PairsOrderReport(True, compared, a.index, a.call.callback, a.call.tick, name, x, y)
    for _ in steps_b:  # zip stopped at the native run's end: let the other one finish counting
        pass
    if native.left or perturbed.left:
        run = "both" if native.left and perturbed.left else "native" if native.left else "perturbed"
        stopped = native if native.left else perturbed
        last = stopped.last
        c = last.crash if last is not None else None
        ended = {
            "run": run,
            "outcome": ("hung" if c.hung else "crashed") if c is not None else "stopped",
            "callback": last.call.callback if last is not None else None,
            "tick": last.call.tick if last is not None else None,
            "error": c.error if c is not None else None,
            "calls_left": stopped.left,
        }
        return PairsOrderReport(False, compared, ended_early=ended)
    return PairsOrderReport(False, compared)


def died(death: Any) -> PairsOrderReport:
    """The report when the supervised handler process hung or died (``replay.runtime.Death``)."""
    ended = {
        "run": "perturbed" if death.run else "native",
        "outcome": death.kind,
        "callback": death.callback,
        "tick": death.tick,
        "error": death.describe(),
        "calls_left": None,
        "process": death.to_json(),
    }
    return PairsOrderReport(False, 0, ended_early=ended)
