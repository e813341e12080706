"""The capture's crash safety with several ticks per chunk: a writer process killed with SIGKILL loses at
most the calls of the last ``max_delay`` (0.25 s) of the match, by the match clock (a scripted match) and
by the wall clock (a match in real time, as ``serve`` runs it).

The writer is a real child process running ``MatchDriver`` with a capture; the test reads the ticks it
finished from its stdout, kills it with SIGKILL and reads what is on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recorder.capture._sink import ticks_in
from recorder.format import LoopCall, open_recording, verify
from tests.common.paths import ROOT

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

WRITER = textwrap.dedent(
    """
    import dataclasses, sys, time
    sys.path[:0] = [{root!r}, {fixtures!r}]
    from make_recordings import arena_header
    from replay.runtime import MatchDriver

    out, ticks, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    realtime, chunk_ticks = sys.argv[4] == "1", int(sys.argv[5]) or None
    header = dataclasses.replace(arena_header({handler!r}), tick_rate=60)
    with MatchDriver({handler!r}, header, capture=out, realtime=realtime, chunk_ticks=chunk_ticks) as d:
        d.init({{"max_players": 8, "tick_rate": 60}})
        p = d.join("alice")
        for tick in range(ticks):
            d.send(p, 1, '{{"dx": 1, "dy": 0}}')
            d.tick()
            print(tick, flush=True)  # this tick's calls went to the sink
            time.sleep(pause)
        time.sleep(600)  # killed here
    """
)


def _killed_capture(
    tmp_path: Path, ticks: int, pause: float, realtime: bool, chunk_ticks: int = 0
) -> tuple[int, list[int]]:
    """Run the writer until it has recorded ``ticks`` loops, SIGKILL it; (tick rate, loop ticks on disk)."""
    script = tmp_path / "writer.py"
    handler = str(ROOT / "fixtures" / "handlers" / "arena_fixed.py")
    script.write_text(WRITER.format(root=str(ROOT), fixtures=str(ROOT / "fixtures"), handler=handler))
    out = tmp_path / "killed.nkrec"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(ticks), str(pause), "1" if realtime else "0", str(chunk_ticks)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = [line for _, line in zip(range(ticks), proc.stdout, strict=False)]
        assert len(seen) == ticks, f"the writer stopped after {len(seen)} ticks"
        if realtime:
            import time

            time.sleep(pause)  # the last tick is older than the pause; the next check would come after it
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert verify(out).state == "unsealed"
    with open_recording(out) as rec:
        rate = rec.header.tick_rate
        loops = [e.tick for e in rec.events() if type(e) is LoopCall]
    return rate, loops


def test_scripted_capture_killed_loses_less_than_a_chunk_of_match_time(tmp_path: Path) -> None:
    rate, loops = _killed_capture(tmp_path, ticks=40, pause=0.0, realtime=False)
    per_chunk = ticks_in(0.25, rate)
    assert rate == 60 and per_chunk == 15
    # whole chunks of the match clock reached the disk; the ticks of the chunk in progress are lost
    assert loops == list(range(40 // per_chunk * per_chunk))
    assert len(loops) == 30 and (40 - len(loops)) / rate < 0.25


def test_realtime_capture_killed_loses_at_most_the_last_quarter_second(tmp_path: Path) -> None:
    # ticks 0.1 s apart (slower than the tick rate, as in a stalled server) and a chunk size the match
    # clock never reaches: only the wall clock writes chunks, once 0.25 s have passed since their first call
    _, loops = _killed_capture(tmp_path, ticks=12, pause=0.1, realtime=True, chunk_ticks=1000)
    assert loops == list(range(len(loops)))
    # a chunk is written at the first call 0.25 s after its first call: at most 0.25 s / 0.1 s + 1 ticks
    # wait (fewer when the machine is slow: the ticks are then further apart)
    assert len(loops) >= 12 - 4, f"{12 - len(loops)} ticks lost"
    assert verify(tmp_path / "killed.nkrec").chunks >= 2, "the wall clock wrote the chunks"
