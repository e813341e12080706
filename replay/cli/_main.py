"""``nakama-replay``: a thin command line over the library.

Each command lives in its own module under ``replay.cli._commands`` with ``HELP`` (one line), a docstring
(its ``--help`` description), ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
heavy libraries (numba, websockets, lupa) inside ``run`` so that ``--help`` stays fast. Option types and
path checks shared by the commands are in ``replay.cli._args``.

``main`` is the one error boundary: a usage mistake (argparse's too), every ``NakamaReplayError`` and the
foreign errors a user causes (``translate_errors``: a file that cannot be opened, a port in use, a damaged
compressed input) print as one line ``Type: message`` on stderr and exit 2; with ``--json`` the same error
is also a JSON object on stdout (``error``, ``exit``, ``type``, and ``file``/``line``/``offset``/``chunk``/
``tick``/``field`` where known). Anything else is a bug in nakama-replay: its traceback is printed and
the exit status is 70 (never 1, which would read as a verdict). Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import sys
import traceback
import warnings
import zlib
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, NoReturn, TextIO

from recorder.errors import IncompleteRecording, NakamaReplayError, OptionError, PathError
from replay.cli._common import epilog
from replay.runtime._interrupt import catching_interrupts

__all__ = ["main", "COMMANDS", "translate_errors", "error_json", "EXIT_BAD_INPUT", "EXIT_INCOMPLETE", "EXIT_INTERNAL"]

EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3  # the recording is not complete, so no verdict was drawn
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # a bug in nakama-replay (sysexits EX_SOFTWARE): never 1, which reads as a verdict

#: command name -> module under replay.cli._commands. Order is the order --help lists them in.
COMMANDS: dict[str, str] = {
    "reproduce": "reproduce",
    "inspect": "inspect",
    "view": "view",
    "slice": "slice",
    "diff": "diff",
    "ingest": "ingest",
    "lua-check": "lua_check",
    "import": "import_jsonl",
    "export": "export_jsonl",
    "convert": "convert",
    "serve": "serve",
    "proxy": "proxy",
    "playback": "playback",
    "live": "live",
    "bisect": "bisect",
    "run-all": "run_all",
    "fuzz": "fuzz",
    "triage": "triage",
}

#: old command name -> its new name: still accepted, with a one-line notice on stderr
RENAMED: dict[str, str] = {"replay": "live"}

_HELP_EPILOG = """\
a crash report names a match: get its recording, then
  nakama-replay inspect REC                              # what the match saw
  nakama-replay reproduce REC --handler match.py         # the crash again, tick and traceback
  nakama-replay reproduce REC --handler fixed.py         # does the fix hold? (exit 1: no crash)
  nakama-replay diff REC --handler old.py --against fixed.py   # first divergent tick and fields
  nakama-replay bisect REC --handler-file match.lua --revs v1.0..HEAD
  nakama-replay fuzz --handler match.py --out found/     # crashes before players find them
  nakama-replay live REC --nakama http://127.0.0.1:7350  # the recording into a real Nakama, in real time

recordings come from nakama-replay serve/proxy, the Lua capture module (then `ingest`), or
JSON Lines (`import`/`export`); a proxy's wire recording becomes handler calls with `convert`.

