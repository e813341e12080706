"""The first call where a match goes wrong: a replay against its recording, two handler versions, or a
handler against itself (a sync test).

Three modes, one answer (``MatchDiff``): the first divergent call (index, tick, callback, its inputs), the
outcome fields that differ there (join verdict, broadcasts, kicks, label updates, reply, stop, crash), and
the differing state paths with both values (``replay.diff._state``).

- ``diff_recorded``: replay the recording into a handler and compare each call with what the recording
  holds: the outcomes and the state digest of every call, and at calls with a state snapshot, the fields.
  A crash the recording also has (same callback, tick and error class) is not a divergence.
- ``diff_against``: replay the same recorded inputs into handlers A and B and compare the two runs call by
  call: the states (numba scan over the encoded states), the outcomes and crashes.
- ``diff_determinism``: GGPO's sync test. Every call runs twice from a deep copy of everything it can change
  (state, presences, label, the ``nk`` sources, storage), and the two results must be equal: a handler that
  reads the wall clock or the global ``random`` module is caught at its first call. Python's set order is
  the same for both runs inside one process, so the whole replay also runs in two supervised handler
  processes (``replay.runtime._supervisor``) with different ``PYTHONHASHSEED`` values and their runs are compared:
  that catches iteration over sets.

No mode draws a verdict over fewer calls than the recording holds: when a run stops before the end (a
crash or hang in either run, a nil state, a handler process that died) and no divergence came first, the
answer says which run stopped, where and how (``MatchDiff.ended_early``; exit 1 on the command line).

Every mode reads the recording up to its first damage. A recording that is not complete
(``recorder.format._integrity``) gives status ``incomplete`` whatever the intact part showed (a divergence found
there is reported, but no verdict is drawn), unless ``ReplayOptions.allow_incomplete`` (``judge``).

In text and JSON, side ``a`` is the recording / handler A / the first run (or hash seed 1), side ``b`` the
replay / handler B / the second run (or hash seed 2).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import msgpack

from recorder.errors import NakamaReplayError
from recorder.format import Call, Header, Outcome, WireEvent, canonical_bytes, open_recording, verify
from recorder.format._model import CALL_TYPES
from replay.diff import _kernels as kernels
from replay.diff._state import FieldDiff, Tolerance, field_diff, first_divergence, path_json
from replay.report._values import jsonable
from replay.runtime._hang import begin_pass, begin_run, forward_progress
from replay.runtime._result import Divergence, StepResult, describe_call
from replay.runtime._runtime import MatchRuntime, ReplayOptions, iter_steps, reproduce, resolve_handler
from replay.runtime._verdict import crash_mismatch

__all__ = ["MatchDiff", "diff_recorded", "diff_against", "diff_determinism"]


#: Outcome fields compared between two runs, in the order the report lists them.
OUTCOME_FIELDS = (
    "accept",
    "reason",
    "tick_rate",
    "label",
    "broadcasts",
    "kicks",
    "label_updates",
    "reply",
    "stopped",
    "crash",
)


def _outcome_json(d: Divergence) -> dict[str, Any]:
    return {"field": d.field, "a": jsonable(d.a), "b": jsonable(d.b)}


@dataclass(frozen=True, slots=True)
class MatchDiff:
    """Where two runs of a match first differ (``diverged`` False: they never do)."""

    mode: str  # "recorded", "against" or "determinism"
    diverged: bool
    calls_compared: int
    a: str  # what side a is
    b: str
    index: int | None = None  # position among the executed recorded calls
    tick: int | None = None
    callback: str | None = None
    inputs: dict[str, Any] | None = None
    outcomes: tuple[Divergence, ...] = ()  # the outcome fields that differ at the divergent call
    state: FieldDiff | None = None  # None: the state was not compared at that call (see note)
    note: str = ""
    tolerance: Tolerance = field(default_factory=Tolerance)
    ended_early: dict[str, Any] | None = None  # a run stopped (crash, hang, death) before the recording's end
    integrity: Any = None  # the recording's recorder.format.Integrity (``judge``)
    incomplete: bool = False  # the recording is not complete (and allow_incomplete was not given)

    @property
    def negative(self) -> bool:
        """Exit 1: a divergence, or runs that did not reach the end (no verdict over the calls after it)."""
        return self.diverged or self.ended_early is not None

    @property
    def status(self) -> str:
        """``incomplete`` (no verdict), ``diverged``, ``ended-early`` or ``no-divergence``."""
        if self.incomplete:
            return "incomplete"
        return "diverged" if self.diverged else "ended-early" if self.ended_early is not None else "no-divergence"

    @property
    def exit_code(self) -> int:
        return 3 if self.incomplete else 1 if self.negative else 0

    @property
    def integrity_note(self) -> str:
        """What an incomplete recording did not let this comparison see ("" when complete)."""
        i = self.integrity
        if i is None or i.complete:
            return ""
        compared = f"{self.calls_compared} calls compared from the intact part"
        if self.incomplete:
            return (
                f"no verdict: the recording is {i.state}, so {i.missing()} was not compared; {compared} "
                "(--allow-incomplete draws a verdict from it)"
            )
        return f"--allow-incomplete: {compared}; not compared: {i.missing()}"

    def to_json(self) -> dict[str, Any]:
        st = self.state
        return {
            "mode": self.mode,
            "diverged": self.diverged,
            "tick": self.tick,
            "callback": self.callback,
            "index": self.index,
            "paths": [path_json(p) for p in st.paths] if st else [],
            "path_count": st.count if st else 0,
            "outcomes": [_outcome_json(o) for o in self.outcomes],
            "inputs": self.inputs,
            "note": self.note,
            "a": self.a,
            "b": self.b,
            "calls_compared": self.calls_compared,
            "float_tolerance": str(self.tolerance),
            "ended_early": self.ended_early,
            "status": self.status,
            "integrity": None if self.integrity is None else self.integrity.to_json(),
            "integrity_note": self.integrity_note,
        }


# ---------------------------------------------------------------- one run as comparable records


@dataclass(frozen=True, slots=True)
class _Record:
    """One executed recorded call: its inputs, the state after it (msgpack), its outcome and crash."""

    tick: int
    callback: str
    inputs: dict[str, Any]
    state: bytes
    outcome: tuple[Any, ...]

    def to_wire(self) -> list[Any]:
        return [self.tick, self.callback, self.inputs, self.state, list(self.outcome)]

    @classmethod
    def from_wire(cls, row: list[Any]) -> _Record:
        tick, callback, inputs, state, outcome = row
        return cls(tick, callback, inputs, state, tuple(outcome))


def _encode_state(handler: Any, state: Any) -> bytes:
    value = handler.state_value(state) if state is not None else None
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        return packed
    except (TypeError, ValueError, OverflowError):
        return canonical_bytes(value)  # raises StateError naming the path


def _outcome_key(step: StepResult) -> tuple[Any, ...]:
    """The outcome as plain, comparable data (presences by session id), ``OUTCOME_FIELDS`` order."""
    o = step.outcome or Outcome()
    broadcasts = [
        [
            b.op_code,
            b.data,
            None if b.targets is None else [p.session_id for p in b.targets],
            None if b.sender is None else b.sender.session_id,
            b.reliable,
            b.deferred,
        ]
        for b in o.broadcasts
    ]
    crash = None if step.crash is None else f"{step.crash.error_type}: {step.crash.error}"
    return (
        o.accept,
        o.reason,
        o.tick_rate,
        o.label,
        broadcasts,
        [p.session_id for p in o.kicks],
        list(o.label_updates),
        o.reply,
        o.stopped,
        crash,
    )


def _record(handler: Any, step: StepResult) -> _Record:
    return _Record(
        step.call.tick,
        step.call.callback,
        describe_call(step.call),
        _encode_state(handler, step.state),
        _outcome_key(step),
    )


@dataclass(slots=True)
class _Run:
    """One run's records, and how many recorded calls it never reached because it stopped first."""

    records: list[_Record]
    left: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> _Record:
        return self.records[i]


