"""Results rendered for people and for JSON, in one place.

The commands, the pytest plugin and the regression checks build result objects (``ReplayResult``,
``MatchDiff``, ``LiveReport``, ``FuzzReport``, ``BatchSummary``, ``BisectResult``, a recording's ``Summary``,
an ``Ingest``, what the crash store returns); the ``format_*`` functions turn them into the text the commands
print (strings ending in a newline: nothing here prints). ``jsonable``, ``describe_data``, ``presence_json`` and
``short`` are the one convention for values inside reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.report._recording import format_inspect, format_log_ingest
    from replay.report._regression import format_bisect, format_bisect_start, format_bisect_step, format_run_all
    from replay.report._text import format_diff, format_fuzz, format_live, format_regression_failure, format_reproduce
    from replay.report._triage import (
        format_triage_fixed,
        format_triage_group,
        format_triage_groups,
        format_triage_ingest,
    )
    from replay.report._values import describe_data, exact_bytes, jsonable, presence_json, short

__all__ = [
    "describe_data",
    "exact_bytes",
    "format_bisect",
    "format_bisect_start",
    "format_bisect_step",
    "format_diff",
    "format_fuzz",
    "format_inspect",
    "format_live",
    "format_log_ingest",
    "format_regression_failure",
    "format_reproduce",
    "format_run_all",
    "format_triage_fixed",
    "format_triage_group",
    "format_triage_groups",
    "format_triage_ingest",
    "jsonable",
    "presence_json",
    "short",
]

__getattr__, __dir__ = lazy_exports(__name__)
