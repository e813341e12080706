"""playback's player fed literals: the client's frames in, pongs, cids and closes out (replay.realtime._playback)."""

from __future__ import annotations

from recorder.wire import protocol as P
from replay.realtime import CloseSocket, ScriptPlayer, SendEnvelope
from replay.realtime._playback import SocketScript, Step

JOIN_REPLY = Step(0.1, {"cid": "7", "match": {"match_id": "m.n"}}, "match_join")
BROADCAST = Step(0.2, {"match_data": {"match_id": "m.n", "op_code": "1"}})


def test_a_reply_waits_for_its_request_and_takes_the_clients_cid() -> None:
    player = ScriptPlayer(SocketScript("ws1", steps=(JOIN_REPLY, BROADCAST)))
    assert player.ready(BROADCAST) and not player.ready(JOIN_REPLY)
    player.receive('{"cid": "a1", "rpc": {"id": "x"}}')  # another kind: does not open the gate
    assert not player.ready(JOIN_REPLY)
    player.receive('{"cid": "a2", "match_join": {"match_id": "00000000-0000-4000-8000-000000000001.n"}}')
    assert player.ready(JOIN_REPLY)
    assert player.outgoing(JOIN_REPLY) == ({"cid": "a2", "match": {"match_id": "m.n"}}, True)
    assert player.outgoing(JOIN_REPLY) == (JOIN_REPLY.envelope, False)  # that request is used up: as recorded
    assert player.outgoing(BROADCAST) == (BROADCAST.envelope, True)
    assert player.take() == []


def test_pings_are_answered_live_and_malformed_input_closes() -> None:
    player = ScriptPlayer(SocketScript("ws1"))
    player.receive('{"cid": "9", "ping": {}}')
    assert player.take() == [SendEnvelope("ws1", P.Envelope(P.Pong(), "9"))]
    player.receive('{"match_data_send": {"op_code": "x"}}')
    assert player.take() == [CloseSocket("ws1", 1000, "received malformed payload")]
    assert player.closed and player.violation is not None
    player.receive('{"cid": "10", "ping": {}}')  # closed: nothing more
    assert player.take() == []


def test_a_binary_frame_is_malformed_input() -> None:
    player = ScriptPlayer(SocketScript("ws1"))
    player.receive(b"\x00")
    assert player.take() == [CloseSocket("ws1", 1000, "received malformed payload")]
