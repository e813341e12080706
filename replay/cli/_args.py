"""Option types and path checks every command shares, so a bad value reads the same everywhere.

Numbers and addresses are argparse ``type=`` functions (checked while the command line is parsed, before
any work starts)::

    p.add_argument("--until-tick", type=count)           # whole number >= 0 (ticks, counts, limits)
    p.add_argument("--chunk-events", type=positive)      # whole number >= 1 (sizes, jobs, examples)
    p.add_argument("--users", type=int_at_least(2))      # any other lower bound
    p.add_argument("--seed", type=whole)                 # any whole number
    p.add_argument("--hang-timeout", type=seconds)       # a finite number > 0
    p.add_argument("--max-memory", type=byte_size)       # bytes, or with a K, M, G, T suffix: 512M, 4G
    p.add_argument("--nakama", type=server_url)          # http://HOST:PORT, returned unchanged
    p.add_argument("--listen", type=listen_address(7350))   # HOST:PORT -> recorder.wire.Address

Paths are checked at the start of ``run`` (some defaults depend on other options), raising ``PathError``:
``input_file``, ``input_dir``, ``output_file``, ``output_dir``; ``input_location`` and ``output_location`` take
URLs too (``s3://bucket/key``, ``memory://...``: ``recorder.storage``). The rule for outputs, everywhere: the output
itself is created (or an existing file replaced once the new one is complete; an existing folder is
written into), but a missing parent folder is not created: the command stops with exit 2 and names it,
so a typo in a path never scatters folders.

An argparse type raises ``ArgumentTypeError`` with ``'VALUE': problem``; ``replay.cli._main`` turns it into an
``OptionError`` naming the option (exit 2, one line).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from recorder.errors import OptionError, PathError
from recorder.wire import Address, parse_listen, parse_server_url

__all__ = [
    "count",
    "positive",
    "int_at_least",
    "whole",
    "seconds",
    "byte_size",
    "server_url",
    "listen_address",
    "input_file",
    "input_dir",
    "handler_file",
    "output_file",
    "output_dir",
    "input_location",
    "output_location",
    "output_dir_location",
]


def _bad(text: str, problem: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text!r}: {problem}")


def whole(text: str) -> int:
    """A whole number (seeds): ``"42"``, ``"-7"``."""
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise _bad(text, "expected a whole number") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def convert(text: str) -> int:
        try:
            n = int(text.strip(), 10)
        except ValueError:
            raise _bad(text, f"expected a whole number >= {minimum}") from None
        if n < minimum:
            raise _bad(text, f"must be at least {minimum}")
        return n

    convert.__name__ = f"int_at_least_{minimum}"
    return convert


count = int_at_least(0)
count.__doc__ = "A whole number >= 0: ticks, counts, limits."
positive = int_at_least(1)
positive.__doc__ = "A whole number >= 1: sizes, jobs, example budgets."


def seconds(text: str) -> float:
    """A duration in seconds: a finite number > 0 (``"0.5"``, ``"30"``)."""
    try:
        value = float(text)
    except ValueError:
        raise _bad(text, "expected a number of seconds > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise _bad(text, "must be a finite number of seconds > 0")
    return value


def byte_size(text: str) -> int:
    """A size in bytes > 0: ``"1000000"``, or with a K, M, G or T suffix (powers of 1024): ``"512M"``, ``"4G"``."""
    from replay.runtime._supervisor import parse_size

    try:
        return parse_size(text)
    except ValueError:
        raise _bad(text, "expected a size above 0 in bytes, or with a K, M or G suffix (512M, 4G)") from None


def server_url(text: str) -> str:
    """``http://HOST:PORT`` checked by ``recorder.wire.parse_server_url``; returned unchanged."""
    try:
        parse_server_url(text, option="")
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def listen_address(default_port: int) -> Callable[[str], Address]:
    """An argparse type: ``HOST:PORT``, ``:PORT`` or ``PORT`` -> ``Address`` (host 127.0.0.1 by default;
    port 0 picks a free one)."""

    def convert(text: str) -> Address:
        try:
            return parse_listen(text, option="", default_port=default_port)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = "listen_address"
    return convert


# ---------------------------------------------------------------- paths


