"""JavaScript/TypeScript match handlers (replay/js): the TypeScript arena beside the Python and Lua arenas,
Nakama 3.40's return-value rules, crash texts and signatures, determinism, hangs, hostile bundles."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

from recorder.format import (
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LoopCall,
    MatchMessage,
    Presence,
    SignalCall,
    TerminateCall,
)
from replay.cli import main
from replay.errors import HandlerLoadError, StateError
from replay.js import JsHandler, _engine
from replay.runtime import (
    CrashSignature,
    HandlerProcess,
    Limits,
    MatchDriver,
    MatchRuntime,
    ReplayOptions,
    js_error_class,
    load_handler,
    reproduce_supervised,
)
from replay.runtime import reproduce as replay
from replay.runtime._hang import runaway_threads
from tests.common.paths import ROOT

HANDLERS = ROOT / "fixtures" / "handlers"
TS_ARENA = HANDLERS / "ts" / "arena"
BUNDLE = TS_ARENA / "build" / "index.js"
PY_REC = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
TS_REC = ROOT / "fixtures" / "recordings" / "arena-ts-reconnect-crash.nkrec"
TSC = ROOT / "tests" / "js" / "node_modules" / ".bin" / "tsc"
ALICE = Presence("7040d346-ee3d-5de5-8b27-f960a35f70b7", "1a5ad3f2-6c84-4a53-9d1e-0c4f2b8e7a61", "alice", "nakama1", 0)


def bundle(tmp_path: Path, body: str, name: str = "index.js") -> Path:
    """A bundle registering match "m" whose callbacks default to returning {state} (override by name)."""
    defaults = {
        "matchInit": "function matchInit(ctx, logger, nk, params) { return { state: { n: 0 }, tickRate: 10, label: 'l' }; }",
        "matchJoinAttempt": "function matchJoinAttempt(ctx, logger, nk, d, tick, state, p, md) { return { state: state, accept: true }; }",
        "matchJoin": "function matchJoin(ctx, logger, nk, d, tick, state, ps) { return { state: state }; }",
        "matchLeave": "function matchLeave(ctx, logger, nk, d, tick, state, ps) { return { state: state }; }",
        "matchLoop": "function matchLoop(ctx, logger, nk, d, tick, state, ms) { return { state: state }; }",
        "matchTerminate": "function matchTerminate(ctx, logger, nk, d, tick, state, g) { return { state: state }; }",
        "matchSignal": "function matchSignal(ctx, logger, nk, d, tick, state, data) { return { state: state, data: 'r' }; }",
    }
    body = textwrap.dedent(body)
    fns = "\n".join(src for cb, src in defaults.items() if f"function {cb}(" not in body)
    reg = ", ".join(f"{cb}: {cb}" for cb in defaults)
    path = tmp_path / name
    path.write_text(
        f"function InitModule(ctx, logger, nk, initializer) {{ initializer.registerMatch('m', {{ {reg} }}); }}\n{fns}\n{body}\n"
    )
    return path


def run_calls(path: Path, *calls, hang_timeout: float = 5.0):  # type: ignore[no-untyped-def]
    rt = MatchRuntime(JsHandler(path), hang_timeout=hang_timeout)
    steps = [rt.apply(InitCall({}))]
    steps += [rt.apply(c) for c in calls]
    return rt, steps


# -- the three arenas -------------------------------------------------------------------------------------


def test_python_lua_and_typescript_arenas_crash_at_the_same_tick_of_the_same_recording() -> None:
    results = {h: replay(PY_REC, str(HANDLERS / h)) for h in ("arena.py", "arena.lua", "ts/arena/build/index.js")}
    crashes = {h: (r.crash.callback, r.crash.tick) for h, r in results.items()}
    assert set(crashes.values()) == {("match_loop", 58)}, crashes
    ts = results["ts/arena/build/index.js"].crash
    assert ts.error == "TypeError: Cannot read property 'pos' of undefined at handleInput (index.js:57:15)"
    # the same recorded random draws reached all three: the TS arena's only differences from the Python
    # recording are broadcast texts and labels, and those differ in JSON spacing and key order alone
    ts_result = results["ts/arena/build/index.js"]
    assert ts_result.divergences and {d.field for d in ts_result.divergences} == {
        "broadcasts",
        "label",
        "label_updates",
    }
    for d in ts_result.divergences:
        if d.field == "broadcasts":
            assert [json.loads(b.data) for b in d.a] == [json.loads(b.data) for b in d.b]
        else:
            as_json = lambda v: [json.loads(x) for x in v] if isinstance(v, tuple) else json.loads(v)  # noqa: E731
            assert as_json(d.a) == as_json(d.b)


def test_typescript_recording_reproduces_from_the_bundle_and_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    result = replay(TS_REC, str(BUNDLE))
    assert result.reproduced and result.divergence_count == 0, result.verdict
    assert CrashSignature.from_result(result).key == "match_loop|js:read property 'pos'|index.js:handleInput"
    assert main(["reproduce", str(TS_REC), "--handler", str(BUNDLE)]) == 0
    assert "REPRODUCED: match_loop crashed at tick 58" in capsys.readouterr().out
    # and the check can fail: with the race fixed the match runs on
    fixed = BUNDLE.read_text().replace("delete state.sessions[sessionId];", "state.sessions[sessionId] = null;")
    assert fixed != BUNDLE.read_text()


def test_fixed_typescript_arena_does_not_reproduce(tmp_path: Path) -> None:
    fixed = tmp_path / "index.js"
    fixed.write_text(
        BUNDLE.read_text().replace("delete state.sessions[sessionId];", "state.sessions[sessionId] = null;")
    )
    result = replay(TS_REC, str(fixed))
    assert not result.reproduced and result.crash is None


@pytest.mark.skipif(not TSC.is_file(), reason="tests/js has no typescript: run `npm ci` in tests/js")
def test_typescript_source_compiles_to_the_committed_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    monkeypatch.setenv("NKREPLAY_TSC", str(TSC))
    handler = load_handler(str(TS_ARENA / "src" / "main.ts"))
    assert handler.bundle == BUNDLE.read_bytes()
    assert replay(TS_REC, handler).reproduced


def test_typescript_without_a_compiler_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ts = tmp_path / "main.ts"
    ts.write_text("function InitModule() {}\n")
    monkeypatch.delenv("NKREPLAY_TSC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HandlerLoadError, match=r"TypeScript 5 compiler and node.*build/index\.js"):
        load_handler(str(ts))


# -- Nakama 3.40's return-value rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "call", "error"),
    [
        (
            "function matchLoop(c, l, nk, d, t, s, m) { return {}; }",
            LoopCall(0, ()),
            "matchLoop is expected to return an object with 'state' object property",
        ),
        (
            "function matchLoop(c, l, nk, d, t, s, m) { return { state: [1] }; }",
            LoopCall(0, ()),
            "matchLeave is expected to return an object with 'state' object property",
        ),
        (
            "function matchTerminate(c, l, nk, d, t, s, g) { return null; }",
            TerminateCall(0, 5),
            "matchTerminate is expected to return an object with 'state' property",
        ),
        (
            "function matchSignal(c, l, nk, d, t, s, x) { return null; }",
            SignalCall(0, "x"),
            "matchSignal is expected to return an object with 'state' property",
        ),
        (
            "function matchSignal(c, l, nk, d, t, s, x) { return { state: s, data: 5 }; }",
            SignalCall(0, "x"),
            "matchSignal 'data' property must be a string",
        ),
        (
            "function matchJoinAttempt(c, l, nk, d, t, s, p, m) { return { state: s }; }",
            JoinAttemptCall(0, ALICE, {}),
            "matchJoinAttempt return value has an 'accept' property",
        ),
    ],
)
def test_return_values_are_judged_with_nakamas_words(tmp_path: Path, body: str, call, error: str) -> None:  # type: ignore[no-untyped-def]
    rt, _steps = run_calls(bundle(tmp_path, body), call)
    assert rt.crash is not None and rt.crash.error == error and rt.crash.error_type == "HandlerError"


@pytest.mark.parametrize(
    ("init", "error"),
    [
        ("return { state: {}, tickRate: 0 };", "matchInit 'tickRate' must be a number between 1 and 60"),
        ("return { state: {}, tickRate: 10, label: 5 };", "matchInit 'label' value must be a string"),
        ("return { state: null, tickRate: 10 };", "Match initial state must not be nil"),
        ("return { tickRate: 10 };", "matchInit is expected to return an object with a 'state' property"),
        ("return 5;", "matchInit is expected to return an object with 'state', 'tickRate' and 'label' properties"),
    ],
)
def test_match_init_rules(tmp_path: Path, init: str, error: str) -> None:
    rt, _ = run_calls(bundle(tmp_path, f"function matchInit(c, l, nk, p) {{ {init} }}"))
    assert rt.crash is not None and rt.crash.error == error


def test_null_from_loop_stops_quietly_and_join_attempt_verdicts(tmp_path: Path) -> None:
    body = """
    function matchJoinAttempt(c, l, nk, d, t, s, p, md) { return { state: s, accept: false, rejectMessage: 'full ' + c.userId }; }
    function matchLoop(c, l, nk, d, t, s, m) { return t === 1 ? null : { state: s }; }
    """
    rt, steps = run_calls(
        bundle(tmp_path, body), JoinAttemptCall(0, ALICE, {}), LoopCall(0, ()), LoopCall(1, ()), LoopCall(2, ())
    )
    assert (steps[1].outcome.accept, steps[1].outcome.reason) == (False, f"full {ALICE.user_id}")
    assert rt.crash is None and rt.stopped and rt.stop_reason == "nil-state"
    assert [s.executed for s in steps] == [True, True, True, True, False]


# -- inputs, nk, dispatcher --------------------------------------------------------------------------------


def test_messages_nk_and_dispatcher(tmp_path: Path) -> None:
    body = """
    function matchLoop(c, l, nk, d, t, s, ms) {
      var m = ms[0];
      s.seen = [m.data instanceof ArrayBuffer, m.data.byteLength, nk.binaryToString(m.data), m.opCode, m.reliable,
                m.receiveTimeMs, m.sender.username, c.matchLabel, typeof Date.now(), new Date(0).getHours()];
      d.broadcastMessage(7, nk.stringToBinary('h\u00e9'), [m.sender], null, false);
      d.broadcastMessageDeferred(8, 'x');
      d.matchLabelUpdate('new');
      var big = 'y'.repeat(6000); big = big + big;  // a rope string: crosses to Python flattened
      l.info('%s', big + big);
      d.broadcastMessage(9, big);
      s.label = c.matchLabel;
      s.b64 = nk.base64Encode('h\u00e9');
      s.md5 = nk.md5Hash('abc');
      return { state: s };
    }
    """
    rt, steps = run_calls(
        bundle(tmp_path, body),
        JoinCall(0, (ALICE,)),
        LoopCall(0, (MatchMessage(ALICE, 3, "hé".encode(), True, 1_764_000_000_123),)),
    )
    value = rt.handler.state_value(rt.state)
    assert value["seen"] == [True, 3, "hé", 3, True, 1_764_000_000_123, "alice", "l", "number", 0]
    assert value["label"] == "new" and value["b64"] == "aMOp" and value["md5"] == "900150983cd24fb0d6963f7d28e17f72"
    out = steps[-1].outcome
    assert [(b.op_code, b.data, b.deferred, b.reliable) for b in out.broadcasts] == [
        (7, "hé".encode(), False, False),
        (8, b"x", True, True),
        (9, b"y" * 12000, False, True),
    ]
    assert rt.logger.lines[-1] == ("info", "y" * 24000)
    assert out.broadcasts[0].targets == (ALICE,) and out.label_updates == ("new",)


def test_bad_dispatcher_and_nk_arguments_throw_typeerrors_not_python_errors(tmp_path: Path) -> None:
    body = """
    function matchLoop(c, l, nk, d, t, s, ms) {
      var out = [];
      var tries = [function () { d.broadcastMessage(1.5); }, function () { d.broadcastMessage(1, {}); },
                   function () { d.broadcastMessage(1, 'x', [{ sessionId: 'nope', node: 'n' }]); },
                   function () { nk.binaryToString(new Uint8Array([255]).buffer); },
                   function () { nk.storageWrite([{ collection: 'c', key: 'k', value: 5 }]); },
                   function () { nk.base64Decode('!!'); }, function () { nk.leaderboardCreate('x'); }];
      tries.forEach(function (f) { try { f(); out.push('no error'); } catch (e) { out.push(String(e)); } });
      s.out = out;
      return { state: s };
    }
    """
    rt, _ = run_calls(bundle(tmp_path, body), LoopCall(0, ()))
    assert rt.crash is None
    assert rt.handler.state_value(rt.state)["out"] == [
        "TypeError: expects number",
        "TypeError: expects data to be an ArrayBuffer, a string or nil",
        "TypeError: expects a valid 'sessionId'",
        "TypeError: expects data to be UTF-8 encoded",
        "TypeError: expects 'value' object value to be a valid JSON object",
        "GoError: not a valid base64 string: illegal base64 data at input byte 0",
        "GoError: not available in replay: nk.leaderboardCreate (record its results, or provide it through a replay nk extension)",
    ]


def test_randomness_and_time_come_from_the_runtime_and_replay_identically(tmp_path: Path) -> None:
    body = "function matchLoop(c, l, nk, d, t, s, m) { s.r = Math.random(); s.t = Date.now(); s.d = new Date().toISOString(); s.u = nk.uuidv4(); return { state: s }; }"
    path = bundle(tmp_path, body)
    values = []
    for _ in range(2):
        rt, steps = run_calls(path, LoopCall(0, ()))
        values.append(rt.handler.state_value(rt.state))
        assert [c.source for c in steps[-1].nondeterministic] == ["random", "time", "time", "uuid"]
    assert values[0] == values[1]
    assert values[0]["t"] == 1_700_000_000_000 and values[0]["d"] == "2023-11-14T22:13:20.000Z"


def test_no_clock_or_gc_hooks_beyond_the_runtimes(tmp_path: Path) -> None:
    """QuickJS has performance.now() (a real clock), WeakRef and FinalizationRegistry (GC timing); goja has
    none of them, and here they would make replays differ."""
    body = "function matchLoop(c, l, nk, d, t, s, m) { s.g = [typeof performance, typeof WeakRef, typeof FinalizationRegistry]; return { state: s }; }"
    rt, _ = run_calls(bundle(tmp_path, body), LoopCall(0, ()))
    assert rt.handler.state_value(rt.state)["g"] == ["undefined", "undefined", "undefined"]


# -- crashes, signatures, hangs ----------------------------------------------------------------------------


def test_crash_text_and_signature_match_gojas_line(tmp_path: Path) -> None:
    body = """
    function helper(p) { return p.team; }
    function matchLoop(c, l, nk, d, t, s, m) { if (t === 3) { helper(undefined); } return { state: s }; }
    """
    rt, _ = run_calls(bundle(tmp_path, body), *(LoopCall(t, ()) for t in range(5)))
    assert (rt.crash.callback, rt.crash.tick) == ("match_loop", 3)
    assert rt.crash.error.startswith("TypeError: Cannot read property 'team' of undefined at helper (index.js:")
    ours = CrashSignature.from_crash(rt.crash)
    goja = CrashSignature.from_error(
        "match_loop", "TypeError: Cannot read property 'team' of undefined at helper (index.js:12:34(5))"
    )
    assert ours.key == goja.key == "match_loop|js:read property 'team'|index.js:helper"


@pytest.mark.parametrize(
    ("goja", "quickjs", "cls"),
    [
        (
            "TypeError: Cannot read property 'x' of undefined",
            "TypeError: cannot read property 'x' of null",
            "js:read property 'x'",
        ),
        ("TypeError: Object has no member 'foo'", "TypeError: not a function", "js:not a function"),
        ("ReferenceError: nope is not defined", "ReferenceError: nope is not defined", "js:not defined"),
        ("Error: bad move 12", "Error: bad move 13", "js:Error bad move <n>"),
        ("boom", "boom", "js:throw boom"),
    ],
)
def test_js_error_classes_match_across_engines(goja: str, quickjs: str, cls: str) -> None:
    assert js_error_class(goja + " at f (index.js:1:2(3))") == js_error_class(quickjs + " at f (index.js:1:2)") == cls


HANGS_AT_1 = (
    "function matchLoop(c, l, nk, d, t, s, m) { if (t === 1) { while (true) { Math.random(); } } return { state: s }; }"
)


def _hang_twice(handler: JsHandler) -> None:
    for _ in range(2):
        rt = MatchRuntime(handler, hang_timeout=0.3)
        rt.apply(InitCall({}))
        for t in range(3):
            rt.apply(LoopCall(t, ()))
        assert rt.crash is not None and rt.crash.hung and (rt.crash.callback, rt.crash.tick) == ("match_loop", 1)
        rt.close()
        assert handler._engine.abandoned == "a hang"


@pytest.mark.parametrize("sigint_watched", [True, False], ids=["calling-thread", "worker-thread"])
def test_a_hung_callback_is_interrupted_and_the_next_match_gets_a_fresh_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigint_watched: bool
) -> None:
    """QuickJS's interrupt handler stops the loop: the hang is reported, no thread is left running, no warning.
    Without the SIGINT watch the main thread's calls run on the worker thread, which the interrupt ends too."""
    if not sigint_watched:
        monkeypatch.setattr(_engine, "_watch_sigint", lambda: False)
    handler = JsHandler(bundle(tmp_path, HANGS_AT_1))
    assert handler._engine._main_direct is sigint_watched
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot be stopped" warning
        _hang_twice(handler)
    deadline = time.monotonic() + 30
    while any(t.name == "nkreplay-js" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the worker thread is still running"
        time.sleep(0.05)
    assert runaway_threads() == []
    assert (handler._engine._thread is not None) is not sigint_watched


def test_a_hang_that_cannot_be_interrupted_abandons_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the interrupt (NAKAMA_REPLAY_JS_THREAD=worker, or a binding whose layout the engine does not
    know) the callback runs on the worker
    thread, which keeps spinning; a warning says so, and the abandoned context draws nothing more from the
    runtime (its Math.random calls are refused)."""
    monkeypatch.setenv(_engine.THREAD_ENV, "worker")
    handler = JsHandler(bundle(tmp_path, HANGS_AT_1))
    with pytest.warns(RuntimeWarning, match="cannot be stopped: its thread keeps running"):
        _hang_twice(handler)
    calls = []
    handler._nk = type("Spy", (), {"random": lambda self: calls.append(1) or 0.5})()
    time.sleep(0.2)  # the abandoned loop keeps calling Math.random: none of it reaches the runtime's nk
    assert calls == []


def test_a_supervised_hang_keeps_the_worker_when_the_interrupt_stopped_it(tmp_path: Path) -> None:
    """Under the supervisor the hang is reported the same way; QuickJS was interrupted, so nothing runs away and
    the worker process serves the next job (a spinning thread would have it ended: see the test below)."""
    rec, fine, hangs = _fine_and_hanging(tmp_path)
    with HandlerProcess(Limits(hang_timeout=30.0)) as process:  # the worker's own guard (0.5 s) reports the hang
        process.start()
        pid = process._proc.pid
        result = reproduce_supervised(rec, hangs, ReplayOptions(hang_timeout=0.5), process=process)
        assert result.death is None and result.crash is not None and result.crash.hung
        assert (result.crash.callback, result.crash.tick) == ("match_loop", 1)
        assert reproduce_supervised(rec, fine, process=process).crash is None
        assert process._proc.pid == pid and process.starts == 1


def test_a_supervised_hang_ends_the_worker_with_a_spinning_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the interrupt (NAKAMA_REPLAY_JS_THREAD=worker) the hung QuickJS thread spins on: the hang is
    reported the same way, and the worker process holding it is ended after the job, so the next job runs in a
    fresh one."""
    monkeypatch.setenv(_engine.THREAD_ENV, "worker")
    rec, fine, hangs = _fine_and_hanging(tmp_path)
    with HandlerProcess(Limits(hang_timeout=30.0)) as process:
        process.start()
        pid = process._proc.pid
        result = reproduce_supervised(rec, hangs, ReplayOptions(hang_timeout=0.5), process=process)
        assert result.death is None and result.crash is not None and result.crash.hung
        assert (result.crash.callback, result.crash.tick) == ("match_loop", 1)
        assert process._proc is None and process.starts == 1  # ended after the job ...
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # ... and gone
        assert reproduce_supervised(rec, fine, process=process).crash is None
        assert process.starts == 2


def _fine_and_hanging(tmp_path: Path) -> tuple[Path, Path, Path]:
    fine = bundle(tmp_path, "")
    rec = tmp_path / "rec.nkrec"
    with MatchDriver(JsHandler(fine), Header(match_id="m1.n1", node="n1", tick_rate=10), capture=str(rec)) as d:
        d.init({})
        for _ in range(3):
            d.tick()
    (tmp_path / "hangs").mkdir()
    return rec, fine, bundle(tmp_path / "hangs", HANGS_AT_1)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("function InitModule( {", "evaluating the bundle failed at line 1"),
        ("var x = 1;", "no top-level function InitModule"),
        ("function InitModule(c, l, nk, i) { throw new Error('nope'); }", "InitModule raised Error: nope"),
        (
            "function InitModule(c, l, nk, i) { i.registerMatch('m', { matchInit: function () {} }); }",
            "matchJoinAttempt not found",
        ),
        ("function InitModule(c, l, nk, i) {}", "registers no match handler"),
    ],
)
def test_broken_bundles_are_load_errors(tmp_path: Path, source: str, problem: str) -> None:
    path = tmp_path / "index.js"
    path.write_text(source)
    with pytest.raises(HandlerLoadError, match=problem):
        JsHandler(path)


