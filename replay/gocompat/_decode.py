"""Go's ``encoding/base64`` and ``encoding/hex`` decoders with their error texts (``illegal base64 data at input
byte 4``, ``encoding/hex: invalid byte: U+0067 'g'``), as Nakama's ``nk.base64_decode``/``nk.base16_decode``
raise them in every runtime (Lua now, JavaScript next)."""

from __future__ import annotations

__all__ = ["GoDecodeError", "go_base64_decode", "go_hex_decode"]

_B64_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_MAPS = {alphabet: {ord(c): i for i, c in enumerate(alphabet)} for alphabet in (_B64_STD, _B64_URL)}


class GoDecodeError(ValueError):
    """The error Go's decoder returns; ``str()`` is Go's text."""


def go_base64_decode(data: bytes, url: bool = False) -> bytes:
    """``base64.StdEncoding.DecodeString`` (``URLEncoding`` when ``url``): padded, ``\\r``/``\\n`` skipped,
    Go's ``illegal base64 data at input byte N`` for the first offence (Go's offsets)."""
    table = _B64_MAPS[_B64_URL if url else _B64_STD]
    out = bytearray()
    n, si = len(data), 0
    while True:
        quantum: list[int] = []
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                raise GoDecodeError(f"illegal base64 data at input byte {si - j}")
            c = data[si]
            si += 1
            v = table.get(c)
            if v is not None:
                quantum.append(v)
                j += 1
                continue
            if c in (10, 13):
                continue
            if c != 61 or j < 2:  # not "=", or padding too early
                raise GoDecodeError(f"illegal base64 data at input byte {si - 1}")
            if j == 2:  # "==" expected
                while si < n and data[si] in (10, 13):
                    si += 1
                if si == n:
                    raise GoDecodeError(f"illegal base64 data at input byte {n}")
                if data[si] != 61:
                    raise GoDecodeError(f"illegal base64 data at input byte {si - 1}")
                si += 1
            while si < n and data[si] in (10, 13):
                si += 1
            if si < n:
                raise GoDecodeError(f"illegal base64 data at input byte {si}")
            break
        bits = 0
        for v in quantum:
            bits = bits << 6 | v
        bits <<= 6 * (4 - len(quantum))
        out += bits.to_bytes(3, "big")[: len(quantum) - 1]
        if len(quantum) < 4:
            return bytes(out)


def _go_rune_text(b: int) -> str:
    """``fmt.Sprintf("%#U", rune(b))``: ``U+0067 'g'``, the quoted character only when printable."""
    c = chr(b)
    return f"U+{b:04X} '{c}'" if c.isprintable() else f"U+{b:04X}"


def go_hex_decode(data: bytes) -> bytes:
    """``hex.DecodeString``: Go's ``encoding/hex: invalid byte: U+0067 'g'`` or ``odd length hex string``."""
    digits = b"0123456789abcdefABCDEF"
    even = len(data) - len(data) % 2
    for b in data[:even]:
        if b not in digits:
            raise GoDecodeError(f"encoding/hex: invalid byte: {_go_rune_text(b)}")
    if even != len(data):
        if data[-1] not in digits:
            raise GoDecodeError(f"encoding/hex: invalid byte: {_go_rune_text(data[-1])}")
        raise GoDecodeError("encoding/hex: odd length hex string")
    return bytes.fromhex(data.decode("ascii"))
