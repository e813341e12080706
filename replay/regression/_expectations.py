"""Recordings as regression tests: what a replay of a recording must show, and checking it.

An expectation sits beside the recording as ``NAME.expect.toml`` (or, failing that, in the recording's
header tags under ``expect``)::

    handler = "../handlers/arena_fixed.py"   # relative to the expectation file; default: the header's
    no_crash = true                           # the replay runs to the end (or stops) without a crash
    matches_recorded = false                  # true: ends as recorded, every recorded outcome equal
    max_ticks = 600                           # replay only ticks 0 .. max_ticks-1
    seed = 0                                  # for values the recording does not hold
    hang_timeout = 5.0                        # seconds before a callback counts as hung
    allow_incomplete = false                  # true: check an unsealed/damaged/version-1 recording's intact part

    [crash]                                   # instead of no_crash: the crash that must happen
    callback = "match_loop"
    tick = 58
    error = "KeyError: "                      # a regular expression searched in the error text (in a
                                              # header tag: a literal substring, the recording is untrusted)
    signature = "match_loop|KeyError|arena.py:match_loop"   # replay.runtime._signature key

A recording that is not complete (``recorder.format._integrity``) fails its check with the integrity state as
the reason, unless ``allow_incomplete = true``. ``check`` lists what does not hold; ``replay.report.format_regression_failure`` renders the text a failing test shows (the reproduction
summary of ``nakama-replay reproduce`` plus, for outcome mismatches, the first divergent tick and the
differing state paths where the recording has a snapshot); ``write_expectation`` records the current
behaviour (``pytest --nkreplay-update``). The pytest plugin (``replay.regression.pytest_plugin``) is a thin layer
over this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.errors import ExpectationError

__all__ = [
    "EXPECT_SUFFIX",
    "CrashExpectation",
    "Expectation",
    "RegressionRun",
    "check",
    "expectation_path",
    "load_expectation",
    "parse_expectation",
    "run_expectation",
    "write_expectation",
]

EXPECT_SUFFIX = ".expect.toml"
_TOP_KEYS = {
    "handler",
    "no_crash",
    "crash",
    "matches_recorded",
    "max_ticks",
    "seed",
    "hang_timeout",
    "allow_incomplete",
}
_CRASH_KEYS = {"callback", "tick", "error", "signature"}


@dataclass(frozen=True, slots=True)
class CrashExpectation:
    """The crash a replay must show; fields left out are not checked."""

    callback: str | None = None
    tick: int | None = None
    error: str | None = None  # regular expression, searched in the crash's error text
    signature: str | None = None  # CrashSignature.key


@dataclass(frozen=True, slots=True)
class Expectation:
    """What must hold when a recording is replayed. ``source`` names where it was read from."""

    source: str
    base: Path  # folder that relative paths are resolved against
    handler: str | None = None
    no_crash: bool = False
    crash: CrashExpectation | None = None
    matches_recorded: bool = False
    max_ticks: int | None = None
    seed: int = 0
    hang_timeout: float = 5.0
    allow_incomplete: bool = False

    @property
    def asserts_something(self) -> bool:
        return self.no_crash or self.crash is not None or self.matches_recorded

    def handler_spec(self) -> str | None:
        """The handler path resolved against ``base`` (a ``:ClassName`` suffix kept); None: the header's."""
        if self.handler is None:
            return None
        from replay.runtime._handlers import split_spec

        path, cls = split_spec(self.handler)
        full = path if path.is_absolute() else self.base / path
        return f"{full}:{cls}" if cls else str(full)

    def options(self) -> Any:
        from replay.runtime._runtime import ReplayOptions

        until = None if self.max_ticks is None else self.max_ticks - 1
        return ReplayOptions(
            seed=self.seed,
            until_tick=until,
            hang_timeout=self.hang_timeout,
            last_ticks=3,
            allow_incomplete=self.allow_incomplete,
        )


def expectation_path(recording: str | os.PathLike[str]) -> Path:
    """``dir/NAME.nkrec`` -> ``dir/NAME.expect.toml``."""
    p = Path(recording)
    return p.with_name(p.stem + EXPECT_SUFFIX)


