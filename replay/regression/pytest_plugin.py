"""pytest plugin: every recording under the regression folders is a test item, named after its file.

Registered under the ``pytest11`` entry point, so installing nakama-replay is enough. Folders come from
``--nkreplay-dir DIR`` (repeatable) and from ``pyproject.toml``::

    [tool.nakama-replay]
    regression_dirs = ["fixtures/regressions"]

Plain ``pytest`` at the root collects those folders beside ``testpaths``; when paths are given on the
command line (or pytest runs from a sub-folder), only ``--nkreplay-dir`` folders are added. What each recording must
show is in ``NAME.expect.toml`` beside it (see ``replay.regression._expectations``); ``--nkreplay-update`` writes those
files from the current behaviour. The ``replay_recording`` fixture replays a recording in a hand-written
test. Replays run in a supervised handler process (``replay.runtime._supervisor``; ``--nkreplay-in-process`` to
turn that off), so a recording whose handler hangs in C, exits or segfaults fails its own item and the run
goes on. The library is imported only when an item runs or the fixture is used.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

__all__ = ["RecordingFile", "RecordingItem", "RegressionFailure", "replay_recording"]

_DIRS = pytest.StashKey[list[Path]]()
_WRITTEN = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nakama-replay", "nakama-replay: recordings as regression tests")
    group.addoption(
        "--nkreplay-dir",
        action="append",
        default=[],
        metavar="DIR",
        dest="nkreplay_dirs",
        help="a folder of .nkrec recordings to run as regression tests (repeatable; adds to "
        "[tool.nakama-replay] regression_dirs in pyproject.toml)",
    )
    group.addoption(
        "--nkreplay-update",
        action="store_true",
        dest="nkreplay_update",
        help="write each recording's NAME.expect.toml from what its replay shows now, instead of checking it",
    )
    group.addoption(
        "--nkreplay-in-process",
        action="store_true",
        dest="nkreplay_in_process",
        help="replay in the pytest process instead of a supervised handler process (a handler that blocks in "
        "C, exits or segfaults then stops the test run)",
    )
    group.addoption(
        "--nkreplay-max-memory",
        default=None,
        metavar="SIZE",
        dest="nkreplay_max_memory",
        help="memory cap of the supervised handler process, e.g. 512M or 8G (default 4G; Linux only)",
    )


def _pyproject_dirs(config: pytest.Config) -> list[Path]:
    inipath = config.inipath
    pyproject = (
        inipath if inipath is not None and inipath.name == "pyproject.toml" else config.rootpath / "pyproject.toml"
    )
    if not pyproject.is_file():
        return []
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"{pyproject}: cannot read [tool.nakama-replay]: {exc}") from exc
    dirs = data.get("tool", {}).get("nakama-replay", {}).get("regression_dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise pytest.UsageError(f"{pyproject}: [tool.nakama-replay] regression_dirs must be a list of folder names")
    return [(pyproject.parent / d).resolve() for d in dirs]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nkreplay: a recording replayed as a regression test (nakama-replay)")
    here = config.invocation_params.dir
    cli = [(here / d).resolve() for d in config.getoption("nkreplay_dirs") or []]
    configured = _pyproject_dirs(config)
    for d in cli + configured:
        if not d.is_dir():
            raise pytest.UsageError(f"nakama-replay regression folder {d} does not exist")
    dirs = list(dict.fromkeys(cli + configured))
    config.stash[_DIRS] = dirs
    config.stash[_WRITTEN] = []
    # plain `pytest` at the root runs the configured folders beside testpaths; --nkreplay-dir folders always run
    extra = dirs if config.args_source == pytest.Config.ArgsSource.TESTPATHS else cli
    roots = [(here / a.split("::")[0]).resolve() for a in config.args]
    for d in extra:
        if not any(d == r or d.is_relative_to(r) for r in roots):
            config.args.append(str(d))
            roots.append(d)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".nkrec":
        return None
    dirs = parent.config.stash.get(_DIRS, [])
    resolved = file_path.resolve()
    if any(resolved.is_relative_to(d) for d in dirs):
        return RecordingFile.from_parent(parent, path=file_path)
    return None


class RegressionFailure(Exception):
    """A recording's replay does not show what its expectation says; the message is the report."""


