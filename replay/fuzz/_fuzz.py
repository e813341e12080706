"""Find crashes before players do: search generated matches for failures, write minimal recordings.

``fuzz(handler, FuzzOptions(...))`` plays matches of client actions (``replay.fuzz._strategies``) through the
deterministic runtime (``replay.fuzz.MatchPlayer``) under the checks of ``replay.fuzz._checks`` (no crash or
hang, no broadcast to an absent presence, the profile's invariants), with hypothesis generating them.

The search runs in rounds. A round is one hypothesis run (seeded: the same seed finds the same failures)
that stops at its first new failure and shrinks it, keeping the failure's key (``callback|error
type|location``) while shrinking. The next round treats every known key as passing and looks for another,
until the budget of generated matches (``max_examples``; shrinking runs come on top) is spent, a round
finds nothing, or ``max_findings`` distinct failures are known (the report's ``stopped_by`` says which:
``budget``, ``exhausted`` or ``max_findings``; only the last leaves part of the budget unsearched). Each round has its own hypothesis example database under ``OUT/.hypothesis`` (keyed by
handler, profile and the keys already known), so a second run starts by replaying the failures the first
one found, and a fixed handler simply passes them.

Each failure is then reduced further (``replay.fuzz._minimize``: 1-minimal client actions, then call- and
message-level deletion under the stream rules of ``replay.fuzz._streams``; with ``shrink=False`` hypothesis's own
shrinking is skipped and these reducers do it all, faster, with payload values left as generated), replayed
once more to record
outcomes, and written as ``OUT/<module>-<callback>-<type>-<hash>.nkrec`` with, for crashes, a crash
marker and ``NAME.expect.toml`` for the regression plugin (``no_crash = true`` against the fuzzed
handler: the test fails until the bug is fixed, then guards the fix). The written recording is checked
to reproduce with ``replay.runtime.reproduce``, the engine behind ``nakama-replay reproduce``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recorder.errors import NakamaReplayError
from recorder.format import Call, CrashMarker, InitCall, JoinAttemptCall, write_recording
from recorder.format._model import CALL_TYPES
from replay.errors import HandlerCrashed, MatchCheckFailed
from replay.fuzz._actions import MatchPlayer, fuzz_header
from replay.fuzz._checks import MatchChecks
from replay.fuzz._minimize import reduce_actions, reduce_calls
from replay.fuzz._strategies import DEFAULT_PROFILE, FuzzProfile, client_actions
from replay.fuzz._streams import run_stream, strip_outcomes
from replay.realtime._actions import Action
from replay.report._values import describe_data
from replay.runtime._handlers import load_handler
from replay.runtime._hang import HangGuard
from replay.runtime._runtime import with_outcome

__all__ = ["DEFAULT_MAX_EXAMPLES", "Finding", "FuzzOptions", "FuzzReport", "Progress", "fuzz"]

#: Generated matches per run unless told otherwise.
DEFAULT_MAX_EXAMPLES = 1000


@dataclass
class FuzzOptions:
    """How to search. ``out`` None writes nothing (and uses no example database)."""

    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int = 0
    out: str | os.PathLike[str] | None = "fuzz-out"
    profile: FuzzProfile | None = None
    max_actions: int = 64
    max_users: int | None = None
    hang_timeout: float | None = 1.0
    database: bool = True
    absent_targets: bool = True
    max_findings: int = 8  # distinct failures after which the search stops (the report says so)
    shrink: bool = True  # hypothesis's shrinking; the reducers of replay.fuzz._minimize run either way
    supervised: bool = True  # matches play in a supervised handler process (a handler given by path)
    max_memory: int | None = None  # its memory cap (None: replay.runtime._supervisor.DEFAULT_MAX_MEMORY)
    module_path: list[str] = field(default_factory=list)  # extra folders for a Lua handler's require


class Progress(Protocol):
    def update(self, examples: int, budget: int, findings: int, phase: str) -> None: ...
    def found(self, key: str, examples: int, seconds: float) -> None: ...


@dataclass
class Finding:
    """One distinct failure: its key, the minimal actions and call stream, and where it was written."""

    key: str
    kind: str  # HandlerCrashed, BroadcastToAbsentPresence, InvariantViolated
    message: str
    actions: list[Action]
    calls: list[Call]  # the minimal stream, with outcomes, as written
    examples: int  # generated matches until it was first seen (counted over all rounds)
    seconds: float  # since the start of the run
    callback: str = ""
    tick: int = 0
    crash: Any = None  # the runtime's Crash for a crash or hang (``replay.runtime.Crash``)
    recording: Path | None = None
    expectation: Path | None = None
    handler: str = ""  # the handler spec as given: the reproduce command names it (recordings are untrusted)
    module_path: list[str] = field(default_factory=list)  # the --module-path folders the handler was loaded with

    @property
    def is_crash(self) -> bool:
        return self.crash is not None

    def reproduce_command(self) -> str | None:
        if self.recording is None:
            return None
        handler = f" --handler {shlex.quote(self.handler)}" if self.handler else ""
        handler += "".join(f" --module-path {shlex.quote(folder)}" for folder in self.module_path)
        return f"nakama-replay reproduce {shlex.quote(str(self.recording))}{handler}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "message": self.message,
            "callback": self.callback,
            "tick": self.tick,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "actions": [_action_json(a) for a in self.actions],
            "calls": len(self.calls),
            "recording": None if self.recording is None else str(self.recording),
            "expectation": None if self.expectation is None else str(self.expectation),
            "reproduce": self.reproduce_command(),
        }


@dataclass
class FuzzReport:
    """How a run went: matches generated, time, the distinct failures found (in order found), and why the
    search stopped (``stopped_by``: ``budget`` spent, ``exhausted``: a round found nothing new, or
    ``max_findings`` reached before the budget was spent)."""

    handler: str
    profile: str
    seed: int
    budget: int
    examples: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    database: Path | None = None
    max_findings: int = 0
    stopped_by: str = ""
    seeds: list[int] = field(default_factory=list)  # a merged run of several seeds (replay.fuzz._parallel)
    duplicates: int = 0  # findings of a later seed with a key an earlier one found: merged away

    @property
    def capped(self) -> bool:
        """True when ``max_findings`` ended the search with part of the budget left: more may remain."""
        return self.stopped_by == "max_findings"

    def to_json(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "profile": self.profile,
            "seed": self.seed,
            "budget": self.budget,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "database": None if self.database is None else str(self.database),
            "max_findings": self.max_findings,
            "stopped_by": self.stopped_by,
            "findings": [f.to_json() for f in self.findings],
        } | ({"seeds": self.seeds, "duplicates": self.duplicates} if self.seeds else {})


def _action_json(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"action": type(a).__name__}
    for f in dataclasses.fields(a):
        if not f.repr:  # Send.targets: never set by the fuzzer
            continue
        v = getattr(a, f.name)
        out[f.name] = describe_data(v) if isinstance(v, bytes) else v
    return out


class _Found(Exception):
    """Raised inside the hypothesis test for a new failure; one subclass per key, so hypothesis keeps
    the key while shrinking (it tells failures apart by exception type and location)."""

    def __init__(self, failure: MatchCheckFailed, actions: list[Action]) -> None:
        super().__init__(failure.key)
        self.failure, self.actions = failure, actions
        self.first_seen: tuple[int, float] = (0, 0.0)  # (examples, seconds) when first found


def _hash(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=6).hexdigest()


class _Sandbox:
    """Where matches are played when supervised: a handler process (``replay.runtime._supervisor``) holding a
    ``_Fuzzer`` of its own, loaded from the handler and profile paths. A match whose handler hangs past the
    hang timeout, exits, segfaults or runs out of memory is a ``HandlerCrashed`` failure like any other
    (keyed ``callback|Hang|?``, ``callback|HandlerExit|?``...), and the next match gets a new process."""

    def __init__(self, setup: tuple[Any, ...], options: FuzzOptions) -> None:
        import tempfile

        from replay.runtime._supervisor import DEFAULT_MAX_MEMORY, HandlerProcess, Limits

        self.setup = setup
        self.worker = HandlerProcess(Limits(options.hang_timeout, options.max_memory or DEFAULT_MAX_MEMORY))
        self.worker.start()
        self._tmp = tempfile.TemporaryDirectory(prefix="nkreplay-fuzz-")
        self.journal = str(Path(self._tmp.name) / "calls.journal")

    def load(self) -> None:
        """Load the handler and profile in the handler process (a handler that cannot is bad input)."""
        self._call("load_job")

    def _call(self, job: str, *args: Any) -> Any:
        from replay.errors import HandlerDied, HandlerLoadError
        from replay.runtime._hang import LOADING

        try:
            return self.worker.call(f"replay.fuzz._fuzz:{job}", self.setup, *args)
        except HandlerDied as died:
            if died.death.callback == LOADING:
                raise HandlerLoadError(self.setup[0], f"{died.death.describe()} while it was being loaded") from None
            return _death_failure(died.death)

    def play(self, actions: list[Action], want_calls: bool) -> tuple[MatchCheckFailed | None, list[Call] | None]:
        out = self._call("play_job", actions, self.journal if want_calls else None)
        if isinstance(out, MatchCheckFailed):  # died: the calls up to the fatal one are in the journal
            return out, read_journal(self.journal) if want_calls else None
        failure, calls = out
        return _unpack_failure(failure), calls

    def stream(self, calls: list[Call], digests: bool) -> tuple[str | None, MatchCheckFailed | None, list[Call]]:
        out = self._call("stream_job", calls, digests, self.journal if digests else None)
        if isinstance(out, MatchCheckFailed):
            return out.key, out, read_journal(self.journal) if digests else []
        key, failure, written = out
        return key, _unpack_failure(failure), written

    def reproduces(self, path: Path) -> tuple[bool, str]:
        from replay.runtime._runtime import ReplayOptions
        from replay.runtime._supervisor import reproduce_supervised

        o = self.setup[3]
        options = ReplayOptions(seed=o.seed, hang_timeout=o.hang_timeout, module_path=o.module_path)
        result = reproduce_supervised(path, self.setup[0], options, process=self.worker)
        return result.reproduced, result.verdict

    def close(self) -> None:
        self.worker.close()
        self._tmp.cleanup()


def _journal_to(path: str | None, header: Any) -> Callable[[MatchPlayer], None] | None:
    """(In the handler process.) Write each call the player's runtime applies to ``path`` (JSON Lines, the
    interchange form) before it runs, and again with its outcome after, so the calls up to a fatal one
    survive the process (``read_journal``)."""
    if path is None:
        return None
    from recorder.format import jsonl_lines

    out = open(path, "w", encoding="utf-8")  # closed when the match ends (or by the process's death)
    out.write(next(jsonl_lines(header, ())))

    def write(call: Call) -> None:
        out.write(list(jsonl_lines(header, [call]))[1])
        out.flush()

    def prepare(player: MatchPlayer) -> None:
        rt = player.runtime
        apply = rt.apply

        def journaled(call: Call) -> Any:
            write(dataclasses.replace(call, outcome=None))
            step = apply(call)
            if step.executed:
                write(with_outcome(call, step))  # an executed call always has an (observed) outcome
            return step

        rt.apply = journaled
        player.on_close.append(out.close)

    return prepare


def read_journal(path: str) -> list[Call]:
    """The executed calls of a match whose handler process died, with outcomes, then the fatal call."""
    from recorder.errors import RecordingError
    from recorder.format import read_jsonl

    calls: list[Call] = []
    pending: Call | None = None
    try:
        with open(path, "rb") as f:
            _, events = read_jsonl(f, path)
            for e in events:
                if not isinstance(e, CALL_TYPES):  # the journal holds only calls
                    continue
                if e.outcome is None:
                    pending = e
                else:
                    calls.append(e)
                    pending = None
    except (OSError, RecordingError):  # the process died mid-line: what came before stands
        pass
    return calls + ([pending] if pending is not None else [])


def _death_failure(death: Any) -> MatchCheckFailed:
    """A supervised match's handler process hung or died: a crash failure at its callback and tick."""
    from replay.runtime._signature import CrashSignature

    crash = death.crash()
    return HandlerCrashed(crash, CrashSignature.from_crash(crash))


