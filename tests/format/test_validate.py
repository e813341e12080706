"""Validation at the door (recorder.format._validate): chunk payloads and JSON Lines files that break a rule are
refused with CorruptRecording / InterchangeError naming the chunk or line and the field, never accepted to
fail later; the limits (nesting depth, 64-bit integers, ticks >= 0) are the same on both sides; a killed
import leaves only a file named as temporary, which the next import removes. Fuzz tests allow no exception
outside ``recorder.errors``."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder import (
    Broadcast,
    CorruptRecording,
    CrashMarker,
    Header,
    InitCall,
    InterchangeError,
    JoinCall,
    LoopCall,
    MatchMessage,
    Outcome,
    Presence,
    RecordingWriter,
    read_events,
)
from recorder.errors import InvalidValue
from recorder.format import (
    atomic_output,
    decode_chunk,
    decode_header,
    encode_chunk,
    encode_header,
    import_jsonl,
    iter_events,
    jsonl_lines,
    parse_json,
    read_jsonl,
)
from recorder.format._atomic import temp_path
from recorder.format._jsonl import event_to_json, header_to_json
from recorder.format._nkrec import _pack, _unpack
from recorder.format._validate import MAX_DEPTH, value
from replay.cli import main
from tests.common.model_strategies import assert_same, event_lists, pinned_events, pinned_header
from tests.common.paths import ROOT

ALICE, BOB = Presence("u1", "s1", "alice", "n1"), Presence("u2", "s2", "bob", "n1")
ORIGIN = ("bad.nkrec", 4096, 7)


def nested(depth: int, leaf: object = 0) -> object:
    """``depth`` arrays around ``leaf`` (built without recursion)."""
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


def payload(events: list) -> list:
    """A chunk payload exactly as a reader gets it back from msgpack."""
    return _unpack(_pack(encode_chunk(events)))


def decode_all(tree: object) -> list:
    """Decode a payload and use every part of it the way consumers do (messages, export, re-encoding)."""
    events = list(iter_events(tree, ORIGIN))
    for e in events:
        if type(e) is LoopCall:
            list(e.messages)
            list(e.messages.op_codes_and_sizes())
        event_to_json(e)
    _pack(encode_chunk(events))
    return events


# -- the chunk decoder -----------------------------------------------------------------------------------

LOOP = [
    JoinCall(0, (ALICE, BOB)),
    LoopCall(
        1,
        (MatchMessage(ALICE, 1, b"x", True, 5), MatchMessage(BOB, 2, None)),
        Outcome(broadcasts=(Broadcast(3, b"y", (ALICE,), BOB),), digest=7),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        # the cases: message data an int or an ext type, a string op code, presence index -1
        (lambda p: p[1][1][2][0].__setitem__(2, 5), "events[1].messages[0].data", "bytes or nil"),
        (
            lambda p: p[1][1][2][0].__setitem__(2, msgpack.ExtType(3, b"x")),
            "events[1].messages[0].data",
            "bytes or nil",
        ),
        (lambda p: p[1][1][2][0].__setitem__(1, "1"), "events[1].messages[0].op_code", "must be an integer"),
        (lambda p: p[1][1][2][0].__setitem__(0, -1), "events[1].messages[0].sender", "presence index -1"),
        (lambda p: p[1][0][2].__setitem__(1, -1), "events[0].presences", "presence index -1"),
        (
            lambda p: p[1][1][3]["b"][0].__setitem__(2, [-1]),
            "events[1].outcome.broadcasts[0].targets[0]",
            "presence index -1",
        ),
        (
            lambda p: p[1][1][3]["b"][0].__setitem__(3, -1),
            "events[1].outcome.broadcasts[0].sender",
            "presence index -1",
        ),
        # out-of-range integers msgpack can hold
        (lambda p: p[1][1][2][0].__setitem__(1, 2**63), "events[1].messages[0].op_code", "int64"),
        (lambda p: p[1][1][2][0].__setitem__(4, 2**64 - 1), "events[1].messages[0].receive_time_ms", "int64"),
        (lambda p: p[1][1].__setitem__(1, -5), "events[1].tick", "between 0 and 2^63-1"),
        (lambda p: p[1][1][3].__setitem__("d", -1), "events[1].outcome.digest", "uint64"),
        (lambda p: p[0][0].__setitem__(4, 2**63), "presences[0].reason", "int64"),
        # other wrong types
        (lambda p: p[1][1][2][0].__setitem__(3, 1), "events[1].messages[0].reliable", "true or false"),
        (lambda p: p[1][1][3].__setitem__("a", "yes"), "events[1].outcome.accept", "true or false"),
        (lambda p: p[1][1].__setitem__(3, [1]), "events[1].outcome", "must be a map"),
        (lambda p: p[0][1].__setitem__(0, 5), "presences[1].user_id", "must be a string"),
        (lambda p: p[1].append([9, 0]), "events[2]", "unknown event kind"),
        (lambda p: p[1].append([4.0, 0, []]), "events[2]", "unknown event kind"),
    ],
)
def test_checksum_valid_chunks_with_wrong_types_are_corrupt(mutate, field: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    tree = payload(LOOP)
    decode_all(copy.deepcopy(tree))  # the unmutated chunk is fine
    mutate(tree)
    with pytest.raises(CorruptRecording) as err:
        decode_all(tree)
    e = err.value
    assert (e.path, e.offset, e.chunk, e.field) == (*ORIGIN, field), str(e)
    assert fragment in str(e) and f"byte offset {ORIGIN[1]} (chunk {ORIGIN[2]})" in str(e)


def test_free_form_values_nest_at_most_max_depth_in_chunks_and_jsonl() -> None:
    deepest, too_deep = nested(MAX_DEPTH - 1, {"x": 1}), nested(MAX_DEPTH, {"x": 1})  # 100 and 101 levels
    ok = [InitCall({"p": nested(MAX_DEPTH - 2)}), CrashMarker("match_loop", 0, "e")]
    decode_all(payload([InitCall({"p": deepest[0]})]))  # type: ignore[index]
    header = Header(match_id="m")
    for params in ({"p": deepest[0]}, {"p": too_deep[0]}):  # type: ignore[index]
        text = "".join(jsonl_lines(header, [InitCall(params)]))
        tree = payload([InitCall(params)])
        if params["p"] is deepest[0]:  # type: ignore[index]
            assert_same(list(read_jsonl(io.StringIO(text))[1]), [InitCall(params)])
            continue
        with pytest.raises(InterchangeError, match=f"nested deeper than {MAX_DEPTH} levels") as jerr:
            list(read_jsonl(io.StringIO(text), "deep.jsonl")[1])
        assert jerr.value.line == 2 and jerr.value.field.startswith("params.p[0][0]")
        with pytest.raises(CorruptRecording, match=f"nested deeper than {MAX_DEPTH} levels") as cerr:
            decode_all(tree)
        assert cerr.value.field.startswith("events[0].params.p[0]")
    assert len(decode_all(payload(ok))) == 2


def test_wrongly_typed_chunk_is_refused_by_reproduce_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A buggy writer (the encoder does not check) writes message data as an int behind a valid checksum:
    ``reproduce`` used to fail with AttributeError in replay/runtime/_result.py; now the reader refuses the chunk."""
    rec = tmp_path / "bad.nkrec"
    header = Header(match_id="m.n1", module="arena", tick_rate=10, handler=str(ROOT / "fixtures/handlers/arena.py"))
    with RecordingWriter(rec, header) as w:
        w.append(InitCall({}, Outcome(tick_rate=10)))
        w.append(LoopCall(0, (MatchMessage(ALICE, "1", 5, True, 0),)))  # type: ignore[arg-type]
    code = main(["reproduce", str(rec), "--handler", str(ROOT / "fixtures/handlers/arena.py")])
    err = capsys.readouterr().err
    assert code not in (0, 1) and "Traceback" not in err, err
    assert "CorruptRecording" in err and "messages[0].op_code" in err and "chunk 1" in err


