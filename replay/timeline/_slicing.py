"""Slices: ticks A..B of a recording as a recording of their own, so a user can share the minute before a
crash instead of the whole match.

A slice is a complete recording in the current format: the source's header with ``tags["slice"]``
(``from_tick``, ``to_tick``, ``of_match``, ``of_file``, ``state_from`` and the ``resume`` point of
``replay.runtime._resume``), then an ``InitCall`` at tick A whose recorded outcome is the tick rate, label and state
digest at A, then every recorded call of ticks A..B as recorded, and the crash marker when it falls in
the range. ``reproduce``, ``diff`` and ``inspect`` take it like any recording; the runtime starts it from
the resume point (``MatchRuntime`` never calls ``match_init`` for it).

The state at A comes from the recording when it holds a snapshot of the loop before A (the state after
loop A-1 is the state at A; presences, label and join verdicts are followed from the recorded calls;
nothing runs), else from replaying the calls before A into the handler (supervised), which must not
crash, stop or diverge from the recording before A. A slice from the recording's first tick is the
recording cut at B.

Only a complete source makes a complete slice: an unsealed, damaged or version-1 source is refused
(``IncompleteRecording``) unless ``allow_incomplete``; then the slice is cut from the source's intact part,
its ``tags["slice"]`` names ``source_integrity`` and ``not_sliced``, and it is written without a seal, so
that every reader of the slice knows it is incomplete too and no verdict is drawn from it silently.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from recorder.errors import IncompleteRecording, OptionError, RecordingError
from recorder.format._atomic import atomic_location
from recorder.format._model import (
    CALL_TYPES,
    Call,
    CrashMarker,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    Outcome,
    Presence,
    WireEvent,
)
from recorder.format._nkrec import RecordingWriter
from replay.errors import SliceError
from replay.runtime._resume import ResumePoint
from replay.timeline._reading import open_for_reading

__all__ = ["Slice", "slice_recording", "resume_by_replay"]


@dataclass(frozen=True, slots=True)
class Slice:
    """What ``slice_recording`` wrote."""

    path: str
    from_tick: int
    to_tick: int
    calls: int
    state_from: str
    crash: dict[str, Any] | None
    complete: bool = True  # False: cut from an incomplete source (allow_incomplete), written without a seal
    source_integrity: dict[str, Any] | None = None  # the source's Integrity.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.path,
            "from_tick": self.from_tick,
            "to_tick": self.to_tick,
            "calls": self.calls,
            "state_from": self.state_from,
            "crash": self.crash,
            "complete": self.complete,
            "source_integrity": self.source_integrity,
        }


@dataclass(frozen=True, slots=True)
class _Nearest:
    """The latest recorded snapshot before the loop of tick A-1, with the match as the calls say it then."""

    tick: int  # the loop the snapshot follows
    snapshot: bytes
    digest: int | None
    label: str
    presences: list[Presence]
    accepted: dict[str, bool]

    def point(self, tick_rate: int) -> ResumePoint:
        state = msgpack.unpackb(self.snapshot, raw=False, strict_map_key=False)
        return ResumePoint(self.tick + 1, tick_rate, self.label, state, self.presences, self.accepted)


def _scan(path: str, a: int) -> dict[str, Any]:
    """One pass over the recording: its span, its init call, and the match just before tick ``a`` as the
    recorded calls say it (presences, label, join verdicts, the snapshot of the loop before ``a``)."""
    out: dict[str, Any] = {
        "first": None,
        "last": None,
        "init": None,
        "crash": None,
        "snapshot": None,
        "digest": None,
        "snapshot_ticks": [],
        "nearest": None,
        "label": "",
        "tick_rate": 0,
    }
    presences: list[Presence] = []
    accepted: dict[str, bool] = {}
    with open_for_reading(path) as rec:
        out["header"] = rec.header
        for e in rec.events():
            if isinstance(e, WireEvent):
                raise RecordingError(
                    f"{path}: a wire recording; slices are made of handler-call recordings "
                    "(`nakama-replay convert` makes one)"
                )
            if isinstance(e, CrashMarker):
                out["crash"] = e
                continue
            tick = e.tick
            out["first"] = tick if out["first"] is None else out["first"]
            out["last"] = tick
            o = e.outcome
            if isinstance(e, InitCall) and out["init"] is None:
                out["init"] = e
                if o is not None:
                    out["label"] = o.label or ""
                    out["tick_rate"] = o.tick_rate or 0
            if tick >= a:
                continue
            if o is not None and o.label_updates:
                out["label"] = o.label_updates[-1]
            if isinstance(e, JoinAttemptCall) and o is not None and o.accept is not None:
                accepted[e.presence.session_id] = bool(o.accept)
            elif isinstance(e, JoinCall):
                for p in e.presences:
                    if accepted.get(p.session_id, True) and all(q.session_id != p.session_id for q in presences):
                        presences.append(p)
            elif isinstance(e, LeaveCall):
                for p in e.presences:
                    for i, q in enumerate(presences):
                        if q.session_id == p.session_id and q.node == p.node:
                            presences[i] = presences[-1]
                            presences.pop()
                            break
            elif isinstance(e, LoopCall) and o is not None and o.snapshot is not None:
                out["snapshot_ticks"].append(tick)
                if tick == a - 1:
                    out["snapshot"], out["digest"] = o.snapshot, o.digest
                else:  # a loop is the last call of its tick: the match as it is now is the match at tick + 1
                    out["nearest"] = _Nearest(tick, o.snapshot, o.digest, out["label"], list(presences), dict(accepted))
    out["presences"], out["accepted"] = presences, accepted
    return out


def resume_by_replay(
    recording: str, handler: str | None, a: int, options: Any, start: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Replay the calls before tick ``a`` into the handler and return the resume point as a tag (run in a
    supervised handler process by ``slice_recording``): from the match's start, or from ``start`` (``point``:
    a resume point tag at a recorded snapshot, ``digest``: its recorded state digest), the match taken over
    there as a slice's is. Raises ``SliceError`` when the replay crashes, stops or diverges from the
    recording before ``a``."""
    from recorder.format._model import InitCall as Init
    from replay.runtime._runtime import MatchRuntime, iter_steps, resolve_handler

    with open_for_reading(recording) as rec:
        loaded = resolve_handler(handler, rec.header, recording, options.module_path)
        header = rec.header
        calls: Any = (e for e in rec.events() if isinstance(e, CALL_TYPES) and e.tick < a)
        if start is not None:
            point = start["point"]
            tags = dict(header.tags) if isinstance(header.tags, dict) else {}
            header = _replace_header(header, {**tags, "slice": {"resume": point}}, header.handler)
            init = next((e for e in rec.events() if isinstance(e, Init)), None)
            if init is None:
                raise SliceError(recording, None, f"no match_init before tick {a}")
            first = Init(
                init.params,
                Outcome(tick_rate=point["tick_rate"], label=point["label"], digest=start["digest"]),
                tick=point["tick"],
            )
            later = (
                e
                for e in rec.events(from_tick=point["tick"])
                if isinstance(e, CALL_TYPES) and not isinstance(e, Init) and point["tick"] <= e.tick < a
            )
            calls = itertools.chain((first,), later)
        runtime = MatchRuntime(
            loaded,
            header,
            seed=options.seed,
            hang_timeout=options.hang_timeout,
            env=options.env,
            digests="recorded",
        )
        initialised = False  # a match_init (or a resume point) ran without crashing or stopping
        try:
            for step in iter_steps(runtime, calls):
                if step.divergences:
                    d = step.divergences[0]
                    raise SliceError(
                        recording,
                        d.tick,
                        (
                            f"the replay into {getattr(loaded, 'path', handler)} diverges from the recording before tick {a} "
                            f"({d.callback} at tick {d.tick}: {d.field}), so its state at {a} is not the recorded match's; "
                            "see `nakama-replay diff REC --recorded`"
                        ),
                    )
                if runtime.stopped:
                    what = (
                        f"crashed ({runtime.crash.error})"
                        if runtime.crash is not None
                        else f"stopped ({runtime.stop_reason})"
                    )
                    raise SliceError(
                        recording,
                        step.call.tick,
                        f"the replay {what} in {step.call.callback} at tick "
                        f"{step.call.tick}, before tick {a}: the match has no state at {a}",
                    )
                initialised = initialised or type(step.call) is Init
            if not initialised:
                raise SliceError(recording, None, f"no match_init before tick {a}")
            value = loaded.state_value(runtime.state)
            getstate = getattr(runtime.sources, "getstate", None)
            point = ResumePoint(
                a,
                runtime.tick_rate,
                runtime.label,
                value,
                list(runtime.presences),
                dict(runtime.accepted),
                list(runtime.pending_kicks),
                [[c, k, u, dict(obj)] for (c, k, u), obj in sorted(runtime.nk.storage.objects.items())],
                _plain(getstate()) if getstate else None,
            )
            from replay.runtime._runtime import state_digest

            return {
                "point": point.to_tag(),
                "digest": state_digest(value),
                "handler": os.path.basename(getattr(loaded, "path", "") or str(handler)),
            }
        finally:
            runtime.close()


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (tuple, list)) else v


