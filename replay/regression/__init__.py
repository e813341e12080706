"""Recordings as regression tests, in bulk and across versions.

- expectations (``_expectations``): what a replay of a recording must show (``NAME.expect.toml``), checked by
  ``check`` and by the pytest plugin (``replay.regression.pytest_plugin``, registered under ``pytest11``);
- ``run_all`` (``_batch``): many recordings replayed on local processes or any executor, summed up;
- ``bisect`` (``_bisect``): the first handler or client version that brings a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.regression._batch import (
        CATEGORIES,
        BatchSummary,
        Executor,
        SerialExecutor,
        find_recordings,
        load_executor,
        reproduce_one,
        run_all,
    )
    from replay.regression._bisect import (
        BisectResult,
        CommandTest,
        GitSource,
        ReplayTest,
        Version,
        bisect,
        folder_versions,
        git_versions,
        named_versions,
    )
    from replay.regression._expectations import (
        Expectation,
        RegressionRun,
        check,
        load_expectation,
        run_expectation,
        write_expectation,
    )

__all__ = [
    "CATEGORIES",
    "BatchSummary",
    "BisectResult",
    "CommandTest",
    "Executor",
    "Expectation",
    "GitSource",
    "RegressionRun",
    "ReplayTest",
    "SerialExecutor",
    "Version",
    "bisect",
    "check",
    "find_recordings",
    "folder_versions",
    "git_versions",
    "load_executor",
    "load_expectation",
    "named_versions",
    "reproduce_one",
    "run_all",
    "run_expectation",
    "write_expectation",
]

__getattr__, __dir__ = lazy_exports(__name__)
