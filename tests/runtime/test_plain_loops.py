"""A replay from a file compares a plain loop's recorded outcome in its encoded form (``iter_replay``,
``MatchRuntime.replay_loop``). Held here to the reference path (every call decoded and run through
``apply``, which ``reproduce`` takes when an observer wants every step) on recordings that say something
other than what the handler does, one field at a time: the whole result, first divergent tick and
explanation text included, must be the same."""

from __future__ import annotations

import dataclasses
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recorder.errors import CorruptRecording
from recorder.format import (
    Broadcast,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    _codec,
    open_recording,
    read_events,
    write_recording,
)
from recorder.format._schema import PlainLoops
from replay.runtime import ReplayOptions, load_handler, reproduce
from tests.common.paths import HANDLERS, RECORDINGS

CLEAN = RECORDINGS / "arena-clean.nkrec"  # loops with digests, position broadcasts every 5 ticks, snapshots
ARENA = str(HANDLERS / "arena.py")


def _both(path: Path, **options: Any) -> dict[str, Any]:
    fast = reproduce(path, ARENA, ReplayOptions(**options))
    slow = reproduce(path, ARENA, ReplayOptions(**options), observer=lambda step: None)
    assert fast.to_json() == slow.to_json()
    return fast.to_json()


def _plain_ticks(path: Path) -> set[int]:
    with open_recording(path) as rec:
        return {e[0] for e in rec.replay_events() if type(e) is tuple}


def _run_ticks(path: Path) -> set[int]:
    """The ticks of the loops a replay runs in runs (a chunk decoded typed: ``MatchRuntime.replay_plain``)."""
    with open_recording(path) as rec:
        return {ev.tick for e in rec.replay_runs() if type(e) is PlainLoops for ev in e.events}


#: the chunk sizes recordings are written with: one chunk for the whole match (the reference decodes it: its
#: first events are no loops), and small chunks, most of them loops alone (decoded typed, run in runs)
CHUNKINGS = pytest.mark.parametrize("chunk_events", [256, 3])


def _first_loop(events: list[Any], broadcasting: bool) -> int:
    """The index of the first loop with messages that (does not) broadcast and is plain (no nondeterministic
    values)."""
    return next(
        i
        for i, e in enumerate(events)
        if type(e) is LoopCall
        and e.messages
        and e.outcome is not None
        and bool(e.outcome.broadcasts) == broadcasting
        and not e.outcome.label_updates
        and not e.nondeterministic
    )


def _loop_to_change(path: Path, header: Header, events: list[Any], broadcasting: bool, chunk_events: int) -> int:
    """``_first_loop``, in a chunk of loops alone when written ``chunk_events`` a chunk (a run), when that is
    small enough for there to be such chunks (``path``: where to write it to see)."""
    i = _first_loop(events, broadcasting)
    if chunk_events >= 8:
        return i
    write_recording(path, header, events, chunk_events=chunk_events)
    runs = _run_ticks(path)
    return next(
        j for j in range(i, len(events)) if _first_loop(events[j:], broadcasting) == 0 and events[j].tick in runs
    )


def _mutated(
    tmp_path: Path, change: Callable[[LoopCall], LoopCall], broadcasting: bool = True, chunk_events: int = 256
) -> tuple[Path, int]:
    header, events = read_events(CLEAN)
    path = tmp_path / "mutated.nkrec"
    i = _loop_to_change(path, header, events, broadcasting, chunk_events)
    events[i] = change(events[i])
    write_recording(path, header, events, chunk_events=chunk_events)
    return path, events[i].tick


def _outcome(**changes: Any) -> Callable[[LoopCall], LoopCall]:
    def change(call: LoopCall) -> LoopCall:
        assert call.outcome is not None
        fields = {k: v(call.outcome) if callable(v) else v for k, v in changes.items()}
        return dataclasses.replace(call, outcome=dataclasses.replace(call.outcome, **fields))

    return change


def _flip_byte(b: Broadcast) -> Broadcast:
    assert b.data
    return dataclasses.replace(b, data=bytes([b.data[0] ^ 1]) + b.data[1:])


def _moved(m: MatchMessage) -> MatchMessage:
    """The message as an input that moves its sender somewhere else than the recorded message did."""
    data = b'{"dx": 1, "dy": 1}' if m.data != b'{"dx": 1, "dy": 1}' else b'{"dx": -1, "dy": -1}'
    return dataclasses.replace(m, op_code=1, data=data)


