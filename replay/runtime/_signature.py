"""Crash signatures: "is this the same crash?" across replays, handler versions, runtimes and log lines.

A ``CrashSignature`` keeps what identifies a crash and drops what varies between occurrences:

- ``callback``: the match callback that raised (``match_loop``);
- ``error_type``: the Python exception type (``KeyError``); for Lua, the error class: the kind of runtime
  error (``lua:index nil``, ``lua:arithmetic``, ...) named the same way for the replay's Lua (LuaJIT, worded as PUC Lua 5.1) and gopher-lua,
  whose texts differ, or ``lua:error <normalised message>`` for a handler's own ``error(...)``;
  for JavaScript, ``js:<class>`` named the same way for goja (Nakama) and QuickJS (the replay)
  (``js:read property 'pos'``, ``js:not a function``, ``js:Error <normalised message>``, ``js:throw ...``);
  ``Hang`` for a callback that did not return; other runtimes' ``TypeError``-style prefixes as they are;
- ``frames``: up to three innermost frames of the handler's own code, normalised: ``arena.py:match_loop``
  for Python (file base name and function, no line numbers, no standard-library frames), ``ctf.lua`` for
  Lua (file base name only: the two Lua runtimes name functions differently), ``index.js:handleInput`` for
  JavaScript (no positions: goja and QuickJS count columns differently);
- ``op_code``: the op code of the last message of the crashing ``match_loop`` batch, when known.

Normalising a message replaces uuids with ``<uuid>``, hex ids and addresses with ``<hex>`` and numbers with
``<n>``. The stable text key is ``callback|error_type|top frame`` (``match_loop|KeyError|arena.py:match_loop``)
and ``short_hash`` is BLAKE2b with a 6-byte (48-bit) digest of the key's UTF-8 bytes, as 12 hex digits
(``hashlib.blake2b(key, digest_size=6)``; not a cut of the 64-byte digest, which differs): grouping tools that
compute the same key group crashes the same way. ``same_crash`` compares keys, and op codes when both sides
know one; ``same_error_class`` compares error classes the way a verdict does.

Signatures are built from a replay (``from_result``/``from_crash``), a recording's crash marker
(``from_marker``, ``of_recording``) or a Nakama log line ``Stopping match after error from <callback>
execution`` (``from_log_line``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

from recorder.capture._nakama_log import crashed_callback, log_entry

__all__ = [
    "CrashSignature",
    "LoggedCrash",
    "js_error_class",
    "lua_error_class",
    "normalise_message",
    "parse_crash_log_line",
    "same_crash",
    "same_error_class",
]

MAX_FRAMES = 3
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"(?<![\w<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w>])")
# a quoted value: opens after a non-word character (so "can't" opens nothing), closes before one; a name
# quoted after a Lua/Go runtime word (local 'x', field 'pos', method 'm', to 'insert') is kept
_QUOTED = re.compile(
    r"\b(?:local|global|field|method|upvalue|function|constant|to) (?P<name>'[\w.:]*')"
    r"""|(?<!\w)'(?:[^'\\\n]|\\.)*'(?!\w)|(?<!\w)"(?:[^"\\\n]|\\.)*"(?!\w)"""
)
_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<func>\S+)', re.M)
_JS_FRAME = re.compile(r"^\s*at (?:(?P<func>[\w.$<>]+) )?\(?(?P<file>[^():\s]+):\d+", re.M)
# "file.lua:12: message" or '[string "file.lua"]:12: message'
_LUA_POS = re.compile(r'^(?:\[string "(?P<chunk>[^"]+)"\]|(?P<file>[^\s:][^:\n]*\.lua)):\d+:\s?(?P<msg>.*)$', re.S)
_LUA_TB_FRAME = re.compile(r'^\s*(?:\[string "(?P<chunk>[^"]+)"\]|(?P<file>[^\s:\[][^:\n]*\.lua)):\d+:', re.M)
_TYPE_PREFIX = re.compile(r"^(?:[\w.]+\.)?(?P<type>[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning))\b")
_STDLIB_PARTS = ("/lib/python3", "site-packages", "dist-packages", "<frozen ")
_VALUE = r"(?:\(?an? (?P<t>\w+) value\)?)"  # "(a nil value)" after a name, "a nil value" without one
# (class, pattern): a PUC Lua 5.1 row (LuaJIT, the replay's Lua, words its errors the same) and a gopher-lua row per class, so both runtimes' texts of one error map to
# one class. The gopher-lua texts were read from a real Nakama 3.40 (tests/data/lua_error_probe_nakama_3.40.json,
# pinned by tests/runtime/test_signature.py beside PUC Lua's): binary arithmetic says "cannot perform <op> operation
# between <type> and <type>", unary minus "__unm undefined", length "__len undefined"; both runtimes say "attempt
# to compare number with nil" for two types, while two values of one type read "attempt to compare two table
# values" (PUC Lua) and "attempt to compare table with table" (gopher-lua)
_LUA_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("index", re.compile(r"attempt to index (?:.* )?" + _VALUE)),
    ("index", re.compile(r"attempt to index a non-table object\((?P<t>\w+)\)")),
    ("call", re.compile(r"attempt to call (?:.* )?" + _VALUE)),
    ("call", re.compile(r"attempt to call a non-function object")),
    ("arithmetic", re.compile(r"attempt to perform arithmetic on (?:.* )?" + _VALUE)),
    ("arithmetic", re.compile(r"cannot perform (?:add|sub|mul|div|mod|pow) operation between")),
    ("arithmetic", re.compile(r"__unm undefined")),
    ("concatenate", re.compile(r"attempt to concatenate (?:.* )?" + _VALUE)),
    ("concatenate", re.compile(r"cannot perform concat operation between")),
    ("compare", re.compile(r"attempt to compare two \w+ values")),
    ("compare", re.compile(r"attempt to compare \w+ with \w+")),
    ("length", re.compile(r"attempt to get length of")),
    ("length", re.compile(r"__len undefined")),
    ("stack overflow", re.compile(r"stack overflow")),
)
# the replay runtime's own text for a callback that did not return (``replay.runtime._runtime``)
_HANG_TEXT = re.compile(r"^\w+ did not return within [\d.]+ s$")


