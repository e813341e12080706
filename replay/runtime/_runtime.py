"""The deterministic match runtime: Nakama's match handler semantics, one recorded call at a time.

``MatchRuntime.apply(call)`` runs one handler call the way ``server/match_handler.go`` does:

- ``init``: ``(state, tick_rate, label)`` validated (tick rate an integer 1..60, label a string of at most
  2048 bytes, state not nil) with Nakama's messages.
- ``join_attempt``: ``(state, accept[, reason])``; ``ctx`` gains ``user_id, username, session_id, vars``. An
  accepted presence is added by the ``join`` call that follows.
- ``join``: presences whose session is already in the match are dropped; the rest are appended and passed
  to ``match_join`` (no call when none is left).
- ``leave``: presences in the match are removed first (swap with the last element, as Nakama does), then
  ``match_leave`` gets the whole list (no call when none was present).
- ``loop``: messages as recorded; the tick increments only after a loop that returned a state.
- ``signal``: ``(state, reply)`` with reply a string or nil. ``terminate``: grace 0 stops the match after.
- A nil state stops the match quietly; an exception (or a hang) stops it with a ``Crash``. Deferred
  broadcasts are flushed after each call that returned a state and when the match stops.

Every call's observed ``Outcome`` is compared with the recorded one where the recording has it; each
difference is a ``Divergence``, and the runtime follows the handler: a join the handler now rejects is not
added, a join it now accepts or a kick it now makes is carried out by a synthetic call.

``reproduce(recording, handler, options)`` streams a recording through a ``MatchRuntime`` and returns a
``ReplayResult``: how the replay ended and whether that reproduces what the recording says. It is a pure
function of (recording, handler, options): time, randomness and uuids come from the recording or from a
seeded source, never from the machine.
"""

from __future__ import annotations

import dataclasses
import os
import traceback as tb
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from recorder.errors import RecordingError, StateError
from recorder.format import (
    Broadcast,
    Call,
    CrashMarker,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    MessageBatch,
    Nondeterministic,
    Outcome,
    Presence,
    PresenceReason,
    Recording,
    SignalCall,
    TerminateCall,
    WireEvent,
    canonical_bytes,
    digest_bytes,
    open_recording,
)
from recorder.format._model import record_builder
from recorder.format._schema import PlainLoops, decode_loop
from replay.runtime._dispatcher import LABEL_MAX_BYTES, Dispatcher
from replay.runtime._handlers import load_handler, recorded_handler
from replay.runtime._hang import CallbackHung, HangGuard, active_beacon, interrupts_come_from_handlers
from replay.runtime._nk import DerivedSources, Logger, Nk, Sources
from replay.runtime._result import AfterStop, Crash, Divergence, ReplayResult, StepResult, describe_call
from replay.runtime._resume import resume_point
from replay.runtime._verdict import decide

__all__ = ["MatchRuntime", "ReplayOptions", "reproduce", "state_digest"]

_HERE = os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))
)  # replay/: its frames are left out of crash tracebacks
_new_outcome = record_builder(Outcome)
#: ``MatchRuntime.replay_plain`` stopped before a loop past ``ReplayOptions.until_tick``
UNTIL = object()


#: When a process loads the compiled canonical walk (``replay.runtime._fast_canonical``). Loading it costs
#: about 0.5 s of CPU (importing numba, reading the kernel numba cached on disk) and saves about 12 µs per
#: digest of an arena-sized state, so it pays from about 40,000 digests on. A replay that knows it has
#: ``COMPILED_CANONICAL_FOR`` digests ahead (the recording's last tick) loads it at once; otherwise the
#: process loads it after ``COMPILED_CANONICAL_AFTER`` reference walks, when the work done equals the price
#: (the ski-rental rule: a short replay never pays it, a long one loses at most that much). The bytes are
#: the same either way (``tests/runtime/test_fast_canonical.py``).
COMPILED_CANONICAL_FOR = 50_000
COMPILED_CANONICAL_AFTER = 25_000


def _returned_by(exc: StateError, callback: str, tick: int) -> StateError:
    """``exc`` (a state without canonical form, met while digesting) saying which call returned that state."""
    if type(exc) is not StateError:
        return exc
    return StateError(exc.path, f"{exc.problem} (the state {callback} returned at tick {tick})")


def _reference_digest(value: Any) -> int:
    return digest_bytes(canonical_bytes(value))


_canonical_bytes: Callable[[Any], bytes] = canonical_bytes
_canonical_digest: Callable[[Any], int] = _reference_digest  # digest_bytes(_canonical_bytes(v)), loaded with it
_reference_digests = 0


def _load_compiled_canonical() -> None:
    global _canonical_bytes, _canonical_digest
    from replay.runtime._fast_canonical import compiled_canonical_bytes, compiled_canonical_digest

    compiled = compiled_canonical_bytes()
    if compiled is None:
        _canonical_bytes, _canonical_digest = canonical_bytes, _reference_digest
    else:
        _canonical_bytes, _canonical_digest = compiled, compiled_canonical_digest()


def expect_digests(count: int) -> None:
    """A replay about to compute ``count`` digests: load the compiled walk now if that many pay for it."""
    global _reference_digests
    pending = _canonical_bytes is canonical_bytes and _reference_digests < COMPILED_CANONICAL_AFTER
    if pending and _reference_digests + count >= COMPILED_CANONICAL_FOR:
        _reference_digests = COMPILED_CANONICAL_AFTER  # one attempt per process
        _load_compiled_canonical()


def _state_canonical_bytes(value: Any) -> bytes:
    """``canonical_bytes(value)``: the reference walk or the compiled one (see ``COMPILED_CANONICAL_FOR``)."""
    _count_reference_walk()
    return _canonical_bytes(value)


def _state_canonical_digest(value: Any) -> int:
    """``digest_bytes(canonical_bytes(value))``, the same way (the compiled walk hashes its bytes in place)."""
    _count_reference_walk()
    return _canonical_digest(value)


def _count_reference_walk() -> None:
    global _reference_digests
    if _canonical_bytes is canonical_bytes:
        _reference_digests += 1
        if _reference_digests == COMPILED_CANONICAL_AFTER:
            _load_compiled_canonical()