class _RecordedCalls:
    """The recorded calls of an open recording (up to a tick), counting those handed out."""

    def __init__(self, rec: Any, until_tick: int | None) -> None:
        self._events = rec.events()
        self.until_tick = until_tick
        self.path = rec.path

    def __iter__(self) -> _RecordedCalls:
        return self

    def __next__(self) -> Call:
        for e in self._events:
            if isinstance(e, WireEvent):
                raise NakamaReplayError(f"{self.path}: a wire recording; diff compares handler-call recordings")
            if isinstance(e, CALL_TYPES) and (self.until_tick is None or e.tick <= self.until_tick):
                return e
        raise StopIteration

    def left(self) -> int:
        """The calls not handed out yet."""
        return sum(1 for _ in self)


def _records(recording: str, handler: Any, options: ReplayOptions, run: int = 0) -> _Run:
    """Replay ``recording`` into ``handler``; one record per executed recorded (non-synthetic) call."""
    begin_run(run)
    begin_pass(run)
    out: list[_Record] = []
    with open_recording(recording, on_damage="stop") as rec:
        runtime = MatchRuntime(
            handler, rec.header, seed=options.seed, hang_timeout=options.hang_timeout, env=options.env, digests="never"
        )
        calls = _RecordedCalls(rec, options.until_tick)
        try:
            for step in iter_steps(runtime, calls):
                if step.executed and not step.synthetic:
                    out.append(_record(handler, step))
                if runtime.stopped:
                    break
        finally:
            runtime.close()
        return _Run(out, calls.left())


