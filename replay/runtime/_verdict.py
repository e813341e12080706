"""The verdict of a replay, as a pure function of what it showed and what the recording says.

``decide`` answers "did the replay reproduce the recording?" with one of three statuses:

- ``reproduced`` (exit 0): the recording is complete, and the replay ended as it did: the same crash
  (``crash_mismatch`` is empty: same callback, tick and error class) with every recorded outcome equal,
  or a clean end (or stop) with every recorded outcome equal;
- ``not-reproduced`` (exit 1): the recording is complete and the replay ended otherwise; ``mismatch``
  names what differs (``crash``: one side crashed, the other did not; ``callback``, ``tick``,
  ``error_type`` of two crashes; ``outcomes``: recorded outcomes diverged; ``after_stop``: the recording
  holds calls after the one where the replay stopped, which were not replayed);
- ``incomplete`` (exit 3): the recording is not ``complete`` (``recorder.format._integrity``), so nothing is
  claimed; the sentence says how much was replayed, what is missing, and what the replayed part showed.
  Also when the replay crashed at the recorded callback and tick but the recording's crash marker has no
  error (a wire recording converted without the server's log): whether it is the same crash is not known.

``allow_incomplete`` draws the verdict from the intact part anyway (the sentence still says what was not
replayed). Nothing here reads files or runs handlers: callers (the replay runtime, a supervised child
process, run-all) hand in what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replay.runtime._signature import CrashSignature, same_error_class

__all__ = [
    "EXIT_CODES",
    "INCOMPLETE",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "Verdict",
    "crash_mismatch",
    "decide",
    "error_known",
    "recorded_signature",
    "replayed_signature",
]

REPRODUCED, NOT_REPRODUCED, INCOMPLETE = "reproduced", "not-reproduced", "incomplete"
EXIT_CODES = {REPRODUCED: 0, NOT_REPRODUCED: 1, INCOMPLETE: 3}


@dataclass(frozen=True, slots=True)
class Verdict:
    """``status`` (see the module docstring), ``reproduced`` (True only for ``reproduced``), one
    sentence saying why, and the fields that differ."""

    status: str
    reproduced: bool
    sentence: str
    mismatch: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def replayed_signature(crash: Any) -> CrashSignature | None:
    """The signature of a replay's ``Crash`` (None: no crash)."""
    return None if crash is None else CrashSignature.from_crash(crash)


def recorded_signature(marker: Any) -> CrashSignature | None:
    """The signature of a recording's ``CrashMarker`` (None: the recording has no crash)."""
    return None if marker is None else CrashSignature.from_marker(marker)


def crash_mismatch(crash: Any, marker: Any) -> tuple[str, ...]:
    """What differs between a replayed ``Crash`` and a recorded ``CrashMarker``: ``callback``, ``tick``,
    ``error_type`` (the error class: Lua errors through ``lua_error_class``, so the two runtimes'
    wordings agree). Empty: the same crash."""
    out = []
    if crash.callback != marker.callback:
        out.append("callback")
    if crash.tick != marker.tick:
        out.append("tick")
    a, b = replayed_signature(crash), recorded_signature(marker)
    assert a is not None and b is not None
    if not same_error_class(a.error_type, b.error_type):
        out.append("error_type")
    return tuple(out)


