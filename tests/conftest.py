"""Determinism guards for the whole suite (as Hypothesis's own ``tests/conftest.py`` guards its suite).

A test that leaves the global ``random`` state (or numpy's), the process's environment variables or its
current folder different from how it found them fails at teardown: the next test would otherwise run in a
world this one changed, and pass or fail depending on the order. Use a ``random.Random(seed)`` of your own,
``monkeypatch.setenv``/``monkeypatch.chdir`` (undone before this check) or ``tmp_path``.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as in a terminal: a shell without job control starts a background job (``cmd &``) with SIGINT
    ignored, and the programs the tests start inherit that, so the Ctrl-C tests' SIGINT would never arrive."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest's own, set per phase


def _numpy_state() -> Any:
    numpy = sys.modules.get("numpy")  # only when something imported it: the check stays free otherwise
    if numpy is None:
        return None
    _, keys, pos, has_gauss, cached = numpy.random.get_state()
    return keys.tobytes(), pos, has_gauss, cached


@pytest.fixture(autouse=True)
def _leaves_the_process_as_it_found_it() -> Iterator[None]:
    rng, np_rng, environ, cwd = random.getstate(), _numpy_state(), _environment(), os.getcwd()
    yield
    problems = []
    if random.getstate() != rng:
        problems.append("changed the global random state (use random.Random(seed))")
        random.setstate(rng)  # put back what was changed, so that one leak fails one test
    if np_rng is not None and _numpy_state() != np_rng:
        problems.append("changed numpy's global random state (use numpy.random.default_rng(seed))")
    if _environment() != environ:
        changed = set(_environment().items()) ^ set(environ.items())
        problems.append(f"changed environment variables {sorted({k for k, _ in changed})} (use monkeypatch.setenv)")
        for key in {k for k, _ in changed}:
            if key in environ:
                os.environ[key] = environ[key]
            else:
                del os.environ[key]
    if os.getcwd() != cwd:
        problems.append(f"left the current folder at {os.getcwd()} (use monkeypatch.chdir)")
        os.chdir(cwd)
    if problems:
        pytest.fail("this test " + "; ".join(problems), pytrace=False)


# the S3 server and the Dask cluster: started once per session, only when a test asks for them
from tests.common.clusters import bucket, dask_cluster, s3_env, s3_server  # noqa: E402, F401
