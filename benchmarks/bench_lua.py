"""Replay speed of the Lua arena beside the Python arena, and the Lua capture module's overhead.

One scripted 36,000-tick arena match (10 minutes at 60 Hz: four players sending inputs most ticks,
shooting now and then) is recorded twice in a temporary directory, through the Python arena
(``arena_fixed.py``) and through the Lua arena (``arena_fixed.lua``), each with its state digest in every
outcome. Then, best of N runs with ``gc.collect()`` before each:

- Python arena replaying its recording, Lua arena replaying its recording (digests checked): ticks/s,
  and the Lua/Python ratio (target: at least 0.6; the three configurations take turns, best of N each: the
  load changes);
- the Lua arena wrapped with the capture module (``nkreplay_capture.lua``: one log record per call, a
  state snapshot every 600 ticks) against the unwrapped Lua arena, replaying the same Lua recording:
  ticks/s, the overhead, and the log volume the capture writes per tick. The overhead is this runtime's
  (LuaJIT's interpreter, with ``nk.json_encode``/``nk.base64_encode`` in Python), not Nakama's (gopher-lua,
  those in Go): ``bench_capture_nakama.py`` measures the cost inside a real Nakama.

    python benchmarks/bench_lua.py [--ticks 36000] [--repeat 3] [--cpu]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))

from make_recordings import arena_header

from replay.lua import LuaHandler
from replay.runtime import MatchDriver, load_handler, reproduce

HANDLERS = ROOT / "fixtures" / "handlers"
CLOCK = time.perf_counter


def make_recording(path: Path, handler: str, ticks: int, players: int = 4, seed: int = 1) -> None:
    rng = random.Random(seed)
    with MatchDriver(handler, arena_header(handler), capture=str(path), snapshot_every=600) as d:
        d.init({"max_players": 8, "tick_rate": 60})
        ps = [d.join(f"p{i}", {"client_version": "1.4.0"}) for i in range(players)]
        for p in ps:
            d.send(p, 3)
        for _ in range(ticks):
            for p in ps:
                if rng.random() < 0.8:
                    body = {
                        "dx": rng.choice([-1, 0, 1]),
                        "dy": rng.choice([-1, 0, 1]),
                        "shoot": rng.random() < 0.1,
                        "aim": [1, rng.choice([-1, 0, 1])],
                    }
                    d.send(p, 1, json.dumps(body))
            d.tick()
        if d.runtime.crash is not None:
            raise SystemExit(f"{handler} crashed while recording: {d.runtime.crash.error}")


def wrapped_arena(folder: Path) -> Path:
    (folder / "arena.lua").write_text((HANDLERS / "arena.lua").read_text())
    (folder / "arena_fixed.lua").write_text((HANDLERS / "arena_fixed.lua").read_text())
    path = folder / "arena_fixed_captured.lua"
    path.write_text(
        'return require("nkreplay_capture").wrap(require("arena_fixed"), { module = "arena", snapshot_every = 600 })\n'
    )
    return path


def timed_replays(runs: dict[str, tuple[Path, object]], repeat: int) -> tuple[dict[str, float], dict[str, object]]:
    """Best time of each configuration, the configurations taking turns (the machine's load changes)."""
    best = {name: float("inf") for name in runs}
    results: dict[str, object] = {}
    for _ in range(repeat):
        for name, (recording, make_handler) in runs.items():
            handler = make_handler()  # type: ignore[operator]
            gc.collect()
            t0 = CLOCK()
            result = reproduce(recording, handler)
            best[name] = min(best[name], CLOCK() - t0)
            if not result.reproduced:
                raise SystemExit(f"{name}: replay of {recording} did not reproduce: {result.verdict}")
            results[name] = result
    return best, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticks", type=int, default=36000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", action="store_true", help="time with process CPU time (steadier on a busy machine)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        py_rec, lua_rec = folder / "arena-py.nkrec", folder / "arena-lua.nkrec"
        t0 = time.perf_counter()
        make_recording(py_rec, str(HANDLERS / "arena_fixed.py"), args.ticks)
        make_recording(lua_rec, str(HANDLERS / "arena_fixed.lua"), args.ticks)
        print(
            f"recorded {args.ticks} ticks twice in {time.perf_counter() - t0:.1f} s "
            f"(Python {py_rec.stat().st_size / 1e6:.1f} MB, Lua {lua_rec.stat().st_size / 1e6:.1f} MB)"
        )

        captured = wrapped_arena(folder)
        best, results = timed_replays(
            {
                "python": (py_rec, lambda: load_handler(str(HANDLERS / "arena_fixed.py"))),
                "lua": (lua_rec, lambda: LuaHandler(HANDLERS / "arena_fixed.lua")),
                "lua+capture": (lua_rec, lambda: LuaHandler(captured)),
            },
            args.repeat,
        )
        py_s, lua_s, cap_s = best["python"], best["lua"], best["lua+capture"]
        ticks = results["lua"].ticks_replayed  # type: ignore[attr-defined]
        print(f"Python arena replay  {ticks / py_s:>9,.0f} ticks/s  ({py_s:.2f} s)")
        print(f"Lua arena replay     {ticks / lua_s:>9,.0f} ticks/s  ({lua_s:.2f} s)")
        probe = LuaHandler(captured)
        with MatchDriver(probe, arena_header(str(captured))) as d:  # log volume over 600 ticks of the same script
            d.init({"max_players": 8, "tick_rate": 60})
            ps = [d.join(f"p{i}", {"client_version": "1.4.0"}) for i in range(4)]
            rng = random.Random(1)
            for _ in range(600):
                for p in ps:
                    if rng.random() < 0.8:
                        d.send(p, 1, json.dumps({"dx": 1, "dy": 0, "shoot": rng.random() < 0.1, "aim": [1, 0]}))
                d.tick()
            log_bytes = sum(len(m) for _, m in d.runtime.logger.lines)
        print(
            f"Lua arena + capture  {ticks / cap_s:>9,.0f} ticks/s  ({cap_s:.2f} s), capture log {log_bytes / 600:,.0f} bytes/tick"
        )
        print()
        r = py_s / lua_s
        print(
            f"ratio Lua / Python replay speed:          {r:.2f}  (target >= 0.60: {'met' if r >= 0.6 else 'NOT MET'})"
        )
        print(
            f"capture overhead (wrapped / unwrapped):   {cap_s / lua_s:.2f}x time, {100 * (cap_s - lua_s) / lua_s:.0f}% slower"
            " (in this runtime; in Nakama: bench_capture_nakama.py)"
        )


if __name__ == "__main__":
    main()