def state_digest(value: Any) -> int:
    """The 64-bit digest of a state value, as recorded outcomes store it (``recorder.format._canonical``)."""
    from recorder.format import state_digest as digest  # numba-free, imported on first use

    return digest(value)


@dataclass(slots=True)
class _Snapshot:
    state: Any
    tick: int
    presences: list[Presence]
    stopped: bool
    stop_reason: str
    crash: Crash | None
    label: str
    sources: Any
    storage: Any
    pending_kicks: list[Presence]
    accepted: dict[str, bool]
    index: int
    handler_runtime: Any = None  # the handler's own per-call bookkeeping (Lua: the address counter)


class MatchRuntime:
    """One match, one handler. Feed it calls with ``apply``."""

    def __init__(
        self,
        handler: Any,
        header: Header | None = None,
        *,
        seed: int = 0,
        sources: Sources | None = None,
        hang_timeout: float | None = 5.0,
        env: dict[str, str] | None = None,
        deferred_limit: int = 128,
        digests: str = "recorded",
        snapshot_every: int = 0,
        logger: Logger | None = None,
    ) -> None:
        self.handler = handler
        self.header = header or Header()
        h = self.header
        self.sources = sources or DerivedSources(seed, h.started_ms or 1_700_000_000_000, h.tick_rate or 10)
        self.logger = logger or Logger()
        self.nk = Nk(self.sources, logger=self.logger)
        self.hang_guard = HangGuard(hang_timeout)
        self.beacon = active_beacon()  # a supervisor's, when this process is a supervised worker
        self.digests = digests  # "recorded" (only where the recording has one), "always" or "never"
        self.snapshot_every = snapshot_every
        # outcomes observed on the wire (a converted wire recording): broadcasts compare as sockets saw them
        self.wire_outcomes = h.tags.get("outcomes") == "wire" if isinstance(h.tags, dict) else False
        self.state: Any = None
        self.tick = 0
        self.tick_rate = h.tick_rate
        self.stopped = False
        self.stop_reason = ""
        self.crash: Crash | None = None
        self.pending_kicks: list[Presence] = []
        self.accepted: dict[str, bool] = {}  # session id -> verdict of the replayed join attempt
        self.index = 0
        self.ctx: dict[str, Any] = {
            "env": dict(env or {}),
            "execution_mode": "match",
            "node": h.node,
            "match_id": h.match_id,
            "match_node": h.node,
        }
        self.presences: list[Presence] = []
        self.dispatcher = Dispatcher(self.presences, deferred_limit, self.ctx)
        # a handler that computes its state's canonical bytes itself (Lua: without converting the state)
        self._state_bytes: Callable[[Any], bytes | None] | None = getattr(handler, "state_canonical_bytes", None)
        # and a compiled way to the same bytes, taken once the process has loaded the compiled canonical walk
        self._state_bytes_compiled: Callable[[Any], bytes | None] | None = getattr(
            handler, "state_canonical_bytes_compiled", None
        )

    @property
    def label(self) -> str:
        return self.dispatcher.label

    # -- sync-test support --------------------------------------------------------------------------------
    def snapshot(self) -> _Snapshot:
        """Everything ``apply`` can change, copied, so ``restore`` can run a call again (sync tests)."""
        getstate = getattr(self.sources, "getstate", None)
        return _Snapshot(
            self.handler.copy_state(self.state) if self.state is not None else None,
            self.tick,
            list(self.presences),
            self.stopped,
            self.stop_reason,
            self.crash,
            self.dispatcher.label,
            getstate() if getstate else None,
            {k: dict(v) for k, v in self.nk.storage.objects.items()},
            list(self.pending_kicks),
            dict(self.accepted),
            self.index,
            self.handler.runtime_state() if hasattr(self.handler, "runtime_state") else None,
        )

    def restore(self, snap: _Snapshot) -> None:
        self.state = self.handler.copy_state(snap.state) if snap.state is not None else None
        self.tick = snap.tick
        self.presences[:] = snap.presences
        self.stopped, self.stop_reason, self.crash = snap.stopped, snap.stop_reason, snap.crash
        self.dispatcher.stopped = snap.stopped
        self.dispatcher.label = snap.label
        self.ctx["match_label"] = snap.label
        if snap.sources is not None and isinstance(self.sources, DerivedSources):  # the only sources with a state
            self.sources.setstate(snap.sources)
        self.nk.storage.objects = {k: dict(v) for k, v in snap.storage.items()}
        self.pending_kicks = list(snap.pending_kicks)
        self.accepted = dict(snap.accepted)
        self.index = snap.index
        if snap.handler_runtime is not None:
            self.handler.restore_runtime_state(snap.handler_runtime)

    # -- running calls ------------------------------------------------------------------------------------
    def apply(self, call: Call) -> StepResult:
        """Run one call as Nakama would; returns what it did (``executed`` False when Nakama would skip it)."""
        index = self.index
        self.index += 1
        if self.stopped:
            return StepResult(index, call, False)
        match call:
            case LoopCall():
                return self._loop(index, call)
            case JoinAttemptCall():
                return self._join_attempt(index, call)
            case JoinCall():
                return self._join(index, call)
            case LeaveCall():
                return self._leave(index, call)
            case SignalCall():
                return self._signal(index, call)
            case TerminateCall():
                return self._terminate(index, call)
            case InitCall():
                return self._init(index, call)
        raise TypeError(f"not a handler call: {call!r}")

    def _invoke(
        self, callback: str, tick: int, recorded: tuple[Nondeterministic, ...], fn: Callable[..., Any], *args: Any
    ) -> tuple[bool, Any]:
        """Call the handler under the hang guard, serving it the ``recorded`` nondeterministic values. Returns
        (ok, result); on failure the match is stopped."""
        self.nk.begin_call(tick, recorded)
        self.dispatcher.reset()
        guard = self.hang_guard
        beacon = self.beacon
        if beacon is not None:
            beacon.enter(callback, tick)
        ok, result = False, None
        try:
            guard.arm()
            try:
                result = fn(*args)
            finally:
                guard.disarm()
            ok = True
        except (CallbackHung, Exception, KeyboardInterrupt) as exc:
            if not self._failed(callback, tick, exc):
                raise  # the user's Ctrl-C: an interruption, not a crash
        if beacon is not None:
            beacon.leave()  # not reached when SystemExit leaves the process: the supervisor sees where it was
        return ok, result

    def _failed(self, callback: str, tick: int, exc: BaseException) -> bool:
        """A callback raised ``exc``: stop the match with its crash (or hang). False for a ``KeyboardInterrupt``
        that is the user's Ctrl-C, not the handler's own (the caller re-raises it)."""
        if isinstance(exc, CallbackHung):
            self._stop_with(
                Crash(callback, tick, f"{callback} did not return within {self.hang_guard.limit} s", "Hang", "", True)
            )
        elif isinstance(exc, Exception):  # a handler may raise anything; that is the crash we report
            self._stop_with(self._crash_from(callback, tick, exc))
        elif isinstance(exc, KeyboardInterrupt) and interrupts_come_from_handlers():
            self._stop_with(self._crash_from(callback, tick, exc))  # the handler raised it itself
        else:
            return False
        return True

    def _crash_from(self, callback: str, tick: int, exc: BaseException) -> Crash:
        describe = getattr(self.handler, "describe_error", None)
        if describe is not None:
            error, error_type, trace = describe(exc)
            return Crash(callback, tick, error, error_type, trace)
        frames = [f for f in tb.extract_tb(exc.__traceback__) if not f.filename.startswith(_HERE)]
        for f in frames:
            f.filename = _display_path(f.filename)
        trace = "Traceback (most recent call last):\n" + "".join(tb.format_list(frames)) if frames else ""
        error = f"{type(exc).__name__}: {exc}"
        return Crash(callback, tick, error, type(exc).__name__, trace + error)

    def _stop_with(self, crash: Crash) -> None:
        self.crash = crash
        self._stop("error" if not crash.hung else "hung")

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.stop_reason = reason
        self.dispatcher.stopped = True

    def _rule_error(self, callback: str, tick: int, message: str) -> None:
        self._stop_with(Crash(callback, tick, message, "HandlerError"))

    def _finish(
        self,
        index: int,
        call: Call,
        new_state: Any,
        *,
        accept: bool | None = None,
        reason: str | None = None,
        tick_rate: int | None = None,
        label: str | None = None,
        reply: str | None = None,
    ) -> StepResult:
        """Common tail: nil state stops quietly; record kicks; build and compare the outcome."""
        d = self.dispatcher
        if self.crash is None and new_state is None:
            self._stop("nil-state")
        elif self.crash is None:
            self.state = new_state
        if d.kicks:
            self.pending_kicks.extend(d.kicks)
        digest = snapshot = None
        recorded = call.outcome
        if self.crash is None and not self.stopped:
            want_digest = self.digests == "always" or (
                self.digests == "recorded" and recorded is not None and recorded.digest is not None
            )
            snapshot_due = self._snapshot_due(call)
            try:
                if snapshot_due:
                    snapshot = self._state_data(self.state)
                    if want_digest:
                        digest = digest_bytes(snapshot)
                elif want_digest:
                    digest = self._state_digest(self.state)
            except StateError as exc:
                raise _returned_by(exc, call.callback, getattr(call, "tick", 0)) from None
        observed = _new_outcome(  # Outcome(...) without the frozen __init__: this runs once per call
            accept,
            reason,
            tick_rate,
            label,
            tuple(d.broadcasts) if d.broadcasts else (),
            tuple(d.kicks) if d.kicks else (),
            tuple(d.label_updates) if d.label_updates else (),
            reply,
            digest,
            snapshot,
            self.stopped and self.crash is None,
        )
        nk = self.nk
        divergences = (
            _compare(index, call, recorded, observed, self.presences if self.wire_outcomes else None)
            if recorded is not None and self.crash is None
            else []
        )
        consumed = tuple(nk.consumed) if nk.consumed else ()
        step = StepResult(index, call, True, observed, self.state, self.crash, consumed, divergences, False)
        if call.nondeterministic and (nk.unconsumed() or nk.fallbacks):
            step.divergences.append(
                Divergence(
                    "nondeterministic",
                    f"{len(call.nondeterministic)} recorded values",
                    f"{len(self.nk.consumed) - self.nk.fallbacks} used, {self.nk.fallbacks} missing",
                    call.tick,
                    call.callback,
                    index,
                )
            )
        return step

    def _state_data(self, state: Any) -> bytes:
        """The canonical bytes of ``state`` (what its digest hashes and a snapshot holds)."""
        data = self._handler_state_bytes(state)
        if data is None:
            data = _state_canonical_bytes(self.handler.state_value(state))
        return data

    def _handler_state_bytes(self, state: Any) -> bytes | None:
        """The canonical bytes of ``state`` as the handler computes them (compiled once the process has loaded
        the compiled canonical walk), None where it leaves them to the reference path."""
        if self._state_bytes_compiled is not None and _canonical_bytes is not canonical_bytes:
            return self._state_bytes_compiled(state)
        return self._state_bytes(state) if self._state_bytes is not None else None

    def _state_digest(self, state: Any) -> int:
        """``digest_bytes(self._state_data(state))``, without the bytes where the compiled walk computes it."""
        if self._state_bytes is not None:
            data = self._handler_state_bytes(state)
            if data is not None:
                return digest_bytes(data)
        if _canonical_bytes is canonical_bytes:  # still the reference walk: counted towards the kernel's price
            return _state_canonical_digest(self.handler.state_value(state))
        return _canonical_digest(self.handler.state_value(state))

    def replay_loop(self, messages: list[MatchMessage], plain: tuple[Any, ...]) -> StepResult | None:
        """Run a plain recorded loop (``recorder.format._schema.iter_replay``: its outcome still in encoded
        form) with its decoded ``messages`` (a new list, handed to ``match_loop`` as it is). None when it ran
        and matched its recorded outcome: nothing to report, the match went on as ``apply`` makes it go.
        Anything else (a crash, a nil state, kicks, label updates, a broadcast or digest that differs, a
        snapshot due, a converted wire recording) is the decoded call's ``StepResult`` exactly as ``apply``
        gives it: the comparison in encoded form only ever says "the same", and the reference decides
        everything else. ``_invoke`` is written out here (a call with no recorded values; ``_failed`` takes
        a callback's failure the same way): this runs once per replayed tick."""
        tick = plain[0]
        every = self.snapshot_every
        if self.stopped or self.wire_outcomes or self.digests == "always" or (every > 0 and tick % every == 0):
            return self.apply(decode_loop(plain[6], plain[7], plain[5], plain[8]))
        index = self.index
        self.index = index + 1
        d = self.dispatcher
        nk = self.nk
        nk.begin_call(tick)
        d.reset()
        guard = self.hang_guard
        beacon = self.beacon
        if beacon is not None:
            beacon.enter("match_loop", tick)
        ok, result = False, None
        try:
            guard.arm()
            try:
                result = self.handler.match_loop(self.ctx, self.logger, nk, d, tick, self.state, messages)
            finally:
                guard.disarm()
            ok = True
        except (CallbackHung, Exception, KeyboardInterrupt) as exc:
            if not self._failed("match_loop", tick, exc):
                raise  # the user's Ctrl-C: an interruption, not a crash
        if beacon is not None:
            beacon.leave()
        if ok and result is not None and not d.kicks and not d.label_updates:
            if not plain[2]:  # no outcome recorded: nothing to compare
                matched = True
            elif plain[4] is None and not d.broadcasts:  # no broadcasts either side: the digest alone
                matched = plain[3] is None or self.digests != "recorded" or self._digest_matches(result, plain[3], tick)
            else:
                matched = self._matches_encoded(result, plain[3], plain[4], tick)
            if matched:
                self.state = result  # what _finish does for a call that returned a state, kicked no one, matched
                self.tick = tick + 1
                return None
        call = decode_loop(plain[6], plain[7], plain[5], plain[8])
        step = self._finish(index, call, result if ok else None)
        if ok and not self.stopped:
            self.tick = tick + 1
        return step

    def replay_plain(
        self, run: PlainLoops, until_tick: int | None, trail: deque[tuple[Any, ...]], kept: int, position: int
    ) -> tuple[int, int, Any]:
        """Run the plain loops of ``run`` (one chunk's, decoded typed: ``recorder.format._schema.PlainLoops``)
        from ``run.next`` on, in one loop: each as ``replay_loop`` runs it, with what ``reproduce`` does per
        loop that ran and matched (``trail``: its ``(tick, rows, presences)``, pruned to the last ``kept``
        ticks; the beacon's ``position``, counted on). Returns (loops that ran and matched, the position,
        where it stopped): None (the run is done), ``UNTIL`` (the next loop is past ``until_tick``: not run),
        an ``iter_replay`` tuple (the next loop, not run: ``replay_loop`` or the reference takes it, as for a
        chunk decoded by the reference: kicks pending, a snapshot due, a sender past the presence table), or
        the ``StepResult`` of a loop that ran and did not simply match (what ``replay_loop`` returns for it).
        ``run.next`` is past every loop it ran."""
        i = run.next
        events = run.events
        end = len(events)
        if i >= end:
            return 0, position, None
        if self.stopped or self.wire_outcomes or self.digests == "always":
            return 0, position, run.part(i)
        ps = run.presences
        build = MatchMessage
        match_loop = self.handler.match_loop
        ctx, logger, nk, d = self.ctx, self.logger, self.nk, self.dispatcher
        guard = self.hang_guard
        beacon = self.beacon
        every = self.snapshot_every
        recorded = self.digests == "recorded"
        done = 0
        while i < end:
            ev = events[i]
            tick = ev.tick
            if until_tick is not None and tick > until_tick:
                run.next = i
                return done, position, UNTIL
            if self.pending_kicks or (every > 0 and tick % every == 0):
                return done, position, run.part(i)
            rows = ev.messages
            try:
                messages = [build(ps[s], op, data, reliable, at) for s, op, data, reliable, at in rows]
            except IndexError:  # a sender past the presence table: the reader's error, from the rows' checks
                return done, position, run.part(i)
            if beacon is not None:
                position += 1
                beacon.position(position)
            # replay_loop, written out
            index = self.index
            self.index = index + 1
            nk.tick = tick
            if nk.consumed or nk.fallbacks or nk._served:  # what Nk.begin_call(tick) changes: the last call's
                nk.begin_call(tick)
            if d.broadcasts or d.kicks or d.label_updates or d._deferred_count:  # what Dispatcher.reset() changes
                d.reset()
            if beacon is not None:
                beacon.enter("match_loop", tick)
            ok, result = False, None
            try:
                guard.arm()
                try:
                    result = match_loop(ctx, logger, nk, d, tick, self.state, messages)
                finally:
                    guard.disarm()
                ok = True
            except (CallbackHung, Exception, KeyboardInterrupt) as exc:
                if not self._failed("match_loop", tick, exc):
                    run.next = i + 1
                    raise  # the user's Ctrl-C: an interruption, not a crash
            if beacon is not None:
                beacon.leave()
            i += 1
            if ok and result is not None and not d.kicks and not d.label_updates:
                out = ev.outcome
                if out is None:  # no outcome recorded: nothing to compare
                    matched = True
                else:
                    broadcasts = out.broadcasts
                    if not broadcasts and not d.broadcasts:  # no broadcasts either side: the digest alone
                        digest = out.digest
                        matched = digest is None or not recorded or self._digest_matches(result, digest, tick)
                    else:
                        matched = self._matches_encoded(result, out.digest, broadcasts or None, tick)
                if matched:
                    self.state = result
                    self.tick = tick + 1
                    done += 1
                    trail.append((tick, rows, ps))
                    while trail[0][0] < tick - kept:
                        trail.popleft()
                    continue
            run.next = i
            step = self._finish(index, decode_loop(run.payload, i - 1, ps, run.origin), result if ok else None)
            if ok and not self.stopped:
                self.tick = tick + 1
            return done, position, step
        run.next = i
        return done, position, None

    def _matches_encoded(self, state: Any, digest: int | None, broadcasts: list[list[Any]] | None, tick: int) -> bool:
        """Whether the dispatcher's broadcasts and ``state``'s digest are those of a plain recorded outcome
        (broadcast rows ``[op_code, data, None, None, reliable, deferred]``): the fields ``_compare`` finds
        equal, compared the way ``Broadcast.__eq__`` compares them."""
        observed = self.dispatcher.broadcasts
        if broadcasts is None:
            if observed:
                return False
        else:
            if len(observed) != len(broadcasts):
                return False
            for b, r in zip(observed, broadcasts, strict=True):
                if (
                    b.targets is not None
                    or b.sender is not None
                    or r[0] != b.op_code
                    or r[1] != b.data
                    or r[4] != b.reliable
                    or r[5] != b.deferred
                ):
                    return False
        if digest is not None and self.digests == "recorded":
            return self._digest_matches(state, digest, tick)
        return True

    def _digest_matches(self, state: Any, digest: int, tick: int) -> bool:
        """Whether the digest of the state ``match_loop`` returned at ``tick`` is ``digest``."""
        try:
            return self._state_digest(state) == digest
        except StateError as exc:
            raise _returned_by(exc, "match_loop", tick) from None

    def _snapshot_due(self, call: Call) -> bool:
        return self.snapshot_every > 0 and type(call) is LoopCall and call.tick % self.snapshot_every == 0

    def _init(self, index: int, call: InitCall) -> StepResult:
        point = resume_point(self.header)
        if point is not None:  # a slice: the match as it was at its first tick, not match_init
            state = point.apply(self)
            return self._finish(index, call, state, tick_rate=point.tick_rate, label=point.label)
        ok, result = self._invoke(
            "match_init", 0, call.nondeterministic, self.handler.match_init, self.ctx, self.logger, self.nk, call.params
        )
        tick_rate = label = None
        state = None
        if ok:
            problem, state, tick_rate, label = _check_init(result)
            if problem:
                self._rule_error("match_init", 0, problem)
            else:
                self.tick_rate = tick_rate
                self.dispatcher.label = label
                self.ctx["match_label"] = label
                self.ctx["match_tick_rate"] = tick_rate
        if ok and state is None and self.crash is None:
            self._rule_error("match_init", 0, "Match initial state must not be nil")
        return self._finish(index, call, state, tick_rate=tick_rate, label=label)

    def _join_attempt(self, index: int, call: JoinAttemptCall) -> StepResult:
        p = call.presence
        ctx = dict(self.ctx, user_id=p.user_id, username=p.username, session_id=p.session_id)
        if call.vars:
            ctx["vars"] = dict(call.vars)
        ok, result = self._invoke(
            "match_join_attempt",
            call.tick,
            call.nondeterministic,
            self.handler.match_join_attempt,
            ctx,
            self.logger,
            self.nk,
            self.dispatcher,
            call.tick,
            self.state,
            p,
            dict(call.metadata),
        )
        state, accept, reason = None, None, None
        if ok:
            problem, state, accept, reason = _check_join_attempt(result)
            if problem:
                self._rule_error("match_join_attempt", call.tick, problem)
                state = None
        if self.crash is None and state is not None:
            self.accepted[p.session_id] = bool(accept)
        return self._finish(index, call, state, accept=accept, reason=reason)

    def _join(self, index: int, call: JoinCall) -> StepResult:
        present = {q.session_id for q in self.presences}
        processed = []
        for p in call.presences:
            if self.accepted.get(p.session_id, True) and p.session_id not in present:
                processed.append(p)
                present.add(p.session_id)
        if not processed:
            return StepResult(index, call, False)
        self.presences.extend(processed)
        ok, result = self._invoke(
            "match_join",
            call.tick,
            call.nondeterministic,
            self.handler.match_join,
            self.ctx,
            self.logger,
            self.nk,
            self.dispatcher,
            call.tick,
            self.state,
            list(processed),
        )
        return self._finish(index, call, result if ok else None)

    def _leave(self, index: int, call: LeaveCall) -> StepResult:
        removed = False
        for p in call.presences:
            for i, q in enumerate(self.presences):
                if q.session_id == p.session_id and q.node == p.node:
                    self.presences[i] = self.presences[-1]
                    self.presences.pop()
                    removed = True
                    break
        kicked = {p.session_id for p in call.presences}
        self.pending_kicks = [k for k in self.pending_kicks if k.session_id not in kicked]
        if not removed:
            return StepResult(index, call, False)
        ok, result = self._invoke(
            "match_leave",
            call.tick,
            call.nondeterministic,
            self.handler.match_leave,
            self.ctx,
            self.logger,
            self.nk,
            self.dispatcher,
            call.tick,
            self.state,
            list(call.presences),
        )
        return self._finish(index, call, result if ok else None)

    def _loop(self, index: int, call: LoopCall) -> StepResult:
        ok, result = self._invoke(
            "match_loop",
            call.tick,
            call.nondeterministic,
            self.handler.match_loop,
            self.ctx,
            self.logger,
            self.nk,
            self.dispatcher,
            call.tick,
            self.state,
            list(call.messages),
        )
        step = self._finish(index, call, result if ok else None)
        if ok and not self.stopped:
            self.tick = call.tick + 1
        return step

    def _signal(self, index: int, call: SignalCall) -> StepResult:
        ok, result = self._invoke(
            "match_signal",
            call.tick,
            call.nondeterministic,
            self.handler.match_signal,
            self.ctx,
            self.logger,
            self.nk,
            self.dispatcher,
            call.tick,
            self.state,
            call.data,
        )
        state = reply = None
        if ok:
            if not isinstance(result, tuple) or len(result) != 2:
                self._rule_error(
                    "match_signal",
                    call.tick,
                    "Match signal returned too many values, stopping match"
                    if isinstance(result, tuple) and len(result) > 2
                    else "match_signal must return (state, reply)",
                )
            else:
                state, reply = result
                if reply is not None and not isinstance(reply, str):
                    self._rule_error(
                        "match_signal", call.tick, "Match signal returned non-string result, stopping match"
                    )
                    state = None
        return self._finish(index, call, state, reply=reply)

    def _terminate(self, index: int, call: TerminateCall) -> StepResult:
        ok, result = self._invoke(
            "match_terminate",
            call.tick,
            call.nondeterministic,
            self.handler.match_terminate,
            self.ctx,
            self.logger,
            self.nk,
            self.dispatcher,
            call.tick,
            self.state,
            call.grace_seconds,
        )
        step = self._finish(index, call, result if ok else None)
        if ok and not self.stopped and call.grace_seconds == 0:
            self._stop("terminated")
        return step

    def close(self) -> None:
        self.hang_guard.close()
        close = getattr(self.handler, "close", None)
        if close is not None:
            close()