def slice_recording(
    recording: str,
    out: str | os.PathLike[str],
    from_tick: int,
    to_tick: int,
    *,
    handler: str | None = None,
    replay_state: bool = False,
    options: Any = None,
    limits: Any = None,
    allow_incomplete: bool = False,
) -> Slice:
    """Write ticks ``from_tick``..``to_tick`` of ``recording`` to ``out`` (see the module docstring).
    ``replay_state`` replays to ``from_tick`` even where a snapshot would do; ``limits`` None runs the
    handler in this process; ``allow_incomplete`` slices the intact part of an incomplete recording into
    an unsealed slice instead of refusing it."""
    from recorder.format._nkrec import verify
    from replay.runtime._runtime import ReplayOptions

    options = options or ReplayOptions()
    a, b = from_tick, to_tick
    if a > b:
        raise OptionError("--from-tick", a, f"is after --to-tick {b}")
    integrity = verify(recording)
    if not integrity.complete and not allow_incomplete:  # a sealed slice must not hide a hole in its source
        raise IncompleteRecording(str(recording), integrity)
    info = _scan(recording, a)
    first, last, crash = info["first"], info["last"], info["crash"]
    if first is None:
        raise RecordingError(f"{recording}: holds no handler calls to slice")
    end = max(last, crash.tick) if crash is not None else last
    if not first <= a <= end:
        part = "" if integrity.complete else f" (its intact part: it is {integrity.state})"
        raise OptionError("--from-tick", a, f"outside the recording's ticks ({first}..{end}){part}")
    if crash is not None and a > crash.tick:
        raise OptionError("--from-tick", a, f"after the crash at tick {crash.tick}: the match had stopped")
    header = info["header"]
    init = info["init"]
    if init is None:
        raise RecordingError(f"{recording}: no match_init call: the recording does not start a match")
    tags = dict(header.tags) if isinstance(header.tags, dict) else {}
    if isinstance(tags.get("slice"), dict):
        raise RecordingError(f"{recording}: is itself a slice; slice the original recording")
    meta: dict[str, Any] = {
        "from_tick": a,
        "to_tick": b,
        "of_match": header.match_id,
        "of_file": os.path.basename(recording),
    }
    first_call: Call
    if a == first:
        state_from = "the recording's start (no state needed)"
        first_call = init
    else:
        if info["snapshot"] is not None and not replay_state:
            state = msgpack.unpackb(info["snapshot"], raw=False, strict_map_key=False)
            point = ResumePoint(a, info["tick_rate"], info["label"], state, info["presences"], info["accepted"])
            digest = info["digest"]
            state_from = f"the recording's snapshot after the loop of tick {a - 1}"
        else:
            if handler is None and not header.handler:
                near = [t + 1 for t in info["snapshot_ticks"] if t < a][-3:]
                hint = f" (it has snapshots for slices from ticks {', '.join(map(str, near))})" if near else ""
                raise SliceError(
                    recording,
                    a,
                    f"the recording holds no snapshot of the loop before tick {a}{hint}; "
                    "pass --handler FILE to replay up to it",
                )
            got, state_from = _state_by_replay(recording, handler, a, options, limits, info, replay_state)
            point = _point(got["point"])
            digest = got["digest"]
        meta["resume"] = point.to_tag()
        first_call = InitCall(init.params, Outcome(tick_rate=point.tick_rate, label=point.label, digest=digest), tick=a)
    meta["state_from"] = state_from
    if not integrity.complete:
        meta["source_integrity"] = integrity.state
        meta["not_sliced"] = integrity.missing()
    tags["slice"] = meta
    same_folder = _same_folder(out, recording)
    new_header = _replace_header(header, tags, header.handler if same_folder else "")
    calls = 0
    kept_crash = None
    with atomic_location(out) as tmp, open_for_reading(recording) as rec, RecordingWriter(tmp, new_header) as w:
        w.append(first_call)
        for e in rec.events(from_tick=a if a > first else None):
            if isinstance(e, CrashMarker):
                if a <= e.tick <= b:
                    w.append(e)
                    kept_crash = {"callback": e.callback, "tick": e.tick, "error": e.error}
                continue
            if isinstance(e, (InitCall, WireEvent)):  # match_init is first_call; wire events: refused by _scan
                continue
            if e.tick > b:
                break
            if e.tick >= a:
                w.append(e)
                calls += 1
        if not integrity.complete:
            w.abandon()  # what the source lacks, the slice may lack too: no seal
    return Slice(str(out), a, b, calls + 1, state_from, kept_crash, integrity.complete, integrity.to_json())


