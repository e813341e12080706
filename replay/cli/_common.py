"""Small helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from replay.cli._args import byte_size, seconds

__all__ = [
    "EXIT_INCOMPLETE",
    "SHARED_EXIT_CODES",
    "epilog",
    "add_integrity_flags",
    "default_output_dir",
    "add_json_flag",
    "add_module_path_flag",
    "add_out_flag",
    "add_progress_flag",
    "default_output_help",
    "resolve_output_dir",
    "stderr_if_json",
    "add_redact_flag",
    "add_supervisor_flags",
    "hang_timeout",
    "integrity_gate",
    "limits",
    "module_paths",
    "print_json",
]

#: the exit status of a command that drew no verdict because a recording is not complete
EXIT_INCOMPLETE = 3


#: the exit codes every command shares, added to each command's own in its --help epilog
SHARED_EXIT_CODES: dict[int, str] = {
    2: "bad input or a usage mistake: one line on stderr naming the file, option, offset, line, tick or field "
    "(with --json also a JSON object on stdout)",
    70: "a bug in nakama-replay: its traceback is printed (please report it)",
    130: "interrupted (Ctrl-C)",
}


def epilog(examples: Sequence[str], exit_codes: Mapping[int, str]) -> str:
    """The ``--help`` epilog of a command: its examples, then its exit codes (the command's own meanings, and
    the shared ones it does not word itself), so every command's help ends the same way."""
    if not examples:
        raise ValueError("a command's --help needs at least one example")
    lines = ["Example:", *(f"  {example}" for example in examples), "", "Exit codes:"]
    codes = {**SHARED_EXIT_CODES, **exit_codes}
    for code in sorted(codes):
        lines.append(
            textwrap.fill(
                codes[code],
                width=100,
                initial_indent=f"  {code:<4} ",
                subsequent_indent=" " * 7,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def default_output_dir(name: str) -> str:
    """Where a command writes when no ``-o/--out`` is given: ``$XDG_DATA_HOME/nakama-replay/NAME``
    (``~/.local/share/nakama-replay/NAME`` when XDG_DATA_HOME is unset), never the current folder. The
    command prints it."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "nakama-replay", name)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts instead of text")


def stderr_if_json(args: argparse.Namespace) -> Any:
    """``print`` for the human lines of a long-running command: on stdout, or on stderr with ``--json``,
    whose stdout holds only the final JSON document. Flushed, since a caller may wait for a line."""

    def say(line: str) -> None:
        print(line, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)

    return say


def add_out_flag(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    metavar: str = "PATH",
    required: bool = False,
    old: Sequence[str] = (),
) -> None:
    """``-o/--out PATH``, every command's one spelling of its output (a file or a folder). ``old`` spellings
    (``--output``) still work but are not shown in ``--help``."""
    parser.add_argument("-o", "--out", dest="out", metavar=metavar, required=required, help=help)
    for name in old:
        parser.add_argument(name, dest="out", metavar=metavar, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_progress_flag(parser: argparse.ArgumentParser, *, old: Sequence[str] = ()) -> None:
    """``--no-progress``, the one progress switch (progress goes to stderr); ``old`` spellings (``--quiet``)
    still work but are not shown."""
    parser.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress output on stderr")
    for name in old:
        parser.add_argument(name, dest="no_progress", action="store_true", help=argparse.SUPPRESS)


def add_module_path_flag(parser: argparse.ArgumentParser) -> None:
    """``--module-path DIR`` (repeatable), wherever a Lua handler is loaded."""
    parser.add_argument(
        "--module-path", action="append", default=[], metavar="DIR", help="extra folder for Lua require (repeatable)"
    )


def module_paths(args: argparse.Namespace) -> list[str]:
    """The ``--module-path`` folders, checked to exist (exit 2 naming one that does not), as absolute paths:
    handler processes and batch workers may run elsewhere."""
    import os

    from replay.cli._args import input_dir

    for folder in args.module_path:
        input_dir(folder, "--module-path folder")
    return [os.path.abspath(folder) for folder in args.module_path]


def default_output_help(name: str) -> str:
    """The words ``--help`` uses for :func:`default_output_dir`."""
    return f"default: $XDG_DATA_HOME/nakama-replay/{name}, i.e. {default_output_dir(name)}; printed when used"


def resolve_output_dir(args: argparse.Namespace, name: str) -> str:
    """``args.out``, or the default folder, which is created (with its parents, it is ours) and announced on
    stderr, so that nothing is written anywhere the user was not told about."""
    import os

    if args.out is not None:
        return str(args.out)
    folder = default_output_dir(name)
    os.makedirs(folder, exist_ok=True)
    print(f"no -o/--out given: writing into {folder}", file=sys.stderr, flush=True)
    return folder


def _json_key(text: str) -> str:
    import argparse

    if not text.strip("_- "):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a JSON key name")
    return text


def add_redact_flag(parser: argparse.ArgumentParser) -> None:
    """``--redact-key KEY`` (repeatable) for commands that write what they observe (``recorder.wire._redact``)."""
    parser.add_argument(
        "--redact-key",
        action="append",
        type=_json_key,
        default=[],
        metavar="KEY",
        help="also write this JSON key's values as <redacted>, at any depth, payload strings included "
        "(repeatable; any case, _ and - ignored; token, refresh_token and anything shaped like a JWT always are)",
    )


def add_integrity_flags(parser: argparse.ArgumentParser) -> None:
    """``--strict`` and ``--allow-incomplete``, for every command that reads a recording."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a recording that is not complete (sealed, every chunk intact and in sequence): exit 3 "
        "before doing anything",
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="draw the answer from the intact part of an unsealed, damaged or version-1 recording (the "
        "output still says what was not read); without it such a recording gives exit 3",
    )


def integrity_gate(path: str, args: Any, *, refuse: bool = False) -> Any:
    """Check ``path``'s integrity before a command works on it, when the flags ask for it: ``--strict``,
    or ``refuse`` (commands that cannot report half a run, unless ``--allow-incomplete``) raise
    ``IncompleteRecording`` (exit 3) for a recording that is not complete. Returns the ``Integrity``
    when it was checked, else None (the command's own reading reports it)."""
    from recorder.errors import NakamaReplayError
    from recorder.format import incomplete_error, verify

    strict, allow = getattr(args, "strict", False), getattr(args, "allow_incomplete", False)
    if strict and allow:
        raise NakamaReplayError("--strict and --allow-incomplete contradict each other: pick one")
    if strict and getattr(args, "salvage", False):
        raise NakamaReplayError(
            "--strict and --salvage contradict each other: --strict refuses a damaged recording, --salvage reads"
            " past the damage; pick one"
        )
    if not (strict or refuse):
        return None
    integrity = verify(path)
    if not integrity.complete and (strict or (refuse and not allow)):
        raise incomplete_error(path, integrity)
    return integrity


def print_json(obj: Any) -> None:
    """One JSON object on stdout, keys in a stable order, bytes as base64."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=_default, ensure_ascii=False)
    sys.stdout.write("\n")


def _default(o: Any) -> Any:
    from recorder._b64 import b64

    if isinstance(o, (bytes, bytearray)):
        return b64(bytes(o))
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def add_supervisor_flags(parser: argparse.ArgumentParser, hang_default: float = 5.0) -> None:
    """The options of commands that run handlers under the supervisor (``replay.runtime._supervisor``)."""
    parser.add_argument(
        "--hang-timeout",
        type=seconds,
        default=hang_default,
        metavar="S",
        help=f"seconds before a callback counts as hung, whatever it blocks in (default {hang_default:g})",
    )
    parser.add_argument("--no-hang-guard", action="store_true", help="never treat a slow callback as hung")
    parser.add_argument(
        "--max-memory",
        type=byte_size,
        default=None,
        metavar="SIZE",
        help="memory cap of the handler process, e.g. 512M or 8G (default 4G; Linux only)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the handler in this process, unsupervised (for a debugger): a callback blocked in C, an "
        "exit, a segfault or a memory hog then takes the command down with it",
    )


def hang_timeout(args: argparse.Namespace) -> float | None:
    """The hang timeout the options ask for (None: no hang guard)."""
    return None if args.no_hang_guard else args.hang_timeout


def limits(args: argparse.Namespace) -> Any:
    """The supervisor's ``Limits`` from the options."""
    from replay.runtime._supervisor import DEFAULT_MAX_MEMORY, Limits

    return Limits(hang_timeout(args), args.max_memory or DEFAULT_MAX_MEMORY)
