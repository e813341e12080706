"""Typed results of running calls and whole replays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recorder.format import (
    Call,
    CrashMarker,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
)
from replay.report._values import describe_data, jsonable, presence_json, short

__all__ = ["AfterStop", "Crash", "Divergence", "StepResult", "ReplayResult", "describe_call"]


@dataclass(frozen=True, slots=True)
class Crash:
    """A callback that raised (or hung): what Nakama logs as "Stopping match after error from X execution"."""

    callback: str
    tick: int
    error: str
    error_type: str
    traceback: str = ""
    hung: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "callback": self.callback,
            "tick": self.tick,
            "error": self.error,
            "error_type": self.error_type,
            "traceback": self.traceback,
            "hung": self.hung,
        }


@dataclass(frozen=True, slots=True)
class Divergence:
    """One field two accounts of a match give differently: the one record of every comparison.

    ``field`` names what differs: an outcome field (``broadcasts``; the in-process replay against its
    recording, ``diff``'s outcome fields), a state path (``players["a"].hp``; ``diff``'s state paths, with
    ``replay.diff.MISSING`` on the side where it is absent) or ``match_data`` (a live server's delivery against
    the recorded one). ``a`` is the recorded side (or a diff's side a), ``b`` the replayed or live side (side
    b). Where it happened: the call's ``index``, ``tick`` and ``callback``; for a live delivery the ``actor``
    whose stream it is and the delivery's ``index`` in it, with ``why`` saying in words what differs."""

    field: str
    a: Any
    b: Any
    tick: int | None = None
    callback: str | None = None
    index: int | None = None
    actor: str = ""
    why: str = ""

    def describe(self) -> str:
        if self.actor:
            return f"tick {self.tick}, {self.actor}'s {self.field} #{self.index}: {self.why}"
        return (
            f"call #{self.index} {self.callback} at tick {self.tick}: {self.field} "
            f"recorded {short(self.a, 200)}, replayed {short(self.b, 200)}"
        )

    def to_json(self) -> dict[str, Any]:
        """A replay's divergence from its recording (``reproduce --json``'s ``divergences``)."""
        return {
            "index": self.index,
            "tick": self.tick,
            "callback": self.callback,
            "field": self.field,
            "recorded": jsonable(self.a),
            "replayed": jsonable(self.b),
        }


@dataclass(slots=True)
class StepResult:
    """What one call did in the runtime. ``executed`` is False when Nakama would not call the handler
    (the match had stopped, a join of presences already present, a leave of absent ones)."""

    index: int
    call: Call
    executed: bool
    outcome: Outcome | None = None
    state: Any = None
    crash: Crash | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    divergences: list[Divergence] = field(default_factory=list)
    synthetic: bool = False  # made by the runtime because the replayed handler decided differently


@dataclass(frozen=True, slots=True)
class AfterStop:
    """Recorded calls that come after the call where the replayed match stopped (crash or nil state).
    ``nakama_could_make``: True when the recording does not say the match stopped there (its handler went
    on, so Nakama made them); False when it does (Nakama never calls a stopped match's handler)."""

    count: int
    first_callback: str
    first_tick: int
    nakama_could_make: bool
    stop_callback: str
    stop_tick: int

    def describe(self) -> str:
        calls = "call" if self.count == 1 else "calls"
        return (
            f"{self.count} {calls} after the stop in {self.stop_callback} at tick {self.stop_tick} "
            f"(the first: {self.first_callback} at tick {self.first_tick})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first_callback": self.first_callback,
            "first_tick": self.first_tick,
            "nakama_could_make": self.nakama_could_make,
            "stop_callback": self.stop_callback,
            "stop_tick": self.stop_tick,
        }