def _ending(r: _Record) -> tuple[str, str | None]:
    """How a run that stopped at record ``r`` ended: (crashed|hung|stopped, the error)."""
    crash = r.outcome[-1]
    if crash is None:
        return "stopped", None
    return ("hung" if crash.startswith("Hang: ") else "crashed"), crash


def _ended_early(
    mode: str,
    side: str,
    last: _Record | None,
    left: int,
    compared: int,
    label_a: str,
    label_b: str,
    tol: Tolerance,
    note: str,
) -> MatchDiff:
    """No verdict: a run stopped at ``last`` (a crash, a hang, a nil state) with ``left`` recorded calls unrun."""
    outcome, error = _ending(last) if last is not None else ("stopped", None)
    who = {"a": "side a", "b": "side b", "both": "both runs"}[side]
    callback, tick = (last.callback, last.tick) if last is not None else (None, None)
    where = f"in {last.callback} at tick {last.tick}" if last is not None else "before its first call"
    text = (
        f"{who} {outcome} {where}"
        + (f" ({error})" if error else "")
        + f"; the {left} recorded calls after it were never run, so nothing is said about them"
    )
    ended = {
        "side": side,
        "outcome": outcome,
        "callback": callback,
        "tick": tick,
        "error": error,
        "calls_left": left,
    }
    return MatchDiff(
        mode,
        False,
        compared,
        label_a,
        label_b,
        compared - 1 if compared else None,
        tick,
        callback,
        last.inputs if last else None,
        tolerance=tol,
        note=text + (f"; {note}" if note else ""),
        ended_early=ended,
    )


def died(mode: str, death: Any, label_a: str, label_b: str, side: str | None = None) -> MatchDiff:
    """The answer when a supervised run's handler process hung or died (``replay.runtime.Death``):
    which run (``death.run``: 0 is side a), the callback and tick, how it ended."""
    side = side or ("b" if death.run else "a")
    ended = {
        "side": side,
        "outcome": death.kind,
        "callback": death.callback,
        "tick": death.tick,
        "error": death.describe(),
        "calls_left": None,
        "process": death.to_json(),
    }
    text = (
        f"side {side} {death.kind} {death.where}: {death.describe()}; the supervisor ended that run's "
        "handler process, so the runs were not compared"
    )
    return MatchDiff(mode, False, 0, label_a, label_b, None, death.tick, death.callback, note=text, ended_early=ended)


def _compare_runs(
    mode: str,
    a: _Run,
    b: _Run,
    tol: Tolerance,
    label_a: str,
    label_b: str,
    note: str = "",
    limit: int = 20,
) -> MatchDiff:
    """First record where the two runs differ in state (numba), outcome or crash, or in length."""
    n = min(len(a), len(b))
    state_at = first_divergence(
        kernels.pack([r.state for r in a.records[:n]]), kernels.pack([r.state for r in b.records[:n]]), tol
    )
    outcome_at = next((i for i in range(n) if a[i].outcome != b[i].outcome), None)
    found = [i for i in (state_at, outcome_at) if i is not None]
    if not found:
        if len(a) == len(b):
            if a.left or b.left:
                side = "both" if a.left and b.left else "a" if a.left else "b"
                run = a if a.left else b
                return _ended_early(mode, side, run[n - 1] if n else None, run.left, n, label_a, label_b, tol, note)
            return MatchDiff(mode, False, n, label_a, label_b, tolerance=tol, note=note)
        longer, side = (a, "a") if len(a) > len(b) else (b, "b")
        r = longer[n]
        return MatchDiff(
            mode,
            True,
            n,
            label_a,
            label_b,
            n,
            r.tick,
            r.callback,
            r.inputs,
            tolerance=tol,
            note=f"only side {side} ran this call: the other run stopped after {n} calls"
            + (f"; {note}" if note else ""),
        )
    i = min(found)
    return _report(mode, i, a[i], b[i], tol, label_a, label_b, n, note, limit)


