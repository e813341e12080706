"""Recordings at URLs (recorder.storage): read block by block from a real S3-compatible server (moto's server
mode on 127.0.0.1) and from fsspec's memory store, written by commit on close, through the library and the
commands that read recordings (inspect, reproduce, run-all)."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout

import fsspec
import pytest

from recorder.errors import RecordingError
from recorder.format import RecordingWriter, open_recording, read_events, verify
from recorder.storage import (
    BLOCK_SIZE,
    StorageError,
    find_files,
    is_url,
    kind_of,
    local_path,
    open_input,
    read_small,
)
from replay.cli import main
from replay.regression import CATEGORIES, find_recordings, load_expectation, reproduce_one, run_all
from tests.common.clusters import SERVER_LOGS
from tests.common.paths import HANDLERS, RECORDINGS

CRASH = RECORDINGS / "arena-reconnect-crash.nkrec"
CLEAN = RECORDINGS / "arena-clean.nkrec"


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _upload(bucket: str, name: str, data: bytes) -> str:
    fs = fsspec.filesystem("s3")
    fs.pipe(f"{bucket}/{name}", data)
    return f"{bucket}/{name}"


def test_locations_are_told_apart():
    assert is_url("s3://b/k.nkrec") and is_url("file:///tmp/x") and is_url("memory://x")
    assert not is_url("fixtures/x.nkrec") and not is_url("/abs/x.nkrec") and not is_url("c:x")
    assert local_path("file:///tmp/a.nkrec") == "/tmp/a.nkrec"
    assert local_path("rel/a.nkrec") == "rel/a.nkrec"
    assert local_path("s3://b/a.nkrec") is None


def test_a_url_with_credentials_is_refused_without_echoing_them(capsys):
    with pytest.raises(StorageError, match="credentials") as caught:
        open_recording("s3://AKIDSECRET:hunter2@bucket/x.nkrec")
    assert "hunter2" not in str(caught.value) and "AKIDSECRET" not in str(caught.value)
    code, out, err = _cli("inspect", "s3://AKIDSECRET:hunter2@bucket/x.nkrec")
    assert code == 2
    assert "credentials" in err and "hunter2" not in out + err and "AKIDSECRET" not in out + err


def test_memory_url_writer_commits_on_close_and_abandon_commits_unsealed():
    header, events = read_events(CLEAN)
    fs = fsspec.filesystem("memory")
    url = "memory://nkreplay-test-writer/out.nkrec"
    try:
        w = RecordingWriter(url, header, chunk_events=8)
        w.extend(events[:20])
        w.flush()
        assert kind_of(url) is None, "the final key must not exist before the writer closed"
        assert fs.exists("/nkreplay-test-writer/out.nkrec.incomplete.tmp")
        w.extend(events[20:])
        w.close()
        assert not fs.exists("/nkreplay-test-writer/out.nkrec.incomplete.tmp")
        assert verify(url).state == "complete"
        assert read_events(url)[1] == events

        broken = "memory://nkreplay-test-writer/broken.nkrec"
        with pytest.raises(RuntimeError), RecordingWriter(broken, header, chunk_events=8) as w2:
            w2.extend(events[:30])
            raise RuntimeError("the producer failed")
        integrity = verify(broken)
        assert integrity.state == "unsealed" and integrity.events == 30
        assert find_files("memory://nkreplay-test-writer/", ".nkrec") == [
            "memory:///nkreplay-test-writer/broken.nkrec",
            "memory:///nkreplay-test-writer/out.nkrec",
        ]
    finally:
        fs.rm("/nkreplay-test-writer", recursive=True)


def test_s3_recording_reads_as_the_local_file_does(bucket):
    url = _upload(bucket, "prefix/crash.nkrec", CRASH.read_bytes())
    assert kind_of(url) == "file" and kind_of(f"{bucket}/prefix") == "dir" and kind_of(f"{bucket}/none") is None
    local_header, local_events = read_events(CRASH)
    header, events = read_events(url)
    assert header == local_header and events == local_events
    assert verify(url) == verify(CRASH)
    with pytest.raises(RecordingError, match="no such recording file"):
        open_recording(f"{bucket}/prefix/none.nkrec")
    with pytest.raises(RecordingError, match="is a folder"):
        open_recording(f"{bucket}/prefix")


def _requests(s3_env: str, url: str, action) -> list[str]:
    """The HTTP methods the S3 server saw for ``url``'s key while ``action()`` ran."""
    log = SERVER_LOGS[s3_env]
    before = len(log.read_text().splitlines())
    action()
    key = url[len("s3://") :] if url.startswith("s3://") else url
    seen = [line for line in log.read_text().splitlines()[before:] if f"/{key} " in line or f"/{key}?" in line]
    return [line.split('"')[1].split()[0].lstrip("\x1b[0123456789;m") for line in seen]


