"""Nakama Lua match modules in the replay runtime: the very file a studio deploys, run in PUC Lua 5.1 (lupa).

``LuaHandler(path)`` loads a module the way Nakama does (``require(name)`` of a module that returns a table
with the seven callbacks; ``require`` finds other modules by dotted name in the module's folder, then in
``module_path`` folders, then the packaged ``nkreplay_capture``) and exposes the Python handler interface
``replay.runtime._runtime`` calls. Callbacks get ``(context, dispatcher, tick, state, X)`` and reach logger and nk
through ``require("nakama")``, which serves the runtime's deterministic ``Nk``. Return values are checked
with Nakama's own wording and the same stack rules as ``server/runtime_lua_match_core.go``. The state
stays a Lua table between calls.

Fidelity to gopher-lua (Nakama's Lua), see ``replay/lua/runtime.lua``:

- mirrored: the library set (base, package, table, string, math, bit32, os.clock/date/difftime/time; no
  io, debug, coroutine), ``tostring`` and ``string.format`` through Go's fmt rules (``replay.gofmt``),
  ``table.sort`` as Go's ``sort.Sort``, Nakama's ``os.date`` and ``bit32``, error texts of library and
  dispatcher argument checks, tracebacks in gopher-lua's format (``[G]`` frames, ``in main chunk``),
  ``nk.json_encode`` of tables (arrays from 1 to the highest integer key, Go key order and float text);
- detected, not mirrored: ``pairs``/``next`` order (gopher-lua: integer keys, then insertion order; PUC:
  hash layout); ``LuaHandler(path, pairs_order="reverse")`` replays with a perturbed order and
  ``replay.lua_check`` compares the two runs;
- not mirrored: runtime error wording (``attempt to index local 'x' (a nil value)`` here, ``attempt to
  index a non-table object(nil) with key 'k'`` in Nakama; ``replay.runtime._signature.lua_error_class`` classes
  both alike), numbers converted by ``..`` (``%.14g`` here, Go's format in Nakama: ``1e15 .. ""``), ``#`` of
  tables with holes, ``tonumber`` corner cases.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import copy
import hashlib
import hmac
import json
import os
import re
import uuid as _uuid
from pathlib import Path
from typing import Any

import lupa.lua51 as _lupa

from recorder import gojson
from recorder.errors import (
    HandlerError,
    HandlerLoadError,
    LuaError,
    MatchStopped,
    NotAvailableInReplay,
    StorageRejected,
)
from recorder.capture import MODULES_DIR, error_message
from recorder.format._model import CALLBACKS, Presence
from replay.runtime._dispatcher import LABEL_MAX_BYTES
from replay.gofmt import go_float_g, go_format, go_number_string
from replay.gojson_errors import go_json_error
from replay.runtime._hang import CallbackHung
from replay.runtime._signature import lua_error_class
from replay.lua_stdlib import (
    BIT32,
    GoDecodeError,
    LuaArgError,
    LuaPanic,
    LuaRaise,
    date_table,
    go_base64_decode,
    go_hex_decode,
    strftime,
    unix_from_fields,
)
from replay.runtime._nk import DerivedSources, Nk

__all__ = ["LuaHandler", "lua_to_plain", "go_sprint", "go_tonumber"]

_LUA_DIR = Path(__file__).resolve().parent / "lua"
_INT64_MIN, _INT64_END = -(1 << 63), 1 << 63
_MAX_ARRAY_INDEX = 67108864  # gopher-lua's MaxArrayIndex: positive integer keys below it form the array part
_SENTINEL = object()


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go replaces every invalid byte with U+FFFD (Python's "replace" folds a broken sequence into one)
    return "\ufffd" * (err.end - err.start), err.end  # type: ignore[attr-defined]


codecs.register_error("nkreplay-go", _go_replace)


def _text(raw: Any) -> str:
    """A Lua string as Python text, lossless (invalid UTF-8 kept as surrogate escapes)."""
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _ltype(v: Any) -> str:
    if v is None:
        return "nil"
    if v is True or v is False:
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, bytes):
        return "string"
    return _lupa.lua_type(v) or "userdata"


def _check_string(v: Any, i: int) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return go_number_string(v).encode()
    raise LuaArgError(i, f"string expected, got {_ltype(v)}")


def _check_table(v: Any, i: int) -> Any:
    if _lupa.lua_type(v) != "table":
        raise LuaArgError(i, f"table expected, got {_ltype(v)}")
    return v


def _opt_table(v: Any, i: int) -> Any:
    return None if v is None else _check_table(v, i)


def _opt_bool(v: Any, i: int, default: bool) -> bool:
    if v is None:
        return default
    if v is True or v is False:
        return v
    raise LuaArgError(i, f"boolean expected, got {_ltype(v)}")


def _check_int(v: Any, i: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise LuaArgError(i, f"number expected, got {_ltype(v)}")
    if isinstance(v, float):
        return int(v) if v == v and -(2.0**63) <= v < 2.0**63 else _INT64_MIN
    return v


def _is_uuid(v: Any) -> bool:
    if not isinstance(v, bytes):
        return False
    try:
        _uuid.UUID(v.decode("ascii"))
    except ValueError:
        return False
    return True


def _go_key(k: Any, pointer: Any = None) -> str:
    """``fmt.Sprint`` of a converted Lua key, as Nakama spells non-string keys of a JSON object."""
    if isinstance(k, bytes):
        return k.decode("utf-8", "nkreplay-go")
    if k is True or k is False:
        return "true" if k else "false"
    if isinstance(k, int):
        return str(k)
    if isinstance(k, float):
        return go_float_g(k)
    if _lupa.lua_type(k) == "table":
        return go_sprint(lua_to_plain(k, pointer))
    return _pointer(k, pointer)


def _pointer(v: Any, pointer: Any) -> str:
    """gopher-lua's text of a function, userdata or thread (``function: 0xc000010040``); ``pointer`` is the
    runtime's deterministic address book (``LuaHandler.pointer_text``), without it a per-process id."""
    if pointer is not None:
        return _text(pointer(v))
    return f"{_lupa.lua_type(v) or 'userdata'}: 0x{id(v):x}"


