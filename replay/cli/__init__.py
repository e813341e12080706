"""``nakama-replay``: a thin command line over the library.

``main(argv)`` is the one error boundary (``_main``); option types and path checks shared by the commands are in
``_args``, shared flags in ``_common``; each command is one module under ``_commands`` (``HELP``, a docstring that
is its ``--help``, ``add_arguments``, ``run``). ``python -m replay.cli`` is the same command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.cli._main import COMMANDS, build_parser, main

__all__ = [
    "COMMANDS",
    "build_parser",
    "main",
]

__getattr__, __dir__ = lazy_exports(__name__)
