"""`replay --compare` on handlers that put presences and ids on the wire (issue #14, items 5 and 6).

``fixtures/handlers/presence_echo.lua`` broadcasts the presence tables it is given (their ``node`` and
``reason``), echoes senders, and looks players up by the user id a client sends. A recording made in-process
on node ``nakama1`` is replayed into ``nakama-replay serve`` running on another node name, the way a
recording from production meets a developer's server: the recorded node, user, session and match ids must
be mapped to the live ones for the comparison, and the ids inside message payloads for the handler.
Servers bind 127.0.0.1 on a free port; every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
from pathlib import Path

import pytest

from recorder.format import Header, LoopCall, PresenceReason, read_events
from replay.live import (
    LiveOptions,
    ServerConfig,
    analyse,
    load_script,
    run_live,
    script_from_events,
    start_nakama_server,
)
from replay.live._feed import map_ids_in_json
from replay.report import format_live
from replay.runtime import MatchDriver
from tests.common.paths import ROOT
from tests.common.stalls import StallWatch, require_timely, timely

pytest.importorskip("lupa", reason="presence_echo.lua needs lupa")

ECHO = ROOT / "fixtures" / "handlers" / "presence_echo.lua"
LIVE_NODE = "devbox7"


PRESENCE_RATE = 10  # Hz


def make_presence_recording(path: Path, rate: int = 10) -> Path:
    """alice and bob join; alice's sender table is echoed; alice names bob by his user id (op 2); cho joins
    late and kicks himself (op 3: a leave with reason 3); bob's socket drops (reason 4). 9 ticks at 10 Hz, no
    crash."""
    params = {"tick_rate": rate}
    header = Header(
        match_id="8d1c2b3a-4e5f-4a6b-9c7d-0e1f2a3b4c5d.nakama1",
        module="presence_echo",
        tick_rate=rate,
        node="nakama1",
        source="capture",
        params=params,
        handler=str(ECHO),
    )
    with MatchDriver(str(ECHO), header, capture=str(path)) as d:
        d.init(params)
        alice, bob = d.join("alice"), d.join("bob")
        d.tick()
        d.send(alice, 1)
        d.tick()
        d.send(alice, 2, json.dumps({"id": bob.user_id}))
        d.tick(2)
        cho = d.join("cho")
        d.tick()
        d.send(cho, 3)
        d.tick(2)
        d.leave(bob, PresenceReason.DISCONNECT)
        d.tick(2)
    return path


async def _replay(rec: Path, tmp: Path, watch: StallWatch | None = None, **options):  # type: ignore[no-untyped-def]
    server, app = await start_nakama_server(ServerConfig(str(ECHO), out_dir=str(tmp / "serve"), node=LIVE_NODE))
    try:
        script = load_script(rec)
        async with watch or contextlib.nullcontext():
            live = await run_live(
                script,
                LiveOptions(
                    nakama=f"http://127.0.0.1:{server.port}", out_dir=str(tmp / "wire"), tail_ticks=2, **options
                ),
            )
    finally:
        await app.close()
        await server.close()
    return script, live


def run(coro, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The presence match replayed live, run again while the machine stalled it (tests/common/stalls.py)."""
    tmp = tmp_path_factory.mktemp("presence")
    rec = make_presence_recording(tmp / "presence.nkrec", rate=PRESENCE_RATE)

    async def replay(attempt: int):  # type: ignore[no-untyped-def]
        watch = StallWatch()
        script, live = await _replay(rec, tmp / f"run{attempt}", watch)
        return (script, live), watch.worst

    (script, live), stall = timely(replay, PRESENCE_RATE)
    return rec, script, live, stall


def _why(report) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(report.to_json(), indent=1, default=str)[:4000]


