"""The compiled row helper (``recorder.format._rows``, see ``recorder.format._schema.native_rows``): the very rows,
errors and bytes of the pure-Python comprehension it stands in for, and no reference leaked or lost."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given, settings

from recorder.format import LoopCall, MatchMessage, MessageBatch, Outcome, Presence, _schema
from tests.common.model_strategies import event_lists, pinned_events
from tests.format.test_pack_chunk import A, B, C, arena, msgpacks_of, ours, reference_chunk

try:
    from recorder.format import _rows as native
except ImportError:  # not built: every test but the first is skipped (test_pack_chunk covers the Python rows)
    native = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(native is None, reason="the compiled row helper is not built here")


def comprehension(messages: Any, index: dict[Presence, int]) -> list[tuple[Any, ...]]:
    """What the writer runs without the helper (``_schema._message_rows``)."""
    return [(index[m.sender], m.op_code, m.data, m.reliable, m.receive_time_ms) for m in messages]


def outcome_of(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except Exception as exc:
        return type(exc), exc.args


@contextmanager
def rows_in_python() -> Iterator[None]:
    was = _schema.native_rows()
    _schema.native_rows(False)
    try:
        yield
    finally:
        _schema.native_rows(was)


def test_the_helper_is_built_where_a_compiler_is() -> None:
    """setup.py builds it as optional: a failed build must not pass unnoticed where it could have been built."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here")
    assert _schema.native_rows(), "recorder/format/_rows.c is not built: pip install -e ."
    assert "_native_rows(x2, index)" in _schema.source("_encode_events")


