"""Compile a TypeScript match module to the one-file ES5 script Nakama loads, with TypeScript 5's ``tsc``.

Which compiler: TypeScript 5.x (5.9.3 is pinned in ``tests/js/package.json``). npm's ``typescript@latest``
is 7.x, the Go-native compiler, which removed ``--outFile`` and ``--target es5``: exactly the options
Nakama's documented setup uses (one plain script with a top-level ``InitModule``, no module system, ES5 for
goja). Where ``tsc`` is found, in order: ``$NKREPLAY_TSC``; ``node_modules/.bin/tsc`` in the file's folder
or any folder above it (the studio's own project); ``tsc`` on ``PATH``. A ``tsconfig.json`` beside the
file is not read: the options below are Nakama's recipe. Type errors do not stop the build (``tsc`` emits
anyway), so a module using types from ``nakama-runtime`` compiles without that package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from replay.errors import HandlerLoadError

__all__ = ["TSC_OPTIONS", "compile_typescript", "find_tsc"]

TSC_OPTIONS = (
    "--target",
    "es5",
    "--lib",
    "es2015",
    "--outFile",
    "{out}",
    "--removeComments",
    "false",
    "--pretty",
    "false",
)
_HINT = (
    "TypeScript handlers need the TypeScript 5 compiler and node: run `npm install --save-dev typescript@5` in your "
    "project (or set NKREPLAY_TSC to a tsc 5.x), or pass the compiled bundle (build/index.js) instead"
)


def find_tsc(start: Path) -> str | None:
    """The ``tsc`` to use for a file in folder ``start`` (see the module docstring), or None."""
    env = os.environ.get("NKREPLAY_TSC")
    if env:
        return env
    for folder in [start, *start.parents]:
        candidate = folder / "node_modules" / ".bin" / "tsc"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("tsc")


def compile_typescript(path: Path, timeout: float = 120.0) -> bytes:
    """The compiled bundle of ``path`` (UTF-8 bytes); ``HandlerLoadError`` when it cannot be built."""
    tsc = find_tsc(path.resolve().parent)
    if tsc is None or shutil.which("node") is None:
        raise HandlerLoadError(str(path), _HINT)
    try:
        version = subprocess.run(
            [tsc, "--version"], capture_output=True, text=True, timeout=timeout, check=False
        ).stdout.strip()
    except OSError as exc:
        raise HandlerLoadError(str(path), f"cannot run {tsc}: {exc}; {_HINT}") from None
    if not version.startswith("Version 5."):
        raise HandlerLoadError(
            str(path), f"{tsc} is {version or 'not tsc'}, not TypeScript 5 (7.x dropped --outFile and ES5); {_HINT}"
        )
    with tempfile.TemporaryDirectory(prefix="nkreplay-tsc-") as tmp:
        out = Path(tmp) / "index.js"
        args = [tsc, *(a.format(out=out) for a in TSC_OPTIONS), str(path)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HandlerLoadError(str(path), f"tsc did not finish within {timeout:.0f} s") from None
        if not out.is_file():
            first = (done.stdout or done.stderr).strip().splitlines()
            raise HandlerLoadError(str(path), f"tsc produced no output: {first[0] if first else 'no message'}")
        return out.read_bytes()
