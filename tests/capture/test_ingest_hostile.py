"""`ingest` keeps going: every bad log line of #13 is reported (file:line, why) and skipped, never aborting
the run, never leaving a partial recording; exit 0 clean, 1 when something was skipped, 2 when nothing
usable was found; match ids map to file names without collisions, printed and kept in the header. A fuzz
over log lines allows no exception at all from reading, and every recording written reads back whole."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder import LoopCall, read_events
from recorder.capture import Ingest, recording_name, write_matches
from recorder.format import (
    decode_chunk,
    decode_header,
    encode_chunk,
    encode_header,
    jsonl_lines,
    open_recording,
    read_jsonl,
)
from recorder.format._nkrec import _pack, _unpack
from recorder.format._validate import MAX_DEPTH
from replay.cli import main
from tests.common.model_strategies import assert_same
from tests.common.paths import DATA

LINES = (DATA / "nakama-3.40-lua-capture-arena.log").read_text(encoding="utf-8").splitlines()
OURS = [i for i, line in enumerate(LINES) if "nkreplay:1 {" in line]  # 37 records, one per line
MATCH = "ff5b8c3f-59e1-4b3e-80f2-80ca1d7757bb.nakama"
LOOP = next(k for k, i in enumerate(OURS) if '\\"k\\":\\"loop\\"' in LINES[i])  # the first loop record


def edited(
    k: int, record: Callable[[dict[str, Any]], Any] | None = None, line: Callable[[dict[str, Any]], Any] | None = None
) -> str:
    """Log line of record ``k``, its capture record and/or its log object changed."""
    obj = json.loads(LINES[OURS[k]])
    rec = json.loads(obj["msg"].split(" ", 1)[1])
    if record:
        record(rec)
    obj["msg"] = "nkreplay:1 " + json.dumps(rec)
    if line:
        line(obj)
    return json.dumps(obj)


def log_with(k: int, text: str) -> str:
    lines = list(LINES)
    lines[OURS[k]] = text
    return "\n".join(lines) + "\n"


def ingest_cli(
    tmp_path: Path,
    text: str | bytes,
    capsys: pytest.CaptureFixture[str],
    name: str = "nakama.log",
    json_out: bool = True,
) -> tuple[int, Any]:
    log = tmp_path / name
    log.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    code = main(["ingest", str(log), "-o", str(tmp_path / "out"), *(["--json"] if json_out else [])])
    out = capsys.readouterr()
    assert "Traceback" not in out.err, out.err
    return code, (json.loads(out.out) if json_out and code != 2 else out)


def only_recordings(out: Path) -> list[str]:
    names = sorted(p.name for p in out.iterdir())
    assert all(n.endswith(".nkrec") for n in names), names  # no temporary file, no partial recording
    return names


DEEP = "[" * 100_000 + "]" * 100_000


def nested(depth: int) -> Any:
    v: Any = 0
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        (edited(LOOP, line=lambda o: o.__setitem__("ts", 1e308)), "ts: timestamp 1e+308 is out of range"),
        (edited(LOOP, line=lambda o: o.__setitem__("ts", "1e400")), "ts: timestamp inf is out of range"),
        (edited(LOOP, lambda r: r.__setitem__("t", 1e308)), "t: must be between 0 and 2^63-1"),
        (edited(LOOP, lambda r: r.__setitem__("t", 2**64)), "an integer must fit in 64 bits"),
        (edited(LOOP, lambda r: r.__setitem__("t", -3)), "t: must be between 0 and 2^63-1"),
        (edited(LOOP, lambda r: r.__setitem__("s", 2**64)), "an integer must fit in 64 bits"),
        (edited(LOOP, lambda r: r["ms"][0].__setitem__(1, 2**63)), "ms[0][1]: must be an int64"),
        (edited(LOOP, lambda r: r["ms"][0].__setitem__(0, 0)), "ms[0][0]: must be between 1 and"),
        (edited(LOOP, lambda r: r.__setitem__("nd", [["time", [[[[1e308 * 10]]]]]])), "a number must be finite"),
        (
            edited(LOOP, lambda r: r.__setitem__("o", {"b": [[1, "!!", None, None, True, False]]})),
            "o.b[0][1]: not standard base64",
        ),
        (edited(LOOP, lambda r: r.__setitem__("o", {"ss": {"x": [1, {"y": 1}]}, "b": 5})), "o.b: must be an array"),
        (edited(LOOP).replace("nkreplay:1 {", 'nkreplay:1 {\\"deep\\":' + DEEP + ","), "nested deeper than 100"),
        (edited(LOOP, lambda r: r.__setitem__("x", nested(900))), "nested deeper than 103"),  # parses, then refused
        (edited(LOOP).replace('"runtime"', '"deep":' + DEEP + ',"runtime"'), "nested deeper than 100"),
        (edited(LOOP).replace('\\"s\\":', '\\"n\\":' + "9" * 5000 + ',\\"s\\":'), "more than 4300 digits"),
        (edited(LOOP).replace('\\"s\\":', '\\"n\\":NaN,\\"s\\":'), "a number must be finite"),
        (edited(LOOP, lambda r: r.__setitem__("m", "a\x00b.nakama")), "m: a match id cannot hold the character U+0000"),
        (edited(LOOP, lambda r: r.__setitem__("m", "x" * 300)), "m: a match id of 300 characters"),
        (edited(LOOP, line=lambda o: o.__setitem__("mid", "\n")), "mid: a match id cannot hold the character U+000A"),
    ],
)
def test_a_bad_line_is_reported_and_skipped_never_aborting_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_line: str, fragment: str
) -> None:
    code, report = ingest_cli(tmp_path, log_with(LOOP, bad_line), capsys)
    assert code == 1 and report["clean"] is False
    [damaged] = report["damaged"]
    assert damaged["line"] == OURS[LOOP] + 1 and damaged["source"].endswith("nakama.log")
    assert fragment in damaged["problem"], damaged["problem"]
    [rec] = report["recordings"]
    # a record that never parsed leaves a gap in the sequence; one that parsed but broke a field rule is named
    [problem] = rec["problems"]
    assert rec["calls"] == 36 and (
        problem == f"record {LOOP} missing (lost log lines, or damaged ones reported above)"
        or problem.endswith(
            f"nakama.log:{OURS[LOOP] + 1}: record {LOOP} is damaged, its calls are missing: {damaged['problem'].split(': ', 1)[1]}"
        )
    ), problem
    header, events = read_events(rec["path"])  # the recording is whole and readable
    assert header.match_id == MATCH and len(events) == 37  # 36 calls and the crash marker
    assert header.tags["source_gaps"] == [problem]  # and says what it lacks: no verdict of success from it
    with open_recording(rec["path"]) as recording:
        assert recording.integrity().state == "gapped"
    assert only_recordings(tmp_path / "out") == [f"{MATCH}.nkrec"]


def test_a_bad_crash_line_is_reported_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crash = next(i for i, line in enumerate(LINES) if "Stopping match after error" in line)
    lines = list(LINES)
    obj = json.loads(lines[crash])
    obj["tick"] = 2**64
    lines[crash] = json.dumps(obj)
    code, report = ingest_cli(tmp_path, "\n".join(lines) + "\n", capsys)
    assert code == 1 and report["damaged"][0]["line"] == crash + 1
    assert report["damaged"][0]["problem"].startswith("Nakama's crash line: tick: must be between 0 and 2^63-1")
    # the capture module's own record of the error still gives the crash
    assert report["recordings"][0]["crash"]["tick"] == 29


def test_a_truncated_gz_keeps_every_line_before_the_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = ("\n".join(LINES) + "\n").encode()
    cut = gzip.compress(whole)[:-120]
    with gzip.open(io.BytesIO(cut)) as f:  # what a reader gets before the cut
        complete = 0
        try:
            for _ in f:
                complete += 1
        except EOFError:
            pass
    code, report = ingest_cli(tmp_path, cut, capsys, name="nakama.log.gz")
    assert code == 1
    [damaged] = report["damaged"]
    assert damaged["line"] == complete + 1 and f"after line {complete}" in damaged["problem"]
    assert "ends early" in damaged["problem"]
    kept = sum(1 for i in OURS if i < complete)
    assert report["recordings"][0]["calls"] == kept and kept > 30
    assert len(read_events(report["recordings"][0]["path"])[1]) == kept + 1  # and the crash marker
    # compressed input is recognised by its first bytes, whatever its name; whole, it is clean
    code, report = ingest_cli(tmp_path, gzip.compress(whole), capsys, name="plain-name.log")
    assert code == 0 and report["clean"] and report["recordings"][0]["calls"] == 37


def test_nothing_usable_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(LINES)
    for k in range(len(OURS)):
        lines[OURS[k]] = edited(k, lambda r: r.__setitem__("m", "a\x00b"))
    code, out = ingest_cli(tmp_path, "\n".join(lines) + "\n", capsys)
    assert code == 2 and "no usable capture records: 37 found" in out.err and "U+0000" in out.err
    assert not (tmp_path / "out").exists() or only_recordings(tmp_path / "out") == []


def two_matches(first: str, second: str) -> str:
    """The arena log twice, once per match id (records and their mid)."""
    out = []
    for mid in (first, second):
        for k in range(len(OURS)):
            out.append(
                edited(
                    k,
                    lambda r, mid=mid: r.__setitem__("m", mid),
                    lambda o, mid=mid: o.__setitem__("mid", mid.rsplit(".", 1)[0] or mid),
                )
            )
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a/b.nakama", "a_b.nakama"),
        ("Arena.nakama", "arena.nakama"),
        ("../x.nakama", "__x.nakama"),
        (".hidden", "_hidden"),
    ],
)
def test_match_ids_never_share_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: str, second: str
) -> None:
    code, out = ingest_cli(tmp_path, two_matches(first, second), capsys, json_out=False)
    assert code == 0
    files = only_recordings(tmp_path / "out")
    assert len(files) == 2
    seen = {}
    for name in files:
        header, events = read_events(tmp_path / "out" / name)
        seen[header.match_id] = name
        assert header.tags["file_name"] == name and len(events) == 38
        assert f"match {header.match_id} -> {tmp_path / 'out' / name}" in out.out  # the mapping is printed
    assert sorted(seen) == sorted([first, second])
    assert all("/" not in name and not name.startswith(".") for name in files)


def test_a_recording_of_another_match_already_there_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ing = Ingest()
    ing.feed(two_matches("A.nakama", "B.nakama").splitlines(), "log")
    a, b = ing.matches()
    [(path_a, _)] = write_matches([a], out)
    # as a case-insensitive file system sees it: "a.nakama.nkrec" is there and holds match A.nakama
    (out / "a.nakama.nkrec").write_bytes(path_a.read_bytes())
    lower = dataclasses.replace(b, header=dataclasses.replace(b.header, match_id="a.nakama"))
    [(path_b, _)] = write_matches([lower], out)
    assert path_b.name == recording_name("a.nakama", hashed=True)
    assert read_events(out / "a.nakama.nkrec")[0].match_id == "A.nakama"
    [(again, _)] = write_matches([a], out)  # the same match again replaces its own recording
    assert again == path_a


def test_recording_names() -> None:
    assert recording_name(MATCH) == f"{MATCH}.nkrec"
    escaped = recording_name("a/b")
    assert escaped.startswith("a_b~") and len(escaped) == len("a_b~") + 10 + len(".nkrec")
    assert recording_name("a/b") == escaped != recording_name("a\\b") != recording_name("a_b")
    assert recording_name("x" * 128).startswith("x" * 60 + "~")
    assert recording_name("../../etc/passwd").startswith("etc_passwd~")
    assert recording_name("\ud800").startswith("match~")


# -- fuzz ---------------------------------------------------------------------------------------------------


def record_of(k: int) -> dict[str, Any]:
    return json.loads(json.loads(LINES[OURS[k]])["msg"].split(" ", 1)[1])


def as_line(rec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "level": "info",
            "ts": "2026-11-27T17:10:31.000Z",
            "msg": "nkreplay:1 " + json.dumps(rec),
            "mid": MATCH.split(".")[0],
        }
    )


def sweep_records() -> list[dict[str, Any]]:
    """One record of every kind, with every optional field the capture module writes filled in."""
    init, attempt, join = record_of(0), record_of(1), record_of(2)
    attempt["vars"] = {"client_version": "1.4.0"}
    rich = record_of(next(k for k in range(len(OURS)) if '\\"ss\\"' in LINES[OURS[k]]))
    rich["o"]["ss"] = {"x": [1, {"y": 2.5}], "n": None}
    pid = join["ps"][0]
    rich["o"]["b"].append([3, "eA==", [[pid[1], pid[3]]], [pid[0], pid[1], pid[2]], True, True])
    rich["o"]["kk"] = [pid]
    rich["nd"] = [["time", 1764000000000], ["random", 0.25]]
    crashed = record_of(len(OURS) - 1)
    common = {"m": MATCH, "t": 7}
    leave = {**common, "k": "leave", "ps": [pid], "o": {}}
    signal = {**common, "k": "signal", "d": "ping", "o": {"rp": "pong"}}
    terminate = {**common, "k": "terminate", "g": 3, "o": {"st": True}}
    records = [init, attempt, join, rich, crashed, leave, signal, terminate]
    for r in records:
        r["s"] = 99  # after the base records, whatever its kind
    return records


SWEEP_VALUES = [
    None,
    False,
    -1,
    0,
    2**63,
    2**64,
    1e308,
    1.5,
    "",
    "x",
    "a\x00",
    "\ud800",
    [],
    {},
    [[]],
    ["x"],
    {"1": 1, "1.0": 2},
    nested(MAX_DEPTH),
]


def _json_positions(node: Any) -> list[tuple[Any, Any]]:
    out = []
    items = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    for k, v in items:
        out.append((node, k))
        out.extend(_json_positions(v))
    return out


def test_every_position_of_every_record_kind_set_to_every_edge_value() -> None:
    """The systematic half of the log fuzz: each field of each kind of capture record, replaced in turn
    by each edge value, never raises while reading, and whatever is kept encodes to a chunk the reader
    accepts unchanged."""
    base = [as_line(record_of(k)) for k in range(5)]  # init, two join attempts and joins: presences exist
    kept = skipped = 0
    for template in sweep_records():
        for i in range(len(_json_positions(template))):
            for v in SWEEP_VALUES:
                rec = json.loads(json.dumps(template))
                parent, key = _json_positions(rec)[i]
                parent[key] = v
                ing = Ingest()
                ing.feed([*base, as_line(rec)], "sweep.log")
                for m in ing.matches():
                    assert_same(decode_chunk(_unpack(_pack(encode_chunk(m.events)))), m.events)
                    decode_header(_unpack(_pack(encode_header(m.header))))
                if ing.stats.damaged:
                    skipped += 1
                else:
                    kept += 1
    assert kept and skipped


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from([1e308, -1, 2**63, 2**64, "a\x00", "x" * 300, "", "!!", "AAAA", [], {}]),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=10,
)
RAW_LINES = st.sampled_from(
    [
        "",
        "plain text",
        "{",
        '{"msg": 5}',
        '{"msg": "nkreplay:1 {"}',
        '{"msg": "nkreplay:1 P 1/1/2 {\\"m"}',
        '{"msg": "nkreplay:1 P 1/2/2 x\\"}"}',
        '{"msg": "nkreplay:1 P 9/0/0 x"}',
        '{"log": "nkreplay:1 {", "stream": "x"}',
        '{"msg":"Stopping match after error from match_loop execution","mid":"m","tick":-1}',
        '{"msg":"Stopping match after error from match_loop execution","mid":[],"tick":1,"error":{}}',
        '{"msg": "nkreplay:1 {}", "ts": ' + "9" * 5000 + "}",
        '{"msg": "nkreplay:1 []", "ts": []}',
        "[" * 3000,
        '{"msg": "nkreplay:1 ' + "[" * 500 + '"}',
    ]
)


@st.composite
def hostile_logs(draw: st.DrawFn) -> list[str]:
    """The arena log with a few records changed at random places, and a few hostile lines added."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(OURS) - 1))

        def change(rec: dict[str, Any]) -> None:
            node: Any = rec
            for _ in range(draw(st.integers(0, 3))):  # walk down a few levels
                keys = (
                    list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
                )
                child = node[draw(st.sampled_from(keys))] if keys else None
                if not isinstance(child, (dict, list)) or not child:
                    break
                node = child
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if keys:
                node[draw(st.sampled_from(keys))] = draw(JSON_VALUES)

        lines[OURS[k]] = edited(k, change)
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(RAW_LINES | st.text(max_size=20)))
    return lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_logs())
def test_fuzz_log_lines_never_stop_ingest(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    """Reading raises nothing at all; every recording written reads back whole, and its JSON Lines export
    imports again (what ingest writes, the readers accept)."""
    ing = Ingest()
    ing.feed([line.encode("utf-8", "surrogatepass") for line in lines], "fuzz.log")
    matches = ing.matches()
    out = tmp_path_factory.mktemp("fuzz")
    for path, m in write_matches(matches, out):
        header, events = read_events(path)
        assert len(events) == len(m.events)
        for e in events:
            if type(e) is LoopCall:
                list(e.messages)
        assert len(list(read_jsonl(io.StringIO("".join(jsonl_lines(header, events))))[1])) == len(events)
    only_recordings(out)