def go_sprint(v: Any) -> str:
    """Go's ``fmt.Sprint`` of a value ``RuntimeLuaConvertLuaValue`` returned (a table used as a key):
    ``map[a:1 b:[1 2]]`` with keys sorted, ``<nil>``, floats in ``%v``."""
    if v is None:
        return "<nil>"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float_g(v)
    if isinstance(v, list):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def lua_to_plain(v: Any, pointer: Any = None, depth: int = 0) -> Any:
    """A Lua value as Nakama's ``RuntimeLuaConvertLuaValue`` sees it, in Python: a table with a positive
    integer key (below 2**26) is a list from 1 to the highest such key (other keys dropped, holes None),
    any other table a dict with string keys; whole numbers in int64 range are ``int``, strings ``str``
    (invalid UTF-8 bytes replaced as Go's JSON encoder does); functions (and userdata, threads) their
    gopher-lua text, ``function: 0x...``, with the address ``pointer`` gives them (see ``_pointer``)."""
    if v is None or v is True or v is False:
        return v
    t = type(v)
    if t is int:
        return v
    if t is float:
        return v
    if t is bytes:
        return v.decode("utf-8", "nkreplay-go")
    lt = _lupa.lua_type(v)
    if lt == "table":
        if depth > 256:
            raise LuaRaise("error encoding to JSON: table nesting too deep (a cycle?)")
        items = list(v.items())
        maxn = 0
        for k, _ in items:
            if type(k) is int and 0 < k < _MAX_ARRAY_INDEX and k > maxn:
                maxn = k
        if maxn:
            out: list[Any] = [None] * maxn
            for k, x in items:
                if type(k) is int and 0 < k <= maxn:
                    out[k - 1] = lua_to_plain(x, pointer, depth + 1)
            return out
        return {_go_key(k, pointer): lua_to_plain(x, pointer, depth + 1) for k, x in items}
    return _pointer(v, pointer)


