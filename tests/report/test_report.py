"""Reports: result objects rendered to strings in one place, and one convention for values inside them."""

from __future__ import annotations

import io
import json
import sys

import pytest

from recorder.format import Presence
from replay.diff import field_diff
from replay.diff._calls import MatchDiff
from replay.diff._state import path_json
from replay.regression import RegressionRun, run_expectation
from replay.report import (
    describe_data,
    exact_bytes,
    format_regression_failure,
    format_reproduce,
    jsonable,
    short,
)
from replay.runtime import Divergence, reproduce
from tests.common.paths import FIXTURES

CRASH = FIXTURES / "recordings" / "arena-reconnect-crash.nkrec"
FIXED = FIXTURES / "handlers" / "arena_fixed.py"


class _NoStdout(io.TextIOBase):
    def write(self, text: str) -> int:
        raise AssertionError(f"a report printed instead of returning its text: {text!r}")


def test_values_in_reports_follow_one_convention() -> None:
    alice = Presence("u1", "s1", "alice", "n1", 4)
    value = {1: (b"hi", b"\xff\x00", float("nan"), float("inf"), float("-inf")), "p": alice}
    assert jsonable(value) == {
        "1": ["hi", "base64:/wA=", "NaN", "Infinity", "-Infinity"],
        "p": {"user_id": "u1", "session_id": "s1", "username": "alice", "node": "n1", "reason": 4},
    }
    assert jsonable(b"hi", exact_bytes) == {"base64": "aGk="}  # comparing: bytes never look like text
    json.dumps(jsonable(value), allow_nan=False)
    assert describe_data(b"x" * 130) == "x" * 120 + "..." and describe_data(None) is None
    assert short("x" * 200) == repr("x" * 200)[:160] + "..." and short([1]) == "[1]"


def test_every_divergence_is_one_record_written_the_same_way() -> None:
    """The replay's divergence from its recording, the diff's outcome fields and state paths are one record
    type (``Divergence``), and their JSON writes values alike."""
    nan, data = float("nan"), b"\x00\x01"
    replayed = Divergence("broadcasts", [nan, data], [0.0, data], 7, "match_loop", 3)
    assert replayed.to_json() == {
        "index": 3,
        "tick": 7,
        "callback": "match_loop",
        "field": "broadcasts",
        "recorded": ["NaN", "base64:AAE="],
        "replayed": [0.0, "base64:AAE="],
    }
    diff = MatchDiff("recorded", True, 4, "a", "b", 3, 7, "match_loop", outcomes=(replayed,))
    assert diff.to_json()["outcomes"] == [
        {"field": "broadcasts", "a": ["NaN", "base64:AAE="], "b": [0.0, "base64:AAE="]}
    ]
    path = field_diff({"k": data, "x": nan}, {"k": b"\x00\x02", "x": 0.0}).paths
    assert all(type(p) is Divergence for p in path)
    assert [path_json(p) for p in path] == [
        {"path": "k", "a": {"base64": "AAE="}, "b": {"base64": "AAI="}},  # compared exactly: never shown as text
        {"path": "x", "a": "NaN", "b": 0.0},
    ]


def test_formatting_returns_text_and_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    result = reproduce(str(CRASH), str(FIXED))
    monkeypatch.setattr(sys, "stdout", _NoStdout())
    text = format_reproduce(result)
    assert text.endswith("\n") and text.splitlines()[-1] == f"DID NOT REPRODUCE: {result.verdict}"
    assert text.startswith(f"recording  {CRASH}\nhandler    {FIXED}\n")


def test_a_regression_failure_is_rendered_without_capturing_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest plugin's failure text: the problems, the reproduce report, the first divergent tick."""
    run = run_expectation(CRASH, None, str(FIXED))
    monkeypatch.setattr(sys, "stdout", _NoStdout())
    text = format_regression_failure(run, ["expected a crash"], "x.expect.toml")
    head, report = text.split("\n\n", 1)
    assert head == "expectation  x.expect.toml\nFAILED: expected a crash"
    assert report.startswith(format_reproduce(run.result))
    d = run.result.divergences[0]
    assert f"\nfirst divergent tick {d.tick} ({d.callback}, call #{d.index}): {d.field}\n" in text
    assert format_regression_failure(RegressionRun(result=run.result), []).startswith(
        "\n" + format_reproduce(run.result)
    )
