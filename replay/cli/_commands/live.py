"""Replay a recording into a real Nakama (or `nakama-replay serve`), in real time, and show what the real
server does with it: how the match ended (ran to the end, stopped, or crashed at which recorded tick: Nakama
closes every socket with 1000 "server-side session disconnect" after a handler error), how well messages
landed in their recorded ticks, and, with --compare, whether the real server's broadcasts match the
recording's (op code, data, targets; the first mismatch is shown the way `diff` shows a divergence).

One device-authenticated session per recorded session (device ids derived from the recorded user ids, so
reruns reuse the same accounts); the match is created with --create-rpc (its result must hold the match id,
e.g. {"match_id": "..."}; payload: the recording's match_init params unless --create-payload) or --match-id
is joined. Joins (with metadata), data, leaves, reconnects (new sockets) and signals (through --signal-rpc,
payload {"match_id", "data"}, the RPC's result is the reply) go out at the recorded tick rate. Handler-call
and wire recordings are both accepted. Everything the server sends is captured into a new wire recording
under --out, without secrets (tokens, anything shaped like a JWT, --redact-key keys: <redacted>).

Recorded user, session and match ids inside JSON payloads (message data, join metadata values, signal
data, RPC payloads) are replaced by the live ones, so a handler that looks a player up by an id a client
sent finds the live player (--no-map-payload-ids sends them as recorded). --compare maps recorded ids,
usernames and node names in the recorded broadcasts the same way, and compares only what the recording
holds: a handler-call recording whose calls have no recorded outcomes says nothing about broadcasts, and
the report says so plainly instead of calling every live broadcast a mismatch.

Only a complete recording is replayed into a server: an unsealed, damaged or version-1 one is refused
with exit 3 before anything is sent (its crash, or the calls that led to it, may be missing), unless
--allow-incomplete, which replays its intact part and says so in the report and in --json's "integrity".

This command was called `replay` before; `nakama-replay replay` still works and prints a notice.

exit status: 0 reproduced what the recording says (and, with --compare, nothing compared differs), 1 not
(the last line always says which: REPRODUCED or DID NOT REPRODUCE, and why), 2 bad input or a server that
refused a step, 3 the recording is not complete (refused).

example:
  nakama-replay serve --handler fixtures/handlers/arena.py &
  nakama-replay live fixtures/recordings/arena-reconnect-crash.nkrec --nakama http://127.0.0.1:7350 --compare"""

from __future__ import annotations

import argparse

from replay.cli._args import count, input_file, output_dir, positive, server_url
from replay.cli._common import add_integrity_flags, add_json_flag, add_redact_flag, integrity_gate, print_json

HELP = "replay a recording into a real Nakama server and report the crash, tick alignment and broadcasts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a handler-call or wire recording (.nkrec)")
    p.add_argument(
        "--nakama",
        type=server_url,
        default="http://127.0.0.1:7350",
        metavar="URL",
        help="server (default http://127.0.0.1:7350)",
    )
    p.add_argument("--server-key", default="defaultkey", metavar="KEY", help="server key (default defaultkey)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--create-rpc", metavar="NAME", help="RPC that creates the match (default: the recording's, else create_match)"
    )
    how.add_argument("--match-id", metavar="ID", help="join this running match instead of creating one")
    p.add_argument(
        "--create-payload", metavar="JSON", help="payload of the create RPC (default: the recording's init params)"
    )
    p.add_argument("--signal-rpc", metavar="NAME", help='RPC that signals the match (payload {"match_id", "data"})')
    p.add_argument("--server-log", metavar="FILE", help="the server's JSON log: find the match's crash line")
    p.add_argument("--compare", action="store_true", help="compare the server's broadcasts with the recording's")
    p.add_argument(
        "--no-map-payload-ids",
        action="store_true",
        help="send recorded user/session/match ids inside JSON payloads as recorded (default: mapped to the live ones)",
    )
    p.add_argument("--out", default="replay-wire", metavar="DIR", help="where the captured wire recording goes")
    p.add_argument("--tick-rate", type=positive, metavar="N", help="tick rate (wire recordings without one)")
    p.add_argument(
        "--tail-ticks",
        type=count,
        default=5,
        metavar="N",
        help="ticks to keep listening after the last action (default 5)",
    )
    add_redact_flag(p)
    add_integrity_flags(p)
    add_json_flag(p)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from replay.live._feed import LiveOptions, run_live
    from replay.live._report import analyse
    from replay.live._script import load_script

    input_file(args.recording, "recording")
    if args.server_log is not None:
        input_file(args.server_log, "server log")
    output_dir(args.out)
    integrity = integrity_gate(args.recording, args, refuse=True)  # refused unless complete or allowed
    script = load_script(args.recording, tick_rate=args.tick_rate)
    options = LiveOptions(
        nakama=args.nakama,
        server_key=args.server_key,
        create_rpc=args.create_rpc,
        create_payload=args.create_payload,
        match_id=args.match_id,
        signal_rpc=args.signal_rpc,
        out_dir=args.out,
        tail_ticks=args.tail_ticks,
        map_payload_ids=not args.no_map_payload_ids,
        redact_keys=tuple(args.redact_key),
    )
    live = asyncio.run(run_live(script, options))
    report = analyse(script, live, server_log=args.server_log, compare=args.compare)
    if args.json:
        print_json({**report.to_json(), "integrity": integrity.to_json()})
    else:
        print_report(report)
        if not integrity.complete:
            print(f"integrity  {integrity.describe()} (--allow-incomplete: not replayed: {integrity.missing()})")
    return report.exit_code


