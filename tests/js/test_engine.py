"""The QuickJS engine's interruptions: Ctrl-C and the hang guard stop JavaScript running on the calling thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from replay.js._engine import JsEngine
from replay.runtime._hang import CallbackHung, HangGuard
from tests.common.paths import ROOT

CTRL_C = textwrap.dedent(
    """
    import faulthandler, os, signal, sys, threading, time
    faulthandler.dump_traceback_later(60, exit=True)  # a hang shows every thread's stack (stderr), then exit 1
    from replay.js._engine import JsEngine
    from replay.runtime._hang import js_stoppers

    engine = JsEngine(lambda *args: 0.5)

    def ctrl_c():  # once the main thread is inside the JavaScript call, as a user's Ctrl-C would come
        deadline = time.monotonic() + 60
        while not js_stoppers:
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    try:
        engine.run(lambda c: c.eval(sys.argv[1]))
    except KeyboardInterrupt:
        print("interrupted", engine.abandoned, engine._thread is None)
    """
)


@pytest.mark.parametrize(
    "loop",
    ["while (true) {}", "while (true) { __nkr_host('random'); }"],
    ids=["pure-javascript", "calling-python"],
)
def test_ctrl_c_stops_javascript_running_on_the_main_thread(loop: str) -> None:
    """No hang guard: only the SIGINT watch can stop a pure JavaScript loop; a loop calling host functions gets
    the KeyboardInterrupt in Python code that QuickJS called."""
    done = subprocess.run([sys.executable, "-c", CTRL_C, loop], cwd=ROOT, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or done.stdout != "interrupted KeyboardInterrupt True\n":
        pytest.fail(f"stdout {done.stdout!r}, exit {done.returncode}, stderr:\n{done.stderr}")  # whole, not cut


@pytest.mark.parametrize(
    "hang", ["while (true) {}", "/(a+)+$/.test('a'.repeat(60) + 'b')"], ids=["loop", "regular-expression"]
)
def test_a_hang_on_another_thread_is_interrupted_there(hang: str) -> None:
    """Any thread runs the JavaScript itself, and the hang guard stops it there, also inside a regular
    expression (QuickJS polls the interrupt handler while it backtracks)."""
    engine = JsEngine(lambda *args: 0.5)
    caught: list[BaseException] = []

    def call() -> None:
        guard = HangGuard(0.3)
        guard.arm()
        try:
            engine.run(lambda c: c.eval(hang))
        except CallbackHung as exc:
            caught.append(exc)
        finally:
            guard.disarm()
            guard.close()

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and len(caught) == 1
    assert engine.abandoned == "a hang" and engine._thread is None
