"""``nakama-replay``: a thin command line over the library.

Each command lives in its own module under ``replay.commands`` with ``HELP`` (one line), a docstring
(its ``--help`` description), ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
heavy libraries (numba, websockets, lupa) inside ``run`` so that ``--help`` stays fast.
Errors we raise on purpose print as ``Type: message`` and exit 2 (bad input).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from recorder.errors import NakamaReplayError

__all__ = ["main", "COMMANDS"]

#: command name -> module under replay.commands. Order is the order --help lists them in.
COMMANDS: dict[str, str] = {
    "reproduce": "reproduce",
    "inspect": "inspect",
    "diff": "diff",
    "ingest": "ingest",
    "lua-check": "lua_check",
    "import": "import_jsonl",
    "export": "export_jsonl",
    "serve": "serve",
    "proxy": "proxy",
    "playback": "playback",
    "replay": "replay",
    "bisect": "bisect",
    "run-all": "run_all",
    "fuzz": "fuzz",
}

_HELP_EPILOG = """\
a crash report names a match: get its recording, then
  nakama-replay inspect REC                              # what the match saw
  nakama-replay reproduce REC                            # the crash again, tick and traceback
  nakama-replay reproduce REC --handler fixed.py         # does the fix hold? (exit 1: no crash)
  nakama-replay diff REC --handler old.py --against fixed.py   # first divergent tick and fields
  nakama-replay bisect REC --handler-file match.lua --revs v1.0..HEAD
  nakama-replay fuzz --handler match.py --out found/     # crashes before players find them

recordings come from nakama-replay serve/proxy, the Lua capture module (then `ingest`), or
JSON Lines (`import`/`export`).

Run `nakama-replay COMMAND --help` for each command's options. Exit codes: 0 success or reproduced,
1 did not reproduce / diverged, 2 bad input.
"""


def _load(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"replay.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nakama-replay",
        description="Deterministic match replay and crash reproduction for Nakama match handlers.",
        epilog=_HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        p = sub.add_parser(
            name, help=module.HELP, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    module = _load(args.command)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning  # type: ignore[assignment]
            return int(module.run(args) or 0)
    except NakamaReplayError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
