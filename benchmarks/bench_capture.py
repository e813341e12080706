"""The Lua capture module's cost per match tick in the project's runtime, per mode, against the unwrapped
handler: the configurations `bench_capture_nakama.py` measures in a real Nakama, for CI.

The game is ``benchmarks/capture/move_match.lua``. Two cases, as issue 19 measured them in Nakama:

- idle: a match without players ticking (its loop only returns the state);
- loaded: 4 players each sending one move per tick (the match broadcasts the positions every tick).

Modes (``nkreplay_capture.lua`` options): full (every call its own record, with outcomes: the default),
lean (loops by their inputs and nondeterministic values only, empty ticks folded into a count, several
ticks per log line), lean with outcomes, and lean with ``sample = 0`` (a match outside the sample). Each
configuration runs best of N, the modes taking turns (the machine's load changes). Printed: µs per tick,
the ratio wrapped/unwrapped against the targets (lean: idle at most 1.25x, loaded at most 1.1x, the same
targets as in Nakama), log lines and bytes per tick.

The project's runtime adds its own fixed cost per tick (Python around every call), so the ratios here
are smaller than in Nakama, where the tick itself is cheaper: the real-Nakama figures are the ones the
targets are about (docs: production deployment).

    python benchmarks/bench_capture.py [--ticks 3000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder.format import Header
from replay.lua import LuaHandler
from replay.runtime import MatchDriver

GAME = Path(__file__).resolve().parent / "capture" / "move_match.lua"
CAPTURE = ROOT / "recorder" / "capture" / "modules" / "nkreplay_capture.lua"
#: the capture module's recording side, deployed beside it (loaded by it when a match records)
CAPTURE_REC = CAPTURE.with_name("nkreplay_capture_rec.lua")

#: mode -> the options of capture.wrap (None: the handler unwrapped)
MODES: dict[str, str | None] = {
    "unwrapped": None,
    "full": '{ module = "move_match" }',
    "lean": '{ module = "move_match", mode = "lean" }',
    "lean+outcomes": '{ module = "move_match", mode = "lean", outcomes = true }',
    "lean flush=5s": '{ module = "move_match", mode = "lean", flush_seconds = 5 }',
    "lean sample=0": '{ module = "move_match", mode = "lean", sample = 0 }',
}
#: wrapped / unwrapped tick cost the lean mode must meet (issue 19)
TARGETS = {"idle": 1.25, "loaded": 1.1}
PLAYERS = 4


def module_name(mode: str) -> str:
    """The Lua module name of a mode's handler (``move_match`` unwrapped, ``move_match_<mode>`` wrapped)."""
    if MODES[mode] is None:
        return "move_match"
    return "move_match_" + "".join(c if c.isalnum() else "_" for c in mode).strip("_").replace("__", "_")


def write_modules(folder: Path, with_capture: bool = True) -> dict[str, Path]:
    """The game, the capture module and its recording side (unless ``with_capture`` is False: they are found
    on the module path) and one wrapper module per mode in ``folder``; returns mode -> module file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "move_match.lua").write_text(GAME.read_text())
    if with_capture:
        for module in (CAPTURE, CAPTURE_REC):
            (folder / module.name).write_text(module.read_text())
    out = {}
    for mode, options in MODES.items():
        path = folder / f"{module_name(mode)}.lua"
        if options is not None:
            path.write_text(
                f"-- move_match wrapped with the capture module, mode {mode!r} (written by the capture benchmarks)\n"
                f'return require("nkreplay_capture").wrap(require("move_match"), {options})\n'
            )
        out[mode] = path
    return out


def move(tick: int, player: int) -> str:
    return json.dumps({"dx": (tick + player) % 3 - 1, "dy": (tick * 7 + player) % 3 - 1}, separators=(",", ":"))


def run_case(module: Path, case: str, ticks: int) -> tuple[float, int, int]:
    """Seconds for ``ticks`` ticks of one match, and the capture's log lines and bytes."""
    header = Header(match_id="5e1ec7ed-0000-4000-8000-000000000001.bench", node="bench", tick_rate=10)
    with MatchDriver(LuaHandler(module), header) as d:
        d.init({"tick_rate": 10})
        players = [d.join(f"p{i}") for i in range(PLAYERS)] if case == "loaded" else []
        d.runtime.logger.lines.clear()
        gc.collect()
        t0 = time.perf_counter()
        for t in range(ticks):
            for i, p in enumerate(players):
                d.send(p, 1, move(t, i))
            d.tick()
        seconds = time.perf_counter() - t0
        if d.runtime.crash is not None:
            raise SystemExit(f"{module.name} crashed: {d.runtime.crash.error}")
        ours = [m for _, m in d.runtime.logger.lines if m.startswith("nkreplay:1 ")]
        return seconds, len(ours), sum(len(m) for m in ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticks", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modules = write_modules(Path(tmp), with_capture=False)  # the capture module from the package
        for case in ("idle", "loaded"):
            best = {mode: float("inf") for mode in MODES}
            logs: dict[str, tuple[int, int]] = {}
            for _ in range(args.repeat):
                for mode, module in modules.items():
                    seconds, lines, size = run_case(module, case, args.ticks)
                    best[mode] = min(best[mode], seconds)
                    logs[mode] = (lines, size)
            base = best["unwrapped"]
            what = "no players" if case == "idle" else f"{PLAYERS} players, one move each per tick"
            print(f"{case} ({what}), {args.ticks} ticks, best of {args.repeat}:")
            for mode, seconds in best.items():
                lines, size = logs[mode]
                ratio = seconds / base
                target = TARGETS[case]
                mark = ""
                if mode == "lean":
                    mark = f"  target <= {target:.2f}x: {'met' if ratio <= target else 'MISSED'}"
                print(
                    f"  {mode:<15} {1e6 * seconds / args.ticks:8.1f} us/tick  {ratio:5.2f}x  "
                    f"{lines / args.ticks:5.2f} lines/tick  {size / args.ticks:7.1f} log bytes/tick{mark}"
                )
        print(
            "(wrapped/unwrapped in the project's runtime; the targets are about a real Nakama: bench_capture_nakama.py)"
        )


if __name__ == "__main__":
    main()
