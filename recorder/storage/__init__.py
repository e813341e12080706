"""Locations of recordings and logs: plain paths, or URLs anywhere fsspec reaches (``s3://``, ``gs://``,
``memory://``, ``file://``), read block by block and written by commit on close (``_urls``)."""

from recorder.storage._urls import (
    BLOCK_SIZE,
    StorageError,
    check_location,
    find_files,
    is_url,
    kind_of,
    local_path,
    move,
    open_input,
    open_output,
    read_small,
    remove,
    sibling,
    write_whole,
)

__all__ = [
    "BLOCK_SIZE",
    "StorageError",
    "check_location",
    "find_files",
    "is_url",
    "kind_of",
    "local_path",
    "open_input",
    "open_output",
    "move",
    "read_small",
    "remove",
    "sibling",
    "write_whole",
]
