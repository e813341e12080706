"""The crash store's schema, as numbered migrations applied in order (``schema_migrations`` records them).

Statements are written once for both databases; ``{id}``, ``{bigint}`` and ``{text}`` become each
dialect's types. A migration is never edited after it shipped: a change is a new migration.

Tables:

- ``reports``: one row per crash occurrence (``uid`` unique: ingest is idempotent), both sides;
- ``crash_groups``: one row per crash signature (``id`` = the signature's short hash), with the running count,
  first and last seen, and the fix mark (``fixed_in``, ``fixed_at_ms``, ``regressions``);
- ``group_facets``: per group, counts by client version, platform, op code, RPC, socket state, storage
  key and match, kept up to date at ingest so listing a million reports reads a few rows;
- ``links``: a client report downstream of a server match error or RPC error (its uid, both groups, the
  rule that matched and the evidence: tick and time differences; the RPC id for an ``rpc`` link);
- ``group_links``: links counted per (client group, server group), kept up to date with ``links``;
- ``recordings``: indexed recordings (location, match, crash, signature group, integrity, size in ticks).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "LATEST"]

_V1 = (
    """CREATE TABLE reports (
        id {id},
        uid {text} NOT NULL UNIQUE,
        side {text} NOT NULL,
        kind {text} NOT NULL,
        group_id {text} NOT NULL,
        ts_ms {bigint} NOT NULL,
        match_key {text},
        match_id {text},
        tick {bigint},
        session_id {text},
        user_id {text},
        presence_count {bigint},
        op_code {bigint},
        op_code_size {bigint},
        rpc_id {text},
        rpc_error SMALLINT,
        rpc_unexpected_shape SMALLINT,
        socket_state {text},
        session_valid SMALLINT,
        ms_since_last_message {bigint},
        reconnecting SMALLINT,
        storage_collection {text},
        storage_key {text},
        storage_ok SMALLINT,
        version {text},
        platform {text},
        error {text} NOT NULL,
        stack {text} NOT NULL,
        source {text} NOT NULL,
        line {bigint} NOT NULL,
        regression SMALLINT NOT NULL DEFAULT 0,
        ingested_ms {bigint} NOT NULL
    )""",
    "CREATE INDEX reports_group_ts ON reports (group_id, ts_ms)",
    "CREATE INDEX reports_match ON reports (match_key)",
    "CREATE INDEX reports_ts ON reports (ts_ms)",
    """CREATE TABLE crash_groups (
        id {text} PRIMARY KEY,
        side {text} NOT NULL,
        sig_key {text} NOT NULL,
        callback {text} NOT NULL,
        error_type {text} NOT NULL,
        frames {text} NOT NULL,
        title {text} NOT NULL,
        example {text} NOT NULL,
        n {bigint} NOT NULL,
        first_ms {bigint} NOT NULL,
        last_ms {bigint} NOT NULL,
        fixed_in {text},
        fixed_at_ms {bigint},
        regressions {bigint} NOT NULL DEFAULT 0,
        last_regression_ms {bigint}
    )""",
    "CREATE INDEX groups_side_n ON crash_groups (side, n)",
    """CREATE TABLE group_facets (
        group_id {text} NOT NULL,
        facet {text} NOT NULL,
        value {text} NOT NULL,
        n {bigint} NOT NULL,
        last_ms {bigint} NOT NULL,
        PRIMARY KEY (group_id, facet, value)
    )""",
    "CREATE INDEX group_facets_value ON group_facets (facet, value)",
    """CREATE TABLE links (
        client_uid {text} PRIMARY KEY,
        server_uid {text} NOT NULL,
        client_group {text} NOT NULL,
        server_group {text} NOT NULL,
        match_key {text} NOT NULL,
        rule {text} NOT NULL,
        delta_ticks {bigint},
        delta_ms {bigint} NOT NULL
    )""",
    "CREATE INDEX links_client_group ON links (client_group)",
    """CREATE TABLE group_links (
        client_group {text} NOT NULL,
        server_group {text} NOT NULL,
        n {bigint} NOT NULL,
        PRIMARY KEY (client_group, server_group)
    )""",
    "CREATE INDEX group_links_server ON group_links (server_group)",
    "CREATE INDEX links_server_group ON links (server_group)",
    """CREATE TABLE recordings (
        location {text} PRIMARY KEY,
        match_key {text},
        match_id {text} NOT NULL,
        group_id {text},
        crash_callback {text},
        crash_tick {bigint},
        integrity {text} NOT NULL,
        ticks {bigint} NOT NULL,
        calls {bigint} NOT NULL,
        started_ms {bigint} NOT NULL,
        size {bigint} NOT NULL,
        indexed_ms {bigint} NOT NULL
    )""",
    "CREATE INDEX recordings_match ON recordings (match_key)",
    "CREATE INDEX recordings_group ON recordings (group_id)",
)

#: version 2: filtered listings read indexes instead of scanning every report, and RPC links.
#: One partial index per filter column, holding only the reports that have a value (most server reports have no
#: op code, most client reports no RPC): with two filters the database reads the more selective column's entries
#: and checks the other on those rows only. Two small partial indexes find the other side of an RPC link by RPC
#: id and time: Nakama's RPC errors, and client reports whose RPC returned an error. ``links.rpc_id`` is the RPC
#: of an ``rpc`` link (its ``match_key`` is then empty).
_V2 = (
    "CREATE INDEX reports_op_code ON reports (op_code) WHERE op_code IS NOT NULL",
    "CREATE INDEX reports_rpc ON reports (rpc_id) WHERE rpc_id IS NOT NULL",
    "CREATE INDEX reports_version ON reports (version) WHERE version IS NOT NULL",
    "CREATE INDEX reports_socket_state ON reports (socket_state) WHERE socket_state IS NOT NULL",
    "CREATE INDEX reports_platform ON reports (platform) WHERE platform IS NOT NULL",
    "CREATE INDEX reports_rpc_errors ON reports (rpc_id, ts_ms) WHERE kind = 'rpc_error'",
    "CREATE INDEX reports_rpc_failed ON reports (rpc_id, ts_ms) WHERE side = 'client' AND rpc_error = 1",
    "ALTER TABLE links ADD COLUMN rpc_id {text}",
)

#: (version, statements), in order
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ((1, _V1), (2, _V2))
LATEST = MIGRATIONS[-1][0]
