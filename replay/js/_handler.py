"""Nakama JavaScript/TypeScript match modules in the replay runtime: the very bundle a studio deploys.

``JsHandler("build/index.js", match="arena")`` evaluates the bundle in QuickJS (``quickjs-ng``) the way
Nakama's goja runtime loads it (one script, strict mode, frames named by the file's base name), runs
``InitModule(ctx, logger, nk, initializer)`` with an initializer that records ``registerMatch`` and
``registerRpc``, and exposes the Python handler interface ``replay.runtime`` calls (see
``replay.runtime._handlers``). Callbacks get Nakama's JS arguments and their return values are judged with Nakama
3.40's rules and wording (``replay/js/prelude.js``, ``outcome``). A ``.ts`` file is compiled first
(``replay.js.typescript``).

What crosses between Python and JavaScript: the state stays a JavaScript object between calls (Python
holds a ``JsState`` slot number); inputs go in as JSON text, bytes as latin-1 strings rebuilt into
ArrayBuffers; ``nk``, the logger and the dispatcher call back into Python (``_host``), where the runtime's
deterministic ``Nk`` (``replay.runtime._nk``) and ``Dispatcher`` (``replay.runtime._dispatcher``) do the work, so JS handlers
get the same recorded time, randomness, uuids, storage and broadcast rules as Python and Lua handlers.
``Math.random``, ``Date.now()`` and ``new Date()`` draw from that ``Nk`` (sources ``random`` and
``time``); dates are UTC whatever the machine's zone.

Fidelity to goja (Nakama's engine) is listed in ``replay/js/FIDELITY.md``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import weakref
from pathlib import Path
from typing import Any

import quickjs

from recorder.format import Presence
from replay.errors import (
    HandlerError,
    HandlerLoadError,
    MatchStopped,
    NakamaReplayError,
    NotAvailableInReplay,
    StateError,
    StorageRejected,
)
from replay.gocompat._decode import GoDecodeError, go_base64_decode, go_hex_decode
from replay.gocompat._json_errors import go_json_error
from replay.js._engine import JsEngine, host_error
from replay.runtime._nk import DerivedSources, Nk
from replay.runtime._signature import js_error_class

__all__ = ["JsError", "JsHandler", "JsState"]

_PRELUDE_JS = Path(__file__).resolve().parent / "prelude.js"
_STRICT = '"use strict";'  # Nakama compiles the entry file in strict mode
_GLUE_LINE = 1_000_000  # prelude.js starts on this line: frames at or past it are the runtime's, not the bundle's
_CALLBACKS = {
    "match_init": "matchInit",
    "match_join_attempt": "matchJoinAttempt",
    "match_join": "matchJoin",
    "match_leave": "matchLeave",
    "match_loop": "matchLoop",
    "match_terminate": "matchTerminate",
    "match_signal": "matchSignal",
}
_CTX_KEYS = {
    "env": "env",
    "execution_mode": "executionMode",
    "node": "node",
    "match_id": "matchId",
    "match_node": "matchNode",
    "match_label": "matchLabel",
    "match_tick_rate": "matchTickRate",
    "user_id": "userId",
    "username": "username",
    "session_id": "sessionId",
    "vars": "vars",
}


class JsError(NakamaReplayError):
    """A JavaScript callback threw: ``text`` as Nakama logs it (``value at top frame``), the stack."""

    def __init__(self, text: str, stack: str = "", error_class: str = "js:error") -> None:
        super().__init__(text)
        self.text = text
        self.traceback = stack
        self.error_class = error_class


class JsState:
    """A handle on a state object that lives in the JavaScript context (freed when the handle is)."""

    __slots__ = ("slot", "__weakref__")

    def __init__(self, slot: int) -> None:
        self.slot = slot

    def __repr__(self) -> str:
        return f"<JsState {self.slot}>"


#: compact ASCII JSON for what goes into the context (arguments, ctx): one encoder, not one per call (json.dumps with options)
_to_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


class _Encoded(str):
    """Arguments already written as JSON."""


def _messages_json(messages: Any, senders: dict[int, tuple[Presence, str]]) -> str:
    """The messages as ``messages()`` in prelude.js reads them: ``[userId, sessionId, username, node, opCode,
    data (hex) or null, reliable, receiveTimeMs]`` each, in the JSON ``_to_json`` writes; a sender's four strings
    are encoded once. ``senders`` is keyed by the Presence object's identity (a recording's reader hands the same
    object for every message of a sender; the cache holds it, so its id is not reused while cached): hashing a
    Presence (a frozen dataclass) runs Python code."""
    parts = []
    for m in messages:
        sender = m.sender
        known = senders.get(id(sender))
        if known is not None and known[0] is sender:
            head = known[1]
        else:
            if len(senders) >= 4096:
                senders.clear()
            head = _to_json([sender.user_id, sender.session_id, sender.username, sender.node])[:-1]
            senders[id(sender)] = (sender, head)
        data = "null" if m.data is None else f'"{m.data.hex()}"'
        parts.append(
            f"{head},{int(m.op_code)},{data},{'true' if m.reliable else 'false'},{float(m.receive_time_ms)!r}]"
        )
    return "[" + ",".join(parts) + "]"


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


def _ok(text: str) -> str:
    return "\x01" + text


class JsHandler:
    """A Nakama JavaScript match module behind the Python handler interface (see ``replay.runtime._handlers``)."""

    language = "js"

    def __init__(self, path: str | os.PathLike[str], match: str | None = None, *, rpcs_only: bool = False) -> None:
        """Load the bundle (or compile the ``.ts`` file) and run its ``InitModule``. ``match`` picks one of several
        ``registerMatch`` names; ``rpcs_only`` loads a bundle for its ``registerRpc`` functions alone (``serve
        --rpc``): it may then register no match, or several."""
        p = Path(path)
        self._rpcs_only = rpcs_only
        self.path = str(p)
        if not p.is_file():
            raise HandlerLoadError(self.path, "no such file")
        if p.suffix.lower() == ".ts":
            from replay.js._typescript import compile_typescript

            self.bundle = compile_typescript(p)
            self.file_name = "index.js"  # Nakama's default entry file: what its frames will name
        else:
            self.bundle = p.read_bytes()
            self.file_name = p.name
        self._wanted = match
        self._load_nk = Nk(DerivedSources())
        self._nk: Any = self._load_nk
        self._dispatcher: Any = None
        self._to_free: list[int] = []
        self._states: dict[int, JsState] = {}
        self._ctx_sent: dict[str, Any] | None = None
        self._senders: dict[int, tuple[Presence, str]] = {}  # id(sender) -> (sender, the start of its message's JSON)
        self._start()
        self.name = f"{p.stem}:{self.match}" if match else p.stem

    # -- loading ----------------------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            source = self.bundle.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HandlerLoadError(self.path, f"not UTF-8 text (byte {exc.start})") from None
        self._engine = engine = JsEngine(self._host)
        glue = "\n" * (_GLUE_LINE - 1) + _PRELUDE_JS.read_text(encoding="utf-8")
        engine.run(lambda c: c.eval(glue))
        try:
            # Nakama compiles the entry file in strict mode; the prefix stays on line 1
            engine.run(lambda c: c.eval(_STRICT + source))
        except quickjs.JSException as exc:
            first = str(exc).splitlines()[0] if str(exc) else "error"
            where = _position(str(exc))
            raise HandlerLoadError(self.path, f"evaluating the bundle failed{where}: {first}") from None
        ctx = json.dumps({"node": "nakama-replay", "env": {}}, ensure_ascii=True)
        reply = json.loads(engine.run(lambda c: c.get("__nkr_init")(ctx, self.file_name)))
        if "problem" in reply:
            raise HandlerLoadError(self.path, reply["problem"])
        self.matches: list[str] = reply["matches"]
        self.rpcs: list[str] = reply["rpcs"]
        self.match: str | None
        if self._wanted is not None:
            if self._wanted not in self.matches:
                known = ", ".join(self.matches) or "none"
                raise HandlerLoadError(
                    self.path, f"InitModule registers no match {self._wanted!r} (registered: {known})"
                )
            self.match = self._wanted
        elif len(self.matches) == 1:
            self.match = self.matches[0]
        elif self._rpcs_only:
            self.match = None
        elif not self.matches:
            raise HandlerLoadError(self.path, "InitModule registers no match handler (initializer.registerMatch)")
        else:
            raise HandlerLoadError(
                self.path,
                f"InitModule registers {len(self.matches)} matches ({', '.join(self.matches)}): pick one with FILE.js:NAME",
            )
        self._invoke = engine.run(lambda c: c.get("__nkr_invoke"))
        self._json = engine.run(lambda c: c.get("__nkr_json"))
        self._canonical = engine.run(lambda c: c.get("__nkr_canonical"))
        self._copy = engine.run(lambda c: c.get("__nkr_copy"))
        self._free = engine.run(lambda c: c.get("__nkr_free"))
        self._set_ctx = engine.run(lambda c: c.get("__nkr_set_ctx"))
        self._rpc = engine.run(lambda c: c.get("__nkr_rpc"))
        self._states = {}
        self._ctx_sent = None
        self._ctx_seen: dict[str, Any] | None = None
        # what the next call brings back about the state it returns (the runtime digests most states):
        # bit 1 its JSON (state_value), bit 2 its canonical bytes (state_canonical_bytes)
        self._want = 0
        self._last_json: tuple[int, str] | None = None
        self._last_canonical: tuple[int, str] | None = None

    # -- calls --------------------------------------------------------------------------------------------
    def _state_for(self, slot: int) -> JsState:
        state = self._states.get(slot)
        if state is None:
            state = JsState(slot)
            self._states[slot] = state
            weakref.finalize(state, self._release, slot)
        return state

    def _release(self, slot: int) -> None:
        self._states.pop(slot, None)
        self._to_free.append(slot)

    def _run(self, callback: str, state: Any, tick: int, args: Any, ctx: dict[str, Any]) -> list[Any]:
        if self._engine.abandoned and callback == "match_init":
            self._start()  # a hang left the old context running: a new match gets a fresh one
        slot = state.slot if isinstance(state, JsState) else 0
        if slot and self._states.get(slot) is not state:
            raise HandlerError("this state belongs to an earlier JavaScript runtime (abandoned after a hang)")
        args_json = args if type(args) is _Encoded else _to_json(args)
        send_ctx = None
        if ctx != self._ctx_seen:  # the match's ctx changes rarely (a label update): send it only then
            self._ctx_seen = dict(ctx)
            base = {k: v for k, v in ctx.items() if k not in ("user_id", "username", "session_id", "vars")}
            if base != self._ctx_sent:
                send_ctx = _to_json({_CTX_KEYS.get(k, k): v for k, v in base.items()})
                self._ctx_sent = base
        free = None
        if self._to_free:
            free, self._to_free = json.dumps(self._to_free), []
        invoke, name, match, want = self._invoke, _CALLBACKS[callback], self.match, self._want

        def call(_: Any) -> str:
            if free is not None:
                self._free(free)
            if send_ctx is not None:
                self._set_ctx(send_ctx)
            reply: str = invoke(match, name, slot, float(tick), args_json, want)
            return reply

        self._last_json = self._last_canonical = None
        reply = self._engine.run(call)
        self._want = 0
        head, _, state = reply.partition("\n")
        # most calls answer [no problem, the state's slot]: read without the JSON decoder
        slot_only = head.startswith("r[null,") and head[7:-1].isdigit()
        body: list[Any] = [None, int(head[7:-1])] if slot_only else json.loads(head[1:])
        if reply[0] == "x":
            text, stack, _ = body
            raise JsError(text, stack, js_error_class(text))
        problem = body[0]
        if problem is not None:
            raise HandlerError(problem)
        if state:
            state_json, _, canonical = state.partition("\n")
            self._last_json = (body[1], state_json) if state_json else None
            self._last_canonical = (body[1], canonical) if canonical else None
        return body

    def _result_state(self, slot: int) -> JsState | None:
        return self._state_for(slot) if slot else None

    def _bind(self, nk: Any, dispatcher: Any) -> None:
        self._nk = nk
        self._dispatcher = dispatcher

    def match_init(self, ctx: dict[str, Any], logger: Any, nk: Any, params: Any) -> tuple[Any, int, str]:
        self._bind(nk, None)
        body = self._run("match_init", None, 0, params if params is not None else {}, ctx)
        return self._result_state(body[1]), int(body[2]), body[3]

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
        extra: dict[str, Any] = {
            "userId": presence.user_id,
            "username": presence.username,
            "sessionId": presence.session_id,
        }
        if ctx.get("vars") is not None:
            extra["vars"] = ctx["vars"]
        p = [presence.user_id, presence.session_id, presence.username, presence.node]
        body = self._run("match_join_attempt", state, tick, [p, extra, dict(metadata or {})], ctx)
        if not body[1]:
            return None, False, ""
        return self._result_state(body[1]), bool(body[2]), body[3]

    def _presences(self, presences: Any) -> list[list[Any]]:
        return [[p.user_id, p.session_id, p.username, p.node, int(p.reason)] for p in presences]

    def match_join(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presences: Any
    ) -> Any:
        self._bind(nk, dispatcher)
        return self._result_state(self._run("match_join", state, tick, self._presences(presences), ctx)[1])

    def match_leave(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, presences: Any
    ) -> Any:
        self._bind(nk, dispatcher)
        return self._result_state(self._run("match_leave", state, tick, self._presences(presences), ctx)[1])

    def match_loop(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, messages: Any
    ) -> Any:
        self._bind(nk, dispatcher)
        args = _messages_json(messages, self._senders)
        return self._result_state(self._run("match_loop", state, tick, _Encoded(args), ctx)[1])

    def match_terminate(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, grace_seconds: int
    ) -> Any:
        self._bind(nk, dispatcher)
        return self._result_state(self._run("match_terminate", state, tick, grace_seconds, ctx)[1])

    def match_signal(
        self, ctx: dict[str, Any], logger: Any, nk: Any, dispatcher: Any, tick: int, state: Any, data: str
    ) -> tuple[Any, str]:
        self._bind(nk, dispatcher)
        body = self._run("match_signal", state, tick, data, ctx)
        return self._result_state(body[1]), body[2]

    def rpc_functions(self) -> dict[str, Any]:
        """The RPCs ``InitModule`` registered, as ``serve`` calls them: id -> ``f(ctx, logger, nk, payload)``."""
        return {rpc_id: functools.partial(self._rpc_function, rpc_id) for rpc_id in self.rpcs}

    def _rpc_function(self, rpc_id: str, ctx: dict[str, Any], logger: Any, nk: Any, payload: str) -> str:
        return self.rpc(rpc_id, ctx, nk, payload)

    def rpc(self, rpc_id: str, ctx: dict[str, Any], nk: Any, payload: str) -> str:
        """Run a registered RPC (``serve --rpc``): its string result; ``JsError`` when it throws."""
        self._bind(nk, None)
        ctx_json = json.dumps({_CTX_KEYS.get(k, k): v for k, v in ctx.items()}, ensure_ascii=True)
        fn = self._rpc
        reply = self._engine.run(lambda _: fn(rpc_id.lower(), ctx_json, payload))
        body = json.loads(reply[1:])
        if reply[0] == "x":
            raise JsError(body[0], body[1], js_error_class(body[0]))
        return str(body[1])

    # -- the rest of the handler interface ------------------------------------------------------------
    def copy_state(self, state: Any) -> Any:
        if not isinstance(state, JsState):
            return state
        copy = self._copy
        return self._state_for(self._engine.run(lambda _: copy(state.slot)))

    def state_value(self, state: Any) -> Any:
        """The state as ``JSON.stringify`` writes it (what the capture wrapper logs as a snapshot)."""
        if not isinstance(state, JsState):
            return state
        self._want |= 1  # the runtime looks at states: bring the next one's JSON with the call
        last = self._last_json
        text: str | None
        if last is not None and last[0] == state.slot:
            self._last_json = None
            text = last[1]
        else:
            to_json = self._json
            text = self._engine.run(lambda _: to_json(state.slot))
        if text is None:
            return None
        if text.startswith("!"):  # prelude.js stateJson: JSON.stringify refused the state
            raise StateError("", f"JSON.stringify refuses it ({text[1:]})")
        return json.loads(text)

    def state_canonical_bytes(self, state: Any) -> bytes | None:
        """``canonical_bytes(state_value(state))``, written by the JavaScript side (``canonicalOf`` in
        prelude.js) without the JSON text; None where it gives up (the runtime then takes the general path)."""
        if not isinstance(state, JsState):
            return None
        self._want |= 2  # the runtime digests states: bring the next one's bytes with the call
        last = self._last_canonical
        if last is not None and last[0] == state.slot:
            self._last_canonical = None
            return binascii.unhexlify(last[1])  # a third faster than bytes.fromhex
        if self._last_json is not None and self._last_json[0] == state.slot:
            return None  # the call brought its JSON instead: canonicalOf gave up on this state
        canonical = self._canonical
        text = self._engine.run(lambda _: canonical(state.slot))
        return None if text is None else binascii.unhexlify(text)

    def describe_error(self, exc: BaseException) -> tuple[str, str, str]:
        if isinstance(exc, JsError):
            return exc.text, exc.error_class, exc.traceback
        if isinstance(exc, HandlerError):
            return str(exc), "HandlerError", ""
        return f"{type(exc).__name__}: {exc}", type(exc).__name__, ""

    def current_frame(self) -> str:
        """The bundle's file name while a callback runs (where a dispatcher call came from), else ""."""
        return self.file_name if self._dispatcher is not None else ""

    def close(self) -> None:
        """Forget the runtime's nk and dispatcher (the context stays: a handler object can replay again)."""
        self._nk = self._load_nk
        self._dispatcher = None

    def shutdown(self) -> None:
        """Stop the JavaScript worker thread (the handler is unusable afterwards)."""
        self._engine.close()

    # -- host functions (run on the engine's thread; replay/js/engine.py catches what escapes) ------------
    def _host(self, op: str, *args: Any) -> Any:
        try:
            return getattr(self, "_h_" + op)(*args)
        except (HandlerError, MatchStopped, StorageRejected) as exc:
            return host_error("GoError", str(exc))
        except NotAvailableInReplay as exc:
            return host_error("GoError", str(exc))
        except _JsThrow as exc:
            return host_error(exc.kind, exc.message)

    def _h_random(self, *_: Any) -> float:
        return float(self._nk.random())

    def _h_time(self, *_: Any) -> float:
        return float(self._nk.time())

    def _h_uuid(self, *_: Any) -> str:
        return _ok(str(self._nk.uuid_v4()))

    def _h_log(self, level: str, text: str, *_: Any) -> None:
        getattr(self._nk, f"logger_{level}")(text)

    def _h_json_error(self, text: str, *_: Any) -> str:
        if not text.strip():
            return _ok("Unexpected end of JSON input (EOF)")
        message = go_json_error(text) or "invalid JSON"
        if message == "unexpected end of JSON input":
            return _ok("unexpected EOF")
        # goja reads with json.Decoder.Token, which decodes an object's key as a value
        return _ok(message.replace("looking for beginning of object key string", "looking for beginning of value"))

    def _h_encode(self, kind: str, raw: str, padding: bool, *_: Any) -> str:
        data = raw.encode("latin-1")
        if kind == "base16":
            return _ok(data.hex())
        out = (base64.urlsafe_b64encode if kind == "base64url" else base64.b64encode)(data).decode("ascii")
        return _ok(out if padding else out.rstrip("="))

    def _h_decode(self, kind: str, text: str, padding: Any, *_: Any) -> str:
        raw = text.encode("utf-8")
        try:
            if kind == "base16":
                return _ok(_latin1(go_hex_decode(raw)))
            if len(raw) % 4:
                raw += b"=" * (4 - len(raw) % 4)
            return _ok(_latin1(go_base64_decode(raw, kind == "base64url")))
        except GoDecodeError as exc:
            what = {"base16": "base16", "base64": "base64", "base64url": "base64 url"}[kind]
            raise _JsThrow("GoError", f"not a valid {what} string: {exc}") from None

    def _h_hash(self, algorithm: str, raw: str, *_: Any) -> str:
        return _ok(hashlib.new(algorithm, raw.encode("latin-1")).hexdigest())

    def _h_hmac(self, raw: str, key: str, *_: Any) -> str:
        return _ok(_latin1(hmac.new(key.encode("latin-1"), raw.encode("latin-1"), hashlib.sha256).digest()))

    def _h_random_bytes(self, count: float, *_: Any) -> str:
        n = int(count)
        value = self._nk.take("random_bytes", lambda: bytes(int(self._nk.random() * 256) for _ in range(n)))
        return _ok(_latin1(bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()))

    def _h_storage_read(self, ids_json: str, *_: Any) -> str:
        ids = json.loads(ids_json)
        if not ids:
            return _ok("[]")
        wanted = []
        for i in ids:
            if not isinstance(i, dict):
                raise _JsThrow("TypeError", "expects an array of keys")
            wanted.append(
                {
                    "collection": str(i.get("collection", "")),
                    "key": str(i.get("key", "")),
                    "user_id": str(i.get("userId") or ""),
                }
            )
        objects = self._nk.storage_read(wanted)
        return _ok(json.dumps([_js_object(o) for o in objects]))

    def _h_storage_write(self, objects_json: str, *_: Any) -> str:
        writes = []
        for o in json.loads(objects_json):
            if not isinstance(o, dict):
                raise _JsThrow("TypeError", "expects an array of storage write objects")
            for name in ("collection", "key"):
                if not isinstance(o.get(name), str) or not o[name]:
                    raise _JsThrow("TypeError", f"expects '{name}' value to be a non-empty string")
            if not isinstance(o.get("value"), dict):
                raise _JsThrow("TypeError", "expects 'value' object value to be a valid JSON object")
            w = {
                "collection": o["collection"],
                "key": o["key"],
                "user_id": str(o.get("userId") or ""),
                "value": o["value"],
            }
            for js, py in (
                ("version", "version"),
                ("permissionRead", "permission_read"),
                ("permissionWrite", "permission_write"),
            ):
                if o.get(js) is not None:
                    w[py] = o[js]
            writes.append(w)
        try:
            acks = self._nk.storage_write(writes)
        except StorageRejected as exc:
            raise _JsThrow("GoError", f"failed to write storage objects: {exc}") from None
        return _ok(
            json.dumps(
                [
                    {"key": a["key"], "collection": a["collection"], "userId": a["user_id"], "version": a["version"]}
                    for a in acks
                ]
            )
        )

    def _h_storage_delete(self, ids_json: str, *_: Any) -> None:
        ids = [
            {
                "collection": str(i.get("collection", "")),
                "key": str(i.get("key", "")),
                "user_id": str(i.get("userId") or ""),
                "version": str(i.get("version") or ""),
            }
            for i in json.loads(ids_json)
            if isinstance(i, dict)
        ]
        try:
            self._nk.storage_delete(ids)
        except StorageRejected as exc:
            raise _JsThrow("GoError", f"failed to remove storage: {exc}") from None

    def _h_http(self, url: str, method: str, headers: str, body: Any, *_: Any) -> str:
        response = self._nk.http_request(url, method.upper())
        if isinstance(response, dict):
            code, hdrs, text = response.get("code"), response.get("headers") or {}, response.get("body", "")
        else:
            code, hdrs, text = response
        return _ok(json.dumps({"code": code, "headers": hdrs, "body": text}))

    def _h_unavailable(self, name: str, *_: Any) -> None:
        raise NotAvailableInReplay(name)

    def _live_dispatcher(self) -> Any:
        d = self._dispatcher
        if d is None:
            raise _JsThrow("GoError", "dispatcher functions can only be called from match callbacks")
        if d.stopped:
            raise MatchStopped()
        return d

    def _h_broadcast(
        self, deferred: bool, op: float, data: Any, targets_json: Any, sender_json: Any, reliable: bool, *_: Any
    ) -> None:
        d = self._live_dispatcher()
        targets = None if targets_json is None else [Presence(*t) for t in json.loads(targets_json)]
        sender = None if sender_json is None else Presence(*json.loads(sender_json))
        payload = None if data is None else data.encode("latin-1")
        send = d.broadcast_message_deferred if deferred else d.broadcast_message
        send(int(op), payload, targets, sender, bool(reliable))

    def _h_kick(self, presences_json: str, *_: Any) -> None:
        d = self._live_dispatcher()
        d.match_kick([Presence(p[0], p[1], p[2], p[3], int(p[4])) for p in json.loads(presences_json)])

    def _h_label(self, label: str, *_: Any) -> None:
        self._live_dispatcher().match_label_update(label)


class _JsThrow(Exception):
    """A host function's error, thrown in JavaScript as ``kind(message)``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _js_object(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "collection": o.get("collection"),
        "key": o.get("key"),
        "userId": o.get("user_id") or "",
        "value": o.get("value") if o.get("value") is not None else {},
        "version": o.get("version", ""),
        "permissionRead": o.get("permission_read", 1),
        "permissionWrite": o.get("permission_write", 1),
    }


def _position(text: str) -> str:
    import re

    m = re.search(r"(?:<input>|[\w.-]+\.js):(\d+):(\d+)", text)
    if m is None:
        return ""
    line, column = int(m.group(1)), int(m.group(2))
    if line == 1:
        column -= len(_STRICT)  # the strict-mode prefix shares the first line
    return f" at line {line}, column {column}"