class LuaHandler:
    """A Nakama Lua match module behind the Python handler interface (see ``replay.runtime._handlers``)."""

    language = "lua"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        module_path: list[str] | None = None,
        pairs_order: str = "native",
    ) -> None:
        p = Path(path)
        self.path = str(p)
        self.name = p.stem
        if pairs_order not in ("native", "reverse"):
            raise HandlerError(f"pairs_order must be 'native' or 'reverse', not {pairs_order!r}")
        self.pairs_order = pairs_order
        self._file = p.resolve()
        self._roots = [self._file.parent, *(Path(m).resolve() for m in module_path or ()), MODULES_DIR]  # the capture module: searched last
        self._chunks: list[str] = []  # display paths of loaded chunks, to undo Lua's cut of long names
        self._load_nk = Nk(DerivedSources())
        self._nk: Any = self._load_nk
        self._dispatcher: Any = None
        self._localcache: dict[bytes, Any] = {}
        self._base_ctx: dict[str, Any] | None = None
        self._base_ctx_table: Any = None
        lua = self._lua = _lupa.LuaRuntime(
            encoding=None, register_eval=False, register_builtins=False, unpack_returned_tuples=True
        )
        loadstring = lua.eval(b"loadstring")
        gosort = self._internal(loadstring, "gosort.lua", self._xorshift_others)
        self._api = api = self._internal(loadstring, "runtime.lua", self._host(gosort))
        self._invoke = api[b"invoke"]
        self._mk_presence = api[b"presence"]
        self._mk_message = api[b"message"]
        self._mk_list = api[b"list"]
        self._new_table = api[b"new_table"]
        self._deep_copy = api[b"deep_copy"]
        self._error_text = api[b"error_text"]
        self._pointer_text = api[b"pointer_text"]
        self._runtime_state = api[b"runtime_state"]
        self._set_runtime_state = api[b"set_runtime_state"]
        self._lua_dispatcher = api[b"dispatcher"]
        self._handler_frame = api[b"handler_frame"]
        self._broadcast_now = self._api_fn("broadcast_message", lambda *a: self._do_broadcast(False, *a))
        self._broadcast_deferred = self._api_fn("broadcast_message_deferred", lambda *a: self._do_broadcast(True, *a))
        if pairs_order != "native":
            api[b"set_pairs_order"](pairs_order.encode())
        self._fns = self._load_module()

    # -- set-up ---------------------------------------------------------------------------------------
    def _internal(self, loadstring: Any, file: str, arg: Any) -> Any:
        source = (_LUA_DIR / file).read_bytes()
        compiled = loadstring(source, f"=[nkreplay {file}]".encode())
        fn = compiled[0] if isinstance(compiled, tuple) else compiled
        if fn is None:
            raise HandlerLoadError(str(_LUA_DIR / file), f"internal Lua does not compile: {compiled!r}")
        return fn(arg)

    def _display(self, path: Path) -> str:
        try:
            rel = os.path.relpath(path)
        except ValueError:
            return str(path)
        return str(path) if rel.startswith("..") else rel

    def _find_module(self, name: bytes) -> tuple[Any, ...]:
        text = _text(name)
        candidates = []
        if text == self.name:
            candidates.append(self._file)
        if "/" not in text and "\\" not in text:
            rel = text.replace(".", "/") + ".lua"
            candidates.extend(root / rel for root in self._roots)
        for c in candidates:
            if c.is_file():
                shown = self._display(c)
                if shown not in self._chunks:
                    self._chunks.append(shown)
                source = c.read_bytes()
                line = _goto_line(source)
                if line:
                    message = (
                        f"{shown}:{line}: goto or a label: gopher-lua (Nakama) compiles Lua 5.2's goto and labels and "
                        "reserves the word goto; PUC Lua 5.1, which runs handlers in replay, has neither, so this "
                        "module cannot be replayed here"
                    )
                    return True, b"error([==[" + _b(message) + b"]==], 0)", _b("@" + shown)
                return True, source, _b("@" + shown)
        tried = "".join(f"\n\tno file '{c}'" for c in candidates)
        return False, _b(tried or f"\n\tno module '{text}'")

    def _load_module(self) -> dict[str, Any]:
        ok, module = self._api[b"load_module"](_b(self.name))
        if not ok:
            raise HandlerLoadError(self.path, f"error loading match module: {self._restore(_text(module))}")
        if _lupa.lua_type(module) != "table":
            raise HandlerLoadError(self.path, "match module must return a table containing the match callback functions")
        fns = {}
        rawget = self._api[b"rawget"]
        for name in CALLBACKS:
            fn = rawget(module, _b(name))
            if _lupa.lua_type(fn) != "function":
                raise HandlerLoadError(self.path, f"{name} not found or not a function")
            fns[name] = fn
        return fns

    def _host(self, gosort: Any) -> Any:
        t = self._lua.table_from
        nk1 = {
            b"time": self._nk_time,
            b"uuid_v4": self._nk_uuid_v4,
            b"json_encode": self._nk_json_encode,
            b"json_decode": self._nk_json_decode,
            b"base64_encode": self._coder("base64_encode", base64.b64encode, True),
            b"base64_decode": self._nk_base64_decode("base64 string", False, True),
            b"base64url_encode": self._coder("base64url_encode", base64.urlsafe_b64encode, True),
            b"base64url_decode": self._nk_base64_decode("base64 url string", True, False),
            b"base16_encode": self._coder("base16_encode", lambda raw: raw.hex().encode(), False),
            b"base16_decode": self._nk_base16_decode,
            b"md5_hash": self._hasher("md5_hash", hashlib.md5),
            b"sha256_hash": self._hasher("sha256_hash", hashlib.sha256),
            b"hmac_sha256_hash": self._nk_hmac_sha256_hash,
            b"aes128_encrypt": self._aes(16, True),
            b"aes128_decrypt": self._aes(16, False),
            b"aes256_encrypt": self._aes(32, True),
            b"aes256_decrypt": self._aes(32, False),
            b"rsa_sha256_hash": self._nk_rsa_sha256_hash,
            b"bcrypt_hash": self._nk_bcrypt_hash,
            b"bcrypt_compare": self._nk_bcrypt_compare,
            b"uuid_bytes_to_string": self._nk_uuid_bytes_to_string,
            b"uuid_string_to_bytes": self._nk_uuid_string_to_bytes,
            b"secure_random_bytes": self._nk_secure_random_bytes,
            b"logger_debug": self._logger("logger_debug", "debug"),
            b"logger_info": self._logger("logger_info", "info"),
            b"logger_warn": self._logger("logger_warn", "warn"),
            b"logger_error": self._logger("logger_error", "error"),
            b"storage_read": self._nk_storage_read,
            b"storage_write": self._nk_storage_write,
            b"localcache_get": self._nk_localcache_get,
        }
        nk0 = {
            b"storage_delete": self._nk_storage_delete,
            b"localcache_put": self._nk_localcache_put,
            b"localcache_delete": self._nk_localcache_delete,
            b"localcache_clear": self._nk_localcache_clear,
        }
        # registrations and run_once only matter to a running server: accepted and ignored in a replay
        for name in (
            "register_rpc", "register_req_before", "register_req_after", "register_rt_before",
            "register_rt_after", "register_matchmaker_matched", "register_tournament_end",
            "register_tournament_reset", "register_leaderboard_reset", "register_shutdown",
            "register_storage_index", "register_storage_index_filter", "register_purchase_notification_apple",
            "register_subscription_notification_apple", "register_purchase_notification_google",
            "register_subscription_notification_google", "run_once",
        ):
            nk0[name.encode()] = self._ignored
        nk3 = {b"http_request": self._nk_http_request}
        host = {
            b"poll": self._poll,
            b"is_hung": self._is_hung,
            b"number_string": lambda v: go_number_string(v).encode(),
            b"format": self._format,
            b"print": self._print,
            b"tonumber": self._api_fn("tonumber", lambda v=None, base=None: go_tonumber(v, base)),
            b"os_clock": self._api_fn("clock", lambda n: self._nk.os_clock()),
            b"os_time": self._api_fn("time", self._os_time),
            b"os_date": self._api_fn("date", self._os_date),
            b"os_difftime": self._api_fn("difftime", lambda n, a=None, b=None: _check_int(a, 1) - _check_int(b, 2)),
            b"random": self._api_fn("random", self._random),
            b"case": self._api_fn("upper", self._go_case),
            b"bit32": t({k.encode(): self._api_fn(k, self._bit(f)) for k, f in BIT32.items()}),
            b"gosort": gosort,
            b"find_module": self._find_module,
            b"nk1": t({k: self._api_fn(_text(k), f) for k, f in nk1.items()}),
            b"nk0": t({k: self._api_fn(_text(k), f) for k, f in nk0.items()}),
            b"nk3": t({k: self._api_fn(_text(k), f) for k, f in nk3.items()}),
            b"unavailable": self._unavailable,
            b"broadcast": self._broadcast,
            b"kick": self._api_fn("match_kick", self._kick),
            b"label_update": self._api_fn("match_label_update", self._label_update),
        }
        return t(host)

    # -- host plumbing --------------------------------------------------------------------------------
    @staticmethod
    def _api_fn(name: str, fn: Any) -> Any:
        """Wrap a host function: ``(True, results...)``, ``(False, message)`` or, for a bad argument,
        ``(False, message, argument number)``; ``replay/lua/runtime.lua`` raises them in gopher-lua's wording."""

        def call(*args: Any) -> Any:
            try:
                result = fn(*args)
            except LuaArgError as exc:  # the Lua side names the function as the caller called it
                return False, _b(exc.message), exc.index
            except LuaPanic as exc:  # a Go panic: its text, no position
                return False, _b(exc.message), 0
            except LuaRaise as exc:
                return False, _b(exc.message)
            except (HandlerError, MatchStopped, StorageRejected, NotAvailableInReplay) as exc:
                return False, _b(str(exc))
            if type(result) is tuple:
                return (True, *result)
            return True, result

        return call

    def _poll(self) -> None:
        """Called by the instruction hook: the hang guard's asynchronous CallbackHung surfaces here."""

    @staticmethod
    def _is_hung(e: Any) -> bool:
        return isinstance(e, CallbackHung)

    def _format(self, fmt: bytes, args: Any, names: Any, n: int) -> tuple[bool, bytes]:
        values = [args[i] for i in range(1, n + 1)]
        labels = [_text(names[i]) if names[i] is not None else "" for i in range(1, n + 1)]
        for i, label in enumerate(labels):
            if label == "\0-0":
                values[i], labels[i] = -0.0, ""
        return True, go_format(fmt, values, labels)

    def _print(self, text: bytes) -> None:
        self._nk.logger.debug(_text(text))

    def _unavailable(self, name: bytes) -> tuple[bool, bytes]:
        return False, _b(str(NotAvailableInReplay(_text(name))))

    def _ignored(self, n: int, *args: Any) -> None:
        return None

    def _bit(self, f: Any) -> Any:
        return lambda n, *args: f(*args[:n])

    def _xorshift_others(self, length: int) -> Any:
        return self._lua.table_from(_make_xorshift(int(length)))

    # -- Python <-> Lua values ------------------------------------------------------------------------
    def _to_lua(self, v: Any) -> Any:
        """A JSON-like Python value as a Lua value (dicts and lists as tables, None as nil)."""
        if v is None or v is True or v is False or isinstance(v, float):
            return v
        if isinstance(v, int):
            return v if _INT64_MIN <= v < _INT64_END else float(v)
        if isinstance(v, str):
            return _b(v)
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v)
        if isinstance(v, dict):
            t = self._new_table()
            for k, x in v.items():
                if x is not None:
                    t[self._to_lua(k)] = self._to_lua(x)
            return t
        if isinstance(v, (list, tuple)):
            t = self._new_table()
            for i, x in enumerate(v, 1):
                if x is not None:
                    t[i] = self._to_lua(x)
            return t
        if isinstance(v, Presence):
            return self._presence(v, True)
        raise TypeError(f"cannot pass a {type(v).__name__} to Lua")

    def _presence(self, p: Presence, with_reason: bool) -> Any:
        return self._mk_presence(
            _b(p.user_id), _b(p.session_id), _b(p.username), _b(p.node), p.reason if with_reason else None
        )

    def _presences(self, presences: Any) -> Any:
        return self._mk_list(*(self._presence(p, True) for p in presences))

    def _messages(self, messages: Any) -> Any:
        mk = self._mk_message
        tables = [
            mk(
                _b(m.sender.user_id), _b(m.sender.session_id), _b(m.sender.username), _b(m.sender.node),
                m.op_code, m.data, bool(m.reliable), m.receive_time_ms,
            )
            for m in messages
        ]
        if len(tables) <= 200:
            return self._mk_list(*tables)
        out = self._new_table()
        for i, t in enumerate(tables, 1):
            out[i] = t
        return out

    def _ctx_table(self, ctx: dict[str, Any]) -> Any:
        """The Lua context: one table kept across calls (as Nakama's ``r.ctx``); join attempts get a new one."""
        if "user_id" in ctx:
            return self._to_lua(ctx)
        if self._base_ctx_table is None or ctx != self._base_ctx:
            table = self._base_ctx_table if self._base_ctx_table is not None else self._new_table()
            for k in list(self._base_ctx or {}):
                if k not in ctx:
                    table[_b(k)] = None
            for k, v in ctx.items():
                table[_b(k)] = self._to_lua(v)
            self._base_ctx_table, self._base_ctx = table, copy.deepcopy(ctx)
        return self._base_ctx_table

    # -- callbacks ------------------------------------------------------------------------------------
    def _call(self, callback: str, *args: Any) -> list[Any]:
        r = self._invoke(self._fns[callback], *args)
        if r[0] is True:
            return list(r[2 : 2 + r[1]])
        err, trace, hung = r[1], r[2], r[3]
        if hung or isinstance(err, CallbackHung):
            raise CallbackHung()
        if isinstance(err, BaseException):
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise err
            text = f"{type(err).__name__}: {err}"
        else:
            text = self._restore(_text(self._error_text(err)))
        raise LuaError(text, _text(trace) if trace else "", lua_error_class(error_message(text)))

    def _restore(self, text: str) -> str:
        """Undo Lua's cut of long chunk names at the start of an error text (``...dlers/arena.lua:12:``)."""
        if text.startswith("..."):
            head = text.split(":", 1)[0][3:]
            for full in self._chunks:
                if full.endswith(head):
                    return full + text[3 + len(head) :]
        return text

    def _bind(self, nk: Any, dispatcher: Any) -> None:
        self._nk = nk
        self._dispatcher = dispatcher

    def match_init(self, ctx: dict[str, Any], logger: Any, nk: Any, params: Any) -> tuple[Any, int, str]:
        self._bind(nk, None)
        values = self._call("match_init", self._ctx_table(ctx), None if params is None else self._to_lua(params))
        stack = [_SENTINEL, *values]
        label = stack.pop()
        if label is _SENTINEL or not isinstance(label, bytes):
            raise HandlerError("match_init returned unexpected third value, must be a label string")
        if len(label) > LABEL_MAX_BYTES:
            raise HandlerError(f"match_init returned invalid label, must be {LABEL_MAX_BYTES} bytes or less")
        rate = stack.pop()
        if rate is _SENTINEL or isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise HandlerError("match_init returned unexpected second value, must be a tick rate number")
        rate_int = _check_int(rate, 2)
        if not 1 <= rate_int <= 60:
            raise HandlerError("match_init returned invalid tick rate, must be between 1 and 60")
        state = stack.pop()
        if state is _SENTINEL:
            raise HandlerError("match_init returned unexpected first value, must be a state")
        if state is None:
            raise HandlerError("Match initial state must not be nil")
        if stack[-1] is not _SENTINEL:
            raise HandlerError("match_init returned too many arguments, must be: state, tick rate number, label string")
        return state, rate_int, _text(label)

    def match_join_attempt(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presence: Any, metadata: Any
    ) -> tuple[Any, bool, str | None]:
        self._bind(nk, dispatcher)
        metadata_table = self._new_table()
        for k, v in (metadata or {}).items():
            metadata_table[_b(str(k))] = self._to_lua(v)
        values = self._call(
            "match_join_attempt", self._ctx_table(ctx), self._lua_dispatcher, tick, state,
            self._presence(presence, False), metadata_table,
        )
        stack = [_SENTINEL, *values]
        top = stack.pop()
        reason = None
        if top is _SENTINEL:
            raise HandlerError(
                "Match join attempt returned too few values, stopping match - expected: state, join result "
                "boolean, optional reject reason string"
            )
        if isinstance(top, bytes):
            reason = _text(top)
            allow = stack.pop()
            if allow is _SENTINEL:
                raise HandlerError(
                    "Match join attempt returned incorrect or too few values, stopping match - expected: state, "
                    "join result boolean, optional reject reason string"
                )
            if allow is not True and allow is not False:
                raise HandlerError("Match join attempt returned non-boolean join result, stopping match")
        elif top is True or top is False:
            allow = top
        else:
            raise HandlerError(
                "Match join attempt returned non-boolean join result or non-string reject reason, stopping match"
            )
        new_state = stack.pop()
        if new_state is None or new_state is _SENTINEL:
            return None, False, ""
        if stack[-1] is not _SENTINEL:
            raise HandlerError("Match join attempt returned too many values, stopping match")
        return new_state, bool(allow), reason

    def _state_only(self, what: str, values: list[Any]) -> Any:
        stack = [_SENTINEL, *values]
        state = stack.pop()
        if state is None or state is _SENTINEL:
            return None
        if stack[-1] is not _SENTINEL:
            raise HandlerError(f"{what} returned too many values, stopping match")
        return state

    def match_join(self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presences: Any) -> Any:
        self._bind(nk, dispatcher)
        values = self._call(
            "match_join", self._ctx_table(ctx), self._lua_dispatcher, tick, state, self._presences(presences)
        )
        return self._state_only("Match join", values)

    def match_leave(self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presences: Any) -> Any:
        self._bind(nk, dispatcher)
        values = self._call(
            "match_leave", self._ctx_table(ctx), self._lua_dispatcher, tick, state, self._presences(presences)
        )
        return self._state_only("Match leave", values)

    def match_loop(self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, messages: Any) -> Any:
        self._bind(nk, dispatcher)
        values = self._call(
            "match_loop", self._ctx_table(ctx), self._lua_dispatcher, tick, state, self._messages(messages)
        )
        return self._state_only("Match loop", values)

    def match_terminate(self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, grace_seconds: int) -> Any:
        self._bind(nk, dispatcher)
        values = self._call("match_terminate", self._ctx_table(ctx), self._lua_dispatcher, tick, state, grace_seconds)
        return self._state_only("Match terminate", values)

    def match_signal(self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, data: str) -> tuple[Any, str]:
        self._bind(nk, dispatcher)
        values = self._call("match_signal", self._ctx_table(ctx), self._lua_dispatcher, tick, state, _b(data))
        stack = [_SENTINEL, *values]
        reply = stack.pop()
        if reply is None:
            text = ""
        elif isinstance(reply, bytes):
            text = _text(reply)
        else:
            raise HandlerError("Match signal returned non-string result, stopping match")
        new_state = stack.pop()
        if new_state is None or new_state is _SENTINEL:
            return None, ""
        if stack[-1] is not _SENTINEL:
            raise HandlerError("Match signal returned too many values, stopping match")
        return new_state, text

    # -- the rest of the handler interface ------------------------------------------------------------
    def copy_state(self, state: Any) -> Any:
        return self._deep_copy(state) if _lupa.lua_type(state) == "table" else state

    def runtime_state(self) -> Any:
        """What a call changes besides the state that a sync test must restore: the address counter."""
        return self._runtime_state()

    def restore_runtime_state(self, saved: Any) -> None:
        self._set_runtime_state(saved)

    def state_value(self, state: Any) -> Any:
        """The state as Nakama's JSON conversion sees it (what ``nk.json_encode(state)`` writes)."""
        return lua_to_plain(state, self._pointer_text)

    def describe_error(self, exc: BaseException) -> tuple[str, str, str]:
        if isinstance(exc, LuaError):
            return exc.text, exc.error_class, exc.traceback
        if isinstance(exc, HandlerError):
            return str(exc), "HandlerError", ""
        return f"{type(exc).__name__}: {exc}", type(exc).__name__, ""

    def close(self) -> None:
        """Forget the runtime's nk and dispatcher (the Lua state stays: a handler object can replay again)."""
        self._nk = self._load_nk
        self._dispatcher = None

    # -- nk ---------------------------------------------------------------------------------------------
    def _nk_time(self, n: int, t: Any = None) -> int:
        if n == 0:
            return self._nk.time()
        _check_table(t, 1)
        f = _int_fields(t)
        secs = unix_from_fields(f("year", -1), f("month", -1), f("day", -1), f("hour", 12), f("min", 0), f("sec", 0))
        return secs * 1000 + f("msec", 0)

    def _nk_uuid_v4(self, n: int) -> bytes:
        return _b(self._nk.uuid_v4())

    def _nk_json_encode(self, n: int, v: Any = None) -> bytes:
        if n == 0:
            raise LuaArgError(1, "value expected")
        try:
            return _b(gojson.dumps(lua_to_plain(v, self._pointer_text)))
        except (ValueError, TypeError) as exc:
            text = str(exc)
            for py, go in (("-inf", "-Inf"), ("inf", "+Inf"), ("nan", "NaN")):
                if text.endswith(py):
                    text = text[: -len(py)] + go
                    break
            raise LuaRaise(f"error encoding to JSON: {text}") from None

    def _nk_json_decode(self, n: int, s: Any = None) -> Any:
        raw = _check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects JSON string")
        text = raw.decode("utf-8", "nkreplay-go")
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            raise LuaRaise(f"not a valid JSON string: {go_json_error(text) or 'invalid JSON'}") from None
        return self._to_lua(value)

    def _coder(self, name: str, encode: Any, padded: bool) -> Any:
        def run(n: int, s: Any = None, padding: Any = None) -> bytes:
            raw = _check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects string")
            out = encode(raw)
            if padded and not _opt_bool(padding, 2, True):
                out = out.rstrip(b"=")
            return out

        return run

    def _nk_base64_decode(self, what: str, url: bool, pad_by_default: bool) -> Any:
        # Nakama pads the input when `padding` is true (base64_decode's default) or false (base64url_decode's
        # default: its flag means "the input is padded"), then decodes with the padded Go encoding
        def run(n: int, s: Any = None, padding: Any = None) -> bytes:
            raw = _check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects string")
            if _opt_bool(padding, 2, pad_by_default) == pad_by_default and len(raw) % 4:
                raw += b"=" * (4 - len(raw) % 4)
            try:
                return go_base64_decode(raw, url)
            except GoDecodeError as exc:
                raise LuaRaise(f"not a valid {what}: {exc}") from None

        return run

    def _nk_base16_decode(self, n: int, s: Any = None) -> bytes:
        raw = _check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects string")
        try:
            return go_hex_decode(raw)
        except GoDecodeError as exc:
            raise LuaRaise(f"not a valid base16 string: {exc}") from None

    def _random_bytes(self, count: int) -> bytes:
        """``count`` bytes of Go's ``crypto/rand``: the recorded value (source ``random_bytes``), else derived."""
        value = self._nk.take("random_bytes", lambda: bytes(int(self._nk.random() * 256) for _ in range(count)))
        return bytes(value) if isinstance(value, (bytes, bytearray)) else _b(str(value))

    def _aes(self, key_size: int, encrypt: bool) -> Any:
        """Nakama's ``aesEncrypt``/``aesDecrypt``: AES-CFB, the 16-byte IV first; encryption pads the input
        with spaces to a multiple of 4 and draws the IV from ``crypto/rand`` (here ``_random_bytes``)."""

        def run(n: int, s: Any = None, key: Any = None) -> bytes:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms  # noqa: PLC0415

            try:  # CFB moved to "decrepit" in cryptography 47 (Nakama still uses it)
                from cryptography.hazmat.decrepit.ciphers.modes import CFB  # noqa: PLC0415
            except ImportError:
                from cryptography.hazmat.primitives.ciphers.modes import CFB  # noqa: PLC0415

            raw = _check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects string")
            k = _check_string(key, 2)
            if len(k) != key_size:
                raise LuaArgError(2, f"expects key {key_size} bytes long")
            if encrypt:
                raw += b" " * (-len(raw) % 4)
                iv = self._random_bytes(16)
                enc = Cipher(algorithms.AES(k), CFB(iv)).encryptor()
                return iv + enc.update(raw) + enc.finalize()
            if len(raw) < 16:
                raise LuaRaise("input too short")
            dec = Cipher(algorithms.AES(k), CFB(raw[:16])).decryptor()
            return dec.update(raw[16:]) + dec.finalize()

        return run

    def _nk_rsa_sha256_hash(self, n: int, s: Any = None, key: Any = None) -> bytes:
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: PLC0415

        raw, k = _check_string(s, 1), _check_string(key, 2)
        if not raw:
            raise LuaArgError(1, "expects input string")
        if not k:
            raise LuaArgError(2, "expects key string")
        match = re.search(rb"-----BEGIN ([^-]+)-----\r?\n(.*?)-----END \1-----", k, re.S)
        if match is None:
            raise LuaRaise("could not parse private key: no valid blocks found")
        try:
            der = base64.b64decode(b"".join(line for line in match.group(2).split() if b":" not in line))
            private = serialization.load_der_private_key(der, None) if match.group(1) == b"RSA PRIVATE KEY" else None
        except ValueError:
            private = None
        if not isinstance(private, rsa.RSAPrivateKey):
            raise LuaRaise("error parsing key: x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)")
        return private.sign(raw, padding.PKCS1v15(), hashes.SHA256())  # PKCS#1 v1.5 is deterministic

    def _nk_bcrypt_hash(self, n: int, s: Any = None) -> bytes:
        import bcrypt  # noqa: PLC0415

        raw = _check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects string")
        if len(raw) > 72:
            raise LuaRaise("error hashing input: bcrypt: password length exceeds 72 bytes")
        # Go's bcrypt: version 2a, cost max(10, 13), a 16-byte salt from crypto/rand in bcrypt's base64
        salt = base64.b64encode(self._random_bytes(16)).translate(_BCRYPT_B64)[:22]
        return bcrypt.hashpw(raw, b"$2a$13$" + salt)

    def _nk_bcrypt_compare(self, n: int, hashed: Any = None, plain: Any = None) -> bool:
        import bcrypt  # noqa: PLC0415

        h, p = _check_string(hashed, 1), _check_string(plain, 2)
        if not h:
            raise LuaArgError(1, "expects string")
        if not p:
            raise LuaArgError(2, "expects string")
        try:
            return bool(bcrypt.checkpw(p[:72], h))
        except ValueError:
            return False  # Go: ErrHashTooShort / ErrMismatchedHashAndPassword answer false

    def _nk_uuid_bytes_to_string(self, n: int, s: Any = None) -> bytes:
        raw = _check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects a UUID byte string")
        if len(raw) != 16:
            raise LuaArgError(1, "not a valid UUID byte string")
        return _b(str(_uuid.UUID(bytes=raw)))

    def _nk_uuid_string_to_bytes(self, n: int, s: Any = None) -> bytes:
        raw = _check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects a UUID string")
        try:
            return _uuid.UUID(raw.decode("ascii")).bytes
        except (ValueError, UnicodeDecodeError):
            raise LuaArgError(1, "not a valid UUID string") from None

    def _nk_secure_random_bytes(self, n: int, count: Any = None) -> bytes:
        c = _check_int(count, 1)
        if c < 1 or c > 1000:
            raise LuaArgError(1, "count must be 1-1000")
        return self._random_bytes(c)

    def _hasher(self, name: str, algorithm: Any) -> Any:
        def run(n: int, s: Any = None) -> bytes:
            raw = _check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects input string")
            return algorithm(raw).hexdigest().encode()

        return run

    def _nk_hmac_sha256_hash(self, n: int, s: Any = None, key: Any = None) -> bytes:
        raw, k = _check_string(s, 1), _check_string(key, 2)
        if not raw:
            raise LuaArgError(1, "expects input string")
        if not k:
            raise LuaArgError(2, "expects key string")
        return hmac.new(k, raw, hashlib.sha256).digest()

    def _logger(self, name: str, level: str) -> Any:
        def run(n: int, msg: Any = None) -> bytes:
            raw = _check_string(msg, 1)
            if not raw:
                raise LuaArgError(1, "expects message string")
            getattr(self._nk, f"logger_{level}")(_text(raw))
            return raw

        return run

    def _object_ids(self, ids: Any, *, delete: bool = False) -> list[dict[str, Any]]:
        """Object ids as ``storageRead``/``storageDelete`` check them, in their order and wording."""
        _check_table(ids, 1)
        out = []
        for entry in ids.values():
            if _lupa.lua_type(entry) != "table":
                raise LuaArgError(1, "expects a valid set of object IDs" if delete else "expects a valid set of keys")
            fields = _storage_fields(entry, ("collection", "key", "user_id", "version") if delete else ("collection", "key", "user_id"))
            if "collection" not in fields:
                raise LuaArgError(1, "expects collection to be supplied")
            if "key" not in fields:
                raise LuaArgError(1, "expects key to be supplied")
            out.append({"user_id": "", **fields})
        return out

    def _nk_storage_read(self, n: int, ids: Any = None) -> Any:
        _check_table(ids, 1)
        if len(ids) == 0:  # Nakama: an empty array part reads nothing
            return self._new_table()
        objects = self._nk.storage_read(self._object_ids(ids))
        # a stored JSON null reads back as an empty table
        objects = [dict(o, value={}) if isinstance(o, dict) and o.get("value") is None else o for o in objects]
        return self._to_lua(objects)

    def _nk_storage_write(self, n: int, objects: Any = None) -> Any:
        _check_table(objects, 1)
        if len(objects) == 0:
            return self._new_table()
        writes = []
        for entry in objects.values():
            if _lupa.lua_type(entry) != "table":
                raise LuaArgError(1, "expects a valid set of data")
            fields = _storage_fields(entry, _WRITE_FIELDS, self._pointer_text)
            for name in ("collection", "key", "value"):
                if name not in fields:
                    raise LuaArgError(1, f"expects {name} to be supplied")
            writes.append(fields)
        try:
            return self._to_lua(self._nk.storage_write(writes))
        except StorageRejected as exc:
            raise LuaRaise(f"failed to write storage objects: {exc}") from None

    def _nk_storage_delete(self, n: int, ids: Any = None) -> None:
        _check_table(ids, 1)
        if len(ids) == 0:
            return
        try:
            self._nk.storage_delete(self._object_ids(ids, delete=True))
        except StorageRejected as exc:
            raise LuaRaise(f"failed to remove storage: {exc}") from None

    def _nk_http_request(self, n: int, *args: Any) -> tuple[Any, Any, Any]:
        url = _text(_check_string(args[0] if args else None, 1))
        method = _text(_check_string(args[1] if len(args) > 1 else None, 2)).upper()
        _check_table(args[2] if len(args) > 2 else None, 3)
        if len(args) > 3 and args[3] is not None:
            _check_string(args[3], 4)
        if not url:
            raise LuaArgError(1, "expects URL string")
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise LuaArgError(2, "expects method to be one of: 'get', 'post', 'put', 'patch', 'delete', 'head'")
        response = self._nk.http_request(url, method)
        if isinstance(response, dict):
            return response.get("code"), self._to_lua(response.get("headers") or {}), self._to_lua(response.get("body", ""))
        code, headers, body = response
        return code, self._to_lua(headers), self._to_lua(body)

    def _nk_localcache_get(self, n: int, key: Any = None, default: Any = None) -> Any:
        return self._localcache.get(_cache_key(key), default)

    def _nk_localcache_put(self, n: int, key: Any = None, value: Any = None, ttl: Any = None) -> None:
        k = _cache_key(key)
        if ttl is not None and _check_int(ttl, 3) < 0:
            raise LuaArgError(3, "ttl must be 0 or more")
        self._localcache[k] = value

    def _nk_localcache_delete(self, n: int, key: Any = None) -> None:
        self._localcache.pop(_cache_key(key), None)

    def _nk_localcache_clear(self, n: int) -> None:
        self._localcache.clear()

    # -- os, math ----------------------------------------------------------------------------------------
    @staticmethod
    def _go_case(n: int, s: Any, to_upper: Any) -> bytes:
        """Go's ``strings.ToUpper``/``ToLower``: rune by rune (simple case mapping), invalid bytes as U+FFFD."""
        out = []
        for c in s.decode("utf-8", "nkreplay-go"):
            mapped = _GO_CASE_EXCEPTIONS.get((c, bool(to_upper))) or (c.upper() if to_upper else c.lower())
            out.append(mapped if len(mapped) == 1 else c)
        return "".join(out).encode("utf-8")

    def _os_time(self, n: int, t: Any = None) -> int:
        if n == 0:
            return self._nk.os_time()
        _check_table(t, 1)
        f = _int_fields(t)
        return unix_from_fields(f("year", -1), f("month", -1), f("day", -1), f("hour", 12), f("min", 0), f("sec", 0))

    def _os_date(self, n: int, fmt: Any = None, t: Any = None) -> Any:
        text = "%c" if n < 1 else _text(_check_string(fmt, 1))
        if text.startswith("!"):
            text = text.lstrip("!")
        if n >= 2:
            value: Any = _format_date(_check_int(t, 2), text)
        else:  # "now": the recorded result (the capture module logs os.date's value), else the derived clock
            value = self._nk.take("os_date", lambda: _format_date(self._derived_seconds(), text))
        return self._to_lua(value)

    def _derived_seconds(self) -> int:
        sources = getattr(self._nk, "_sources", None)  # the runtime's clock for values a recording lacks
        return sources.time_ms(self._nk.tick) // 1000 if sources is not None else 0

    def _random(self, n: int, m: Any = None, k: Any = None) -> Any:
        if n >= 1:
            lo, hi = (1, _check_int(m, 1)) if n == 1 else (_check_int(m, 1), _check_int(k, 2))
            if hi < lo:
                raise LuaPanic("invalid argument to Intn")  # gopher-lua calls rand.Intn(hi - lo + 1)
        value = self._nk.random()
        if n == 0:
            return value
        if isinstance(value, float) and 0.0 <= value < 1.0:
            return lo + int(value * (hi - lo + 1))
        return value  # an integer recorded from Nakama's math.random(m, n)

    def current_frame(self) -> str:
        """Base name of the handler's Lua file on the stack now (as crash signatures name Lua frames), ""
        when no handler code is running: where a dispatcher call made from Lua came from."""
        src = self._handler_frame()
        return os.path.basename(_text(src).replace("\\", "/")) if src else ""

    # -- the dispatcher ---------------------------------------------------------------------------------
    def _live_dispatcher(self) -> Any:
        d = self._dispatcher
        if d is None:
            raise LuaRaise("dispatcher functions can only be called from match callbacks")
        if d.stopped:
            raise MatchStopped()
        return d

    def _broadcast(self, deferred: bool, n: int, *args: Any) -> tuple[Any, ...]:
        return (self._broadcast_deferred if deferred else self._broadcast_now)(*args)

    def _do_broadcast(self, deferred: bool, op: Any = None, data: Any = None, presences: Any = None, sender: Any = None, reliable: Any = None) -> None:
        d = self._live_dispatcher()
        if isinstance(op, bytes):
            try:
                op = float(op)
            except ValueError:
                raise LuaArgError(1, "number expected, got string") from None
        op_code = _check_int(op, 1)
        if data is not None and not isinstance(data, bytes):
            raise LuaArgError(2, "expects data to be a string or nil")
        targets = None
        table = _opt_table(presences, 3)
        if table is not None:
            if len(table) == 0:
                return None
            targets = []
            for p in table.values():
                if _lupa.lua_type(p) != "table":
                    raise LuaArgError(3, "expects a valid set of presences")
                sid, node = p[b"session_id"], p[b"node"]
                if sid is not None and not _is_uuid(sid):
                    raise LuaArgError(3, "expects each presence to have a valid session_id")
                if node is not None and not isinstance(node, bytes):
                    raise LuaArgError(3, "expects node to be string")
                if not sid or not node:
                    raise LuaArgError(3, "expects each presence to have a valid session_id and node")
                uid = p[b"user_id"]
                targets.append(Presence(_text(uid) if isinstance(uid, bytes) else "", _text(sid), _text(p[b"username"] or b""), _text(node)))
            if len(targets) == 1 and not _is_uuid(table[1][b"user_id"] if _lupa.lua_type(table[1]) == "table" else None):
                raise LuaArgError(3, "expects each presence to have a valid user_id")
        sender_p = None
        stable = _opt_table(sender, 4)
        if stable is not None:
            uid, sid, uname = stable[b"user_id"], stable[b"session_id"], stable[b"username"]
            if uid is not None and not _is_uuid(uid):
                raise LuaArgError(4, "expects presence to have a valid user_id")
            if sid is not None and not _is_uuid(sid):
                raise LuaArgError(4, "expects presence to have a valid session_id")
            if uname is not None and not isinstance(uname, bytes):
                raise LuaArgError(4, "expects username to be string")
            if not uid or not sid or not uname:
                raise LuaArgError(4, "expects presence to have a valid user_id, session_id, and username")
            sender_p = Presence(_text(uid), _text(sid), _text(uname))
        rel = _opt_bool(reliable, 5, True)
        send = d.broadcast_message_deferred if deferred else d.broadcast_message
        send(op_code, data, targets, sender_p, rel)
        return None

    def _kick(self, n: int, presences: Any = None) -> None:
        d = self._live_dispatcher()
        table = _opt_table(presences, 1)
        if table is None or len(table) == 0:
            return None
        kicked = []
        for p in table.values():
            if _lupa.lua_type(p) != "table":
                raise LuaArgError(1, "expects a valid set of presences")
            uid, sid, node = p[b"user_id"], p[b"session_id"], p[b"node"]
            if uid is not None and not _is_uuid(uid):
                raise LuaArgError(1, "expects each presence to have a valid user_id")
            if sid is not None and not _is_uuid(sid):
                raise LuaArgError(1, "expects each presence to have a valid session_id")
            if node is not None and not isinstance(node, bytes):
                raise LuaArgError(1, "expects node to be string")
            if not uid or not sid or not node:
                raise LuaArgError(1, "expects each presence to have a valid user_id, session_id, and node")
            reason = p[b"reason"]
            kicked.append(
                Presence(_text(uid), _text(sid), _text(p[b"username"] or b""), _text(node), int(reason) if isinstance(reason, (int, float)) else 0)
            )
        d.match_kick(kicked)
        return None

    def _label_update(self, n: int, label: Any = None) -> None:
        d = self._live_dispatcher()
        text = _text(_check_string(label, 1)) if label is not None else ""
        d.match_label_update(text)
        if self._base_ctx_table is not None:
            self._base_ctx_table[b"match_label"] = _b(text)
        return None


