"""ingest of many log files, one task per file (a process pool, a real Dask cluster reading from a real S3
server), merged into the same recordings a serial run of the whole log writes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from recorder.capture import Ingest, ingest_files, read_log
from replay.cli import main
from replay.regression import SerialExecutor
from tests.common.paths import DATA

LOG = DATA / "nakama-3.40-lua-capture-arena.log"


def _split(tmp_path: Path) -> list[Path]:
    """The log dealt into three files like three nodes' logs: lines of one match spread over all of them, one
    gzip-compressed, one with a line that is also in another file (a log shipped twice)."""
    lines = LOG.read_bytes().splitlines(keepends=True)
    a, b, c = lines[0::3], lines[1::3], lines[2::3]
    c.append(lines[1])
    (tmp_path / "a.log").write_bytes(b"".join(a))
    (tmp_path / "b.log.gz").write_bytes(gzip.compress(b"".join(b)))
    (tmp_path / "c.log").write_bytes(b"".join(c))
    return [tmp_path / "a.log", tmp_path / "b.log.gz", tmp_path / "c.log"]


def _recordings(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.nkrec"))}


def test_merged_files_give_the_recordings_of_the_whole_log(tmp_path):
    whole = Ingest()
    whole.feed_file(str(LOG))
    parts = [read_log(str(p)) for p in reversed(_split(tmp_path))]  # any order of files: the same matches
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    assert [m.header for m in merged.matches()] == [m.header for m in whole.matches()]
    assert [m.events for m in merged.matches()] == [m.events for m in whole.matches()]
    assert merged.ours == whole.ours + 1 and merged.stats.lines == whole.stats.lines + 1  # the line shipped twice
    assert not merged.stats.damaged


def test_a_conflicting_record_across_files_is_reported_not_merged(tmp_path):
    files = _split(tmp_path)
    seq3 = next(line for line in LOG.read_text().splitlines() if '\\"s\\":3,' in line)
    forged = seq3.replace('\\"s\\":3,', '\\"s\\":4,')  # record 3's body under number 4
    extra = tmp_path / "d.log"
    extra.write_text(forged + "\n")
    result = ingest_files([*map(str, files), str(extra)], SerialExecutor())  # one Ingest per file, merged
    assert any("two different records with sequence number 4" in d.problem for d in result.stats.damaged)


def test_ingest_on_a_process_pool_writes_what_a_serial_run_writes(tmp_path, capsys):
    files = [str(p) for p in _split(tmp_path)]
    assert main(["ingest", str(LOG), "-o", str(tmp_path / "serial"), "--json"]) == 0
    capsys.readouterr()
    code = main(["ingest", *files, "-o", str(tmp_path / "pool"), "--executor", "process", "-j", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["clean"], report
    assert _recordings(tmp_path / "pool") == _recordings(tmp_path / "serial") != {}


def test_ingest_from_s3_on_a_dask_cluster(bucket, dask_cluster, tmp_path):
    import fsspec

    fs = fsspec.filesystem("s3")
    urls = []
    for p in _split(tmp_path):
        fs.pipe(f"{bucket}/logs/{p.name}", p.read_bytes())
        urls.append(f"{bucket}/logs/{p.name}")
    assert main(["ingest", str(LOG), "-o", str(tmp_path / "serial"), "--json"]) == 0
    address = dask_cluster.ready()
    cmd = [sys.executable, "-m", "replay.cli", "ingest", *urls, "-o", str(tmp_path / "dask")]
    cmd += ["--executor", address, "--json"]
    done = subprocess.run(cmd, capture_output=True, env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert json.loads(done.stdout)["clean"]
    assert _recordings(tmp_path / "dask") == _recordings(tmp_path / "serial") != {}