def _report(
    mode: str,
    i: int,
    ra: _Record,
    rb: _Record,
    tol: Tolerance,
    label_a: str,
    label_b: str,
    compared: int,
    note: str = "",
    limit: int = 20,
) -> MatchDiff:
    outcomes = tuple(Divergence(name, x, y) for name, x, y in zip(OUTCOME_FIELDS, ra.outcome, rb.outcome) if x != y)
    state = field_diff(ra.state, rb.state, tol, limit, encoded=True) if ra.state != rb.state else FieldDiff((), 0)
    return MatchDiff(
        mode, True, compared, label_a, label_b, i, ra.tick, ra.callback, ra.inputs, outcomes, state, note, tol
    )


# ---------------------------------------------------------------- the three modes


def judge(diff: MatchDiff, recording: str, options: ReplayOptions, integrity: Any = None) -> MatchDiff:
    """The diff with the recording's integrity: ``incomplete`` unless the recording is complete or
    ``options.allow_incomplete``."""
    integrity = integrity if integrity is not None else verify(recording)
    return dataclasses.replace(
        diff, integrity=integrity, incomplete=not integrity.complete and not options.allow_incomplete
    )


def diff_against(
    recording: str,
    handler_a: str | None,
    handler_b: str,
    options: ReplayOptions | None = None,
    tolerance: Tolerance | None = None,
    limit: int = 20,
) -> MatchDiff:
    """Replay the recording's inputs into two handlers and find the first call where the runs differ.

    ``handler_a`` None: the handler the recording's header names.
    """
    options = options or ReplayOptions()
    tol = tolerance or Tolerance()
    header = _header(recording)
    a = resolve_handler(handler_a, header, recording, options.module_path)
    b = resolve_handler(handler_b, header, recording, options.module_path)
    run_a = _records(recording, a, options, 0)
    run_b = _records(recording, b, options, 1)
    begin_pass(2)  # progress: past the last pass, comparing
    diff = _compare_runs(
        "against",
        run_a,
        run_b,
        tol,
        f"handler {getattr(a, 'path', handler_a)}",
        f"handler {getattr(b, 'path', handler_b)}",
        limit=limit,
    )
    return judge(diff, recording, options)


def diff_recorded(
    recording: str,
    handler: str | None = None,
    options: ReplayOptions | None = None,
    tolerance: Tolerance | None = None,
    limit: int = 20,
) -> MatchDiff:
    """Replay the recording and find the first call whose outcome or state differs from what it recorded."""
    options = options or ReplayOptions()
    integrity = verify(recording)
    diff = _diff_recorded(recording, handler, options, tolerance or Tolerance(), limit, integrity)
    return judge(diff, recording, options, integrity)


