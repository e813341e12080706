"""``nk.json_decode`` decoded in Lua (``replay/lua/json.lua``) gives the tables the host path
(``json.loads`` then ``LuaHandler._to_lua``) builds: the same values, the same number bits (``-0``), the same
key order for ``pairs`` (the same insertion order), the same ``#``; or it leaves the text to that path (nil),
which then decodes it or raises its error."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recorder.format import Header
from replay.lua import LuaHandler
from replay.lua._stdlib import LuaRaise
from replay.runtime import MatchDriver
from tests.common.paths import ROOT

HANDLERS = ROOT / "fixtures" / "handlers"

# the same value and the same layout: next() walks both in the same order, numbers with their sign of zero
_SAME = """
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return a == b and (a ~= 0 or 1 / a == 1 / b) end
  if type(a) ~= "table" then return a == b end
  if #a ~= #b then return false end
  local ka, va = next(a)
  local kb, vb = next(b)
  while ka ~= nil or kb ~= nil do
    if ka ~= kb or not same(va, vb) then return false end
    ka, va = next(a, ka)
    kb, vb = next(b, kb)
  end
  return true
end
return same
"""


@functools.cache
def _handler() -> tuple[LuaHandler, Any, Any]:
    handler = LuaHandler(HANDLERS / "arena_fixed.lua")
    return handler, handler._json_decode, handler._lua.execute(_SAME)


def _host(handler: LuaHandler, text: bytes) -> Any:
    """The host path, or the error it raises for text it refuses."""
    try:
        return handler._nk_json_decode(1, text)
    except (LuaRaise, OverflowError) as exc:
        return exc


def check(text: bytes, *, fast_expected: bool = False) -> None:
    handler, fast, same = _handler()
    mine = fast(text)
    reference = _host(handler, text)
    if mine is None:
        assert not fast_expected, f"left to the host path: {text!r}"
        return
    assert not isinstance(reference, Exception), f"decoded what the host path refuses: {text!r} ({reference!r})"
    assert same(mine, reference), f"different tables for {text!r}"


# text the Lua decoder must take: ASCII strings without escapes, JSON numbers, unique keys, nulls anywhere
_plain_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'))
_number = st.one_of(
    st.integers(-(10**18) + 1, 10**18 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 2.0**53 + 2, 1e300, -1e-310]),
)
_plain_json = st.recursive(
    st.one_of(st.none(), st.booleans(), _number, _plain_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.text(alphabet="abcXY_ []{}:,", max_size=4), inner, max_size=6),
    ),
    max_leaves=30,
)
_containers = st.one_of(st.lists(_plain_json, max_size=5), st.dictionaries(_plain_text, _plain_json, max_size=5))
_separators = st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", "\t:\r ")])


@settings(max_examples=250, deadline=None)
@given(_containers, _separators, st.sampled_from(["", " ", "\n\t "]))
@example([1, None, 3], (",", ":"), "")  # a hole: index 2 skipped, as _to_lua skips it
@example({"a": None, "b": 1}, (",", ":"), "")
@example({"k" * 40: [[], {}], "": -0.0}, (",", ":"), " ")
@example([-0.0, 0.0, 1e-7, 123456789012345678, -(10**17)], (",", ":"), "")
def test_the_lua_decoder_builds_the_host_paths_tables(value: Any, separators: tuple[str, str], pad: str) -> None:
    text = pad + json.dumps(value, separators=separators) + pad
    check(text.encode(), fast_expected=True)


_number_text = st.from_regex(r"\A-?(0|[1-9][0-9]{0,20}|0[0-9]+)(\.[0-9]{0,4})?([eE][-+]?[0-9]{0,3})?\Z")


@settings(max_examples=200, deadline=None)
@given(st.lists(_number_text, min_size=1, max_size=4))
@example(["-0"])
@example(["-0.0", "0e0", "1E+2", "1e400", "-1e-400"])
@example(["01"])
@example(["1."])
@example(["1e"])
@example(["1234567890123456789"])  # 19 digits: the host path (ints beyond int64 become floats there)
def test_number_texts_are_json_loads_numbers(numbers: list[str]) -> None:
    check(("[" + ",".join(numbers) + "]").encode())


_awkward = [
    b'{"a": 1, "a": 2}',  # duplicate keys: json.loads keeps the last value at the first position
    b'{"a": null, "b": 1, "a": 2}',
    b'{"a": null, "c": 1, "a": 2}',  # "a" and "c" share a hash slot: inserted c, a they would walk c, a
    b'{"a": 1, "a": null}',
    b'{"a": null, "a": null}',
    b'{"s": "tab\\there"}',  # escapes
    b'{"s": "\\u00e9"}',
    b'{"s": "\xc3\xa9"}',  # UTF-8
    b'{"s": "\xff"}',  # not UTF-8: Go's replacement character
    b'{"s": "a\x01b"}',  # a control character: json.loads refuses it
    b'{"s": "a\x7fb"}',
    b"[1, 2,]",
    b"[1 2]",
    b'{"a" 1}',
    b'{"a": 1,}',
    b"{1: 2}",
    b"[NaN]",
    b"[Infinity]",
    b"[tru]",
    b"[true] x",
    b"",
    b"   ",
    b"5",
    b'"text"',
    b"null",
    b"[" * 300 + b"]" * 300,  # deeper than the Lua decoder goes
    b"[" * 150 + b"]" * 150,
    b"[1" + b"0" * 400 + b"]",  # an int float() cannot take: the host path raises
    b'\xef\xbb\xbf{"a": 1}',  # a byte order mark
]


@pytest.mark.parametrize("text", _awkward)
def test_awkward_texts_are_the_host_paths(text: bytes) -> None:
    check(text)


@settings(max_examples=150, deadline=None)
@given(_containers, st.data())
def test_damaged_texts_are_refused_or_decoded_alike(value: Any, data: st.DataObject) -> None:
    text = json.dumps(value).encode()
    at = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from([b"", b",", b"]", b"}", b'"', b":", b"-", b"0", b" ", b"\\", b"x", b"\x80"]))
    cut = data.draw(st.booleans())
    check(text[:at] + junk + (b"" if cut else text[at:]))


def test_a_handler_sees_the_lua_decoders_tables_and_the_host_paths_errors(tmp_path: Path) -> None:
    source = """
