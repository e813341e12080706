"""Go's ``encoding/json`` syntax error messages, for ``nk.json_decode`` in Lua handlers.

Nakama's ``nk.json_decode`` raises ``not a valid JSON string: <Go's error>``; a handler that crashes on a
client's malformed payload shows that text. ``go_json_error`` walks the input with the states of Go's
``encoding/json`` scanner and returns the message Go gives (``invalid character 'b' looking for beginning
of object key string``, ``unexpected end of JSON input``...), or None for valid JSON.
"""

from __future__ import annotations

__all__ = ["go_json_error", "quote_char"]

_WS = " \t\r\n"
_ESCAPES = 'bfnrt\\/"'
_HEX = "0123456789abcdefABCDEF"


def quote_char(c: str) -> str:
    """Go's ``quoteChar``."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    code = ord(c)
    if c == "\\":
        inner = "\\\\"
    elif c == "\n":
        inner = "\\n"
    elif c == "\t":
        inner = "\\t"
    elif c == "\r":
        inner = "\\r"
    elif code < 0x20 or code == 0x7F:
        inner = f"\\x{code:02x}"
    elif not c.isprintable():
        inner = f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    else:
        inner = c
    return f"'{inner}'"


class _Error(Exception):
    pass


def go_json_error(text: str) -> str | None:
    """Go's syntax error message for ``text``, or None when Go's scanner accepts it."""
    try:
        _scan(text)
    except _Error as exc:
        return str(exc)
    return None


def _bad(c: str, context: str) -> _Error:
    return _Error(f"invalid character {quote_char(c)} {context}")


def _scan(s: str) -> None:  # one state machine, kept in one place like Go's scanner
    stack: list[str] = []  # "key" (object key expected), "value" (object value), "array"
    i, n = 0, len(s)

    def skip_ws(j: int) -> int:
        while j < n and s[j] in _WS:
            j += 1
        return j

    def value(j: int) -> int:
        """Scan one value starting at j (whitespace allowed); return the index after it."""
        j = skip_ws(j)
        if j >= n:
            raise _Error("unexpected end of JSON input")
        c = s[j]
        if c == "{":
            j = skip_ws(j + 1)
            if j >= n:
                raise _Error("unexpected end of JSON input")
            if s[j] == "}":
                return j + 1
            while True:
                j = skip_ws(j)
                if j >= n:
                    raise _Error("unexpected end of JSON input")
                if s[j] != '"':
                    raise _bad(s[j], "looking for beginning of object key string")
                j = string(j + 1)
                j = skip_ws(j)
                if j >= n:
                    raise _Error("unexpected end of JSON input")
                if s[j] != ":":
                    raise _bad(s[j], "after object key")
                j = value(j + 1)
                j = skip_ws(j)
                if j >= n:
                    raise _Error("unexpected end of JSON input")
                if s[j] == ",":
                    j += 1
                    continue
                if s[j] == "}":
                    return j + 1
                raise _bad(s[j], "after object key:value pair")
        if c == "[":
            j = skip_ws(j + 1)
            if j >= n:
                raise _Error("unexpected end of JSON input")
            if s[j] == "]":
                return j + 1
            while True:
                j = value(j)
                j = skip_ws(j)
                if j >= n:
                    raise _Error("unexpected end of JSON input")
                if s[j] == ",":
                    j += 1
                    continue
                if s[j] == "]":
                    return j + 1
                raise _bad(s[j], "after array element")
        if c == '"':
            return string(j + 1)
        if c == "-" or (c.isdigit() and c.isascii()):
            return number(j)
        for word in ("true", "false", "null"):
            if c == word[0]:
                for k, expected in enumerate(word[1:], 1):
                    if j + k >= n:
                        raise _Error("unexpected end of JSON input")
                    if s[j + k] != expected:
                        raise _bad(s[j + k], f"in literal {word} (expecting {quote_char(expected)})")
                return j + len(word)
        raise _bad(c, "looking for beginning of value")

    def string(j: int) -> int:
        while j < n:
            c = s[j]
            if c == '"':
                return j + 1
            if c == "\\":
                j += 1
                if j >= n:
                    break
                e = s[j]
                if e == "u":
                    for k in range(1, 5):
                        if j + k >= n:
                            raise _Error("unexpected end of JSON input")
                        if s[j + k] not in _HEX:
                            raise _bad(s[j + k], "in \\u hexadecimal character escape")
                    j += 5
                    continue
                if e not in _ESCAPES:
                    raise _bad(e, "in string escape code")
                j += 1
                continue
            if ord(c) < 0x20:
                raise _bad(c, "in string literal")
            j += 1
        raise _Error("unexpected end of JSON input")

    def digits(j: int) -> int:
        while j < n and s[j] in "0123456789":
            j += 1
        return j

    def number(j: int) -> int:
        if s[j] == "-":
            j += 1
            if j >= n:
                raise _Error("unexpected end of JSON input")
            if s[j] not in "0123456789":
                raise _bad(s[j], "in numeric literal")
        j = j + 1 if s[j] == "0" else digits(j)
        if j < n and s[j] == ".":
            j += 1
            if j >= n:
                raise _Error("unexpected end of JSON input")
            if s[j] not in "0123456789":
                raise _bad(s[j], "after decimal point in numeric literal")
            j = digits(j)
        if j < n and s[j] in "eE":
            j += 1
            if j < n and s[j] in "+-":
                j += 1
            if j >= n:
                raise _Error("unexpected end of JSON input")
            if s[j] not in "0123456789":
                raise _bad(s[j], "in exponent of numeric literal")
            j = digits(j)
        return j

    del stack
    i = value(i)
    i = skip_ws(i)
    if i < n:
        raise _bad(s[i], "after top-level value")