def _quoted(m: re.Match[str]) -> str:
    if m["name"] is not None:  # a name the runtime quotes: local 'holder', field 'pos', to 'insert'
        return m[0]
    q = m[0][-1]
    return f"{q}<q>{q}"


def normalise_message(text: str, limit: int = 160) -> str:
    """A message with the parts that vary between occurrences replaced: quoted values (``invalid character
    '\x00'`` and ``'\x01'`` are one bug; names Lua quotes after ``local``, ``field``, ``to``... stay),
    uuids, hex ids, numbers."""
    text = text.strip().splitlines()[0] if text.strip() else ""
    text = _QUOTED.sub(_quoted, text)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return text[:limit]


def lua_error_class(message: str) -> str:
    """``lua:<class>`` for a Lua runtime error (the same class for Lua 5.1's and gopher-lua's wording),
    ``lua:error <normalised message>`` for anything else (a handler's own ``error(...)``)."""
    for name, pattern in _LUA_CLASSES:
        m = pattern.search(message)
        if m is not None:
            kind = m.groupdict().get("t")
            return f"lua:{name} {kind}" if name == "index" and kind else f"lua:{name}"
    return "lua:error " + normalise_message(message)


# JavaScript: goja (Nakama) and QuickJS (replay) word runtime errors differently; each class has both
_JS_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("read property", re.compile(r"^TypeError: [Cc]annot read propert(?:y|ies) '(?P<p>[^']*)' of (?:undefined|null)")),
    ("set property", re.compile(r"^TypeError: [Cc]annot set propert(?:y|ies) '(?P<p>[^']*)' of (?:undefined|null)")),
    (
        "not a function",
        re.compile(
            r"^TypeError: (?:Object has no member '(?P<p>[^']*)'|not a function|.* is not a function|Value is not callable|Value is not an object: )"
        ),
    ),
    ("not defined", re.compile(r"^ReferenceError: '?(?P<p>[\w$]+)'? is not defined")),
    ("stack overflow", re.compile(r"^RangeError: Maximum call stack size exceeded")),
)
# the crash text Nakama logs for a JS callback: "<value> at <top frame>" (goja's Exception.Error(): a value of
# several lines keeps the frame at the end of its last), the frame "f (index.js:1:2(3))", "index.js:1:2(3)" or
# "f (native)"; the replay writes the same without goja's "(pc)", and "f (index.js)" for a thrown non-Error,
# whose position QuickJS does not keep
_JS_AT = re.compile(
    r" at (?:(?P<func>[\w$.<>]+) )?\(?(?:(?P<file>[^\s():]+\.[jt]s)(?::\d+:\d+(?:\(\d+\))?)?|(?P<native>native))\)?$"
)
_JS_NAME = re.compile(r"^(?P<name>\w*(?:Error|Exception)): ")