local nk = require("nakama")
local M = {}
function M.match_init(ctx, params) return {}, 1, "" end
function M.match_join_attempt(ctx, d, tick, state, p, m) return state, true end
function M.match_join(ctx, d, tick, state, ps) return state end
function M.match_leave(ctx, d, tick, state, ps) return state end
function M.match_loop(ctx, d, tick, state, ms) return state end
function M.match_terminate(ctx, d, tick, state, g) return state end
function M.match_signal(ctx, d, tick, state, data)
  if data == "direct" then return state, tostring(nk.json_decode("")) end
  local ok, v = pcall(nk.json_decode, data)
  if not ok then return state, "error: " .. v end
  return state, nk.json_encode(v)
end
return M
"""
    path = tmp_path / "json_probe.lua"
    path.write_text(source)
    with MatchDriver(LuaHandler(path), Header(match_id="j.n", node="n", tick_rate=1)) as d:
        d.init({})
        assert d.signal('{"b": [1, null, 3], "a": {"x": -0}}').outcome.reply == '{"a":{"x":0},"b":[1,null,3]}'
        error = d.signal('{"b": [1,]}').outcome.reply
        assert error.startswith("error: ") and "not a valid JSON string" in error
        # errors are raised where wrap1 raised them, the function named as the caller called it
        error = d.signal("").outcome.reply
        assert error == f"error: {path}:12: bad argument #1 to (anonymous) (expects JSON string)"
        crash = d.signal("direct").crash
        assert crash is not None and crash.error == f"{path}:11: bad argument #1 to json_decode (expects JSON string)"