def test_presence_tables_node_names_and_payload_ids_compare_equal_live(mapped) -> None:  # type: ignore[no-untyped-def]
    _rec, script, live, stall = mapped
    assert live.match_id.endswith("." + LIVE_NODE) and script.nodes == frozenset({"nakama1"})
    report = analyse(script, live)
    why = _why(report)
    assert report.outcome == "completed" and report.reproduced, why
    require_timely(stall, PRESENCE_RATE)  # two leaves in one loop: their order is exact only without a stall
    # join broadcasts carry {"node": ..., "reason": 0, user/session ids}; loop echoes the sender table; the
    # lookup by user id answers with bob's session: all equal once recorded ids and nodes are mapped
    assert report.mismatch is None and report.matched == report.deliveries > 10, why
    assert report.compare_scope == "all" and report.exit_code == 0, why
    assert report.payload_ids == {"enabled": True, "payloads": 1, "ids": 1, "unmapped": []}, why
    assert report.conclusion.startswith("REPRODUCED: ran to the end, as recorded; the broadcasts match"), why
    # the live handler found bob by the id alice sent: its answer names bob's live session
    bob_live = next(s for k, s in live.sockets.items() if script.actors[k].label == "bob")
    op13 = [
        json.loads(base64.b64decode(obj["match_data"]["data"]))
        for _, obj in bob_live.received
        if obj.get("match_data", {}).get("op_code") == "13"
    ]
    assert op13 == [{"id": bob_live.user_id, "session": bob_live.session_id}]


def test_node_names_are_what_made_the_presence_tables_match(mapped) -> None:  # type: ignore[no-untyped-def]
    """Without the node mapping the same live run differs at the first presence table."""
    _, script, live, stall = mapped
    require_timely(stall, PRESENCE_RATE)  # else the first difference may be a stall's, not the node's
    blind = dataclasses.replace(script, nodes=frozenset())
    report = analyse(blind, live)
    assert report.mismatch is not None and "data differs" in report.mismatch.why and '"node"' in report.mismatch.why
    assert report.exit_code == 1 and report.conclusion.startswith(
        "DID NOT REPRODUCE: ran to the end, as recorded; but the broadcasts differ: tick "
    )