def test_header_fields_are_checked() -> None:
    good = encode_header(Header(match_id="m", params={"a": 1}, client_versions={"u": "1.0"}))
    assert decode_header(good).match_id == "m"
    for key, bad, fragment in [
        ("tick_rate", 2**63, "int64"),
        ("params", {"a": nested(MAX_DEPTH + 1)}, "nested deeper"),
        ("client_versions", {"u": 1}, "must be a string"),
        ("redactions", ["a", 1], "must be a string"),
        ("match_id", b"m", "must be a string"),
    ]:
        with pytest.raises(InvalidValue, match=fragment) as err:
            decode_header({**good, key: bad})
        assert err.value.field.startswith(key)


# -- JSON Lines ------------------------------------------------------------------------------------------

H = '{"kind":"header","match_id":"m"}\n'


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ('{"kind":"init","params":{"deep":' + "[" * 1000 + "]" * 1000 + "}}", "", "nested deeper than 100"),
        ('{"kind":"init","params":{"deep":' + "[" * 150 + "]" * 150 + "}}", "params.deep[0]", "nested deeper than 100"),
        ('{"kind":"loop","tick":1,"deep":' + "[" * 100000 + "]" * 100000 + "}", "", "nested deeper than 100"),
        ('{"kind":"loop","tick":' + "9" * 5000 + "}", "", "more than 4300 digits"),
        ('{"kind":"init","params":{"n":-' + "1" * 4400 + "}}", "", "more than 4300 digits"),
        ('{"kind":"loop","tick":-5}', "tick", "between 0 and 2^63-1"),
        ('{"kind":"crash","callback":"match_loop","tick":-1,"error":"e"}', "tick", "between 0 and 2^63-1"),
        ('{"kind":"init","params":{"big":18446744073709551616}}', "params.big", "64 bits"),
    ],
)
def test_jsonl_lines_beyond_the_limits_name_line_and_field(line: str, field: str, fragment: str) -> None:
    with pytest.raises(InterchangeError) as err:
        list(read_jsonl(io.StringIO(H + line + "\n"), "in.jsonl")[1])
    e = err.value
    assert (e.path, e.line) == ("in.jsonl", 2) and e.field.startswith(field) and fragment in e.problem, str(e)
    assert len(str(e)) < 400  # a hostile path is shortened, not printed whole


