"""A recording's own ``expect`` tag is untrusted input: its error text is matched literally."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from recorder.format import open_recording, write_recording
from replay.regression._expectations import load_expectation
from tests.common.paths import ROOT

CRASH_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"


def _tagged(tmp_path: Path, tags: dict) -> Path:
    with open_recording(CRASH_REC) as rec:
        header, events = rec.header, list(rec.events())
    out = tmp_path / "tagged.nkrec"
    write_recording(out, dataclasses.replace(header, tags=tags), events)
    return out


def test_a_header_tag_error_is_a_literal_substring_not_a_pattern(tmp_path: Path) -> None:
    evil = "(a+)+$"  # catastrophic backtracking as a regular expression against a long run of a's
    exp = load_expectation(_tagged(tmp_path, {"expect": {"crash": {"error": evil}}}))
    assert exp is not None and exp.crash is not None
    assert exp.crash.error == re.escape(evil)  # checked first: as a pattern the search below would never end
    start = time.monotonic()
    assert re.search(exp.crash.error, "a" * 40 + "!") is None  # as a pattern this takes hours
    assert time.monotonic() - start < 5.0
    assert re.search(exp.crash.error, "boom (a+)+$ here")  # the text itself, metacharacters and all


def test_a_header_tag_literal_with_metacharacters_still_finds_the_crash(tmp_path: Path) -> None:
    exp = load_expectation(_tagged(tmp_path, {"expect": {"crash": {"error": "KeyError: '"}}}))
    assert exp is not None and exp.crash is not None and exp.crash.error is not None
    assert re.search(exp.crash.error, "KeyError: 'be143068'") and not re.search(exp.crash.error, "KeyError: be")


def test_an_expectation_file_the_user_wrote_keeps_its_pattern(tmp_path: Path) -> None:
    rec = _tagged(tmp_path, {})
    rec.with_name("tagged.expect.toml").write_text('[crash]\nerror = "KeyError: .b[0-9]+"\n')
    exp = load_expectation(rec)
    assert exp is not None and exp.crash is not None and exp.crash.error == "KeyError: .b[0-9]+"