def test_match_names_select_one_of_several(tmp_path: Path) -> None:
    path = bundle(tmp_path, "")
    text = path.read_text().replace(
        "initializer.registerMatch('m', {",
        "initializer.registerMatch('a', { matchInit: matchInit, matchJoinAttempt: matchJoinAttempt, matchJoin: matchJoin, matchLeave: matchLeave, matchLoop: matchLoop, matchTerminate: matchTerminate, matchSignal: matchSignal }); initializer.registerMatch('m', {",
    )
    path.write_text(text)
    with pytest.raises(HandlerLoadError, match=r"registers 2 matches \(a, m\)"):
        load_handler(str(path))
    assert load_handler(f"{path}:m").match == "m"
    with pytest.raises(HandlerLoadError, match="no match 'zz'"):
        load_handler(f"{path}:zz")


def test_the_state_crosses_into_go_between_callbacks(tmp_path: Path) -> None:
    """From the second call on, nested objects are Go maps and arrays Go slices (Nakama 3.40, goja): a
    stored object is copied, so setting a field on it afterwards is lost; a Go slice takes integer keys
    only. The real server shows the same (tests/data/nakama-3.40-js-capture-arena.log was made with it)."""
    body = """
    function matchInit(c, l, nk, p) { return { state: { players: {}, list: [], top: {} }, tickRate: 10 }; }
    function matchLoop(c, l, nk, d, t, s, m) {
      if (t === 0) {
        var p = { hp: 1 };
        s.players.a = p;
        p.late = true;              // lost: the Go map holds a copy made at the assignment
        s.players.a.hp = 2;         // kept: written through the map
        s.list.push({ n: 1 });
        s.top = { x: 1 };           // the top-level object is plain JS: a new object is taken whole
        s.top.y = 2;
        s.undef = undefined;        // exported as nil: null next time
      } else {
        s.seen = [JSON.stringify(s.players), JSON.stringify(s.list), JSON.stringify(s.top), s.undef === null];
        try { s.list.x = 1; } catch (e) { s.seen.push(String(e)); }
      }
      return { state: s };
    }
    """
    rt, _ = run_calls(bundle(tmp_path, body), LoopCall(0, ()), LoopCall(1, ()))
    assert rt.crash is None
    assert rt.handler.state_value(rt.state)["seen"] == [
        '{"a":{"hp":2}}',
        '[{"n":1}]',
        '{"x":1,"y":2}',
        True,
        "TypeError: Can't set property 'x' on Go slice",
    ]


