"""Crash triage end to end on the bundled demo data (fixtures/triage), against SQLite always and against a
throwaway PostgreSQL cluster when initdb/pg_ctl are here (tests/triage/conftest.py; skipped with the reason
otherwise): grouping, counts, filters, links downstream of the server handler error, idempotent and
concurrent ingest with real processes, fix marks and regressions, bad input, reproduce --group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from replay.cli import main
from replay.errors import StoreError, UnknownGroup
from replay.triage import GroupFilter, LinkRules, TriageStore, ingest, parse_client_report
from replay.triage._sources import RecordingInfo, read_recording
from tests.common.paths import ROOT

DEMO = ROOT / "fixtures" / "triage"
RECORDINGS = ROOT / "fixtures" / "recordings"
LUA_REC = RECORDINGS / "arena-lua-reconnect-crash.nkrec"
RECORDED_MATCH = "e3a9c1d2-6b7f-4e21-a0c8-5d94f2b7e613"
DEMO_ARGS = [
    "--client-reports",
    str(DEMO / "client-reports.jsonl"),
    "--sentry",
    str(DEMO / "sentry-events.json"),
    "--server-log",
    str(DEMO / "nakama.log"),
    "--recordings",
    str(RECORDINGS),
]


def ingest_demo(store: TriageStore):  # type: ignore[no-untyped-def]
    return ingest(
        store,
        client=[str(DEMO / "client-reports.jsonl")],
        sentry=[str(DEMO / "sentry-events.json")],
        logs=[str(DEMO / "nakama.log")],
        recordings=[str(RECORDINGS)],
    )


def by_title(groups: list[dict], text: str) -> dict:
    found = [g for g in groups if text in g["title"]]
    assert len(found) == 1, [g["title"] for g in groups]
    return found[0]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_groups_counts_versions_op_codes_and_links(store_target: str) -> None:
    with TriageStore.open(store_target) as store:
        report = ingest_demo(store)
        assert report.bad == [] and report.bad_recordings == []
        # 17 client reports + 4 Sentry events (one is a client report sent twice) + 4 match errors + 3 RPC
        # errors + 3 recordings with a crash marker (one is the logged crash of match e3a9c1d2 again; one is the
        # TypeScript arena's)
        assert report.added == 29 and report.duplicates == 2
        groups = store.groups()
        server = by_title(groups, "lua:index nil in match_loop at arena.lua")
        client = by_title(groups, "TypeError in ondisconnect at arena-client.js:rejoinMatch")
        unity = by_title(groups, "NullReferenceException in Connected at ArenaClient.cs:ArenaClient.RestoreRoster")
        assert (server["side"], server["count"], server["matches"], server["recordings"]) == ("server", 4, 4, 1)
        assert client["count"] == 9 and client["matches"] == 4
        assert client["versions"] == [{"value": "1.4.0", "count": 6}, {"value": "1.3.2", "count": 3}]
        assert client["op_codes"] == [{"value": 10, "count": 9}]
        assert client["socket_states"] == [{"value": "reconnecting", "count": 9}]
        # every client report of the crashed matches is downstream of the server handler error
        assert client["downstream_of"] == [{"group": server["group"], "count": 9}]
        assert unity["downstream_of"] == [{"group": server["group"], "count": 3}]
        assert server["client_symptoms"] == [
            {"group": client["group"], "count": 9},
            {"group": unity["group"], "count": 3},
        ]
        # the recorded match: reports with and without the .node suffix link to the logged crash at tick 58
        links = [x for x in store.links(client["group"]) if x["match_key"] == RECORDED_MATCH]
        ids = {r["uid"]: r["match_id"] for r in store.reports(client["group"])}
        assert {ids[x["client_uid"]].endswith(".nakama1") for x in links} == {True, False}
        assert {x["server_uid"] for x in links} == {f"match:{RECORDED_MATCH}:match_loop:58"}
        assert {x["rule"] for x in links} == {"tick", "time"}  # clients that kept the tick, and those that did not
        # the get_loadout crashes whose RPC returned an error follow Nakama's RPC error 40 ms before them (rule
        # rpc); the two that got an unexpected shape (no error) stay unlinked, and so do the storage crashes
        loadout = by_title(groups, "TypeError in rpc:get_loadout at loadout.js:applyLoadout")
        rpc_server = by_title(groups, "lua:concatenate in rpc:get_loadout at loadout.lua")
        assert loadout["rpcs"] == [{"value": "get_loadout", "count": 5}]
        assert loadout["downstream_of"] == [{"group": rpc_server["group"], "count": 3}]
        assert rpc_server["client_symptoms"] == [{"group": loadout["group"], "count": 3}]
        rpc_links = store.links(loadout["group"])
        assert {(x["rule"], x["rpc_id"], x["delta_ms"], x["match_key"]) for x in rpc_links} == {
            ("rpc", "get_loadout", 40, "")
        }
        reported = {r["uid"]: r["rpc_error"] for r in store.reports(loadout["group"])}
        assert sorted(reported[x["client_uid"]] for x in rpc_links) == [1, 1, 1]
        profile = by_title(groups, "Error in storage:profiles at profile.js:loadProfile")
        assert profile["downstream_of"] == []
        # counts are sorted, most first
        assert [g["count"] for g in groups] == sorted((g["count"] for g in groups), reverse=True)


def _rpc_log(path: Path, times: list[str]) -> str:
    lines = [
        {
            "level": "error",
            "ts": ts,
            "caller": "server/runtime_lua.go:1400",
            "msg": "Runtime RPC function caused an error",
            "trace_id": f"t{i}",
            "id": "claim",
            "error": "/nakama/data/modules/claim.lua:9: attempt to index a nil value",
        }
        for i, ts in enumerate(times)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def _rpc_report(uid: str, ts: str, *, error: bool = True) -> dict:
    return {
        "id": uid,
        "timestamp": ts,
        "rpc_id": "claim",
        "rpc_error": error,
        "handler": "rpc:claim",
        "error_type": "TypeError",
        "error_message": "reward is null",
    }


def test_rpc_links_in_either_order_closest_error_within_the_window(store_target: str, tmp_path: Path) -> None:
    # two Nakama RPC errors of `claim` one second apart; client reports after them, ingested BEFORE the log
    log = _rpc_log(tmp_path / "n.log", ["2026-01-01T10:00:00.000Z", "2026-01-01T10:00:01.000Z"])
    reports = tmp_path / "c.jsonl"
    reports.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                _rpc_report("a", "2026-01-01T10:00:00.300Z"),  # 300 ms after the first error, 700 before the second
                _rpc_report("b", "2026-01-01T10:00:01.200Z"),  # 200 ms after the second
                _rpc_report("c", "2026-01-01T10:00:15.000Z"),  # 14 s after: outside the 10 s window
                _rpc_report("d", "2026-01-01T10:00:01.100Z", error=False),  # the RPC did not return an error
            ]
        )
    )
    with TriageStore.open(store_target) as store:
        assert ingest(store, client=[str(reports)]).links == 0  # no server error known yet
        assert ingest(store, logs=[log]).links == 2  # the stored reports are linked when the errors arrive
        client = store.groups(GroupFilter(side="client"))[0]["group"]
        first, second = [r["uid"] for r in store.reports(store.groups(GroupFilter(side="server"))[0]["group"])]
        got = {x["client_uid"]: (x["server_uid"], x["delta_ms"], x["rule"]) for x in store.links(client)}
        assert got == {"client:a": (first, 300, "rpc"), "client:b": (second, 200, "rpc")}
    with TriageStore.open(str(tmp_path / "wide.sqlite"), LinkRules(link_rpc_ms=20_000)) as store:
        ingest(store, logs=[log])  # this time the errors first: the reports are linked as they arrive
        assert ingest(store, client=[str(reports)]).links == 3  # c too, with a 20 s window; never d


def test_filters_narrow_the_groups(store_target: str) -> None:
    with TriageStore.open(store_target) as store:
        ingest_demo(store)
        everything = store.groups()
        assert len(everything) == 8
        titles = lambda flt: sorted(g["title"] for g in store.groups(flt))  # noqa: E731
        op10 = store.groups(GroupFilter(op_code=10))
        assert sorted(g["title"] for g in op10) == sorted(
            [
                "TypeError in ondisconnect at arena-client.js:rejoinMatch",
                "NullReferenceException in Connected at ArenaClient.cs:ArenaClient.RestoreRoster",
            ]
        )
        assert titles(GroupFilter(rpc="get_loadout")) == sorted(
            [
                "TypeError in rpc:get_loadout at loadout.js:applyLoadout",
                "lua:concatenate in rpc:get_loadout at loadout.lua",
            ]
        )
        v132 = store.groups(GroupFilter(client_version="1.3.2"))
        assert {g["title"]: g["count"] for g in v132} == {
            "TypeError in rpc:get_loadout at loadout.js:applyLoadout": 5,
            "TypeError in ondisconnect at arena-client.js:rejoinMatch": 3,
        }
        # two filters at once: counted from the reports themselves
        both = store.groups(GroupFilter(op_code=10, client_version="1.4.0", side="client"))
        assert {g["title"]: g["count"] for g in both} == {
            "TypeError in ondisconnect at arena-client.js:rejoinMatch": 6,
            "NullReferenceException in Connected at ArenaClient.cs:ArenaClient.RestoreRoster": 3,
        }
        assert titles(GroupFilter(side="server")) == sorted(
            [
                "lua:index nil in match_loop at arena.lua",
                "lua:concatenate in rpc:get_loadout at loadout.lua",
                "KeyError in match_loop at arena.py:match_loop",
                "js:read property 'pos' in match_loop at index.js:handleInput",
            ]
        )
        late = store.groups(GroupFilter(since_ms=1_764_000_000_000 + 86_000_000))  # the last day: match 3 only
        assert {g["title"]: g["count"] for g in late} == {
            "TypeError in ondisconnect at arena-client.js:rejoinMatch": 2,
            "lua:index nil in match_loop at arena.lua": 1,
        }
        assert store.groups(GroupFilter(op_code=99)) == []


def test_ingest_twice_does_not_double_count(store_target: str) -> None:
    with TriageStore.open(store_target) as store:
        ingest_demo(store)
        before = (store.counts(), store.groups())
        again = ingest_demo(store)
        assert again.added == 0 and again.duplicates == 31 and again.links == 0
        assert (store.counts(), store.groups()) == before


def test_fixed_and_regression(store_target: str, tmp_path: Path) -> None:
    with TriageStore.open(store_target) as store:
        ingest_demo(store)
        client = by_title(store.groups(), "rejoinMatch")["group"]
        marked = store.mark_fixed(client, "1.4.1")
        assert marked["fixed_in"] == "1.4.1" and marked["regressions"] == 0 and not marked["regressed"]
        late = tmp_path / "late.jsonl"
        base = json.loads((DEMO / "client-reports.jsonl").read_text().splitlines()[0])
        rows = [
            dict(base, id="after-fix-1", client_version="1.4.10", timestamp=1_800_000_000_000),
            dict(base, id="old-client", client_version="1.4.0", timestamp=1_800_000_000_500),
        ]
        late.write_text("".join(json.dumps(r) + "\n" for r in rows))
        result = ingest(store, client=[str(late)])
        assert result.added == 2 and result.regressions == 1  # 1.4.10 is after 1.4.1; 1.4.0 clients lack the fix
        g = by_title(store.groups(), "rejoinMatch")
        assert g["regressed"] and g["regressions"] == 1 and g["last_regression_ms"] == 1_800_000_000_000
        # marking the fix at a version already seen counts the stored reports from it on at once
        again = store.mark_fixed(client, "1.3.2")
        assert again["regressions"] == 11
        store.reopen(client)
        g = by_title(store.groups(), "rejoinMatch")
        assert g["fixed_in"] is None and g["regressions"] == 0 and not g["regressed"]


def test_best_recording_prefers_complete_then_shortest_then_newest(tmp_path: Path) -> None:
    def info(name: str, integrity: str, ticks: int, started: int) -> RecordingInfo:
        base = read_recording(str(LUA_REC))
        return RecordingInfo(
            str(tmp_path / name),
            base.match_id,
            integrity,
            ticks,
            ticks,
            started,
            1,
            base.signature,
            "match_loop",
            58,
            "x",
        )

    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        store.add_recordings(
            [
                info("long.nkrec", "complete", 90, 5),
                info("short-old.nkrec", "complete", 40, 1),
                info("short-new.nkrec", "complete", 40, 9),
                info("cut.nkrec", "unsealed", 10, 10),
                info("damaged.nkrec", "damaged", 5, 11),
            ]
        )
        gid = read_recording(str(LUA_REC)).signature.short_hash
        order = [Path(r["location"]).name for r in store.recordings(gid)]
        assert order == ["short-new.nkrec", "short-old.nkrec", "long.nkrec", "cut.nkrec", "damaged.nkrec"]


def test_a_cut_recording_is_indexed_as_incomplete_and_not_picked(tmp_path: Path) -> None:
    data = LUA_REC.read_bytes()
    cut = tmp_path / "cut.nkrec"
    cut.write_bytes(data[: len(data) - 300])
    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        ingest(store, recordings=[str(cut), str(LUA_REC)])
        info = read_recording(str(cut))
        assert info.integrity != "complete"
        best = store.best_recording(read_recording(str(LUA_REC)).signature.short_hash)
        assert best is not None and best["location"] == str(LUA_REC.resolve())


def test_bad_reports_are_listed_and_the_rest_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.loads((DEMO / "client-reports.jsonl").read_text().splitlines()[0])
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(dict(good, id="x1", socket_state="open")),
        json.dumps(dict(good, id="x2", tick="58")),
        json.dumps(dict(good, id="x3", colour="red")),
        json.dumps({k: v for k, v in dict(good, id="x4").items() if k != "timestamp"}),
        json.dumps(dict(good, id="x5", op_code=2**63)),
        "[1, 2]",
    ]
    src = tmp_path / "reports.jsonl"
    src.write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "t.sqlite")
    code, out, _err = cli(capsys, "triage", "ingest", "--db", db, "--client-reports", str(src), "--json")
    assert code == 1  # some skipped, the rest stored: as `nakama-replay ingest` answers
    result = json.loads(out)
    assert result["added"] == 1 and result["exit"] == 1 and result["clean"] is False
    where = [(b["line"], b["field"]) for b in result["bad"]]
    assert where == [
        (2, ""),
        (3, "socket_state"),
        (4, "tick"),
        (5, "colour"),
        (6, "timestamp"),
        (7, "op_code"),
        (8, ""),
    ]
    assert all(b["file"] == str(src) for b in result["bad"])
    code, out, _ = cli(capsys, "triage", "ingest", "--db", db, "--client-reports", str(src))
    assert code == 1 and "skipped    7 bad items:" in out and f"{src}:3: field 'socket_state': one of" in out
    nothing = tmp_path / "nothing.jsonl"
    nothing.write_text("\n".join(lines[1:]) + "\n")
    code, out, _ = cli(capsys, "triage", "ingest", "--db", db, "--client-reports", str(nothing), "--json")
    assert code == 2 and json.loads(out)["exit"] == 2  # not one usable item


def test_damaged_log_lines_are_reported(tmp_path: Path) -> None:
    log = tmp_path / "n.log"
    lines = (DEMO / "nakama.log").read_text().splitlines()
    lines.insert(3, '{"level":"info","msg":"nkreplay:1 {broken')  # one of ours, cut
    lines.insert(4, '{"level":"error","ts":"2025-11-24T16:00:00Z","msg":"Runtime RPC function caused an error","id":7}')
    log.write_text("\n".join(lines) + "\n")
    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        result = ingest(store, logs=[str(log)])
    assert [(e.line, e.field) for e in result.bad] == [(4, ""), (5, "id")]
    assert result.read["match_error"] == 4 and result.read["rpc_error"] == 3


def test_cli_demo_walkthrough(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "demo.sqlite")
    code, out, _ = cli(capsys, "triage", "ingest", "--db", db, *DEMO_ARGS)
    assert code == 0 and "29 new, 2 already stored" in out
    code, out, _ = cli(capsys, "triage", "groups", "--db", db, "--json")
    groups = json.loads(out)["groups"]
    client = by_title(groups, "rejoinMatch")
    code, text, _ = cli(capsys, "triage", "groups", "--db", db, "--side", "client", "--op-code", "10")
    assert (
        code == 0 and "rejoinMatch" in text and "loadout" not in text and "filters    side client, op_code 10" in text
    )
    code, text, _ = cli(capsys, "triage", "show", client["group"][:8], "--db", db)
    assert code == 0 and "downstream of server group:" in text and "arena-lua-reconnect-crash.nkrec" in text
    assert "1.4.0 (6), 1.3.2 (3)" in text and "rule tick" in text
    code, out, _ = cli(capsys, "triage", "show", client["group"], "--db", db, "--json")
    shown = json.loads(out)
    assert shown["best_recording"]["location"] == str(LUA_REC.resolve()) and shown["count"] == 9
    code, out, err = cli(
        capsys,
        "reproduce",
        "--group",
        client["group"][:6],
        "--db",
        db,
        "--handler",
        str(ROOT / "fixtures" / "handlers" / "arena.lua"),
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["reproduced"] is True and "picked" in err and "arena-lua-reconnect-crash.nkrec" in err
    code, out, err = cli(
        capsys,
        "reproduce",
        "--group",
        client["group"],
        "--db",
        db,
        "--handler",
        str(ROOT / "fixtures" / "handlers" / "arena_fixed.lua"),
    )
    assert code == 1 and "DID NOT REPRODUCE" in out
    code, out, _ = cli(capsys, "triage", "fixed", client["group"], "--version", "1.4.1", "--db", db, "--json")
    assert code == 0 and json.loads(out)["fixed_in"] == "1.4.1"
    code, out, _ = cli(capsys, "triage", "reopen", client["group"], "--db", db)
    assert code == 0 and "fix mark removed" in out


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["triage", "show", "zz"], "a group id is 4 to 12 hex digits"),
        (["triage", "show", "abcdef"], "no such group"),
        (["triage", "groups", "--since", "yesterday"], "expected ISO 8601"),
        (["triage", "ingest"], "nothing to ingest"),
        (["triage"], "choose one of ingest"),
        (["reproduce"], "required: recording (or --group GROUP"),
        (["reproduce", str(LUA_REC), "--group", "abcd"], "not both"),
        (["reproduce", "--group", "abcdef"], "no such group"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    argv: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(tmp_path / "t.sqlite")] if (argv[0] == "triage" and len(argv) > 1) or "--group" in argv else []
    as_json = ["--json"] if argv != ["triage"] else []  # `triage --json` alone is not a subcommand's option
    code, out, err = cli(capsys, *argv, *db, *as_json)
    assert code == 2, (out, err)
    assert problem in err and len(err.strip().splitlines()) == 1
    assert not as_json or json.loads(out)["exit"] == 2


def test_store_target_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist; create it first"):
        TriageStore.open(str(tmp_path / "missing" / "t.sqlite"))
    with pytest.raises(StoreError, match="is a folder"):
        TriageStore.open(str(tmp_path))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a crash store"):
        TriageStore.open(str(junk))
    with pytest.raises(StoreError, match="cannot connect"):
        TriageStore.open("postgresql://nobody@127.0.0.1:1/none")


def test_migrations_are_recorded_and_a_newer_store_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "t.sqlite")
    with TriageStore.open(path) as store:
        assert store.schema_version() == 2
    with TriageStore.open(path) as store:  # reopening applies nothing twice
        assert store.schema_version() == 2
        store.conn.execute("INSERT INTO schema_migrations (version, applied_ms) VALUES (99, 0)")
    with pytest.raises(StoreError, match="newer nakama-replay"):
        TriageStore.open(path)
    with TriageStore.open(str(tmp_path / "w.sqlite")) as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_version_1_store_is_migrated_with_its_reports(tmp_path: Path) -> None:
    import sqlite3

    from replay.triage._migrations import MIGRATIONS

    path = tmp_path / "v1.sqlite"
    types = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER", "text": "TEXT"}
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)")
    for stmt in MIGRATIONS[0][1]:
        conn.execute(stmt.format(**types))
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.execute(
        "INSERT INTO reports (uid, side, kind, group_id, ts_ms, op_code, version, error, stack, source, line, "
        "ingested_ms) VALUES ('old', 'client', 'client', 'abcdef012345', 5, 10, '1.0', 'e', '', 'f', 1, 0)"
    )
    conn.commit()
    conn.close()
    with TriageStore.open(str(path)) as store:
        assert store.schema_version() == 2
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"reports_op_code", "reports_version", "reports_rpc"} <= names
        rows = store.conn.execute("SELECT uid FROM reports WHERE op_code = 10 AND version = '1.0'").fetchall()
        assert rows == [("old",)]
        ingest_demo(store)  # and the migrated store takes new reports
        assert store.counts()["reports"] == 30


def test_unknown_group(tmp_path: Path) -> None:
    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        ingest_demo(store)
        with pytest.raises(UnknownGroup, match="no such group"):
            store.resolve_group("0000")


def test_link_window_is_configurable(tmp_path: Path) -> None:
    with TriageStore.open(str(tmp_path / "t.sqlite"), LinkRules(link_ticks=0, link_ms=500, clock_skew_ms=0)) as store:
        ingest_demo(store)
        client = by_title(store.groups(), "rejoinMatch")
        # only reports at the crash tick itself, or within 500 ms after it, are linked now
        assert 0 < client["downstream_of"][0]["count"] < 9


# -- concurrency: real processes ingesting into one store at once -------------------------------------------
def _report_file(path: Path, start: int, stop: int) -> None:
    base = json.loads((DEMO / "client-reports.jsonl").read_text().splitlines()[0])
    rows = []
    for i in range(start, stop):
        rows.append(
            dict(
                base,
                id=f"c-{i}",
                client_version=f"1.{i % 7}.0",
                op_code=i % 5,
                match_id=f"m{i % 50}.nakama1",
                tick=None,
                timestamp=1_764_000_000_000 + i,
                stack_trace=f"TypeError: x\n    at f{i % 3} (g.js:{i}:1)",
            )
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_concurrent_ingests_lose_nothing(store_target: str, tmp_path: Path) -> None:
    # 4 processes, overlapping inputs (each report is in two files), small batches so the transactions interleave
    files = []
    for k in range(4):
        f = tmp_path / f"r{k}.jsonl"
        _report_file(f, k * 300, k * 300 + 600)
        files.append(f)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replay.cli",
                "triage",
                "ingest",
                "--db",
                store_target,
                "--client-reports",
                str(f),
                "--batch",
                "50",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        for f in files
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out))
    unique = 4 * 300 + 300  # ids 0..1499
    assert sum(r["added"] for r in results) == unique
    assert sum(r["duplicates"] for r in results) == 4 * 600 - unique
    with TriageStore.open(store_target) as store:
        assert store.counts()["reports"] == unique
        groups = store.groups(GroupFilter(limit=100))
        assert sum(g["count"] for g in groups) == unique
        assert sum(v["count"] for g in groups for v in g["versions"]) == unique
        assert sum(v["count"] for g in groups for v in g["op_codes"]) == unique


@pytest.mark.parametrize("sub", [(), ("ingest",), ("groups",), ("show",), ("fixed",), ("reopen",)])
def test_help_ends_with_examples_and_exit_codes(sub: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["triage", *sub, "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    example, codes = out.index("\nExample:\n  nakama-replay "), out.index("\nExit codes:\n  0 ")
    assert example < codes and "  2 " in out[codes:] and "  70 " in out[codes:]


def test_ingest_reports_progress_per_source(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        ingest(
            store,
            client=[str(DEMO / "client-reports.jsonl")],
            logs=[str(DEMO / "nakama.log")],
            progress=lambda source, n: seen.append((source, n)),
        )
    assert seen == [(str(DEMO / "client-reports.jsonl"), 0), (str(DEMO / "nakama.log"), 17), ("", 24)]


@pytest.mark.parametrize(
    "flt",
    [
        GroupFilter(op_code=10, client_version="1.4.0"),
        GroupFilter(rpc="get_loadout", platform="ios", side="client"),
        GroupFilter(socket_state="reconnecting", platform="android"),
    ],
)
def test_two_filters_read_an_index_not_every_report(flt: GroupFilter, tmp_path: Path) -> None:
    # the listing with two filters scanned all reports (1.17 s at a million); migration 2's indexes answer it
    with TriageStore.open(str(tmp_path / "t.sqlite")) as store:
        ingest_demo(store)
        plan = store.query_plan(flt)
        assert any(line.startswith("SEARCH reports USING INDEX reports_") for line in plan), plan
        assert not any(line.startswith("SCAN reports") for line in plan), plan
        assert store.groups(flt)  # and the demo has reports that match


def test_statistics_after_a_large_ingest_keep_the_filter_indexes_in_use(tmp_path: Path) -> None:
    # once ANALYZE has run (when the reports doubled), SQLite chose to read every report in group order through
    # reports_group_ts for two unselective filters (4.2 s at a million); GROUP BY +group_id rules that plan out
    versions, states, platforms = ["1.3.0", "1.3.1", "1.4.0", "1.4.1"], ["connected", "closed", "reconnecting"], "abc"
    reports = [
        parse_client_report(
            {
                "id": f"r{i}",
                "timestamp": 1_764_000_000_000 + i * 1000,
                "handler": f"h{i % 40}",
                "error_type": "TypeError",
                "error_message": "x",
                "client_version": versions[i % 4],
                "socket_state": states[i % 3],
                "platform": platforms[i % 3],
                "op_code": i % 7,
                "match_id": f"m{i % 300}",
            }
        )
        for i in range(3000)
    ]
    path = str(tmp_path / "t.sqlite")
    with TriageStore.open(path) as store:
        store.add_reports(reports, batch=1000)
    with TriageStore.open(path) as store:
        stat = store.conn.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 'reports_ts'").fetchone()
        assert stat is not None and stat[0].split()[0] == "3000"  # analysed when the store was closed
        for flt in (
            GroupFilter(client_version="1.3.0", socket_state="closed", side="client"),
            GroupFilter(op_code=3, platform="b"),
        ):
            plan = store.query_plan(flt)
            assert not any(line.startswith("SCAN reports") for line in plan), plan
            expected = sum(
                1
                for r in reports
                if (flt.client_version in (None, r.version))
                and (flt.socket_state in (None, r.socket_state))
                and (flt.op_code in (None, r.op_code))
                and (flt.platform in (None, r.platform))
            )
            assert sum(g["count"] for g in store.groups(flt)) == expected


def test_recordings_at_urls_are_indexed_and_reproduced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an object-store prefix (fsspec's memory:// here; s3:// and gs:// go the same way through recorder.storage)
    import fsspec

    fs = fsspec.filesystem("memory")
    prefix = "memory://nkreplay-triage-test/recs/"
    try:
        fs.pipe("/nkreplay-triage-test/recs/2025/arena.nkrec", LUA_REC.read_bytes())
        db = str(tmp_path / "t.sqlite")
        code, out, err = cli(
            capsys, "triage", "ingest", "--db", db, "--server-log", str(DEMO / "nakama.log"), "--recordings", prefix
        )
        assert code == 0 and "1 recordings indexed" in out, (out, err)
        code, out, _ = cli(capsys, "triage", "groups", "--db", db, "--side", "server", "--json")
        server = by_title(json.loads(out)["groups"], "match_loop at arena.lua")
        assert server["recordings"] == 1
        code, out, err = cli(
            capsys,
            "reproduce",
            "--group",
            server["group"],
            "--db",
            db,
            "--handler",
            str(ROOT / "fixtures" / "handlers" / "arena.lua"),
            "--in-process",  # memory:// lives in this process only
            "--json",
        )
        assert code == 0, err
        assert "picked memory:///nkreplay-triage-test/recs/2025/arena.nkrec (complete" in err
        assert json.loads(out)["reproduced"] is True
    finally:
        fs.rm("/nkreplay-triage-test", recursive=True)
