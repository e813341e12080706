"""The first divergence to mark on a timeline, as ``MatchDiff.to_json()`` (``replay.diff._calls``).

- ``against(recording, handler_b, handler_a=None)``: without ``handler_a``, the recording against a replay
  into ``handler_b`` (``diff_recorded``: outcomes and digests of every call, state paths where the
  recording has snapshots); with it, handler A against handler B over the recorded inputs
  (``diff_against``: state paths at every call). Run in a supervised handler process unless
  ``limits`` is None.
- ``between_recordings(a, b)``: two recordings of one match (production and a re-capture, two captures)
  compared call by call without running anything: the calls' inputs, their recorded outcomes and state
  digests, and the state paths where both hold a snapshot of that call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from recorder.errors import NakamaReplayError
from recorder.format._model import Call, CrashMarker, Outcome, WireEvent
from replay.diff._state import Tolerance, field_diff
from replay.errors import HandlerDied
from replay.runtime._result import Divergence, describe_call
from replay.timeline._reading import open_for_reading

if TYPE_CHECKING:
    from replay.diff._calls import MatchDiff

__all__ = ["against", "between_recordings"]


def against(
    recording: str,
    handler_b: str,
    handler_a: str | None = None,
    *,
    options: Any = None,
    limits: Any = None,
    limit: int = 20,
) -> dict[str, Any]:
    """The first divergence between the recording (or ``handler_a``) and ``handler_b``, as JSON."""
    from replay.diff import _calls as match_diff
    from replay.runtime._runtime import ReplayOptions

    options = options or ReplayOptions()
    args: tuple[Any, ...]
    result: MatchDiff
    if handler_a is None:
        job, args = "diff_recorded", (recording, handler_b, options, None, limit)
        sides = (f"recording {recording}", f"replay into {handler_b}")
    else:
        job, args = "diff_against", (recording, handler_a, handler_b, options, None, limit)
        sides = (f"handler {handler_a}", f"handler {handler_b}")
    if limits is None:
        result = getattr(match_diff, job)(*args)
    else:
        from replay.runtime._supervisor import HandlerProcess

        with HandlerProcess(limits) as worker:
            try:
                result = worker.call(f"replay.diff._calls:{job}", *args)
            except HandlerDied as exc:
                result = match_diff.died(job.removeprefix("diff_"), exc.death, *sides)
    if result.integrity is None:  # a handler process died before the diff could say
        result = match_diff.judge(result, recording, options)
    return result.to_json()


_OUTCOME_FIELDS = (
    "accept",
    "reason",
    "tick_rate",
    "label",
    "broadcasts",
    "kicks",
    "label_updates",
    "reply",
    "stopped",
    "digest",
)


def _outcome_fields(o: Outcome | None) -> dict[str, Any]:
    if o is None:
        return {}
    out: dict[str, Any] = {}
    for name in _OUTCOME_FIELDS:
        v = getattr(o, name)
        if name in ("broadcasts",):
            v = [
                (
                    b.op_code,
                    b.data,
                    None if b.targets is None else [p.session_id for p in b.targets],
                    None if b.sender is None else b.sender.session_id,
                    b.reliable,
                    b.deferred,
                )
                for b in v
            ]
        elif name == "kicks":
            v = [p.session_id for p in v]
        elif name == "label_updates":
            v = list(v)
        out[name] = v
    return out


def _calls(rec: Any) -> Iterator[Call | CrashMarker]:
    for e in rec.events():
        if isinstance(e, WireEvent):
            raise NakamaReplayError(f"{rec.path}: a wire recording; --diff-with compares handler-call recordings")
        yield e


def between_recordings(
    path_a: str | os.PathLike[str],
    path_b: str | os.PathLike[str],
    limit: int = 20,
    *,
    allow_incomplete: bool = False,
) -> dict[str, Any]:
    """The first call where two recordings differ (inputs, recorded outcomes, digests, state paths), as JSON
    shaped like ``MatchDiff.to_json()`` with mode ``recordings``. Only the intact parts are compared: when a
    recording is not complete, ``status`` is ``incomplete`` (unless ``allow_incomplete``), ``integrity`` is
    that recording's and a recording that merely ends sooner because of its cut is no divergence."""
    from recorder.format._nkrec import verify

    integrity = {"a": verify(path_a), "b": verify(path_b)}
    found = _first_difference(path_a, path_b, limit, integrity)
    side = "a" if not integrity["a"].complete else "b" if not integrity["b"].complete else None
    if side is None:
        out = found.to_json()
        out["integrity"], out["integrity_b"] = integrity["a"].to_json(), integrity["b"].to_json()
        return out
    found = dataclasses.replace(found, integrity=integrity[side], incomplete=not allow_incomplete)
    out = found.to_json()
    out["integrity_note"] = f"recording {side} ({path_a if side == 'a' else path_b}): {out['integrity_note']}"
    out["integrity"], out["integrity_b"] = integrity["a"].to_json(), integrity["b"].to_json()
    return out


