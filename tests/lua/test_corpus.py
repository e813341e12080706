"""Module shapes of public Nakama Lua modules (fixtures/lua_corpus): functions and closures in the state,
``require`` of sibling folders, globals shared between modules, tables pretty-printed into logs, storage
with bad values, a module lacking a callback. Each runs through the replay runtime as Nakama would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.capture import write_match
from recorder.format import Header, state_digest
from replay.diff import diff_determinism
from replay.errors import HandlerLoadError
from replay.lua import LuaHandler, check_pairs_order
from replay.runtime import MatchDriver, reproduce
from tests.capture.test_lua_capture import ingest, nakama_log
from tests.common.paths import ROOT

CORPUS = ROOT / "fixtures" / "lua_corpus"
HEADER = Header(match_id="c0ffee00-0000-4000-8000-0000000000c1.n1", node="n1", tick_rate=10)


def _play_closures(d: MatchDriver) -> None:
    d.init({})
    alice, bob = d.join("alice"), d.join("bob")
    for _ in range(4):
        d.tick()
        d.send(alice, 1, "hit")
        d.send(bob, 1, "hit")
        d.tick()


def _record_closures(path: Path) -> Path:
    header = Header(match_id=HEADER.match_id, node="n1", tick_rate=10, handler=str(CORPUS / "closures.lua"))
    with MatchDriver(LuaHandler(CORPUS / "closures.lua"), header, capture=str(path), snapshot_every=1) as d:
        _play_closures(d)
    return path


# -- functions and closures in the state ------------------------------------------------------------------


def test_functions_in_state_have_stable_gopher_shaped_text_and_digests(tmp_path: Path) -> None:
    rec = _record_closures(tmp_path / "closures.nkrec")
    result = reproduce(rec, str(CORPUS / "closures.lua"))
    assert result.crash is not None and result.crash.callback == "match_loop"
    assert result.reproduced, result.verdict
    assert result.divergence_count == 0  # digests of a state holding closures agree call after call
    assert re.search(r"players table table: 0xc000[0-9a-f]{6}$", result.crash.error)
    h = LuaHandler(CORPUS / "closures.lua")
    with MatchDriver(h, HEADER) as d:
        d.init({})
        reply = d.signal("x").outcome.reply
        assert reply == d.signal("x").outcome.reply  # the same closure, the same address
        value = h.state_value(d.runtime.state)
    assert re.fullmatch(
        r"function: 0xc000[0-9a-f]{6} \{\"name\":\"default\",\"on_hit\":\"function: 0xc000[0-9a-f]{6}\"\}", reply
    )
    assert value["next_id"].startswith("function: 0xc000")


def test_nakamas_addresses_are_masked_in_digests_and_broadcasts(tmp_path: Path) -> None:
    # the capture module inside "Nakama": the same match, its log lines with other (Go heap) addresses
    wrapper = tmp_path / "closures_captured.lua"
    wrapper.write_text(
        'return require("nkreplay_capture").wrap(require("closures"), { module = "closures", snapshot_every = 1 })\n'
    )
    with MatchDriver(LuaHandler(wrapper, module_path=[str(CORPUS)]), HEADER) as d:
        _play_closures(d)
        lines = nakama_log(d)
    relocated = [re.sub(r"0xc000([0-9a-f]{6})", lambda m: "0xc0002" + m.group(1)[::-1][:5], line) for line in lines]
    assert relocated != lines and any("function: 0xc0002" in line for line in relocated)
    _, [match] = ingest(relocated)
    path = write_match(match, tmp_path, handler=str(CORPUS / "closures.lua"))
    result = reproduce(path, str(CORPUS / "closures.lua"))
    assert result.reproduced, result.verdict
    assert result.divergence_count == 0
    assert state_digest({"f": "function: 0xc0001a2b40"}) == state_digest({"f": "function: 0xc000010040"})
    assert state_digest({"f": "function: 0xc0001a2b40"}) != state_digest({"f": "table: 0xc000010040"})


def test_determinism_check_does_not_blame_closures(tmp_path: Path) -> None:
    rec = _record_closures(tmp_path / "closures.nkrec")
    report = diff_determinism(str(rec), str(CORPUS / "closures.lua"), hash_seeds=None)
    assert not report.diverged, report
    assert report.calls_compared > 10
    pairs = check_pairs_order(rec, CORPUS / "closures.lua")  # the handler never calls pairs
    assert not pairs.sensitive, pairs.describe()


def test_reproduce_json_is_byte_identical_across_processes(tmp_path: Path) -> None:
    rec = _record_closures(tmp_path / "closures.nkrec")
    cmd = [
        sys.executable,
        "-m",
        "replay.cli",
        "reproduce",
        str(rec),
        "--handler",
        str(CORPUS / "closures.lua"),
        "--json",
    ]
    runs = [subprocess.run(cmd, capture_output=True, cwd=tmp_path, timeout=300) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    logs = json.loads(runs[0].stdout)["logs"]
    assert any(re.search(r"players: table: 0xc000\w+ rules: table: 0xc000\w+", entry["msg"]) for entry in logs)


# -- sibling folders, globals, pretty-printed logs, storage with bad values, a missing callback -------------


def test_sibling_require_globals_pretty_log_and_storage_errors() -> None:
    h = LuaHandler(CORPUS / "sibling" / "main.lua")
    with MatchDriver(h, HEADER) as d:
        d.init({})
        d.join("alice")
        reply = d.signal("storage").outcome.reply
        logs = [msg for _, msg in d.runtime.logger.lines]
        state = h.state_value(d.runtime.state)
    assert state["version"] == "1.4.2"  # the global lib/util.lua set, read by main.lua
    assert any(
        re.search(r"hit = function: 0xc000\w+,\n\s+hp = 3", m) and "ratio = 0.3333333333333333" in m for m in logs
    ), logs
    assert reply.splitlines() == [  # Nakama 3.40's tableToStorageOpWrites wording
        "bad argument #1 to (anonymous) (expects value to be table)",
        "bad argument #1 to (anonymous) (expects value to be supplied)",
        "bad argument #1 to (anonymous) (expects collection to be string)",
        "bad argument #1 to (anonymous) (expects user_id to be a valid ID)",
    ]


def test_a_module_without_match_signal_is_refused() -> None:
    with pytest.raises(HandlerLoadError, match="match_signal not found or not a function"):
        LuaHandler(CORPUS / "no_signal.lua")


def test_goto_and_labels_run_as_in_gopher_lua(tmp_path: Path) -> None:
    # gopher-lua (Nakama) compiles Lua 5.2's goto and labels, and so does LuaJIT
    src = (
        (CORPUS / "no_signal.lua")
        .read_text()
        .replace(
            "return M",
            "function M.match_signal(c, d, t, s, x)\n  local n = 0\n  ::again::\n  n = n + 1\n"
            "  if n < 3 then goto again end\n  return s, x .. n\nend\nreturn M",
        )
    )
    (tmp_path / "uses_goto.lua").write_text(src)
    with MatchDriver(LuaHandler(tmp_path / "uses_goto.lua"), HEADER) as d:
        d.init({})
        step = d.signal("n=")
        assert step.crash is None
        assert step.outcome.reply == "n=3"
