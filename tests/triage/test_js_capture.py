"""The nakama-js crash capture helper (recorder/capture/clients/nakama_js_crash.mjs) on the real
@heroiclabs/nakama-js client against `nakama-replay serve`: its reports fit the client report schema,
carry the socket, match, op code and RPC fields, and link downstream of the server crash that closed the
sockets once ingested with serve's recording.

Needs node and ``npm ci`` in tests/js (``.ci/run`` does it); skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from replay.live._server import ServerConfig, start_nakama_server
from replay.triage import TriageStore, ingest, parse_client_report
from tests.common.paths import ROOT

JS = ROOT / "tests" / "js"
ECHO = str(ROOT / "fixtures" / "handlers" / "wire_echo.py")

if shutil.which("node") is None:
    pytest.skip("node is not installed (CI installs it; see .ci/run)", allow_module_level=True)
if not (JS / "node_modules" / "@heroiclabs" / "nakama-js").is_dir():
    pytest.skip("npm packages missing: run `npm ci` in tests/js (.ci/run does)", allow_module_level=True)


async def _capture(out_dir: Path) -> dict:
    server, app = await start_nakama_server(ServerConfig(ECHO, out_dir=str(out_dir)))
    try:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(JS / "triage_capture.mjs"),
            str(server.port),
            cwd=JS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 90)
        except TimeoutError:
            proc.kill()
            raise
    finally:
        await app.close()
        await server.close()
    assert out, f"node printed nothing; stderr: {err.decode()[-2000:]}"
    result = json.loads(out)
    assert "error" not in result, result["error"] + "\n" + err.decode()[-2000:]
    return result


def test_capture_helper_reports_with_the_real_client(tmp_path: Path) -> None:
    result = asyncio.run(_capture(tmp_path))
    match_id = result["match_id"]
    reports = {r["handler"]: r for r in result["reports"]}
    assert sorted(reports) == ["ondisconnect", "onmatchdata", "rpc:echo"]
    parsed = {h: parse_client_report(r) for h, r in reports.items()}  # every report fits the schema
    data = reports["onmatchdata"]
    assert (data["op_code"], data["op_code_size"], data["socket_state"], data["presence_count"], data["match_id"]) == (
        7,
        len('{"x":1}'),
        "connected",
        2,
        match_id,
    )
    assert data["error_type"] == "TypeError" and "length" in data["error_message"]
    assert data["session_valid"] is True and data["reconnecting"] is False and data["ms_since_last_message"] >= 0
    assert parsed["onmatchdata"].signature.frames[0] == "triage_capture.mjs:ana.onmatchdata"
    rpc = reports["rpc:echo"]
    assert (rpc["rpc_id"], rpc["rpc_error"], rpc["rpc_unexpected_shape"]) == ("echo", False, True)
    gone = reports["ondisconnect"]
    assert gone["reconnecting"] is True and gone["match_id"] == match_id and gone["op_code"] == 7
    assert all("token" not in json.dumps(r) for r in result["reports"])
    # serve recorded the match with its crash marker: the reconnect crash is downstream of it
    lines = tmp_path / "reports.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in result["reports"]))
    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        done = ingest(store, client=[str(lines)], recordings=[str(tmp_path)])
        assert done.bad == [] and done.added == 4
        server_group = [g for g in store.groups() if g["side"] == "server"]
        assert (
            len(server_group) == 1
            and server_group[0]["title"] == "RuntimeError in match_loop at wire_echo.py:match_loop"
        )
        # the reconnect crash came after the handler error: downstream of it (by time: serve's clients know no
        # tick). The two earlier reports may link too, within the clock-skew tolerance: the recording's crash
        # time is its tick's nominal time, which a loaded machine runs behind.
        gone_group = next(g for g in store.groups() if g["group"] == parsed["ondisconnect"].group_id)
        assert gone_group["downstream_of"] == [{"group": server_group[0]["group"], "count": 1}]
        link = store.links(gone_group["group"])[0]
        assert link["rule"] == "time" and link["delta_ms"] >= 0
