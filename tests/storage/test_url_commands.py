"""Every command that reads or writes recordings, JSON Lines, logs or pages takes URLs (issue 20): each one here
runs in this process against the real S3-compatible server (moto's server mode, tests/common/clusters.py), and
its result is compared with the same command on local files."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import fsspec
import pytest

from recorder.format import read_events, verify
from replay.cli import main
from replay.regression import load_expectation
from replay.regression._expectations import ExpectationError
from tests.common.paths import DATA, HANDLERS, RECORDINGS

CRASH = RECORDINGS / "arena-reconnect-crash.nkrec"
WIRE = DATA / "nakama-3.40-proxy-arena-crash.nkrec"
WIRE_LOG = DATA / "nakama-3.40-proxy-arena-crash.log"
CAPTURE_LOG = DATA / "nakama-3.40-lua-capture-arena.log"
ARENA = str(HANDLERS / "arena.py")
RATE = ("--tick-rate", "10")  # the rate arena.lua ran at in the real Nakama that made WIRE


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _keys(bucket: str) -> list[str]:
    return sorted(k.split("/", 1)[1] for k in fsspec.filesystem("s3").find(bucket.removeprefix("s3://")))


def _upload(bucket: str, name: str, source: Path) -> str:
    fsspec.filesystem("s3").pipe(f"{bucket}/{name}", source.read_bytes())
    return f"{bucket}/{name}"


def test_export_and_import_round_trip_through_s3(bucket, tmp_path):
    rec = _upload(bucket, "in/crash.nkrec", CRASH)
    code, _, err = _cli("export", rec, "-o", f"{bucket}/out/crash.jsonl")
    assert code == 0, err
    local_jsonl = tmp_path / "crash.jsonl"
    assert _cli("export", str(CRASH), "-o", str(local_jsonl))[0] == 0
    remote = fsspec.filesystem("s3").cat(f"{bucket}/out/crash.jsonl")
    assert remote == local_jsonl.read_bytes(), "the JSON Lines written to S3 differ from the local export"

    code, _, err = _cli("import", f"{bucket}/out/crash.jsonl", "--json")
    assert code == 0, err
    assert verify(f"{bucket}/out/crash.nkrec").state == "complete"  # the default output: beside its input
    assert read_events(f"{bucket}/out/crash.nkrec")[1] == read_events(CRASH)[1]
    assert not [k for k in _keys(bucket) if k.endswith(".tmp")], _keys(bucket)

    code, out, err = _cli("reproduce", f"{bucket}/out/crash.nkrec", "--handler", ARENA, "--json")
    assert code == 0, err
    assert json.loads(out)["reproduced"] is True


def test_a_failed_import_to_s3_leaves_no_key_and_keeps_what_was_there(bucket, tmp_path):
    assert _cli("export", str(CRASH), "-o", str(tmp_path / "good.jsonl"))[0] == 0
    lines = (tmp_path / "good.jsonl").read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"".join(lines[:40]) + b'{"kind": "loop", "tick": "soon"}\n' + b"".join(lines[40:]))
    src = _upload(bucket, "broken.jsonl", broken)
    target = f"{bucket}/kept.nkrec"
    _upload(bucket, "kept.nkrec", CRASH)
    code, _, err = _cli("import", src, "-o", target)
    assert code == 2 and "broken.jsonl:41:" in err, err
    assert fsspec.filesystem("s3").cat(target) == CRASH.read_bytes(), "a failed import replaced the object"
    assert _keys(bucket) == ["broken.jsonl", "kept.nkrec"], "a failed import left temporary keys behind"


def test_outputs_to_s3_are_refused_when_they_cannot_be_right(bucket):
    rec = _upload(bucket, "p/crash.nkrec", CRASH)
    code, _, err = _cli("export", rec, "-o", rec)
    assert code == 2 and "also the input" in err
    code, _, err = _cli("export", rec, "-o", f"{bucket}/p/")
    assert code == 2 and "prefix" in err
    code, _, err = _cli("export", rec, "-o", f"{bucket}/p")
    assert code == 2 and "folder" in err
    code, _, err = _cli("import", rec, "-o", "s3://KEYID:secret@b/x.nkrec")
    assert code == 2 and "credentials" in err and "secret" not in err


def test_diff_and_lua_check_read_s3_recordings(bucket):
    rec = _upload(bucket, "crash.nkrec", CRASH)
    remote = _cli("diff", rec, "--handler", ARENA, "--recorded", "--json")
    local = _cli("diff", str(CRASH), "--handler", ARENA, "--recorded", "--json")
    assert remote[0] == local[0] == 0, remote[2]
    assert json.loads(remote[1])["calls_compared"] == json.loads(local[1])["calls_compared"] > 0
    lua = _upload(bucket, "lua.nkrec", RECORDINGS / "arena-lua-reconnect-crash.nkrec")
    code, out, err = _cli("lua-check", lua, "--handler", str(HANDLERS / "arena.lua"), "--json")
    local = _cli(
        "lua-check",
        str(RECORDINGS / "arena-lua-reconnect-crash.nkrec"),
        "--handler",
        str(HANDLERS / "arena.lua"),
        "--json",
    )
    assert code == local[0] == 0, err
    assert json.loads(out)["calls_compared"] == json.loads(local[1])["calls_compared"] > 0


def test_convert_reads_wire_recording_and_log_from_s3_and_writes_there(bucket, tmp_path):
    wire = _upload(bucket, "wire/arena.nkrec", WIRE)
    log = _upload(bucket, "wire/nakama.log", WIRE_LOG)
    code, out, err = _cli("convert", wire, "--server-log", log, "-o", f"{bucket}/calls/arena.nkrec", *RATE, "--json")
    assert code == 0, err
    local = tmp_path / "arena.nkrec"
    assert _cli("convert", str(WIRE), "--server-log", str(WIRE_LOG), "-o", str(local), *RATE, "--json")[0] == 0
    remote_crash = json.loads(out)["crash"]
    assert remote_crash is not None and remote_crash["error"], "the crash line was not read from the S3 log"
    assert read_events(f"{bucket}/calls/arena.nkrec")[1] == read_events(local)[1]


def test_slice_and_view_write_to_s3(bucket):
    rec = _upload(bucket, "crash.nkrec", CRASH)
    code, _, err = _cli("slice", rec, "--from-tick", "0", "--to-tick", "30", "-o", f"{bucket}/slice.nkrec")
    assert code == 0, err
    assert verify(f"{bucket}/slice.nkrec").state == "complete"
    code, _, err = _cli("view", rec, "-o", f"{bucket}/crash.html")
    assert code == 0, err
    page = fsspec.filesystem("s3").cat(f"{bucket}/crash.html")
    assert page.startswith(b"<!DOCTYPE html>") or page.lower().startswith(b"<!doctype html>")


def test_ingest_writes_recordings_under_an_s3_prefix(bucket, tmp_path):
    log = _upload(bucket, "logs/nakama.log", CAPTURE_LOG)
    code, out, err = _cli("ingest", log, "-o", f"{bucket}/recordings/", "--json")
    assert code in (0, 1), err
    written = [r["path"] for r in json.loads(out)["recordings"]]
    assert written and all(p.startswith(f"{bucket}/recordings/") for p in written)
    local = tmp_path / "local"
    assert _cli("ingest", str(CAPTURE_LOG), "-o", str(local), "--json")[0] == code
    for url in written:
        assert read_events(url)[1] == read_events(local / url.rsplit("/", 1)[1])[1]
    code, _, err = _cli("ingest", log, "-o", log)
    assert code == 2 and "not a prefix" in err


def test_an_expectation_beside_an_s3_recording_is_read(bucket):
    rec = _upload(bucket, "reg/crash.nkrec", CRASH)
    assert load_expectation(rec) is None or load_expectation(rec).source.endswith("(header tag 'expect')")
    fsspec.filesystem("s3").pipe(f"{bucket}/reg/crash.expect.toml", b"no_crash = true\nmax_ticks = 40\n")
    exp = load_expectation(rec)
    assert exp is not None and exp.no_crash and exp.max_ticks == 40 and exp.source == f"{bucket}/reg/crash.expect.toml"
    fsspec.filesystem("s3").pipe(f"{bucket}/reg/crash.expect.toml", b'handler = "../handlers/x.py"\nno_crash = true\n')
    with pytest.raises(ExpectationError, match="absolute path"):
        load_expectation(rec)
    # a pattern beside a recording at a URL is as untrusted as the recording: searched as a literal substring
    fsspec.filesystem("s3").pipe(f"{bucket}/reg/crash.expect.toml", b'[crash]\nerror = "(a+)+$"\n')
    exp = load_expectation(rec)
    assert exp is not None and exp.crash is not None and exp.crash.error == re.escape("(a+)+$")
    fsspec.filesystem("s3").pipe(f"{bucket}/reg/crash.expect.toml", b"no_crash = [\n")
    with pytest.raises(ExpectationError, match="not valid TOML"):
        load_expectation(rec)


def test_playback_and_bisect_read_s3_recordings(bucket):
    wire = _upload(bucket, "wire.nkrec", WIRE)
    code, _, err = _cli("playback", wire, "--socket", "no-such-socket")
    assert code == 2 and "no socket no-such-socket (it has" in err, err  # the sockets were read from S3
    rec = _upload(bucket, "crash.nkrec", CRASH)
    code, out, err = _cli("bisect", rec, "--versions", "1", "2", "3", "--run", "test {version} -lt 3", "--json")
    assert code == 0 and json.loads(out)["first_bad"]["name"] == "3", err
    cut = _upload(bucket, "cut.nkrec", CRASH)
    fsspec.filesystem("s3").pipe(cut.removeprefix("s3://"), CRASH.read_bytes()[:-200])
    code, _, err = _cli("bisect", cut, "--versions", "1", "2", "--run", "true")
    assert code == 3 and "cut.nkrec" in err, err  # the integrity gate reads S3 too: no verdict from a cut file
