"""Time and size of ``nakama-replay view`` on a long match, against ``inspect``'s summary of the same file.

Generates a 36,000-tick (an hour at 10 Hz), 8-player arena-like recording in a temporary folder: every
player sends one or two small JSON inputs per tick, every loop broadcasts a state and records its digest
and a clock value, one player disconnects and reconnects, another reconnects while its old session is
still in the match, a signal and label updates, and a crash at the last tick. Then, best of N:

- view: ``build_timeline`` + ``render_html`` + writing the page (what the command does, without the CLI);
- baseline: ``recorder.format._summary.summarize`` (``inspect``), one streaming pass over the same file.

Prints both times, the ratio, and the page size. Targets (issue #18): under 3 s and under 10 MB.

Then, where Playwright and a Chromium are installed (as for the browser test), zoom and pan in the page: the
page is loaded from disk in headless Chromium and, at spans of the whole match, 6000, 600 and 60 ticks, the view
is moved 100 times and redrawn each time (``nkTimeline.setView``, timed in the page). The baseline is the same
on the bundled 59-tick crash recording's page: a redraw of the hour-long match should cost about what a redraw
of a 6-second one does (one sample per pixel column from a max pyramid), and stay far inside a 60 Hz frame
(16.7 ms, the target).

    python benchmarks/bench_view.py [--ticks 36000] [--players 8] [--repeat 3] [--no-browser]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from recorder import (
    Broadcast,
    CrashMarker,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    Nondeterministic,
    Outcome,
    Presence,
    RecordingWriter,
    SignalCall,
)
from recorder.format._summary import summarize
from replay.timeline import build_timeline, render_html

TARGET_SECONDS = 3.0
TARGET_BYTES = 10 * 1000 * 1000
TARGET_FRAME_MS = 1000 / 60
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.common.browser: the browser test's Chromium setup

#: in the page: move the view over the match ``moves`` times at ``span`` ticks, redrawing each time; ms per redraw
_PAN_JS = """([span, moves]) => {
  const t = window.nkTimeline, first = t.data.first_tick, total = t.data.last_tick - first + 1;
  const s = Math.min(span, total), t0 = performance.now();
  for (let i = 0; i < moves; i++) t.setView(first + ((i * 7919) % Math.max(1, total - s + 1)), s);
  return (performance.now() - t0) / moves;
}"""


def match_events(ticks: int, players: int, seed: int = 1) -> Iterator:
    rnd = random.Random(seed)
    people = [
        Presence(f"{i:08d}-5f1c-4a3e-9d7b-{i:012d}", f"{i:08d}-ea7d-11f1-816a-7106fdcb5b46", f"player{i}", "nakama1")
        for i in range(players)
    ]
    yield InitCall({"mode": "arena"}, Outcome(tick_rate=10, label='{"mode":"arena","open":true}'))
    for p in people:
        yield JoinAttemptCall(0, p, {"client_version": "1.4.0"}, Outcome(accept=True))
        yield JoinCall(0, (p,))
    dropped = people[0]
    back = Presence(dropped.user_id, "reconnected-0000-4000-8000-000000000000", dropped.username, "nakama1")
    racer = Presence(people[1].user_id, "race-0000-4000-8000-000000000000", people[1].username, "nakama1")
    for tick in range(ticks):
        if tick == ticks // 3:
            yield LeaveCall(tick, (dropped.with_reason(4),))
            people = [p for p in people if p is not dropped]
        if tick == ticks // 3 + 50:
            yield JoinAttemptCall(tick, back, {"client_version": "1.4.1"}, Outcome(accept=True))
            yield JoinCall(tick, (back,))
            people.append(back)
        if tick == ticks - 1:
            yield JoinAttemptCall(tick, racer, {"client_version": "1.4.0"}, Outcome(accept=True))
            yield JoinCall(tick, (racer,))
        if tick == ticks // 2:
            yield SignalCall(tick, '{"cmd":"pause"}', Outcome(reply="ok", label_updates=('{"open":false}',)))
        msgs = []
        for p in people:
            for _ in range(rnd.choice((1, 2))):
                body = {
                    "seq": tick,
                    "x": rnd.randint(-500, 500),
                    "y": rnd.randint(-500, 500),
                    "fire": rnd.random() < 0.1,
                }
                msgs.append(MatchMessage(p, 1, json.dumps(body, separators=(",", ":")).encode(), True, 0))
        if tick % 100 == 7:
            msgs.append(MatchMessage(people[0], 2, b"\x00\x01binary\xff", True, 0))
        state = b'{"tick":%d,"scores":[%s]}' % (tick, b",".join(b"%d" % rnd.randint(0, 99) for _ in people))
        yield LoopCall(
            tick,
            tuple(msgs),
            Outcome(broadcasts=(Broadcast(10, state),), digest=rnd.getrandbits(64)),
            (Nondeterministic("time", 1_700_000_000_000 + tick * 100),),
        )
    yield CrashMarker("match_loop", ticks - 1, "KeyError: 'race-0000'", "Traceback (most recent call last):\n  ...")


def best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=36_000)
    ap.add_argument("--players", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true", help="skip the zoom and pan timing in Chromium")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nkview-bench-") as tmp:
        rec = Path(tmp) / "long.nkrec"
        out = Path(tmp) / "long.html"
        header = Header(match_id="bench.nakama1", module="arena", tick_rate=10, node="nakama1", source="bench")
        t0 = time.perf_counter()
        with RecordingWriter(rec, header) as w:
            w.extend(match_events(args.ticks, args.players))
        print(
            f"recording: {args.ticks} ticks, {args.players} players, {w.events_written} events, "
            f"{rec.stat().st_size / 1e6:.1f} MB (written in {time.perf_counter() - t0:.1f} s)"
        )

        def view() -> None:
            out.write_text(render_html(build_timeline(rec)), encoding="utf-8")

        base = best_of(args.repeat, lambda: summarize(rec))
        took = best_of(args.repeat, view)
        size = out.stat().st_size
        tl = build_timeline(rec)
        print(f"baseline inspect (summarize): {base:.2f} s")
        print(f"view (timeline + page):       {took:.2f} s   ratio {took / base:.2f}x the baseline")
        print(
            f"page: {size / 1e6:.2f} MB; calls of {len(tl.details)} of {tl.detail_ticks_total} ticks embedded; "
            f"{len(tl.lanes)} lanes, {len(tl.densities)} density series"
        )
        ok = took < TARGET_SECONDS and size < TARGET_BYTES
        print(f"targets: < {TARGET_SECONDS:.0f} s and < {TARGET_BYTES / 1e6:.0f} MB: {'met' if ok else 'NOT MET'}")
        if not args.no_browser:
            small = Path(tmp) / "small.html"
            small.write_text(
                render_html(build_timeline(ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec")),
                encoding="utf-8",
            )
            ok = browser_frames(out, small, args.ticks) and ok
    return 0 if ok else 1


def browser_frames(page_path: Path, baseline_path: Path, ticks: int) -> bool:
    """Zoom and pan in headless Chromium (see the module docstring); True when the target is met or no browser."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("browser: skipped (Playwright for Python is not installed)")
        return True
    from tests.common.browser import chromium_context, find_chromium

    chromium = find_chromium()
    if chromium is None:
        print("browser: skipped (no Chromium: apt-get install chromium, or set NKREPLAY_CHROMIUM)")
        return True
    spans = [ticks, 6000, 600, 60]
    with chromium_context(chromium) as browser:
        results = {}
        for name, path in (("hour", page_path), ("baseline", baseline_path)):
            page = browser.new_page()
            t0 = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function("window.nkTimeline && window.nkTimeline.ready", timeout=120_000)
            load = time.perf_counter() - t0
            page.evaluate(_PAN_JS, [60, 20])  # warm the JIT
            frames = [min(page.evaluate(_PAN_JS, [span, 100]) for _ in range(3)) for span in spans]
            results[name] = (load, frames)
            page.close()
    (load, frames), (base_load, base_frames) = results["hour"], results["baseline"]
    print(f"browser: load {load:.2f} s ({ticks} ticks) vs {base_load:.2f} s (59-tick baseline)")
    for span, ms, base in zip(spans, frames, base_frames):
        print(
            f"  pan at a span of {span:>6} ticks: {ms:.2f} ms per redraw vs {base:.2f} ms baseline "
            f"(ratio {ms / max(base, 1e-3):.2f}x)"
        )
    ok = max(frames) < TARGET_FRAME_MS
    print(f"target: every redraw < {TARGET_FRAME_MS:.1f} ms (60 Hz): {'met' if ok else 'NOT MET'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