class RecordingFile(pytest.File):
    def collect(self) -> Any:
        item = RecordingItem.from_parent(self, name=self.path.name.removesuffix(".nkrec"))
        item.add_marker("nkreplay")
        yield item


class RecordingItem(pytest.Item):
    """Replay the recording as its expectation says and check what must hold."""

    def runtest(self) -> None:
        import replay.regression._expectations as regression  # imported when a recording runs, not at start-up

        exp = regression.load_expectation(self.path)
        update = self.config.getoption("nkreplay_update")
        if exp is None and not update:
            pytest.skip(
                f"no expectation for {self.path.name}: add {regression.expectation_path(self.path).name} "
                "beside it, or run pytest --nkreplay-update"
            )
        run = regression.run_expectation(self.path, exp, process=_worker(self.config, exp))
        if update and run.result.status == "incomplete":
            raise RegressionFailure(
                f"{self.path.name}: no expectation written from an incomplete recording: "
                f"{run.result.integrity.describe()}"
            )
        if update:
            written = regression.write_expectation(self.path, run.result, exp)
            self.config.stash[_WRITTEN].append(str(written))
            return
        assert exp is not None
        problems = regression.check(run.result, exp)
        if problems:
            from replay.report._text import format_regression_failure

            raise RegressionFailure(format_regression_failure(run, problems, exp.source))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from recorder.errors import NakamaReplayError

        if isinstance(excinfo.value, RegressionFailure):
            return str(excinfo.value)
        if isinstance(excinfo.value, NakamaReplayError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.path, None, f"recording {self.path.name}"


def _worker(config: pytest.Config, exp: Any) -> Any:
    """The supervised handler process for an expectation's hang timeout (one per session and timeout), or
    None with ``--nkreplay-in-process``."""
    if config.getoption("nkreplay_in_process", False):
        return None
    from replay.runtime._supervisor import DEFAULT_MAX_MEMORY, Limits, parse_size, thread_worker

    size = config.getoption("nkreplay_max_memory", None)
    try:
        cap = DEFAULT_MAX_MEMORY if size is None else parse_size(size)
    except ValueError as exc:
        raise pytest.UsageError(f"--nkreplay-max-memory: {exc}") from None
    hang = exp.hang_timeout if exp is not None else 5.0
    return thread_worker(Limits(hang if hang and hang > 0 else None, cap))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    written = config.stash.get(_WRITTEN, [])
    if written:
        terminalreporter.section("nakama-replay")
        for path in written:
            terminalreporter.write_line(f"wrote {path}")


@pytest.fixture
def replay_recording(pytestconfig: pytest.Config) -> Any:
    """``replay_recording(path, handler=None, **ReplayOptions fields)`` -> ``ReplayResult``.

    The handler defaults to the one the recording's header names; sibling modules it imports are
    imported afresh for this replay. A handler given as a path replays in a supervised handler process
    (a hang, exit, segfault or memory hog is the result's outcome), a loaded handler object in this one.
    A recording that is not complete raises ``IncompleteRecording`` (the test errors with its integrity
    state) unless ``allow_incomplete=True``."""
    config = pytestconfig

    def run(path: str | os.PathLike[str], handler: Any = None, **options: Any) -> Any:
        from recorder.errors import IncompleteRecording

        result = _replay(path, handler, options)
        if result.status == "incomplete":
            raise IncompleteRecording(os.fspath(path), result.integrity)
        return result

    def _replay(path: str | os.PathLike[str], handler: Any, options: dict[str, Any]) -> Any:
        from replay.runtime._isolation import reproduce_isolated
        from replay.runtime._runtime import ReplayOptions

        opts = ReplayOptions(**options)
        worker = None if handler is not None and not isinstance(handler, (str, os.PathLike)) else _worker(config, None)
        if worker is None:
            return reproduce_isolated(path, handler, opts)
        from replay.runtime._supervisor import Limits, reproduce_supervised

        if worker.limits.hang_timeout != (opts.hang_timeout or None):
            from replay.runtime._supervisor import thread_worker

            worker = thread_worker(Limits(opts.hang_timeout or None, worker.limits.max_memory))
        return reproduce_supervised(path, handler, opts, process=worker)

    return run