def _display_path(path: str) -> str:
    """A path relative to the working directory when it is below it (stable across machines)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _check_init(result: Any) -> tuple[str, Any, Any, Any]:
    if not isinstance(result, tuple) or len(result) < 3:
        n = len(result) if isinstance(result, tuple) else 1
        which = ["first", "second", "third"][min(n, 2)]
        what = ["a state", "a tick rate number", "a label string"][min(n, 2)]
        return f"match_init returned unexpected {which} value, must be {what}", None, None, None
    if len(result) > 3:
        return (
            "match_init returned too many arguments, must be: state, tick rate number, label string",
            None,
            None,
            None,
        )
    state, rate, label = result
    if not isinstance(label, str):
        return "match_init returned unexpected third value, must be a label string", None, None, None
    if len(label.encode("utf-8")) > LABEL_MAX_BYTES:
        return f"match_init returned invalid label, must be {LABEL_MAX_BYTES} bytes or less", None, None, None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        return "match_init returned unexpected second value, must be a tick rate number", None, None, None
    if isinstance(rate, float) and not rate.is_integer():
        return "match_init returned invalid tick rate, must be an integer between 1 and 60", None, None, None
    if not 1 <= rate <= 60:
        return "match_init returned invalid tick rate, must be between 1 and 60", None, None, None
    return "", state, int(rate), label


def _check_join_attempt(result: Any) -> tuple[str, Any, Any, Any]:
    if not isinstance(result, tuple) or len(result) < 2:
        return (
            "Match join attempt returned too few values, stopping match - expected: state, join result boolean, "
            "optional reject reason string",
            None,
            None,
            None,
        )
    if len(result) > 3:
        return "Match join attempt returned too many values, stopping match", None, None, None
    state, accept = result[0], result[1]
    reason = result[2] if len(result) == 3 else None
    if not isinstance(accept, bool):
        return "Match join attempt returned non-boolean join result, stopping match", None, None, None
    if reason is not None and not isinstance(reason, str):
        return (
            "Match join attempt returned non-boolean join result or non-string reject reason, stopping match",
            None,
            None,
            None,
        )
    return "", state, accept, reason


def _masked(v: Any) -> Any:
    """An outcome field with gopher-lua pointer texts (``function: 0xc000...``) masked: their addresses are
    Nakama's memory layout, never reproducible (``recorder.format.mask_pointers``)."""
    from recorder.format import mask_pointers  # only when an outcome differs

    if isinstance(v, (str, bytes)):
        return mask_pointers(v)
    if isinstance(v, tuple):
        return tuple(
            dataclasses.replace(b, data=mask_pointers(b.data)) if isinstance(b, Broadcast) else _masked(b) for b in v
        )
    return v


