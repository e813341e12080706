"""Where recordings live: plain paths on this machine, or URLs anywhere fsspec reaches.

A location is a plain path (``fixtures/x.nkrec``) or a URL with a scheme (``s3://bucket/prefix/x.nkrec``,
``gs://...``, ``memory://...``, ``file:///abs/x.nkrec``). Plain paths and ``file://`` URLs are opened with the
operating system's ``open``, as before; every other scheme through fsspec (``s3://`` needs ``s3fs``, the
``s3`` extra; ``gs://`` needs ``gcsfs``).

Reading streams: ``open_input`` hands the reader a seekable file object that fetches blocks on demand
(``BLOCK_SIZE`` per ranged read; a local file is read through a buffer of that size), so a reader that stops after the header, or after the first damaged chunk,
fetches only what it read; a recording is never downloaded whole first. The first ranged read also tells the
size of an object smaller than a block (fewer bytes come back), so a small recording costs one request.

Writing commits on close (``open_output``): an object store has no append, and a reader must never take a
half-written object for a recording. The bytes go to the key ``NAME.incomplete.tmp`` beside the final one;
``close()`` moves it to ``NAME`` (a copy and a delete on S3). A writer that ends by an error still closes
(``RecordingWriter.abandon()``: its file is committed unsealed, as a local writer's stays unsealed on disk);
a writer killed outright (SIGKILL, a lost machine) commits nothing: the final key never appears, and what it
had written stays behind in the temporary key (or, on S3, in an unfinished multipart upload that the bucket's
lifecycle rule for incomplete uploads removes), where a local writer would have left an unsealed file.

Credentials and endpoints come from each backend's own environment (S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``...; GCS: ``GOOGLE_APPLICATION_CREDENTIALS``),
never from the command line: a URL carrying ``user:password@`` is refused (``StorageError``), because
locations end up in reports, JSON and logs.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import IO, Any, cast

from recorder.errors import NakamaReplayError

__all__ = [
    "BLOCK_SIZE",
    "StorageError",
    "is_url",
    "check_location",
    "kind_of",
    "open_input",
    "open_output",
    "find_files",
    "local_path",
    "sibling",
    "read_small",
    "move",
    "remove",
    "write_whole",
]

#: bytes per request when reading from an object store (fsspec's read-ahead block)
BLOCK_SIZE = 1 << 20

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_USERINFO = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@]*@")
_TEMP_SUFFIX = ".incomplete.tmp"


class StorageError(NakamaReplayError):
    """A location that cannot be used: a bad URL, a missing backend, an object that is not there."""


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` (``file://`` included), False for a plain path."""
    return isinstance(location, str) and _SCHEME.match(location) is not None


def local_path(location: str | os.PathLike[str]) -> str | None:
    """The path on this machine of a plain path or ``file://`` URL; None for any other URL."""
    if not is_url(location):
        return os.fspath(location)
    assert isinstance(location, str)
    if location.lower().startswith("file://"):
        return location[len("file://") :] or "/"
    return None


def check_location(location: str | os.PathLike[str]) -> None:
    """Refuse a URL that carries credentials (``scheme://user:secret@...``): they would be printed."""
    if isinstance(location, str) and _USERINFO.match(location):
        scheme = _SCHEME.match(location)
        assert scheme is not None
        raise StorageError(
            f"{scheme.group(1)}://...: the URL carries credentials (user@ or user:password@), which would end up "
            "in reports and logs; give them through the backend's environment instead (S3: AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE; GCS: GOOGLE_APPLICATION_CREDENTIALS)"
        )


def _filesystem(url: str) -> tuple[Any, str]:
    check_location(url)
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise StorageError(f"{url}: reading URLs needs fsspec (pip install fsspec)") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return fs, str(path)
    except (ImportError, ValueError) as exc:
        scheme = _SCHEME.match(url)
        name = scheme.group(1) if scheme else url
        hint = " (pip install 'nakama-replay[s3]')" if name in ("s3", "s3a") else ""
        raise StorageError(f"{url}: no usable backend for {name}://: {exc}{hint}") from None