def _toml(raw: bytes, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationError(source, "", f"not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ExpectationError(source, "", f"cannot be read: {exc}") from exc


def load_expectation(recording: str | os.PathLike[str]) -> Expectation | None:
    """The expectation for a recording: its ``.expect.toml`` (beside it, also at a URL), else its header's
    ``expect`` tag, else None."""
    from recorder.storage import local_path, read_small, sibling
    from replay.runtime._handlers import split_spec

    if local_path(recording) is None:  # a recording at a URL: its .expect.toml is the object beside it
        remote = sibling(recording, Path(str(recording).rsplit("/", 1)[-1]).stem + EXPECT_SUFFIX)
        raw = read_small(remote)
        if raw is not None:
            expectation = _literal_error(parse_expectation(_toml(raw, remote), remote, Path(".")))
            if expectation.handler is not None and not split_spec(expectation.handler)[0].is_absolute():
                raise ExpectationError(
                    remote,
                    "handler",
                    "an expectation at a URL can only name a handler by an absolute path on this machine "
                    "(or leave it out and pass --handler)",
                )
            return expectation
    path = expectation_path(local_path(recording) or recording)
    if path.is_file():
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ExpectationError(str(path), "", f"cannot be read: {exc}") from exc
        return parse_expectation(_toml(raw, str(path)), str(path), path.parent)
    from recorder.format import open_recording

    with open_recording(recording) as rec:
        tag = rec.header.tags.get("expect")
    if tag is None:
        return None
    source = f"{recording} (header tag 'expect')"
    if not isinstance(tag, dict):
        raise ExpectationError(source, "expect", f"must be a table, got {type(tag).__name__}")
    expectation = parse_expectation(tag, source, Path(recording).parent)
    if expectation.handler is not None:  # named by the recording itself: as untrusted as its header
        from replay.runtime._handlers import recorded_handler

        recorded_handler(recording, expectation.handler)
    return _literal_error(expectation)


def _literal_error(expectation: Expectation) -> Expectation:
    """An untrusted expectation (a recording's header tag, a file beside a recording at a URL): its error text is
    a literal substring, never a regular expression that a crafted one could make backtrack for hours (only a
    .expect.toml on this machine, which the user wrote, holds a pattern)."""
    if expectation.crash is None or expectation.crash.error is None:
        return expectation
    crash = dataclasses.replace(expectation.crash, error=re.escape(expectation.crash.error))
    return dataclasses.replace(expectation, crash=crash)


def _typed(data: dict[str, Any], key: str, types: tuple[type, ...], source: str, prefix: str = "") -> Any:
    value = data.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        want = " or ".join(
            "boolean" if t is bool else "integer" if t is int else "number" if t is float else "string" for t in types
        )
        raise ExpectationError(source, prefix + key, f"must be a {want}, got {value!r}")
    return value


def parse_expectation(data: dict[str, Any], source: str, base: Path) -> Expectation:
    """Validate a parsed TOML table (unknown keys are refused: a typo must not pass silently)."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ExpectationError(source, unknown[0], f"unknown key; known keys: {', '.join(sorted(_TOP_KEYS))}")
    crash = None
    raw_crash = data.get("crash")
    if raw_crash is not None:
        if not isinstance(raw_crash, dict):
            raise ExpectationError(source, "crash", "must be a table: [crash] with callback, tick, error, signature")
        bad = sorted(set(raw_crash) - _CRASH_KEYS)
        if bad:
            raise ExpectationError(
                source, f"crash.{bad[0]}", f"unknown key; known keys: {', '.join(sorted(_CRASH_KEYS))}"
            )
        error = _typed(raw_crash, "error", (str,), source, "crash.")
        if error is not None:
            try:
                re.compile(error)
            except re.error as exc:
                raise ExpectationError(source, "crash.error", f"not a valid regular expression: {exc}") from exc
        crash = CrashExpectation(
            _typed(raw_crash, "callback", (str,), source, "crash."),
            _typed(raw_crash, "tick", (int,), source, "crash."),
            error,
            _typed(raw_crash, "signature", (str,), source, "crash."),
        )
    no_crash = bool(_typed(data, "no_crash", (bool,), source))
    if no_crash and crash is not None:
        raise ExpectationError(source, "no_crash", "contradicts the [crash] table: keep one of them")
    max_ticks = _typed(data, "max_ticks", (int,), source)
    if max_ticks is not None and max_ticks < 1:
        raise ExpectationError(source, "max_ticks", f"must be at least 1, got {max_ticks}")
    hang = _typed(data, "hang_timeout", (int, float), source)
    if hang is not None and not 0 < hang < float("inf"):
        raise ExpectationError(source, "hang_timeout", f"must be a number of seconds above 0, got {hang!r}")
    exp = Expectation(
        source=source,
        base=base,
        handler=_typed(data, "handler", (str,), source),
        no_crash=no_crash,
        crash=crash,
        matches_recorded=bool(_typed(data, "matches_recorded", (bool,), source)),
        max_ticks=max_ticks,
        seed=_typed(data, "seed", (int,), source) or 0,
        hang_timeout=5.0 if hang is None else float(hang),
        allow_incomplete=bool(_typed(data, "allow_incomplete", (bool,), source)),
    )
    if not exp.asserts_something:
        raise ExpectationError(
            source, "", "checks nothing: set no_crash = true, a [crash] table or matches_recorded = true"
        )
    return exp


# -- running and checking ------------------------------------------------------------------------------


@dataclass(slots=True)
class RegressionRun:
    """A replay made for an expectation, with the first state paths that differ from a recorded snapshot."""

    result: Any  # ReplayResult
    paths: list[Any] = field(default_factory=list)  # replay.runtime.Divergence: field = path, a recorded, b replayed
    paths_tick: int | None = None
    paths_count: int = 0


class _PathProbe:
    """Replay observer: at the first recorded snapshot at or after the first divergence, name the differing
    state paths (``replay.diff.field_diff``); stays silent when the diff module or a snapshot is missing."""

    def __init__(self, run: RegressionRun, state_value: Callable[[Any], Any]) -> None:
        self.run = run
        self.state_value = state_value  # the handler's state as plain data (a Lua table converted)
        self.diverged = False
        self.done = False

    def __call__(self, step: Any) -> None:
        if self.done:
            return
        if step.divergences:
            self.diverged = True
        recorded = step.call.outcome
        if not self.diverged or recorded is None or recorded.snapshot is None or step.crash is not None:
            return
        self.done = True
        try:
            from recorder.format import canonical_bytes
            from replay.diff._state import field_diff

            replayed = canonical_bytes(self.state_value(step.state))
            diff = field_diff(recorded.snapshot, replayed, limit=20, encoded=True)
        except Exception:  # naming paths is a courtesy; the verdict does not depend on it
            return
        self.run.paths_tick = step.call.tick
        self.run.paths_count = diff.count
        self.run.paths = list(diff.paths)


def run_expectation(
    recording: str | os.PathLike[str], exp: Expectation | None, handler: Any = None, *, process: Any = None
) -> RegressionRun:
    """Replay ``recording`` as ``exp`` says (its handler, seed, tick limit): in ``process`` (a supervised
    ``replay.runtime.HandlerProcess``) when given, where a hang or death becomes the result's outcome;
    else in this process."""
    if process is not None and (handler is None or isinstance(handler, (str, os.PathLike))):
        return _run_supervised(recording, exp, handler, process)
    from replay.runtime._handlers import load_handler
    from replay.runtime._isolation import fresh_imports, resolve_with_folder
    from replay.runtime._runtime import ReplayOptions, reproduce

    options = exp.options() if exp else ReplayOptions()
    spec, folder = resolve_with_folder(
        recording, handler if handler is not None else (exp.handler_spec() if exp else None)
    )
    run = RegressionRun(result=None)
    with fresh_imports(folder):
        loaded = load_handler(spec, module_path=options.module_path) if isinstance(spec, (str, os.PathLike)) else spec
        probe = _PathProbe(run, getattr(loaded, "state_value", lambda state: state))
        run.result = reproduce(os.fspath(recording), loaded, options, observer=probe)
    return run


def _run_supervised(
    recording: str | os.PathLike[str], exp: Expectation | None, handler: Any, process: Any
) -> RegressionRun:
    from replay.errors import HandlerDied
    from replay.runtime._runtime import ReplayOptions
    from replay.runtime._supervisor import death_result

    try:
        run: RegressionRun = process.call("replay.regression._expectations:run_expectation", recording, exp, handler)
        return run
    except HandlerDied as died:
        options = exp.options() if exp else ReplayOptions()
        spec = handler if handler is not None else (exp.handler_spec() if exp else None)
        spec = None if spec is None else os.fspath(spec)
        return RegressionRun(result=death_result(died.death, os.fspath(recording), spec, options))


def check(result: Any, exp: Expectation) -> list[str]:
    """What the replay shows that the expectation does not allow (empty: it holds). A recording that is not
    complete is one problem, and nothing else is checked (unless the expectation allows it)."""
    if getattr(result, "status", "") == "incomplete":
        return [
            f"the recording is not complete, so no verdict is drawn from it: {result.integrity.describe()} "
            "(allow_incomplete = true in the expectation checks its intact part)"
        ]
    problems: list[str] = []
    c = result.crash
    what = "hung" if c is not None and c.hung else "crashed"
    if result.outcome in ("exited", "killed", "out-of-memory"):
        what = {"exited": "exited", "killed": "was killed", "out-of-memory": "ran out of memory"}[result.outcome]
    if exp.no_crash and c is not None:
        problems.append(f"expected no crash, but {c.callback} {what} at tick {c.tick}: {_first_line(c.error)}")
    if exp.crash is not None:
        want = exp.crash
        if c is None:
            ended = "stopped" if result.outcome == "stopped" else "ran to the end"
            problems.append(f"expected a crash{_describe(want)}, but the replay {ended} without one")
        else:
            if want.callback is not None and want.callback != c.callback:
                problems.append(f"expected the crash in {want.callback}, got {c.callback}")
            if want.tick is not None and want.tick != c.tick:
                problems.append(f"expected the crash at tick {want.tick}, got tick {c.tick}")
            if want.error is not None and re.search(want.error, c.error) is None:
                problems.append(f"expected an error matching /{want.error}/, got: {_first_line(c.error)}")
            if want.signature is not None:
                from replay.runtime._signature import CrashSignature

                sig = CrashSignature.from_result(result)
                if sig is None or sig.key != want.signature:
                    problems.append(f"expected crash signature {want.signature!r}, got {sig.key if sig else None!r}")
    if exp.matches_recorded and not result.reproduced:
        problems.append(f"expected the recorded outcomes, but {result.verdict}")
    return problems


def _describe(want: CrashExpectation) -> str:
    parts = []
    if want.callback:
        parts.append(f" in {want.callback}")
    if want.tick is not None:
        parts.append(f" at tick {want.tick}")
    if want.error:
        parts.append(f" matching /{want.error}/")
    return "".join(parts)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


# -- writing -------------------------------------------------------------------------------------------


def _literal_pattern(text: str) -> str:
    """A regular expression matching ``text`` literally, escaping only what is special (readable in TOML)."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a TOML basic string


def write_expectation(
    recording: str | os.PathLike[str],
    result: Any,
    previous: Expectation | None = None,
    handler: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Write ``NAME.expect.toml`` from what ``result`` shows: ``no_crash`` or the ``[crash]`` it had, and
    ``matches_recorded = true`` when it reproduced the recording. Handler, tick limit, seed and hang
    timeout are kept from ``previous``; ``handler`` (relative to the recording's folder) replaces it."""
    from replay.runtime._signature import CrashSignature

    path = expectation_path(recording)
    lines = [f"# regression expectation for {Path(recording).name}, written by pytest --nkreplay-update"]
    hand = handler if handler is not None else previous.handler if previous else None
    if hand is not None:
        lines.append(f"handler = {_toml_value(hand)}")
    if previous is not None:
        if previous.max_ticks is not None:
            lines.append(f"max_ticks = {previous.max_ticks}")
        if previous.seed:
            lines.append(f"seed = {previous.seed}")
        if previous.hang_timeout != 5.0:
            lines.append(f"hang_timeout = {_toml_value(previous.hang_timeout)}")
        if previous.allow_incomplete:
            lines.append("allow_incomplete = true")
    if result.reproduced:
        lines.append("matches_recorded = true")
    c = result.crash
    if c is None:
        lines.append("no_crash = true")
    else:
        sig = CrashSignature.from_result(result)
        lines += [
            "",
            "[crash]",
            f"callback = {_toml_value(c.callback)}",
            f"tick = {c.tick}",
            f"error = {_toml_value(_literal_pattern(_first_line(c.error)))}",
        ]
        if sig is not None:
            lines.append(f"signature = {_toml_value(sig.key)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if say is not None:
        say(f"wrote {path}")
    return path
