"""JSON Lines interchange: lossless both ways, the issue's exact shapes, errors with line and field, CLI."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from recorder import (
    CrashMarker,
    Header,
    InitCall,
    InterchangeError,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Presence,
    SignalCall,
    TerminateCall,
    open_recording,
    read_events,
    write_recording,
)
from recorder.format import INTEGRITY_TAG, import_jsonl, jsonl_lines, read_jsonl, verify, write_jsonl
from recorder.format._jsonl import from_json_value, to_json_value
from recorder.format._nkrec import FRAME_SIZE
from replay.cli import main
from tests.common.model_strategies import (
    NAN_PAYLOAD,
    U64_MAX,
    assert_same,
    event_lists,
    float_bits,
    headers,
    pinned_events,
    pinned_header,
    values,
)

ALICE = {"user_id": "u1", "session_id": "s1", "username": "alice", "node": "nakama1"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for hypothesis tests (they cannot take the function-scoped ``tmp_path``)."""
    return tmp_path_factory.mktemp("scratch")


def parse(text: str, path: str = "t.jsonl") -> tuple[Header, list]:
    header, events = read_jsonl(io.BytesIO(text.encode("utf-8")), path)
    return header, list(events)


def dumps(header: Header, events: list) -> str:
    return "".join(jsonl_lines(header, events))


# -- lossless round trips ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(headers, event_lists())
@example(pinned_header(), pinned_events())
@example(Header(), [])
def test_model_to_jsonl_and_back(header: Header, events: list) -> None:
    text = dumps(header, events)
    text.encode("utf-8")  # always valid UTF-8, whatever the strings hold
    lines = text.splitlines()  # splits on U+2028, U+0085 too: those must be escaped
    assert len(lines) == len(events) + 1 and all(type(json.loads(line)) is dict for line in lines)
    got_header, got = parse(text)
    assert_same(got_header, header)
    assert_same(got, events)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers, event_lists(max_size=20))
@example(pinned_header(), pinned_events())
def test_file_to_jsonl_to_file_is_byte_identical(scratch: Path, header: Header, events: list) -> None:
    original, again, jsonl = scratch / "a.nkrec", scratch / "b.nkrec", scratch / "a.jsonl"
    write_recording(original, header, events, chunk_events=3)
    with open_recording(original) as rec, open(jsonl, "wb") as f:
        assert write_jsonl(f, rec.header, rec.events()) == len(events)
    assert import_jsonl(jsonl, again, chunk_events=3) == len(events)
    assert again.read_bytes() == original.read_bytes()


@given(values)
@example({"$bytes": "not a tag"})
@example({"$map": [[1, 2]]})
@example({1: "a", "b": NAN_PAYLOAD, b"\x00": -0.0, None: math.inf})
@example("\ud83d\ude00")  # two lone surrogates that JSON would merge into one character
def test_values_roundtrip_through_json_text(v: object) -> None:
    text = json.dumps(to_json_value(v), allow_nan=False)
    assert_same(from_json_value(json.loads(text)), v)


def test_tags() -> None:
    assert to_json_value(b"\xff\x00") == {"$bytes": "/wA="}
    assert to_json_value(NAN_PAYLOAD) == {"$float": "7ff8000000000001"}
    assert to_json_value(-math.inf) == {"$float": "fff0000000000000"}
    assert to_json_value(-0.0) == -0.0 and math.copysign(1, json.loads(json.dumps(-0.0))) == -1
    assert to_json_value({1: "a"}) == {"$map": [[1, "a"]]}
    assert to_json_value({"$bytes": "x"}) == {"$map": [["$bytes", "x"]]}  # escaped: would read as a tag
    assert to_json_value({"$bytes": "x", "y": 1}) == {"$bytes": "x", "y": 1}  # two keys: never a tag
    assert to_json_value(U64_MAX) == U64_MAX
    assert float_bits(from_json_value({"$float": "7ff8000000000001"})) == 0x7FF8000000000001
    header, (init,) = parse('{"kind":"header","params":{"s":"\\ud800"}}\n{"kind":"init"}\n')
    assert init.params == {"s": "\ud800"} == header.params


def test_strings_with_surrogates_use_the_str_tag() -> None:
    p = Presence("u1", "s1", "\ud83d\ude00", "")
    text = dumps(Header(), [JoinCall(0, (p,))])
    assert '"username":{"$str":' in text
    assert parse(text)[1][0].presences[0].username == "\ud83d\ude00"