def _pack_failure(failure: MatchCheckFailed | None) -> Any:
    from replay.runtime._supervisor import portable_error

    return None if failure is None else portable_error(failure)


def _unpack_failure(packed: Any) -> Any:
    from replay.runtime._supervisor import rebuild_error

    return None if packed is None else rebuild_error(packed)


_worker_fuzzers: list[tuple[tuple[Any, ...], _Fuzzer]] = []


def _worker_fuzzer(setup: tuple[Any, ...]) -> _Fuzzer:
    """(In the handler process.) The fuzzer for ``setup``: handler and profile loaded once per process."""
    f = _worker_fuzzers[0][1] if _worker_fuzzers and _worker_fuzzers[0][0] == setup else None
    if f is None:
        spec, ref, header, options = setup
        profile = _load_profile_ref(ref)
        options = dataclasses.replace(options, profile=profile, out=None, supervised=False)
        paths = options.module_path
        f = _Fuzzer(
            load_handler(spec, module_path=paths),
            spec,
            options,
            None,
            lambda: load_handler(spec, module_path=paths),
            header=header,
        )
        _worker_fuzzers[:] = [(setup, f)]
    return f


def load_job(setup: tuple[Any, ...]) -> None:
    """(In the handler process.) Load the handler and the profile."""
    _worker_fuzzer(setup)