def kind_of(location: str | os.PathLike[str]) -> str | None:
    """``"file"``, ``"dir"`` or None (nothing there). Object stores have no empty folders: a prefix with
    objects below it is a ``"dir"``."""
    path = local_path(location)
    if path is not None:
        p = Path(path)
        return "dir" if p.is_dir() else "file" if p.exists() else None
    fs, key = _filesystem(str(location))
    try:
        info = fs.info(key)
    except FileNotFoundError:
        return None
    except Exception as exc:  # network, permissions: the backend's words, without credentials
        raise StorageError(f"{location}: cannot be reached: {type(exc).__name__}: {exc}") from None
    return "dir" if info.get("type") == "directory" else "file"


def _first_block(fs: Any, key: str, location: str | os.PathLike[str]) -> bytes:
    """The object's first ``BLOCK_SIZE`` bytes, in one ranged read: all of it when fewer come back.
    Raises ``FileNotFoundError`` when there is no object at ``key`` (also when it is a prefix)."""
    try:
        return bytes(fs.cat_file(key, start=0, end=BLOCK_SIZE))
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(location) from None
    except Exception as exc:  # network, permissions: the backend's words, without credentials
        problem = exc
    try:  # S3 refuses any range of an empty object ("range not satisfiable"): ask what is there
        if fs.info(key).get("size") == 0:
            return b""
    except Exception:
        pass
    raise StorageError(f"{location}: cannot be opened: {type(problem).__name__}: {problem}") from None


class _RangedFile(io.RawIOBase):
    """A read-only, seekable object of known size, fetched ``BLOCK_SIZE`` bytes per ranged read as the reader
    reaches them (the first block is already here: the read that found the object)."""

    def __init__(self, fs: Any, key: str, location: str, size: int, first: bytes) -> None:
        super().__init__()
        self._fs, self._key, self._location = fs, key, location
        self.size = size
        self._block_start, self._block = 0, first
        self._pos = 0
        self.requested_bytes = len(first)  # what was fetched so far (tests check that a header read is cheap)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            at = self._pos - self._block_start
            if not 0 <= at < len(self._block):
                self._fetch(self._pos)
                at = 0
                if not self._block:  # the object shrank under us: what is left reads as its end
                    break
            take = min(len(view) - done, len(self._block) - at)
            view[done : done + take] = self._block[at : at + take]
            done += take
            self._pos += take
        return done

    def _fetch(self, start: int) -> None:
        end = min(start + BLOCK_SIZE, self.size)
        try:
            data = bytes(self._fs.cat_file(self._key, start=start, end=end))
        except Exception as exc:
            raise StorageError(
                f"{self._location}: cannot be read at byte {start}: {type(exc).__name__}: {exc}"
            ) from None
        self._block_start, self._block = start, data
        self.requested_bytes += len(data)


def open_input(location: str | os.PathLike[str]) -> tuple[IO[bytes], int]:
    """A seekable binary file object and its size in bytes. URLs: one ranged read of the first ``BLOCK_SIZE``
    bytes, which is the whole object when fewer come back (one request for a small recording); a bigger one
    then costs one metadata request for its size and one ranged read per further block reached. Raises
    ``FileNotFoundError`` or ``IsADirectoryError`` (a folder, or a prefix with objects below it)."""
    path = local_path(location)
    if path is not None:
        # read through a buffer of a block: the reader seeks to and reads one frame at a time, and with the
        # default 8 KiB buffer most frames cost two or three system calls (1.7 µs a tick in a replay of the
        # arena, a chunk of 15 ticks, 4.5 KB, a frame); now one read per block
        f = open(path, "rb", buffering=BLOCK_SIZE)
        return f, os.fstat(f.fileno()).st_size
    fs, key = _filesystem(str(location))
    try:
        first = _first_block(fs, key, location)
    except FileNotFoundError:
        if kind_of(location) == "dir":
            raise IsADirectoryError(location) from None
        raise
    return _file_from(fs, key, location, first)


def _file_from(fs: Any, key: str, location: str | os.PathLike[str], first: bytes) -> tuple[IO[bytes], int]:
    """The object whose first block is ``first``, as ``open_input`` returns it: all of it when shorter than a
    block, else a ranged reader (one metadata request for the size; ``first`` is not fetched again)."""
    if len(first) < BLOCK_SIZE:
        return io.BytesIO(first), len(first)
    try:
        size = int(fs.info(key)["size"])
    except FileNotFoundError:  # deleted between the two requests
        raise
    except Exception as exc:
        raise StorageError(f"{location}: cannot be opened: {type(exc).__name__}: {exc}") from None
    return cast(IO[bytes], io.BufferedReader(_RangedFile(fs, key, str(location), size, first))), size