# -- the exact shapes of the issue ---------------------------------------------------------------------------

SPEC = """\
{"kind":"header","match_id":"m1.nakama1","module":"arena","tick_rate":10,"label":"","params":{},"node":"nakama1"}
{"kind":"init"}
{"kind":"join_attempt","tick":0,"presence":{"user_id":"u1","session_id":"s1","username":"alice","node":"nakama1"},\
"metadata":{"v":"1.2.0"}}
{"kind":"join","tick":0,"presences":[{"user_id":"u1","session_id":"s1","username":"alice","node":"nakama1","reason":0}]}
{"kind":"loop","tick":0,"messages":[{"sender":{"user_id":"u1","session_id":"s1","username":"alice","node":"nakama1"},\
"op_code":1,"data":"eyJ4IjoxfQ==","reliable":true,"receive_time_ms":1700000000100}]}
{"kind":"loop","tick":1,"messages":[]}
{"kind":"leave","tick":5,"presences":[{"user_id":"u1","session_id":"s1","username":"alice","node":"nakama1","reason":4}]}
{"kind":"signal","tick":7,"data":"text","outcome":{"reply":"ok"},"nondeterministic":[{"source":"time","value":17}]}
{"kind":"terminate","tick":9,"grace_seconds":30}
{"kind":"crash","callback":"match_loop","tick":8,"error":"..."}
"""


def test_the_issue_shapes_are_accepted() -> None:
    header, events = parse(SPEC)
    assert (header.match_id, header.module, header.tick_rate, header.node, header.source) == (
        "m1.nakama1",
        "arena",
        10,
        "nakama1",
        "jsonl",
    )
    alice = Presence("u1", "s1", "alice", "nakama1")
    assert [type(e) for e in events] == [
        InitCall,
        JoinAttemptCall,
        JoinCall,
        LoopCall,
        LoopCall,
        LeaveCall,
        SignalCall,
        TerminateCall,
        CrashMarker,
    ]
    assert events[1] == JoinAttemptCall(0, alice, {"v": "1.2.0"})
    assert events[3].messages == (MatchMessage(alice, 1, b'{"x":1}', True, 1700000000100),)
    assert events[4].messages == () and events[5].presences == (alice.with_reason(4),)
    assert events[6].outcome.reply == "ok" and events[6].nondeterministic[0].value == 17
    assert events[8] == CrashMarker("match_loop", 8, "...")


def test_optional_header_fields_and_defaults() -> None:
    header, (init, loop) = parse(
        '{"kind":"header","match_id":"m","module":"arena","tick_rate":10,"label":"l","params":{"p":1},"node":"n",'
        '"handler":"../handlers/arena.lua","client_versions":{"u1":"1.2.0"},"started_ms":1700000000000}\n'
        '{"kind":"init"}\n'
        '{"kind":"loop","tick":0,"messages":[{"sender":{"user_id":"u","session_id":"s","username":"n"},"op_code":3}]}\n'
    )
    assert header.handler == "../handlers/arena.lua" and header.client_versions == {"u1": "1.2.0"}
    assert header.started_ms == 1700000000000 and header.format_version == 2 and header.recording_kind == "calls"
    assert init.params == {"p": 1}  # an init line without params gets the header's
    assert loop.messages[0] == MatchMessage(Presence("u", "s", "n"), 3, None, True, 0)


def test_export_writes_every_header_field() -> None:
    line = json.loads(dumps(pinned_header(), []).splitlines()[0])
    assert set(line) == {
        "kind",
        "match_id",
        "module",
        "tick_rate",
        "label",
        "params",
        "node",
        "handler",
        "client_versions",
        "started_ms",
        "source",
        "tags",
        "recording_kind",
        "log_match_id",
        "redactions",
        "format_version",
    }


# -- malformed lines -----------------------------------------------------------------------------------------

