"""Write a file so that it appears whole or not at all.

``atomic_output(OUT)`` hands out ``OUT.incomplete.tmp`` (next to OUT, on the same file system) to write
into and renames it to OUT only when the block finishes without an error; on an error it is removed, so
OUT is never a partial file and an existing OUT is replaced only by a complete one. A process killed
mid-write (SIGKILL, power loss) can only leave ``OUT.incomplete.tmp`` behind; the next
``atomic_output(OUT)`` writes to that same name, so it ends renamed or removed either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "temp_path", "atomic_output"]

TEMP_SUFFIX = ".incomplete.tmp"


def temp_path(out: str | os.PathLike[str]) -> Path:
    """Where ``atomic_output(out)`` writes before the rename."""
    p = Path(out)
    return p.with_name(p.name + TEMP_SUFFIX)


@contextmanager
def atomic_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield the temporary path to write; rename it to ``out`` when the block succeeds."""
    final = Path(out)
    tmp = temp_path(final)  # one left by a killed run is overwritten, then renamed or removed with ours
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
