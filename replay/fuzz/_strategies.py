"""Hypothesis strategies for Nakama matches: client actions, payloads per op code and client version.

Use them in your own tests::

    from hypothesis import given
    from replay.fuzz._actions import play
    from replay.fuzz._strategies import FuzzProfile, by_version, client_actions

    ARENA = FuzzProfile(
        payloads={
            1: by_version({"1.3": {"dx": int, "dy": int}, "*": {"dx": int, "dy": int, "aim?": (float, float)}}),
            2: {"text": str},
            3: None,                       # no data
        },
        client_versions=("1.4.0", "1.3.2", "2.0.0"),
    )

    @given(client_actions(ARENA))
    def test_arena_survives(actions):
        calls, player = play("arena.py", actions)
        assert player.runtime.crash is None

**Client actions** (``replay.fuzz._actions``) are what clients and the server do: connect (with metadata
carrying the client version, sometimes a duplicate join request), leave (reason 3: ``match_leave`` or a
kick; reason 4: the socket closed; the reasons Nakama 3.40 gives a joined session's leave), reconnect (a
user connecting again while an old session is still in the match, i.e. before its leave is processed;
or after it), send from the latest or the oldest session (so a message can come from a session that
is about to leave), bursts past the input queue, ticks, signals (``signals`` lists data that makes the
handler relabel the match, for instance) and server shutdown. ``MatchPlayer`` turns them into the call
stream Nakama would make, so join-attempt/join order, tick numbering and queue drops are always real.

**Payloads** are given per op code as a *shape* (compiled by ``json_shape``):

- a hypothesis strategy: its values are the data as they are when they are ``bytes``, ``str`` or
  ``None``, otherwise JSON-encoded;
- ``dict``: a JSON object; a key ending in ``?`` is optional; values are shapes;
- ``[shape]``: a JSON array of up to 4 items; ``(shape, shape, ...)``: an array of fixed length;
- the types ``int``, ``float`` (finite), ``bool``, ``str`` inside JSON; at the top level ``bytes`` means
  arbitrary bytes, ``str`` arbitrary text, ``None`` no data;
- any other literal: exactly that value;
- ``by_version({"1.3": shape, "*": shape})``: the shape for the sender's client version (the longest
  matching dotted prefix; ``"*"`` for the rest; a version matching nothing sends arbitrary bytes).

So version skew is generated: a 1.3 client sends 1.3 shapes while a 1.4 client sends 1.4 ones, in one
match. Without a profile (``DEFAULT_PROFILE``), op codes 1 to 8 carry a mix of JSON values and
arbitrary bytes.

**Profiles from a module** (``load_profile``, ``nakama-replay fuzz --payloads MODULE``): a Python file or
module defining ``PROFILE = FuzzProfile(...)``, or module-level ``PAYLOADS`` (required), and optionally
``CLIENT_VERSIONS``, ``PARAMS`` (match init params), ``SIGNALS``, ``INVARIANTS``, ``MAX_USERS``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from recorder.format import Call, Header, PresenceReason
from replay.errors import HandlerLoadError, ProfileError
from replay.fuzz._actions import play
from replay.realtime._actions import Action, Burst, Connect, Leave, Send, Signal, Terminate, Tick, Who

__all__ = [
    "ACTION_KINDS",
    "DEFAULT_PROFILE",
    "FuzzProfile",
    "by_version",
    "call_streams",
    "client_actions",
    "json_shape",
    "load_profile",
    "action_of",
    "next_action",
    "payload_strategy",
    "ClientModel",
]

#: The leave reasons of a session that completed its join in Nakama 3.40 (tracker.go: ``Untrack`` sets 3,
#: a socket's ``Close`` 4). Reason 0 comes only from an expired join marker (a session gone between its
#: accepted join attempt and its tracking, cleared every 30 s of ticks), which is not generated.
LEAVE_REASONS = (PresenceReason.DISCONNECT, PresenceReason.LEAVE)
_JSON_NUMBERS = st.integers(-(2**31), 2**31 - 1)


class by_version:  # reads like a function in a profile
    """Shapes per client version: keys are dotted version prefixes (``"1.3"`` matches ``1.3.2``, not
    ``1.30``) or ``"*"``."""

    __slots__ = ("shapes",)

    def __init__(self, shapes: Mapping[str, Any]) -> None:
        if not shapes:
            raise ProfileError("by_version", "", "needs at least one version prefix or '*'")
        self.shapes = dict(shapes)

    def shape_for(self, version: str | None) -> Any:
        """The shape for ``version``; ``bytes`` (arbitrary bytes) when nothing matches."""
        best, best_len = None, -1
        if version is not None:
            parts = version.split(".")
            for key in self.shapes:
                if key == "*":
                    continue
                kp = key.split(".")
                if parts[: len(kp)] == kp and len(kp) > best_len:
                    best, best_len = key, len(kp)
        if best is not None:
            return self.shapes[best]
        return self.shapes.get("*", bytes)

    def __repr__(self) -> str:
        return f"by_version({self.shapes!r})"


def json_shape(shape: Any, where: str = "shape") -> SearchStrategy[Any]:
    """A strategy of JSON values from a shape (see the module docstring)."""
    if isinstance(shape, SearchStrategy):
        return shape
    if shape is None:
        return st.none()
    if shape is bool:
        return st.booleans()
    if shape is int:
        return _JSON_NUMBERS
    if shape is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if shape is str:
        return st.text(max_size=24)
    if isinstance(shape, dict):
        required, optional = {}, {}
        for k, v in shape.items():
            if not isinstance(k, str):
                raise ProfileError(where, str(k), "JSON object keys are strings")
            if k.endswith("?"):
                optional[k[:-1]] = json_shape(v, f"{where}.{k[:-1]}")
            else:
                required[k] = json_shape(v, f"{where}.{k}")
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ProfileError(where, "", "a list shape has exactly one item shape: [shape]")
        return st.lists(json_shape(shape[0], f"{where}[]"), max_size=4)
    if isinstance(shape, tuple):
        return st.tuples(*(json_shape(s, f"{where}[{i}]") for i, s in enumerate(shape))).map(list)
    if isinstance(shape, (str, int, float, bool)):
        return st.just(shape)
    raise ProfileError(where, "", f"not a shape: {shape!r} (a strategy, dict, [item], tuple, type or literal)")


def _encode(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def payload_strategy(shape: Any, where: str = "payload") -> SearchStrategy[bytes | None]:
    """Message data from a top-level shape: ``bytes`` arbitrary bytes, ``str`` arbitrary text, ``None``
    no data, anything else ``json_shape`` encoded as JSON."""
    if shape is bytes:
        return st.binary(max_size=48)
    if shape is str:
        return st.text(max_size=48).map(_encode)
    if shape is None:
        return st.none()
    return json_shape(shape, where).map(_encode)


_ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@dataclass
class FuzzProfile:
    """What the clients of a match look like: op codes and payload shapes, client versions, init
    params, signal data, invariants on the state, number of users, input queue size."""

    payloads: Mapping[int, Any]
    client_versions: Sequence[str | None] = (None,)
    params: Mapping[str, Any] = field(default_factory=dict)
    signals: Sequence[str] = ()
    invariants: Sequence[Callable[[Any], Any]] = ()
    max_users: int = 4
    queue_size: int = 128
    source: str = "<profile>"
    _cache: dict[tuple[int, str | None], SearchStrategy[bytes | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.payloads:
            raise ProfileError(self.source, "PAYLOADS", "needs at least one op code")
        for op in self.payloads:
            if isinstance(op, bool) or not isinstance(op, int):
                raise ProfileError(self.source, f"PAYLOADS[{op!r}]", "op codes are integers")
        if not self.client_versions:
            raise ProfileError(self.source, "CLIENT_VERSIONS", "needs at least one version (None: no metadata)")
        if not 1 <= self.max_users <= 8:
            raise ProfileError(self.source, "MAX_USERS", f"must be 1..8, got {self.max_users}")
        for op in self.payloads:  # compile every shape now: a bad shape fails before the search starts
            for version in self.client_versions:
                self.payload_for(op, version)

    @property
    def op_codes(self) -> list[int]:
        return sorted(self.payloads)

    def payload_for(self, op_code: int, version: str | None) -> SearchStrategy[bytes | None]:
        key = (op_code, version)
        strategy = self._cache.get(key)
        if strategy is None:
            shape = self.payloads[op_code]
            if isinstance(shape, by_version):
                shape = shape.shape_for(version)
            strategy = payload_strategy(shape, f"{self.source}: PAYLOADS[{op_code}]")
            self._cache[key] = strategy
        return strategy

    def metadata(self, version: str | None) -> dict[str, str]:
        return {} if version is None else {"client_version": version}


#: For a handler whose protocol nobody described: JSON values or arbitrary bytes on op codes 1..8.
DEFAULT_PROFILE = FuzzProfile(
    payloads={op: st.one_of(_ANY_JSON, st.binary(max_size=32)) for op in range(1, 9)},
    client_versions=(None, "1.0.0"),
    source="<default profile>",
)


class ClientModel:
    """What the generator believes about the match (it cannot know the handler's verdicts): which
    users have sessions in it, with which client versions. It only steers choices toward sensible
    actions; ``MatchPlayer`` decides what really happens."""

    def __init__(self, profile: FuzzProfile, max_users: int | None = None) -> None:
        self.profile = profile
        self.max_users = max_users or profile.max_users
        self.sessions: dict[int, list[str | None]] = {}  # user -> versions of their live sessions
        self.stopped = False

    def connected(self) -> list[int]:
        return sorted(u for u, s in self.sessions.items() if s)

    def version(self, user: int, which: str) -> str | None:
        live = self.sessions.get(user) or [None]
        return live[0] if which == "oldest" else live[-1]

    def apply(self, a: Action) -> None:
        if isinstance(a, Connect):
            self.sessions.setdefault(_index(a.user), []).append(a.metadata.get("client_version"))
        elif isinstance(a, Leave):
            live = self.sessions.get(_index(a.user))
            if live:
                live.pop(0 if a.session == "oldest" else -1)
        elif isinstance(a, Terminate) and a.grace_seconds == 0:
            self.stopped = True


# Action kinds, simplest first (hypothesis shrinks toward the first); repeats weight the choice.
_KINDS = ("tick",) * 6 + ("send",) * 10 + ("connect",) * 6 + ("leave",) * 4 + ("burst", "signal", "signal", "terminate")


def _index(user: Who) -> int:
    """A fuzzed action's user: an index below ``max_users`` (recorded and live sessions are named by text)."""
    if isinstance(user, int):
        return user
    raise TypeError(f"a fuzzed action names its user by index, got {user!r}")


def _user(model: ClientModel, prefer_connected: bool) -> SearchStrategy[int]:
    connected = model.connected()
    if prefer_connected and connected:
        return st.sampled_from(tuple(connected))
    return st.integers(0, model.max_users - 1)


ACTION_KINDS = ("tick", "send", "connect", "leave", "burst", "signal", "terminate")


@st.composite
def action_of(draw: Callable[[SearchStrategy[Any]], Any], kind: str, model: ClientModel) -> Action:
    """One action of ``kind`` (one of ``ACTION_KINDS``) given what ``model`` believes; the model is updated."""
    profile = model.profile
    action: Action
    match kind:
        case "tick":
            action = Tick(draw(st.integers(1, 3)))
        case "connect":
            version = draw(st.sampled_from(tuple(profile.client_versions)))
            duplicate = draw(st.sampled_from((False,) * 7 + (True,)))
            action = Connect(draw(_user(model, False)), profile.metadata(version), duplicate)
        case "leave":
            reason = draw(st.sampled_from(LEAVE_REASONS))
            action = Leave(draw(_user(model, True)), reason, draw(st.sampled_from(("oldest", "latest"))))
        case "send":
            user = draw(_user(model, True))
            which = draw(st.sampled_from(("latest", "oldest")))
            op = draw(st.sampled_from(profile.op_codes))
            action = Send(user, op, draw(profile.payload_for(op, model.version(user, which))), which)
        case "burst":
            user = draw(_user(model, True))
            op = draw(st.sampled_from(profile.op_codes))
            data = draw(profile.payload_for(op, model.version(user, "latest")))
            action = Burst(user, op, data, draw(st.integers(2, profile.queue_size + 32)))
        case "signal":
            signals = tuple(profile.signals)
            action = Signal(draw(st.sampled_from(signals) if signals else st.text(max_size=12)))
        case "terminate":
            action = Terminate(draw(st.sampled_from((5, 5, 0))))
        case _:
            raise ValueError(f"unknown action kind {kind!r}; one of {', '.join(ACTION_KINDS)}")
    model.apply(action)
    return action


@st.composite
def next_action(draw: Callable[[SearchStrategy[Any]], Any], model: ClientModel) -> Action:
    """One action of any kind (weighted toward sends, ticks and connects) given what ``model`` believes."""
    action: Action = draw(action_of(draw(st.sampled_from(_KINDS)), model))
    return action


_SEGMENT = 8


def client_actions(
    profile: FuzzProfile | None = None, *, max_users: int | None = None, max_actions: int = 64
) -> SearchStrategy[list[Action]]:
    """Lists of client actions for one match of up to ``max_users`` users (default: the profile's) and
    up to ``max_actions`` actions (about a third of that on average)."""
    profile = profile or DEFAULT_PROFILE
    if max_users is not None and not 1 <= max_users <= 8:
        raise ProfileError(profile.source, "max_users", f"must be 1..8, got {max_users}")
    if max_actions < 1:
        raise ProfileError(profile.source, "max_actions", f"must be at least 1, got {max_actions}")
    inner = min(_SEGMENT, max_actions)
    outer = -(-max_actions // inner)

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> list[Action]:
        model = ClientModel(profile, max_users)
        # Elements are drawn in order, each seeing the model the earlier ones left behind. Segments of
        # segments: a plain list averages 5 elements, too few for churn; this averages about 20 and
        # still shrinks by deleting single actions or whole segments.
        segments = draw(st.lists(st.lists(next_action(model), max_size=inner), max_size=outer))
        return [a for seg in segments for a in seg][:max_actions]

    return build()


def call_streams(
    handler: Any, profile: FuzzProfile | None = None, header: Header | None = None, **kw: Any
) -> SearchStrategy[list[Call]]:
    """Handler-call streams Nakama could produce for ``handler`` (a path or loaded handler): client
    actions played through the runtime. A stream ends where the handler crashed or stopped the match."""
    from replay.fuzz._actions import fuzz_header
    from replay.runtime._handlers import load_handler

    profile = profile or DEFAULT_PROFILE
    loaded = load_handler(handler) if isinstance(handler, (str, os.PathLike)) else handler
    head = header or fuzz_header(getattr(loaded, "path", ""), dict(profile.params))
    return client_actions(profile, **kw).map(
        lambda actions: play(loaded, actions, head, queue_size=profile.queue_size)[0]
    )


def load_profile(spec: str | os.PathLike[str]) -> FuzzProfile:
    """A profile from a Python file or an importable module name (see the module docstring)."""
    text = os.fspath(spec)
    module = _import_profile(text)
    profile = getattr(module, "PROFILE", None)
    if profile is not None:
        if not isinstance(profile, FuzzProfile):
            raise ProfileError(text, "PROFILE", f"must be a FuzzProfile, got {type(profile).__name__}")
        profile.source = text
        return profile
    payloads = getattr(module, "PAYLOADS", None)
    if not isinstance(payloads, Mapping):
        raise ProfileError(text, "PAYLOADS", "define PROFILE = FuzzProfile(...) or PAYLOADS = {op_code: shape, ...}")
    invariants = getattr(module, "INVARIANTS", ())
    if not all(callable(i) for i in invariants):
        raise ProfileError(text, "INVARIANTS", "must be callables taking the match state")
    return FuzzProfile(
        payloads=payloads,
        client_versions=tuple(getattr(module, "CLIENT_VERSIONS", (None,))),
        params=dict(getattr(module, "PARAMS", {})),
        signals=tuple(getattr(module, "SIGNALS", ())),
        invariants=tuple(invariants),
        max_users=int(getattr(module, "MAX_USERS", 4)),
        queue_size=int(getattr(module, "QUEUE_SIZE", 128)),
        source=text,
    )


def _import_profile(text: str) -> Any:
    path = Path(text)
    if path.suffix != ".py":
        try:
            return importlib.import_module(text)
        except ImportError as exc:
            raise ProfileError(text, "", f"no such file or importable module: {exc}") from exc
    from replay.runtime._handlers import _import_file  # one way to import a user's file

    try:
        return _import_file(path)
    except HandlerLoadError as exc:
        raise ProfileError(text, "", exc.problem) from exc