H = '{"kind":"header","match_id":"m"}\n'


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("", 1, "kind", "empty"),
        ('{"kind":"init"}\n', 1, "kind", "first line must be the header"),
        (H + "{not json\n", 2, "", "not valid JSON"),
        (H + "[1]\n", 2, "", "must be a JSON object"),
        (H + '{"tick":1}\n', 2, "kind", "missing"),
        (H + '{"kind":"loops","tick":1}\n', 2, "kind", "unknown kind"),
        (H + '{"kind":"header"}\n', 2, "kind", "only the first line"),
        (H + '\n{"kind":"loop","tick":"1"}\n', 3, "tick", "must be an integer"),
        (H + '{"kind":"loop","tick":1.0}\n', 2, "tick", "must be an integer"),
        (H + '{"kind":"loop","tick":true}\n', 2, "tick", "must be an integer"),
        (H + '{"kind":"loop","tick":1,"extra":2}\n', 2, "extra", "unknown field"),
        (H + '{"kind":"loop","tick":1,"tick":2}\n', 2, "tick", "twice"),
        (H + '{"kind":"join","tick":1}\n', 2, "presences", "missing"),
        (
            H + '{"kind":"join","tick":1,"presences":[{"user_id":"u","session_id":"s"}]}\n',
            2,
            "presences[0].username",
            "missing",
        ),
        (
            H + '{"kind":"loop","tick":1,"messages":[{"sender":%s,"op_code":1,"data":"!!"}]}\n' % json.dumps(ALICE),
            2,
            "messages[0].data",
            "base64",
        ),
        (
            H
            + '{"kind":"loop","tick":1,"messages":[{"sender":%s,"op_code":9223372036854775808}]}\n' % json.dumps(ALICE),
            2,
            "messages[0].op_code",
            "int64",
        ),
        (
            H + '{"kind":"loop","tick":1,"messages":[{"sender":%s,"op_code":1,"reliable":1}]}\n' % json.dumps(ALICE),
            2,
            "messages[0].reliable",
            "true or false",
        ),
        (H + '{"kind":"loop","tick":1,"messages":{}}\n', 2, "messages", "must be a list"),
        (H + '{"kind":"loop","tick":1,"outcome":{"digest":-1}}\n', 2, "outcome.digest", "uint64"),
        (
            H + '{"kind":"loop","tick":1,"outcome":{"broadcasts":[{"op_code":1,"targets":[{"user_id":5}]}]}}\n',
            2,
            "outcome.broadcasts[0].targets[0].user_id",
            "must be a string",
        ),
        (
            H + '{"kind":"loop","tick":1,"nondeterministic":[{"source":"time"}]}\n',
            2,
            "nondeterministic[0].value",
            "missing",
        ),
        (H + '{"kind":"init","params":{"x":NaN}}\n', 2, "", "NaN is not JSON"),
        (H + '{"kind":"init","params":{"x":1e999}}\n', 2, "params.x", "out of range"),
        (H + '{"kind":"init","params":{"x":{"$foo":1}}}\n', 2, "params.x.$foo", "unknown tag"),
        (H + '{"kind":"init","params":{"x":{"$float":"7ff8"}}}\n', 2, "params.x.$float", "16 hex digits"),
        (H + '{"kind":"init","params":{"$map":[[1,2],[1,3]]}}\n', 2, "params.$map[1][0]", "duplicate"),
        (H + '{"kind":"init","params":{"$map":[[[1],2]]}}\n', 2, "params.$map[0][0]", "scalar"),
        (H + '{"kind":"init","params":[]}\n', 2, "params", "must be an object"),
        (H + '{"kind":"init","params":{"$bytes":"AA=="}}\n', 2, "params", "must be an object"),
        (H + '{"kind":"wire","socket":"a","direction":"out","t":"x"}\n', 2, "t", "must be a number"),
        ('{"kind":"header","tick_rate":"10"}\n', 1, "tick_rate", "must be an integer"),
        ('{"kind":"header","client_versions":{"u1":2}}\n', 1, "client_versions", "strings to strings"),
        ('{"kind":"header","colour":"red"}\n', 1, "colour", "unknown field"),
    ],
)
def test_malformed_lines_name_line_and_field(text: str, line: int, field: str, fragment: str) -> None:
    with pytest.raises(InterchangeError) as err:
        parse(text, "bad.jsonl")
    e = err.value
    assert (e.path, e.line, e.field) == ("bad.jsonl", line, field), str(e)
    assert fragment in e.problem and str(e).startswith(f"bad.jsonl:{line}:") and isinstance(e, ValueError)


def test_invalid_utf8_and_bom() -> None:
    with pytest.raises(InterchangeError, match="not UTF-8") as err:
        list(read_jsonl([H.encode(), b'{"kind":"signal","tick":1,"data":"\xff"}\n'], "x.jsonl")[1])
    assert err.value.line == 2
    header, _ = read_jsonl([("\ufeff" + H).encode()], "x.jsonl")
    assert header.match_id == "m"