def test_a_killed_import_leaves_only_its_temporary_file_and_the_next_import_removes_it(tmp_path: Path) -> None:
    out = tmp_path / "match.nkrec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "import", "-", "-o", str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write((H + '{"kind":"loop","tick":1}\n' * 600).encode())
    proc.stdin.flush()  # the import is now waiting for more input, its temporary file open
    deadline = time.monotonic() + 120
    while not temp_path(out).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["match.nkrec.incomplete.tmp"]
    # the next import to that output removes the leftover, also when it fails
    bad = tmp_path / "bad.jsonl"
    bad.write_text(H + '{"kind":"loop","tick":-5}\n')
    with pytest.raises(InterchangeError):
        import_jsonl(bad, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
    good = tmp_path / "good.jsonl"
    good.write_text(H + '{"kind":"loop","tick":1}\n')
    assert import_jsonl(good, out) == 1 and sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.jsonl",
        "good.jsonl",
        "match.nkrec",
    ]


def test_atomic_output_replaces_only_with_a_complete_file(tmp_path: Path) -> None:
    out = tmp_path / "x.nkrec"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert out.read_bytes() == b"old" and not temp_path(out).exists()
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["x.nkrec"]


def test_parse_json_turns_every_parser_failure_into_invalid() -> None:
    for text, fragment in [("{", "not valid JSON"), ("[" * 5000, "nested deeper"), ("1" * 4400, "4300 digits")]:
        with pytest.raises(InvalidValue, match=fragment):
            parse_json(text)
    assert parse_json('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    with pytest.raises(InvalidValue, match="finite"):
        value(json.loads('{"x": [1e400]}'), "v", from_json=True)


# -- fuzz: nothing but the documented errors -------------------------------------------------------------

HOSTILE = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(
        [
            None,
            True,
            False,
            2**63,
            2**64 - 1,
            -(2**63),
            1.5,
            float("nan"),
            float("inf"),
            "",
            "x",
            b"",
            b"\xff",
            [],
            {},
            [0],
            [-1],
            [[]],
            {"a": 1},
            {1: 2},
            {b"k": 1},
            msgpack.ExtType(5, b"x"),
            [0, 1, b"", True, 0],
            [[0, 1, b"", True, 0]],
            ["u", "s", "n", "", 0],
        ]
    ),
    st.integers(-(2**63), 2**64 - 1),
    st.builds(nested, st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2)),
)


EDGE_NUMBERS = [-1, -(2**63), 2**63 - 1, 2**63, 2**64 - 1, 1.0, True, "1", None]


