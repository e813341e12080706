"""The ``nk`` functions of Nakama's Lua ``nakama`` module, bound to one ``LuaHandler``.

``NkBinding`` is the half of ``LuaHandler`` the Lua side reaches through ``require("nakama")``: each
``_nk_*`` method checks its arguments as Nakama's ``runtime_lua_nakama.go`` does (same order, same wording),
converts Lua values (``replay.lua._convert``) and asks the runtime's deterministic ``Nk`` for anything that
depends on time, randomness, storage or the network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid as _uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import lupa.luajit21 as _lupa

from replay.errors import StorageRejected
from replay.gocompat import _json as gojson
from replay.gocompat._decode import GoDecodeError, go_base64_decode, go_hex_decode
from replay.gocompat._json_errors import go_json_error
from replay.lua._convert import (
    as_bytes,
    as_text,
    check_int,
    check_string,
    check_table,
    int_fields,
    is_uuid,
    lua_to_plain,
    opt_bool,
)
from replay.lua._stdlib import LuaArgError, LuaRaise, unix_from_fields

if TYPE_CHECKING:
    from replay.runtime._nk import Nk

__all__ = ["NkBinding"]


class NkBinding:
    """The ``nk`` functions of one Lua handler (a part of ``LuaHandler``, which provides the attributes)."""

    _nk: Nk  # the runtime's deterministic Nk while a callback runs
    _localcache: dict[bytes, Any]
    _pointer_text: Any
    _new_table: Any
    _to_lua: Any

    def _nk_tables(self) -> tuple[dict[bytes, Any], dict[bytes, Any], dict[bytes, Any]]:
        """The host functions by how many arguments the Lua side passes on (1, 0, 3): ``prelude.lua``'s
        ``nk1``, ``nk0`` and ``nk3`` tables."""
        nk1 = {
            b"time": self._nk_time,
            b"uuid_v4": self._nk_uuid_v4,
            b"json_encode": self._nk_json_encode,
            b"json_decode": self._nk_json_decode,
            b"base64_encode": self._coder("base64_encode", base64.b64encode, True),
            b"base64_decode": self._nk_base64_decode("base64 string", False, True),
            b"base64url_encode": self._coder("base64url_encode", base64.urlsafe_b64encode, True),
            b"base64url_decode": self._nk_base64_decode("base64 url string", True, False),
            b"base16_encode": self._coder("base16_encode", lambda raw: raw.hex().encode(), False),
            b"base16_decode": self._nk_base16_decode,
            b"md5_hash": self._hasher("md5_hash", hashlib.md5),
            b"sha256_hash": self._hasher("sha256_hash", hashlib.sha256),
            b"hmac_sha256_hash": self._nk_hmac_sha256_hash,
            b"aes128_encrypt": self._aes(16, True),
            b"aes128_decrypt": self._aes(16, False),
            b"aes256_encrypt": self._aes(32, True),
            b"aes256_decrypt": self._aes(32, False),
            b"rsa_sha256_hash": self._nk_rsa_sha256_hash,
            b"bcrypt_hash": self._nk_bcrypt_hash,
            b"bcrypt_compare": self._nk_bcrypt_compare,
            b"uuid_bytes_to_string": self._nk_uuid_bytes_to_string,
            b"uuid_string_to_bytes": self._nk_uuid_string_to_bytes,
            b"secure_random_bytes": self._nk_secure_random_bytes,
            b"logger_debug": self._logger("logger_debug", "debug"),
            b"logger_info": self._logger("logger_info", "info"),
            b"logger_warn": self._logger("logger_warn", "warn"),
            b"logger_error": self._logger("logger_error", "error"),
            b"storage_read": self._nk_storage_read,
            b"storage_write": self._nk_storage_write,
            b"localcache_get": self._nk_localcache_get,
        }
        nk0 = {
            b"storage_delete": self._nk_storage_delete,
            b"localcache_put": self._nk_localcache_put,
            b"localcache_delete": self._nk_localcache_delete,
            b"localcache_clear": self._nk_localcache_clear,
        }
        # registrations and run_once only matter to a running server: accepted and ignored in a replay
        for name in (
            "register_rpc",
            "register_req_before",
            "register_req_after",
            "register_rt_before",
            "register_rt_after",
            "register_matchmaker_matched",
            "register_tournament_end",
            "register_tournament_reset",
            "register_leaderboard_reset",
            "register_shutdown",
            "register_storage_index",
            "register_storage_index_filter",
            "register_purchase_notification_apple",
            "register_subscription_notification_apple",
            "register_purchase_notification_google",
            "register_subscription_notification_google",
            "run_once",
        ):
            nk0[name.encode()] = self._ignored
        nk3 = {b"http_request": self._nk_http_request}
        return nk1, nk0, nk3

    def _ignored(self, n: int, *args: Any) -> None:
        return None

    def _nk_time(self, n: int, t: Any = None) -> int:
        if n == 0:
            return self._nk.time()
        check_table(t, 1)
        f = int_fields(t)
        secs = unix_from_fields(f("year", -1), f("month", -1), f("day", -1), f("hour", 12), f("min", 0), f("sec", 0))
        return secs * 1000 + f("msec", 0)

    def _nk_uuid_v4(self, n: int) -> bytes:
        return as_bytes(self._nk.uuid_v4())

    def _nk_json_encode(self, n: int, v: Any = None) -> bytes:
        if n == 0:
            raise LuaArgError(1, "value expected")
        try:
            return as_bytes(gojson.dumps(lua_to_plain(v, self._pointer_text)))
        except (ValueError, TypeError) as exc:
            text = str(exc)
            for py, go in (("-inf", "-Inf"), ("inf", "+Inf"), ("nan", "NaN")):
                if text.endswith(py):
                    text = text[: -len(py)] + go
                    break
            raise LuaRaise(f"error encoding to JSON: {text}") from None

    def _nk_json_decode(self, n: int, s: Any = None) -> Any:
        raw = check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects JSON string")
        text = raw.decode("utf-8", "nkreplay-go")
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            raise LuaRaise(f"not a valid JSON string: {go_json_error(text) or 'invalid JSON'}") from None
        return self._to_lua(value)

    def _coder(self, name: str, encode: Callable[[bytes], bytes], padded: bool) -> Any:
        def run(n: int, s: Any = None, padding: Any = None) -> bytes:
            raw = check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects string")
            out = encode(raw)
            if padded and not opt_bool(padding, 2, True):
                out = out.rstrip(b"=")
            return out

        return run

    def _nk_base64_decode(self, what: str, url: bool, pad_by_default: bool) -> Any:
        # Nakama pads the input when `padding` is true (base64_decode's default) or false (base64url_decode's
        # default: its flag means "the input is padded"), then decodes with the padded Go encoding
        def run(n: int, s: Any = None, padding: Any = None) -> bytes:
            raw = check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects string")
            if opt_bool(padding, 2, pad_by_default) == pad_by_default and len(raw) % 4:
                raw += b"=" * (4 - len(raw) % 4)
            try:
                return go_base64_decode(raw, url)
            except GoDecodeError as exc:
                raise LuaRaise(f"not a valid {what}: {exc}") from None

        return run

    def _nk_base16_decode(self, n: int, s: Any = None) -> bytes:
        raw = check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects string")
        try:
            return go_hex_decode(raw)
        except GoDecodeError as exc:
            raise LuaRaise(f"not a valid base16 string: {exc}") from None

    def _random_bytes(self, count: int) -> bytes:
        """``count`` bytes of Go's ``crypto/rand``: the recorded value (source ``random_bytes``), else derived."""
        value = self._nk.take("random_bytes", lambda: bytes(int(self._nk.random() * 256) for _ in range(count)))
        return bytes(value) if isinstance(value, (bytes, bytearray)) else as_bytes(str(value))

    def _aes(self, key_size: int, encrypt: bool) -> Any:
        """Nakama's ``aesEncrypt``/``aesDecrypt``: AES-CFB, the 16-byte IV first; encryption pads the input
        with spaces to a multiple of 4 and draws the IV from ``crypto/rand`` (here ``_random_bytes``)."""

        def run(n: int, s: Any = None, key: Any = None) -> bytes:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

            try:  # CFB moved to "decrepit" in cryptography 47 (Nakama still uses it)
                from cryptography.hazmat.decrepit.ciphers.modes import CFB
            except ImportError:
                from cryptography.hazmat.primitives.ciphers.modes import CFB

            raw = check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects string")
            k = check_string(key, 2)
            if len(k) != key_size:
                raise LuaArgError(2, f"expects key {key_size} bytes long")
            if encrypt:
                raw += b" " * (-len(raw) % 4)
                iv = self._random_bytes(16)
                enc = Cipher(algorithms.AES(k), CFB(iv)).encryptor()
                return iv + enc.update(raw) + enc.finalize()
            if len(raw) < 16:
                raise LuaRaise("input too short")
            dec = Cipher(algorithms.AES(k), CFB(raw[:16])).decryptor()
            return dec.update(raw[16:]) + dec.finalize()

        return run

    def _nk_rsa_sha256_hash(self, n: int, s: Any = None, key: Any = None) -> bytes:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        raw, k = check_string(s, 1), check_string(key, 2)
        if not raw:
            raise LuaArgError(1, "expects input string")
        if not k:
            raise LuaArgError(2, "expects key string")
        match = re.search(rb"-----BEGIN ([^-]+)-----\r?\n(.*?)-----END \1-----", k, re.S)
        if match is None:
            raise LuaRaise("could not parse private key: no valid blocks found")
        try:
            der = base64.b64decode(b"".join(line for line in match.group(2).split() if b":" not in line))
            private = serialization.load_der_private_key(der, None) if match.group(1) == b"RSA PRIVATE KEY" else None
        except ValueError:
            private = None
        if not isinstance(private, rsa.RSAPrivateKey):
            raise LuaRaise(
                "error parsing key: x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)"
            )
        return private.sign(raw, padding.PKCS1v15(), hashes.SHA256())  # PKCS#1 v1.5 is deterministic

    def _nk_bcrypt_hash(self, n: int, s: Any = None) -> bytes:
        import bcrypt

        raw = check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects string")
        if len(raw) > 72:
            raise LuaRaise("error hashing input: bcrypt: password length exceeds 72 bytes")
        # Go's bcrypt: version 2a, cost max(10, 13), a 16-byte salt from crypto/rand in bcrypt's base64
        salt = base64.b64encode(self._random_bytes(16)).translate(_BCRYPT_B64)[:22]
        return bcrypt.hashpw(raw, b"$2a$13$" + salt)

    def _nk_bcrypt_compare(self, n: int, hashed: Any = None, plain: Any = None) -> bool:
        import bcrypt

        h, p = check_string(hashed, 1), check_string(plain, 2)
        if not h:
            raise LuaArgError(1, "expects string")
        if not p:
            raise LuaArgError(2, "expects string")
        try:
            return bool(bcrypt.checkpw(p[:72], h))
        except ValueError:
            return False  # Go: ErrHashTooShort / ErrMismatchedHashAndPassword answer false

    def _nk_uuid_bytes_to_string(self, n: int, s: Any = None) -> bytes:
        raw = check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects a UUID byte string")
        if len(raw) != 16:
            raise LuaArgError(1, "not a valid UUID byte string")
        return as_bytes(str(_uuid.UUID(bytes=raw)))

    def _nk_uuid_string_to_bytes(self, n: int, s: Any = None) -> bytes:
        raw = check_string(s, 1)
        if not raw:
            raise LuaArgError(1, "expects a UUID string")
        try:
            return _uuid.UUID(raw.decode("ascii")).bytes
        except (ValueError, UnicodeDecodeError):
            raise LuaArgError(1, "not a valid UUID string") from None

    def _nk_secure_random_bytes(self, n: int, count: Any = None) -> bytes:
        c = check_int(count, 1)
        if c < 1 or c > 1000:
            raise LuaArgError(1, "count must be 1-1000")
        return self._random_bytes(c)

    def _hasher(self, name: str, algorithm: Any) -> Any:
        def run(n: int, s: Any = None) -> bytes:
            raw = check_string(s, 1)
            if not raw:
                raise LuaArgError(1, "expects input string")
            digest: str = algorithm(raw).hexdigest()
            return digest.encode()

        return run

    def _nk_hmac_sha256_hash(self, n: int, s: Any = None, key: Any = None) -> bytes:
        raw, k = check_string(s, 1), check_string(key, 2)
        if not raw:
            raise LuaArgError(1, "expects input string")
        if not k:
            raise LuaArgError(2, "expects key string")
        return hmac.new(k, raw, hashlib.sha256).digest()

    def _logger(self, name: str, level: str) -> Any:
        def run(n: int, msg: Any = None) -> bytes:
            raw = check_string(msg, 1)
            if not raw:
                raise LuaArgError(1, "expects message string")
            getattr(self._nk, f"logger_{level}")(as_text(raw))
            return raw

        return run

    def _object_ids(self, ids: Any, *, delete: bool = False) -> list[dict[str, Any]]:
        """Object ids as ``storageRead``/``storageDelete`` check them, in their order and wording."""
        check_table(ids, 1)
        out = []
        for entry in ids.values():
            if _lupa.lua_type(entry) != "table":
                raise LuaArgError(1, "expects a valid set of object IDs" if delete else "expects a valid set of keys")
            fields = _storage_fields(
                entry, ("collection", "key", "user_id", "version") if delete else ("collection", "key", "user_id")
            )
            if "collection" not in fields:
                raise LuaArgError(1, "expects collection to be supplied")
            if "key" not in fields:
                raise LuaArgError(1, "expects key to be supplied")
            out.append({"user_id": "", **fields})
        return out

    def _nk_storage_read(self, n: int, ids: Any = None) -> Any:
        check_table(ids, 1)
        if len(ids) == 0:  # Nakama: an empty array part reads nothing
            return self._new_table()
        objects = self._nk.storage_read(self._object_ids(ids))
        # a stored JSON null reads back as an empty table
        objects = [dict(o, value={}) if isinstance(o, dict) and o.get("value") is None else o for o in objects]
        return self._to_lua(objects)

    def _nk_storage_write(self, n: int, objects: Any = None) -> Any:
        check_table(objects, 1)
        if len(objects) == 0:
            return self._new_table()
        writes = []
        for entry in objects.values():
            if _lupa.lua_type(entry) != "table":
                raise LuaArgError(1, "expects a valid set of data")
            fields = _storage_fields(entry, _WRITE_FIELDS, self._pointer_text)
            for name in ("collection", "key", "value"):
                if name not in fields:
                    raise LuaArgError(1, f"expects {name} to be supplied")
            writes.append(fields)
        try:
            return self._to_lua(self._nk.storage_write(writes))
        except StorageRejected as exc:
            raise LuaRaise(f"failed to write storage objects: {exc}") from None

    def _nk_storage_delete(self, n: int, ids: Any = None) -> None:
        check_table(ids, 1)
        if len(ids) == 0:
            return
        try:
            self._nk.storage_delete(self._object_ids(ids, delete=True))
        except StorageRejected as exc:
            raise LuaRaise(f"failed to remove storage: {exc}") from None

    def _nk_http_request(self, n: int, *args: Any) -> tuple[Any, Any, Any]:
        url = as_text(check_string(args[0] if args else None, 1))
        method = as_text(check_string(args[1] if len(args) > 1 else None, 2)).upper()
        check_table(args[2] if len(args) > 2 else None, 3)
        if len(args) > 3 and args[3] is not None:
            check_string(args[3], 4)
        if not url:
            raise LuaArgError(1, "expects URL string")
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise LuaArgError(2, "expects method to be one of: 'get', 'post', 'put', 'patch', 'delete', 'head'")
        response = self._nk.http_request(url, method)
        if isinstance(response, dict):
            return (
                response.get("code"),
                self._to_lua(response.get("headers") or {}),
                self._to_lua(response.get("body", "")),
            )
        code, headers, body = response
        return code, self._to_lua(headers), self._to_lua(body)

    def _nk_localcache_get(self, n: int, key: Any = None, default: Any = None) -> Any:
        return self._localcache.get(_cache_key(key), default)

    def _nk_localcache_put(self, n: int, key: Any = None, value: Any = None, ttl: Any = None) -> None:
        k = _cache_key(key)
        if ttl is not None and check_int(ttl, 3) < 0:
            raise LuaArgError(3, "ttl must be 0 or more")
        self._localcache[k] = value

    def _nk_localcache_delete(self, n: int, key: Any = None) -> None:
        self._localcache.pop(_cache_key(key), None)

    def _nk_localcache_clear(self, n: int) -> None:
        self._localcache.clear()


