"""A JavaScript state's canonical bytes written in QuickJS (prelude.js, canonicalOf) are the bytes of the
general path, canonical_bytes(json.loads(JSON.stringify(state))), or nothing (the general path then runs):
never different bytes, on any value a handler can keep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recorder.errors import StateError
from recorder.format import InitCall, LoopCall, MatchMessage, Presence, canonical_bytes, digest_bytes
from replay.js import JsHandler
from replay.runtime import MatchRuntime

ALICE = Presence("7040d346-ee3d-5de5-8b27-f960a35f70b7", "1a5ad3f2-6c84-4a53-9d1e-0c4f2b8e7a61", "alice", "nakama1", 0)

# matchLoop stores the message's value twice: at the top level (plain JavaScript, exported when returned)
# and into a Go map (the set trap's copy); {"$s": ...} stands for what JSON cannot carry
BUNDLE = """
function InitModule(ctx, logger, nk, initializer) {
  initializer.registerMatch("m", { matchInit: matchInit, matchJoinAttempt: matchInit, matchJoin: matchInit,
    matchLeave: matchInit, matchLoop: matchLoop, matchTerminate: matchInit, matchSignal: matchInit });
}
function matchInit(ctx, logger, nk, params) { return { state: { box: {}, n: 0 }, tickRate: 10 }; }
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v === null || typeof v !== "object") return v;
  if ("$s" in v) {
    switch (v.$s) {
      case "nan": return NaN;
      case "inf": return Infinity;
      case "-inf": return -Infinity;
      case "-0": return -0;
      case "undefined": return undefined;
      case "function": return function f() {};
      case "date": return new Date(0);
      case "buffer": return new ArrayBuffer(2);
      case "holes": var a = [1]; a[3] = 2; return a;
      case "symbol": return Symbol("s");
    }
  }
  var o = {};
  Object.keys(v).forEach(function (k) { o[k] = revive(v[k]); });
  return o;
}
function innermost(v) { // the deepest object along first nested objects (a Go map or slice once stored)
  var found = null;
  while (v !== null && typeof v === "object" && !(v instanceof ArrayBuffer) && !(v instanceof Date)) {
    found = v;
    var keys = Object.keys(v), next = null;
    for (var i = 0; i < keys.length && next === null; i++) if (v[keys[i]] !== null && typeof v[keys[i]] === "object") next = v[keys[i]];
    v = next;
  }
  return found;
}
function matchLoop(ctx, logger, nk, dispatcher, tick, state, messages) {
  if (tick === 1) {
    var value = revive(JSON.parse(nk.binaryToString(messages[0].data)));
    state.top = value;
    state.box.inner = value;
    state.box.gone = 1;
  } else if (tick === 4) { // after the digests that kept the bytes of unchanged values: change one, deep down
    delete state.box.gone;
    var d = innermost(state.box.inner);
    if (Array.isArray(d)) d.push(tick);
    else if (d !== null) d.m = tick;
  } else if (tick === 5) { // the top level's keys: as many as before, not the same ones
    delete state.n;
    state.m = 0;
    return { state: state };
  }
  state.n += 1;
  return { state: state };
}
"""

SPECIALS = ["nan", "inf", "-inf", "-0", "undefined", "function", "date", "buffer", "holes", "symbol"]
TRICKY_TEXT = ["\ud800", "a\udc00b", "😀", "\ue000", "é", "function: 0x1a2b", "x table: 0xdeadbeef", "toJSON"]
texts = st.text(max_size=8) | st.sampled_from(TRICKY_TEXT)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.sampled_from(SPECIALS).map(lambda s: {"$s": s})
)
values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)


def _fast_path_expected(v: Any) -> bool:
    """Values canonicalOf must write itself (no reason to give up)."""
    if isinstance(v, dict):
        if "$s" in v:
            return False
        return all(_plain_key(k) and _fast_path_expected(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_fast_path_expected(x) for x in v)
    if isinstance(v, str):
        return _utf8_ok(v) and ": 0x" not in v
    if isinstance(v, bool) or v is None:
        return True
    # numbers: JSON writes the digits of one beyond 2^53 inexactly (canonicalOf leaves them to the general path)
    return abs(v) <= 2**53 or abs(v) >= 1e21


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_key(k: str) -> bool:
    # keys are not masked, but canonicalOf leaves any string with ": 0x" to the general path
    return _utf8_ok(k) and all(ord(c) < 0xD800 for c in k) and k != "__proto__" and ": 0x" not in k


def _general(handler: JsHandler, state: Any) -> bytes | None:
    try:
        return canonical_bytes(handler.state_value(state))
    except StateError:
        return None


_HANDLERS: dict[str, JsHandler] = {}


def _handler(tmp: Path) -> JsHandler:
    if "h" not in _HANDLERS:
        path = tmp / "state_bytes.js"
        path.write_text(BUNDLE)
        _HANDLERS["h"] = JsHandler(path)
    return _HANDLERS["h"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
@example(value={"a": [], "b": {}, "c": [[], {}], "d": -0.0, "e": 2**53, "f": 2**53 + 2, "g": 1e21, "h": 1e300})
@example(value={"😀": 1, "\ue000": 2, "z": 3})
@example(value=["é", "😀", "x" * 40, "y" * 300, "\u00ff" * 70000])
@example(value={"k": {"$s": "holes"}, "t": "function: 0x1a2b"})
@example(value={"__proto__": {"a": 1}, "toJSON": 1})
@example(value=[{"$s": s} for s in SPECIALS])
def test_canonical_bytes_written_in_javascript_equal_the_general_paths(tmp_path_factory: Any, value: Any) -> None:
    handler = _handler(tmp_path_factory.mktemp("js"))
    data = json.dumps(value, ensure_ascii=True).encode()
    rt = MatchRuntime(handler, digests="always")
    rt.apply(InitCall({}))
    message = (MatchMessage(ALICE, 1, data, True, 1_764_000_000_000),)
    for tick in range(1, 7):  # stored at 1, kept bytes made at 3, a nested value changed at 4, top-level keys at 5
        try:
            step = rt.apply(LoopCall(tick, message))
        except StateError:  # no canonical form (a lone surrogate, an integer beyond 64 bits): as for any handler
            assert _general(handler, rt.state) is None
            assert handler.state_canonical_bytes(rt.state) is None
            return
        assert rt.crash is None, rt.crash
        general = _general(handler, rt.state)
        assert general is not None
        assert step.outcome.digest == digest_bytes(general), f"tick {tick}"
    for _ in range(2):  # asked afresh (not brought with a call): canonicalOf on the kept state
        fast = handler.state_canonical_bytes(rt.state)
        if fast is not None:
            assert fast == general
    if _fast_path_expected(value):
        assert fast is not None, "canonicalOf gave up on a value it should write"


# Kept bytes must follow every change. matchLoop applies the message's operations to the state, then the
# runtime digests it (canonicalOf, reusing what it kept) and the test compares with the general path. An
# operation names its place by numbers, resolved against the state of that moment (n % the number of keys),
# so every generated list applies to whatever the earlier operations left.
MUTATE_BUNDLE = """
function InitModule(ctx, logger, nk, initializer) {
  initializer.registerMatch("m", { matchInit: matchInit, matchJoinAttempt: matchInit, matchJoin: matchInit,
    matchLeave: matchInit, matchLoop: matchLoop, matchTerminate: matchInit, matchSignal: matchInit });
}
function matchInit(ctx, logger, nk, params) { return { state: { n: 0 }, tickRate: 10 }; }
var saved = []; // references to nested Go values, kept across calls (writes through them later)
var NUMBERS = [function (x) { return typeof x === "number" ? x + 1.5 : 0; }, function () { return -0; },
  function () { return NaN; }, function () { return Infinity; }, function () { return Math.pow(2, 60); },
  function () { return 0.1; }];
