"""A recording against real sockets.

- ``start_nakama_server`` (``_server``): ``nakama-replay serve``, a local Nakama-compatible server around the
  match runtime, recording every match;
- ``PlaybackServer`` (``_playback``): the server's side of a wire recording, played to real clients;
- ``run_live`` (``_feed``): a recording re-fed in real time into a live Nakama (``nakama-replay live``): the
  script of what to send and expect (``_script``), where its ticks fall (``_tick_clock``) and the report of
  what the server did (``_report``);
- ``convert`` (``_convert``): a wire recording turned into a handler-call recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.live._convert import Conversion, convert, convert_events
    from replay.live._feed import LiveOptions, LiveRun, run_live
    from replay.live._playback import PlaybackServer, load_scripts
    from replay.live._report import LiveReport, analyse
    from replay.live._script import LiveScript, load_script, script_from_events
    from replay.live._server import NakamaServer, ServerConfig, start_nakama_server

__all__ = [
    "Conversion",
    "LiveOptions",
    "LiveReport",
    "LiveRun",
    "LiveScript",
    "NakamaServer",
    "PlaybackServer",
    "ServerConfig",
    "analyse",
    "convert",
    "convert_events",
    "load_script",
    "load_scripts",
    "run_live",
    "script_from_events",
    "start_nakama_server",
]

__getattr__, __dir__ = lazy_exports(__name__)