def _replace_header(header: Any, tags: dict[str, Any], handler: str) -> Any:
    import dataclasses

    return dataclasses.replace(header, tags=tags, handler=handler)


def _point(tag: dict[str, Any]) -> ResumePoint:
    from recorder.format._model import Header
    from replay.runtime._resume import resume_point

    point = resume_point(Header(tags={"slice": {"resume": tag}}))
    assert point is not None
    return point


def _state_by_replay(
    recording: str, handler: str | None, a: int, options: Any, limits: Any, info: dict[str, Any], replay_state: bool
) -> tuple[dict[str, Any], str]:
    """The resume point at ``a`` by replaying into the handler: from the nearest recorded snapshot before it
    (the calls after the snapshot only), else, or when that replay cannot reach ``a``, from the start."""
    nearest: _Nearest | None = info["nearest"]
    if nearest is not None and not replay_state:
        start = {"point": nearest.point(info["tick_rate"]).to_tag(), "digest": nearest.digest}
        try:
            got = _resume(recording, handler, a, options, limits, start)
        except SliceError as exc:
            why = f" (from the snapshot after tick {nearest.tick} it could not: {exc.reason})"
        else:
            return got, (
                f"the recording's snapshot after the loop of tick {nearest.tick}, then a replay into "
                f"{got['handler']} of ticks {nearest.tick + 1}..{a - 1}"
            )
    else:
        why = ""
    got = _resume(recording, handler, a, options, limits)
    return got, f"a replay into {got['handler']} up to tick {a}{why}"


def _resume(
    recording: str, handler: str | None, a: int, options: Any, limits: Any, start: dict[str, Any] | None = None
) -> dict[str, Any]:
    if limits is None:
        return resume_by_replay(recording, handler, a, options, start)
    from replay.errors import HandlerDied
    from replay.runtime._supervisor import HandlerProcess

    with HandlerProcess(limits) as worker:
        try:
            point: dict[str, Any] = worker.call(
                "replay.timeline._slicing:resume_by_replay", recording, handler, a, options, start
            )
            return point
        except HandlerDied as exc:
            raise SliceError(
                recording,
                exc.death.tick,
                f"the handler process {exc.death.kind} {exc.death.where} "
                f"while replaying up to tick {a}: {exc.death.describe()}",
            ) from None


def _same_folder(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two locations (paths or URLs) sit in one folder, so a header's relative handler still holds."""
    from recorder.storage import local_path, sibling

    la, lb = local_path(a), local_path(b)
    if la is not None and lb is not None:
        return Path(la).resolve().parent == Path(lb).resolve().parent
    return la is None and lb is None and sibling(a, "") == sibling(b, "")
