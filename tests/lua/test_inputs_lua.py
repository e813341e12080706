"""A loop's messages reach Lua as the same tables, whichever way they are built: one call with every
message's fields (``api.messages``) or, for big batches, a call per message; compared with the tables built
one message at a time (``api.message`` into ``api.list``): the same fields, the same ``next()`` order, the
same ``#``; a sender's strings are kept per Presence object and stay right as they turn over."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from recorder.format import MatchMessage, Presence
from replay.lua import LuaHandler
from tests.common.paths import ROOT
from tests.lua.test_json_decode_lua import _SAME


@functools.cache
def _handler() -> tuple[LuaHandler, Any]:
    handler = LuaHandler(ROOT / "fixtures" / "handlers" / "arena_fixed.lua")
    return handler, handler._lua.execute(_SAME)


def _one_by_one(handler: LuaHandler, messages: list[MatchMessage]) -> Any:
    tables = [
        handler._mk_message(
            m.sender.user_id.encode(),
            m.sender.session_id.encode(),
            m.sender.username.encode(),
            m.sender.node.encode(),
            m.op_code,
            m.data,
            bool(m.reliable),
            m.receive_time_ms,
        )
        for m in messages
    ]
    return handler._mk_list(*tables)


def _messages(n: int) -> list[MatchMessage]:
    senders = [Presence(f"u{i}", f"s{i}", f"name{i}", "node" if i % 2 else "") for i in range(3)]
    return [
        MatchMessage(senders[i % 3], i % 4, None if i % 5 == 0 else b"x" * i, i % 3 != 0, 1000 + i) for i in range(n)
    ]


@pytest.mark.parametrize("count", [0, 1, 3, 17, 200, 201, 1200])
def test_messages_are_the_tables_built_one_by_one(count: int) -> None:
    handler, same = _handler()
    messages = _messages(count)
    built = handler._messages(messages)
    assert same(built, _one_by_one(handler, messages))
    assert len(built) == count
    if count:
        last = built[count]
        assert last[b"receive_time_ms"] == 1000 + count - 1 and last[b"sender"][b"username"] == b"name%d" % (
            (count - 1) % 3
        )


def test_senders_strings_stay_right_while_the_kept_ones_turn_over() -> None:
    handler, _ = _handler()
    for i in range(2100):  # more senders than are kept: the kept strings are dropped and made again
        p = Presence(f"u{i}", f"s{i}", f"name{i}")
        built = handler._messages([MatchMessage(p, 1, b""), MatchMessage(p, 2, b"")])
        assert built[1][b"sender"][b"user_id"] == built[2][b"sender"][b"user_id"] == b"u%d" % i
