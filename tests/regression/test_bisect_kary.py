"""k-ary bisection (issue 20): ``bisect --run CMD -j K`` tests K versions per round, side by side, on threads or
on a real Dask cluster, and finds the same first bad version as the one-at-a-time search in fewer rounds."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.cli import main
from replay.regression._bisect import ABORT, BAD, GOOD, SKIP, Version, bisect, kary_bisect, kary_points
from tests.common.paths import RECORDINGS

CRASH_REC = str(RECORDINGS / "arena-reconnect-crash.nkrec")


def _versions(n: int) -> list[Version]:
    return [Version(f"v{i}", str(i)) for i in range(n)]


def _monotone(first_bad: int, skips: frozenset[int] = frozenset()):  # type: ignore[no-untyped-def]
    def test_many(chosen: list[Version]) -> list[tuple[str, str]]:
        out = []
        for v in chosen:
            i = int(v.ref)
            out.append((SKIP, "skip") if i in skips else (BAD, "bad") if i >= first_bad else (GOOD, "good"))
        return out

    return test_many


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 300), data=st.data(), k=st.integers(1, 6))
def test_kary_finds_the_first_bad_version_in_few_rounds(n: int, data, k: int) -> None:  # type: ignore[no-untyped-def]
    first_bad = data.draw(st.integers(1, n - 1))
    rounds: list[int] = []

    def test_many(chosen: list[Version]) -> list[tuple[str, str]]:
        rounds.append(len(chosen))
        assert len(chosen) <= k and [int(v.ref) for v in chosen] == sorted(int(v.ref) for v in chosen)
        return _monotone(first_bad)(chosen)

    result = kary_bisect(_versions(n), test_many, k)
    assert result.first_bad_index == first_bad and not result.aborted
    # each round cuts the open range (good, bad) into k + 1 parts: ceil(log_{k+1}(n - 1)) rounds, +1 for rounding
    assert len(rounds) <= math.ceil(math.log(max(n - 1, 1)) / math.log(k + 1)) + 1
    steps = [s.index for s in result.steps]
    assert len(steps) == len(set(steps)), "a version was tested twice"


@settings(max_examples=150, deadline=None)
@given(n=st.integers(3, 120), data=st.data(), k=st.integers(2, 5))
def test_kary_with_skips_agrees_with_the_one_at_a_time_search(n: int, data, k: int) -> None:  # type: ignore[no-untyped-def]
    first_bad = data.draw(st.integers(1, n - 1))
    skips = frozenset(data.draw(st.sets(st.integers(1, n - 2), max_size=n // 3)))
    many = _monotone(first_bad, skips)
    result = kary_bisect(_versions(n), many, k)
    if result.first_bad is not None:
        assert result.first_bad_index == first_bad  # never a wrong answer
    else:  # every version that could be the first bad one was skipped: the candidates hold the true one
        assert first_bad in [int(v.ref) for v in result.candidates]
        assert all(int(v.ref) in skips for v in result.candidates[:-1])
    one = bisect(_versions(n), lambda v: many([v])[0])
    assert (one.first_bad_index is None) == (result.first_bad_index is None)


def test_a_round_is_judged_by_its_first_bad_and_last_good_below_it() -> None:
    # versions 0..12, k = 3: the first round tests 3, 6, 9; 9 good but 3 bad (not monotone): 3 closes the range
    verdicts = {3: BAD, 6: GOOD, 9: BAD, 1: GOOD, 2: GOOD}
    result = kary_bisect(_versions(13), lambda vs: [(verdicts.get(int(v.ref), GOOD), "") for v in vs], 3)
    assert [s.index for s in result.steps][:3] == [3, 6, 9]
    assert result.first_bad_index == 3


def test_an_abort_in_a_round_ends_the_search_naming_that_version() -> None:
    result = kary_bisect(_versions(20), lambda vs: [(ABORT if v.ref == "5" else GOOD, f"said {v.ref}") for v in vs], 3)
    assert result.aborted and result.first_bad is None and result.message == "aborted at v5: said 5"


def test_kary_points_spread_over_the_range() -> None:
    assert kary_points(0, 12, range(1, 12), 3) == [3, 6, 9]
    assert kary_points(0, 4, [1, 3], 3) == [1, 3]  # fewer untested versions than jobs
    assert kary_points(0, 100, range(1, 100), 1) == [50]


def _cli_json(capsys, *argv: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def _timed_command(log: Path, first_bad: int) -> str:
    """A --run command that takes a second, logs when it ran, and is bad from version ``first_bad`` on."""
    return (
        f"sh -c 'echo {{version}} $(date +%s.%N) >> {log}; sleep 1; echo {{version}} $(date +%s.%N) >> {log}; "
        f"test {{version}} -lt {first_bad}'"
    )


def _overlapping(log: Path) -> bool:
    """Whether any two commands ran at the same time (one started before another ended)."""
    spans: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        version, when = line.split()
        spans.setdefault(version, []).append(float(when))
    intervals = sorted((s[0], s[-1]) for s in spans.values())
    return any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(intervals))


def test_bisect_run_with_jobs_runs_commands_side_by_side(capsys, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    versions = [str(v) for v in range(1, 17)]
    code, out = _cli_json(
        capsys, "bisect", CRASH_REC, "--versions", *versions, "--run", _timed_command(log, 11), "-j", "3", "--json"
    )
    assert code == 0 and out["first_bad"]["name"] == "11", out
    assert _overlapping(log), "with -j 3 the commands of a round should run at the same time"
    assert out["replays"] <= 9  # 2 rounds of 3 (log_4 of 15); one at a time would take 4 sequential steps


def test_bisect_run_on_a_dask_cluster(capsys, tmp_path: Path, dask_cluster) -> None:  # type: ignore[no-untyped-def]
    address = dask_cluster.ready()
    log = tmp_path / "ran.log"
    versions = [str(v) for v in range(1, 11)]
    started = time.monotonic()
    code, out = _cli_json(
        capsys,
        "bisect",
        CRASH_REC,
        "--versions",
        *versions,
        "--run",
        _timed_command(log, 4),
        "-j",
        "2",
        "--executor",
        address,
        "--json",
    )
    assert code == 0 and out["first_bad"]["name"] == "4", out
    assert _overlapping(log), "the cluster's two workers should run a round's commands at the same time"
    assert time.monotonic() - started < 120


def test_jobs_and_executor_are_refused_where_they_mean_nothing(capsys, tmp_path: Path) -> None:
    handlers = tmp_path / "h"
    handlers.mkdir()
    assert main(["bisect", CRASH_REC, "--handlers", str(handlers), "-j", "2"]) == 2
    assert "-j" in capsys.readouterr().err
    assert main(["bisect", CRASH_REC, "--versions", "1", "2", "--run", "true", "--executor", "dask"]) == 2
    assert "needs -j" in capsys.readouterr().err
    assert main(["bisect", CRASH_REC, "--versions", "1", "2", "--run", "true", "-j", "2", "--executor", "ray"]) == 2
    assert "use thread" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["1", "4"])
def test_a_missing_program_aborts_whatever_the_jobs(capsys, jobs: str) -> None:
    code = main(["bisect", CRASH_REC, "--versions", "1", "2", "3", "--run", "./no-such-build {version}", "-j", jobs])
    assert code == 2 and "does not exist" in capsys.readouterr().err