def as_seen_on_the_wire(broadcasts: tuple[Broadcast, ...], presences: list[Presence]) -> list[tuple[Any, ...]]:
    """Broadcasts as the match's sockets receive them: (op code, data, sender session, reliable, recipient
    sessions), the recipients resolved against the presences in the match (all of them for no targets);
    one that reaches nobody is not seen at all, and deferred or immediate looks the same."""
    members = [p.session_id for p in presences]
    out = []
    for b in broadcasts:
        to = members if b.targets is None else [t.session_id for t in b.targets if t.session_id in members]
        if to:
            sender = None if b.sender is None else b.sender.session_id
            out.append((b.op_code, b.data or b"", sender, bool(b.reliable), tuple(sorted(set(to)))))
    return out


def _compare(
    index: int, call: Call, recorded: Outcome, observed: Outcome, presences: list[Presence] | None = None
) -> list[Divergence]:
    """The fields where ``observed`` differs from ``recorded``. With ``presences`` (a converted wire
    recording: outcomes as the sockets saw them) broadcasts compare by ``as_seen_on_the_wire``, kicks by
    session id, and what sockets cannot see (label updates, a quiet stop, digests) is not compared."""
    if (  # the common case, a loop whose recorded outcome holds only what a loop returns and matches: no diff
        presences is None
        and recorded.accept is None
        and recorded.tick_rate is None
        and recorded.label is None
        and recorded.reply is None
        and type(call) is not SignalCall
        and recorded.broadcasts == observed.broadcasts
        and recorded.kicks == observed.kicks
        and recorded.label_updates == observed.label_updates
        and recorded.stopped == observed.stopped
        and (recorded.digest is None or observed.digest is None or recorded.digest == observed.digest)
    ):
        return []
    out: list[Divergence] = []

    def diff(name: str, a: Any, b: Any) -> None:
        if a != b and _masked(a) != _masked(b):
            out.append(Divergence(name, a, b, call.tick, call.callback, index))

    if recorded.accept is not None:
        diff("accept", recorded.accept, observed.accept)
        if recorded.accept is False or observed.accept is False or recorded.reason:
            diff("reason", recorded.reason or None, observed.reason or None)
    if recorded.tick_rate is not None:
        diff("tick_rate", recorded.tick_rate, observed.tick_rate)
    if recorded.label is not None:
        diff("label", recorded.label, observed.label)
    if recorded.reply is not None or type(call) is SignalCall:
        diff("reply", recorded.reply, observed.reply)
    if presences is not None:  # label updates and a quiet stop are not on the wire: not compared
        diff(
            "broadcasts",
            as_seen_on_the_wire(recorded.broadcasts, presences),
            as_seen_on_the_wire(observed.broadcasts, presences),
        )
        diff("kicks", sorted(p.session_id for p in recorded.kicks), sorted(p.session_id for p in observed.kicks))
        return out
    diff("broadcasts", recorded.broadcasts, observed.broadcasts)
    diff("kicks", recorded.kicks, observed.kicks)
    diff("label_updates", recorded.label_updates, observed.label_updates)
    diff("stopped", recorded.stopped, observed.stopped)
    if recorded.digest is not None and observed.digest is not None:
        diff("digest", recorded.digest, observed.digest)
    return out