function isObj(v) { return v !== null && typeof v === "object"; }
function holds(v, x) { // x is v or inside it (storing v into x would make the state circular: JSON has no form)
  if (v === x) return true;
  if (!isObj(v)) return false;
  var keys = Object.keys(v);
  for (var i = 0; i < keys.length; i++) if (holds(v[keys[i]], x)) return true;
  return false;
}
function at(v, path) { // [holder, key] for a place in the state (null: the path met a leaf)
  var holder = null, key = null;
  for (var i = 0; i < path.length; i++) {
    if (!isObj(v)) return null;
    var keys = Object.keys(v);
    if (path[i] >= 1000 || keys.length === 0) key = Array.isArray(v) ? v.length : "k" + (path[i] % 7);
    else key = keys[path[i] % keys.length];
    holder = v;
    v = v[key];
  }
  return holder === null ? null : [holder, key];
}
function apply(state, op) {
  var kind = op[0], place = at(state, op[1]), value = op[2];
  if (kind === "keep") {
    if (place !== null && isObj(place[0][place[1]])) saved.push(place[0][place[1]]);
    return;
  }
  if (kind === "via") { // a write through a reference taken in an earlier call
    if (saved.length === 0) return;
    var ref = saved[op[1].length % saved.length];
    var keys = Object.keys(ref);
    var key = Array.isArray(ref) ? (value === null ? keys.length : (op[1][0] || 0) % (keys.length + 1)) : "r" + ((op[1][0] || 0) % 3);
    ref[key] = value;
    return;
  }
  if (place === null) return;
  var holder = place[0], key = place[1];
  if (kind === "set") holder[key] = value;
  else if (kind === "num") holder[key] = NUMBERS[(value || 0) % NUMBERS.length](holder[key]); // a number over what was there
  else if (kind === "del") delete holder[key];
  else if (kind === "len") { if (Array.isArray(holder)) holder.length = (op[1].length * 3) % 5; }
  else if (kind === "push") { if (Array.isArray(holder[key])) holder[key].push(value); }
  else if (kind === "alias") { // the value at another place, stored here too (a Go value under two keys)
    var from = at(state, value);
    if (from !== null && !holds(from[0][from[1]], holder)) holder[key] = from[0][from[1]];
  } else if (kind === "move") { // the value at another place moved here
    var src = at(state, value);
    if (src !== null && src[0] !== holder && !holds(src[0][src[1]], holder)) { holder[key] = src[0][src[1]]; delete src[0][src[1]]; }
  }
}
function matchLoop(ctx, logger, nk, dispatcher, tick, state, messages) {
  var ops = JSON.parse(nk.binaryToString(messages[0].data));
  for (var i = 0; i < ops.length; i++) apply(state, ops[i]);
  state.n += 1;
  return { state: state };
}
"""

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(-1e6, 1e6) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
paths = st.lists(st.integers(0, 1003), min_size=1, max_size=4)
operations = st.one_of(
    st.tuples(st.sampled_from(["set", "push"]), paths, plain_values),
    st.tuples(st.sampled_from(["num", "del", "len", "keep", "via"]), paths, st.none() | st.integers(0, 5)),
    st.tuples(st.sampled_from(["alias", "move"]), paths, paths),
).map(list)
ticks = st.lists(st.lists(operations, max_size=5), min_size=1, max_size=8)

_MUTATE: dict[str, JsHandler] = {}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=plain_values, changes=ticks)
@example(  # a nested map kept, then changed through a reference taken two calls before
    start={"a": {"b": {"c": 1}}, "l": [1, [2]]},
    changes=[[], [["keep", [1, 0], None]], [], [["via", [0], 5]], [["num", [1, 0, 0, 0], None]], []],
)
@example(start=[], changes=[[["alias", [1, 0], [1]]]])  # a slice stored into itself: refused (no JSON form)
@example(  # one Go value under two keys, changed through one of them; then an array resized and a map replaced
    start={"a": {"x": [1, 2]}, "b": 0},
    changes=[
        [["alias", [1, 1], [1, 0]]],
        [],
        [["num", [1, 0, 0, 0], None]],
        [["len", [1, 0, 0, 0], None]],
        [["set", [1, 0], 3]],
    ],
)
@example(  # numbers stored over the numbers of a map and of an array: -0, NaN, Infinity, 2**60, 0.1 (kept bytes refreshed)
    start={"p": [1, 2], "b": {"x": 1.5, "o": "s", "t": 20}},
    changes=[
        [["num", [1, 1, 0], 0], ["num", [1, 0, 1], 1]],
        [["num", [1, 1, 2], 2]],
        [["num", [1, 0, 0], 3]],
        [["num", [1, 1, 1], 4], ["num", [1, 0, 1], 5]],
        [["num", [1, 1, 0], 0]],
        [["num", [1, 0, 0], 1]],
    ],
)
def test_kept_bytes_follow_every_change(tmp_path_factory: Any, start: Any, changes: list[list[list[Any]]]) -> None:
    if "h" not in _MUTATE:
        path = tmp_path_factory.mktemp("js") / "mutate.js"
        path.write_text(MUTATE_BUNDLE)
        _MUTATE["h"] = JsHandler(path)
    handler = _MUTATE["h"]
    handler._engine.run(lambda c: c.eval("saved.length = 0"))
    rt = MatchRuntime(handler, digests="always")
    rt.apply(InitCall({}))
    ticks_ops = [[["set", [1000], start]], [], [], *changes, [], []]  # stored, kept twice, then the changes
    for tick, ops in enumerate(ticks_ops, start=1):
        data = json.dumps(ops).encode()
        step = rt.apply(LoopCall(tick, (MatchMessage(ALICE, 1, data, True, 1_764_000_000_000),)))
        assert rt.crash is None, rt.crash
        general = _general(handler, rt.state)
        assert general is not None
        assert step.outcome.digest == digest_bytes(general), f"tick {tick}: {ops}"
