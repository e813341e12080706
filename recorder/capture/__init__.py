"""Capture from inside a match: the in-process sink, and ingest of what the capture module logs in Nakama.

- ``CaptureSink`` (``_sink``): the sink a live match runtime writes its calls into (``serve``, the fuzzer);
- the capture modules (``modules/``, ``MODULES_DIR``): ``nkreplay_capture.lua`` wraps a deployed Lua match
  module (``nkreplay_capture_rec.lua`` beside it does the recording, loaded when a match records something),
  ``nkreplay_capture.js`` the callbacks of a JavaScript bundle; both log one record per handler call
  through Nakama's logger;
- ``Ingest`` (``_ingest``) turns those log lines (``_nakama_log``: Nakama's server log, line by line) back into
  handler-call recordings, one per match;
- Lua error texts as Nakama logs them (``_lua_errors``).
"""

import pathlib

from recorder.capture._ingest import (
    Ingest,
    IngestedMatch,
    ingest_files,
    read_log,
    recording_name,
    write_match,
    write_matches,
)
from recorder.capture._lua_errors import error_location, error_message, split_traceback
from recorder.capture._nakama_log import DamagedLine, LogEntry, LogStats, crash_of, iter_log, open_log
from recorder.capture._sink import CaptureSink

#: the folder of the capture modules to deploy into Nakama (``nkreplay_capture.lua``, ``nkreplay_capture.js``)
MODULES_DIR = pathlib.Path(__file__).resolve().parent / "modules"

__all__ = [
    "MODULES_DIR",
    "CaptureSink",
    "DamagedLine",
    "Ingest",
    "IngestedMatch",
    "ingest_files",
    "read_log",
    "LogEntry",
    "LogStats",
    "crash_of",
    "error_location",
    "error_message",
    "iter_log",
    "open_log",
    "recording_name",
    "split_traceback",
    "write_match",
    "write_matches",
]