def _diff_recorded(
    recording: str, handler: str | None, options: ReplayOptions, tol: Tolerance, limit: int, integrity: Any
) -> MatchDiff:
    header = _header(recording)
    loaded = resolve_handler(handler, header, recording, options.module_path)
    label_a, label_b = f"recording {recording}", f"replay into {getattr(loaded, 'path', handler)}"
    seen = [0, 0]  # calls compared, calls with a recorded outcome
    found: list[MatchDiff] = []
    crash_steps: list[tuple[int, StepResult, _Record]] = []

    class _Stop(Exception):
        pass

    def observe(step: StepResult) -> None:
        if step.synthetic:
            return
        i = seen[0]
        seen[0] += 1
        recorded = step.call.outcome
        if recorded is not None:
            seen[1] += 1
        if step.crash is not None:  # a divergence unless the recording crashed here too (known at the end)
            crash_steps.append((i, step, _record(loaded, step)))
            return
        fields = [d for d in step.divergences if d.field != "digest"]
        digest_differs = any(d.field == "digest" for d in step.divergences)
        state = None
        note = ""
        if recorded is not None and recorded.snapshot is not None and (digest_differs or fields):
            state = field_diff(
                recorded.snapshot, canonical_bytes(loaded.state_value(step.state)), tol, limit, encoded=True
            )
        elif digest_differs and recorded is not None and recorded.digest is not None:
            note = (
                "the state digest differs (recorded "
                f"{recorded.digest:016x}, replayed {_digest_of(step, loaded):016x}); the recording holds no "
                "state snapshot at this call, so the fields cannot be named (capture with snapshots every "
                "tick to see them)"
            )
        if digest_differs and state is not None and not state and not fields:
            return  # the same state within the float tolerance
        if fields or digest_differs:
            outcomes = tuple(fields)
            found.append(
                MatchDiff(
                    "recorded",
                    True,
                    seen[0],
                    label_a,
                    label_b,
                    i,
                    step.call.tick,
                    step.call.callback,
                    describe_call(step.call),
                    outcomes,
                    state,
                    note,
                    tol,
                )
            )
            raise _Stop

    try:
        result = reproduce(recording, loaded, options, observer=observe)
    except _Stop:
        return found[0]
    if seen[1] == 0 and integrity.complete:
        raise NakamaReplayError(
            f"{recording}: the recording holds no outcomes to compare with; use --against or --determinism"
        )
    rc = result.recorded_crash
    if crash_steps:
        i, step, rec = crash_steps[0]
        c = step.crash
        assert c is not None
        mismatch = crash_mismatch(c, rc) if rc is not None else ("crash",)
        if not mismatch:
            return MatchDiff(
                "recorded",
                False,
                seen[0],
                label_a,
                label_b,
                tolerance=tol,
                note=f"the replay crashed in {c.callback} at tick {c.tick}, as recorded",
            )
        recorded_crash = (
            None if rc is None else f"{rc.callback} at tick {rc.tick}: {rc.error.splitlines()[0] if rc.error else ''}"
        )
        why = (
            "the replay crashed at the recorded tick, but with a different error"
            if mismatch == ("error_type",)
            else "the replay crashed where the recording did not"
        )
        return MatchDiff(
            "recorded",
            True,
            seen[0],
            label_a,
            label_b,
            i,
            c.tick,
            c.callback,
            rec.inputs,
            (Divergence("crash", recorded_crash, f"{c.error_type}: {c.error}"),),
            None,
            why,
            tol,
        )
    if rc is not None:
        return MatchDiff(
            "recorded",
            True,
            seen[0],
            label_a,
            label_b,
            seen[0],
            rc.tick,
            rc.callback,
            None,
            (Divergence("crash", rc.error.splitlines()[0] if rc.error else rc.callback, None),),
            None,
            f"the recording crashed in {rc.callback} at tick {rc.tick}; the replay did not",
            tol,
        )
    return MatchDiff("recorded", False, seen[0], label_a, label_b, tolerance=tol)


def diff_determinism(
    recording: str,
    handler: str | None = None,
    options: ReplayOptions | None = None,
    tolerance: Tolerance | None = None,
    hash_seeds: tuple[str, str] | None = ("1", "2"),
    limit: int = 20,
    limits: Any = None,
) -> MatchDiff:
    """Sync test: every call twice from a deep copy; then (unless ``hash_seeds`` is None) the whole replay
    in two supervised handler processes with different ``PYTHONHASHSEED`` values (``limits``:
    ``replay.runtime.Limits``, by default the options' hang timeout and the default memory cap)."""
    options = options or ReplayOptions()
    integrity = verify(recording)
    diff = _diff_determinism(recording, handler, options, tolerance or Tolerance(), hash_seeds, limit, limits)
    return judge(diff, recording, options, integrity)


def _diff_determinism(
    recording: str,
    handler: str | None,
    options: ReplayOptions,
    tol: Tolerance,
    hash_seeds: tuple[str, str] | None,
    limit: int,
    limits: Any,
) -> MatchDiff:
    header = _header(recording)
    loaded = resolve_handler(handler, header, recording, options.module_path)
    name = getattr(loaded, "path", handler)
    twice = _TwiceRuntime(
        MatchRuntime(
            loaded, header, seed=options.seed, hang_timeout=options.hang_timeout, env=options.env, digests="never"
        ),
        loaded,
        tol,
        limit,
    )
    try:
        with open_recording(recording, on_damage="stop") as rec:
            calls = _RecordedCalls(rec, options.until_tick)
            for _ in iter_steps(twice, calls):
                if twice.found is not None:
                    return twice.found
                if twice.runtime.stopped:
                    break
            left = calls.left()
    finally:
        twice.runtime.close()
    if twice.found is not None:
        return twice.found
    label_a, label_b = f"{name}, first run", f"{name}, second run"
    in_process = f"{twice.compared} calls each ran twice from a copy with equal results"
    if hash_seeds is not None:
        label_a, label_b = (f"{name} with PYTHONHASHSEED={seed}" for seed in hash_seeds)
        runs = []
        for number, (side, seed) in enumerate(zip("ab", hash_seeds), 1):
            run = _records_in_process(recording, str(handler or ""), options, seed, limits, number)
            if isinstance(run, MatchDiff):  # that run's handler process hung or died
                return dataclasses.replace(
                    run,
                    a=label_a,
                    b=label_b,
                    note=run.note.replace("side a", f"side {side}"),
                    ended_early=dict(run.ended_early or {}, side=side),
                )
            runs.append(run)
        begin_pass(len(hash_seeds) + 1)  # progress: past the last pass, comparing
        found = _compare_runs("determinism", runs[0], runs[1], tol, label_a, label_b, note=in_process, limit=limit)
        if found.negative:
            return found
    if left:
        return _ended_early("determinism", "both", twice.last, left, twice.compared, label_a, label_b, tol, in_process)
    return MatchDiff("determinism", False, twice.compared, label_a, label_b, tolerance=tol, note=in_process)


