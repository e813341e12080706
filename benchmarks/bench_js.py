"""Replay speed of the TypeScript arena (its compiled bundle, in QuickJS) beside the Python and Lua arenas,
and the JS capture wrapper's overhead.

The scripted 36,000-tick arena match of ``bench_lua.py`` (10 minutes at 60 Hz, four players sending inputs
most ticks) is recorded through the fixed Python, Lua and TypeScript arenas (the TS one is
``fixtures/handlers/ts/arena/build/index.js`` with the reconnection fix applied to its text), each outcome
with its state digest. Then, best of N, the configurations taking turns:

- Python, Lua and JS arenas replaying their own recordings (digests checked on every tick): ticks/s;
- the JS arena wrapped with ``nkreplay_capture.js`` (one log record per call, a snapshot every 600 ticks;
  and in lean mode: loops by their inputs, several ticks per record) replaying the JS recording: ticks/s,
  overhead, and the log volume the wrapper writes per tick;
- the process CPU time per tick of the Python and JS replays (every thread counted), which a loaded machine
  changes far less than the wall clock.

Target: the JS arena at 100x real time at 60 Hz, 6,000 ticks/s. ``--cpu`` times every configuration with
the process CPU time instead of the wall clock (what the replay costs, steadier on a shared, loaded machine);
the target line then says so.

    python benchmarks/bench_js.py [--ticks 36000] [--repeat 3] [--cpu]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_lua
from bench_lua import make_recording, timed_replays
from make_recordings import arena_header

from replay.js import JsHandler, wrap_bundle
from replay.lua import LuaHandler
from replay.runtime import MatchDriver, load_handler, reproduce

HANDLERS = ROOT / "fixtures" / "handlers"
BUNDLE = HANDLERS / "ts" / "arena" / "build" / "index.js"
TARGET = 6000
CALLBACKS = {
    "matchInit": "arenaInit",
    "matchJoinAttempt": "arenaJoinAttempt",
    "matchJoin": "arenaJoin",
    "matchLeave": "arenaLeave",
    "matchLoop": "arenaLoop",
    "matchTerminate": "arenaTerminate",
    "matchSignal": "arenaSignal",
}


def fixed_bundles(folder: Path) -> tuple[Path, Path, Path]:
    text = BUNDLE.read_text().replace("delete state.sessions[sessionId];", "state.sessions[sessionId] = null;")
    plain = folder / "plain" / "index.js"
    captured = folder / "captured" / "index.js"
    lean = folder / "lean" / "index.js"
    for path in (plain, captured, lean):
        path.parent.mkdir()
    plain.write_text(text)
    captured.write_text(wrap_bundle(text, CALLBACKS, {"module": "arena", "snapshotEvery": 600}))
    lean.write_text(wrap_bundle(text, CALLBACKS, {"module": "arena", "mode": "lean"}))
    return plain, captured, lean


def cpu_times(runs: dict[str, tuple[Path, object]], repeat: int) -> dict[str, float]:
    """Least process CPU time of each configuration (``time.process_time``: every thread, not the wall clock),
    so a figure from a busy machine still says what the replay itself costs."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeat):
        for name, (recording, make_handler) in runs.items():
            handler = make_handler()  # type: ignore[operator]
            gc.collect()
            t0 = time.process_time()
            reproduce(recording, handler)
            best[name] = min(best[name], time.process_time() - t0)
    return best


def capture_log_bytes(bundle: Path) -> int:
    """Bytes the wrapped bundle logs over 600 ticks of four players sending inputs every tick."""
    with MatchDriver(JsHandler(bundle), arena_header(str(bundle))) as d:
        d.init({"max_players": 8, "tick_rate": 60})
        ps = [d.join(f"p{i}", {"client_version": "1.4.0"}) for i in range(4)]
        for t in range(600):
            for p in ps:
                d.send(p, 1, '{"dx": 1, "dy": 0, "shoot": %s, "aim": [1, 0]}' % ("true" if t % 10 == 0 else "false"))
            d.tick()
        return sum(len(m) for _, m in d.runtime.logger.lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticks", type=int, default=36000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", action="store_true", help="time with process CPU time (steadier on a busy machine)")
    args = ap.parse_args()
    bench_lua.CLOCK = time.process_time if args.cpu else time.perf_counter  # timed_replays reads it
    clock = "process CPU time" if args.cpu else "wall clock"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain, captured, lean = fixed_bundles(folder)
        recs = {name: folder / f"arena-{name}.nkrec" for name in ("py", "lua", "js")}
        t0 = time.perf_counter()
        make_recording(recs["py"], str(HANDLERS / "arena_fixed.py"), args.ticks)
        make_recording(recs["lua"], str(HANDLERS / "arena_fixed.lua"), args.ticks)
        make_recording(recs["js"], str(plain), args.ticks)
        print(f"recorded {args.ticks} ticks three times in {time.perf_counter() - t0:.1f} s")
        best, results = timed_replays(
            {
                "python": (recs["py"], lambda: load_handler(str(HANDLERS / "arena_fixed.py"))),
                "lua": (recs["lua"], lambda: LuaHandler(HANDLERS / "arena_fixed.lua")),
                "js": (recs["js"], lambda: JsHandler(plain)),
                "js+capture": (recs["js"], lambda: JsHandler(captured)),
                "js+lean": (recs["js"], lambda: JsHandler(lean)),
            },
            args.repeat,
        )
        cpu = cpu_times(
            {
                "python": (recs["py"], lambda: load_handler(str(HANDLERS / "arena_fixed.py"))),
                "js": (recs["js"], lambda: JsHandler(plain)),
            },
            args.repeat,
        )
        ticks = results["js"].ticks_replayed  # type: ignore[attr-defined]
        for name, label in (
            ("python", "Python arena"),
            ("lua", "Lua arena"),
            ("js", "JS arena"),
            ("js+capture", "JS arena + capture"),
            ("js+lean", "JS + lean capture"),
        ):
            print(f"{label:<20} {ticks / best[name]:>9,.0f} ticks/s  ({best[name]:.2f} s, {clock})")
        log_bytes = {name: capture_log_bytes(path) for name, path in (("full", captured), ("lean", lean))}
        print(
            f"CPU time per tick (this process, all threads; load-independent): Python {cpu['python'] / ticks * 1e6:.0f} us, "
            f"JS {cpu['js'] / ticks * 1e6:.0f} us (JS CPU-bound {ticks / cpu['js']:,.0f} ticks/s)"
        )
        js_rate = ticks / best["js"]
        print()
        print(f"ratio JS / Python replay speed:         {best['python'] / best['js']:.2f}")
        print(f"ratio JS / Lua replay speed:            {best['lua'] / best['js']:.2f}")
        print(
            f"capture overhead (wrapped / unwrapped): {best['js+capture'] / best['js']:.2f}x time, capture log {log_bytes['full'] / 600:,.0f} bytes/tick"
        )
        print(
            f"lean capture overhead:                  {best['js+lean'] / best['js']:.2f}x time, capture log {log_bytes['lean'] / 600:,.0f} bytes/tick"
        )
        print(
            f"target {TARGET:,} ticks/s for the JS arena: {'met' if js_rate >= TARGET else 'NOT met'} ({js_rate:,.0f}, {clock})"
        )


if __name__ == "__main__":
    main()
