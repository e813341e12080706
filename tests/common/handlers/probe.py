"""A test handler that writes down what it sees and acts on op codes.

state["seen"] gets one entry per callback: [callback, tick, detail]. Loop op codes:
1 broadcast data to everyone; 2 broadcast to the presences listed in data (JSON session ids);
3 deferred broadcast; 4 kick the sender; 5 label update to data; 6 return None (stop);
7 raise ValueError; 8 loop forever; 9 nk.time/random/uuid into state; 10 storage write (data: JSON list);
11 200 deferred broadcasts (over Nakama's 128 limit).
"""

import json


def match_init(ctx, logger, nk, params):
    if params.get("bad") == "rate":
        return {}, 61, ""
    if params.get("bad") == "label":
        return {}, 10, "x" * 2049
    if params.get("bad") == "nil":
        return None, 10, ""
    if params.get("bad") == "arity":
        return {}, 10, "", "extra"
    return {"seen": [["init", 0, sorted(ctx)]], "storage": []}, 10, "probe"


def match_join_attempt(ctx, logger, nk, dispatcher, tick, state, presence, metadata):
    state["seen"].append(["join_attempt", tick, presence.session_id, ctx["session_id"], dict(metadata)])
    if metadata.get("reject"):
        return state, False, "rejected by probe"
    return state, True, ""


def match_join(ctx, logger, nk, dispatcher, tick, state, presences):
    state["seen"].append(["join", tick, [p.session_id for p in presences]])
    return state


def match_leave(ctx, logger, nk, dispatcher, tick, state, presences):
    state["seen"].append(["leave", tick, [[p.session_id, p.reason] for p in presences]])
    return state


def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):
    state["seen"].append(["loop", tick, [m.op_code for m in messages]])
    for m in messages:
        op = m.op_code
        if op == 1:
            dispatcher.broadcast_message(100, m.data)
        elif op == 2:
            targets = [{"session_id": s, "node": "n1"} for s in json.loads(m.data)]
            dispatcher.broadcast_message(101, b"to-list", targets)
        elif op == 3:
            dispatcher.broadcast_message_deferred(102, m.data)
        elif op == 4:
            dispatcher.match_kick([m.sender])
        elif op == 5:
            dispatcher.match_label_update(m.data.decode())
        elif op == 6:
            return None
        elif op == 7:
            raise ValueError("probe asked to fail")
        elif op == 8:
            while True:
                pass
        elif op == 9:
            state["nd"] = [nk.time(), nk.random(), nk.uuid_v4()]
        elif op == 10:
            try:
                state["storage"].append(["ok", [a["version"] for a in nk.storage_write(json.loads(m.data))]])
            except Exception as exc:
                state["storage"].append(["rejected", str(exc)])
        elif op == 11:
            for i in range(200):
                dispatcher.broadcast_message_deferred(103, str(i))
    return state


def match_terminate(ctx, logger, nk, dispatcher, tick, state, grace_seconds):
    state["seen"].append(["terminate", tick, grace_seconds])
    return state


def match_signal(ctx, logger, nk, dispatcher, tick, state, data):
    state["seen"].append(["signal", tick, data])
    return state, "reply:" + data