def _recorded_messages(change: Callable[[tuple[MatchMessage, ...]], tuple[MatchMessage, ...]]) -> Any:
    return lambda call: dataclasses.replace(call, messages=change(tuple(call.messages)))


def test_the_clean_recording_replays_its_loops_on_the_fast_path() -> None:
    doc = _both(CLEAN)
    assert doc["divergence_count"] == 0 and doc["ticks_replayed"] > 30
    plain = _plain_ticks(CLEAN)
    assert len(plain) > 25  # most loops: the fast path is what this file exercises


MUTATIONS: list[tuple[str, Callable[[LoopCall], LoopCall], bool, str]] = [
    # (name, change, on a broadcasting loop, the field the first divergence names)
    (
        "a broadcast's data, one byte",
        _outcome(broadcasts=lambda o: (_flip_byte(o.broadcasts[0]), *o.broadcasts[1:])),
        True,
        "broadcasts",
    ),
    (
        "a broadcast's op code",
        _outcome(broadcasts=lambda o: tuple(dataclasses.replace(b, op_code=99) for b in o.broadcasts)),
        True,
        "broadcasts",
    ),
    (
        "a broadcast's reliability",
        _outcome(broadcasts=lambda o: tuple(dataclasses.replace(b, reliable=not b.reliable) for b in o.broadcasts)),
        True,
        "broadcasts",
    ),
    (
        "a broadcast deferred",
        _outcome(broadcasts=lambda o: tuple(dataclasses.replace(b, deferred=not b.deferred) for b in o.broadcasts)),
        True,
        "broadcasts",
    ),
    (
        "a broadcast to one presence",
        _outcome(
            broadcasts=lambda o: (
                dataclasses.replace(o.broadcasts[0], targets=(o.broadcasts[0].sender or _a_presence(),)),
            )
        ),
        True,
        "broadcasts",
    ),
    (
        "a broadcast with a sender",
        _outcome(broadcasts=lambda o: (dataclasses.replace(o.broadcasts[0], sender=_a_presence()),)),
        True,
        "broadcasts",
    ),
    ("a broadcast more", _outcome(broadcasts=lambda o: (*o.broadcasts, Broadcast(11, b"x"))), True, "broadcasts"),
    ("a broadcast fewer", _outcome(broadcasts=()), True, "broadcasts"),
    ("a broadcast the handler does not make", _outcome(broadcasts=(Broadcast(10, b"{}"),)), False, "broadcasts"),
    ("the digest, one bit", _outcome(digest=lambda o: o.digest ^ 1), False, "digest"),
    ("the digest of a broadcasting loop", _outcome(digest=lambda o: o.digest ^ (1 << 63)), True, "digest"),
    ("a kick", _outcome(kicks=(lambda o: (_a_presence(),))), False, "kicks"),
    ("a label update", _outcome(label_updates=("x",)), False, "label_updates"),
    ("a stop", _outcome(stopped=True), False, "stopped"),
    ("an empty outcome", lambda call: dataclasses.replace(call, outcome=Outcome()), True, "broadcasts"),
    (
        "a message's input (the state differs)",
        _recorded_messages(lambda ms: (_moved(ms[0]), *ms[1:])),
        False,
        "digest",
    ),
    (
        "a recorded value the handler does not use",
        lambda call: dataclasses.replace(call, nondeterministic=(Nondeterministic("random", 0.5),)),
        False,
        "nondeterministic",
    ),
]


def _a_presence() -> Any:
    _, events = read_events(CLEAN)
    return next(e for e in events if hasattr(e, "presences")).presences[0]


