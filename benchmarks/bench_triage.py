"""Crash triage at scale: ingest rate and query latency on generated reports (default 1,000,000).

    python benchmarks/bench_triage.py [--reports 1000000] [--db PATH|postgresql://...] [--batch 20000]

Reports are generated one batch at a time (never all in memory): 200 crash signatures with a skewed
(Zipf-like) spread, 20,000 matches, 12 client versions, 6 platforms, 20 op codes, 4 socket states, one server
match error in four matches of five and a server RPC error in the fifth, so that both kinds of linking work
as in production. Generating a batch is not timed. Printed:

- ingest: reports per second through ``TriageStore.add_reports`` (dedupe by uid, group and facet counts,
  linking), wall clock and this process's CPU time (for SQLite the database work is in this process; for
  PostgreSQL the server's CPU is not counted), against a baseline measured in the same run on the same
  database: a plain multi-row INSERT of the same rows into a table with no index, no dedupe, no counting
  (the ratio is what triage adds);
- a re-ingest of the first 100,000 reports (all duplicates: the idempotence check's cost);
- query latency (best of 5): ``groups`` unfiltered, with one filter (facet table), with two filters and
  ``--since`` (indexes of the filter columns, schema version 2), ``show``, ``reproduce --group``'s recording
  pick; against the baseline of one ``SELECT COUNT(*) FROM reports``; and the query plan of two filters.

The machine is shared: wall-clock figures move with its load (the ratios less so).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replay.runtime._signature import CrashSignature
from replay.triage._schema import CrashReport
from replay.triage._store import GroupFilter, TriageStore

VERSIONS = [f"1.{minor}.{patch}" for minor in range(3, 7) for patch in range(3)]
PLATFORMS = ["android", "ios", "webgl", "windows", "macos", "node"]
STATES = ["connected", "reconnecting", "closed", "connecting"]
T0 = 1_764_000_000_000


def signatures(n: int) -> list[CrashSignature]:
    return [
        CrashSignature(
            f"handler{i % 9}",
            ["TypeError", "NullReferenceException", "Error"][i % 3],
            (f"game{i}.js:f{i}", f"game{i}.js:g{i}"),
        )
        for i in range(n)
    ]


def generate(count: int, seed: int = 7) -> Iterator[CrashReport]:
    rng = random.Random(seed)
    sigs = signatures(200)
    server = CrashSignature("match_loop", "lua:index nil", ("arena.lua",))
    rpc_sig = CrashSignature("rpc:loadout", "lua:concatenate", ("loadout.lua",))
    weights = [1 / (k + 1) for k in range(len(sigs))]
    matches = 20_000
    for i in range(count):
        m = i % matches
        if i < matches and m % 5 == 4:  # every fifth match has no handler error but a failed RPC at its start
            yield CrashReport(
                uid=f"rpc:m{m:06d}",
                side="server",
                kind="rpc_error",
                ts_ms=T0 + m * 60_000,
                signature=rpc_sig,
                error="loadout.lua:21: attempt to concatenate a nil value",
                rpc_id=f"rpc{m % 13}",
                rpc_error=True,
            )
            continue
        if i < matches:  # one server handler error per match, first
            yield CrashReport(
                uid=f"match:m{m:06d}:match_loop:{100 + m % 50}",
                side="server",
                kind="match_error",
                ts_ms=T0 + m * 60_000,
                signature=server,
                error="arena.lua:54: attempt to index",
                match_id=f"m{m:06d}",
                tick=100 + m % 50,
            )
            continue
        sig = rng.choices(sigs, weights)[0]
        yield CrashReport(
            uid=f"client:{i}",
            side="client",
            kind="client",
            ts_ms=T0 + m * 60_000 + rng.randrange(0, 5_000),
            signature=sig,
            error="TypeError: x",
            match_id=f"m{m:06d}.nakama1",
            tick=100 + m % 50 + rng.randrange(0, 3),
            presence_count=rng.randrange(2, 9),
            op_code=rng.randrange(1, 21),
            op_code_size=rng.randrange(10, 900),
            rpc_id=f"rpc{m % 13}" if i % 5 == 4 else None,  # in the matches whose RPC failed
            rpc_error=i % 10 == 9 if i % 5 == 4 else None,  # half of those clients saw the error, 0-5 s later
            socket_state=rng.choice(STATES),
            session_valid=True,
            version=rng.choice(VERSIONS),
            platform=rng.choice(PLATFORMS),
            reconnecting=bool(i % 2),
        )


def batches(count: int, size: int, seed: int = 7) -> Iterator[list[CrashReport]]:
    batch: list[CrashReport] = []
    for r in generate(count, seed):
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def timed_ingest(store: TriageStore, count: int, size: int) -> tuple[float, float, Any]:
    """Wall and CPU seconds of ``add_reports`` over all batches (generating them not counted), and the totals."""
    wall = cpu = 0.0
    added = duplicates = links = 0
    for batch in batches(count, size):
        t, c = time.perf_counter(), time.process_time()
        result = store.add_reports(batch, batch=size)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        added, duplicates, links = added + result.added, duplicates + result.duplicates, links + result.links
    return wall, cpu, (added, duplicates, links)


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def baseline_insert(store: TriageStore, count: int, batch: int) -> float:
    """Seconds to write the same rows with a plain multi-row INSERT (no index, no dedupe, no counting)."""
    cols = (
        "uid",
        "side",
        "kind",
        "group_id",
        "ts_ms",
        "match_key",
        "match_id",
        "tick",
        "op_code",
        "version",
        "platform",
        "socket_state",
        "error",
    )
    store._x(f"CREATE TABLE bench_plain ({', '.join(c + ' TEXT' for c in cols)})")
    if store.dialect.name == "sqlite":
        store.conn.execute("COMMIT") if store.conn.in_transaction else None
    else:
        store.conn.commit()
    spent = 0.0
    rows: list = []

    def flush() -> None:
        nonlocal spent
        t = time.perf_counter()
        store.dialect.begin(store.conn)
        for start in range(0, len(rows), 400):
            part = rows[start : start + 400]
            values = ",".join("(" + ",".join("?" * len(cols)) + ")" for _ in part)
            store._x(f"INSERT INTO bench_plain ({','.join(cols)}) VALUES {values}", [v for r in part for v in r])
        store.dialect.commit(store.conn)
        spent += time.perf_counter() - t
        rows.clear()

    for r in generate(count):
        rows.append(
            (
                r.uid,
                r.side,
                r.kind,
                r.group_id,
                r.ts_ms,
                r.match_key,
                r.match_id,
                r.tick,
                r.op_code,
                r.version,
                r.platform,
                r.socket_state,
                r.error,
            )
        )
        if len(rows) >= batch:
            flush()
    if rows:
        flush()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--db", help="a SQLite path or postgresql:// URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-triage-") as tmp:  # removed afterwards: 600 MiB at a million
        run(args, args.db or os.path.join(tmp, "bench.sqlite"))


def run(args: argparse.Namespace, target: str) -> None:
    n = args.reports
    with TriageStore.open(target) as store:
        ingest_s, ingest_cpu, (added, _, links) = timed_ingest(store, n, args.batch)
        assert added == n, added
        again_n = min(n, 100_000)
        again_s, _, (again_added, again_dupes, _) = timed_ingest(store, again_n, args.batch)
        assert again_added == 0 and again_dupes == again_n
        plain_s = baseline_insert(store, n, args.batch)
        counts = store.counts()
        print(f"store        {store.dialect.name} {'(temporary file)' if not args.db else store.target}")
        print(f"data         {counts['reports']:,} reports, {counts['groups']} groups, {counts['links']:,} links")
        rpc_links = store._x("SELECT COUNT(*) FROM links WHERE rule = 'rpc'").fetchone()[0]
        print(f"links        {links:,} made while ingesting ({rpc_links:,} of them rpc)")
        print(
            f"ingest       {n / ingest_s:,.0f} reports/s ({ingest_s:.1f} s wall; {n / ingest_cpu:,.0f} reports/s of "
            f"this process's CPU, {ingest_cpu:.1f} s); plain INSERT baseline {n / plain_s:,.0f} rows/s "
            f"({plain_s:.1f} s); triage/plain time ratio {ingest_s / plain_s:.2f}"
        )
        print(f"re-ingest    {again_n / again_s:,.0f} duplicates/s ({again_n:,} reports already stored, none counted)")
    # queries on a store opened afresh, as `triage groups` after `triage ingest` (closing refreshed SQLite's statistics)
    with TriageStore.open(target) as store:
        full = best_of(5, lambda: store._x("SELECT COUNT(*) FROM reports").fetchone())
        top = store.groups(GroupFilter(limit=1))[0]["group"]
        two_filters = {
            "groups --op-code 7 --client-version 1.4.1": GroupFilter(op_code=7, client_version="1.4.1", limit=20),
            "groups --rpc rpc3 --platform ios": GroupFilter(rpc="rpc3", platform="ios", limit=20),
            "groups --client-version 1.3.0 --socket-state closed --side client": GroupFilter(
                client_version="1.3.0", socket_state="closed", side="client", limit=20
            ),
        }
        queries = {
            "groups": lambda: store.groups(GroupFilter(limit=20)),
            "groups --op-code 7": lambda: store.groups(GroupFilter(op_code=7, limit=20)),
            "groups --client-version 1.4.1 --side client": lambda: store.groups(
                GroupFilter(client_version="1.4.1", side="client", limit=20)
            ),
            **{name: (lambda flt=flt: store.groups(flt)) for name, flt in two_filters.items()},
            "groups --since (last 10%)": lambda: store.groups(GroupFilter(since_ms=T0 + 18_000 * 60_000, limit=20)),
            f"show {top}": lambda: store.group(top),
            "reproduce --group (pick)": lambda: store.best_recording(top),
        }
        print(f"baseline     SELECT COUNT(*) FROM reports: {full * 1000:.1f} ms")
        for name, fn in queries.items():
            s = best_of(5, fn)
            print(f"query        {name:<66} {s * 1000:8.1f} ms  ({s / full:.2f} x the full count)")
        for name, flt in two_filters.items():
            print(f"plan         {name}:")
            for line in store.query_plan(flt):
                print(f"               {line}")


if __name__ == "__main__":
    main()