def print_report(r) -> None:  # type: ignore[no-untyped-def]
    rec = r.recorded_end
    print(f"recording  {r.recording} ({r.kind} recording, {r.tick_rate} Hz)")
    print(f"nakama     {r.nakama}  match {r.match_id} ({'created' if r.created else 'joined'})")
    for path in r.wire_paths:
        print(f"captured   {path}")
    print("\nsessions")
    for s in r.sockets:
        close = s["close"]
        how = (
            ""
            if close is None
            else f"  closed by {close['by']} at tick {close['tick']}: {close['code']} {close['reason']!r}"
        )
        print(
            f"  {s['label']:<10} recorded user {s['recorded_user_id'][:8]}  ->  live user "
            f"{(s['live_user_id'] or '-')[:8]} session {(s['live_session_id'] or '-')[:8]}{how}"
        )
    sent = ", ".join(f"{sum(v.values())} {k}" for k, v in r.actions.items())
    print(f"\nactions    {sent}" + (f" ({r.late} sent after their window)" if r.late else ""))
    for line in r.skipped:
        print(f"  skipped: {line}")
    for line in r.problems[:10]:
        print(f"  problem: {line}")
    if len(r.problems) > 10:
        print(f"  ... {len(r.problems) - 10} more problems (see --json)")

    print()
    if r.outcome == "crashed":
        where = "at an unknown tick" if r.crash_tick is None else f"at recorded tick {r.crash_tick}"
        live = "" if r.crash_live_tick is None else f" (live tick {r.crash_live_tick}, from the {r.crash_source})"
        print(f"CRASHED {where}{live}")
        if r.log_crash is not None:
            first = r.log_crash.error.splitlines()[0] if r.log_crash.error else ""
            print(
                f"  server log: Stopping match after error from {r.log_crash.callback} execution, tick {r.log_crash.tick}: {first}"
            )
    elif r.outcome == "unresponsive":
        u = r.unresponsive
        why = []
        if u["expected_broadcasts"]:
            why.append(f"{u['expected_broadcasts']} recorded loop broadcasts to the replayed sessions never came")
        if u["unanswered"]:
            why.append(f"no answer to {'; '.join(u['unanswered'][:3])}")
        print(
            f"UNRESPONSIVE from tick {u['last_alive_tick']} (the last tick it was seen alive): nothing from the "
            f"match for {u['silent_seconds']:.1f} s; " + "; ".join(why)
        )
        if u["then_closed_at_tick"] is not None:
            print(
                f"  then the server closed every socket (around tick {u['then_closed_at_tick']}): not a crash at "
                "that tick, the match had stopped answering before (a hang guard ending it?)"
            )
    elif r.outcome == "stopped":
        print("STOPPED: the match is gone, without a crash")
    elif r.outcome == "completed":
        print("RAN TO THE END: the match still runs after the last action")
    else:
        print("DID NOT CRASH (no session was left in the match to ask whether it still runs)")
    first = rec.error.splitlines()[0] if rec.error else ""
    tick = "" if rec.tick is None else f" at tick {rec.tick}"
    print(
        f"recorded   {rec.outcome}{tick}"
        + (f" in {rec.callback}: {first}" if rec.callback else (f": {first}" if first else ""))
    )

    c = r.clock
    how = "revealed" if r.drift_revealed else "estimated from send times"
    print(
        f"\ntick alignment  drift {r.drift} tick(s), {how} ({c['broadcasts_matched_to_ticks']} broadcasts matched to"
        f" recorded ticks, {c['echoes']} echoes); schedule starts at live tick {r.offset}"
    )
    msgs = r.messages
    if msgs:
        on_time = sum(1 for m in msgs if m.aimed == m.intended)
        print(
            f"  {len(msgs)} messages: {on_time} aimed at their recorded tick; "
            f"{sum(1 for m in msgs if m.landed is not None)} landings revealed by an echo"
        )
        off = [m for m in msgs if m.aimed != m.intended or (m.landed is not None and m.landed != m.intended)]
        for m in off[:10]:
            landed = "" if m.landed is None else f", landed {m.landed}"
            print(f"    {m.actor:<10} op {m.op_code:<4} meant for tick {m.intended}, aimed {m.aimed}{landed}")
        if len(off) > 10:
            print(f"    ... {len(off) - 10} more (see --json)")

    if r.compared and r.compare_scope == "nothing":
        print(
            "\ncompare    nothing to compare: the recording holds no call outcomes, so it does not say what was broadcast"
        )
    elif r.compared:
        upto = (
            ""
            if r.compare_scope == "all"
            else f" (ticks up to {r.compare_until}: the recording holds no outcomes after it)"
        )
        print(
            f"\ncompare    {r.matched} of {r.deliveries} recorded match_data deliveries matched, {r.aligned} in op code"
            f" and sender ({r.received} received live){upto}"
        )
        if r.reordered:
            print(
                f"  {r.reordered} ticks' broadcasts arrived in another order than recorded (messages from several"
                " sockets reach the server in an order no client controls)"
            )
        m = r.mismatch
        if m is None:
            print("  the server's broadcasts match the recording (op code, data, sender, recipients)")
        else:
            print(f"  FIRST MISMATCH at tick {m.tick}, {m.actor}'s match_data #{m.index}: {m.why}")
            if r.mismatches > 1:
                print(f"  ({r.mismatches} sessions' streams differ)")
    for note in r.notes:
        print(f"note: {note}")
    print("\n" + r.conclusion)
