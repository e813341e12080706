"""``nakama-replay``: a thin command line over the library."""

from replay.cli._main import main

__all__ = ["main"]