@CHUNKINGS
@pytest.mark.parametrize(("name", "change", "broadcasting", "field"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_recorded_outcome_that_differs_gives_the_reference_verdict(
    tmp_path: Path, name: str, change: Callable[[LoopCall], LoopCall], broadcasting: bool, field: str, chunk_events: int
) -> None:
    path, tick = _mutated(tmp_path, change, broadcasting, chunk_events)
    doc = _both(path)
    first = doc["divergences"][0]
    assert (first["tick"], first["field"]) == (tick, field), first  # the change is what the replay found
    assert not doc["reproduced"]


def test_without_digest_checks_a_digest_that_differs_is_not_compared(tmp_path: Path) -> None:
    path, tick = _mutated(tmp_path, _outcome(digest=lambda o: o.digest ^ 1), broadcasting=False)
    assert tick in _plain_ticks(path)
    assert _both(path, verify_digests=False)["divergence_count"] == 0
    assert _both(path)["divergence_count"] == 1


def test_an_outcome_left_out_compares_nothing(tmp_path: Path) -> None:
    path, tick = _mutated(tmp_path, lambda call: dataclasses.replace(call, outcome=None))
    assert tick in _plain_ticks(path)
    assert _both(path)["divergence_count"] == 0


@pytest.mark.parametrize("chunk_events", [0, 4, 7])
def test_until_tick_and_the_last_inputs_are_the_references(tmp_path: Path, chunk_events: int) -> None:
    """The clean recording as captured (a chunk a tick), and written again in chunks of several loops (the
    tick ``until_tick`` stops at then falls inside a run)."""
    path, until = CLEAN, 22
    if chunk_events:
        header, events = read_events(CLEAN)
        path = tmp_path / "chunked.nkrec"
        write_recording(path, header, events, chunk_events=chunk_events)
        runs = _run_ticks(path)
        until = next(t for t in range(12, 40) if {t - 1, t, t + 1} <= runs)
    doc = _both(path, until_tick=until, last_ticks=4)
    assert doc["ticks_replayed"] == until + 1
    assert {m["tick"] for m in doc["last_inputs"]} >= set(range(until - 3, until + 1))


def test_the_last_inputs_are_the_recorded_messages_whatever_the_handler_did_to_its_list() -> None:
    """A plain loop hands ``match_loop`` the decoder's own list of messages (no copy); the last inputs a
    report lists are decoded again from the recording, so a handler that empties its list changes nothing."""
    handler = load_handler(ARENA)
    loop = handler.match_loop

    def emptying(*args: Any) -> Any:
        state = loop(*args)
        args[-1].clear()
        return state

    handler.match_loop = emptying
    emptied = reproduce(CLEAN, handler, ReplayOptions(last_ticks=4)).to_json()
    reference = reproduce(CLEAN, ARENA, ReplayOptions(last_ticks=4), observer=lambda step: None).to_json()
    assert emptied["reproduced"] and emptied["divergence_count"] == 0
    assert emptied["last_inputs"] == reference["last_inputs"]
    assert any(m["messages"] for m in reference["last_inputs"])  # there were messages to lose


FAILURES = {
    "crash": "raise ValueError('bad input')",
    "hang": "while True: pass",
    "interrupt": "raise KeyboardInterrupt",
}
ERROR_TYPES = {"crash": "ValueError", "hang": "Hang", "interrupt": "KeyboardInterrupt"}


@pytest.mark.parametrize("kind", FAILURES)
def test_a_plain_loop_that_fails_stops_the_match_as_the_reference_does(tmp_path: Path, kind: str) -> None:
    """``replay_loop`` runs ``match_loop`` itself (not through ``_invoke``): a crash, a hang and the handler's own
    ``KeyboardInterrupt`` (in a process that ignores SIGINT, as a supervised worker does) end the replay as the
    reference path ends it; a ``KeyboardInterrupt`` in a process that takes SIGINT is the user's Ctrl-C."""
    tick = sorted(_plain_ticks(CLEAN))[10]
    shutil.copy(HANDLERS / "arena.py", tmp_path / "arena.py")
    handler = tmp_path / "failing.py"
    handler.write_text(
        "from arena import *  # noqa: F403\nfrom arena import match_loop as _loop\n\n\n"
        "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n"
        f"    if tick == {tick}:\n        {FAILURES[kind]}\n"
        "    return _loop(ctx, logger, nk, dispatcher, tick, state, messages)\n"
    )
    options = ReplayOptions(hang_timeout=0.3)
    if kind == "interrupt":
        with pytest.raises(KeyboardInterrupt):  # the user's Ctrl-C: an interruption, not a crash
            reproduce(CLEAN, handler, options)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        fast = reproduce(CLEAN, handler, options).to_json()
        reference = reproduce(CLEAN, handler, options, observer=lambda step: None).to_json()
    finally:
        if kind == "interrupt":
            signal.signal(signal.SIGINT, previous)
    assert fast == reference
    assert (fast["callback"], fast["tick"], fast["error_type"]) == ("match_loop", tick, ERROR_TYPES[kind])
    assert fast["outcome"] == ("hung" if kind == "hang" else "crashed")


@CHUNKINGS
@pytest.mark.parametrize("damage", ["op_code", "sender"])
def test_a_damaged_message_of_a_plain_loop_is_the_readers_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, chunk_events: int
) -> None:
    """A message row the reader refuses (an op code that is text: no chunk that holds it is decoded typed; a
    sender index past the chunk's presence table: the typed decoding cannot tell, the replay can)."""
    header, events = read_events(CLEAN)
    path = tmp_path / "damaged.nkrec"
    i = _loop_to_change(path, header, events, False, chunk_events)
    target = events[i].tick
    encode = _codec._encode  # what the writer packs (encode_chunk gives its chunk)

    def damaging(chunk: list[Any]) -> tuple[Any, list[Any]]:
        table, payload = encode(chunk)
        for ev in payload[1]:
            if ev[0] == 4 and ev[1] == target:
                sender, op_code, *rest = ev[2][0]
                if damage == "op_code":
                    ev[2][0] = (sender, "one", *rest)  # an op code that is not an integer
                else:
                    ev[2][0] = (len(payload[0]), op_code, *rest)
        return table, payload

    monkeypatch.setattr(_codec, "_encode", damaging)
    write_recording(path, header, events, chunk_events=chunk_events)
    monkeypatch.undo()
    assert target in _plain_ticks(path)
    if chunk_events < 8:
        assert (target in _run_ticks(path)) == (damage == "sender")
    errors = []
    for observer in (None, lambda step: None):
        with pytest.raises(CorruptRecording) as err:
            reproduce(path, ARENA, ReplayOptions(), observer=observer)
        errors.append((str(err.value), err.value.field))
    assert errors[0] == errors[1] and errors[0][1].endswith(f"messages[0].{damage}")


DOER = """
def match_init(ctx, logger, nk, params):
    return {"n": 0}, 10, ""


def match_join_attempt(ctx, logger, nk, dispatcher, tick, state, presence, metadata):
    return state, True, ""


def match_join(ctx, logger, nk, dispatcher, tick, state, presences):
    return state


def match_leave(ctx, logger, nk, dispatcher, tick, state, presences):
    return state


def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):
    for m in messages:
        if m.op_code == 1:
            dispatcher.match_kick([m.sender])
        elif m.op_code == 2:
            dispatcher.match_label_update("l%d" % tick)
        elif m.op_code == 3:
            return None
        elif m.op_code == 4:
            raise ValueError("boom at %d" % tick)
        elif m.op_code == 5:
            dispatcher.broadcast_message(7, "to one", [m.sender])
        elif m.op_code == 6:
            dispatcher.broadcast_message(7, "from one", None, m.sender)
    state["n"] += 1
    return state


def match_terminate(ctx, logger, nk, dispatcher, tick, state, grace_seconds):
    return state


def match_signal(ctx, logger, nk, dispatcher, tick, state, data):
    return state, ""
"""


@CHUNKINGS
@pytest.mark.parametrize(
    ("op_code", "field"),
    [(1, "kicks"), (2, "label_updates"), (3, "stopped"), (4, None), (5, "broadcasts"), (6, "broadcasts")],
)
def test_what_a_plain_outcome_cannot_say_goes_to_the_reference(
    tmp_path: Path, op_code: int, field: str | None, chunk_events: int
) -> None:
    """A handler that kicks, relabels, stops, crashes or broadcasts to or from a presence on tick 4 of a
    recording whose outcomes (empty: plain) say it did nothing: the fast path hands each to the reference."""
    handler = tmp_path / "doer.py"
    handler.write_text(DOER)
    alice = _a_presence()
    events: list[Any] = [
        InitCall({}, Outcome()),
        JoinAttemptCall(0, alice, {}, Outcome(accept=True)),
        JoinCall(0, (alice,), Outcome()),
    ]
    # the broadcast the handler makes, recorded as going to everyone from no one
    said = Outcome(broadcasts=(Broadcast(7, b"to one" if op_code == 5 else b"from one"),)) if op_code > 4 else Outcome()
    for tick in range(8):
        messages = (MatchMessage(alice, op_code if tick == 4 else 9, b"", True, 0),)
        events.append(LoopCall(tick, messages, said if tick == 4 else Outcome()))
    path = tmp_path / "doer.nkrec"
    write_recording(path, Header(match_id="m.n", tick_rate=10), events, chunk_events=chunk_events)
    assert _plain_ticks(path) == set(range(8))
    assert _run_ticks(path) == (set(range(8)) if chunk_events < 8 else set())
    fast = reproduce(path, str(handler), ReplayOptions())
    slow = reproduce(path, str(handler), ReplayOptions(), observer=lambda step: None)
    assert fast.to_json() == slow.to_json()
    if field is None:
        assert fast.crash is not None and (fast.crash.tick, fast.crash.error) == (4, "ValueError: boom at 4")
    else:
        assert (fast.divergences[0].tick, fast.divergences[0].field) == (4, field)