# -- whole replays ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayOptions:
    """How to replay. Defaults replay everything with a 5 s hang guard and seed 0."""

    seed: int = 0
    until_tick: int | None = None
    hang_timeout: float | None = 5.0
    last_ticks: int = 3  # how many ticks of inputs the report keeps
    env: dict[str, str] = field(default_factory=dict)
    max_divergences: int = 50  # kept in the result; all are counted
    module_path: list[str] = field(default_factory=list)
    verify_digests: bool = True  # compare state digests where the recording has them
    allow_incomplete: bool = False  # draw the verdict from the intact part of an incomplete recording


def _open(
    recording: Any, plain_loops: bool = False
) -> tuple[Header, Iterable[Any], str, Recording | None, Recording | None]:
    """Header, events, name, the reader to close (when opened here) and the reader whose integrity counts.
    A file is read up to its first damage (``on_damage="stop"``): the verdict says what was missing.
    ``plain_loops``: a file's plain loops come in their encoded parts, a chunk of them as one ``PlainLoops``
    (``Recording.replay_runs``)."""
    if isinstance(recording, (str, os.PathLike)):
        rec = open_recording(recording, on_damage="stop")
        return rec.header, rec.replay_runs() if plain_loops else rec.events(), str(recording), rec, rec
    if isinstance(recording, Recording):
        events = recording.replay_runs() if plain_loops else recording.events()
        return recording.header, events, recording.path, None, recording
    header, events = recording
    return header, events, "<memory>", None, None