Run `nakama-replay COMMAND --help` for each command's options. Exit codes: 0 success or reproduced,
1 did not reproduce / diverged, 2 bad input (one line naming the file, option, line or tick; with
--json also a JSON object on stdout), 3 incomplete: the recording is unsealed, damaged or version 1,
so no verdict was drawn (--allow-incomplete draws one from its intact part), 130 interrupted, 70 a bug
in nakama-replay (please report it).
"""


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"replay.cli._commands.{COMMANDS[RENAMED.get(name, name)]}")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``OptionError`` instead of printing usage and exiting, so a usage mistake
    goes through the same boundary as every other error (one line, exit 2, JSON with --json)."""

    def error(self, message: str) -> NoReturn:
        option, sep, problem = message.partition(": ")
        if sep and option.startswith("argument "):
            raise OptionError(option[len("argument ") :], None, f"{problem} (see {self.prog} --help)")
        raise OptionError("", None, f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nakama-replay",
        description="Deterministic match replay and crash reproduction for Nakama match handlers.",
        epilog=_HELP_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nakama-replay {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = _load(name)
        p = sub.add_parser(name, help=module.HELP, **_page(module))
        module.add_arguments(p)
    for old, new in RENAMED.items():  # not listed in --help
        module = _load(new)
        p = sub.add_parser(old, **_page(module))
        module.add_arguments(p)
    return parser


def _page(module: Any) -> dict[str, Any]:
    """A command's --help page: its docstring, then its examples and exit codes (one shared layout)."""
    return {
        "description": module.__doc__,
        "epilog": epilog(module.EXAMPLES, module.EXIT_CODES),
        "formatter_class": HelpFormatter,
    }


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description and epilog as written, and shows every option's default: one whose help does
    not already name it gets "(default: X)" (flags, options without a default and lists that start empty
    have none to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
        ):
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nakama-replay")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args_list  # known before parsing, so a usage error answers in JSON too
    try:
        with translate_errors(), catching_interrupts():
            parser = build_parser()
            args = parser.parse_args(args_list)
            if args.command is None:
                parser.print_help()
                return EXIT_BAD_INPUT
            if args.command in RENAMED:
                print(
                    f"warning: `nakama-replay {args.command}` is now `nakama-replay {RENAMED[args.command]}`; "
                    "the old name will be removed",
                    file=sys.stderr,
                )
            module = _load(args.command)
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = _show_warning
                return int(module.run(args) or 0)
    except IncompleteRecording as exc:  # refused before any verdict: the recording is not complete
        _report(exc, EXIT_INCOMPLETE, json_mode)
        return EXIT_INCOMPLETE
    except NakamaReplayError as exc:
        _report(exc, EXIT_BAD_INPUT, json_mode)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the boundary: anything left is our bug
        traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc} (a bug in nakama-replay; please report it with the "
            "traceback above)",
            file=sys.stderr,
        )
        if json_mode:
            _print_json_error({"error": str(exc), "exit": EXIT_INTERNAL, "type": type(exc).__name__, "internal": True})
        return EXIT_INTERNAL


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn the foreign errors a user's input or machine causes into ours, here and nowhere else: a file
    that cannot be opened (``PathError`` naming it), a port that cannot be listened on (``OptionError``),
    a damaged compressed input. Library code raises what it raises; this maps it at the CLI's edge."""
    try:
        yield
    except NakamaReplayError:
        raise
    except (EOFError, zlib.error) as exc:  # gzip/zlib input cut short or damaged
        raise NakamaReplayError(f"compressed input is damaged or cut short: {exc}") from exc
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and exc.filename is None:
            raise  # our reader went away (| head): main exits quietly
        if exc.filename is not None:
            raise PathError(exc.filename, _os_problem(exc)) from exc
        if isinstance(exc, (ConnectionError, TimeoutError)):
            raise NakamaReplayError(f"connection failed: {_os_problem(exc)}") from exc
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise OptionError("--listen", None, f"cannot listen: {_os_problem(exc)}") from exc
        raise NakamaReplayError(_os_problem(exc)) from exc


def _os_problem(exc: OSError) -> str:
    if exc.filename is None:  # a socket: the text names the address
        return str(exc.strerror or exc) or type(exc).__name__
    return _FILE_PROBLEMS.get(exc.errno or -1) or str(exc.strerror or exc)


_FILE_PROBLEMS = {
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "permission denied",
    errno.ENOSPC: "no space left on the device",
}


#: exception attributes copied into the JSON error object, under these names
_JSON_FIELDS = (
    ("path", "file"),
    ("line", "line"),
    ("offset", "offset"),
    ("chunk", "chunk"),
    ("tick", "tick"),
    ("field", "field"),
    ("option", "field"),
    ("callback", "callback"),
    ("url", "url"),
    ("step", "step"),
)


def error_json(exc: BaseException, exit_code: int = EXIT_BAD_INPUT) -> dict[str, Any]:
    """The JSON object an error prints as with ``--json``: ``error``, ``exit``, ``type`` and the
    location fields the exception knows (``file``, ``line``, ``offset``, ``chunk``, ``tick``, ``field``)."""
    obj: dict[str, Any] = {"error": str(exc), "exit": exit_code, "type": type(exc).__name__}
    for attr, key in _JSON_FIELDS:
        value = getattr(exc, attr, None)
        if value is None or value == "" or key in obj:
            continue
        if isinstance(value, (str, int, float, bool)):
            obj[key] = value
    return obj


def _report(exc: BaseException, code: int, json_mode: bool) -> None:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    if json_mode:
        _print_json_error(error_json(exc, code))


def _print_json_error(obj: dict[str, Any]) -> None:
    with contextlib.suppress(BrokenPipeError):
        json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"warning: {message}", file=sys.stderr)
