"""Two-sided crash triage: client crash reports and server runtime errors, grouped by crash signature,
client crashes linked to the server errors they follow, and each group's best recording one command away
from its reproduction (``nakama-replay triage``, ``nakama-replay reproduce --group``).

``CrashReport`` is one crash from either side; ``parse_client_report`` reads the documented client report
schema, ``parse_sentry_event`` a Sentry event, ``read_server_log`` Nakama's log (match handler errors, RPC
errors, the capture module's crash records) and ``read_recording`` indexes a recording's crash marker.
``client_signature`` extends ``CrashSignature`` to client stack traces. ``TriageStore`` (SQLite, or
PostgreSQL for a ``postgresql://`` URL) keeps reports, groups, facets, links and fix marks; ``ingest`` reads
inputs into it and says what it skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.errors import ReportError, StoreError, TriageError, UnknownGroup
    from replay.triage._client_signature import client_signature, sentry_frames, stack_frames
    from replay.triage._ingest import IngestReport, ingest
    from replay.triage._schema import CrashReport, match_key, parse_client_report
    from replay.triage._sources import (
        RecordingInfo,
        parse_sentry_event,
        read_client_reports,
        read_recording,
        read_sentry_events,
        read_server_log,
    )
    from replay.triage._store import GroupFilter, LinkRules, TriageStore, version_key

__all__ = [
    "CrashReport",
    "GroupFilter",
    "IngestReport",
    "LinkRules",
    "RecordingInfo",
    "ReportError",
    "StoreError",
    "TriageError",
    "TriageStore",
    "UnknownGroup",
    "client_signature",
    "ingest",
    "match_key",
    "parse_client_report",
    "parse_sentry_event",
    "read_client_reports",
    "read_recording",
    "read_sentry_events",
    "read_server_log",
    "sentry_frames",
    "stack_frames",
    "version_key",
]

__getattr__, __dir__ = lazy_exports(__name__)