def resolve_handler(spec: Any, header: Header, recording_path: str, module_path: list[str] | None = None) -> Any:
    """A loaded handler from ``spec``, or the one the header names (relative to the recording, and only
    if it lies inside the recording's folder tree: ``UntrustedHandler`` otherwise)."""
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec
    if (
        spec is None
    ):  # the header's: only inside the recording's folder tree (replay.runtime._handlers.recorded_handler)
        spec = recorded_handler(recording_path, header.handler)
    return load_handler(spec, module_path=module_path)


class StepRunner(Protocol):
    """What ``iter_steps`` drives: a ``MatchRuntime``, or a wrapper that runs each call its own way."""

    pending_kicks: list[Presence]

    def apply(self, call: Call) -> StepResult: ...


def iter_steps(runtime: StepRunner, calls: Iterable[Call]) -> Iterator[StepResult]:
    """Apply recorded calls in order, adding the synthetic calls the replayed handler's decisions need
    (a join it accepts that the recording rejected, the leave that follows a kick the recording lacks)."""
    for call in calls:
        yield from _steps_of(runtime, call)


def _steps_of(runtime: StepRunner, call: Call) -> Iterator[StepResult]:
    """The steps of one recorded call: the synthetic leave of a pending kick before it, the call, a
    synthetic join after it when the replayed handler accepts a join the recording rejected."""
    if runtime.pending_kicks and type(call) is LoopCall:
        kicked = tuple(p.with_reason(PresenceReason.LEAVE) for p in runtime.pending_kicks)
        runtime.pending_kicks = []
        step = runtime.apply(LeaveCall(call.tick, kicked))
        step.synthetic = True
        yield step
    step = runtime.apply(call)
    yield step
    if (
        type(call) is JoinAttemptCall
        and step.executed
        and step.outcome is not None
        and step.outcome.accept
        and call.outcome is not None
        and call.outcome.accept is False
    ):
        join = runtime.apply(JoinCall(call.tick, (call.presence.with_reason(PresenceReason.UNKNOWN),)))
        join.synthetic = True
        yield join


