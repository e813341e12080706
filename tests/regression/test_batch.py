"""run-all: many recordings replayed on a local process pool (or any executor) and summed up."""

from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from recorder.errors import NakamaReplayError
from replay.cli import main
from replay.regression import CATEGORIES, SerialExecutor, find_recordings, load_executor, run_all
from tests.common.paths import ROOT

RECS = ROOT / "fixtures" / "recordings"
HANDLERS = ROOT / "fixtures" / "handlers"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two crash recordings, two clean ones (one in a sub-folder), one that is not a recording."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "more").mkdir()
    shutil.copy(RECS / "arena-reconnect-crash.nkrec", root / "crash-a.nkrec")
    shutil.copy(RECS / "arena-reconnect-crash.nkrec", root / "more" / "crash-b.nkrec")
    shutil.copy(RECS / "arena-clean.nkrec", root / "clean-a.nkrec")
    shutil.copy(RECS / "arena-clean.nkrec", root / "more" / "clean-b.nkrec")
    (root / "junk.nkrec").write_bytes(b"not a recording at all")
    (root / "notes.txt").write_text("ignored")
    return root


def _by_name(summary) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in summary.results}


def test_process_pool_sums_up_categories_and_signatures(corpus):
    recs = find_recordings([corpus])
    assert [Path(p).name for p in recs] == [
        "clean-a.nkrec",
        "crash-a.nkrec",
        "junk.nkrec",
        "clean-b.nkrec",
        "crash-b.nkrec",
    ]
    seen: list[str] = []
    summary = run_all(recs, str(HANDLERS / "arena.py"), jobs=2, progress=seen.append)
    assert summary.counts == dict.fromkeys(CATEGORIES, 0) | {"reproduced": 2, "clean": 2, "error": 1}
    assert sorted(seen) == sorted(r["category"] for r in summary.results)
    rows = _by_name(summary)
    assert rows["crash-a.nkrec"]["crash"] == {
        "callback": "match_loop",
        "tick": 58,
        "error": "KeyError: 'be143068-e8b3-5322-b98d-44347b7899e5'",
    }
    assert rows["junk.nkrec"]["detail"].startswith("CorruptRecording: ")
    [group] = summary.signatures
    assert group["key"] == "match_loop|KeyError|arena.py:match_loop" and group["count"] == 2
    assert [r["path"] for r in summary.results] == sorted(r["path"] for r in summary.results)


def test_fixed_and_broken_handlers(corpus, tmp_path):
    recs = find_recordings([corpus / "crash-a.nkrec", corpus / "clean-a.nkrec"])
    fixed = run_all(recs, str(HANDLERS / "arena_fixed.py"), jobs=2)
    rows = _by_name(fixed)
    assert rows["crash-a.nkrec"]["category"] == "diverged"  # the recorded crash no longer happens
    assert rows["crash-a.nkrec"]["first_divergence"] == {"tick": 58, "callback": "match_join", "field": "digest"}
    assert rows["clean-a.nkrec"]["category"] == "clean"
    early = tmp_path / "early.py"
    early.write_text(
        (HANDLERS / "arena.py")
        .read_text()
        .replace(
            "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n",
            "def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):\n    if tick == 7:\n        raise ValueError('tick 7')\n",
        )
    )
    broken = run_all(recs, str(early), jobs=1)  # -j 1 runs in this process
    assert broken.counts["crashed"] == 2
    assert {g["key"] for g in broken.signatures} == {"match_loop|ValueError|early.py:match_loop"}


class _Handle:
    """A future that is not a concurrent.futures.Future (as some cluster engines return)."""

    def __init__(self, inner: cf.Future) -> None:
        self._inner = inner

    def result(self):
        return self._inner.result()


class AdapterExecutor:
    """The documented protocol and nothing more: submit(fn, *args) -> something with result()."""

    def __init__(self, jobs: int) -> None:
        self.pool = cf.ThreadPoolExecutor(max_workers=jobs)
        self.submitted = 0

    def submit(self, fn, *args):
        self.submitted += 1
        return _Handle(self.pool.submit(fn, *args))

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait)