def _cache_key(key: Any) -> bytes:
    k = _check_string(key, 1)
    if not k:
        raise LuaArgError(1, "expects key string")
    return k


#: storage_write's fields and the Lua type each must have (``tableToStorageOpWrites``)
_WRITE_FIELDS = ("collection", "key", "user_id", "value", "version", "permission_read", "permission_write")


def _storage_fields(entry: Any, names: tuple[str, ...], pointer: Any = None) -> dict[str, Any]:
    """One storage object table checked field by field with Nakama's wording; the fields present."""
    out: dict[str, Any] = {}
    for name in names:
        v = entry[name.encode()]
        if v is None:
            continue
        if name in ("permission_read", "permission_write"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise LuaArgError(1, f"expects {name} to be number")
            out[name] = _check_int(v, 1)
            continue
        if name == "value":
            if _lupa.lua_type(v) != "table":
                raise LuaArgError(1, "expects value to be table")
            plain = lua_to_plain(v, pointer)
            # RuntimeLuaConvertLuaTable: a table with an array part is not a map, so Nakama stores JSON null
            out[name] = plain if isinstance(plain, dict) else "null"
            continue
        if not isinstance(v, bytes):
            raise LuaArgError(1, f"expects {name} to be string")
        text = _text(v)
        if name == "user_id":
            if not _is_uuid(v):
                raise LuaArgError(1, "expects user_id to be a valid ID")
        elif not text:
            raise LuaArgError(1, f"expects {name} to be a non-empty string")
        out[name] = text
    return out


def _format_date(seconds: int, fmt: str) -> Any:
    return date_table(seconds) if fmt.startswith("*t") else strftime(seconds, fmt)


def _int_fields(t: Any) -> Any:
    """gopher-lua's ``getIntField``: a number field (truncated) or the default."""

    def get(name: str, default: int) -> int:
        v = t[name.encode()]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return _check_int(v, 1)
        return default

    return get


_GO_CASE_EXCEPTIONS = {("\u0130", False): "i", ("\u1e9e", False): "\u00df"}  # Go's single-rune mappings
_BCRYPT_B64 = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
)


