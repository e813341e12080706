"""Loading match handlers: a Python file (module functions or a class), a Nakama Lua module or a JS bundle.

``load_handler("arena.py")`` uses the module's functions; ``load_handler("arena.py:Arena")`` an instance of
``Arena``; ``load_handler("match.lua")`` a Lua module through ``replay.lua._handler``;
``load_handler("build/index.js:arena")`` the match ``arena`` a JavaScript bundle registers (a ``.ts`` file is
compiled first) through ``replay.js``. Every handler exposes
the seven callbacks under Python names with Python calling conventions::

    match_init(ctx, logger, nk, params) -> (state, tick_rate, label)
    match_join_attempt(ctx, logger, nk, dispatcher, tick, state, presence, metadata) -> (state, accept, reason)
    match_join / match_leave(ctx, logger, nk, dispatcher, tick, state, presences) -> state
    match_loop(ctx, logger, nk, dispatcher, tick, state, messages) -> state
    match_terminate(ctx, logger, nk, dispatcher, tick, state, grace_seconds) -> state
    match_signal(ctx, logger, nk, dispatcher, tick, state, data) -> (state, reply)

plus ``copy_state`` (a deep copy, for sync tests) and ``state_value`` (the state as plain JSON-like data,
for digests and diffs).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from recorder.format import CALLBACKS
from replay.errors import HandlerError, HandlerLoadError, UntrustedHandler
from replay.runtime._hang import LOADING, reporting

__all__ = ["Handler", "PythonHandler", "load_handler", "recorded_handler", "split_spec"]


class Handler(Protocol):
    path: str
    name: str
    language: str

    def copy_state(self, state: Any) -> Any: ...
    def state_value(self, state: Any) -> Any: ...


def split_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``"dir/arena.py:Arena"`` -> (Path("dir/arena.py"), "Arena"); a Windows drive letter is not a class."""
    text = os.fspath(spec)
    path, sep, cls = text.rpartition(":")
    if sep and cls.isidentifier() and path and not (len(path) == 1 and path.isalpha()):
        return Path(path), cls
    return Path(text), None


def recorded_handler(recording: str | os.PathLike[str], named: str) -> str:
    """The handler spec a recording's header names (``named``), resolved against the recording's folder,
    if it stays inside that folder tree; the one place a recorded handler path is turned into a file.

    A recording is untrusted input (it comes from logs, bug trackers, other studios), so a name that is
    absolute, climbs out with ``..``, or leads out through a symlink raises ``UntrustedHandler`` and is
    never imported. A name that resolves inside but is missing raises ``HandlerLoadError`` saying the
    path came from the header. ``recording`` None-like ``"<memory>"`` resolves against the current folder.
    """
    rec = os.fspath(recording)
    if not named:
        raise HandlerError(f"{rec}: the recording names no handler; pass one with --handler FILE.py|FILE.lua|FILE.js")
    if not isinstance(named, str) or len(named) > 4096 or any(ord(c) < 32 for c in named):
        raise UntrustedHandler(rec, str(named)[:200], "not a usable file name")
    from recorder.storage import local_path

    local = local_path(rec)
    if local is None:  # an object store's key is not a folder tree of ours: nothing there is imported
        raise UntrustedHandler(rec, named, "the recording was read from a URL, and handlers are never loaded from one")
    rec_path = local
    path, cls = split_spec(named)
    base = (Path.cwd() if rec == "<memory>" else Path(rec_path).resolve().parent).resolve()
    if path.is_absolute() or path.drive or path.root:
        raise UntrustedHandler(rec, named, "an absolute path")
    target = (base / path).resolve()
    if not target.is_relative_to(base):
        lexical = Path(os.path.normpath(base / path))
        how = "a symlink leads out" if lexical.is_relative_to(base) else "'..' climbs out"
        raise UntrustedHandler(rec, named, how)
    if not target.is_file():
        problem = "is a folder" if target.is_dir() else "no such file"
        raise HandlerLoadError(
            str(target),
            f"{problem} (the path {named!r} comes from the header of {rec}; pass --handler FILE to run another)",
        )
    return f"{target}:{cls}" if cls else str(target)


