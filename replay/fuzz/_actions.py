"""The player that turns client actions into the handler calls Nakama would make.

A fuzzer (``replay.fuzz._fuzz``), a state machine (``replay.fuzz._stateful``) or a user's own test describes what
*clients* do: connect, leave, send, burst, and what the server does on its own: ticks, signals, shutdown, in
the action model live replay and serve share (``replay.realtime._actions``; ``user`` is a fuzzed user's index).
``MatchPlayer`` picks the session that acts and plays each action with ``apply_action`` through
``replay.runtime.MatchDriver``, so the call stream the handler sees is always one Nakama could produce:

- ``Connect`` runs ``match_join_attempt`` and, when accepted, ``match_join``. When the user still has a
  session in the match, this is a reconnect whose new session overtakes the old one's leave.
  ``duplicate=True``: the client's join request arrived twice, so two join attempts run before the join
  (Nakama skips the attempt only for a session already in the match).
- ``Leave`` removes one of the user's sessions (the oldest by default: the stale one in a reconnect) with
  reason 3 (leave or kick), 4 (disconnect) or 0 (Nakama's expired join marker). ``match_join`` gets
  presences with reason 0, as Nakama 3.40 gives them (its join presence is built without a reason).
- ``Send`` / ``Burst`` queue messages from one of the user's sessions for the next tick. A session that is
  not in the match cannot send (Nakama's pipeline drops it); beyond the queue size data is dropped, as
  Nakama does. A message sent just before its session leaves is still delivered at the next tick.
- ``Tick`` runs loops; ``Signal`` runs ``match_signal``; ``Terminate`` runs ``match_terminate``; an ``Rpc``
  does not reach the match.
- A kick by the handler becomes a leave with reason 3 right after the kicking call (the driver does it).

After the match stops (crash, nil state, terminate with grace 0) actions do nothing. ``MatchPlayer``
also watches the dispatcher: a broadcast that names a presence not in the match (which Nakama silently
drops) is kept in ``absent_targets`` for the checks in ``replay.fuzz._checks``.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from recorder.format import Call, Header, Presence
from replay.errors import HandlerError
from replay.realtime._actions import (
    Action,
    Burst,
    Connect,
    Leave,
    Rpc,
    Send,
    Signal,
    Terminate,
    Tick,
    apply_action,
)
from replay.runtime._dispatcher import Dispatcher, as_presence
from replay.runtime._driver import MatchDriver
from replay.runtime._hang import HangGuard
from replay.runtime._result import StepResult
from replay.runtime._runtime import with_outcome

__all__ = [
    "AbsentTarget",
    "MatchPlayer",
    "USER_NAMES",
    "fuzz_header",
    "play",
]

#: Usernames of the fuzzed users, by index.
USER_NAMES = ("alice", "bob", "cho", "dana", "eli", "fay", "gus", "hana")

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # replay/: its frames are not the handler's


@dataclass(frozen=True, slots=True)
class AbsentTarget:
    """A broadcast that named a presence not in the match (Nakama drops it silently)."""

    index: int  # of the call (``StepResult.index``) that broadcast
    op_code: int
    presence: Presence
    location: str  # innermost handler frame "file:function", or "" when unknown
    callback: str = ""
    tick: int = 0


class _WatchingDispatcher(Dispatcher):
    """The runtime's dispatcher, also noting broadcast targets that are not in the match."""

    def __init__(self, presences: list[Presence], deferred_limit: int, player: MatchPlayer) -> None:
        self._player = player
        super().__init__(presences, deferred_limit)

    def _broadcast(self, deferred: bool, op_code: Any, data: Any, presences: Any, sender: Any, reliable: Any) -> None:
        if presences is not None and not self.stopped:
            members = {(p.session_id, p.node) for p in self._presences}
            for p in presences:
                try:
                    q = as_presence(p)
                except HandlerError:
                    continue  # the dispatcher raises this itself
                if (q.session_id, q.node) not in members:
                    self._player._note_absent(op_code, q, _handler_frame(self._player.driver.handler))
        super()._broadcast(deferred, op_code, data, presences, sender, reliable)


_RUNTIME_FILE = os.path.join(_HERE, "runtime", "_runtime.py")


def _handler_frame(handler: Any) -> str:
    """The innermost frame of the handler's code on the stack, named as crash signatures name frames:
    ``file.lua`` from the Lua stack for a Lua handler (``current_frame``), ``file.py:function`` for a
    Python one; "" when there is none. The Python walk stops at the runtime's call into the handler, so
    whatever called the replay (a test, hypothesis) is never taken for the handler."""
    current = getattr(handler, "current_frame", None)
    if current is not None:
        return str(current())
    for f in reversed(traceback.extract_stack()[:-2]):
        if f.filename == _RUNTIME_FILE:
            break
        if not f.filename.startswith(_HERE) and "lupa" not in f.filename:
            return f"{os.path.basename(f.filename)}:{f.name}"
    return ""


class _Driver(MatchDriver):
    on_step: Callable[[StepResult], None] | None = None

    def _apply(self, call: Call) -> StepResult:
        step = super()._apply(call)
        if self.on_step is not None:
            self.on_step(step)
        return step


def fuzz_header(handler_path: str = "", params: dict[str, Any] | None = None, seed: int = 0) -> Header:
    """The header of a generated match: fixed ids and start time, so a seed makes the same match."""
    match_uuid = uuid.uuid5(uuid.UUID("6f0c8d0e-4d1b-4c1e-9a53-6e616b616d61"), f"fuzz/{seed}")
    params = dict(params or {})
    rate = params.get("tick_rate", 10)
    return Header(
        match_id=f"{match_uuid}.nakama1",
        log_match_id=str(match_uuid),
        module=os.path.splitext(os.path.basename(handler_path))[0] if handler_path else "",
        tick_rate=rate if isinstance(rate, int) and 1 <= rate <= 60 else 10,
        node="nakama1",
        source="fuzz",
        started_ms=1_764_000_000_000,
        params=params,
    )