_LUA_SKIP_OR_GOTO = re.compile(
    rb"--\[(=*)\[.*?\]\1\]|--[^\n]*|\[(=*)\[.*?\]\2\]|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|(::|\bgoto\b)",
    re.S,
)


def _goto_line(source: bytes) -> int:
    """The line of the first ``goto`` or ``::label::`` token outside strings and comments, else 0."""
    if b"goto" not in source and b"::" not in source:
        return 0
    for m in _LUA_SKIP_OR_GOTO.finditer(source):
        if m.group(3):
            return source.count(b"\n", 0, m.start()) + 1
    return 0


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN and Infinity; Go does not


_GO_INT_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+|inf|infinity|nan)",
    re.IGNORECASE,
)


def go_tonumber(v: Any, base: Any = None) -> Any:
    """gopher-lua's ``tonumber``: a string with a "." is Go's ``ParseFloat`` (out of range: nil), any other
    string Go's ``ParseInt`` in the base (``0x`` prefix: base 16 when no base is given), so
    ``tonumber("1e2")`` is nil; numbers are returned as they are, anything else is nil."""
    if base is not None and (isinstance(base, bool) or not isinstance(base, (int, float))):
        raise LuaArgError(2, f"number expected, got {_ltype(base)}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if not isinstance(v, bytes):
        return None
    text = v.decode("latin-1").strip(" \n\t")
    if "." in text:
        if not _GO_FLOAT.fullmatch(text):
            return None
        x = float.fromhex(text) if "x" in text.lower() else float(text)
        if x in (float("inf"), float("-inf")) and "inf" not in text.lower():
            return None  # ParseFloat's ErrRange
        return x
    b = 10 if base is None else int(base)
    if base is None and text.lower().startswith("0x"):
        b, text = 16, text[2:]
    if not 2 <= b <= 36:
        return None
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or any(c not in _GO_INT_DIGITS[:b] for c in digits.lower()):
        return None
    n = int(text, b)
    return n if -(1 << 63) <= n < (1 << 63) else None


def _make_xorshift(length: int) -> list[int]:
    """The three offsets Go's ``breakPatterns`` draws from ``xorshift(length)`` for a slice of ``length``."""
    mask64 = (1 << 64) - 1
    r = length & mask64
    modulus = 1 << length.bit_length()
    out = []
    for _ in range(3):
        r ^= (r << 13) & mask64
        r ^= r >> 7
        r ^= (r << 17) & mask64
        other = r & (modulus - 1)
        if other >= length:
            other -= length
        out.append(other)
    return out
