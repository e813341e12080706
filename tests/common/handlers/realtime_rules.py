"""A match for the realtime core's tests: each callback broadcasts its name, so a test sees who a call reaches.

join_attempt broadcasts op 9, join op 10, leave op 11 (data: the callback's name); match_loop answers op 1 with
op 12 to the sender alone (a targeted broadcast), raises on op 99 and returns no state on op 98. Join metadata
``{"reject": "why"}`` is refused with that reason; ``match_signal`` replies with its data (raises on "boom").
"""


def match_init(ctx, logger, nk, params):
    return {}, int(params.get("tick_rate", 10)), "rules"


def match_join_attempt(ctx, logger, nk, dispatcher, tick, state, presence, metadata):
    dispatcher.broadcast_message(9, b"join_attempt")
    if metadata.get("reject"):
        return state, False, metadata["reject"]
    return state, True, ""


def match_join(ctx, logger, nk, dispatcher, tick, state, presences):
    dispatcher.broadcast_message(10, b"join")
    return state


def match_leave(ctx, logger, nk, dispatcher, tick, state, presences):
    dispatcher.broadcast_message(11, b"leave")
    return state


def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):
    for m in messages:
        if m.op_code == 99:
            raise RuntimeError("boom: op code 99")
        if m.op_code == 98:
            return None
        if m.op_code == 1:
            dispatcher.broadcast_message(12, m.data, [m.sender], m.sender)
    return state


def match_terminate(ctx, logger, nk, dispatcher, tick, state, grace_seconds):
    return state


def match_signal(ctx, logger, nk, dispatcher, tick, state, data):
    if data == "boom":
        raise RuntimeError("boom: signal")
    return state, "signalled " + data


def rpc_echo(ctx, logger, nk, payload):
    return ctx["username"] + ":" + payload


def rpc_fail(ctx, logger, nk, payload):
    raise ValueError("no such thing")
