"""Says goodbye to the presence that just left: it is no longer in the match, so Nakama drops the message
(the fuzz checks report it as a broadcast to an absent presence). Hangs on a message with op code 9."""


def match_init(ctx, logger, nk, params):
    return {"seen": 0}, 10, ""


def match_join_attempt(ctx, logger, nk, dispatcher, tick, state, presence, metadata):
    return state, True, ""


def match_join(ctx, logger, nk, dispatcher, tick, state, presences):
    return state


def match_leave(ctx, logger, nk, dispatcher, tick, state, presences):
    dispatcher.broadcast_message(99, "bye", presences)
    return state


def match_loop(ctx, logger, nk, dispatcher, tick, state, messages):
    while any(m.op_code == 9 for m in messages):
        pass
    state["seen"] += len(messages)
    return state


def match_terminate(ctx, logger, nk, dispatcher, tick, state, grace_seconds):
    return state


def match_signal(ctx, logger, nk, dispatcher, tick, state, data):
    if data == "reset":  # ZeroDivisionError while no message has been seen
        return state, str(1 // state["seen"])
    return state, ""