def js_error_class(text: str) -> str:
    """``js:<class>`` for a JavaScript error as goja or QuickJS words it: ``js:read property 'team'`` for
    ``Cannot read property 'team' of undefined`` (goja) and ``cannot read property 'team' of null``
    (QuickJS); other errors as ``js:<Name> <normalised message>``, a thrown non-Error as ``js:throw ...``."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    at = _JS_AT.search(first)
    message = first[: at.start()] if at else first
    for name, pattern in _JS_CLASSES:
        m = pattern.search(message)
        if m is not None:
            prop = m.groupdict().get("p")
            if prop and name != "not a function" and name != "not defined":
                return f"js:{name} '{normalise_message(prop)}'"
            return f"js:{name}"
    named = _JS_NAME.match(message)
    if named is not None:
        return f"js:{named['name']} " + normalise_message(message[named.end() :])
    return "js:throw " + normalise_message(message)


def _js_top(text: str) -> re.Match[str] | None:
    """The `` at <frame>`` ending of a JS crash text, at the end of its last line (goja's ``Exception.Error()``
    appends it to the whole value, however many lines that has)."""
    return _JS_AT.search(text.strip().splitlines()[-1]) if text.strip() else None


def _js_frames(text: str, stack: str) -> tuple[str, ...]:
    """The top frame of a JS crash text (at the end of its last line), then the stack's frames:
    ``index.js:matchLoop``, ``native:parse``."""
    frames: list[str] = []
    at = _js_top(text)
    if at is not None:
        frames.append(_js_frame(at))
    for line in stack.splitlines()[1:]:
        m = _JS_AT.search(" " + line.strip())
        if m is not None:
            f = _js_frame(m)
            if not frames or frames[-1] != f:
                frames.append(f)
    return tuple(frames[:MAX_FRAMES])


def _js_frame(m: re.Match[str]) -> str:
    func = m["func"] if m["func"] not in (None, "<anonymous>", "<eval>") else ""
    if m["native"]:
        return f"native:{func}" if func else "native"
    return f"{_base(m['file'])}:{func}" if func else _base(m["file"])


def _base(path: str) -> str:
    return os.path.basename(path.replace("\\", "/"))


def _python_frames(traceback: str) -> tuple[str, ...]:
    frames = [
        f"{_base(m['file'])}:{m['func']}"
        for m in _PY_FRAME.finditer(traceback)
        if not any(part in m["file"] for part in _STDLIB_PARTS)
    ]
    return tuple(reversed(frames))[:MAX_FRAMES]


def _lua_frames(position_file: str | None, traceback: str) -> tuple[str, ...]:
    frames: list[str] = [position_file] if position_file else []
    for m in _LUA_TB_FRAME.finditer(traceback):
        name = _base(m["chunk"] or m["file"])
        if not frames or frames[-1] != name:
            frames.append(name)
    return tuple(frames[:MAX_FRAMES])


@dataclass(frozen=True, slots=True)
class CrashSignature:
    """What identifies a crash; see the module docstring for each field and the key."""

    callback: str
    error_type: str
    frames: tuple[str, ...] = ()
    op_code: int | None = None

    @property
    def location(self) -> str:
        """The innermost frame of the handler's code, or ``?`` when nothing is known."""
        return self.frames[0] if self.frames else "?"

    @property
    def key(self) -> str:
        """``callback|error_type|location``: the stable text to group crashes by."""
        return f"{self.callback}|{self.error_type}|{self.location}"

    @property
    def short_hash(self) -> str:
        """BLAKE2b-48 of the key (``digest_size=6``) as 12 hex digits: a compact group id."""
        return hashlib.blake2b(self.key.encode("utf-8"), digest_size=6).hexdigest()

    def same_crash(self, other: CrashSignature) -> bool:
        """Same key, and the same last op code when both signatures know one."""
        if self.key != other.key:
            return False
        return self.op_code is None or other.op_code is None or self.op_code == other.op_code

    def describe(self) -> str:
        op = f", last op code {self.op_code}" if self.op_code is not None else ""
        return f"{self.error_type} in {self.callback} at {self.location}{op}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "hash": self.short_hash,
            "callback": self.callback,
            "error_type": self.error_type,
            "frames": list(self.frames),
            "op_code": self.op_code,
        }

    # -- building ------------------------------------------------------------------------------------------
    @classmethod
    def from_error(
        cls,
        callback: str,
        error: str,
        traceback: str = "",
        *,
        error_type: str | None = None,
        op_code: int | None = None,
    ) -> CrashSignature:
        """From an error text and traceback as a replay reports them or Nakama logs them.

        A Lua error is recognised by its ``file.lua:line:`` position (or a Lua stack traceback); a JavaScript
        one by Nakama's ``value at func (index.js:1:2(3))`` ending of its first line (or an ``error_type``
        starting ``js:``); a Python one by its ``File "...", line N, in f`` frames or its ``SomeError:``
        prefix. ``error_type`` is the type a replay already knows (ignored for Lua and JavaScript errors,
        which are classed by their text)."""
        error = error or ""
        first = error.strip().splitlines()[0] if error.strip() else ""
        lua = _LUA_POS.match(first)
        if lua is not None or ".lua:" in traceback or "stack traceback:" in error + traceback:
            pos_file = _base(lua["chunk"] or lua["file"]) if lua else None
            message = lua["msg"] if lua else first
            rest = error + "\n" + traceback
            return cls(callback, lua_error_class(message), _lua_frames(pos_file, rest), op_code)
        if error_type == "Hang" or (error_type is None and _HANG_TEXT.match(first)):
            return cls(callback, "Hang", (), op_code)
        if _js_top(error) is not None or (error_type or "").startswith("js:"):
            return cls(callback, js_error_class(error), _js_frames(error, traceback), op_code)
        if error_type == "HandlerError":  # a broken Nakama rule: the message is the class
            return cls(callback, "HandlerError " + normalise_message(first), (), op_code)
        frames = _python_frames(traceback) or _python_frames(error)
        if not frames:
            frames = tuple(
                f"{_base(m['file'])}:{m['func']}" if m["func"] else _base(m["file"])
                for m in _JS_FRAME.finditer(traceback or error)
            )[:MAX_FRAMES]
        if error_type is None:
            m = _TYPE_PREFIX.match(first)
            error_type = m["type"] if m else "error " + normalise_message(first)
        return cls(callback, error_type, frames, op_code)

    @classmethod
    def from_crash(cls, crash: Any, op_code: int | None = None) -> CrashSignature:
        """From a replay's ``replay.runtime.Crash``."""
        if crash.hung:
            return cls(crash.callback, "Hang", (), op_code)
        return cls.from_error(
            crash.callback, crash.error, crash.traceback, error_type=crash.error_type, op_code=op_code
        )

    @classmethod
    def from_result(cls, result: Any) -> CrashSignature | None:
        """From a ``ReplayResult``: None when the replay did not crash. The op code is the last message's
        of the crashing ``match_loop`` call, from the result's last inputs."""
        if result.crash is None:
            return None
        op_code = None
        if result.crash.callback == "match_loop":
            for item in reversed(result.last_inputs):
                if item.get("callback") == "match_loop" and item.get("tick") == result.crash.tick:
                    msgs = item.get("messages") or []
                    op_code = msgs[-1]["op_code"] if msgs else None
                    break
        return cls.from_crash(result.crash, op_code)

    @classmethod
    def from_marker(cls, marker: Any, op_code: int | None = None) -> CrashSignature:
        """From a recording's ``CrashMarker`` (what production saw), with the error type it recorded, if any."""
        return cls.from_error(
            marker.callback,
            marker.error,
            marker.traceback,
            error_type=getattr(marker, "error_type", "") or None,
            op_code=op_code,
        )

    @classmethod
    def of_recording(cls, path: str | os.PathLike[str]) -> CrashSignature | None:
        """The signature of the crash a recording ends with (None when it has no crash marker), with the
        op code of the last message of the ``match_loop`` call at the crash tick."""
        from recorder.format import CrashMarker, LoopCall, open_recording

        last_ops: dict[int, int | None] = {}
        marker: CrashMarker | None = None
        with open_recording(path) as rec:
            for event in rec.events():
                match event:
                    case LoopCall(tick=tick, messages=msgs):
                        last_ops[tick] = msgs[-1].op_code if len(msgs) else None
                    case CrashMarker():
                        marker = event
        if marker is None:
            return None
        op = last_ops.get(marker.tick) if marker.callback == "match_loop" else None
        return cls.from_marker(marker, op)

    @classmethod
    def from_log_line(cls, line: str) -> CrashSignature | None:
        """From one of Nakama's JSON log lines; None unless it is a "Stopping match after error" line."""
        logged = parse_crash_log_line(line)
        return None if logged is None else cls.from_error(logged.callback, logged.error)


