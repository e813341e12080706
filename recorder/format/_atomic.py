"""Write a file so that it appears whole or not at all.

``atomic_output(OUT)`` hands out ``OUT.incomplete.tmp`` (next to OUT, on the same file system) to write
into and renames it to OUT only when the block finishes without an error; on an error it is removed, so
OUT is never a partial file and an existing OUT is replaced only by a complete one. A process killed
mid-write (SIGKILL, power loss) can only leave ``OUT.incomplete.tmp`` behind; the next
``atomic_output(OUT)`` writes to that same name, so it ends renamed or removed either way.

``atomic_location(OUT)`` does the same for a plain path or a URL (``recorder.storage``) and yields a location
string to hand to a writer: for a URL the temporary is the object ``OUT.incomplete.tmp`` (a ``RecordingWriter``
given it commits it on close), moved to ``OUT`` on success and deleted on an error, so the key ``OUT`` too
appears whole or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "temp_path", "atomic_output", "atomic_location"]

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


@contextmanager
def atomic_location(out: str | os.PathLike[str]) -> Iterator[str]:
    """``atomic_output`` for a plain path or a URL: yields the temporary location (a string) to write."""
    from recorder.storage import local_path, move, remove

    if local_path(out) is not None:
        with atomic_output(local_path(out) or out) as tmp:
            yield str(tmp)
        return
    tmp_url = str(out) + TEMP_SUFFIX
    try:
        yield tmp_url
        move(tmp_url, str(out))
    except BaseException:
        remove(tmp_url)
        remove(tmp_url + TEMP_SUFFIX)  # what a writer given tmp_url had not committed yet
        raise
