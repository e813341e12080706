"""Run a handler live and script its clients: the in-process capture's driver.

``MatchDriver`` plays Nakama's part for a match whose clients are a script (fixtures, tests, benchmarks) or
real sockets (``nakama-replay serve``): a join runs ``match_join_attempt`` and, when accepted,
``match_join``; data waits in the input queue (``queue_size`` messages, beyond which Nakama drops them)
until the next ``tick``; a kick is followed by a leave with reason 3. Every call goes through the same
``MatchRuntime`` a replay uses, and, with ``capture=PATH``, into a ``recorder.capture.CaptureSink`` with its
outcome, a per-tick state digest, snapshots every ``snapshot_every`` ticks and the nondeterministic values
the handler consumed (through ``redactor``, when given, as ``serve`` does). The file is opened once
``match_init`` has run, so its header carries the tick rate (and label) the handler chose when the given
header has none. The capture writes a chunk per 0.25 s of the match (``chunk_ticks`` sets the ticks per
chunk; ``realtime=True``, for ticks that come at the tick rate, also writes one after 0.25 s of wall time).
Ids are derived from names and a seed, so a script makes the same recording every time.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from recorder.capture import CaptureSink
from recorder.format import (
    Call,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Presence,
    PresenceReason,
    SignalCall,
    TerminateCall,
)
from recorder.wire import Redactor
from replay.runtime._handlers import load_handler
from replay.runtime._nk import Sources
from replay.runtime._result import StepResult
from replay.runtime._runtime import MatchRuntime, with_outcome

__all__ = ["MatchDriver"]

_NAMESPACE = uuid.UUID("6f0c8d0e-4d1b-4c1e-9a53-6e616b616d61")


class MatchDriver:
    """A live match under the deterministic runtime, driven by method calls."""

    def __init__(
        self,
        handler: Any,
        header: Header,
        *,
        capture: str | None = None,
        seed: int = 0,
        queue_size: int = 128,
        snapshot_every: int = 0,
        hang_timeout: float | None = 5.0,
        sources: Sources | None = None,
        redactor: Redactor | None = None,
        chunk_ticks: int | None = None,
        realtime: bool = False,
    ) -> None:
        self.handler = load_handler(handler) if isinstance(handler, str) else handler
        self.header = header
        self.runtime = MatchRuntime(
            self.handler,
            header,
            seed=seed,
            sources=sources,
            hang_timeout=hang_timeout,
            digests="always" if capture else "never",
            snapshot_every=snapshot_every,
        )
        self.capture = capture
        self.redactor = redactor
        self.chunk_ticks = chunk_ticks  # ticks per chunk of the capture (default: 0.25 s of the match)
        self.realtime = realtime  # ticks come in real time: the capture also flushes by the wall clock
        self.sink: CaptureSink | None = None
        self.queue_size = queue_size
        self.queue: list[MatchMessage] = []
        self.dropped = 0
        self.steps: list[StepResult] = []
        self._sessions: dict[str, int] = {}
        self._seed = seed

    # -- identities ---------------------------------------------------------------------------------
    def presence(self, username: str, *, session: int | None = None) -> Presence:
        """The presence for ``username``'s ``session``-th session (default: a new one)."""
        n = self._sessions.get(username, 0) + 1 if session is None else session
        if session is None:
            self._sessions[username] = n
        user_id = str(uuid.uuid5(_NAMESPACE, f"{self._seed}/{self.header.match_id}/user/{username}"))
        session_id = str(uuid.uuid5(_NAMESPACE, f"{self._seed}/{self.header.match_id}/session/{username}/{n}"))
        return Presence(user_id, session_id, username, self.header.node)

    # -- state --------------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.runtime.stopped

    @property
    def state(self) -> Any:
        return self.runtime.state

    # -- actions ------------------------------------------------------------------------------------
    def _apply(self, call: Call) -> StepResult:
        step = self.runtime.apply(call)
        self.steps.append(step)
        if self.capture and self.sink is None:
            self._open_sink(step)
        if step.executed and self.sink is not None:
            self.sink.record(with_outcome(call, step))
            if step.crash is not None:
                c = step.crash
                self.sink.crash(c.callback, c.tick, c.error, c.traceback, c.error_type)
        if step.executed and self.runtime.pending_kicks and not self.runtime.stopped:
            kicked = tuple(p.with_reason(PresenceReason.LEAVE) for p in self.runtime.pending_kicks)
            self._apply(LeaveCall(self.runtime.tick, kicked))
        return step

    def _open_sink(self, step: StepResult | None) -> None:
        """Open the capture file; a header without a tick rate or label takes those ``match_init`` returned."""
        if not self.capture:
            return
        header = self.header
        outcome = step.outcome if step is not None and type(step.call) is InitCall else None
        if outcome is not None and outcome.tick_rate and not header.tick_rate:
            header = dataclasses.replace(header, tick_rate=int(outcome.tick_rate))
        if outcome is not None and outcome.label and not header.label:
            header = dataclasses.replace(header, label=outcome.label)
        self.header = header
        self.sink = CaptureSink(
            self.capture,
            header,
            ticks_per_chunk=self.chunk_ticks,
            clock=time.monotonic if self.realtime else None,
            redactor=self.redactor,
        )

    def init(self, params: dict[str, Any] | None = None) -> StepResult:
        return self._apply(InitCall(dict(params or {})))

    def join(
        self,
        who: str | Presence,
        metadata: dict[str, Any] | None = None,
        vars: dict[str, str] | None = None,
    ) -> Presence | None:
        """A join attempt and, when accepted, the join. Returns the presence, or None when rejected."""
        p = self.presence(who) if isinstance(who, str) else who
        step = self._apply(JoinAttemptCall(self.runtime.tick, p, dict(metadata or {}), vars=dict(vars or {})))
        if not step.executed or step.outcome is None or not step.outcome.accept or self.runtime.stopped:
            return None
        self._apply(JoinCall(self.runtime.tick, (p.with_reason(PresenceReason.UNKNOWN),)))
        return p

    def leave(self, p: Presence, reason: int = PresenceReason.LEAVE) -> StepResult:
        return self._apply(LeaveCall(self.runtime.tick, (p.with_reason(reason),)))

    def reconnect(self, p: Presence, metadata: dict[str, Any] | None = None) -> Presence | None:
        """The same user on a new session (the old session's leave is up to the script)."""
        return self.join(self.presence(p.username), metadata)

    def send(self, p: Presence, op_code: int, data: bytes | str | None = None, reliable: bool = True) -> bool:
        """Queue a message for the next tick; False when Nakama's input queue is full and drops it."""
        if len(self.queue) >= self.queue_size:
            self.dropped += 1
            self.runtime.logger.warn("Match handler data processing too slow, dropping data message")
            return False
        payload = data.encode("utf-8") if isinstance(data, str) else data
        receive = self.runtime.sources.time_ms(self.runtime.tick)
        self.queue.append(MatchMessage(p.with_reason(0), op_code, payload, reliable, receive))
        return True

    def tick(self, n: int = 1) -> StepResult | None:
        """Run ``n`` loops (stops early when the match stops); returns the last step."""
        step = None
        for _ in range(n):
            if self.runtime.stopped:
                break
            messages, self.queue = tuple(self.queue), []
            step = self._apply(LoopCall(self.runtime.tick, messages))
        return step

    def signal(self, data: str) -> StepResult:
        return self._apply(SignalCall(self.runtime.tick, data))

    def terminate(self, grace_seconds: int = 0) -> StepResult:
        return self._apply(TerminateCall(self.runtime.tick, grace_seconds))

    def close(self) -> None:
        if self.capture and self.sink is None:  # nothing ran: the file still says what it is about
            self._open_sink(None)
        if self.sink is not None:
            self.sink.close()
        self.runtime.close()

    def __enter__(self) -> MatchDriver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