@pytest.mark.parametrize("problem", ["ImportError", "TypeError", "AttributeError"])
def test_the_rows_are_made_in_python_when_the_helper_cannot_serve(problem: str) -> None:
    """A helper that is missing, or cannot read MatchMessage's fields (``setup`` refuses the class), leaves the
    writer on the Python rows: the package still imports and writes the same bytes."""
    script = f"""
import sys, types
fake = types.ModuleType("recorder.format._rows")
def setup(cls):
    raise {problem}("no")
fake.setup = setup
sys.modules["recorder.format._rows"] = fake if "{problem}" != "ImportError" else None
from recorder.format import LoopCall, MatchMessage, Presence, _schema
from recorder.format._codec import pack_chunk
p = Presence("u", "s", "n")
assert not _schema.native_rows() and "_native_rows" not in _schema.source("_encode_events")
print(pack_chunk([LoopCall(1, (MatchMessage(p, 1, b"x"), MatchMessage(p, 2, None, False, 5)))]).hex())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    p = Presence("u", "s", "n")
    events = [LoopCall(1, (MatchMessage(p, 1, b"x"), MatchMessage(p, 2, None, False, 5)))]
    assert bytes.fromhex(done.stdout.strip()) == msgpacks_of(reference_chunk(events))


@needs_native
def test_rows_off_and_on_again() -> None:
    with rows_in_python():
        assert not _schema.native_rows()
        assert "_native_rows" not in _schema.source("_encode_events")
        assert "_native_rows" not in _schema.source("_pack_loop")
    assert _schema.native_rows()
    assert "_native_rows" in _schema.source("_pack_loop")


@dataclass(frozen=True)
class LookAlike:  # not a MatchMessage: read through attribute access
    sender: Any
    op_code: Any
    data: Any
    reliable: Any = True
    receive_time_ms: Any = 0


class Unslotted:
    sender = op_code = data = reliable = receive_time_ms = None


class Sub(MatchMessage, frozen=True, gc=False):  # a subclass: attribute access too
    pass


INDEX = {A: 0, B: 1}
MESSAGES: list[Any] = [
    MatchMessage(A, 1, b"a", True, 5),
    MatchMessage(B, 2, None, False, 2**63 - 1),
    MatchMessage(Presence("u1", "s1", "alice", "n1"), -3, b"", True, 0),  # equal to A, another object
    LookAlike(B, 7, b"x"),
    Sub(A, 9, b"y", False, 1),
]


@needs_native
@pytest.mark.parametrize("container", [tuple, list, iter])
def test_the_same_rows(container: Any) -> None:
    got = native.rows(container(MESSAGES), INDEX)
    expected = comprehension(MESSAGES, INDEX)
    assert got == expected
    assert [type(r) for r in got] == [tuple] * len(MESSAGES)
    assert all(a is b for r, s in zip(got, expected, strict=True) for a, b in zip(r, s, strict=True))


@needs_native
def test_the_same_rows_of_a_read_loop() -> None:
    """A loop read back from a file holds a ``MessageBatch`` (the writer meets it when a recording is written again)."""
    rows = [[0, 1, b"a", True, 5], [1, 2, None, False, 6]]
    batch = MessageBatch(rows, [A, B], ("<t>", 0, 0))
    assert native.rows(batch, INDEX) == comprehension(batch, INDEX) == [tuple(r) for r in rows]


@needs_native
@pytest.mark.parametrize(
    "messages",
    [
        [MatchMessage(A, 1, b""), MatchMessage(C, 1, b"")],  # a sender the table does not hold yet
        [MatchMessage(Presence("u", "s", "n", "x", [1]), 1, b"")],  # type: ignore[arg-type]  # unhashable
        [MatchMessage(A, 1, b""), object()],  # not a message
        [LookAlike(A, 1, b""), LookAlike(C, 1, b"")],
        5,  # not iterable
    ],
)
def test_the_same_errors(messages: Any) -> None:
    expected = outcome_of(comprehension, messages, INDEX)
    assert isinstance(expected, tuple) and issubclass(expected[0], Exception)
    got = outcome_of(native.rows, messages, INDEX)
    assert got[0] is expected[0]
    if expected[0] is KeyError:
        assert got == expected  # the sender, as dict's [] names it: the writer then registers it through ref


@needs_native
def test_no_reference_leaked_or_lost() -> None:
    data, late = b"payload that is not interned", 10**12 + 7
    messages = tuple(MatchMessage(A, 1, data, True, late) for _ in range(50))
    bad = (*messages[:10], MatchMessage(C, 1, data, True, late))
    index = {A: 10**9 + 1}  # an index value that is not a cached small int

    def counts() -> list[int]:
        return [sys.getrefcount(x) for x in (data, late, A, C, messages[0], bad[-1], index[A])]

    before = counts()
    for _ in range(200):
        rows = native.rows(messages, index)
        assert rows[0] == (index[A], 1, data, True, late)
        del rows
        with pytest.raises(KeyError):
            native.rows(bad, index)
    assert counts() == before


@needs_native
def test_setup_takes_a_class_with_the_five_slots() -> None:
    with pytest.raises(TypeError):
        native.setup(Unslotted)  # class attributes, not slots
    with pytest.raises(AttributeError):
        native.setup(LookAlike)  # no class attribute "sender" at all
    with pytest.raises(TypeError):
        native.setup(MatchMessage(A, 1, b""))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.rows(MESSAGES, list(INDEX))  # type: ignore[arg-type]
    assert native.rows(MESSAGES[:2], INDEX) == comprehension(MESSAGES[:2], INDEX)  # still set up for MatchMessage


@needs_native
@settings(max_examples=150, deadline=None)
@given(event_lists(max_size=20))
@example(pinned_events())
@example(arena(120))
@example(  # a sender new to the chunk in the middle of a loop, equal presences that are distinct objects
    [
        LoopCall(1, (MatchMessage(A, 1, b"a"), MatchMessage(Presence("u1", "s1", "alice", "n1"), 2, None))),
        LoopCall(2, (MatchMessage(B, 1, b""), MatchMessage(C, 1, b"", False, 9)), Outcome(kicks=(A,))),
    ]
)
def test_chunks_are_the_same_bytes_either_way(events: list[Any]) -> None:
    """The writer's chunk with rows made by the helper and in Python: the reference chunk's bytes (or msgpack's
    error) both times."""
    expected = msgpacks_of(reference_chunk(events))
    assert ours(events) == expected
    with rows_in_python():
        assert ours(events) == expected