class _TwiceRuntime:
    """Looks like a ``MatchRuntime`` to ``iter_steps``; runs each call twice from a snapshot and compares."""

    def __init__(self, runtime: MatchRuntime, handler: Any, tol: Tolerance, limit: int) -> None:
        self.runtime, self.handler, self.tol, self.limit = runtime, handler, tol, limit
        self.compared = 0
        self.last: _Record | None = None  # the last call compared
        self.found: MatchDiff | None = None

    @property
    def pending_kicks(self) -> list[Any]:
        return self.runtime.pending_kicks

    @pending_kicks.setter
    def pending_kicks(self, value: list[Any]) -> None:
        self.runtime.pending_kicks = value

    def apply(self, call: Call) -> StepResult:
        rt = self.runtime
        if rt.stopped or self.found is not None:
            return rt.apply(call)
        snap = rt.snapshot()
        first = rt.apply(call)
        one = _record(self.handler, first) if first.executed else None
        rt.restore(snap)
        second = rt.apply(call)
        two = _record(self.handler, second) if second.executed else None
        if one is None or two is None:
            return second
        i = self.compared
        self.compared += 1
        self.last = two
        if one.state == two.state and one.outcome == two.outcome:
            return second
        name = getattr(self.handler, "path", "handler")
        diff = _report(
            "determinism",
            i,
            one,
            two,
            self.tol,
            f"{name}, first run",
            f"{name}, second run",
            i + 1,
            "the same call from the same state gave different results: the handler reads something "
            "the replay does not control (wall clock, global random, unordered iteration)",
            self.limit,
        )
        if diff.outcomes or (diff.state is not None and diff.state.count):
            self.found = diff
        return second


def _records_in_process(
    recording: str, handler: str, options: ReplayOptions, hash_seed: str, limits: Any, number: int = 1
) -> _Run | MatchDiff:
    """One whole run in a supervised handler process started with ``PYTHONHASHSEED=hash_seed``; a
    ``MatchDiff`` (side a) when that process hung or died. Its ticks show as pass ``number`` of this
    diff in a progress display (``replay.runtime._hang.forward_progress``)."""
    from replay.errors import HandlerDied
    from replay.runtime._supervisor import HandlerProcess, Limits

    limits = limits or Limits(options.hang_timeout or None)
    with HandlerProcess(limits, env=dict(os.environ, PYTHONHASHSEED=hash_seed)) as worker:
        worker.on_poll = forward_progress(number)
        try:
            rows, left = worker.call("replay.diff._calls:records_job", recording, handler, options)
        except HandlerDied as died_:
            return died("determinism", died_.death, "", "")
    return _Run([_Record.from_wire(r) for r in rows], left)


def records_job(recording: str, handler: str, options: ReplayOptions) -> tuple[list[list[Any]], int]:
    """(Runs in a supervised worker.) One run's records as plain rows, and the calls it never reached."""
    loaded = resolve_handler(handler or None, _header(recording), recording, options.module_path)
    run = _records(recording, loaded, options)
    return [r.to_wire() for r in run.records], run.left


# ---------------------------------------------------------------- helpers


def _header(recording: str) -> Header:
    with open_recording(recording) as rec:
        return rec.header


def _digest_of(step: StepResult, handler: Any) -> int:
    if step.outcome is not None and step.outcome.digest is not None:
        return step.outcome.digest
    from recorder.format import state_digest

    return state_digest(handler.state_value(step.state))
