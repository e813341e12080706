"""The control modules of ``bench_capture_nakama.py`` (``benchmarks/capture/controls/``) do what their figures
are read as: the game runs exactly as unwrapped (states, broadcasts, the error it raises), ``touch`` and
``encode`` read every message, and ``encode`` writes every message's data once per 10 ticks. Run in the
project's Lua runtime on the benchmark's own game."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import lupa.luajit21 as lupa
import pytest

from recorder.format import Header
from replay.lua import LuaHandler
from replay.runtime import MatchDriver
from tests.common.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_capture import PLAYERS, move  # the benchmark's own moves, as its clients send them

CAPTURE = ROOT / "benchmarks" / "capture"
CONTROLS = sorted(p.name for p in (CAPTURE / "controls").iterdir() if p.is_dir())
HEADER = Header(match_id="5e1ec7ed-0000-4000-8000-000000000001.bench", node="bench", tick_rate=10)
TICKS = 25


def play(tmp_path: Path, control: str | None, game: str | None = None) -> tuple[list[Any], list[str]]:
    """Every tick's (state, broadcasts) or crash of the benchmark's game, wrapped by ``control`` (None:
    unwrapped) as the benchmark wraps it; and the log lines the wrapper wrote."""
    folder = tmp_path / (control or "unwrapped")
    folder.mkdir(parents=True)
    (folder / "move_match.lua").write_text(game or (CAPTURE / "move_match.lua").read_text())
    module = folder / "move_match.lua"
    if control is not None:
        (folder / "nkreplay_capture.lua").write_text(
            (CAPTURE / "controls" / control / "nkreplay_capture.lua").read_text()
        )
        module = folder / "wrapped.lua"
        module.write_text('return require("nkreplay_capture").wrap(require("move_match"), { mode = "lean" })\n')
    seen: list[Any] = []
    with MatchDriver(LuaHandler(module), HEADER) as d:
        d.init({"tick_rate": 10})
        players = [d.join(f"p{i}") for i in range(PLAYERS)]
        d.runtime.logger.lines.clear()
        for t in range(TICKS):
            for i, p in enumerate(players):
                d.send(p, 1, move(t, i))
            step = d.tick()
            if d.runtime.crash is not None:
                seen.append(("crash", d.runtime.crash.error.replace(str(folder), "")))
                break
            seen.append((d.runtime.handler.state_value(d.runtime.state), step.outcome.broadcasts if step else None))
        return seen, [m for _, m in d.runtime.logger.lines]


@pytest.mark.parametrize("control", CONTROLS)
def test_the_game_runs_as_unwrapped(tmp_path: Path, control: str) -> None:
    unwrapped, _ = play(tmp_path / "a", None)
    wrapped, _ = play(tmp_path / "b", control)
    assert len(unwrapped) == TICKS and wrapped == unwrapped


@pytest.mark.parametrize("control", CONTROLS)
def test_the_error_the_game_raises_passes_through(tmp_path: Path, control: str) -> None:
    game = (
        (CAPTURE / "move_match.lua")
        .read_text()
        .replace("  local moved = false\n", '  local moved = false\n  if tick == 7 then error("boom at seven") end\n')
    )
    unwrapped, _ = play(tmp_path / "a", None, game)
    wrapped, _ = play(tmp_path / "b", control, game)
    assert unwrapped[-1][0] == "crash" and "boom at seven" in unwrapped[-1][1]
    assert wrapped == unwrapped


def test_encode_writes_every_message_once_per_ten_ticks(tmp_path: Path) -> None:
    _, lines = play(tmp_path, "encode")
    records = [json.loads(line.removeprefix("nkreplay:1 ")) for line in lines]
    assert [r["t"] for r in records] == [0, 10]  # ticks 0-9 and 10-19; 20-24 still in memory
    for r in records:
        data = base64.b64decode(r["md"]).decode()
        ticks = range(r["t"], r["t"] + 10)
        assert data == "".join(move(t, i) for t in ticks for i in range(PLAYERS))
        rows = [r["mv"][k : k + 6] for k in range(0, len(r["mv"]), 6)]
        assert [row[0] for row in rows] == [t for t in ticks for _ in range(PLAYERS)]
        assert all(row[2] == 1 and row[4] is True for row in rows)


def test_touch_reads_every_message(tmp_path: Path) -> None:
    """``touch`` fails on a message without a sender (it reads every field), like a recorder would."""
    folder = tmp_path / "touch"
    folder.mkdir()
    (folder / "nkreplay_capture.lua").write_text((CAPTURE / "controls" / "touch" / "nkreplay_capture.lua").read_text())
    (folder / "game.lua").write_text("local M = {}\nfunction M.match_loop(c, d, t, s, m) return s end\nreturn M\n")
    (folder / "probe.lua").write_text(
        'local L = require("nkreplay_capture").wrap(require("game"))\n'
        "return { ok = L.match_loop(nil, nil, 1, 5, { { sender = { session_id = 's' }, op_code = 1 } }),\n"
        "         bad = pcall(L.match_loop, nil, nil, 2, 5, { { op_code = 1 } }) }\n"
    )
    runtime = lupa.LuaRuntime()
    runtime.execute(f'package.path = "{folder}/?.lua;" .. package.path')
    result = runtime.eval('require("probe")')
    assert result["ok"] == 5 and result["bad"] is False