def test_import_leaves_nothing_behind_on_error(tmp_path: Path) -> None:
    src, out = tmp_path / "bad.jsonl", tmp_path / "out.nkrec"
    src.write_text(H + '{"kind":"init"}\n' * 1000 + '{"kind":"loop"}\n')
    with pytest.raises(InterchangeError) as err:
        import_jsonl(src, out, chunk_events=10)
    assert err.value.line == 1002 and err.value.field == "tick"
    assert list(tmp_path.iterdir()) == [src]


# -- commands ------------------------------------------------------------------------------------------------


def test_cli_import_export_roundtrip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "match.jsonl"
    src.write_text(SPEC)
    assert main(["import", str(src)]) == 0  # default output: the suffix becomes .nkrec
    assert capsys.readouterr().err.strip() == f"wrote 9 events to {tmp_path / 'match.nkrec'}"
    _, events = read_events(tmp_path / "match.nkrec", strict=True)
    assert len(events) == 9
    assert main(["export", str(tmp_path / "match.nkrec")]) == 0
    out = capsys.readouterr()
    assert out.err.strip() == "wrote 9 events to <stdout>" and len(out.out.splitlines()) == 10
    assert_same(parse(out.out)[1], events)
    assert main(["export", str(tmp_path / "match.nkrec"), "-o", str(tmp_path / "again.jsonl")]) == 0
    assert (tmp_path / "again.jsonl").read_text() == out.out


def test_cli_import_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SPEC.encode())))
    assert main(["import", "-", "-o", str(tmp_path / "in.nkrec")]) == 0
    assert "wrote 9 events" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(["import", "-"]) == 2
    assert "needs -o" in capsys.readouterr().err


def test_cli_errors_exit_2_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(H + '{"kind":"loop","tick":"x"}\n')
    assert main(["import", str(bad), "-o", str(tmp_path / "o.nkrec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("InterchangeError: ") and f"{bad}:2: field 'tick'" in err
    assert not (tmp_path / "o.nkrec").exists()
    assert main(["import", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.nkrec")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.nkrec")]) == 2
    assert "missing.nkrec" in capsys.readouterr().err


def test_cli_export_of_incomplete_recordings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "r.nkrec"
    alice = Presence("u1", "s1", "alice")
    write_recording(
        rec, Header(match_id="m"), [LoopCall(t, (MatchMessage(alice, 1, b"x"),)) for t in range(20)], chunk_events=5
    )
    data = rec.read_bytes()
    with open_recording(rec) as r:
        index = r.tick_index()
    cut = tmp_path / "cut.nkrec"
    cut.write_bytes(data[: index[-1].offset + 40])  # inside the last chunk
    assert main(["export", str(cut), "-o", str(tmp_path / "cut.jsonl")]) == 3
    err = capsys.readouterr().err
    assert f"the file ends inside chunk 4 (byte offset {index[-1].offset})" in err and "wrote 15 events" in err
    # the interchange file says where it came from, and importing it gives no complete recording back
    header, _ = parse((tmp_path / "cut.jsonl").read_text())
    assert header.tags[INTEGRITY_TAG].startswith("unsealed: ")
    with pytest.warns(UserWarning, match="exported from an incomplete recording"):
        import_jsonl(tmp_path / "cut.jsonl", tmp_path / "again.nkrec")
    assert verify(tmp_path / "again.nkrec").state == "unsealed"
    assert main(["export", "--allow-incomplete", str(cut), "-o", str(tmp_path / "cut.jsonl")]) == 0
    capsys.readouterr()
    assert main(["export", "--strict", str(cut)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("TruncatedRecording: ") and f"byte offset {index[-1].offset}" in err
    broken = bytearray(data)
    broken[index[1].offset + FRAME_SIZE + 3] ^= 1
    (tmp_path / "broken.nkrec").write_bytes(bytes(broken))
    assert main(["export", str(tmp_path / "broken.nkrec"), "-o", str(tmp_path / "b.jsonl")]) == 3
    err = capsys.readouterr().err
    assert f"damaged: corrupt at byte offset {index[1].offset} (chunk 2)" in err and "wrote 5 events" in err
    assert main(["export", "--salvage", str(tmp_path / "broken.nkrec"), "-o", str(tmp_path / "b.jsonl")]) == 3
    err = capsys.readouterr().err
    assert f"skipped corrupt data at byte offset {index[1].offset} (chunk 2)" in err and "wrote 15 events" in err
    assert [e.tick for e in parse((tmp_path / "b.jsonl").read_text())[1]] == [*range(5), *range(10, 20)]
