"""The one redaction layer: secrets never reach a file that the proxy, ``serve`` or a live ``replay`` writes.

``Redactor.event(e)`` returns a recording event with its secrets replaced by ``<redacted>``; every writer
of observed traffic passes events through it (``recorder.wire._recorder`` for wire recordings,
``recorder.capture._sink`` for ``serve``'s handler-call recordings). What it removes, everywhere in an event:

- **JSON keys**: the value of any object key named ``token`` or ``refresh_token`` (Nakama's session and
  refresh tokens, a matchmaker ``match_join`` token, the socket URL's ``token=`` query), plus the keys a
  user names (``--redact-key``). Names compare case-insensitively with ``_`` and ``-`` ignored, so
  ``refreshToken`` is ``refresh_token``. Strings that hold JSON (an ``rpc`` payload, a notification's
  content) are parsed and redacted inside, as deep as they nest (one holding a secret is written again
  as compact JSON); a string that is not JSON loses
  ``"key": "value"`` pairs and ``key=value`` pairs.
- **JWTs**: any string shaped like a JSON Web Token (``eyJ...``.``...``.``...``), inside any text,
  whatever the key: a session token in a non-JSON rpc payload, a ``Bearer`` header value, a match
  message. Base64 message ``data`` (``match_data``, ``match_data_send``) and binary data are decoded and
  searched too.
- **Headers**: ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and ``Set-Cookie`` values
  (``Redactor.headers``).

A state snapshot that holds a secret is dropped rather than edited (its bytes are an encoding whose
lengths would no longer hold). A recording lists what was redacted in its header (``Redactor.labels``:
``key:token``, ``jwt``, ``header:authorization``...). Redaction changes what a replay feeds a handler only
where a secret was: the handler then sees ``<redacted>``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from recorder.format import Outcome, Presence

__all__ = ["REDACTED", "SECRET_KEYS", "SECRET_HEADERS", "Redactor"]

REDACTED = "<redacted>"
#: JSON keys redacted by default: Nakama's session token (also the socket query's ``token``, a
#: matchmaker join token) and refresh token.
SECRET_KEYS = ("token", "refresh_token")
#: Request and response headers whose values are credentials.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")

_B64URL = "[A-Za-z0-9_-]"
# header and claims of a JWT are base64url JSON objects, so they start with "eyJ" ('{"'); the signature
# may be empty (alg "none")
_JWT = re.compile(rf"eyJ{_B64URL}+\.{_B64URL}+\.{_B64URL}*")
_JWT_BYTES = re.compile(_JWT.pattern.encode("ascii"))


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _key_pattern(key: str) -> str:
    """A regex matching ``key`` as ``_norm`` compares it (any case, ``_``/``-`` anywhere)."""
    return "[_-]*".join(re.escape(c) for c in _norm(key))


def _stems(keys: Iterable[str]) -> tuple[str, ...]:
    """Words (lower case) one of which every spelling of every key contains: a key's words are split at
    ``_``, ``-`` and camelCase (``refresh_token``, ``refreshToken``, ``REFRESH-TOKEN`` all contain
    ``token``); a key whose words include a stem already chosen adds none, else its longest word."""
    stems: list[str] = []
    for key in keys:
        words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])", key)] or [key.lower()]
        if not any(w in stems for w in words):
            stems.append(max(words, key=len))
    return tuple(stems)


class Redactor:
    """Removes secrets from recording events; ``keys`` are extra JSON keys to redact (``--redact-key``)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        extra = [k for k in dict.fromkeys(keys) if _norm(k) and _norm(k) not in map(_norm, SECRET_KEYS)]
        self.keys: tuple[str, ...] = (*SECRET_KEYS, *extra)
        self._keys = frozenset(_norm(k) for k in self.keys)
        alternatives = "|".join(_key_pattern(k) for k in self.keys)
        self._stems = _stems(self.keys)
        self._json_pair = re.compile(rf'(?i)("(?:{alternatives})"\s*:\s*)"(?:[^"\\]|\\.)*"')
        self._query_pair = re.compile(rf"(?i)(?<![A-Za-z0-9_])((?:{alternatives})=)[^&\s\"']+")
        self._fields: dict[type, tuple[str, ...]] = {}
        self._key_verdicts: dict[str, bool] = {}

    @property
    def labels(self) -> tuple[str, ...]:
        """What this redactor removes, for a recording's header ``redactions``."""
        return (*(f"key:{k}" for k in self.keys), "jwt", *(f"header:{h}" for h in SECRET_HEADERS))

    def is_secret_key(self, key: str) -> bool:
        known = self._key_verdicts.get(key)
        if known is None:
            known = _norm(key) in self._keys
            if len(self._key_verdicts) < 4096:  # envelope keys repeat; a hostile stream of new ones is not kept
                self._key_verdicts[key] = known
        return known

    # -- values ---------------------------------------------------------------------------------
    def text(self, s: str) -> str:
        """``s`` without JWTs, and, when it holds JSON or key/value text, without secret keys' values."""
        out = _JWT.sub(REDACTED, s) if "eyJ" in s else s
        if "\\u" not in out:  # a JSON escape could spell a key in any way
            low = out.lower()
            for stem in self._stems:
                if stem in low:
                    break
            else:
                return out
        head = out.lstrip()[:1]
        if head in ("{", "["):
            try:
                value = json.loads(out)
            except (ValueError, RecursionError):
                pass
            else:
                redacted = self.value(value)
                if redacted is value:
                    return out
                return json.dumps(redacted, separators=(",", ":"), ensure_ascii=False)
        out = self._json_pair.sub(rf'\1"{REDACTED}"', out)
        return self._query_pair.sub(rf"\1{REDACTED}", out)

    def bytes(self, b: bytes) -> bytes:
        """Message data: searched as UTF-8 text when it is text, for JWTs when it is binary."""
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            if b"eyJ" not in b:
                return b
            out_b = _JWT_BYTES.sub(REDACTED.encode("ascii"), b)
            return b if out_b == b else out_b
        out = self.text(s)
        return b if out == s else out.encode("utf-8")

    def value(self, v: Any) -> Any:
        """A JSON-like value (or a recording event) without secrets; ``v`` itself when nothing changed."""
        t = type(v)
        if t is str:
            out = self.text(v)
            return v if out == v else out
        if t is dict:
            return self._dict(v)
        if t is int or t is float or t is bool or v is None:
            return v
        if t is list or t is tuple:
            items = [self.value(x) for x in v]
            return v if all(a is b for a, b in zip(items, v)) else t(items)
        if t is bytes:
            redacted = self.bytes(v)
            return v if redacted == v else redacted
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return self._record(v)
        if isinstance(v, Sequence) and not isinstance(v, (str, bytes, bytearray)):  # MessageBatch
            items = [self.value(x) for x in v]
            return v if all(a is b for a, b in zip(items, v)) else tuple(items)
        return v

    def _dict(self, d: dict[Any, Any]) -> dict[Any, Any]:
        out: dict[Any, Any] | None = None
        for k, v in d.items():
            if type(k) is str and self.is_secret_key(k):
                new_v: Any = REDACTED if v not in (None, "") else v
            elif k == "data" and type(v) is str:
                new_v = self._base64(v)
            else:
                new_v = self.value(v)
            new_k = _JWT.sub(REDACTED, k) if type(k) is str and "eyJ" in k else k  # a map keyed by tokens
            if out is None and (new_v is not v or new_k is not k):
                out = {}
                for k0, v0 in d.items():  # copy what came before unchanged
                    if k0 is k:
                        break
                    out[k0] = v0
            if out is not None:
                out[new_k] = new_v
        return d if out is None else out

    def _base64(self, s: str) -> str:
        """A wire message's ``data`` (standard base64): decoded, redacted, encoded again if it changed."""
        if len(s) % 4 == 0:
            try:
                raw = base64.b64decode(s, validate=True)
            except (binascii.Error, ValueError):
                return self.text(s)
            out = self.bytes(raw)
            return s if out is raw else base64.b64encode(out).decode("ascii")
        return self.text(s)

    def _record(self, r: Any) -> Any:
        if type(r) is Presence:  # identities, not payloads
            return r
        names = self._fields.get(type(r))
        if names is None:
            names = self._fields[type(r)] = tuple(f.name for f in dataclasses.fields(r))
        changes = {}
        for name in names:
            old = getattr(r, name)
            if type(r) is Outcome and name == "snapshot" and old is not None:
                new: Any = None if self.bytes(old) != old else old  # an edited encoding would not decode
            else:
                new = self.value(old)
            if new is not old:
                changes[name] = new
        return dataclasses.replace(r, **changes) if changes else r

    def event(self, e: Any) -> Any:
        """A recording event (a handler call, a crash marker, a wire event) without secrets."""
        return self._record(e)

    # -- HTTP -----------------------------------------------------------------------------------
    def headers(self, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Request headers as a dict (repeated names joined with ``, ``), credential headers redacted."""
        out: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            value = REDACTED if key in SECRET_HEADERS else self.text(value)
            out[key] = f"{out[key]}, {value}" if key in out and key not in SECRET_HEADERS else value
        return out
