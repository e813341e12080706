"""Against a real Nakama (opt-in): the capture module inside the server, its log ingested and replayed,
and the fidelity probe compared with the answers recorded from Nakama 3.40.

Set NAKAMA_URL (e.g. http://127.0.0.1:7350), NAKAMA_LOG (the server's JSON log file, read from its end
before the test) and optionally NAKAMA_SERVER_KEY (default "defaultkey"); the server's runtime path must
hold recorder/capture/modules/nkreplay_capture.lua and nkreplay_capture_rec.lua, fixtures/handlers/clock_match.lua,
fixtures/handlers/lean_match.lua, fixtures/handlers/gopher_probe.lua and fixtures/nakama/nkreplay_checks.lua.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from recorder.capture import Ingest, write_match
from recorder.format import LoopCall
from replay.runtime import reproduce
from tests.common.paths import ROOT

NAKAMA_URL = os.environ.get("NAKAMA_URL", "").rstrip("/")
NAKAMA_LOG = os.environ.get("NAKAMA_LOG", "")
SERVER_KEY = os.environ.get("NAKAMA_SERVER_KEY", "defaultkey")

pytestmark = pytest.mark.skipif(
    not (NAKAMA_URL and NAKAMA_LOG),
    reason="needs a real Nakama: set NAKAMA_URL and NAKAMA_LOG (see the module docstring for the modules to deploy)",
)


def _post(path: str, body: object, auth: str) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(
        NAKAMA_URL + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": auth},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _session(device: str) -> str:
    basic = "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
    return _post("/v2/account/authenticate/device?create=true", {"id": device}, basic)["token"]


def _rpc(token: str, name: str, payload: object) -> str:
    return _post(f"/v2/rpc/{name}", json.dumps(payload), "Bearer " + token)["payload"]


def test_clock_match_captured_in_nakama_replays_exactly(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    start = Path(NAKAMA_LOG).stat().st_size
    token = _session(f"nkreplay-live-test-{time.time_ns()}")
    match_id = json.loads(_rpc(token, "nkreplay_create", {"module": "clock_match", "params": {"k": 1}}))["match_id"]
    ws_url = NAKAMA_URL.replace("http", "ws", 1) + "/ws?format=json&token=" + token
    with connect(ws_url, open_timeout=10, close_timeout=2) as ws:
        ws.send(json.dumps({"cid": "1", "match_join": {"match_id": match_id}}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "match" not in json.loads(ws.recv(timeout=5)):
            pass
        for i in range(10):
            data = base64.b64encode(f"hello {i}".encode()).decode()
            ws.send(json.dumps({"match_data_send": {"match_id": match_id, "op_code": "2", "data": data}}))
            time.sleep(0.1)
        ws.send(json.dumps({"match_data_send": {"match_id": match_id, "op_code": "9", "data": "c3RvcA=="}}))
        for _ in range(100):  # until the server closes the socket after the crash (bounded)
            try:
                ws.recv(timeout=3)
            except Exception:  # closed or timed out: either way the match is over
                break
    time.sleep(0.5)  # let the server flush its log
    with open(NAKAMA_LOG, "rb") as f:
        f.seek(start)
        lines = f.read().splitlines()
    ingest = Ingest()
    ingest.feed(lines, NAKAMA_LOG)
    [match] = [m for m in ingest.matches() if m.header.match_id == match_id]
    assert match.problems == [] and match.crash is not None and match.crash.callback == "match_loop"
    clock = str(ROOT / "fixtures" / "handlers" / "clock_match.lua")
    result = reproduce(
        write_match(match, tmp_path, handler=clock), clock
    )  # a header names no handler outside its folder
    assert result.reproduced, result.verdict
    assert result.divergence_count == 0


def test_lean_match_captured_in_nakama_replays_exactly(tmp_path: Path) -> None:
    """The lean mode inside Nakama: moves from a client batched several ticks per line, quiet loops not
    written (ingest infers them), values amid empty ticks (written at once, the ticks after them batched), and
    a crash in an idle tick right after one: its record is in the log before Nakama's crash line, and the
    recording ingested from the log reproduces the crash with every input."""
    from websockets.sync.client import connect

    crash_at = 56  # one tick after a value that waits in memory: only the crash makes it written at once
    start = Path(NAKAMA_LOG).stat().st_size
    token = _session(f"nkreplay-live-lean-{time.time_ns()}")
    params = {"crash_at": crash_at}
    match_id = json.loads(_rpc(token, "nkreplay_create", {"module": "lean_match", "params": params}))["match_id"]
    ws_url = NAKAMA_URL.replace("http", "ws", 1) + "/ws?format=json&token=" + token
    with connect(ws_url, open_timeout=10, close_timeout=2) as ws:
        ws.send(json.dumps({"cid": "1", "match_join": {"match_id": match_id}}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "match" not in json.loads(ws.recv(timeout=5)):
            pass
        for i in range(12):
            data = base64.b64encode(f"move {i}".encode()).decode()
            op = "2" if i % 4 == 0 else "1"
            ws.send(json.dumps({"match_data_send": {"match_id": match_id, "op_code": op, "data": data}}))
            time.sleep(0.05)
        # the match sends nothing: wait for Nakama's crash line of this match in the log (bounded)
        crash_line = b"Stopping match after error from match_loop execution"
        mid = match_id.split(".", 1)[0].encode()
        deadline = time.monotonic() + 60
        lines: list[bytes] = []
        while time.monotonic() < deadline:
            with open(NAKAMA_LOG, "rb") as f:
                f.seek(start)
                lines = f.read().splitlines()
            if any(crash_line in line and mid in line for line in lines):
                break
            time.sleep(0.5)
    ingest = Ingest()
    ingest.feed(lines, NAKAMA_LOG)
    [match] = [m for m in ingest.matches() if m.header.match_id == match_id]
    assert match.problems == [] and ingest.stats.damaged == []
    assert match.header.tags["capture_mode"] == "lean"
    assert match.crash is not None and (match.crash.callback, match.crash.tick) == ("match_loop", crash_at)
    # several ticks per line, and the crashing tick's record (with its error) before Nakama's crash line
    mine = [
        (i, json.loads(json.loads(line)["msg"].split(" ", 1)[1]))
        for i, line in enumerate(lines)
        if b'"nkreplay:1 {' in line and match_id.encode() in line
    ]
    crash_index = next(i for i, line in enumerate(lines) if b"Stopping match after error" in line and mid in line)
    last_index, last = mine[-1]
    assert last_index < crash_index and last["k"] == "loops" and last["t"] + last["n"] - 1 == crash_at
    assert f"lean crash at tick {crash_at}" in last["x"][-1]["e"]
    assert len(mine) < crash_at // 5
    loops = [e for e in match.events if isinstance(e, LoopCall)]
    assert [e.tick for e in loops] == list(range(loops[0].tick, crash_at + 1))
    assert sum(len(e.messages) for e in loops) == 12
    # math.random inside a match VM is the capture's (Nakama gives each match a VM of its own with writable
    # stdlib tables; read-only globals apply only to its pooled RPC VMs): each draw is recorded at its tick,
    # with the value Nakama's crash line names
    draws = [int(v) for v in re.search(r"draws ([0-9 ]+)", match.crash.error).group(1).split()]  # type: ignore[union-attr]
    recorded = [(e.tick, n.value) for e in loops for n in e.nondeterministic if n.source == "random"]
    assert [tick for tick, _ in recorded] == [40, 50, 55, crash_at]
    assert [int(value) for _, value in recorded] == draws
    handler = str(ROOT / "fixtures" / "handlers" / "lean_match.lua")
    result = reproduce(write_match(match, tmp_path, handler=handler), handler)
    assert result.reproduced, result.verdict
    assert result.crash is not None and result.crash.tick == crash_at
    assert match.crash.error.split(": ", 1)[1] == result.crash.error.split(": ", 1)[1]  # moves, times, draws


def test_fidelity_probe_answers_like_nakama_340() -> None:
    token = _session(f"nkreplay-live-probe-{time.time_ns()}")
    match_id = json.loads(_rpc(token, "nkreplay_create", {"module": "gopher_probe", "params": {}}))["match_id"]
    answers = dict(json.loads(_rpc(token, "nkreplay_signal", {"match_id": match_id, "data": "probe"})))
    recorded = dict(json.loads((ROOT / "tests" / "data" / "gopher_probe_nakama_3.40.json").read_text()))
    path_free = {k: v for k, v in recorded.items() if "gopher_probe.lua:" not in str(v)}
    assert {k: answers.get(k) for k in path_free} == path_free