def play_job(setup: tuple[Any, ...], actions: list[Action], journal: str | None) -> tuple[Any, list[Call] | None]:
    """(In the handler process.) Play one match: its failure (portable) and, with a journal, its calls."""
    f = _worker_fuzzer(setup)
    failure, calls = f.play(actions, journal is not None, _journal_to(journal, f.header))
    return _pack_failure(failure), calls


def stream_job(
    setup: tuple[Any, ...], calls: list[Call], digests: bool, journal: str | None
) -> tuple[str | None, Any, list[Call]]:
    """(In the handler process.) Run a call stream: its failure key, failure and the calls with outcomes."""
    f = _worker_fuzzer(setup)
    key, failure, written = f.stream(calls, digests, _journal_to(journal, f.header))
    return key, _pack_failure(failure), written


class _Fuzzer:
    def __init__(
        self,
        handler: Any,
        spec: str,
        options: FuzzOptions,
        progress: Progress | None,
        fresh: Callable[[], Any] | None,
        *,
        header: Any = None,
        sandbox: _Sandbox | None = None,
    ) -> None:
        self.handler = handler
        self.fresh = fresh or (lambda: handler)  # a handler per match: no state leaks from match to match
        self.spec = spec
        self.options = options
        self.profile = options.profile or DEFAULT_PROFILE
        self.progress = progress
        self.header = header or fuzz_header(getattr(handler, "path", spec), dict(self.profile.params), options.seed)
        self.sandbox = sandbox
        self.checks = MatchChecks(self.profile.invariants, absent_targets=options.absent_targets)
        self.guard = HangGuard(options.hang_timeout)
        self.strategy = client_actions(self.profile, max_users=options.max_users, max_actions=options.max_actions)
        self.out = None if options.out is None else Path(options.out)
        self.start = time.monotonic()
        self.generated = 0
        self._classes: dict[str, type[_Found]] = {}

    # -- one match ------------------------------------------------------------------------------------
    def play(
        self, actions: list[Action], want_calls: bool = False, prepare: Callable[[MatchPlayer], None] | None = None
    ) -> tuple[MatchCheckFailed | None, list[Call] | None]:
        """Play one match; its failure (None: every check held) and, when asked, the calls it made."""
        if self.sandbox is not None:
            return self.sandbox.play(actions, want_calls)
        player = MatchPlayer(
            self.fresh(),
            self.header,
            seed=self.options.seed,
            queue_size=self.profile.queue_size,
            checks=self.checks,
            hang_guard=self.guard,
        )
        if prepare is not None:
            prepare(player)
        failure = None
        try:
            player.start()
            player.play_all(actions)
        except MatchCheckFailed as exc:
            failure = exc
        finally:
            player.close()
        return failure, player.calls() if want_calls else None

    def stream(
        self, calls: list[Call], digests: bool = False, prepare: Callable[[MatchPlayer], None] | None = None
    ) -> tuple[str | None, MatchCheckFailed | None, list[Call]]:
        """Run a call stream: its failure key (None: invalid stream or no failure), the failure, and the
        executed calls with their outcomes (as a recording holds them)."""
        if self.sandbox is not None:
            return self.sandbox.stream(calls, digests)
        result = run_stream(
            self.fresh(),
            self.header,
            calls,
            self.checks,
            hang_guard=self.guard,
            seed=self.options.seed,
            digests=digests,
            prepare=prepare,
        )
        return result.key, result.failure, [with_outcome(s.call, s) for s in result.steps if s.executed]

    # -- the search -----------------------------------------------------------------------------------
    def database(self, known: set[str]) -> Any:
        if self.out is None or not self.options.database:
            return None
        from hypothesis.database import DirectoryBasedExampleDatabase

        handler_id = os.path.abspath(getattr(self.handler, "path", self.spec))
        key = _hash(handler_id, self.profile.source, self.options.max_users, self.options.max_actions)
        return DirectoryBasedExampleDatabase(str(self.out / ".hypothesis" / key / _hash(sorted(known))))

    def round(self, known: set[str], number: int) -> _Found | None:
        from hypothesis import HealthCheck, Phase, Verbosity, given, settings
        from hypothesis import seed as with_seed

        budget = self.options.max_examples - self.generated
        calls = 0
        first: int | None = None
        first_seconds = 0.0
        found_before = len(known)

        # settings outside seed: @seed alone turns the example database off (it is meant for replaying
        # one failure); a fuzz run wants both, a fixed seed and the database of known failures
        @settings(
            max_examples=budget,
            deadline=None,
            database=self.database(known),
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            phases=(Phase.explicit, Phase.reuse, Phase.generate) + ((Phase.shrink,) if self.options.shrink else ()),
            verbosity=Verbosity.quiet,
            print_blob=False,
        )
        @with_seed(self.options.seed if number == 0 else int(_hash(self.options.seed, number), 16))
        @given(self.strategy)
        def search(actions: list[Action]) -> None:
            nonlocal calls, first, first_seconds
            calls += 1
            failure, _ = self.play(actions)
            if self.progress is not None:
                examples = self.generated + (calls if first is None else first)
                phase = "search" if first is None else "shrink"
                self.progress.update(examples, self.options.max_examples, found_before + (first is not None), phase)
            if failure is not None and failure.key not in known:
                if first is None:
                    first, first_seconds = calls, time.monotonic() - self.start
                    if self.progress is not None:
                        self.progress.found(failure.key, self.generated + first, time.monotonic() - self.start)
                cls = self._classes.setdefault(failure.key, type(f"Found_{_hash(failure.key)}", (_Found,), {}))
                raise cls(failure, actions)

        try:
            search()
        except _Found as exc:
            self.generated += first if first is not None else calls
            exc.first_seen = (self.generated, first_seconds)
            return exc
        self.generated += calls
        return None

    # -- reducing and writing ---------------------------------------------------------------------------
    def minimize(self, found: _Found) -> Finding:
        key = found.failure.key
        tried = [0]

        def shrinking(what: str, size: int) -> None:
            tried[0] += 1
            if self.progress is not None:
                phase = f"minimize: {tried[0]} candidates tried, {what} at {size}"
                self.progress.update(self.generated, self.options.max_examples, -1, phase)

        def actions_fail(cand: list[Action]) -> bool:
            shrinking("actions", len(cand))
            failure, _ = self.play(cand)
            return failure is not None and failure.key == key

        def calls_fail(cand: list[Call]) -> bool:
            shrinking("calls", len(cand))
            return self.stream(cand)[0] == key

        if not actions_fail(found.actions):
            raise NakamaReplayError(f"fuzz: the failure {key} did not happen again when its actions were replayed")
        actions = reduce_actions(found.actions, actions_fail)
        _, played = self.play(actions, want_calls=True)
        calls = reduce_calls(strip_outcomes(played or []), calls_fail)
        final_key, failure, written = self.stream(calls, digests=True)
        if final_key != key or failure is None:
            raise NakamaReplayError(f"fuzz: the reduced stream for {key} no longer fails the same way")
        if len(written) != len(calls) and not calls_fail(strip_outcomes(written)):
            raise NakamaReplayError(f"fuzz: the stream written for {key} no longer fails the same way")
        examples, seconds = found.first_seen
        crash = failure.crash if isinstance(failure, HandlerCrashed) else None
        return Finding(
            key,
            type(failure).__name__,
            str(failure),
            actions,
            written,
            examples,
            seconds,
            failure.callback,
            failure.tick,
            crash,
        )

    def write(self, finding: Finding) -> None:
        assert self.out is not None
        self.out.mkdir(parents=True, exist_ok=True)
        callback, kind = finding.key.split("|")[:2]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.header.module or 'match'}-{callback}-{kind}")[:60].strip("-")
        path = self.out / f"{slug}-{_hash(finding.key)}.nkrec"
        handler_path = getattr(self.handler, "path", self.spec)
        rel = os.path.relpath(os.path.abspath(handler_path), os.path.abspath(self.out))
        cls = self.spec.rpartition(":")[2] if ":" in os.path.basename(self.spec) else ""
        versions = {
            c.presence.session_id: str(c.metadata["client_version"])
            for c in finding.calls
            if type(c) is JoinAttemptCall and "client_version" in c.metadata
        }
        init = next((c for c in finding.calls if type(c) is InitCall), None)
        rate = init.outcome.tick_rate if init is not None and init.outcome is not None else None
        header = dataclasses.replace(
            self.header,
            tick_rate=rate or self.header.tick_rate,  # the rate match_init chose, not the params' guess
            handler=f"{rel}:{cls}" if cls else rel,
            client_versions=versions,
            tags={
                "fuzz": {
                    "seed": self.options.seed,
                    "key": finding.key,
                    "kind": finding.kind,
                    "examples": finding.examples,
                }
            },
        )
        events: list[Any] = list(finding.calls)
        c = finding.crash
        if c is not None:
            events.append(CrashMarker(c.callback, c.tick, c.error, c.traceback, c.error_type))
        write_recording(path, header, events)
        finding.recording = path
        finding.handler = self.spec
        finding.module_path = list(self.options.module_path)
        if c is not None:
            finding.expectation = _write_expectation(path, rel, finding, self.options, self.spec)
            self._check_reproduces(path, finding)

    def _check_reproduces(self, path: Path, finding: Finding) -> None:
        from replay.runtime._runtime import ReplayOptions, reproduce

        if self.sandbox is not None:
            reproduced, verdict = self.sandbox.reproduces(path)
        else:
            result = reproduce(
                path,
                self.fresh(),
                ReplayOptions(
                    seed=self.options.seed, hang_timeout=self.options.hang_timeout, module_path=self.options.module_path
                ),
            )
            reproduced, verdict = result.reproduced, result.verdict
        if not reproduced:
            raise NakamaReplayError(f"fuzz: {path} does not reproduce its crash: {verdict}")

    def close(self) -> None:
        self.guard.close()
        if self.sandbox is not None:
            self.sandbox.close()


