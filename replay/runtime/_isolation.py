"""Run one handler version at a time in a process that has seen others.

A Python handler that imports a sibling module (``arena_fixed.py`` does ``from arena import *``) leaves
that module in ``sys.modules`` under its plain name; the next handler loaded from another folder (another
revision during ``bisect``, another regression recording under pytest) would silently get the first one.
``fresh_imports(folder)`` hides the modules named like the folder's own ``.py`` files and packages while a
handler from that folder is loaded and replayed, then forgets what was imported from it and puts the
hidden ones back. Standard-library names are left alone. ``sys.modules`` is one per process, so blocks
run one at a time (a lock): threads replaying in parallel take turns.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["fresh_imports", "handler_folder", "reproduce_isolated", "resolve_with_folder"]

_LOCK = threading.RLock()


def handler_folder(spec: str | os.PathLike[str]) -> Path:
    """The folder of a handler spec (``dir/arena.py``, ``dir/arena.py:Arena``, ``dir/match.lua``)."""
    from replay.runtime._handlers import split_spec

    return split_spec(spec)[0].resolve().parent


def _local_names(folder: Path) -> set[str]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return set()
    names = {p.stem for p in entries if p.suffix == ".py"}
    names |= {p.name for p in entries if p.is_dir() and (p / "__init__.py").is_file()}
    return names - set(sys.stdlib_module_names)


@contextmanager
def fresh_imports(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Inside the block, modules named like the folder's files are imported afresh; afterwards they are
    dropped from ``sys.modules`` and whatever was there before is restored."""
    with _LOCK:
        names = _local_names(Path(folder))
        if not names:
            yield
            return

        def ours(name: str) -> bool:
            return name.partition(".")[0] in names

        hidden = {n: m for n, m in sys.modules.items() if ours(n)}
        for n in hidden:
            del sys.modules[n]
        try:
            yield
        finally:
            for n in [n for n in sys.modules if ours(n)]:
                del sys.modules[n]
            sys.modules.update(hidden)


def resolve_with_folder(recording: str | os.PathLike[str], handler: Any) -> tuple[Any, Path]:
    """The handler spec (None: the header's, relative to the recording) and the folder its siblings are in."""
    spec = handler
    if spec is None:
        from recorder.format import open_recording
        from replay.runtime._handlers import recorded_handler

        with open_recording(recording) as rec:
            named = rec.header.handler
        spec = recorded_handler(recording, named) if named else None  # None: reproduce() says what is missing
    if isinstance(spec, (str, os.PathLike)):
        return spec, handler_folder(spec)
    return spec, Path(recording).resolve().parent


def reproduce_isolated(
    recording: str | os.PathLike[str], handler: Any = None, options: Any = None, observer: Any = None
) -> Any:
    """``replay.runtime.reproduce`` with the handler's sibling modules imported afresh (``fresh_imports``).
    ``handler`` None means the one the recording's header names."""
    from replay.runtime._runtime import reproduce

    spec, folder = resolve_with_folder(recording, handler)
    with fresh_imports(folder):
        return reproduce(os.fspath(recording), spec, options, observer=observer)
