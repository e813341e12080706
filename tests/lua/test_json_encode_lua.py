"""``nk.json_encode`` written in Lua (``replay/lua/json.lua``) gives the host path's text
(``gojson.dumps(lua_to_plain(v))``, Go's encoding/json) byte for byte, or leaves the value to it (nil)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from replay.lua import LuaHandler
from replay.lua._stdlib import LuaRaise
from tests.common.paths import ROOT


@functools.cache
def _handler() -> LuaHandler:
    handler = LuaHandler(ROOT / "fixtures" / "handlers" / "arena_fixed.lua")
    handler._bind(handler._nk, None)  # as a callback would: tells json.lua the collation
    return handler


def _both(source: str) -> tuple[bytes | None, bytes | Exception]:
    handler = _handler()
    value = handler._lua.execute("return " + source)
    try:
        reference: bytes | Exception = handler._nk_json_encode(1, value)
    except LuaRaise as exc:
        reference = exc
    return handler._json_encode(value), reference


# values the Lua writer must take: safe ASCII texts, numbers with a 15-digit text, arrays, string-keyed maps
_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\<>&'), max_size=8)
_number = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.integers(-(10**12), 10**12).filter(lambda i: i % 1000 != 0).map(lambda i: repr(i / 1000)),  # round3 values
)
_leaf = st.one_of(
    _text.map(lambda s: "'" + s.replace("'", "\\'") + "'"), _number.map(str), st.sampled_from(["true", "false"])
)
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(lambda xs: "{" + ", ".join(xs) + "}"),
        st.dictionaries(_text, inner, max_size=5).map(
            lambda d: "{" + ", ".join(f"['{k.replace(chr(39), chr(92) + chr(39))}'] = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=250, deadline=None)
@given(_value)
@example("{1, nil, 3, [5] = 'x', a = 1}")  # holes as null, other keys dropped
@example("{[2.0] = 'two'}")
@example("{-0.0, 123456.789, 1e-4, -1e-4, 999999999999999, 0.5, 2^40 + 0.5}")
@example("{b = {}, a = {{}, {}}, ['a b'] = 'x', [''] = 1, Z = 2, _ = 3}")
def test_the_lua_writer_gives_the_host_paths_text(source: str) -> None:
    mine, reference = _both(source)
    assert mine is not None and mine == reference


_AWKWARD = [
    "0/0",
    "1/0",
    "-1/0",
    "1e15",
    "-1e15",
    "2^53",
    "1e-5",
    "0.1 + 0.2",  # 17 digits: Go's shortest text, left to the host path
    "1/3",
    "2^52 + 0.25",
    "'<tag>'",
    "'a & b'",
    "'quote \"'",
    "'back\\\\slash'",
    "'tab\\t'",
    "'\\195\\169'",
    "'\\255'",
    "'\\127'",
    "{[1.5] = 1}",
    "{[true] = 1}",
    "{[0] = 'zero'}",
    "{[-1] = 1}",
    "{[2^26] = 1}",
    "{['\\255'] = 1}",
    "{['<'] = 1}",
    "{f = print}",
    "print",
    "setmetatable({1, nil, 3}, {__index = function() return 1 end})",
    "(function() local t = {} local c = t for i = 1, 300 do c.x = {} c = c.x end return t end)()",
    "(function() local t = {} t.self = t return t end)()",
    "nil",
    "{}",
]


@pytest.mark.parametrize("source", _AWKWARD)
def test_awkward_values_are_the_host_paths(source: str) -> None:
    mine, reference = _both(source)
    assert mine is None or mine == reference
