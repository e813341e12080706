"""Nakama Lua match modules in the replay runtime: the very file a studio deploys, run in LuaJIT's
interpreter (lupa.luajit21, the JIT compiler off: compiled code never calls the hang guard's instruction hook).

``LuaHandler(path)`` loads a module the way Nakama does (``require(name)`` of a module that returns a table
with the seven callbacks; ``require`` finds other modules by dotted name in the module's folder, then in
``module_path`` folders, then the packaged ``nkreplay_capture``) and exposes the Python handler interface
``replay.runtime._runtime`` calls. Callbacks get ``(context, dispatcher, tick, state, X)`` and reach logger and nk
through ``require("nakama")``, which serves the runtime's deterministic ``Nk``. Return values are checked
with Nakama's own wording and the same stack rules as ``server/runtime_lua_match_core.go``. The state
stays a Lua table between calls. The ``nk`` functions are ``replay.lua._nk.NkBinding``, the value
conversions ``replay.lua._convert``; ``prelude.lua`` is the Lua side.

Fidelity to gopher-lua (Nakama's Lua), see ``replay/lua/prelude.lua``:

- mirrored: the library set (base, package, table, string, math, bit32, os.clock/date/difftime/time; no
  io, debug, coroutine, nor LuaJIT's jit, bit, ffi, string.buffer, table.new/clear), goto and labels, ``tostring`` and ``string.format`` through Go's fmt rules (``replay.gocompat._fmt``),
  ``table.sort`` as Go's ``sort.Sort``, Nakama's ``os.date`` and ``bit32``, error texts of library and
  dispatcher argument checks, tracebacks in gopher-lua's format (``[G]`` frames, ``in main chunk``),
  ``nk.json_encode`` of tables (arrays from 1 to the highest integer key, Go key order and float text);
- detected, not mirrored: ``pairs``/``next`` order (gopher-lua: integer keys, then insertion order; here:
  integer keys, then the others sorted, the same in every run although LuaJIT seeds its string hash at random); ``LuaHandler(path, pairs_order="reverse")`` replays with a perturbed order and
  ``replay.lua._check`` compares the two runs;
- not mirrored: runtime error wording (``attempt to index local 'x' (a nil value)`` here, ``attempt to
  index a non-table object(nil) with key 'k'`` in Nakama; ``replay.runtime.lua_error_class`` classes
  both alike), numbers converted by ``..`` (``%.14g`` here, Go's format in Nakama: ``1e15 .. ""``), ``#`` of
  tables with holes.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lupa.luajit21 as _lupa

from recorder.capture import MODULES_DIR, error_message
from recorder.format import CALLBACKS, Presence
from replay.errors import (
    HandlerError,
    HandlerLoadError,
    LuaError,
    MatchStopped,
    NotAvailableInReplay,
    StateError,
    StorageRejected,
)
from replay.gocompat._fmt import go_format, go_number_string
from replay.lua._convert import (
    INT64_END,
    INT64_MIN,
    as_bytes,
    as_text,
    check_int,
    check_string,
    check_table,
    go_tonumber,
    int_fields,
    is_uuid,
    lua_to_plain,
    opt_bool,
    opt_table,
)
from replay.lua._nk import NkBinding
from replay.lua._stdlib import (
    BIT32,
    LuaArgError,
    LuaPanic,
    LuaRaise,
    date_table,
    strftime,
    unix_from_fields,
)
from replay.runtime._dispatcher import LABEL_MAX_BYTES
from replay.runtime._hang import CallbackHung
from replay.runtime._nk import DerivedSources, Nk
from replay.runtime._signature import lua_error_class

if TYPE_CHECKING:
    from replay.lua._serialized import SerializedKernel

__all__ = ["LuaHandler"]

_LUA_DIR = Path(__file__).resolve().parent  # prelude.lua, gosort.lua, canonical.lua and json.lua
_SENTINEL = object()
_MESSAGES_PER_CALL = 200  # 8 arguments a message: well within the Lua stack (LUAI_MAXCSTACK, 8000)


class LuaHandler(NkBinding):
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
        self._roots = [
            self._file.parent,
            *(Path(m).resolve() for m in module_path or ()),
            MODULES_DIR,
        ]  # the capture module: searched last
        self._chunks: list[str] = []  # display paths of loaded chunks, to undo Lua's cut of long names
        self._load_nk = Nk(DerivedSources())
        self._nk = self._load_nk
        self._dispatcher: Any = None
        self._localcache: dict[bytes, Any] = {}
        self._base_ctx: dict[str, Any] | None = None
        self._base_ctx_table: Any = None
        lua = self._lua = _lupa.LuaRuntime(
            encoding=None, register_eval=False, register_builtins=False, unpack_returned_tuples=True
        )
        # LuaJIT's interpreter only: compiled traces never call the instruction hook the hang guard needs
        # (a `while true do end` compiled would run on past its limit)
        lua.globals()[b"jit"][b"off"]()
        loadstring = lua.eval(b"loadstring")
        # before the prelude changes globals (and takes string.buffer away)
        self._canonical, self._serialize = self._internal(loadstring, "canonical.lua", None)
        self._serialized: SerializedKernel | None = None  # replay.lua._serialized, loaded on first use
        self._json = self._internal(loadstring, "json.lua", None)  # nk.json_decode/json_encode's common cases
        self._json_decode, self._json_encode = self._json[b"decode"], self._json[b"encode"]
        gosort = self._internal(loadstring, "gosort.lua", self._xorshift_others)
        self._api = api = self._internal(loadstring, "prelude.lua", self._host(gosort))
        self._invoke = api[b"invoke"]
        self._mk_presence = api[b"presence"]
        self._mk_message = api[b"message"]
        self._mk_messages = api[b"messages"]
        self._senders: dict[int, tuple[Presence, tuple[bytes, bytes, bytes, bytes]]] = {}
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
        text = as_text(name)
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
                return True, source, as_bytes("@" + shown)
        tried = "".join(f"\n\tno file '{c}'" for c in candidates)
        return False, as_bytes(tried or f"\n\tno module '{text}'")

    def _load_module(self) -> dict[str, Any]:
        ok, module = self._api[b"load_module"](as_bytes(self.name))
        if not ok:
            raise HandlerLoadError(self.path, f"error loading match module: {self._restore(as_text(module))}")
        if _lupa.lua_type(module) != "table":
            raise HandlerLoadError(
                self.path, "match module must return a table containing the match callback functions"
            )
        fns = {}
        rawget = self._api[b"rawget"]
        for name in CALLBACKS:
            fn = rawget(module, as_bytes(name))
            if _lupa.lua_type(fn) != "function":
                raise HandlerLoadError(self.path, f"{name} not found or not a function")
            fns[name] = fn
        return fns

    def _host(self, gosort: Any) -> Any:
        t = self._lua.table_from
        nk1, nk0, nk3 = self._nk_tables()
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
            b"os_difftime": self._api_fn("difftime", lambda n, a=None, b=None: check_int(a, 1) - check_int(b, 2)),
            b"random": self._api_fn("random", self._random),
            b"case": self._api_fn("upper", self._go_case),
            b"bit32": t({k.encode(): self._api_fn(k, self._bit(f)) for k, f in BIT32.items()}),
            b"gosort": gosort,
            b"find_module": self._find_module,
            b"nk1": t({k: self._api_fn(as_text(k), f) for k, f in nk1.items()}),
            b"nk0": t({k: self._api_fn(as_text(k), f) for k, f in nk0.items()}),
            b"nk3": t({k: self._api_fn(as_text(k), f) for k, f in nk3.items()}),
            b"json_decode": self._json_decode,
            b"json_encode": self._json_encode,
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
        ``(False, message, argument number)``; ``replay/lua/prelude.lua`` raises them in gopher-lua's wording."""

        def call(*args: Any) -> Any:
            try:
                result = fn(*args)
            except LuaArgError as exc:  # the Lua side names the function as the caller called it
                return False, as_bytes(exc.message), exc.index
            except LuaPanic as exc:  # a Go panic: its text, no position
                return False, as_bytes(exc.message), 0
            except LuaRaise as exc:
                return False, as_bytes(exc.message)
            except (HandlerError, MatchStopped, StorageRejected, NotAvailableInReplay) as exc:
                return False, as_bytes(str(exc))
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
        labels = [as_text(names[i]) if names[i] is not None else "" for i in range(1, n + 1)]
        for i, label in enumerate(labels):
            if label == "\0-0":
                values[i], labels[i] = -0.0, ""
        return True, go_format(fmt, values, labels)

    def _print(self, text: bytes) -> None:
        self._nk.logger.debug(as_text(text))

    def _unavailable(self, name: bytes) -> tuple[bool, bytes]:
        return False, as_bytes(str(NotAvailableInReplay(as_text(name))))

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
            return v if INT64_MIN <= v < INT64_END else float(v)
        if isinstance(v, str):
            return as_bytes(v)
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
            as_bytes(p.user_id),
            as_bytes(p.session_id),
            as_bytes(p.username),
            as_bytes(p.node),
            p.reason if with_reason else None,
        )

    def _presences(self, presences: Any) -> Any:
        return self._mk_list(*(self._presence(p, True) for p in presences))

    def _messages(self, messages: Any) -> Any:
        """The loop's messages as one Lua list, built in Lua from their fields in one call (``api.messages``):
        a lupa call per message cost more than the tables."""
        if len(messages) > _MESSAGES_PER_CALL:  # a call's arguments live on the Lua stack: big batches by message
            out = self._new_table()
            for i, m in enumerate(messages, 1):
                out[i] = self._mk_message(
                    *self._sender_fields(m.sender), m.op_code, m.data, bool(m.reliable), m.receive_time_ms
                )
            return out
        fields: list[Any] = []
        add = fields.extend
        sender_fields = self._sender_fields
        for m in messages:
            add(sender_fields(m.sender))
            add((m.op_code, m.data, bool(m.reliable), m.receive_time_ms))
        return self._mk_messages(*fields)

    def _sender_fields(self, p: Presence) -> tuple[bytes, bytes, bytes, bytes]:
        """A sender's user id, session id, username and node as Lua strings; kept per Presence object (a
        recording's chunk shares one per sender), the object held so that its id cannot be reused."""
        kept = self._senders.get(id(p))
        if kept is not None and kept[0] is p:
            return kept[1]
        fields = (as_bytes(p.user_id), as_bytes(p.session_id), as_bytes(p.username), as_bytes(p.node))
        if len(self._senders) >= 1024:
            self._senders.clear()
        self._senders[id(p)] = (p, fields)
        return fields

    def _ctx_table(self, ctx: dict[str, Any]) -> Any:
        """The Lua context: one table kept across calls (as Nakama's ``r.ctx``); join attempts get a new one."""
        if "user_id" in ctx:
            return self._to_lua(ctx)
        if self._base_ctx_table is None or ctx != self._base_ctx:
            table = self._base_ctx_table if self._base_ctx_table is not None else self._new_table()
            for k in list(self._base_ctx or {}):
                if k not in ctx:
                    table[as_bytes(k)] = None
            for k, v in ctx.items():
                table[as_bytes(k)] = self._to_lua(v)
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
            text = self._restore(as_text(self._error_text(err)))
        raise LuaError(text, as_text(trace) if trace else "", lua_error_class(error_message(text)))

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
        rate_int = check_int(rate, 2)
        if not 1 <= rate_int <= 60:
            raise HandlerError("match_init returned invalid tick rate, must be between 1 and 60")
        state = stack.pop()
        if state is _SENTINEL:
            raise HandlerError("match_init returned unexpected first value, must be a state")
        if state is None:
            raise HandlerError("Match initial state must not be nil")
        if stack[-1] is not _SENTINEL:
            raise HandlerError("match_init returned too many arguments, must be: state, tick rate number, label string")
        return state, rate_int, as_text(label)

    def match_join_attempt(
        self,
        ctx: dict[str, Any],
        logger: Any,
        nk: Any,
        dispatcher: Any,
        tick: int,
        state: Any,
        presence: Any,
        metadata: Any,
    ) -> tuple[Any, bool, str | None]:
        self._bind(nk, dispatcher)
        metadata_table = self._new_table()
        for k, v in (metadata or {}).items():
            metadata_table[as_bytes(str(k))] = self._to_lua(v)
        values = self._call(
            "match_join_attempt",
            self._ctx_table(ctx),
            self._lua_dispatcher,
            tick,
            state,
            self._presence(presence, False),
            metadata_table,
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
            reason = as_text(top)
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

    def match_join(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presences: Any
    ) -> Any:
        self._bind(nk, dispatcher)
        values = self._call(
            "match_join", self._ctx_table(ctx), self._lua_dispatcher, tick, state, self._presences(presences)
        )
        return self._state_only("Match join", values)

    def match_leave(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presences: Any
    ) -> Any:
        self._bind(nk, dispatcher)
        values = self._call(
            "match_leave", self._ctx_table(ctx), self._lua_dispatcher, tick, state, self._presences(presences)
        )
        return self._state_only("Match leave", values)

    def match_loop(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, messages: Any
    ) -> Any:
        self._bind(nk, dispatcher)
        values = self._call(
            "match_loop", self._ctx_table(ctx), self._lua_dispatcher, tick, state, self._messages(messages)
        )
        return self._state_only("Match loop", values)

    def match_terminate(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, grace_seconds: int
    ) -> Any:
        self._bind(nk, dispatcher)
        values = self._call("match_terminate", self._ctx_table(ctx), self._lua_dispatcher, tick, state, grace_seconds)
        return self._state_only("Match terminate", values)

    def match_signal(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, data: str
    ) -> tuple[Any, str]:
        self._bind(nk, dispatcher)
        values = self._call("match_signal", self._ctx_table(ctx), self._lua_dispatcher, tick, state, as_bytes(data))
        stack = [_SENTINEL, *values]
        reply = stack.pop()
        if reply is None:
            text = ""
        elif isinstance(reply, bytes):
            text = as_text(reply)
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

    def state_from_value(self, value: Any) -> Any:
        """A state given as plain data (a slice's resume point, ``replay.runtime._resume``) as Lua tables."""
        return self._to_lua(value)

    def state_value(self, state: Any) -> Any:
        """The state as Nakama's JSON conversion sees it (what ``nk.json_encode(state)`` writes); a state that
        conversion refuses (a table inside itself) raises ``StateError``: Nakama never converts a state, so
        that is no crash of the match, only a state the replay cannot digest."""
        try:
            return lua_to_plain(state, self._pointer_text)
        except LuaRaise as exc:
            raise StateError("", exc.message) from None

    def state_canonical_bytes(self, state: Any) -> bytes | None:
        """``canonical_bytes(state_value(state))`` computed in Lua (``canonical.lua``), without building the
        Python value; None when the state holds something only that path handles (the caller takes it)."""
        data = self._canonical(state)
        return data if type(data) is bytes else None

    def state_canonical_bytes_compiled(self, state: Any) -> bytes | None:
        """``state_canonical_bytes`` from LuaJIT's serializer and a numba kernel (``replay.lua._serialized``),
        ``canonical.lua`` where the kernel gives up. The runtime calls it once the process has loaded numba
        for its own compiled canonical walk."""
        kernel = self._serialized
        if kernel is None:
            from replay.lua._serialized import SerializedKernel

            kernel = self._serialized = SerializedKernel()
        serialized = self._serialize(state)
        if type(serialized) is bytes:
            data = kernel.canonical_bytes(serialized)
            if data is not None:
                return data
        return self.state_canonical_bytes(state)

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
        check_table(t, 1)
        f = int_fields(t)
        return unix_from_fields(f("year", -1), f("month", -1), f("day", -1), f("hour", 12), f("min", 0), f("sec", 0))

    def _os_date(self, n: int, fmt: Any = None, t: Any = None) -> Any:
        text = "%c" if n < 1 else as_text(check_string(fmt, 1))
        if text.startswith("!"):
            text = text.lstrip("!")
        if n >= 2:
            value: Any = _format_date(check_int(t, 2), text)
        else:  # "now": the recorded result (the capture module logs os.date's value), else the derived clock
            value = self._nk.take("os_date", lambda: _format_date(self._derived_seconds(), text))
        return self._to_lua(value)

    def _derived_seconds(self) -> int:
        sources = getattr(self._nk, "_sources", None)  # the runtime's clock for values a recording lacks
        return sources.time_ms(self._nk.tick) // 1000 if sources is not None else 0

    def _random(self, n: int, m: Any = None, k: Any = None) -> Any:
        if n >= 1:
            lo, hi = (1, check_int(m, 1)) if n == 1 else (check_int(m, 1), check_int(k, 2))
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
        return os.path.basename(as_text(src).replace("\\", "/")) if src else ""

    # -- the dispatcher ---------------------------------------------------------------------------------
    def _live_dispatcher(self) -> Any:
        d = self._dispatcher
        if d is None:
            raise LuaRaise("dispatcher functions can only be called from match callbacks")
        if d.stopped:
            raise MatchStopped()
        return d

    def _broadcast(self, deferred: bool, n: int, *args: Any) -> tuple[Any, ...]:
        result: tuple[Any, ...] = (self._broadcast_deferred if deferred else self._broadcast_now)(*args)
        return result

    def _do_broadcast(
        self,
        deferred: bool,
        op: Any = None,
        data: Any = None,
        presences: Any = None,
        sender: Any = None,
        reliable: Any = None,
    ) -> None:
        d = self._live_dispatcher()
        if isinstance(op, bytes):
            try:
                op = float(op)
            except ValueError:
                raise LuaArgError(1, "number expected, got string") from None
        op_code = check_int(op, 1)
        if data is not None and not isinstance(data, bytes):
            raise LuaArgError(2, "expects data to be a string or nil")
        targets = None
        table = opt_table(presences, 3)
        if table is not None:
            if len(table) == 0:
                return None
            targets = []
            for p in table.values():
                if _lupa.lua_type(p) != "table":
                    raise LuaArgError(3, "expects a valid set of presences")
                sid, node = p[b"session_id"], p[b"node"]
                if sid is not None and not is_uuid(sid):
                    raise LuaArgError(3, "expects each presence to have a valid session_id")
                if node is not None and not isinstance(node, bytes):
                    raise LuaArgError(3, "expects node to be string")
                if not sid or not node:
                    raise LuaArgError(3, "expects each presence to have a valid session_id and node")
                uid = p[b"user_id"]
                targets.append(
                    Presence(
                        as_text(uid) if isinstance(uid, bytes) else "",
                        as_text(sid),
                        as_text(p[b"username"] or b""),
                        as_text(node),
                    )
                )
            if len(targets) == 1 and not is_uuid(table[1][b"user_id"] if _lupa.lua_type(table[1]) == "table" else None):
                raise LuaArgError(3, "expects each presence to have a valid user_id")
        sender_p = None
        stable = opt_table(sender, 4)
        if stable is not None:
            uid, sid, uname = stable[b"user_id"], stable[b"session_id"], stable[b"username"]
            if uid is not None and not is_uuid(uid):
                raise LuaArgError(4, "expects presence to have a valid user_id")
            if sid is not None and not is_uuid(sid):
                raise LuaArgError(4, "expects presence to have a valid session_id")
            if uname is not None and not isinstance(uname, bytes):
                raise LuaArgError(4, "expects username to be string")
            if not uid or not sid or not uname:
                raise LuaArgError(4, "expects presence to have a valid user_id, session_id, and username")
            sender_p = Presence(as_text(uid), as_text(sid), as_text(uname))
        rel = opt_bool(reliable, 5, True)
        send = d.broadcast_message_deferred if deferred else d.broadcast_message
        send(op_code, data, targets, sender_p, rel)
        return None

    def _kick(self, n: int, presences: Any = None) -> None:
        d = self._live_dispatcher()
        table = opt_table(presences, 1)
        if table is None or len(table) == 0:
            return None
        kicked = []
        for p in table.values():
            if _lupa.lua_type(p) != "table":
                raise LuaArgError(1, "expects a valid set of presences")
            uid, sid, node = p[b"user_id"], p[b"session_id"], p[b"node"]
            if uid is not None and not is_uuid(uid):
                raise LuaArgError(1, "expects each presence to have a valid user_id")
            if sid is not None and not is_uuid(sid):
                raise LuaArgError(1, "expects each presence to have a valid session_id")
            if node is not None and not isinstance(node, bytes):
                raise LuaArgError(1, "expects node to be string")
            if not uid or not sid or not node:
                raise LuaArgError(1, "expects each presence to have a valid user_id, session_id, and node")
            reason = p[b"reason"]
            kicked.append(
                Presence(
                    as_text(uid),
                    as_text(sid),
                    as_text(p[b"username"] or b""),
                    as_text(node),
                    int(reason) if isinstance(reason, (int, float)) else 0,
                )
            )
        d.match_kick(kicked)
        return None

    def _label_update(self, n: int, label: Any = None) -> None:
        d = self._live_dispatcher()
        text = as_text(check_string(label, 1)) if label is not None else ""
        d.match_label_update(text)
        if self._base_ctx_table is not None:
            self._base_ctx_table[b"match_label"] = as_bytes(text)
        return None


def _format_date(seconds: int, fmt: str) -> Any:
    return date_table(seconds) if fmt.startswith("*t") else strftime(seconds, fmt)


_GO_CASE_EXCEPTIONS = {("\u0130", False): "i", ("\u1e9e", False): "\u00df"}  # Go's single-rune mappings


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