def _write_expectation(recording: Path, handler_rel: str, finding: Finding, options: FuzzOptions, spec: str) -> Path:
    path = recording.with_name(recording.stem + ".expect.toml")
    first = finding.message.splitlines()[0] if finding.message else ""
    callback, _kind, _location = ([*finding.key.split("|"), "", "", ""])[:3]
    lines = [
        f"# nakama-replay fuzz found this crash in {os.path.basename(spec)} "
        f"(seed {options.seed}, after {finding.examples} matches):",
        f"#   {first}",
        f"#   signature {finding.key}",
        "# This regression test fails until the handler is fixed, then guards the fix. To keep the crash as the",
        "# expected behaviour instead, delete `no_crash = true` and uncomment the [crash] table.",
        f"handler = {json.dumps(handler_rel)}",
        "no_crash = true",
        *([f"hang_timeout = {float(options.hang_timeout)!r}"] if options.hang_timeout else []),
        "",
        "# [crash]",
        f"# callback = {json.dumps(callback)}",
        f"# tick = {finding.tick}",
        f"# signature = {json.dumps(finding.key)}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sandbox(spec: str, options: FuzzOptions) -> _Sandbox | None:
    """A supervised handler process for the matches, when the options ask for one and the profile can be
    loaded there again (from its file or module; a profile built in code stays in this process)."""
    from replay.runtime._handlers import split_spec

    profile = options.profile or DEFAULT_PROFILE
    if not options.supervised:
        return None
    ref = _profile_ref(profile)
    if ref is None:
        import warnings

        warnings.warn(
            f"fuzz: the profile {profile.source!r} was built in code with invariants that cannot be sent to a "
            "handler process: matches play in this process, unsupervised",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    header = fuzz_header(str(split_spec(spec)[0]), dict(profile.params), options.seed)
    sandbox = _Sandbox((spec, ref, header, dataclasses.replace(options, profile=None)), options)
    try:
        sandbox.load()
    except BaseException:
        sandbox.close()
        raise
    return sandbox


def _profile_ref(profile: FuzzProfile) -> tuple[Any, ...] | None:
    """How the handler process gets the part of the profile it needs (invariants, queue size): the default,
    its file or module loaded again, or just the queue size when it has no invariants; None when a profile
    built in code has invariants (functions cannot be sent to another process as data)."""
    import importlib.util

    if profile is DEFAULT_PROFILE:
        return ("default",)
    source = profile.source
    try:
        loadable = (Path(source).suffix == ".py" and Path(source).is_file()) or (
            not source.endswith(".py") and importlib.util.find_spec(source) is not None
        )
    except (ImportError, ValueError):
        loadable = False
    if loadable:
        return ("source", source)
    if not profile.invariants:
        return ("plain", profile.queue_size)
    return None


def _load_profile_ref(ref: tuple[Any, ...]) -> FuzzProfile:
    """(In the handler process.) The profile ``_profile_ref`` described (payloads are not needed here)."""
    from replay.fuzz._strategies import load_profile

    if ref[0] == "default":
        return DEFAULT_PROFILE
    if ref[0] == "source":
        return load_profile(ref[1])
    return FuzzProfile(payloads={0: None}, queue_size=ref[1], source="<sent>")


def fuzz(handler: Any, options: FuzzOptions | None = None, progress: Progress | None = None) -> FuzzReport:
    """Search ``handler`` (a path ``file.py``, ``file.py:Class``, ``file.lua``, or a loaded handler, which
    then serves every match) for failures; see the module docstring. Returns the report; writes recordings
    when ``options.out``."""
    options = options or FuzzOptions()
    # Hypothesis mixes constants from local modules in sys.modules into what it generates, so a module
    # first imported in the middle of a run would change the rest of it: import them all up front.
    import hypothesis.database  # noqa: F401

    import recorder.format._canonical  # noqa: F401 - state digests of the written recordings

    if options.max_examples < 1:
        raise NakamaReplayError(f"fuzz: --max-examples must be at least 1, got {options.max_examples}")
    if options.max_findings < 1:
        raise NakamaReplayError(f"fuzz: --max-findings must be at least 1, got {options.max_findings}")
    by_path = isinstance(handler, (str, os.PathLike))
    spec = os.fspath(handler) if by_path else getattr(handler, "path", "<handler>")
    sandbox = _sandbox(spec, options) if by_path else None
    try:
        # the parent loads the handler too (once the handler process has): hypothesis draws constants from
        # the modules loaded here, so a supervised search generates the same matches as one in-process
        loaded = load_handler(spec, module_path=options.module_path) if by_path else handler
    except BaseException:
        if sandbox is not None:
            sandbox.close()
        raise
    # Given a path, every match gets a freshly loaded handler, as every match gets its own Lua VM in Nakama:
    # module-level state cannot leak from one generated match into the next (a class handler gets a new
    # instance; a Python module's own globals are shared, as they are in any one process).
    f = _Fuzzer(
        loaded,
        spec,
        options,
        progress,
        (lambda: load_handler(spec, module_path=options.module_path)) if by_path else None,
        header=None if sandbox is None else sandbox.setup[2],
        sandbox=sandbox,
    )
    report = FuzzReport(spec, f.profile.source, options.seed, options.max_examples, max_findings=options.max_findings)
    try:
        known: set[str] = set()
        number = 0
        report.stopped_by = "budget"
        while f.generated < options.max_examples:
            if len(report.findings) >= options.max_findings:
                report.stopped_by = "max_findings"
                break
            found = f.round(known, number)
            number += 1
            if found is None:
                report.stopped_by = "budget" if f.generated >= options.max_examples else "exhausted"
                break
            known.add(found.failure.key)
            finding = f.minimize(found)
            if f.out is not None:
                f.write(finding)
            report.findings.append(finding)
        report.examples = f.generated
        report.seconds = time.monotonic() - f.start
        report.database = None if f.out is None or not options.database else f.out / ".hypothesis"
        return report
    finally:
        f.close()