@st.composite
def mutated_payloads(draw: st.DrawFn) -> object:
    """A valid chunk payload with one or two nodes changed: an integer leaf set to an edge value (ticks,
    op codes, presence indexes, digests...), or any node replaced, deleted or duplicated. For the latter a
    depth is drawn first, then a node at that depth, so the chunk's own structure (a few levels) is hit as
    often as the free-form values below it."""
    tree = payload(draw(event_lists(max_size=6)))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
        by_depth: dict[int, list[tuple[object, object]]] = {}
        numbers: list[tuple[object, object]] = []  # integer leaves: ticks, op codes, indexes, digests, times
        stack: list[tuple[object, int]] = [(tree, 0)]
        while stack:
            x, depth = stack.pop()
            items = list(enumerate(x)) if isinstance(x, list) else list(x.items()) if isinstance(x, dict) else []
            for k, v in items:
                by_depth.setdefault(depth, []).append((x, k))
                if type(v) is int:
                    numbers.append((x, k))
                stack.append((v, depth + 1))
        if not by_depth:
            return draw(HOSTILE)
        if numbers and draw(st.booleans()):
            parent, key = draw(st.sampled_from(numbers))
            parent[key] = draw(st.sampled_from(EDGE_NUMBERS))  # type: ignore[index]
            continue
        depths = sorted(by_depth)[1:] or [0]  # depth 0 is [presences, events] itself: hit it only by deletion
        parent, key = draw(st.sampled_from(by_depth[draw(st.sampled_from(depths))]))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate"]))
        if action == "replace":
            parent[key] = draw(HOSTILE)  # type: ignore[index]
        elif action == "delete":
            del parent[key]  # type: ignore[attr-defined]
        elif isinstance(parent, list):
            parent.insert(key, parent[key])  # type: ignore[arg-type]
    return tree


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_fuzz_chunk_payloads_decode_or_raise_corrupt_recording(tree: object) -> None:
    """Whatever the decoder accepts can be used everywhere (messages, export, re-encoding, a second decode
    gives the same events, and JSON Lines import takes its export back: the two doors agree); everything
    else is CorruptRecording."""
    try:
        events = decode_all(tree)
    except CorruptRecording as exc:
        assert (exc.path, exc.offset, exc.chunk) == ORIGIN
        return
    assert_same(decode_chunk(_unpack(_pack(encode_chunk(events)))), events)
    text = "".join(jsonl_lines(Header(match_id="m"), events))
    assert_same(list(read_jsonl(io.StringIO(text))[1]), events)


SWEEP_VALUES = [
    *EDGE_NUMBERS,
    0,
    5,
    1.5,
    float("nan"),
    "",
    b"",
    b"\xff",
    [],
    {},
    [0],
    [-1],
    [[]],
    {"a": 1},
    msgpack.ExtType(5, b"x"),
    nested(MAX_DEPTH + 1),
]


def _positions(tree: object, depth: int = 0) -> list[tuple[object, object]]:
    """Every (container, key) of a payload below its top level."""
    out = []
    items = list(enumerate(tree)) if isinstance(tree, list) else list(tree.items()) if isinstance(tree, dict) else []
    for k, v in items:
        if depth > 0:
            out.append((tree, k))
        out.extend(_positions(v, depth + 1))
    return out


def test_every_position_of_every_event_kind_set_to_every_edge_value() -> None:
    """The systematic half of the fuzz: each node of a chunk holding every event kind and outcome field,
    replaced in turn by each edge value, decodes to something usable everywhere or is CorruptRecording."""
    tree = payload(pinned_events())
    accepted = refused = 0
    for parent, key in _positions(tree):
        original = parent[key]  # type: ignore[index]
        for replacement in SWEEP_VALUES:
            parent[key] = replacement  # type: ignore[index]  # decoding never changes the tree: restored below
            try:
                events = decode_all(tree)
            except CorruptRecording:
                refused += 1
                continue
            accepted += 1
            text = "".join(jsonl_lines(Header(match_id="m"), events))
            assert_same(list(read_jsonl(io.StringIO(text))[1]), events)
        parent[key] = original  # type: ignore[index]
    assert_same(decode_all(tree), pinned_events())
    assert accepted and refused  # both sides reached


