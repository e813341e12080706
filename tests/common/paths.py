"""Where the tests find the repository's files: fixtures, sample data and the tests' own handlers."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (tests/common/paths.py)
FIXTURES = ROOT / "fixtures"
HANDLERS = FIXTURES / "handlers"  # the example handlers (arena.py, arena.lua, ...)
RECORDINGS = FIXTURES / "recordings"
DATA = ROOT / "tests" / "data"  # samples recorded from a real Nakama, small fixtures
TEST_HANDLERS = ROOT / "tests" / "common" / "handlers"  # handlers written for particular tests