def input_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` if it is a readable file; else ``PathError`` saying which of missing / a folder /
    unreadable it is. ``what`` names it in the message ("recording", "log")."""
    p = Path(path)
    if p.is_dir():
        raise PathError(p, f"is a folder, not a {what}")
    if not p.exists():
        raise PathError(p, "no such file" + _missing_parent(p))
    if not p.is_file():
        raise PathError(p, f"is not a regular file (a {what} is expected)")
    if not os.access(p, os.R_OK):
        raise PathError(p, f"the {what} is not readable (permission denied)")
    return p


def input_location(location: str, what: str = "file") -> str:
    """``location`` if it names a readable file: a plain path (``input_file``), or a URL (``recorder.storage``)
    with an object behind it; else ``PathError``/``StorageError``. Returned unchanged."""
    from recorder.storage import check_location, is_url, kind_of, local_path

    local = local_path(location)
    if local is not None:
        input_file(local, what)
        return location
    check_location(location)
    kind = kind_of(location)
    if kind is None:
        raise PathError(location, f"no such {what} (nothing at that URL)")
    if kind == "dir":
        raise PathError(location, f"is a folder (a prefix), not a {what}")
    assert is_url(location)
    return location


def input_dir(path: str | os.PathLike[str], what: str = "folder") -> Path:
    """``path`` if it is a readable folder; else ``PathError``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise PathError(p, f"is a file, not a {what}")
    if not p.exists():
        raise PathError(p, f"no such {what}")
    if not os.access(p, os.R_OK | os.X_OK):
        raise PathError(p, f"the {what} is not readable (permission denied)")
    return p


def handler_file(spec: str) -> str:
    """A handler spec (``FILE.py``, ``FILE.py:Class``, ``FILE.lua``, ``FILE.js[:MATCH]``, ``FILE.ts``) whose file
    exists, checked without loading it (``replay.runtime.load_handler`` loads, and says more); returned unchanged."""
    from replay.runtime._handlers import HANDLER_KINDS, HANDLER_SUFFIXES, split_spec

    path, _ = split_spec(spec)
    input_file(path, "handler file")
    if path.suffix.lower() not in HANDLER_SUFFIXES:
        raise PathError(path, HANDLER_KINDS)
    return spec


def output_file(path: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if a file can be written there: not a folder, its parent folder exists and is writable, and
    not the same file as ``source`` (the input it is made from, which replacing it would destroy)."""
    p = Path(path)
    if source is not None and p.exists() and Path(source).exists() and os.path.samefile(p, source):
        raise PathError(p, "is also the input file; write to another file (replacing it would lose the input)")
    if p.is_dir():
        raise PathError(p, "is a folder; give the name of the file to write")
    if p.exists() and not os.access(p, os.W_OK):
        raise PathError(p, "exists and is not writable (permission denied)")
    _check_parent(p)
    return p


def output_location(location: str, *, source: str | None = None, what: str = "file") -> str:
    """``location`` if a file can be written there: a plain path (``output_file``'s checks), or a URL that
    carries no credentials and is not a folder (prefix) already; returned unchanged. Object stores have no
    folders to create, so a URL's "parent" needs no check; its key appears only once the output is whole."""
    from recorder.storage import check_location, kind_of, local_path

    local = local_path(location)
    if local is not None:
        output_file(local, source=local_path(source) if source is not None else None)
        return location
    check_location(location)
    if location.endswith("/"):
        raise PathError(location, f"ends with '/', a prefix; give the key of the {what} to write")
    if source is not None and source.rstrip("/") == location.rstrip("/"):
        raise PathError(location, "is also the input; write to another key (replacing it would lose the input)")
    if kind_of(location) == "dir":
        raise PathError(location, f"is a folder (a prefix with objects below it); give the key of the {what} to write")
    return location


def output_dir_location(location: str) -> str:
    """``location`` if recordings can be written into it: a folder on this machine (``output_dir``), or a URL
    prefix (``s3://bucket/prefix/``) without credentials that is not an object itself; returned unchanged."""
    from recorder.storage import check_location, kind_of, local_path

    local = local_path(location)
    if local is not None:
        output_dir(local)
        return location
    check_location(location)
    if kind_of(location) == "file":
        raise PathError(location, "is an object (a file), not a prefix to write into")
    return location


def output_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` if recordings can be written into it: an existing writable folder, or a new one whose
    parent folder exists (the command creates it)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise PathError(p, "is a file, not a folder (give a folder to write into)")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise PathError(p, "the folder is not writable (permission denied)")
        return p
    _check_parent(p)
    return p


def _check_parent(p: Path) -> None:
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise PathError(p, f"{str(parent)!r} is a file, not a folder")
    if not parent.exists():
        raise PathError(p, f"the folder {str(parent)!r} does not exist (create it first: mkdir -p {parent})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(p, f"the folder {str(parent)!r} is not writable (permission denied)")


def _missing_parent(p: Path) -> str:
    parent = p.parent
    if str(parent) not in ("", ".") and not parent.exists():
        return f" (the folder {str(parent)!r} does not exist either)"
    return ""
