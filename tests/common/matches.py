"""Matches made on the fly for the tests: a crash recording of the arena's reconnection race."""

from __future__ import annotations

import json
import random
from pathlib import Path

from recorder.format import Header, PresenceReason
from replay.runtime import MatchDriver

RATE = 10  # Hz: 13 ticks are about 1.3 s of real time in a live replay


def make_crash_recording(path: Path, handler: Path, *, rate: int = RATE, race_at: int = 9, seed: int = 3) -> Path:
    rng = random.Random(seed)
    params = {"max_players": 8, "tick_rate": rate}
    header = Header(
        match_id="0d7c4a52-3f1e-4b6a-9a1d-5c2e8f7b6a10.nakama1",
        module="arena",
        tick_rate=rate,
        node="nakama1",
        source="capture",
        params=params,
        handler=str(handler),
    )
    with MatchDriver(str(handler), header, capture=str(path)) as d:
        d.init(params)
        players = {
            n: d.join(n, {"client_version": "1.4.0"}, {"client_version": "1.4.0"}) for n in ("alice", "bob", "cho")
        }
        d.tick()
        for p in players.values():
            d.send(p, 3)  # ready
        d.tick()
        for t in range(race_at + 1):
            for p in players.values():
                if p is not None:
                    move = {
                        "dx": rng.choice([-1, 0, 1]),
                        "dy": rng.choice([-1, 0, 1]),
                        "shoot": rng.random() < 0.3,
                        "aim": [1, 0],
                    }
                    d.send(p, 1, json.dumps(move))
            if t == 1:
                d.signal("scores")
            if t == 2:
                d.send(players["alice"], 2, json.dumps({"text": "gg"}))
            if t == 3:  # a plain disconnect with a message in flight
                d.leave(players["cho"], PresenceReason.DISCONNECT)
                players["cho"] = None
            if t == 6:
                players["cho"] = d.join("cho", {"client_version": "1.4.0"})
            if t == race_at:  # bob's input is queued, then his new session overtakes it
                d.reconnect(players["bob"], {"client_version": "1.4.0"})
            d.tick()
    return path


def inputs_per_tick(path: Path, *, shift: int = 0, until: int | None = None) -> dict[int, list[tuple[object, ...]]]:
    """What each tick of a handler-call recording fed the handler, by tick minus ``shift``, up to ``until``:
    join attempts, joins, leaves (with their reason) and messages (op code, data) in order, by username;
    session ids left out (a live run's sessions are new)."""
    from recorder.format import JoinAttemptCall, JoinCall, LeaveCall, LoopCall, read_events

    fed: dict[int, list[tuple[object, ...]]] = {}
    for e in read_events(path)[1]:
        tick = getattr(e, "tick", None)
        if tick is None or (until is not None and tick - shift > until):
            continue
        at = fed.setdefault(tick - shift, [])
        if isinstance(e, JoinAttemptCall):
            at.append(("attempt", e.presence.username))
        elif isinstance(e, (JoinCall, LeaveCall)):
            at.extend((e.kind, p.username, int(p.reason)) for p in e.presences)
        elif isinstance(e, LoopCall):
            at.extend(("message", m.sender.username, m.op_code, bytes(m.data or b"")) for m in e.messages)
    return {t: v for t, v in fed.items() if v}