def test_unmapped_payload_ids_crash_the_live_handler(mapped, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--no-map-payload-ids: alice's {"id": <recorded bob>} names nobody live, and the handler raises."""
    rec, _, _, _ = mapped
    script, live = run(_replay(rec, tmp_path, map_payload_ids=False))
    report = analyse(script, live)
    assert report.outcome == "crashed" and not report.reproduced and report.exit_code == 1, _why(report)
    assert report.payload_ids["enabled"] is False and report.payload_ids["payloads"] == 0
    assert any("--no-map-payload-ids" in n for n in report.notes)


def test_a_recording_without_outcomes_has_nothing_to_compare(mapped, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same live run against the recording stripped of its outcomes: no false "extra" mismatches."""
    rec, _, live, _ = mapped
    header, events = read_events(rec)
    stripped = [dataclasses.replace(e, outcome=None) if hasattr(e, "outcome") else e for e in events]
    script = script_from_events(str(rec), header, stripped)
    assert script.compare_until == -1 and all(d == [] for d in script.deliveries.values())
    report = analyse(script, live)
    assert report.compare_scope == "nothing" and report.mismatch is None and report.received == 0
    assert report.exit_code == 0
    assert report.conclusion == (
        "REPRODUCED: ran to the end, as recorded; broadcasts NOT compared: the recording holds"
        " no call outcomes, so nothing it says about broadcasts could be compared"
    )
    text = format_live(report)
    assert "nothing to compare" in text and text.rstrip().splitlines()[-1] == report.conclusion

    # outcomes up to the loop of tick 3 only: ticks 0..3 are compared, the rest said not to be
    partial = [dataclasses.replace(e, outcome=None) if hasattr(e, "outcome") and e.tick > 3 else e for e in events]
    script = script_from_events(str(rec), header, partial)
    report = analyse(script, live)
    assert report.compare_scope == "until" and report.compare_until == 3 and report.mismatch is None, _why(report)
    assert 0 < report.matched == report.deliveries and report.not_compared > 0
    assert "up to tick 3" in report.conclusion and report.exit_code == 0


def test_the_last_line_always_agrees_with_the_exit_code(mapped) -> None:  # type: ignore[no-untyped-def]
    """A crash-free end as recorded with a broadcast that differs: exit 1, and the last line says why."""
    _, script, live, _ = mapped
    key = next(k for k, a in script.actors.items() if a.label == "alice")
    deliveries = dict(script.deliveries)
    first = deliveries[key][0]
    deliveries[key] = [dataclasses.replace(first, data=b'{"cb":"tampered"}'), *deliveries[key][1:]]
    report = analyse(dataclasses.replace(script, deliveries=deliveries), live)
    assert report.reproduced and report.diverged and report.exit_code == 1
    last = format_live(report).rstrip().splitlines()[-1]
    assert last == report.conclusion and last.startswith("DID NOT REPRODUCE: ran to the end, as recorded; but the")
    assert report.to_json()["exit_code"] == 1 and report.to_json()["conclusion"] == last


def test_map_ids_in_json_touches_json_text_only() -> None:
    ids = {
        "2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c": "aaaaaaaa-0000-4000-8000-000000000001",
        "m-rec.nakama1": "m-live.devbox7",
        "m-rec": "m-live",
    }
    data = b'{"id": "2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c", "m": "m-rec.nakama1", "n": 1}'
    out, found = map_ids_in_json(data, ids)
    assert json.loads(out) == {"id": "aaaaaaaa-0000-4000-8000-000000000001", "m": "m-live.devbox7", "n": 1}
    assert sorted(found) == ["2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c", "m-rec", "m-rec.nakama1"]
    binary = b"\x00" + b"2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c"
    assert map_ids_in_json(binary, ids) == (binary, [])  # not JSON: as recorded
    text = b"hello 2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c"
    assert map_ids_in_json(text, ids) == (text, [])
    assert map_ids_in_json(b"", ids) == (b"", [])


def test_loop_calls_without_outcomes_end_the_compared_ticks() -> None:
    header = Header(match_id="m.nakama1", tick_rate=10)
    from recorder.format import InitCall, JoinAttemptCall, JoinCall, Outcome, Presence

    p = Presence("2a1f0c9e-4b7d-4e8a-9c3b-1d2e3f4a5b6c", "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918", "alice", "nakama1")
    o = Outcome()
    calls = [
        InitCall({}, outcome=Outcome(tick_rate=10)),
        JoinAttemptCall(0, p, {}, outcome=Outcome(accept=True)),
        JoinCall(0, (p,), outcome=o),
        LoopCall(0, (), outcome=o),
        LoopCall(1, (), outcome=o),
        LoopCall(2, ()),
    ]
    script = script_from_events("x", header, calls)
    assert script.compare_until == 1 and "1 of 5 recorded calls have no outcome" in script.uncompared
    assert script_from_events("x", header, calls[:-1]).compare_until is None


# -- into a real Nakama (only when NAKAMA_URL is set) -------------------------------------------------------

NAKAMA_URL = os.environ.get("NAKAMA_URL", "")


@pytest.mark.skipif(
    not NAKAMA_URL,
    reason="set NAKAMA_URL (and NAKAMA_SERVER_KEY) to replay into a real Nakama whose runtime"
    " path holds fixtures/handlers/presence_echo.lua and fixtures/nakama/replay_rpcs.lua",
)
def test_presence_tables_and_payload_ids_in_a_real_nakama(tmp_path: Path) -> None:
    """Checked against Nakama 3.40: match_join presences carry reason 0, a kick's leave 3, a dropped socket's
    4 (the recorded tables, made in-process, equal the live ones once nodes and ids are mapped), and the
    lookup by a recorded user id finds the live player only when payload ids are mapped."""
    rec = make_presence_recording(tmp_path / "presence.nkrec")
    options = dict(
        nakama=NAKAMA_URL,
        server_key=os.environ.get("NAKAMA_SERVER_KEY", "defaultkey"),
        create_rpc="create_presence_echo",
        tail_ticks=2,
    )
    script = load_script(rec)
    live = run(run_live(script, LiveOptions(out_dir=str(tmp_path / "a"), **options)))
    report = analyse(script, live)
    why = _why(report)
    assert report.outcome == "completed" and report.exit_code == 0, why
    assert report.mismatch is None and report.matched == report.deliveries > 10, why
    reasons = sorted(
        (body["cb"], p["reason"])
        for s in live.sockets.values()
        for _, obj in s.received
        if (body := _body(obj)) and body.get("cb") in ("join", "leave")
        for p in body["ps"]
    )
    assert set(reasons) == {("join", 0), ("leave", 3), ("leave", 4)}, reasons

    script = load_script(rec)
    live = run(run_live(script, LiveOptions(out_dir=str(tmp_path / "b"), map_payload_ids=False, **options)))
    report = analyse(script, live)
    assert report.outcome == "crashed" and report.exit_code == 1, _why(report)


def _body(obj: dict) -> dict | None:
    md = obj.get("match_data")
    if not isinstance(md, dict) or not md.get("data"):
        return None
    try:
        body = json.loads(base64.b64decode(md["data"]))
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