def error_known(marker: Any) -> bool:
    """Whether a ``CrashMarker`` says what the error was (a converted wire recording's marker may not: the
    wire shows only the disconnect)."""
    return bool((marker.error or "").strip() or getattr(marker, "error_type", ""))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _complete_verdict(crash: Any, recorded: Any, divergences: int, stopped: bool) -> Verdict:
    """The verdict when every input it needs was read."""
    if recorded is not None:
        if crash is None:
            ended = "stopped" if stopped else "ran to the end"
            return Verdict(
                NOT_REPRODUCED,
                False,
                (
                    f"the recording crashed in {recorded.callback} at tick {recorded.tick}, the replay {ended} without "
                    "a crash"
                ),
                ("crash",),
            )
        mismatch = crash_mismatch(crash, recorded)
        if "callback" in mismatch or "tick" in mismatch:
            return Verdict(
                NOT_REPRODUCED,
                False,
                (
                    f"another crash, in {crash.callback} at tick {crash.tick} (recorded: {recorded.callback} at tick "
                    f"{recorded.tick})"
                ),
                mismatch,
            )
        if mismatch and not error_known(recorded) and not divergences:
            return Verdict(
                INCOMPLETE,
                False,
                (
                    f"{crash.callback} crashed at tick {crash.tick}, where the recording's crash is, but the recording "
                    "does not know that crash's error (a wire recording converted without the server's log), so "
                    "whether it is the same crash is not known: `nakama-replay convert --server-log NAKAMA.log` "
                    "records it"
                ),
                ("error_type",),
            )
        if mismatch:
            a, b = replayed_signature(crash), recorded_signature(recorded)
            assert a is not None and b is not None
            return Verdict(
                NOT_REPRODUCED,
                False,
                (
                    f"crashed at the recorded tick, but with a different error: recorded {b.error_type} "
                    f"({_first_line(recorded.error)}), replayed {a.error_type} ({_first_line(crash.error)})"
                ),
                mismatch,
            )
        if divergences:
            return Verdict(
                NOT_REPRODUCED,
                False,
                (
                    f"crash reproduced in {crash.callback} at tick {crash.tick}, but {divergences} outcomes diverged "
                    "before it"
                ),
                ("outcomes",),
            )
        return Verdict(REPRODUCED, True, f"{crash.callback} crashed at tick {crash.tick}, as recorded")
    if crash is not None:
        return Verdict(
            NOT_REPRODUCED,
            False,
            f"the replay crashed in {crash.callback} at tick {crash.tick}; the recording did not",
            ("crash",),
        )
    if divergences:
        return Verdict(NOT_REPRODUCED, False, f"{divergences} outcomes diverged from the recording", ("outcomes",))
    return Verdict(REPRODUCED, True, "stopped as recorded" if stopped else "ran to the end as recorded")


def decide(
    crash: Any,
    recorded: Any,
    divergences: int,
    stopped: bool,
    integrity: Any = None,
    *,
    allow_incomplete: bool = False,
    calls: int = 0,
    ticks: int = 0,
    after_stop: Any = None,
) -> Verdict:
    """The verdict of a replay.

    ``crash``: the replay's ``Crash`` or None; ``recorded``: the recording's ``CrashMarker`` (at or before
    ``until_tick``) or None; ``divergences``: how many recorded outcomes differed; ``stopped``: the match
    stopped without a crash; ``integrity``: the recording's ``Integrity`` (None: events handed in by a
    caller, not read from a file); ``calls``/``ticks``: how much was replayed (for the sentence);
    ``after_stop``: the ``replay.runtime.AfterStop`` of recorded calls after the replay stopped, if any."""
    verdict = _complete_verdict(crash, recorded, divergences, stopped)
    if after_stop is not None:
        verdict = _with_calls_after_stop(verdict, after_stop, crash)
    if integrity is None or integrity.complete:
        return verdict
    replayed = f"replayed {calls} calls ({ticks} ticks) from the intact part"
    if allow_incomplete:
        return Verdict(
            verdict.status,
            verdict.reproduced,
            f"{verdict.sentence} (--allow-incomplete: {replayed}; not replayed: {integrity.missing()})",
            verdict.mismatch,
        )
    return Verdict(
        INCOMPLETE,
        False,
        (
            f"no verdict: the recording is {integrity.state}, so {integrity.missing()} was not replayed; {replayed}, "
            f"in which {_within(crash, stopped)} (--allow-incomplete draws a verdict from it)"
        ),
    )


def _with_calls_after_stop(verdict: Verdict, a: Any, crash: Any) -> Verdict:
    """Recorded calls after the call where the replay stopped were not replayed: Nakama never calls a stopped
    match's handler, so either the recorded match had not stopped there (Nakama made them) or the recording
    is inconsistent (it could not have). Either way the replay does not reproduce the recording."""
    if a.nakama_could_make:
        why = (
            f"the recording goes on with {a.describe()}, which Nakama made: the recorded match had not "
            "stopped there; they were not replayed"
        )
    else:
        why = (
            f"the recording holds {a.describe()}, which Nakama could not have made (it never calls a stopped "
            "match's handler): the recording is inconsistent and they were not replayed"
        )
    if verdict.reproduced:
        ended = "crashed" if crash is not None else "stopped"
        sentence = f"the replay {ended} in {a.stop_callback} at tick {a.stop_tick} as recorded, but {why}"
    else:
        sentence = f"{verdict.sentence}; {why}"
    return Verdict(NOT_REPRODUCED, False, sentence, (*verdict.mismatch, "after_stop"))


def _within(crash: Any, stopped: bool) -> str:
    if crash is not None:
        what = "hung" if getattr(crash, "hung", False) else "crashed"
        return f"{crash.callback} {what} at tick {crash.tick}: {_first_line(crash.error)}"
    return "the match stopped without a crash" if stopped else "it ran to the end of the intact part without a crash"
