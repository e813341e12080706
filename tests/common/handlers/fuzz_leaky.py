"""A handler class whose instance outlives a match: the second match_init on one instance raises."""


class Leaky:
    def __init__(self):
        self.inits = 0

    def match_init(self, ctx, logger, nk, params):
        self.inits += 1
        if self.inits > 1:
            raise RuntimeError("state leaked from an earlier match")
        return {}, 10, ""

    def match_join_attempt(self, ctx, logger, nk, dispatcher, tick, state, presence, metadata):
        return state, True, ""

    def match_join(self, ctx, logger, nk, dispatcher, tick, state, presences):
        return state

    def match_leave(self, ctx, logger, nk, dispatcher, tick, state, presences):
        return state

    def match_loop(self, ctx, logger, nk, dispatcher, tick, state, messages):
        return state

    def match_terminate(self, ctx, logger, nk, dispatcher, tick, state, grace_seconds):
        return state

    def match_signal(self, ctx, logger, nk, dispatcher, tick, state, data):
        return state, ""