class _CommitOnClose(io.RawIOBase):
    """Writes to ``KEY.incomplete.tmp``; ``close()`` moves it to ``KEY`` (see the module's docstring)."""

    def __init__(self, fs: Any, key: str, location: str) -> None:
        super().__init__()
        self._fs, self._key, self._tmp, self.name = fs, key, key + _TEMP_SUFFIX, location
        self._file = fs.open(self._tmp, "wb")

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        written: int = self._file.write(b)
        return written

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.close()
            self._fs.mv(self._tmp, self._key)
        finally:
            super().close()


def open_output(location: str | os.PathLike[str]) -> IO[bytes]:
    """A binary file to write: a plain path is opened as usual (each flush reaches the file); a URL writes a
    temporary key and commits it under ``location`` on ``close()``."""
    path = local_path(location)
    if path is not None:
        return open(path, "wb")
    fs, key = _filesystem(str(location))
    try:
        # a RawIOBase has every method of IO[bytes] the writers call; typeshed does not relate the two classes
        return cast(IO[bytes], _CommitOnClose(fs, key, str(location)))
    except Exception as exc:
        raise StorageError(f"{location}: cannot be written: {type(exc).__name__}: {exc}") from None


def find_files(location: str, suffix: str) -> list[str]:
    """Every file below the folder or prefix ``location`` whose name ends with ``suffix``, as full URLs, sorted."""
    fs, key = _filesystem(location)
    try:
        keys = fs.find(key)
    except Exception as exc:
        raise StorageError(f"{location}: cannot be listed: {type(exc).__name__}: {exc}") from None
    return sorted(fs.unstrip_protocol(k) for k in keys if k.endswith(suffix) and not k.endswith(_TEMP_SUFFIX))


def sibling(location: str | os.PathLike[str], name: str) -> str:
    """The location of ``name`` in the same folder (or under the same prefix) as ``location``:
    ``s3://b/p/x.nkrec`` + ``x.expect.toml`` -> ``s3://b/p/x.expect.toml``; a plain path stays a path."""
    if not is_url(location):
        return str(Path(location).with_name(name))
    text = str(location)
    head, _, _ = text.rpartition("/")
    return f"{head}/{name}"


def read_small(location: str | os.PathLike[str], *, limit: int = 16 << 20) -> bytes | None:
    """The whole content of a small file (an expectation, a handler's side file), or None when there is none.
    More than ``limit`` bytes is a ``StorageError``: such files are written by hand, not megabytes long."""
    path = local_path(location)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            return None
        _check_small(location, p.stat().st_size, limit)
        return p.read_bytes()
    fs, key = _filesystem(str(location))
    try:
        first = _first_block(fs, key, location)  # one request: an absent file is the usual case
        f, size = _file_from(fs, key, location, first)
    except FileNotFoundError:
        return None
    with f:
        _check_small(location, size, limit)
        return f.read()


def _check_small(location: str | os.PathLike[str], size: int, limit: int) -> None:
    if size > limit:
        raise StorageError(f"{location}: {size} bytes, more than the {limit} a file of this kind may hold")


def move(source: str, target: str) -> None:
    """Rename ``source`` to ``target`` (both plain paths, or both URLs on one store: a copy and a delete on S3)."""
    path = local_path(source)
    if path is not None:
        os.replace(path, local_path(target) or target)
        return
    fs, key = _filesystem(source)
    _, target_key = _filesystem(target)
    try:
        fs.mv(key, target_key)
    except Exception as exc:
        raise StorageError(f"{target}: cannot be written: {type(exc).__name__}: {exc}") from None


def remove(location: str) -> None:
    """Delete a file or object if it is there (nothing happens when it is not)."""
    path = local_path(location)
    if path is not None:
        Path(path).unlink(missing_ok=True)
        return
    fs, key = _filesystem(location)
    try:
        if fs.exists(key):
            fs.rm(key)
    except FileNotFoundError:
        pass


def write_whole(location: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that ``location`` holds all of it or is left as it was: a plain path through a
    temporary file renamed over it, a URL by commit on close (``open_output``)."""
    path = local_path(location)
    if path is None:
        with open_output(location) as f:
            f.write(data)
        return
    p = Path(path)
    tmp = p.with_name(p.name + _TEMP_SUFFIX)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