JSON_SWEEP_VALUES = [
    None,
    True,
    -1,
    2**63,
    2**64,
    -(2**63) - 1,
    1.5,
    "",
    "x",
    [],
    {},
    [0],
    {"a": None},
    {"$bytes": "AA=="},
    {"$float": "7ff0000000000000"},
    {"$map": [[1, None]]},
    {"$ext": [5, "AA=="]},
    nested(MAX_DEPTH + 1),
]


def test_every_position_of_every_jsonl_line_set_to_every_edge_value() -> None:
    """The systematic half of the JSONL fuzz: each value of a file holding every line kind and outcome
    field, replaced in turn by each edge value, is InterchangeError or imports into events that encode
    to a chunk the chunk decoder accepts unchanged."""
    lines = [header_to_json(pinned_header())] + [event_to_json(e) for e in pinned_events()]
    accepted = refused = 0
    for parent, key in [(p, k) for p, k in _positions([lines]) if p is not lines]:  # every value inside a line
        original = parent[key]  # type: ignore[index]
        for replacement in JSON_SWEEP_VALUES:
            parent[key] = replacement  # type: ignore[index]
            text = "".join(json.dumps(x) + "\n" for x in lines)
            try:
                header, events = read_jsonl(io.StringIO(text), "sweep.jsonl")
                events = list(events)
            except InterchangeError:
                refused += 1
                continue
            accepted += 1
            assert_same(decode_all(payload(events)), events)
            decode_header(_unpack(_pack(encode_header(header))))
        parent[key] = original  # type: ignore[index]
    assert accepted and refused


JSON_HOSTILE = st.one_of(
    st.sampled_from(
        [
            "null",
            "true",
            "-1",
            "0",
            "-5",
            "9223372036854775808",
            "18446744073709551616",
            "1e308",
            "1e999",
            "-0.0",
            "1.5",
            '""',
            '"x"',
            '"\\u0000"',
            "[]",
            "{}",
            '{"$bytes":"AA=="}',
            '{"$float":"7ff8000000000001"}',
            '{"$map":[[1,2]]}',
            '{"$ext":[5,"AA=="]}',
            '{"$str":"2IA="}',
            "[" * 150 + "]" * 150,
            "[" * 2000 + "]" * 2000,
            "9" * 5000,
            "NaN",
            "Infinity",
            '{"kind":"header"}',
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
)


@st.composite
def jsonl_files(draw: st.DrawFn) -> str:
    """The interchange text of a generated recording with one JSON value replaced by hostile text."""
    events = draw(event_lists(max_size=5))
    lines = [json.dumps(header_to_json(Header(match_id="m")))] + [json.dumps(event_to_json(e)) for e in events]
    if draw(st.booleans()):
        target = draw(st.integers(0, len(lines) - 1))
        line = lines[target]
        # replace one value: the text after a ":" up to the next "," or "}" (crude but reaches every field)
        cuts = [i for i, c in enumerate(line) if c == ":"]
        if cuts:
            start = draw(st.sampled_from(cuts)) + 1
            end = start
            while end < len(line) and line[end] not in ",}":
                end += 1
            line = line[:start] + draw(JSON_HOSTILE) + line[end:]
        else:
            line = draw(JSON_HOSTILE)
        lines[target] = line
    else:
        lines.insert(draw(st.integers(1, len(lines))), draw(JSON_HOSTILE | st.text(max_size=30)))
    return "\n".join(lines) + "\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jsonl_files())
def test_fuzz_jsonl_lines_import_or_raise_interchange_error(text: str) -> None:
    """Every line JSON Lines import accepts encodes into a chunk that the chunk decoder accepts back,
    unchanged (the two doors agree); everything else is InterchangeError naming a line."""
    try:
        header, events = read_jsonl(io.BytesIO(text.encode("utf-8", "surrogatepass")), "f.jsonl")
        events = list(events)
    except InterchangeError as exc:
        assert exc.path == "f.jsonl" and exc.line >= 1
        return
    assert_same(decode_all(payload(events)), events)
    decode_header(_unpack(_pack(encode_header(header))))


def test_read_events_of_a_file_written_from_an_import(tmp_path: Path) -> None:
    src = ROOT / "fixtures" / "recordings" / "example.jsonl"
    out = tmp_path / "example.nkrec"
    assert import_jsonl(src, out) == len(read_events(out)[1])