class PythonHandler:
    """A handler written in Python: module-level callbacks or the methods of a class instance."""

    language = "python"

    def __init__(self, path: Path, class_name: str | None = None) -> None:
        self.path = str(path)
        self.name = path.stem if class_name is None else f"{path.stem}:{class_name}"
        module = _import_file(path)
        target: Any = module
        if class_name is not None:
            cls = getattr(module, class_name, None)
            if cls is None or not isinstance(cls, type):
                raise HandlerLoadError(str(path), f"no class {class_name!r} in the module")
            try:
                target = cls()
            except Exception as exc:  # a user's constructor can raise anything
                raise HandlerLoadError(str(path), f"{class_name}() raised {type(exc).__name__}: {exc}") from exc
        for name in CALLBACKS:
            fn = getattr(target, name, None)
            if not callable(fn):
                raise HandlerLoadError(
                    str(path), f"missing callback {name!r}: a match handler defines all of {', '.join(CALLBACKS)}"
                )
            setattr(self, name, fn)
        self.module = module

    def copy_state(self, state: Any) -> Any:
        return copy.deepcopy(state)

    def state_value(self, state: Any) -> Any:
        return state


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise HandlerLoadError(str(path), "no such file")
    resolved = path.resolve()
    # a name unique to the file's content, so two versions of one file (bisect, diff --against) coexist
    digest = hashlib.sha1(resolved.read_bytes() + str(resolved).encode()).hexdigest()[:12]
    name = f"nkreplay_handler_{resolved.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(str(path), "not a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(resolved.parent)
    sys.path.insert(0, folder)
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise HandlerLoadError(str(path), f"syntax error at line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:  # importing user code can raise anything
        sys.modules.pop(name, None)
        raise HandlerLoadError(str(path), f"importing it raised {type(exc).__name__}: {exc}") from exc
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


#: what ``load_handler`` loads (the file suffixes) and how errors say it
HANDLER_SUFFIXES = (".py", ".lua", ".js", ".ts")
HANDLER_KINDS = (
    "a handler is a .py file (optionally file.py:ClassName), a .lua module or a JavaScript bundle .js "
    "(optionally file.js:MATCH_NAME; .ts is compiled first)"
)


def load_handler(spec: str | os.PathLike[str], *, module_path: list[str] | None = None) -> Any:
    """Load a handler from ``file.py``, ``file.py:ClassName``, ``module.lua`` or ``bundle.js[:MATCH]``/``.ts``."""
    with reporting(LOADING):
        return _load(spec, module_path)


def _load(spec: str | os.PathLike[str], module_path: list[str] | None) -> Any:
    path, class_name = split_spec(spec)
    if path.is_dir():
        raise HandlerLoadError(str(path), f"is a folder; {HANDLER_KINDS}")
    suffix = path.suffix.lower()
    if suffix == ".lua":
        try:
            from replay.lua._handler import LuaHandler  # optional, imports lupa
        except ImportError as exc:
            raise HandlerLoadError(str(path), f"Lua handlers need the Lua runtime (lupa): {exc}") from exc
        if not path.is_file():
            raise HandlerLoadError(str(path), "no such file")
        return LuaHandler(path, module_path=module_path)
    if suffix in (".js", ".ts"):
        try:
            from replay.js._handler import JsHandler  # optional, imports quickjs
        except ImportError as exc:
            raise HandlerLoadError(str(path), f"JavaScript handlers need QuickJS (quickjs-ng): {exc}") from exc
        return JsHandler(path, class_name)
    if suffix != ".py":
        raise HandlerLoadError(str(path), HANDLER_KINDS)
    return PythonHandler(path, class_name)