@dataclass(frozen=True, slots=True)
class LoggedCrash:
    """Nakama's ``Stopping match after error from <callback> execution`` line: ``mid`` has no node suffix."""

    mid: str
    tick: int
    callback: str
    error: str

    @property
    def signature(self) -> CrashSignature:
        return CrashSignature.from_error(self.callback, self.error)


def parse_crash_log_line(line: str) -> LoggedCrash | None:
    """The crash in a Nakama JSON log line, or None for any other line (including lines that are not JSON)."""
    line = line.strip()
    if not line.startswith("{") or "Stopping match after error" not in line:  # the fast way past other lines
        return None
    entry = log_entry(line)  # not JSON, too deep, an unconvertible number: not a crash line we can use
    callback = None if entry is None else crashed_callback(entry)
    if entry is None or callback is None:
        return None
    mid, tick, error = (entry.fields.get(k) for k in ("mid", "tick", "error"))
    # lenient where ingest is strict (crash_of): a signature needs only the callback and the error text
    return LoggedCrash(
        mid if isinstance(mid, str) else "",
        tick if isinstance(tick, int) and not isinstance(tick, bool) else -1,
        callback,
        error if isinstance(error, str) else "",
    )


def same_error_class(a: str, b: str) -> bool:
    """Whether two ``error_type`` values name the same error: equal classes, or a broken Nakama rule
    (``HandlerError <message>``) and the same message recorded without its type (``error <message>``, as a
    Nakama log line gives it)."""
    if a == b:
        return True
    for untyped, rule in ((a, b), (b, a)):
        if untyped.startswith("error ") and rule.startswith("HandlerError ") and untyped[6:] == rule[13:]:
            return True
    return False


def same_crash(a: CrashSignature | None, b: CrashSignature | None) -> bool:
    """True when both are crashes with the same signature (``CrashSignature.same_crash``)."""
    return a is not None and b is not None and a.same_crash(b)