class MatchPlayer:
    """Plays client actions against a handler through the deterministic runtime."""

    def __init__(
        self,
        handler: Any,
        header: Header | None = None,
        *,
        seed: int = 0,
        queue_size: int = 128,
        hang_timeout: float | None = 1.0,
        names: Sequence[str] = USER_NAMES,
        checks: Callable[[MatchPlayer, StepResult], None] | None = None,
        hang_guard: HangGuard | None = None,
    ) -> None:
        self.header = header or fuzz_header()
        self.driver = _Driver(handler, self.header, seed=seed, queue_size=queue_size, hang_timeout=hang_timeout)
        rt = self.driver.runtime
        self._own_guard = None
        self.on_close: list[Callable[[], None]] = []  # run after the match's driver is closed
        if hang_guard is not None:  # one watchdog thread for many short matches (a fuzz run)
            self._own_guard, rt.hang_guard = rt.hang_guard, hang_guard
        rt.dispatcher = _WatchingDispatcher(rt.presences, rt.dispatcher.deferred_limit, self)
        self.names = tuple(names)
        self.sessions: dict[int, list[Presence]] = {}  # user -> every session opened, oldest first
        self.versions: dict[str, str] = {}  # session id -> client version from the join metadata
        self.absent_targets: list[AbsentTarget] = []
        if checks is not None:
            self.driver.on_step = lambda step: checks(self, step)

    # -- views --------------------------------------------------------------------------------------
    @property
    def runtime(self) -> Any:
        return self.driver.runtime

    @property
    def steps(self) -> list[StepResult]:
        return self.driver.steps

    @property
    def stopped(self) -> bool:
        return self.driver.stopped

    @property
    def state(self) -> Any:
        return self.driver.state

    @property
    def presences(self) -> list[Presence]:
        return list(self.runtime.presences)

    def calls(self) -> list[Call]:
        """The executed calls, with their outcomes and consumed values, as a capture records them."""
        return [with_outcome(s.call, s) for s in self.driver.steps if s.executed]

    def live_sessions(self, user: int) -> list[Presence]:
        """The user's sessions that are in the match now, oldest first."""
        present = {p.session_id for p in self.runtime.presences}
        return [p for p in self.sessions.get(user, []) if p.session_id in present]

    def _note_absent(self, op_code: Any, p: Presence, location: str) -> None:
        self.absent_targets.append(AbsentTarget(self.runtime.index - 1, op_code, p, location))

    # -- playing ------------------------------------------------------------------------------------
    def start(self, params: dict[str, Any] | None = None) -> list[StepResult]:
        """``match_init`` with ``params`` (default: the header's)."""
        return self._run(lambda: self.driver.init(self.header.params if params is None else params))

    def play(self, action: Action) -> list[StepResult]:
        """Play one action; returns the steps (executed or not) it caused."""
        if self.stopped:
            return []
        return self._run(lambda: self._dispatch(action))

    def play_all(self, actions: Iterable[Action]) -> list[StepResult]:
        out: list[StepResult] = []
        for a in actions:
            out.extend(self.play(a))
        return out

    def _run(self, fn: Any) -> list[StepResult]:
        first, noted = len(self.driver.steps), len(self.absent_targets)
        fn()
        new = self.driver.steps[first:]
        if len(self.absent_targets) > noted:
            by_index = {s.index: s.call for s in new}
            for i in range(noted, len(self.absent_targets)):
                t = self.absent_targets[i]
                call = by_index.get(t.index)
                if call is not None:
                    self.absent_targets[i] = dataclasses.replace(t, callback=call.callback, tick=call.tick)
        return new

    def _dispatch(self, a: Action) -> None:
        if isinstance(a, Connect):
            self._connect(a)
        elif isinstance(a, Leave | Send | Burst):
            p = self._session(int(a.user), "latest" if isinstance(a, Burst) else a.session)
            if p is not None:
                apply_action(self.driver, a, p)
        elif isinstance(a, Tick | Signal | Terminate | Rpc):
            apply_action(self.driver, a)  # an Rpc does not reach the match: nothing
        else:
            raise TypeError(f"not a client action: {a!r}")

    def _session(self, user: int, which: str) -> Presence | None:
        live = self.live_sessions(user)
        if not live:
            return None
        return live[0] if which == "oldest" else live[-1]

    def _connect(self, a: Connect) -> None:
        user = int(a.user)
        name = self.names[user] if 0 <= user < len(self.names) else f"user{user}"
        p = self.driver.presence(name)
        self.sessions.setdefault(user, []).append(p)
        version = a.metadata.get("client_version")
        if version is not None:
            self.versions[p.session_id] = str(version)
        apply_action(self.driver, a, p, dict(a.metadata))  # the join's vars are its metadata here

    def close(self) -> None:
        if self._own_guard is not None:  # a shared guard outlives this match
            self.runtime.hang_guard, self._own_guard = self._own_guard, None
        self.driver.close()
        for hook in self.on_close:
            hook()

    def __enter__(self) -> MatchPlayer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def play(
    handler: Any, actions: Iterable[Action], header: Header | None = None, **kw: Any
) -> tuple[list[Call], MatchPlayer]:
    """Play ``actions`` from a fresh match (init with the header's params); returns the executed calls
    (with outcomes) and the closed player for inspection (``crash``, ``absent_targets``, ``state``)."""
    player = MatchPlayer(handler, header, **kw)
    try:
        player.start()
        player.play_all(actions)
    finally:
        player.close()
    return player.calls(), player