def _cache_key(key: Any) -> bytes:
    k = check_string(key, 1)
    if not k:
        raise LuaArgError(1, "expects key string")
    return k


#: storage_write's fields and the Lua type each must have (``tableToStorageOpWrites``)
_WRITE_FIELDS = ("collection", "key", "user_id", "value", "version", "permission_read", "permission_write")


def _storage_fields(entry: Any, names: tuple[str, ...], pointer: Any = None) -> dict[str, Any]:
    """One storage object table checked field by field with Nakama's wording; the fields present."""
    out: dict[str, Any] = {}
    for name in names:
        v = entry[name.encode()]
        if v is None:
            continue
        if name in ("permission_read", "permission_write"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise LuaArgError(1, f"expects {name} to be number")
            out[name] = check_int(v, 1)
            continue
        if name == "value":
            if _lupa.lua_type(v) != "table":
                raise LuaArgError(1, "expects value to be table")
            plain = lua_to_plain(v, pointer)
            # RuntimeLuaConvertLuaTable: a table with an array part is not a map, so Nakama stores JSON null
            out[name] = plain if isinstance(plain, dict) else "null"
            continue
        if not isinstance(v, bytes):
            raise LuaArgError(1, f"expects {name} to be string")
        text = as_text(v)
        if name == "user_id":
            if not is_uuid(v):
                raise LuaArgError(1, "expects user_id to be a valid ID")
        elif not text:
            raise LuaArgError(1, f"expects {name} to be a non-empty string")
        out[name] = text
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN and Infinity; Go does not


_BCRYPT_B64 = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
)