def test_s3_reading_streams_block_by_block(bucket, s3_env):
    """A header read fetches about one block of a recording many blocks long; a full walk fetches it all."""
    header, events = read_events(CLEAN)
    fs = fsspec.filesystem("s3")
    url = f"{bucket}/big.nkrec"
    with RecordingWriter(url, header, chunk_events=4) as w:
        for _ in range(300):
            w.extend(events)
    size = fs.size(url)
    assert size > 6 * BLOCK_SIZE
    with open_recording(url) as rec:
        assert rec.header == header
        fetched = rec._file.raw.requested_bytes
        assert fetched <= 2 * BLOCK_SIZE, f"{fetched} bytes fetched to read a header"
        assert rec.integrity().state == "complete"
        assert rec._file.raw.requested_bytes >= size - BLOCK_SIZE
    seen = _requests(s3_env, url, lambda: read_events(url))
    blocks = -(-size // BLOCK_SIZE)
    assert seen == ["GET", "HEAD"] + ["GET"] * (blocks - 1), seen


def test_s3_reading_a_small_recording_costs_one_get(bucket, s3_env):
    """What the server saw while a recording was opened, walked to its end and replayed: one ranged read,
    which tells the size of an object smaller than a block; and one for its absent expectation."""
    url = _upload(bucket, "small.nkrec", CLEAN.read_bytes())
    result: dict = {}
    seen = _requests(
        s3_env, url, lambda: result.update(reproduce_one(url, str(HANDLERS / "arena.py"), {"seed": 0}, None))
    )
    assert result["category"] == "clean"
    assert seen == ["GET"], seen
    expect = url.removesuffix(".nkrec") + ".expect.toml"
    assert _requests(s3_env, expect, lambda: load_expectation(url)) == ["GET"]
    assert load_expectation(url) is None


def test_s3_small_reads_agree_with_the_bytes_at_every_size(bucket):
    """Objects just below, at and above one block read back whole, and a seek past the first block works."""
    fs = fsspec.filesystem("s3")
    for size in (0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE + 7):
        data = bytes((i * 7 + size) % 251 for i in range(size))
        fs.pipe(f"{bucket}/sizes/{size}.bin", data)
        f, reported = open_input(f"{bucket}/sizes/{size}.bin")
        with f:
            assert reported == size
            assert f.read() == data
            f.seek(max(size - 3, 0))
            assert f.read(10) == data[max(size - 3, 0) :]
            f.seek(0)
            assert f.read(5) == data[:5]
        assert read_small(f"{bucket}/sizes/{size}.bin") == data
    big = f"{bucket}/sizes/{2 * BLOCK_SIZE + 7}.bin"
    with pytest.raises(StorageError, match=f"{2 * BLOCK_SIZE + 7} bytes, more than the {BLOCK_SIZE}"):
        read_small(big, limit=BLOCK_SIZE)
    assert read_small(f"{bucket}/sizes/none.bin") is None
    with pytest.raises(IsADirectoryError):
        open_input(f"{bucket}/sizes")
    with pytest.raises(FileNotFoundError):
        open_input(f"{bucket}/sizes/none.bin")


def test_s3_writer_commits_on_close_only(bucket):
    header, events = read_events(CLEAN)
    fs = fsspec.filesystem("s3")
    url = f"{bucket}/w/out.nkrec"
    w = RecordingWriter(url, header, chunk_events=8)
    w.extend(events)
    w.flush()
    assert not fs.exists(url)
    w.close()
    fs.invalidate_cache()
    assert fs.exists(url) and not fs.exists(url + ".incomplete.tmp")
    assert verify(url).state == "complete"


def test_s3_damage_is_reported_like_a_local_file(bucket, tmp_path):
    data = CRASH.read_bytes()
    url = _upload(bucket, "cut.nkrec", data[: len(data) - 40])
    local = tmp_path / "cut.nkrec"
    local.write_bytes(data[: len(data) - 40])
    remote_state, local_state = verify(url), verify(local)
    assert remote_state.state == local_state.state == "unsealed"
    assert remote_state.describe().replace(url, "X") == local_state.describe().replace(str(local), "X")
    code, out, _ = _cli("inspect", url, "--json")
    assert code == 3 and json.loads(out)["integrity"]["state"] == "unsealed"
    junk = _upload(bucket, "junk.nkrec", b'{"kind": "header"}\n')
    code, _, err = _cli("inspect", junk)
    assert code == 2 and "JSON Lines" in err and junk in err


def test_inspect_and_reproduce_take_s3_urls(bucket):
    url = _upload(bucket, "crash.nkrec", CRASH.read_bytes())
    code, out, _ = _cli("inspect", url, "--json")
    assert code == 0
    local_code, local_out, _ = _cli("inspect", str(CRASH), "--json")
    assert local_code == 0
    remote, local = json.loads(out), json.loads(local_out)
    assert remote.pop("path") == url and local.pop("path") == str(CRASH)
    assert remote == local
    code, out, _ = _cli("reproduce", url, "--handler", str(HANDLERS / "arena.py"), "--json")
    assert code == 0 and json.loads(out)["status"] == "reproduced"
    code, out, _ = _cli("reproduce", url, "--handler", str(HANDLERS / "arena_fixed.py"), "--json")
    assert code == 1 and json.loads(out)["status"] == "not-reproduced"


def test_commands_refuse_what_is_not_there_or_not_trusted(bucket):
    url = _upload(bucket, "crash.nkrec", CRASH.read_bytes())
    code, _, err = _cli("reproduce", f"{bucket}/missing.nkrec", "--handler", str(HANDLERS / "arena.py"))
    assert code == 2 and "missing.nkrec: no such recording" in err
    code, _, err = _cli("inspect", bucket)
    assert code == 2 and "is a folder (a prefix)" in err
    code, _, err = _cli("reproduce", url)  # the header names ../handlers/arena.py: never loaded from a URL
    assert code == 2 and "never loaded from" in err and len(err.strip().splitlines()) == 1


def test_run_all_over_an_s3_prefix_matches_the_local_folder(bucket, tmp_path):
    local = tmp_path / "corpus"
    (local / "sub").mkdir(parents=True)
    for name, src in (("crash-a.nkrec", CRASH), ("clean-a.nkrec", CLEAN), ("sub/crash-b.nkrec", CRASH)):
        shutil.copy(src, local / name)
        _upload(bucket, f"corpus/{name}", src.read_bytes())
    _upload(bucket, "corpus/notes.txt", b"ignored")
    urls = find_recordings([f"{bucket}/corpus/"])
    assert urls == [f"{bucket}/corpus/{n}" for n in ("clean-a.nkrec", "crash-a.nkrec", "sub/crash-b.nkrec")]
    handler = str(HANDLERS / "arena.py")
    remote = run_all(urls, handler, jobs=2)
    here = run_all(find_recordings([local]), handler, jobs=2)
    assert remote.counts == here.counts == dict.fromkeys(CATEGORIES, 0) | {"reproduced": 2, "clean": 1}
    strip = [{k: v for k, v in r.items() if k != "path"} for r in remote.results]
    assert strip == [{k: v for k, v in r.items() if k != "path"} for r in here.results]
    code, out, _ = _cli("run-all", f"{bucket}/corpus/", "--handler", handler, "-j", "2", "--json", "--no-progress")
    assert code == 0 and json.loads(out)["counts"]["reproduced"] == 2


def test_open_input_on_a_plain_path_is_the_os_file(tmp_path):
    f, size = open_input(CLEAN)
    with f:
        assert size == CLEAN.stat().st_size and hasattr(f, "fileno")
