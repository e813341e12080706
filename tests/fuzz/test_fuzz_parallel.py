"""fuzz --seeds: independent searches on a process pool, merged by failure key, equal to the serial search of the
first seed, the other seeds' copies of the same failures removed."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from pathlib import Path

import pytest

from replay.fuzz import FuzzOptions, fuzz, fuzz_seeds, load_profile
from tests.common.paths import TEST_HANDLERS

TWO_BUGS = str(TEST_HANDLERS / "fuzz_goodbye.py")
# the profile of tests/fuzz/test_fuzz.py's two-bug runs, as a file: a loaded profile holds hypothesis strategies,
# which do not travel to another process, so each task loads it from its source
PROFILE_SOURCE = """
from replay.fuzz import FuzzProfile

PROFILE = FuzzProfile(payloads={1: None}, signals=("", "reset"), source="two-bugs")
"""


def test_seeds_in_parallel_merge_into_the_first_seeds_findings(tmp_path: Path) -> None:
    payloads = tmp_path / "two_bugs_profile.py"
    payloads.write_text(PROFILE_SOURCE)
    with pytest.raises(ValueError, match="cannot travel"):
        fuzz_seeds(TWO_BUGS, FuzzOptions(profile=load_profile(payloads)), [1, 2], None)
    options = FuzzOptions(max_examples=120, out=tmp_path / "merged", database=False)
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        ended: list[int] = []  # progress: one call per search as it ends
        merged = fuzz_seeds(TWO_BUGS, options, [7, 8], pool, payloads=str(payloads), on_done=lambda: ended.append(1))
    assert len(ended) == 2
    alone = FuzzOptions(
        max_examples=120, seed=7, out=tmp_path / "serial" / "seed-7", profile=load_profile(payloads), database=False
    )
    serial = fuzz(TWO_BUGS, alone)
    assert [(f.key, f.examples) for f in merged.findings] == [(f.key, f.examples) for f in serial.findings]
    assert len(merged.findings) == 2 and merged.seeds == [7, 8] and merged.budget == 240
    assert merged.duplicates >= 1  # seed 8 found at least one of the same two failures: merged away
    for kept, same in zip(merged.findings, serial.findings):
        assert kept.recording.parent == tmp_path / "merged" / "seed-7"
        assert kept.recording.read_bytes() == same.recording.read_bytes()
    written = sorted(p.name for p in (tmp_path / "merged").rglob("*.nkrec"))
    assert written == sorted(f.recording.name for f in merged.findings)  # the duplicates' files are gone
    report = merged.to_json()
    assert report["seeds"] == [7, 8] and report["duplicates"] == merged.duplicates
