"""Results rendered for people and for JSON, in one place.

The commands, the pytest plugin and the regression checks build result objects (``ReplayResult``,
``MatchDiff``, ``LiveReport``, ``FuzzReport``); ``format_reproduce``, ``format_diff``, ``format_live`` and
``format_fuzz`` turn them into the text the commands print (strings: nothing here prints). ``jsonable``,
``describe_data``, ``presence_json`` and ``short`` are the one convention for values inside reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.report._text import format_diff, format_fuzz, format_live, format_regression_failure, format_reproduce
    from replay.report._values import describe_data, exact_bytes, jsonable, presence_json, short

__all__ = [
    "describe_data",
    "exact_bytes",
    "format_diff",
    "format_fuzz",
    "format_live",
    "format_regression_failure",
    "format_reproduce",
    "jsonable",
    "presence_json",
    "short",
]

__getattr__, __dir__ = lazy_exports(__name__)
