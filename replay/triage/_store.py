"""The crash store: a small repository layer over SQLite (default, one file) or PostgreSQL.

``TriageStore.open(target)`` takes a file path (SQLite: created on first use, WAL journal, a 60 s busy
timeout so concurrent ingests queue instead of failing) or a ``postgresql://`` URL (needs the ``postgres``
extra: psycopg 3). Opening applies pending migrations (``replay.triage._migrations``) under a lock (SQLite's
write lock; a PostgreSQL advisory lock), so two processes opening a new store at once are safe.

Writes (``add_reports``, ``add_recordings``) run in one transaction per batch. A report's ``uid`` is
unique: ``INSERT ... ON CONFLICT (uid) DO NOTHING RETURNING uid`` says which reports are new, and only
those are counted into their group and facets (upserts that add, never read-modify-write), so the same
input twice, or two processes ingesting overlapping inputs at once, never double-count or lose a report.
Rows are written in a fixed order (uids, then group ids, then facet keys, sorted) so concurrent PostgreSQL
transactions cannot deadlock on each other's row locks.

Linking runs in the same transaction, for the matches the batch touched: a client report is **downstream**
of a server match handler error in the same match (ids compared without the ``.node`` suffix) when the
client's tick is at or up to ``link_ticks`` after the error's tick (rule ``tick``), or else its time is at
most ``link_ms`` after the error's (``clock_skew_ms`` before it is tolerated: two machines' clocks; rule
``time``). The closest error wins; the link keeps the rule and both differences as evidence.

A client report whose RPC returned an error (``rpc_error``) is downstream of a Nakama runtime RPC error of
the same RPC id when its time is at most ``link_rpc_ms`` after it (``clock_skew_ms`` before it tolerated;
rule ``rpc``), the closest one winning. Nakama's RPC error line names no user or session, so this link rests
on the RPC id and time alone: with many players failing the same RPC in the same seconds, a report may be
linked to another player's failed call of it. A client report has at most one link (the first found).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from replay.errors import StoreError, UnknownGroup
from replay.triage._migrations import LATEST, MIGRATIONS
from replay.triage._schema import CrashReport

__all__ = ["TriageStore", "GroupFilter", "LinkRules", "version_key", "INTEGRITY_RANK"]

#: facet name -> how to read it off a report
_FACETS = ("version", "platform", "op_code", "rpc_id", "socket_state", "storage", "match")
#: recordings: preferred integrity first
INTEGRITY_RANK = {"complete": 0, "gapped": 1, "legacy": 2, "unsealed": 3, "damaged": 4}
_REPORT_COLUMNS = (
    "uid",
    "side",
    "kind",
    "group_id",
    "ts_ms",
    "match_key",
    "match_id",
    "tick",
    "session_id",
    "user_id",
    "presence_count",
    "op_code",
    "op_code_size",
    "rpc_id",
    "rpc_error",
    "rpc_unexpected_shape",
    "socket_state",
    "session_valid",
    "ms_since_last_message",
    "reconnecting",
    "storage_collection",
    "storage_key",
    "storage_ok",
    "version",
    "platform",
    "error",
    "stack",
    "source",
    "line",
    "regression",
    "ingested_ms",
)
_LINK_COLUMNS = (
    "client_uid",
    "server_uid",
    "client_group",
    "server_group",
    "match_key",
    "rule",
    "delta_ticks",
    "delta_ms",
    "rpc_id",
)
_VERSION_PART = re.compile(r"\d+|[A-Za-z]+")


def version_key(version: str) -> tuple[tuple[int, Any], ...]:
    """Natural order of version texts: ``1.4.10`` after ``1.4.9``; letters after numbers at one place."""
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in _VERSION_PART.findall(version or ""))


def _facet_values(r: CrashReport) -> list[tuple[str, str]]:
    out = []
    if r.version:
        out.append(("version", r.version))
    if r.platform:
        out.append(("platform", r.platform))
    if r.op_code is not None:
        out.append(("op_code", str(r.op_code)))
    if r.rpc_id:
        out.append(("rpc_id", r.rpc_id))
    if r.socket_state:
        out.append(("socket_state", r.socket_state))
    if r.storage_collection or r.storage_key:
        out.append(("storage", f"{r.storage_collection or ''}/{r.storage_key or ''}"))
    if r.match_key:
        out.append(("match", r.match_key))
    return out


def _b(v: bool | None) -> int | None:
    return None if v is None else int(bool(v))


@dataclass(frozen=True, slots=True)
class LinkRules:
    """When a client report counts as downstream of a server match handler error (module docstring)."""

    link_ticks: int = 30
    link_ms: int = 60_000
    clock_skew_ms: int = 2_000
    link_rpc_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class GroupFilter:
    """What ``groups()`` lists: one side, reports with these facet values, seen since a time."""

    side: str | None = None
    op_code: int | None = None
    rpc: str | None = None
    client_version: str | None = None
    socket_state: str | None = None
    platform: str | None = None
    since_ms: int | None = None
    limit: int = 50

    def report_conditions(self) -> list[tuple[str, Any]]:
        conds: list[tuple[str, Any]] = []
        if self.op_code is not None:
            conds.append(("op_code = ?", self.op_code))
        if self.rpc is not None:
            conds.append(("rpc_id = ?", self.rpc))
        if self.client_version is not None:
            conds.append(("version = ?", self.client_version))
        if self.socket_state is not None:
            conds.append(("socket_state = ?", self.socket_state))
        if self.platform is not None:
            conds.append(("platform = ?", self.platform))
        if self.since_ms is not None:
            conds.append(("ts_ms >= ?", self.since_ms))
        return conds

    def single_facet(self) -> tuple[str, str] | None:
        """The one facet filter, when it is the only condition (then the facet table answers)."""
        facets = [
            ("op_code", None if self.op_code is None else str(self.op_code)),
            ("rpc_id", self.rpc),
            ("version", self.client_version),
            ("socket_state", self.socket_state),
            ("platform", self.platform),
        ]
        given = [(f, v) for f, v in facets if v is not None]
        if len(given) == 1 and self.since_ms is None:
            return given[0]
        return None

    @property
    def narrowed(self) -> bool:
        return bool(self.report_conditions())


@dataclass(slots=True)
class AddResult:
    """What one write did."""

    added: int = 0
    duplicates: int = 0
    links: int = 0
    regressions: int = 0
    groups: set[str] = field(default_factory=set)


# -- dialects ---------------------------------------------------------------------------------------------------
class _Dialect:
    name = ""
    types: ClassVar[dict[str, str]] = {"id": "", "bigint": "", "text": "TEXT"}
    least = "min"
    greatest = "max"

    def sql(self, text: str) -> str:
        return text

    def connect(self, target: str) -> Any:
        raise NotImplementedError

    def begin(self, conn: Any) -> None:
        raise NotImplementedError

    def migration_lock(self, conn: Any) -> None:
        """Called right after ``begin`` before migrating."""

    def commit(self, conn: Any) -> None:
        conn.commit() if self.name == "postgresql" else conn.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        if self.name == "postgresql":
            conn.rollback()
        elif conn.in_transaction:
            conn.execute("ROLLBACK")

    def table_exists(self, conn: Any, table: str) -> bool:
        raise NotImplementedError


class _SQLite(_Dialect):
    name = "sqlite"
    types: ClassVar[dict[str, str]] = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER", "text": "TEXT"}

    def connect(self, target: str) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise StoreError(target, f"needs SQLite 3.35 or newer (this Python has {sqlite3.sqlite_version})")
        conn = sqlite3.connect(target, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(target, f"cannot use the WAL journal (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(target, f"not a crash store ({exc})") from exc
        return conn

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock between writers

    def table_exists(self, conn: Any, table: str) -> bool:
        return (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
            is not None
        )


class _Postgres(_Dialect):
    name = "postgresql"
    types: ClassVar[dict[str, str]] = {"id": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "text": "TEXT"}
    least = "LEAST"
    greatest = "GREATEST"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def connect(self, target: str) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                _redact(target), "PostgreSQL needs psycopg: pip install 'nakama-replay[postgres]'"
            ) from exc
        try:
            return psycopg.connect(target, autocommit=False, connect_timeout=20)
        except psycopg.Error as exc:
            raise StoreError(_redact(target), f"cannot connect: {str(exc).strip().splitlines()[0]}") from exc

    def begin(self, conn: Any) -> None:
        pass  # psycopg opens a transaction with the first statement

    def migration_lock(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(7463522)")  # "nkrp": one migrator at a time

    def table_exists(self, conn: Any, table: str) -> bool:
        return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None


def _redact(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


# -- the store ------------------------------------------------------------------------------------------------------
class TriageStore:
    """Crash groups, reports, links and recordings in one database. Use ``TriageStore.open``."""

    def __init__(self, conn: Any, dialect: _Dialect, target: str, rules: LinkRules) -> None:
        self.conn = conn
        self.dialect = dialect
        self.target = target
        self.rules = rules
        self._wrote = False

    # -- opening ----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, target: str, rules: LinkRules | None = None) -> TriageStore:
        """Open (and create or migrate) the store at a file path or ``postgresql://`` URL."""
        dialect: _Dialect = _Postgres() if _is_postgres(target) else _SQLite()
        shown = _redact(target)
        if dialect.name == "sqlite":
            if "://" in target:
                raise StoreError(shown, "not a file path or a postgresql:// URL")
            if os.path.isdir(target):
                raise StoreError(target, "is a folder, not a database file")
            parent = os.path.dirname(os.path.abspath(target))
            if not os.path.isdir(parent):
                raise StoreError(target, f"the folder {parent} does not exist; create it first: mkdir -p {parent}")
        conn = dialect.connect(target)
        store = cls(conn, dialect, shown, rules or LinkRules())
        try:
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        try:
            if self.dialect.name == "sqlite" and self._wrote:
                self._refresh_statistics()
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass

    def _refresh_statistics(self) -> None:
        """SQLite: ``ANALYZE reports`` when the reports have doubled since it last ran (or it never ran), so that
        of two filters the planner reads the more selective column's index (without statistics it picked the
        platform's over the RPC's: 206 ms instead of 34 at a million reports). It reads every index, about a
        second per million reports, and runs once per doubling: a constant cost per report."""
        stat = None
        if self.dialect.table_exists(self.conn, "sqlite_stat1"):
            stat = self.conn.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 'reports_ts'").fetchone()
        analysed = int(str(stat[0]).split()[0]) if stat else 0
        count = int(self.conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
        if count >= max(2 * analysed, 1000):
            self.conn.execute("PRAGMA analysis_limit = 0")
            self.conn.execute("ANALYZE reports")

    def __enter__(self) -> TriageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.dialect.sql(sql), tuple(params))

    def _migrate(self) -> None:
        d = self.dialect
        try:
            d.begin(self.conn)
            d.migration_lock(self.conn)
            if not d.table_exists(self.conn, "schema_migrations"):
                self._x("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)")
            applied = {row[0] for row in self._x("SELECT version FROM schema_migrations")}
            newer = [v for v in applied if v > LATEST]
            if newer:
                raise StoreError(
                    self.target,
                    f"schema version {max(newer)} was written by a newer nakama-replay (this one knows up to {LATEST})",
                )
            for version, statements in MIGRATIONS:
                if version in applied:
                    continue
                for stmt in statements:
                    self._x(stmt.format(**d.types))
                self._x("INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)", (version, _now_ms()))
            d.commit(self.conn)
        except StoreError:
            d.rollback(self.conn)
            raise
        except Exception as exc:
            d.rollback(self.conn)
            if _db_error(exc):
                raise StoreError(self.target, f"cannot create or migrate the crash store: {exc}") from exc
            raise

    def schema_version(self) -> int:
        return int(self._x("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)

    # -- writing ----------------------------------------------------------------------------------------------
    def add_reports(self, reports: Iterable[CrashReport], batch: int = 5000) -> AddResult:
        """Store reports (new uids only), count them into their groups, link them. One transaction per batch."""
        total = AddResult()
        chunk: list[CrashReport] = []
        for r in reports:
            chunk.append(r)
            if len(chunk) >= batch:
                self._add_batch(chunk, total)
                chunk = []
        if chunk:
            self._add_batch(chunk, total)
        return total

    def _write(self, fn: Any, *args: Any) -> Any:
        d = self.dialect
        try:
            d.begin(self.conn)
            out = fn(*args)
            d.commit(self.conn)
            self._wrote = True
            return out
        except BaseException as exc:
            d.rollback(self.conn)
            if isinstance(exc, Exception) and _db_error(exc):
                raise StoreError(self.target, f"write failed: {exc}") from exc
            raise

    def _add_batch(self, batch: list[CrashReport], total: AddResult) -> None:
        unique: dict[str, CrashReport] = {}
        for r in batch:
            unique.setdefault(r.uid, r)
        ordered = [unique[k] for k in sorted(unique)]
        result = self._write(self._insert_batch, ordered)
        total.added += result.added
        total.duplicates += len(batch) - result.added
        total.links += result.links
        total.regressions += result.regressions
        total.groups |= result.groups

    def _insert_batch(self, reports: list[CrashReport]) -> AddResult:
        result = AddResult()
        fixed = self._fixed_groups({r.group_id for r in reports})
        now = _now_ms()
        new_uids: set[str] = set()
        regression: dict[str, int] = {}
        rows = []
        for r in reports:
            reg = int(self._is_regression(r, fixed.get(r.group_id)))
            regression[r.uid] = reg
            rows.append(self._row(r, reg, now))
        new_uids.update(
            row[0]
            for row in self._write_rows(
                "reports", ",".join(_REPORT_COLUMNS), "uid", "ON CONFLICT (uid) DO NOTHING RETURNING uid", rows
            )
        )
        new = [r for r in reports if r.uid in new_uids]
        result.added = len(new)
        if not new:
            return result
        self._count(new, regression)
        result.regressions = sum(regression[r.uid] for r in new)
        result.groups = {r.group_id for r in new}
        result.links = self._link(new)
        return result

    @staticmethod
    def _row(r: CrashReport, regression: int, now: int) -> list[Any]:
        return [
            r.uid,
            r.side,
            r.kind,
            r.group_id,
            r.ts_ms,
            r.match_key,
            r.match_id,
            r.tick,
            r.session_id,
            r.user_id,
            r.presence_count,
            r.op_code,
            r.op_code_size,
            r.rpc_id,
            _b(r.rpc_error),
            _b(r.rpc_unexpected_shape),
            r.socket_state,
            _b(r.session_valid),
            r.ms_since_last_message,
            _b(r.reconnecting),
            r.storage_collection,
            r.storage_key,
            _b(r.storage_ok),
            r.version,
            r.platform,
            r.error[:4000],
            r.stack[:8000],
            r.source,
            r.line,
            regression,
            now,
        ]

    def _fixed_groups(self, ids: set[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        ids_list = sorted(ids)
        for start in range(0, len(ids_list), 500):
            part = ids_list[start : start + 500]
            q = f"SELECT id, fixed_in, fixed_at_ms FROM crash_groups WHERE fixed_in IS NOT NULL AND id IN ({','.join('?' * len(part))})"
            for gid, fixed_in, fixed_at in self._x(q, part):
                out[gid] = (fixed_in, fixed_at)
        return out

    @staticmethod
    def _is_regression(r: CrashReport, fix: tuple[str, int] | None) -> bool:
        """The same signature after the fix: a version at or past the fix version, or (no version known) a
        crash after the fix was marked."""
        if fix is None:
            return False
        fixed_in, fixed_at = fix
        if r.version:
            return version_key(r.version) >= version_key(fixed_in)
        return r.ts_ms > fixed_at

    def _count(self, new: list[CrashReport], regression: dict[str, int]) -> None:
        d = self.dialect
        groups: dict[str, list[Any]] = {}
        facets: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for r in new:
            g = groups.get(r.group_id)
            if g is None:
                sig = r.signature
                g = groups[r.group_id] = [
                    r.side,
                    sig.key,
                    sig.callback,
                    sig.error_type,
                    json.dumps(list(sig.frames)),
                    f"{sig.error_type} in {sig.callback} at {sig.location}",
                    r.error[:500],
                    0,
                    r.ts_ms,
                    r.ts_ms,
                    0,
                    None,
                ]
            g[7] += 1
            g[8] = min(g[8], r.ts_ms)
            g[9] = max(g[9], r.ts_ms)
            if regression[r.uid]:
                g[10] += 1
                g[11] = max(g[11] or r.ts_ms, r.ts_ms)
            for facet, value in _facet_values(r):
                f = facets[(r.group_id, facet, value)]
                f[0] += 1
                f[1] = max(f[1], r.ts_ms)
        g_cols = (
            "id, side, sig_key, callback, error_type, frames, title, example, n, first_ms, last_ms, regressions, "
            "last_regression_ms"
        )
        g_tail = (
            "ON CONFLICT (id) DO UPDATE SET "
            "n = crash_groups.n + excluded.n, "
            f"first_ms = {d.least}(crash_groups.first_ms, excluded.first_ms), "
            f"last_ms = {d.greatest}(crash_groups.last_ms, excluded.last_ms), "
            "regressions = crash_groups.regressions + excluded.regressions, "
            f"last_regression_ms = COALESCE({d.greatest}(crash_groups.last_regression_ms, excluded.last_regression_ms), "
            "crash_groups.last_regression_ms, excluded.last_regression_ms)"
        )
        self._write_rows("crash_groups", g_cols, "id", g_tail, [[gid, *vals] for gid, vals in sorted(groups.items())])
        f_tail = (
            "ON CONFLICT (group_id, facet, value) DO UPDATE SET n = group_facets.n + excluded.n, "
            f"last_ms = {d.greatest}(group_facets.last_ms, excluded.last_ms)"
        )
        self._write_rows(
            "group_facets",
            "group_id, facet, value, n, last_ms",
            "group_id, facet, value",
            f_tail,
            [[*key, n, last] for key, (n, last) in sorted(facets.items())],
        )

    def _write_rows(self, table: str, cols: str, key: str, tail: str, rows: list[list[Any]]) -> list[tuple[Any, ...]]:
        """``INSERT INTO table (cols) <rows> tail`` (an ON CONFLICT clause, maybe RETURNING), rows in ``key`` order;
        what RETURNING returns. SQLite: multi-row INSERTs (one prepared statement per size). PostgreSQL: COPY into
        a temporary table, then one INSERT ... SELECT (psycopg's COPY adapts values in C; bound parameters cost
        five times the client's CPU)."""
        if not rows:
            return []
        if self.dialect.name == "postgresql":
            temp = f"incoming_{table}"
            self._x(
                f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS SELECT {cols} FROM {table} WITH NO DATA"
            )
            with self.conn.cursor().copy(f"COPY {temp} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur = self._x(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp} ORDER BY {key} {tail}")
            out = cur.fetchall() if "RETURNING" in tail else []
            self._x(f"TRUNCATE {temp}")  # empty for the next batch of this transaction
            return out
        width = len(rows[0])
        if "RETURNING" not in tail:
            self._many(f"INSERT INTO {table} ({cols}) VALUES ({_marks(rows[0])}) {tail}", rows)
            return []
        out = []
        marks = "(" + ",".join("?" * width) + ")"
        for part in _chunks(rows, max(1, 12_000 // width)):  # well under SQLite's 32,766 bound parameters
            q = f"INSERT INTO {table} ({cols}) VALUES {','.join([marks] * len(part))} {tail}"
            out.extend(self._x(q, [v for row in part for v in row]).fetchall())
        return out

    def _many(self, sql: str, rows: list[list[Any]]) -> None:
        if not rows:
            return
        cur = self.conn.cursor()
        cur.executemany(self.dialect.sql(sql), rows)

    # -- linking --------------------------------------------------------------------------------------------------
    def _link(self, new: list[CrashReport]) -> int:
        """Link this batch's client reports to the server errors they follow, and the stored, still unlinked
        client reports to the server errors this batch brings (module docstring: rules ``tick``, ``time``,
        ``rpc``). Returns the number of links made."""
        rows = self._match_links(new)
        linked = {row[0] for row in rows}
        rows += [row for row in self._rpc_links(new) if row[0] not in linked]
        if not rows:
            return 0
        # only the links really inserted are counted (a concurrent ingest may have linked a report already)
        tail = "ON CONFLICT (client_uid) DO NOTHING RETURNING client_group, server_group"
        ordered = sorted(rows, key=lambda row: row[0])
        inserted = [tuple(r) for r in self._write_rows("links", ",".join(_LINK_COLUMNS), "client_uid", tail, ordered)]
        pairs: dict[tuple[str, str], int] = defaultdict(int)
        for pair in inserted:
            pairs[pair] += 1
        self._write_rows(
            "group_links",
            "client_group, server_group, n",
            "client_group, server_group",
            "ON CONFLICT (client_group, server_group) DO UPDATE SET n = group_links.n + excluded.n",
            [[c, s_, n] for (c, s_), n in sorted(pairs.items())],
        )
        return len(inserted)

    def _match_links(self, new: list[CrashReport]) -> list[list[Any]]:
        """Link rows (``links`` columns) of client reports downstream of a match handler error of their match."""
        clients: dict[str, tuple[str, str, str, int, int | None]] = {}
        for r in new:
            if r.side == "client" and r.match_key:
                clients[r.uid] = (r.uid, r.group_id, r.match_key, r.ts_ms, r.tick)
        error_keys = sorted({r.match_key for r in new if r.kind == "match_error" and r.match_key})
        for part in _chunks(error_keys):
            q = (
                f"SELECT r.uid, r.group_id, r.match_key, r.ts_ms, r.tick FROM reports r LEFT JOIN links l "
                f"ON l.client_uid = r.uid WHERE r.match_key IN ({_marks(part)}) AND r.side = 'client' "
                "AND l.client_uid IS NULL"
            )
            for row in self._x(q, part):
                clients.setdefault(row[0], tuple(row))
        if not clients:
            return []
        servers: dict[str, list[tuple[str, str, int, int | None]]] = defaultdict(list)
        for part in _chunks(sorted({c[2] for c in clients.values()})):
            q = f"SELECT uid, group_id, ts_ms, tick, match_key FROM reports WHERE match_key IN ({_marks(part)}) AND kind = 'match_error'"
            for uid, gid, ts, tick, mkey in self._x(q, part):
                servers[mkey].append((uid, gid, ts, tick))
        rules = self.rules
        rows = []
        for uid, gid, mkey, ts, tick in sorted(clients.values()):
            best = None
            cand: tuple[int, int, int, str, str, str, int | None, int]
            for s_uid, s_gid, s_ts, s_tick in servers.get(mkey, ()):
                dt = ts - s_ts
                if tick is not None and s_tick is not None and 0 <= tick - s_tick <= rules.link_ticks:
                    cand = (0, tick - s_tick, abs(dt), s_uid, s_gid, "tick", tick - s_tick, dt)
                elif -rules.clock_skew_ms <= dt <= rules.link_ms:
                    cand = (
                        1,
                        0,
                        abs(dt),
                        s_uid,
                        s_gid,
                        "time",
                        None if tick is None or s_tick is None else tick - s_tick,
                        dt,
                    )
                else:
                    continue
                if best is None or cand[:4] < best[:4]:
                    best = cand
            if best is not None:
                rows.append([uid, best[3], gid, best[4], mkey, best[5], best[6], best[7], None])
        return rows

    def _rpc_links(self, new: list[CrashReport]) -> list[list[Any]]:
        """Link rows of client reports whose RPC returned an error, downstream of a Nakama RPC error of the
        same RPC id at most ``link_rpc_ms`` before them (``clock_skew_ms`` after tolerated); closest wins."""
        before, after = self.rules.link_rpc_ms, self.rules.clock_skew_ms
        clients: dict[str, tuple[str, str, str, int]] = {}
        for r in new:
            if r.side == "client" and r.rpc_id and r.rpc_error:
                clients[r.uid] = (r.uid, r.group_id, r.rpc_id, r.ts_ms)
        errors: dict[str, list[int]] = defaultdict(list)
        for r in new:
            if r.kind == "rpc_error" and r.rpc_id:
                errors[r.rpc_id].append(r.ts_ms)
        for rpc_id, times in sorted(errors.items()):  # stored client reports these new errors may explain
            q = (
                "SELECT r.uid, r.group_id, r.rpc_id, r.ts_ms FROM reports r LEFT JOIN links l ON l.client_uid = r.uid "
                "WHERE r.side = 'client' AND r.rpc_error = 1 AND r.rpc_id = ? AND r.ts_ms >= ? AND r.ts_ms <= ? "
                "AND l.client_uid IS NULL"
            )
            for row in self._x(q, (rpc_id, min(times) - after, max(times) + before)):
                clients.setdefault(row[0], tuple(row))
        if not clients:
            return []
        spans: dict[str, list[int]] = {}
        for _, _, rpc_id, ts in clients.values():
            span = spans.setdefault(rpc_id, [ts, ts])
            span[0], span[1] = min(span[0], ts), max(span[1], ts)
        servers: dict[str, list[tuple[int, str, str]]] = {}
        for rpc_id, (lo, hi) in sorted(spans.items()):
            q = (
                "SELECT ts_ms, uid, group_id FROM reports WHERE kind = 'rpc_error' AND rpc_id = ? AND ts_ms >= ? "
                "AND ts_ms <= ? ORDER BY ts_ms, uid"
            )
            servers[rpc_id] = [tuple(row) for row in self._x(q, (rpc_id, lo - before, hi + after))]
        rows = []
        for uid, gid, rpc_id, ts in sorted(clients.values()):
            candidates = servers.get(rpc_id, [])
            i = bisect.bisect_left(candidates, (ts - before,))
            best = None
            for s_ts, s_uid, s_gid in candidates[i:]:
                if s_ts > ts + after:
                    break
                key = (abs(ts - s_ts), s_uid)
                if best is None or key < best[0]:
                    best = (key, s_uid, s_gid, ts - s_ts)
            if best is not None:
                rows.append([uid, best[1], gid, best[2], "", "rpc", None, best[3], rpc_id])
        return rows

    # -- recordings -----------------------------------------------------------------------------------------------
    def add_recordings(self, infos: Iterable[Any]) -> int:
        """Index recordings (``replay.triage.RecordingInfo``); re-indexing a location updates it."""
        rows = []
        now = _now_ms()
        for info in infos:
            rows.append(
                [
                    info.location,
                    info.match_key,
                    info.match_id,
                    info.signature.short_hash if info.signature else None,
                    info.crash_callback,
                    info.crash_tick,
                    info.integrity,
                    info.ticks,
                    info.calls,
                    info.started_ms,
                    info.size,
                    now,
                ]
            )
        if not rows:
            return 0
        sql = (
            "INSERT INTO recordings (location, match_key, match_id, group_id, crash_callback, crash_tick, integrity, "
            "ticks, calls, started_ms, size, indexed_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (location) DO "
            "UPDATE SET match_key = excluded.match_key, match_id = excluded.match_id, group_id = excluded.group_id, "
            "crash_callback = excluded.crash_callback, crash_tick = excluded.crash_tick, integrity = excluded.integrity, "
            "ticks = excluded.ticks, calls = excluded.calls, started_ms = excluded.started_ms, size = excluded.size, "
            "indexed_ms = excluded.indexed_ms"
        )
        self._write(self._many, sql, sorted(rows))
        return len(rows)

    # -- reading ----------------------------------------------------------------------------------------------------
    def resolve_group(self, prefix: str) -> str:
        """The full group id from a unique prefix (4 to 12 hex digits); ``UnknownGroup`` otherwise."""
        prefix = prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{4,12}", prefix):
            raise UnknownGroup(f"group '{prefix}': a group id is 4 to 12 hex digits (see `triage groups`)")
        rows = [
            r[0]
            for r in self._x(
                "SELECT id FROM crash_groups WHERE id >= ? AND id < ? ORDER BY id LIMIT 3", (prefix, prefix + "g")
            )
        ]
        if not rows:
            rec = self._x(
                "SELECT group_id FROM recordings WHERE group_id >= ? AND group_id < ? LIMIT 2", (prefix, prefix + "g")
            ).fetchall()
            if len({r[0] for r in rec}) == 1:
                return str(rec[0][0])
            raise UnknownGroup(f"group '{prefix}': no such group in {self.target} (see `triage groups`)")
        if len(rows) > 1:
            raise UnknownGroup(f"group '{prefix}' is ambiguous: {', '.join(rows[:2])}...; give more digits")
        return str(rows[0])

    def groups(self, flt: GroupFilter = GroupFilter()) -> list[dict[str, Any]]:
        """Groups by occurrence count (most first); with filters, the count of matching reports."""
        side_cond, side_params = ("", []) if flt.side is None else (" AND g.side = ?", [flt.side])
        facet = flt.single_facet()
        if not flt.narrowed:
            q = (
                f"SELECT g.id, g.n, g.first_ms, g.last_ms FROM crash_groups g WHERE 1 = 1{side_cond} "
                "ORDER BY g.n DESC, g.last_ms DESC, g.id LIMIT ?"
            )
            counted = list(self._x(q, [*side_params, flt.limit]))
        elif facet is not None:
            q = (
                f"SELECT g.id, f.n, g.first_ms, f.last_ms FROM group_facets f JOIN crash_groups g ON g.id = f.group_id "
                f"WHERE f.facet = ? AND f.value = ?{side_cond} ORDER BY f.n DESC, f.last_ms DESC, g.id LIMIT ?"
            )
            counted = list(self._x(q, [facet[0], facet[1], *side_params, flt.limit]))
        else:
            counted = list(self._x(*self._filtered_query(flt)))
        return [self._summary(gid, n, first, last) for gid, n, first, last in counted]

    def _filtered_query(self, flt: GroupFilter) -> tuple[str, list[Any]]:
        """Counts per group of the reports that match every filter: read through the filter columns' indexes
        (migration 2), never a scan of all reports."""
        conds = flt.report_conditions()
        where = " AND ".join(c for c, _ in conds)
        params = [v for _, v in conds]
        if flt.side is not None:
            where += " AND side = ?"
            params.append(flt.side)
        # SQLite: "+group_id" keeps the planner from reading every report in group order through reports_group_ts
        # to save the GROUP BY's sort (4.2 s instead of 0.24 s at a million reports, version + socket state)
        group = "+group_id" if self.dialect.name == "sqlite" else "group_id"
        q = (
            f"SELECT group_id, COUNT(*) AS n, MIN(ts_ms), MAX(ts_ms) FROM reports WHERE {where} "
            f"GROUP BY {group} ORDER BY n DESC, MAX(ts_ms) DESC, group_id LIMIT ?"
        )
        return q, [*params, flt.limit]

    def query_plan(self, flt: GroupFilter) -> list[str]:
        """How the database answers ``groups(flt)`` for two or more filters (or one with ``--since``): the
        lines of SQLite's ``EXPLAIN QUERY PLAN`` or PostgreSQL's ``EXPLAIN``, for benchmarks and tests."""
        q, params = self._filtered_query(flt)
        if self.dialect.name == "sqlite":
            return [str(row[3]) for row in self._x("EXPLAIN QUERY PLAN " + q, params)]
        return [str(row[0]) for row in self._x("EXPLAIN " + q, params)]

    def _summary(self, gid: str, n: int, first: int, last: int) -> dict[str, Any]:
        row = self._x(
            "SELECT side, sig_key, title, n, fixed_in, fixed_at_ms, regressions, last_regression_ms, example "
            "FROM crash_groups WHERE id = ?",
            (gid,),
        ).fetchone()
        side, key, title, total, fixed_in, fixed_at, regressions, last_reg, example = row
        facets: dict[str, list[dict[str, Any]]] = defaultdict(list)
        q = (
            "SELECT facet, value, n FROM group_facets WHERE group_id = ? AND facet IN "
            "('version', 'platform', 'op_code', 'rpc_id', 'socket_state', 'storage') ORDER BY facet, n DESC, value"
        )
        for facet, value, fn in self._x(q, (gid,)):
            facets[facet].append({"value": int(value) if facet == "op_code" else value, "count": int(fn)})
        matches = self._x(
            "SELECT COUNT(*) FROM group_facets WHERE group_id = ? AND facet = 'match'", (gid,)
        ).fetchone()[0]
        out: dict[str, Any] = {
            "group": gid,
            "side": side,
            "signature": key,
            "title": title,
            "count": int(n),
            "total": int(total),
            "first_seen_ms": int(first),
            "last_seen_ms": int(last),
            "example": example,
            "versions": facets.get("version", []),
            "platforms": facets.get("platform", []),
            "op_codes": facets.get("op_code", []),
            "rpcs": facets.get("rpc_id", []),
            "socket_states": facets.get("socket_state", []),
            "storage": facets.get("storage", []),
            "matches": int(matches),
            "fixed_in": fixed_in,
            "fixed_at_ms": fixed_at,
            "regressions": int(regressions),
            "last_regression_ms": last_reg,
            "regressed": bool(fixed_in and regressions),
        }
        if side == "client":
            q = "SELECT server_group, n FROM group_links WHERE client_group = ? ORDER BY n DESC, server_group"
            out["downstream_of"] = [{"group": g, "count": int(c)} for g, c in self._x(q, (gid,))]
        else:
            q = "SELECT client_group, n FROM group_links WHERE server_group = ? ORDER BY n DESC, client_group"
            out["client_symptoms"] = [{"group": g, "count": int(c)} for g, c in self._x(q, (gid,))]
        out["recordings"] = int(
            self._x(
                "SELECT COUNT(*) FROM recordings WHERE group_id = ? OR match_key IN "
                "(SELECT value FROM group_facets WHERE group_id = ? AND facet = 'match')",
                (gid, gid),
            ).fetchone()[0]
        )
        return out

    def group(self, gid: str, match_limit: int = 20) -> dict[str, Any]:
        """Everything ``triage show`` prints about one group (resolve the id first)."""
        row = self._x(
            "SELECT n, first_ms, last_ms, callback, error_type, frames FROM crash_groups WHERE id = ?", (gid,)
        ).fetchone()
        if row is None:  # a group known only from recordings
            recs = self.recordings(gid)
            return {
                "group": gid,
                "side": "server",
                "signature": None,
                "title": "(no reports: known from recordings)",
                "count": 0,
                "total": 0,
                "versions": [],
                "op_codes": [],
                "rpcs": [],
                "socket_states": [],
                "platforms": [],
                "storage": [],
                "matches": 0,
                "match_list": [],
                "recordings": len(recs),
                "recording_list": recs,
                "client_symptoms": [],
                "fixed_in": None,
                "regressions": 0,
                "regressed": False,
                "frames": [],
                "examples": [],
            }
        n, first, last, callback, error_type, frames = row
        out = self._summary(gid, n, first, last)
        out["callback"], out["error_type"], out["frames"] = callback, error_type, json.loads(frames)
        q = (
            "SELECT value, n, last_ms FROM group_facets WHERE group_id = ? AND facet = 'match' "
            "ORDER BY n DESC, last_ms DESC, value LIMIT ?"
        )
        matches = []
        for mkey, mn, mlast in self._x(q, (gid, match_limit)):
            recs = [r for r in self._recordings_where("match_key = ?", [mkey])]
            matches.append(
                {
                    "match": mkey,
                    "count": int(mn),
                    "last_seen_ms": int(mlast),
                    "recordings": [r["location"] for r in recs],
                }
            )
        out["match_list"] = matches
        out["recording_list"] = self.recordings(gid)
        q = (
            "SELECT uid, kind, ts_ms, match_id, tick, version, platform, error, source, line FROM reports "
            "WHERE group_id = ? ORDER BY ts_ms DESC, uid LIMIT 3"
        )
        out["examples"] = [
            dict(zip(("uid", "kind", "ts_ms", "match_id", "tick", "version", "platform", "error", "source", "line"), r))
            for r in self._x(q, (gid,))
        ]
        return out

    def _recordings_where(self, cond: str, params: list[Any]) -> list[dict[str, Any]]:
        cols = (
            "location",
            "match_key",
            "match_id",
            "group_id",
            "crash_callback",
            "crash_tick",
            "integrity",
            "ticks",
            "calls",
            "started_ms",
            "size",
        )
        q = f"SELECT {','.join(cols)} FROM recordings WHERE {cond}"
        return [dict(zip(cols, r)) for r in self._x(q, params)]

    def recordings(self, gid: str) -> list[dict[str, Any]]:
        """The group's recordings, best first: complete before anything else, then those whose crash is the
        group's (or, for a client group, the server group it is downstream of), then fewest ticks, then most
        recent. A recording belongs to a group by its crash signature or by being of one of its matches."""
        found: dict[str, dict[str, Any]] = {r["location"]: r for r in self._recordings_where("group_id = ?", [gid])}
        keys = [r[0] for r in self._x("SELECT value FROM group_facets WHERE group_id = ? AND facet = 'match'", (gid,))]
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            for r in self._recordings_where(f"match_key IN ({','.join('?' * len(part))})", part):
                found.setdefault(r["location"], r)
        wanted = {gid} | {r[0] for r in self._x("SELECT server_group FROM group_links WHERE client_group = ?", (gid,))}

        def rank(r: dict[str, Any]) -> tuple[Any, ...]:
            return (
                INTEGRITY_RANK.get(r["integrity"], 9),
                0 if r["group_id"] in wanted else 1,
                r["ticks"],
                -r["started_ms"],
                r["location"],
            )

        return sorted(found.values(), key=rank)

    def best_recording(self, gid: str) -> dict[str, Any] | None:
        recs = self.recordings(gid)
        return recs[0] if recs else None

    def reports(self, gid: str, limit: int = 100) -> Iterator[dict[str, Any]]:
        q = f"SELECT {','.join(_REPORT_COLUMNS)} FROM reports WHERE group_id = ? ORDER BY ts_ms, uid LIMIT ?"
        for row in self._x(q, (gid, limit)):
            yield dict(zip(_REPORT_COLUMNS, row))

    def links(self, gid: str, limit: int = 100) -> list[dict[str, Any]]:
        cols = _LINK_COLUMNS
        q = (
            f"SELECT {','.join(cols)} FROM links WHERE client_group = ? OR server_group = ? "
            "ORDER BY match_key, client_uid LIMIT ?"
        )
        return [dict(zip(cols, r)) for r in self._x(q, (gid, gid, limit))]

    def counts(self) -> dict[str, int]:
        def one(q: str) -> int:
            return int(self._x(q).fetchone()[0])

        return {
            "reports": one("SELECT COUNT(*) FROM reports"),
            "groups": one("SELECT COUNT(*) FROM crash_groups"),
            "links": one("SELECT COUNT(*) FROM links"),
            "recordings": one("SELECT COUNT(*) FROM recordings"),
        }

    # -- fix marks -----------------------------------------------------------------------------------------------------
    def mark_fixed(self, gid: str, version: str, at_ms: int | None = None) -> dict[str, Any]:
        """Mark a group fixed in ``version``; reports already stored with that version or a later one are
        regressions at once (the fix did not hold), and so is every later one (``_is_regression``)."""
        at = _now_ms() if at_ms is None else at_ms

        def go() -> None:
            if self._x("SELECT 1 FROM crash_groups WHERE id = ?", (gid,)).fetchone() is None:
                raise UnknownGroup(f"group {gid} has no reports to mark (see `triage groups`)")
            self._x("UPDATE reports SET regression = 0 WHERE group_id = ? AND regression = 1", (gid,))
            fixed_key = version_key(version)
            later = [
                v
                for (v,) in self._x("SELECT value FROM group_facets WHERE group_id = ? AND facet = 'version'", (gid,))
                if version_key(v) >= fixed_key
            ]
            n = 0
            last = None
            for start in range(0, len(later), 500):
                part = later[start : start + 500]
                q = f"WHERE group_id = ? AND version IN ({','.join('?' * len(part))})"
                c, m = self._x(f"SELECT COUNT(*), MAX(ts_ms) FROM reports {q}", [gid, *part]).fetchone()
                self._x(f"UPDATE reports SET regression = 1 {q}", [gid, *part])
                n += int(c)
                last = m if last is None or (m is not None and m > last) else last
            self._x(
                "UPDATE crash_groups SET fixed_in = ?, fixed_at_ms = ?, regressions = ?, last_regression_ms = ? WHERE id = ?",
                (version, at, n, last, gid),
            )

        self._write(go)
        return self._summary(
            gid, *self._x("SELECT n, first_ms, last_ms FROM crash_groups WHERE id = ?", (gid,)).fetchone()
        )

    def reopen(self, gid: str) -> None:
        """Remove a group's fix mark (and its regression flags)."""

        def go() -> None:
            self._x(
                "UPDATE crash_groups SET fixed_in = NULL, fixed_at_ms = NULL, regressions = 0, last_regression_ms = NULL "
                "WHERE id = ?",
                (gid,),
            )
            self._x("UPDATE reports SET regression = 0 WHERE group_id = ? AND regression = 1", (gid,))

        self._write(go)


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(items: list[Any]) -> str:
    return ",".join("?" * len(items))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _db_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    mod = type(exc).__module__ or ""
    return mod.startswith("psycopg")