@dataclass(slots=True)
class ReplayResult:
    """How a replay ended, and whether that is what the recording says happened.

    ``outcome`` is how the replay ran; ``status`` the verdict (``replay.runtime._verdict``): ``reproduced``,
    ``not-reproduced`` or ``incomplete`` (the recording is not complete, so nothing is claimed, unless
    ``allow_incomplete``); ``mismatch`` names what differs from the recording; ``integrity`` is the
    recording's ``recorder.format.Integrity`` (None for events handed in from memory)."""

    outcome: str  # "crashed", "completed", "stopped", "hung"; supervised also "exited", "killed", "out-of-memory"
    reproduced: bool
    verdict: str  # one sentence: why reproduced or not
    ticks_replayed: int
    calls_replayed: int
    crash: Crash | None = None
    recorded_crash: CrashMarker | None = None
    stop_reason: str = ""
    presences: tuple[Presence, ...] = ()
    last_inputs: list[dict[str, Any]] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    divergence_count: int = 0
    logs: list[tuple[str, str]] = field(default_factory=list)
    handler: str = ""
    recording: str = ""
    label: str = ""
    after_stop: AfterStop | None = None  # recorded calls after the replay stopped (not replayed)
    death: Any = None  # replay.runtime.Death: how the supervised handler process ended, when it did not return
    status: str = ""  # "reproduced", "not-reproduced" or "incomplete"
    mismatch: tuple[str, ...] = ()
    integrity: Any = None

    @property
    def exit_code(self) -> int:
        """0 reproduced, 1 not reproduced, 3 incomplete (``replay.runtime._verdict.EXIT_CODES``)."""
        return {"reproduced": 0, "not-reproduced": 1, "incomplete": 3}[
            self.status or ("reproduced" if self.reproduced else "not-reproduced")
        ]

    @property
    def callback(self) -> str | None:
        return self.crash.callback if self.crash else None

    @property
    def tick(self) -> int | None:
        return self.crash.tick if self.crash else None

    def to_json(self) -> dict[str, Any]:
        from replay.runtime._signature import CrashSignature

        c = self.crash
        rc = self.recorded_crash
        signature = CrashSignature.from_result(self) if c is not None else None
        recorded_signature = CrashSignature.from_marker(rc) if rc is not None else None
        return {
            "outcome": self.outcome,
            "status": self.status,
            "reproduced": self.reproduced,
            "verdict": self.verdict,
            "mismatch": list(self.mismatch),
            "callback": c.callback if c else None,
            "tick": c.tick if c else None,
            "error": c.error if c else None,
            "error_type": c.error_type if c else None,
            "traceback": c.traceback if c else None,
            "ticks_replayed": self.ticks_replayed,
            "calls_replayed": self.calls_replayed,
            "calls_after_stop": None if self.after_stop is None else self.after_stop.to_json(),
            "stop_reason": self.stop_reason,
            "recorded_crash": None
            if rc is None
            else {"callback": rc.callback, "tick": rc.tick, "error": rc.error, "error_type": rc.error_type},
            "signature": None if signature is None else signature.to_json(),
            "recorded_signature": None if recorded_signature is None else recorded_signature.to_json(),
            "integrity": None if self.integrity is None else self.integrity.to_json(),
            "presences": [presence_json(p) for p in self.presences],
            "last_inputs": self.last_inputs,
            "divergence_count": self.divergence_count,
            "divergences": [d.to_json() for d in self.divergences],
            "logs": [{"level": lvl, "msg": msg} for lvl, msg in self.logs],
            "handler": self.handler,
            "recording": self.recording,
            "label": self.label,
            "process": None if self.death is None else self.death.to_json(),
        }


def describe_call(call: Call) -> dict[str, Any]:
    """A compact, JSON-ready description of a call's inputs."""
    out: dict[str, Any] = {"callback": call.callback, "tick": call.tick}
    match call:
        case LoopCall(messages=messages):
            out["messages"] = [
                {
                    "sender": f"{m.sender.username or m.sender.user_id} ({m.sender.session_id})",
                    "op_code": m.op_code,
                    "data": describe_data(m.data),
                }
                for m in messages
            ]
        case JoinCall(presences=presences) | LeaveCall(presences=presences):
            out["presences"] = [presence_json(p) for p in presences]
        case JoinAttemptCall(presence=presence, metadata=metadata):
            out["presence"] = presence_json(presence)
            out["metadata"] = jsonable(metadata)
        case SignalCall(data=data):
            out["data"] = data
        case TerminateCall(grace_seconds=grace_seconds):
            out["grace_seconds"] = grace_seconds
        case InitCall(params=params):
            out["params"] = jsonable(params)
    return out
