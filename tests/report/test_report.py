"""Reports: result objects rendered to strings in one place, and one convention for values inside them."""

from __future__ import annotations

import io
import json
import sys

import pytest

from recorder.format import Presence
from replay.diff import OutcomeDiff, PathDiff, field_diff
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


def test_every_divergence_record_writes_values_the_same_way() -> None:
    """The runtime's divergence, the call diff's outcome field and the state diff's path agree on values."""
    nan, data = float("nan"), b"\x00\x01"
    runtime = Divergence(3, 7, "match_loop", "state", [nan, data], [0.0, data]).to_json()
    outcome = OutcomeDiff("broadcasts", [nan, data], [0.0, data]).to_json()
    assert runtime["recorded"] == outcome["a"] == ["NaN", "base64:AAE="]
    state = PathDiff("x", nan, 0.0).to_json()
    assert state["a"] == runtime["recorded"][0] == "NaN"
    assert field_diff({"k": data}, {"k": b"\x00\x02"}).paths[0].to_json()["a"] == {"base64": "AAE="}


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
