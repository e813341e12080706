"""One ingest: read every input, keep going past bad items, store what was read, say what happened.

``ingest(store, client=..., sentry=..., logs=..., recordings=...)`` reads each source fully (a bad report
or line is collected as a ``ReportError`` and skipped), then stores the reports (idempotent: uids already
stored are counted as duplicates) and indexes the recordings; a recording with a crash marker also stands
for its server occurrence, under the same uid as Nakama's crash line for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import NakamaReplayError
from replay.errors import ReportError
from replay.triage._schema import CrashReport
from replay.triage._sources import (
    RecordingInfo,
    find_recordings,
    read_client_reports,
    read_recording,
    read_sentry_events,
    read_server_log,
)
from replay.triage._store import TriageStore

__all__ = ["IngestReport", "ingest"]


@dataclass(slots=True)
class IngestReport:
    """What one ingest read, stored and skipped."""

    read: Counter[str] = field(default_factory=Counter)  # reports read per kind
    added: int = 0
    duplicates: int = 0
    links: int = 0
    regressions: int = 0
    recordings: int = 0
    groups: set[str] = field(default_factory=set)
    bad: list[ReportError] = field(default_factory=list)
    bad_recordings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": dict(sorted(self.read.items())),
            "added": self.added,
            "duplicates": self.duplicates,
            "links": self.links,
            "regressions": self.regressions,
            "recordings": self.recordings,
            "groups_touched": sorted(self.groups),
            "bad": [{"error": str(e), "file": e.path, "line": e.line, "field": e.field} for e in self.bad]
            + [{"error": text, "file": "", "line": 0, "field": ""} for text in self.bad_recordings],
        }


def _collect(items: Iterable[CrashReport | ReportError], report: IngestReport) -> Iterator[CrashReport]:
    for item in items:
        if isinstance(item, ReportError):
            report.bad.append(item)
        else:
            report.read[item.kind] += 1
            yield item


def ingest(
    store: TriageStore,
    *,
    client: Iterable[str] = (),
    sentry: Iterable[str] = (),
    logs: Iterable[str] = (),
    recordings: Iterable[str] = (),
    batch: int = 5000,
    progress: Callable[[str, int], None] | None = None,
) -> IngestReport:
    """Read the inputs and store them (see the module docstring). ``progress(source, items_read)`` is called
    as reading goes (every thousand items and at each new source)."""
    report = IngestReport()
    infos: list[RecordingInfo] = []
    for path in find_recordings(list(recordings)):
        try:
            infos.append(read_recording(path))
        except NakamaReplayError as exc:
            report.bad_recordings.append(f"{path}: {exc}")

    def sources() -> Iterator[tuple[str, Iterable[CrashReport | ReportError]]]:
        for path in client:
            yield path, read_client_reports(path)
        for path in sentry:
            yield path, read_sentry_events(path)
        for path in logs:
            yield path, read_server_log(path)

    def everything() -> Iterator[CrashReport]:
        n = 0
        for path, items in sources():
            if progress is not None:
                progress(path, n)
            for r in _collect(items, report):
                n += 1
                if progress is not None and n % 1000 == 0:
                    progress(path, n)
                yield r
        for info in infos:
            found = info.crash_report()
            if found is not None:
                report.read["recording"] += 1
                yield found
        if progress is not None:
            progress("", n)

    if infos:  # recordings first, so that the links made by the reports can already name them
        report.recordings = store.add_recordings(infos)
    result = store.add_reports(everything(), batch=batch)
    report.added, report.duplicates, report.links = result.added, result.duplicates, result.links
    report.regressions, report.groups = result.regressions, result.groups
    return report
