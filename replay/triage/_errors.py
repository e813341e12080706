"""Errors of the triage side, under the project's one root (``recorder.errors.NakamaReplayError``).

::

    NakamaReplayError
    └── TriageError (ValueError)         triage cannot use an input or its store
        ├── ReportError                  a client report, Sentry event or log line is malformed (source, line, field)
        ├── StoreError                   the crash store cannot be opened, migrated or queried (url, problem)
        └── UnknownGroup (LookupError)   a group id that names no group, or more than one

Like every error of the project they keep their data on attributes (``path``, ``line``, ``field``) so the
CLI's boundary prints one line (and a JSON object with ``--json``) and exits 2.
"""

from __future__ import annotations

from recorder.errors import NakamaReplayError

__all__ = ["TriageError", "ReportError", "StoreError", "UnknownGroup"]


class TriageError(NakamaReplayError, ValueError):
    """Triage cannot use an input or its crash store."""


class ReportError(TriageError):
    """A report (client JSON, Sentry event, server log line) that does not fit the schema.

    ``path`` and ``line`` say where (line 0: the whole file), ``field`` which field (dotted), ``problem`` what
    is wrong with it."""

    def __init__(self, problem: str, *, path: str = "", line: int = 0, field: str = "") -> None:
        self.problem, self.path, self.line, self.field = problem, path, line, field
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}{what}{problem}")


class StoreError(TriageError):
    """The crash store (SQLite file or PostgreSQL database) cannot be used."""

    def __init__(self, url: str, problem: str) -> None:
        self.url, self.problem = url, problem
        self.path = url if "://" not in url else ""
        super().__init__(f"{url}: {problem}")


class UnknownGroup(TriageError, LookupError):
    """A group id (or prefix) that names no group in the store, or more than one."""
