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
