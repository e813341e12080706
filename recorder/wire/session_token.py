"""Nakama session tokens: HS256 JWTs whose claims are ``tid, uid, usn, vrs, exp, iat``.

Nakama (``server/api_authenticate.go``) signs ``SessionTokenClaims`` with the session encryption key;
clients (nakama-js ``Session``) decode the middle part to read ``uid``, ``usn``, ``vrs`` and ``exp``. The
proxy reads claims without the key (to learn the user, session vars and client version, and to name a
session by a pseudonym); the local server issues and verifies tokens with its own key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Claims", "encode", "decode", "verify", "pseudonym"]

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Claims:
    token_id: str = ""
    user_id: str = ""
    username: str = ""
    vars: Mapping[str, str] = field(default_factory=dict)
    expires_at: int = 0
    issued_at: int = 0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: Claims, key: str) -> str:
    """A signed token, claims in Go's field order with empty ones omitted (``omitempty``)."""
    body: dict[str, object] = {}
    for name, value in (
        ("tid", claims.token_id),
        ("uid", claims.user_id),
        ("usn", claims.username),
        ("vrs", dict(claims.vars)),
        ("exp", claims.expires_at),
        ("iat", claims.issued_at),
    ):
        if value:
            body[name] = value
    signing_input = _HEADER + "." + _b64url(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    sig = hmac.new(key.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(sig)


def decode(token: str) -> Claims | None:
    """Claims of a token without checking its signature; None if it is not a Nakama-shaped JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        body = json.loads(_unb64url(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    vrs = body.get("vrs") or {}
    exp, iat = body.get("exp", 0), body.get("iat", 0)
    if not isinstance(vrs, dict) or not all(isinstance(v, str) for v in vrs.values()):
        return None
    if not isinstance(exp, int) or not isinstance(iat, int):
        return None
    strs = [body.get(k, "") for k in ("tid", "uid", "usn")]
    if not all(isinstance(s, str) for s in strs):
        return None
    return Claims(strs[0], strs[1], strs[2], vrs, exp, iat)


def verify(token: str, key: str, now_s: int) -> Claims | None:
    """Claims of a token signed with ``key`` that has not expired at ``now_s``; otherwise None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(key.encode("utf-8"), (parts[0] + "." + parts[1]).encode("ascii", "replace"), hashlib.sha256)
    try:
        ok = hmac.compare_digest(expected.digest(), _unb64url(parts[2]))
    except ValueError:
        return None
    claims = decode(token) if ok else None
    if claims is None or (claims.expires_at and claims.expires_at < now_s):
        return None
    return claims


def pseudonym(token: str, salt: bytes) -> str:
    """A stable stand-in for a token: the same token and salt always give the same short name."""
    return "sess-" + hmac.new(salt, token.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:16]