def test_one_export_keeps_shared_objects_shared_and_cycles_as_cycles(tmp_path: Path) -> None:
    """goja's Export copies each object once per export (objectExportCtx): an object returned in two places is
    one Go map afterwards, and a state holding itself stays a cycle, which Nakama keeps without complaint. The
    replay only cannot digest such a state: that is a StateError naming JSON.stringify, never a match crash."""
    body = """
    function matchLoop(c, l, nk, d, t, s, m) {
      if (t === 0) {
        var p = { hp: 3 };
        s.a = { p: p, q: p };       // the top level is plain JS: both exported at the return, in one export
        s.x = p;                    // the same object under two top-level keys: the same export too
        s.y = p;
        s.list = [1];
        s.list.push(s.list);        // a slice inside itself
        var o = {}; o.me = o;
        s.o = o;
      } else if (t === 1) {
        s.a.p.hp -= 1;              // through one place...
        s.x.hp -= 10;
      } else {
        s.seen = [s.a.q.hp, s.y.hp, s.o.me.me.me === s.o, s.list[1][1][0]];  // ...seen through the other
        delete s.o; delete s.list; delete s.a; delete s.x; delete s.y;
      }
      return { state: s };
    }
    """
    rt, steps = run_calls(bundle(tmp_path, body), LoopCall(0, ()), LoopCall(1, ()), LoopCall(2, ()))
    assert [s.crash for s in steps] == [None] * 4
    assert rt.handler.state_value(rt.state)["seen"] == [-8, -8, True, 1]
    rt, steps = run_calls(bundle(tmp_path, body, "again.js"), LoopCall(0, ()))
    with pytest.raises(StateError, match=r"JSON.stringify refuses it \(TypeError: circular reference\)"):
        rt.handler.state_value(rt.state)