def _first_difference(
    path_a: str | os.PathLike[str], path_b: str | os.PathLike[str], limit: int, integrity: dict[str, Any]
) -> MatchDiff:
    from replay.diff._calls import MatchDiff

    label_a, label_b = f"recording {path_a}", f"recording {path_b}"
    crash: dict[str, CrashMarker | None] = {"a": None, "b": None}
    compared = 0
    with open_for_reading(path_a) as ra, open_for_reading(path_b) as rb:
        ia, ib = _calls(ra), _calls(rb)
        while True:
            ca = _next_call(ia, crash, "a")
            cb = _next_call(ib, crash, "b")
            if ca is None or cb is None:
                break
            da, db = describe_call(ca), describe_call(cb)
            diffs: list[Any] = []
            if da != db:
                diffs.append(Divergence("inputs", da, db))
            oa, ob = _outcome_fields(ca.outcome), _outcome_fields(cb.outcome)
            for name in _OUTCOME_FIELDS:
                if (
                    name in oa
                    and name in ob
                    and oa[name] != ob[name]
                    and not (name == "digest" and None in (oa[name], ob[name]))
                ):
                    diffs.append(Divergence(name, oa[name], ob[name]))
            if diffs:
                state, note = None, ""
                sa = ca.outcome.snapshot if ca.outcome is not None else None
                sb = cb.outcome.snapshot if cb.outcome is not None else None
                if sa is not None and sb is not None:
                    state = field_diff(sa, sb, Tolerance(), limit, encoded=True)
                elif any(d.field == "digest" for d in diffs):
                    note = "the state digests differ; not both recordings hold a snapshot of this call, so the fields cannot be named"
                return MatchDiff(
                    "recordings",
                    True,
                    compared + 1,
                    label_a,
                    label_b,
                    compared,
                    ca.tick,
                    ca.callback,
                    da,
                    tuple(d for d in diffs if d.field != "digest" or state is None),
                    state,
                    note,
                )
            compared += 1
        rest = ("a", ca) if ca is not None else ("b", cb) if cb is not None else None
        if rest is not None:
            side, call = rest
            other = "b" if side == "a" else "a"
            if not integrity[other].complete:  # the other's intact part ends here: its cut, not a divergence
                return MatchDiff(
                    "recordings",
                    False,
                    compared,
                    label_a,
                    label_b,
                    note=f"{compared} calls equal; recording {other}'s intact part ends there, recording {side} goes on",
                )
            return MatchDiff(
                "recordings",
                True,
                compared + 1,
                label_a,
                label_b,
                compared,
                call.tick,
                call.callback,
                describe_call(call),
                note=f"only recording {side} has this call: the other ends after {compared} calls",
            )
    ka, kb = crash["a"], crash["b"]

    def key(c: CrashMarker | None) -> tuple[str, int, str] | None:
        return None if c is None else (c.callback, c.tick, c.error)

    lost = [side for side, k in (("a", ka), ("b", kb)) if k is None and not integrity[side].complete]
    if key(ka) != key(kb) and lost:  # the crash marker of an incomplete side may be in its missing part
        return MatchDiff(
            "recordings",
            False,
            compared,
            label_a,
            label_b,
            note=f"{compared} calls equal; recording {lost[0]} has no crash marker in its intact part",
        )
    if key(ka) != key(kb):
        where = ka or kb
        assert where is not None
        return MatchDiff(
            "recordings",
            True,
            compared,
            label_a,
            label_b,
            compared,
            where.tick,
            where.callback,
            outcomes=(Divergence("crash", _crash_text(ka), _crash_text(kb)),),
            note="the recordings end differently",
        )
    return MatchDiff(
        "recordings", False, compared, label_a, label_b, note=f"{compared} calls: equal inputs, outcomes and digests"
    )


def _next_call(it: Iterator[Call | CrashMarker], crash: dict[str, Any], side: str) -> Call | None:
    for e in it:
        if isinstance(e, CrashMarker):
            crash[side] = e
            continue
        return e
    return None


def _crash_text(c: CrashMarker | None) -> str | None:
    if c is None:
        return None
    return f"{c.callback} at tick {c.tick}: {c.error.splitlines()[0] if c.error else ''}"