def reproduce(
    recording: Any,
    handler: Any = None,
    options: ReplayOptions | None = None,
    observer: Callable[[StepResult], None] | None = None,
) -> ReplayResult:
    """Replay a recording (path, open ``Recording`` or ``(header, events)``) into a handler."""
    options = options or ReplayOptions()
    # without an observer (which wants every step) a plain loop that matches needs no records at all
    header, events, path, owned, reader = _open(recording, plain_loops=observer is None)
    try:
        loaded = resolve_handler(handler, header, path, options.module_path)
        runtime = MatchRuntime(
            loaded,
            header,
            seed=options.seed,
            hang_timeout=options.hang_timeout,
            env=options.env,
            digests="recorded" if options.verify_digests else "never",
        )
        if options.verify_digests and owned is not None:
            last_tick = owned.last_tick_hint()  # from the seal or the last chunk's head: no decoding
            if last_tick is not None:
                expect_digests(last_tick if options.until_tick is None else min(last_tick, options.until_tick))
        try:
            return _run(runtime, header, events, path, options, observer, reader)
        finally:
            runtime.close()
    finally:
        if owned is not None:
            owned.close()


def _wire_hint() -> str:
    """What to do with a wire recording, naming only commands that exist in this installation."""
    from replay.cli._main import COMMANDS  # the command table, to name no command that is missing

    hint = "replay it into a server with `nakama-replay live REC --nakama URL`"
    if "convert" in COMMANDS:
        hint += (
            ", or make a handler-call recording of it to replay here: `nakama-replay convert REC -o CALLS.nkrec "
            "[--tick-rate N] [--server-log NAKAMA.log]`"
        )
    return hint


