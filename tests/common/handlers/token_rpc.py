"""A user RPC for ``nakama-replay serve --rpc`` that returns tokens, as a game's RPC might (a session for a
second service, say): ``issue_token`` replies ``{"token", "refresh_token", "note"}`` where both tokens are
JWTs signed for the calling user and ``note`` carries one as a ``Bearer`` value inside plain text."""

import json
import time

from recorder.wire.session_token import Claims, encode


def rpc_issue_token(ctx, logger, nk, payload):
    now = int(time.time())
    claims = Claims("chat", ctx.get("user_id", ""), ctx.get("username", ""), {}, now + 600, now)
    token, refresh = encode(claims, "chat-service-key"), encode(claims, "chat-refresh-key")
    return json.dumps({"token": token, "refresh_token": refresh, "note": f"use Bearer {token} for chat"})
