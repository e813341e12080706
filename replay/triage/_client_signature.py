"""Crash signatures of client crashes: ``replay.runtime.CrashSignature`` extended to client stack traces.

A client report says which client handler threw (``handler``: ``onmatchdata``, ``ondisconnect``,
``rpc:get_loadout``...), the error type and message, and a stack trace in the client's own language. The
signature keeps the same three parts as a server crash's, so one grouping rule serves both sides:

- ``callback``: the handler (``client`` when the report does not say);
- ``error_type``: the report's ``error_type``, else the ``TypeError:``-style prefix of the message, else
  ``error <normalised message>`` (``replay.runtime._signature`` does both);
- ``frames``: up to three innermost frames of the game's own code, each ``file:function`` (file base name,
  query string and bundle hashes dropped, function without arguments, generics, namespaces or packages
  beyond ``Class.method``), **line and column numbers and addresses stripped**. Frames of the Nakama
  client SDKs, of the runtime (``node:internal``, ``java.``, ``System.``, ``UnityEngine.``), of
  ``node_modules`` and of the capture helper itself are skipped.

Stack formats read: V8 (``at f (file.js:1:2)``), Firefox/Safari (``f@file.js:1:2``), Java/Kotlin
(``at com.game.Net.onData(Net.java:42)``), C#/Mono (``at Game.Net.OnData (T x) [0x00012] in /p/Net.cs:42``),
Unity (``Game.Net:OnData(T) (at Assets/Net.cs:42)``), Godot 3 (``At: res://net.gd:42:_on_state()``) and 4
(``[0] _on_state (res://net.gd:42)``), native frames (``#0 0x7f.. in f (a.cpp:12)``), and Sentry's
structured frames (``in_app`` respected; Sentry lists the innermost frame last).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from replay.runtime._signature import MAX_FRAMES, CrashSignature

__all__ = ["client_signature", "stack_frames", "sentry_frames", "normalise_frame"]

# (file, function) from one stack line, tried in order
_LINE_PATTERNS: tuple[re.Pattern[str], ...] = (
    # V8: at [async] [new] f (location:line:col) | at location:line:col
    re.compile(
        r"^\s*at (?:async )?(?:new )?(?P<func>[^\s(][^(]*?) \((?P<file>[^()]*?(?::\d+){1,2}|native|<anonymous>)\)\s*$"
    ),
    re.compile(r"^\s*at (?:async )?(?P<file>[^\s()]+?(?::\d+){1,2})\s*$"),
    # Unity: Game.Net:OnData(IMatchState) (at Assets/Scripts/Net.cs:42)
    re.compile(
        r"^\s*(?P<func>[\w.$`<>\[\],]+):(?P<meth>[\w.$<>`]+)\s*\([^)]*\)\s*\(at (?P<file>[^)]+?)(?::\d+)?\)\s*$"
    ),
    # Java/Kotlin: at com.game.Net.onData(Net.java:42)
    re.compile(r"^\s*at (?P<func>[\w.$<>]+)\((?P<file>[\w.$-]+\.(?:java|kt|scala))(?::\d+)?\)\s*$"),
    # C#/Mono: at Game.Net.OnData (Nakama.IMatchState s) [0x00012] in /src/Net.cs:42
    re.compile(
        r"^\s*at (?P<func>[\w.$`<>\[\],+]+)\s*\([^)]*\)(?:\s*\[0x[0-9a-fA-F]+\])?(?: in (?P<file>.+?)(?::line)?(?::\d+)?)?\s*$"
    ),
    # Godot 4: [0] _on_state (res://net.gd:42)
    re.compile(r"^\s*\[\d+\] (?P<func>\S+) \((?P<file>res://[^)]+?)(?::\d+)?\)\s*$"),
    # Godot 3: At: res://net.gd:42:_on_state()
    re.compile(r"^\s*At: (?P<file>res://[^:]+)(?::\d+)?:(?P<func>[\w.]+)\(\)\s*$"),
    # native: #0 0x00007f3a in f (a.cpp:12) | #3 0x1234 libgame.so + 5678
    re.compile(r"^\s*#\d+\s+(?:0x[0-9a-fA-F]+ in )?(?P<func>[\w:~<>]+)\s*\((?P<file>[^()\s]+?):\d+\)\s*$"),
    re.compile(
        r"^\s*#\d+\s+(?:0x[0-9a-fA-F]+ in )?(?P<func>[\w:~<>]+)(?:\s*\([^)]*\))?(?: at (?P<file>\S+?)(?::\d+)?)?\s*$"
    ),
    re.compile(r"^\s*(?:#?\d+\s+)?0x[0-9a-fA-F]+\s+(?P<file>[\w.+-]+\.(?:so|dylib|dll)(?:\.\d+)*)\s*\+\s*\d+\s*$"),
    # Firefox/Safari: f@location | @location
    re.compile(r"^\s*(?P<func>[^@\s]*)@(?P<file>\S+)\s*$"),
)
_POSITION = re.compile(r"(?::\d+)+$")  # :line[:column] after a location
_BUNDLE_HASH = re.compile(r"[.-][0-9a-fA-F]{6,}(?=\.)")  # main.3f9a2c1b.js -> main.js
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
_GENERICS = re.compile(r"<[^<>]*>|`\d+|\[[^\]]*\]")
# frames that are not the game's code
_LIBRARY_PARTS = (
    "node_modules",
    "@heroiclabs",
    "nakama-js",
    "nakama_js_crash",
    "node:",
    "internal/",
    "<anonymous>",
    "native code",
    "addons/com.heroiclabs.nakama",
    "/nakama-godot/",
    "Nakama/",
    "Packages/com.heroiclabs",
)
_LIBRARY_FUNCS = (
    "java.",
    "javax.",
    "android.",
    "kotlin.",
    "kotlinx.",
    "dalvik.",
    "System.",
    "UnityEngine.",
    "Nakama.",
    "Microsoft.",
    "Mono.",
    "Godot.",
)


def _base(location: str) -> str:
    location = location.split("?", 1)[0].split("#", 1)[0]
    location = _POSITION.sub("", location)
    name = os.path.basename(location.replace("\\", "/").rstrip("/"))
    return _BUNDLE_HASH.sub("", name)


def _function(func: str) -> str:
    func = func.strip()
    for prefix in ("async ", "new ", "Object.", "Function."):
        if func.startswith(prefix):
            func = func[len(prefix) :]
    func = _GENERICS.sub("", func).replace("<", "").replace(">", "").replace("$", ".")
    if func in ("", "anonymous", "<anonymous>", "?"):
        return ""
    parts = [p for p in func.replace("::", ".").replace(":", ".").split(".") if p]
    return ".".join(parts[-2:])  # Class.method: packages and namespaces dropped


def normalise_frame(file: str | None, func: str | None) -> str:
    """``file:function`` (or either alone) with positions, addresses and namespaces stripped; empty when
    the frame is a library's or the runtime's."""
    file = file or ""
    func = func or ""
    if any(part in file for part in _LIBRARY_PARTS) or any(func.strip().startswith(p) for p in _LIBRARY_FUNCS):
        return ""
    name = _base(_ADDRESS.sub("", file)) if file else ""
    fn = _function(_ADDRESS.sub("", func))
    if name and fn:
        return f"{name}:{fn}"
    return name or fn


def _parse_line(line: str) -> tuple[str, str] | None:
    for pattern in _LINE_PATTERNS:
        m = pattern.match(line)
        if m is None:
            continue
        groups = m.groupdict()
        func = groups.get("func") or ""
        if groups.get("meth"):
            func = f"{func}.{groups['meth']}"
        return groups.get("file") or "", func
    return None


def stack_frames(stack: str) -> tuple[str, ...]:
    """Up to three innermost frames of the game's own code in a client stack trace text (innermost first,
    as every text format lists them), normalised (see the module docstring)."""
    frames: list[str] = []
    for line in (stack or "").splitlines():
        parsed = _parse_line(line)
        if parsed is None:
            continue
        frame = normalise_frame(*parsed)
        if frame and (not frames or frames[-1] != frame):
            frames.append(frame)
        if len(frames) == MAX_FRAMES:
            break
    return tuple(frames)


def sentry_frames(frames: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The same frames from Sentry's structured ``stacktrace.frames`` (listed outermost first): frames
    marked ``in_app: false`` are skipped, as are library frames when nothing is marked."""
    out: list[str] = []
    for f in reversed(list(frames)):
        if not isinstance(f, Mapping) or f.get("in_app") is False:
            continue
        file = f.get("filename") or f.get("abs_path") or f.get("module") or f.get("package") or ""
        frame = normalise_frame(str(file), str(f.get("function") or ""))
        if frame and (not out or out[-1] != frame):
            out.append(frame)
        if len(out) == MAX_FRAMES:
            break
    return tuple(out)


def client_signature(
    handler: str | None,
    error_type: str | None,
    message: str | None,
    stack: str | None = None,
    *,
    frames: tuple[str, ...] | None = None,
    op_code: int | None = None,
) -> CrashSignature:
    """The signature of a client crash: ``handler|error type|top frame`` like a server crash's key."""
    callback = handler or "client"
    message = message or ""
    if not error_type:
        error_type = CrashSignature.from_error(callback, message).error_type
    if frames is None:
        frames = stack_frames(stack or "")
    return CrashSignature(callback, error_type, tuple(frames)[:MAX_FRAMES], op_code)