def _run(
    runtime: MatchRuntime,
    header: Header,
    events: Iterable[Any],
    path: str,
    options: ReplayOptions,
    observer: Callable[[StepResult], None] | None,
    reader: Recording | None = None,
) -> ReplayResult:
    markers: list[CrashMarker] = []
    # the calls of the last ticks, as (tick, call) or, for a plain loop that matched, (tick, its message rows, its
    # chunk's presences): described only at the end, formatting every tick would dominate (and the handler had
    # the messages' list)
    recent: deque[tuple[Any, ...]] = deque()
    divergences: list[Divergence] = []
    divergence_count = 0
    ticks = calls = 0
    stop_step: StepResult | None = None
    beacon = active_beacon()  # a supervisor's: it is told how many recorded calls were read
    position = 0
    until_tick = options.until_tick
    kept = options.last_ticks - 1
    apply = runtime.apply
    replay_loop = runtime.replay_loop
    replay_plain = runtime.replay_plain
    rows_decoder = MessageBatch.rows_decoder
    run: PlainLoops | None = None  # a chunk's plain loops, being run (replay_plain)
    e: Any = None
    events = iter(events)
    # one loop over the recorded events, no generator between them and the runtime: at tens of thousands
    # of ticks a second each layer costs a measurable part of the replay
    while True:
        if run is None:
            e = next(events, None)
            if e is None:
                break
            if type(e) is PlainLoops:  # a chunk's plain loops (Recording.replay_runs): run in one loop
                run = e
        if run is not None:
            done, position, e = replay_plain(run, until_tick, recent, kept, position)
            calls += done
            ticks += done
            if e is None:  # the chunk is done
                run = None
                continue
            if e is UNTIL:
                break
        if type(e) is StepResult:  # a loop replay_plain ran that did not simply match
            steps: Iterable[StepResult] = (e,)
        elif type(e) is tuple:  # a plain loop in its encoded parts (Recording.replay_events)
            tick = e[0]
            if until_tick is not None and tick > until_tick:
                break
            if beacon is not None:
                position += 1
                beacon.position(position)
            if not runtime.pending_kicks:
                messages = e[9]  # decoded by the reader (iter_replay_typed), or the rows are to be checked here
                if messages is None:
                    try:
                        messages = rows_decoder(e[1], e[5])
                    except (ValueError, TypeError, IndexError, KeyError):
                        tuple(MessageBatch(e[1], e[5], e[8], e[7]))  # raises the reader's error naming the message
                        raise
                step = replay_loop(messages, e)
                if step is None:  # it ran and matched its recorded outcome
                    calls += 1
                    ticks += 1
                    recent.append((tick, e[1], e[5]))
                    while recent[0][0] < tick - kept:
                        recent.popleft()
                    continue
                steps = (step,)
            else:  # a synthetic leave comes first: the reference path
                steps = _steps_of(runtime, decode_loop(e[6], e[7], e[5], e[8]))
        elif isinstance(e, CrashMarker):
            markers.append(e)
            continue
        elif isinstance(e, WireEvent):
            raise RecordingError(
                f"{path}: a wire recording (what sockets saw, not the handler's calls): {_wire_hint()}"
            )
        else:
            if until_tick is not None and e.tick > until_tick:
                break
            if beacon is not None:
                position += 1
                beacon.position(position)
            # synthetic calls may come before or after
            synthetic = runtime.pending_kicks or type(e) is JoinAttemptCall
            steps = _steps_of(runtime, e) if synthetic else (apply(e),)
        for step in steps:
            if not step.executed:
                continue
            calls += 1
            call = step.call
            if type(call) is LoopCall:
                ticks += 1
            recent.append((call.tick, call))
            while recent[0][0] < call.tick - kept:
                recent.popleft()
            if step.synthetic:
                step.divergences.insert(
                    0, Divergence("synthetic call", None, describe_call(call), call.tick, call.callback, step.index)
                )
            if step.divergences:
                divergence_count += len(step.divergences)
                room = options.max_divergences - len(divergences)
                divergences.extend(step.divergences[: max(0, room)])
                if runtime.beacon is not None:  # a supervisor judging a death needs to know the replay had diverged
                    runtime.beacon.diverged(divergence_count)
            if observer is not None:
                observer(step)
            if runtime.stopped:
                stop_step = step
                break
        if stop_step is not None:
            break
    after: list[Call] = []
    if stop_step is not None:
        # the crash marker follows the crashing call: read on to find it, and count the recorded calls that
        # come after the stop (Nakama never calls the handler of a stopped match)
        for e in _records(run, events):
            match e:
                case CrashMarker():
                    markers.append(e)
                case WireEvent():
                    pass
                case _:
                    if options.until_tick is not None and e.tick > options.until_tick:
                        break
                    after.append(e)
    recorded_crash = markers[-1] if markers else None
    if recorded_crash is not None and options.until_tick is not None and recorded_crash.tick > options.until_tick:
        recorded_crash = None
    crash = runtime.crash
    if crash is not None:
        outcome = "hung" if crash.hung else "crashed"
    elif runtime.stopped:
        outcome = "stopped"
    else:
        outcome = "completed"
    after_stop = _after_stop(stop_step, after, markers) if after and stop_step is not None else None
    integrity = reader.integrity() if reader is not None else None
    verdict = decide(
        crash,
        recorded_crash,
        divergence_count,
        runtime.stopped,
        integrity,
        allow_incomplete=options.allow_incomplete,
        calls=calls,
        ticks=ticks,
        after_stop=after_stop,
    )
    return ReplayResult(
        outcome=outcome,
        reproduced=verdict.reproduced,
        verdict=verdict.sentence,
        ticks_replayed=ticks,
        calls_replayed=calls,
        crash=crash,
        recorded_crash=recorded_crash,
        stop_reason=runtime.stop_reason,
        presences=tuple(runtime.presences),
        last_inputs=[
            describe_call(r[1] if len(r) == 2 else LoopCall(r[0], tuple(rows_decoder(r[1], r[2])))) for r in recent
        ],
        divergences=divergences,
        divergence_count=divergence_count,
        logs=runtime.logger.lines[-20:],
        handler=os.path.normpath(getattr(runtime.handler, "path", "")),
        recording=path,
        label=runtime.label,
        after_stop=after_stop,
        status=verdict.status,
        mismatch=verdict.mismatch,
        integrity=integrity,
    )


def _records(run: PlainLoops | None, events: Iterator[Any]) -> Iterator[Any]:
    """The events left after a stop as records: the loops left of ``run``, then ``events``."""
    if run is not None:
        yield from run.calls()
    for e in events:
        if type(e) is PlainLoops:
            yield from e.calls()
        elif type(e) is tuple:
            yield decode_loop(e[6], e[7], e[5], e[8])
        else:
            yield e


def _after_stop(stop: StepResult, after: list[Call], markers: list[CrashMarker]) -> AfterStop:
    """Recorded calls after the call that stopped the replay: Nakama never calls a stopped match's handler
    (match_handler.go checks ``stopped`` before every queued call), so either the recorded match had not
    stopped there (the recorded handler went on: Nakama made them) or the recording says it stopped there
    and still holds them (it is inconsistent: Nakama could not have made them). Either way they were not
    replayed (``replay.runtime.decide`` says so)."""
    call = stop.call
    recorded = call.outcome is not None and call.outcome.stopped
    recorded = recorded or any(m.callback == call.callback and m.tick == call.tick for m in markers)
    first = after[0]
    return AfterStop(len(after), first.callback, first.tick, not recorded, call.callback, call.tick)


def with_outcome(call: Call, step: StepResult) -> Call:
    """The call as a capture records it: with its observed outcome and the nondeterministic values used."""
    return dataclasses.replace(call, outcome=step.outcome, nondeterministic=step.nondeterministic)
