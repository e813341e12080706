"""Crash triage at scale: ingest rate and query latency on generated reports (default 1,000,000).

    python benchmarks/bench_triage.py [--reports 1000000] [--db PATH|postgresql://...] [--batch 20000]

Reports are generated (streamed, never all in memory): 200 crash signatures with a skewed (Zipf-like)
spread, 20,000 matches, 12 client versions, 6 platforms, 20 op codes, 4 socket states, and one server
match error per match so that linking works as in production. Printed:

- ingest: reports per second through ``TriageStore.add_reports`` (dedupe by uid, group and facet counts,
  linking), against a baseline measured in the same run on the same database: a plain multi-row INSERT of
  the same rows into a table with no index, no dedupe, no counting (the ratio is what triage adds);
- a re-ingest of the first 100,000 reports (all duplicates: the idempotence check's cost);
- query latency (best of 5): ``groups`` unfiltered, with one filter (facet table), with two filters and
  ``--since`` (scan of the reports), ``show``, ``reproduce --group``'s recording pick; against the baseline
  of one ``SELECT COUNT(*) FROM reports`` (a full count, the cheapest whole-table question).
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
    weights = [1 / (k + 1) for k in range(len(sigs))]
    matches = 20_000
    for i in range(count):
        m = i % matches
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
            rpc_id=None if i % 5 else f"rpc{i % 13}",
            socket_state=rng.choice(STATES),
            session_valid=True,
            version=rng.choice(VERSIONS),
            platform=rng.choice(PLATFORMS),
            reconnecting=bool(i % 2),
        )


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
    t = time.perf_counter()
    rows: list = []

    def flush() -> None:
        store.dialect.begin(store.conn)
        for start in range(0, len(rows), 400):
            part = rows[start : start + 400]
            values = ",".join("(" + ",".join("?" * len(cols)) + ")" for _ in part)
            store._x(f"INSERT INTO bench_plain ({','.join(cols)}) VALUES {values}", [v for r in part for v in r])
        store.dialect.commit(store.conn)
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
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--db", help="a SQLite path or postgresql:// URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-triage-")
    target = args.db or os.path.join(tmp, "bench.sqlite")
    n = args.reports
    with TriageStore.open(target) as store:
        t = time.perf_counter()
        result = store.add_reports(generate(n), batch=args.batch)
        ingest_s = time.perf_counter() - t
        assert result.added == n, result
        again_n = min(n, 100_000)
        t = time.perf_counter()
        again = store.add_reports(generate(again_n), batch=args.batch)
        again_s = time.perf_counter() - t
        assert again.added == 0 and again.duplicates == again_n
        plain_s = baseline_insert(store, n, args.batch)
        counts = store.counts()
        print(f"store        {store.dialect.name} {'(temporary file)' if not args.db else store.target}")
        print(f"data         {counts['reports']:,} reports, {counts['groups']} groups, {counts['links']:,} links")
        print(
            f"ingest       {n / ingest_s:,.0f} reports/s ({ingest_s:.1f} s); plain INSERT baseline "
            f"{n / plain_s:,.0f} rows/s ({plain_s:.1f} s); triage/plain time ratio {ingest_s / plain_s:.2f}"
        )
        print(f"re-ingest    {again_n / again_s:,.0f} duplicates/s ({again_n:,} reports already stored, none counted)")
        full = best_of(5, lambda: store._x("SELECT COUNT(*) FROM reports").fetchone())
        top = store.groups(GroupFilter(limit=1))[0]["group"]
        queries = {
            "groups": lambda: store.groups(GroupFilter(limit=20)),
            "groups --op-code 7": lambda: store.groups(GroupFilter(op_code=7, limit=20)),
            "groups --client-version 1.4.1 --side client": lambda: store.groups(
                GroupFilter(client_version="1.4.1", side="client", limit=20)
            ),
            "groups --op-code 7 --client-version 1.4.1": lambda: store.groups(
                GroupFilter(op_code=7, client_version="1.4.1", limit=20)
            ),
            "groups --since (last 10%)": lambda: store.groups(GroupFilter(since_ms=T0 + 18_000 * 60_000, limit=20)),
            f"show {top}": lambda: store.group(top),
            "reproduce --group (pick)": lambda: store.best_recording(top),
        }
        print(f"baseline     SELECT COUNT(*) FROM reports: {full * 1000:.1f} ms")
        for name, fn in queries.items():
            s = best_of(5, fn)
            print(f"query        {name:<48} {s * 1000:8.1f} ms  ({s / full:.2f} x the full count)")
        two = GroupFilter(op_code=7, client_version="1.4.1", limit=20)
        print("plan         groups --op-code 7 --client-version 1.4.1:")
        for line in store.query_plan(two):
            print(f"               {line}")


if __name__ == "__main__":
    main()