def test_any_executor_with_submit(corpus):
    recs = find_recordings([corpus / "more"])
    executor = AdapterExecutor(2)
    try:
        summary = run_all(recs, str(HANDLERS / "arena.py"), executor=executor)
    finally:
        executor.shutdown()
    assert executor.submitted == 2
    assert summary.counts["reproduced"] == 1 and summary.counts["clean"] == 1
    serial = run_all(recs, str(HANDLERS / "arena.py"), executor=SerialExecutor())
    assert serial.results == summary.results


def test_cli_json_fail_on_and_custom_executor(corpus, tmp_path, monkeypatch, capsys):
    code = main(["run-all", str(corpus), "--handler", str(HANDLERS / "arena.py"), "-j", "2", "--json", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # default --fail-on error: junk.nkrec
    assert out["total"] == 5 and out["counts"]["reproduced"] == 2 and out["counts"]["error"] == 1
    assert set(out["counts"]) == set(CATEGORIES)

    code = main(
        [
            "run-all",
            str(corpus / "more"),
            "--handler",
            str(HANDLERS / "arena.py"),
            "--fail-on",
            "reproduced",
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert code == 1
    assert "reproduced         1" in text and "match_loop|KeyError|arena.py:match_loop" in text

    (tmp_path / "my_cluster.py").write_text(
        textwrap.dedent(
            """
        import concurrent.futures as cf

        class Handle:
            def __init__(self, inner):
                self.inner = inner

            def result(self):
                return self.inner.result()

        class Threads:  # submit() and shutdown(), futures with result(): all run-all needs
            def __init__(self, jobs):
                self.pool = cf.ThreadPoolExecutor(max_workers=jobs)

            def submit(self, fn, *args):
                return Handle(self.pool.submit(fn, *args))

            def shutdown(self, wait=True):
                self.pool.shutdown(wait=wait)

        def make(jobs):
            return Threads(jobs)
        """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(
        [
            "run-all",
            str(corpus / "more"),
            "--handler",
            str(HANDLERS / "arena_fixed.py"),
            "--executor",
            "my_cluster:make",
            "--json",
            "--no-progress",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["counts"]["clean"] == 1 and out["counts"]["diverged"] == 1


def test_bad_input(tmp_path, capsys):
    assert main(["run-all", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["run-all", str(tmp_path)]) == 2
    assert "no .nkrec recordings" in capsys.readouterr().err
    assert main(["run-all", str(tmp_path), "--fail-on", "bogus"]) == 2
    assert "unknown categories bogus" in capsys.readouterr().err
    with pytest.raises(NakamaReplayError, match=r"package\.module:factory"):
        load_executor("cluster", 2)
    with pytest.raises(NakamaReplayError, match="cannot load it"):
        load_executor("no_such_module_here:make", 2)


def test_run_all_progress_counts_recordings_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NAKAMA_REPLAY_PROGRESS_INTERVAL", "0")  # a plain line per recording
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(RECS / "arena-reconnect-crash.nkrec", corpus / f"{name}.nkrec")
    code = main(["run-all", str(corpus), "--handler", str(HANDLERS / "arena.py"), "-j", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["counts"]["reproduced"] == 3
    lines = [line for line in err.splitlines() if line.startswith("run-all: ")]
    assert lines[0].startswith("run-all: 1/3 recordings [") and "reproduced 1  crashed 0  clean 0" in lines[0]
    assert lines[-1].startswith("run-all: 3/3 recordings [") and "reproduced 3" in lines[-1] and "\r" not in err
    main(["run-all", str(corpus), "--handler", str(HANDLERS / "arena.py"), "-j", "1", "--json", "--no-progress"])
    assert "run-all: " not in capsys.readouterr().err
