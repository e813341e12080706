"""``inspect --timeline`` and ``inspect --tick N``: the parts of ``inspect`` that read a recording as a
timeline (``replay.timeline``). ``inspect`` parses the options and hands them here."""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from replay.cli._args import count
from replay.cli._common import EXIT_INCOMPLETE, print_json

__all__ = ["add_timeline_arguments", "wanted", "run_timeline"]


def add_timeline_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("timeline (replay.timeline)")
    g.add_argument(
        "--timeline",
        action="store_true",
        help="a compact text timeline: a strip per player and op code, then the events in order",
    )
    g.add_argument("--from-tick", type=count, metavar="A", help="--timeline: start at tick A (default: the first)")
    g.add_argument("--to-tick", type=count, metavar="B", help="--timeline: end at tick B (default: the last)")
    g.add_argument(
        "--width",
        type=count,
        default=None,
        metavar="COLUMNS",
        help="--timeline: columns for the strips (default: the terminal's, at most 120)",
    )
    g.add_argument(
        "--tick",
        type=count,
        metavar="N",
        help="everything recorded in tick N: every call with its inputs (payloads decoded), outcome and "
        "nondeterministic values, the presences in the match, the crash",
    )


def wanted(args: argparse.Namespace) -> bool:
    """Whether the options ask for a timeline view (and are consistent)."""
    from recorder.errors import OptionError

    ranged = args.from_tick is not None or args.to_tick is not None or args.width is not None
    if args.tick is not None and (args.timeline or ranged):
        raise OptionError(
            "--tick", args.tick, "shows one tick; --timeline/--from-tick/--to-tick show a range: pick one"
        )
    if ranged and not args.timeline:
        raise OptionError(
            "--from-tick" if args.from_tick is not None else "--to-tick" if args.to_tick is not None else "--width",
            None,
            "goes with --timeline",
        )
    if args.from_tick is not None and args.to_tick is not None and args.from_tick > args.to_tick:
        raise OptionError("--from-tick", args.from_tick, f"is after --to-tick {args.to_tick}")
    return args.timeline or args.tick is not None


def _check_range(path: str, span: tuple[int | None, int | None, str], asked: int, option: str) -> None:
    from recorder.errors import OptionError

    first, last, state = span
    part = "" if state == "complete" else f" (its intact part: the recording is {state})"
    if first is None or last is None:
        raise OptionError(option, asked, f"{path} holds no handler calls{part}")
    if not first <= asked <= last:
        raise OptionError(option, asked, f"outside the recording's ticks ({first}..{last}){part}")


def _span(path: str) -> tuple[int | None, int | None, str]:
    """The first and last tick of the recording's intact calls (crash included) and its integrity state."""
    from recorder.format._summary import summarize

    s = summarize(path)
    last = s.last_tick
    if s.crash is not None and last is not None:
        last = max(last, s.crash["tick"])
    return s.first_tick, last, s.integrity["state"]


def run_timeline(args: argparse.Namespace) -> int:
    from replay.timeline._model import build_timeline
    from replay.timeline._text import format_tick, format_timeline

    span = _span(args.recording)
    if args.tick is not None:
        _check_range(args.recording, span, args.tick, "--tick")
        tl = build_timeline(args.recording, from_tick=args.tick, to_tick=args.tick, detail_budget=1 << 62)
        calls = tl.details.get(args.tick, [])
        present = _present(tl, args.tick)
        if args.json:
            print_json(
                {
                    "tick": args.tick,
                    "presences": present,
                    "calls": calls,
                    "crash": tl.crash,
                    "integrity": tl.integrity,
                    "damage": tl.damage,
                }
            )
        else:
            print(format_tick(args.tick, calls, present, tl.crash, tl.recording.get("tick_rate") or 0))
            if not tl.complete:
                print(f"INCOMPLETE recording: tick {args.tick} is shown from its intact part: {_summary(tl)}")
        return _status(tl, args)
    for option, asked in (("--from-tick", args.from_tick), ("--to-tick", args.to_tick)):
        if asked is not None:
            _check_range(args.recording, span, asked, option)
    tl = build_timeline(args.recording, from_tick=args.from_tick, to_tick=args.to_tick, detail_budget=0)
    if args.json:
        data: dict[str, Any] = tl.to_json()
        data.pop("details")
        print_json(data)
        return _status(tl, args)
    width = args.width or min(120, shutil.get_terminal_size((100, 24)).columns) - 16
    print(format_timeline(tl, max(10, width)))
    return _status(tl, args)


def _status(tl: Any, args: argparse.Namespace) -> int:
    """Exit 3 for an incomplete recording (what is shown is its intact part) unless --allow-incomplete, as
    ``inspect``'s summary does."""
    return 0 if tl.complete or args.allow_incomplete else EXIT_INCOMPLETE


def _summary(tl: Any) -> str:
    return str((tl.integrity or {}).get("summary", "integrity unknown"))


def _present(tl: Any, tick: int) -> list[str]:
    out = []
    for lane in tl.lanes:
        for s in lane.sessions:
            joined = s.present_at_start or (s.join_tick is not None and s.join_tick <= tick)
            if joined and (s.leave_tick is None or s.leave_tick >= tick):
                leaving = " (leaves at this tick)" if s.leave_tick == tick else ""
                out.append(f"{s.username or lane.username} (session {s.session_id[:8]}){leaving}")
    return out
