"""What a match saw, as frozen records: presences, messages, handler calls, outcomes, wire events.

A *handler-call recording* is a header followed by calls in the order Nakama's match runtime made them
(``InitCall``, ``JoinAttemptCall``, ``JoinCall``, ``LeaveCall``, ``LoopCall``, ``SignalCall``,
``TerminateCall``), optionally ending with a ``CrashMarker``. A *wire recording* is a header followed by
``WireEvent`` records. Both share the ``.nkrec`` file format (``recorder.format._nkrec``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, make_dataclass
from typing import Any, ClassVar, get_args, overload

import msgspec
from msgspec.structs import force_setattr

from recorder.errors import CorruptRecording, InvalidValue

__all__ = [
    "FORMAT_VERSION",
    "CALLBACKS",
    "PresenceReason",
    "Presence",
    "MatchMessage",
    "MessageBatch",
    "Broadcast",
    "Nondeterministic",
    "Outcome",
    "InitCall",
    "JoinAttemptCall",
    "JoinCall",
    "LeaveCall",
    "LoopCall",
    "SignalCall",
    "TerminateCall",
    "CrashMarker",
    "WireEvent",
    "Header",
    "Call",
    "Event",
    "record_builder",
]

FORMAT_VERSION = 2  # of the .nkrec file (recorder.format._nkrec); version-1 files are still read

#: Nakama's seven match handler callbacks, in Python/Lua naming.
CALLBACKS = (
    "match_init",
    "match_join_attempt",
    "match_join",
    "match_leave",
    "match_loop",
    "match_terminate",
    "match_signal",
)


class PresenceReason:
    """Nakama's presence reasons (``runtime.PresenceReason``)."""

    UNKNOWN = 0
    JOIN = 1
    UPDATE = 2
    LEAVE = 3
    DISCONNECT = 4


class Presence(msgspec.Struct, frozen=True, gc=False, cache_hash=True):
    """A user's session in the match. ``reason`` is what ``match_join``/``match_leave`` see: in Nakama 3.40
    a join's presence has reason 0 (built from the join attempt, without one); a leave's 3 (``match_leave``
    or a kick), 4 (the socket closed) or 0 (an expired join marker). Join-attempt presences and loop
    message senders have no reason field in Nakama (0 here).

    A frozen ``msgspec.Struct``, as ``MatchMessage`` is, and for the writer: it looks each message's sender up
    in its chunk's presence table, and a Struct hashes and compares in C. The hash is the frozen dataclass's
    (a tuple of the fields), computed once at construction and kept in msgspec's hash cache, so sets of
    presences iterate as they did and ``hash`` never runs Python. It compares, prints, pickles and
    pattern-matches as the dataclass did, and ``dataclasses.fields``/``replace``/``asdict`` work on it (see
    ``_as_dataclass``); assigning a field raises ``AttributeError`` ("immutable type").
    """

    user_id: str
    session_id: str
    username: str
    node: str = ""
    reason: int = 0

    def __post_init__(self) -> None:
        try:
            value = hash((self.user_id, self.session_id, self.username, self.node, self.reason))
        except TypeError:  # an unhashable field: hashing the presence raises, as the dataclass's hash did
            return
        force_setattr(self, "__msgspec_cached_hash__", value)

    def __copy__(self) -> Presence:
        return self  # immutable (msgspec's own copy would leave the hash cache empty)

    def with_reason(self, reason: int) -> Presence:
        return Presence(self.user_id, self.session_id, self.username, self.node, reason)

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity as Nakama compares presences: user, session and node (reason ignored)."""
        return (self.user_id, self.session_id, self.node)


class MatchMessage(msgspec.Struct, frozen=True, gc=False):
    """One ``match_data_send`` as the handler's ``match_loop`` receives it.

    A frozen ``msgspec.Struct`` rather than a frozen dataclass: a replay builds one per recorded message, and
    msgspec constructs it in C (about 40 ns against 240 ns for the fastest frozen-dataclass path and 670 ns
    through its ``__init__``). It compares, hashes, prints and pattern-matches as the dataclass did, and
    ``dataclasses.fields``/``replace``/``asdict`` still work on it (see ``_as_dataclass``); assigning a field
    raises ``AttributeError`` ("immutable type"), the base of the dataclass's ``FrozenInstanceError``.
    ``gc=False``: the garbage collector does not track it (its fields are a presence, bytes and scalars).
    Its hash is the dataclass's (a tuple of the fields), so sets of messages iterate as they did.
    """

    sender: Presence
    op_code: int
    data: bytes | None
    reliable: bool = True
    receive_time_ms: int = 0

    def __hash__(self) -> int:
        # the dataclass's hash, value for value: msgspec's own mixes in the class's address, which would change
        # the order of a set of messages from one process to the next even under one PYTHONHASHSEED
        return hash((self.sender, self.op_code, self.data, self.reliable, self.receive_time_ms))


def _as_dataclass(cls: type[msgspec.Struct]) -> None:
    """Let ``dataclasses`` functions treat the Struct ``cls`` as the frozen dataclass it replaces: give it the
    field table of a dataclass with the same fields and defaults (``replace`` then calls ``cls(**fields)``).
    Users' handlers and ``recorder.wire``'s redactor walk records with ``dataclasses.fields``/``replace``."""
    names = cls.__struct_fields__
    defaults = dict(zip(names[len(names) - len(cls.__struct_defaults__) :], cls.__struct_defaults__, strict=True))
    annotations = {n: cls.__annotations__[n] for n in names}
    shape = make_dataclass(
        cls.__name__,
        [(n, annotations[n], field(default=defaults[n])) if n in defaults else (n, annotations[n]) for n in names],
        frozen=True,
    )
    cls.__dataclass_fields__ = shape.__dataclass_fields__  # type: ignore[attr-defined]
    cls.__dataclass_params__ = shape.__dataclass_params__  # type: ignore[attr-defined]


_as_dataclass(Presence)
_as_dataclass(MatchMessage)


class MessageBatch(Sequence[MatchMessage]):
    """A loop's messages as the reader decoded them: ``MatchMessage`` objects are built on first access.

    Reading a recording builds one of these per ``loop`` instead of one object per message, which keeps
    streaming close to raw msgpack speed; code that only counts messages or op codes (``inspect``) never
    pays for the objects. It behaves as an immutable sequence and compares equal to a tuple of the same
    messages.
    """

    __slots__ = ("_rows", "_presences", "_items", "_origin", "_event")

    def __init__(
        self, rows: list[list[Any]], presences: list[Presence], origin: tuple[str, int, int], event: int = -1
    ) -> None:
        self._rows = rows  # emptied once the messages are built
        self._presences = presences
        self._items: tuple[MatchMessage, ...] | None = None
        self._origin = origin  # (path, offset, chunk) for errors
        self._event = event  # the loop's index in its chunk, for errors

    #: the row decoder and checker, generated from the message table by ``recorder.format._schema``
    #: (which ``recorder.format`` imports before any batch exists): ``rows_decoder(rows, presences)`` checks
    #: every field inline and raises ``ValueError`` at the first bad one (it returns a new list: a replay hands
    #: it to ``match_loop`` as it is); ``row_checker(row, presences, n, field)`` names it
    rows_decoder: ClassVar[Callable[[list[list[Any]], list[Presence]], list[MatchMessage]]]
    row_checker: ClassVar[Callable[[Any, list[Presence], int, str], None]]

    def _load(self) -> tuple[MatchMessage, ...]:
        items = self._items
        if items is None:
            try:
                items = tuple(MessageBatch.rows_decoder(self._rows, self._presences))
            except (ValueError, TypeError, IndexError, KeyError):
                raise self._bad_row() from None
            self._items, self._rows = items, []
        return items

    def _bad_row(self) -> CorruptRecording:
        """The error for the first message row that breaks a rule, naming the loop, message and field."""
        ps = self._presences
        where = f"event {self._event} (loop)" if self._event >= 0 else "loop"
        for j, row in enumerate(self._rows):
            try:
                MessageBatch.row_checker(row, ps, len(ps), f"messages[{j}]")
            except InvalidValue as exc:
                prefix = f"events[{self._event}]." if self._event >= 0 else ""
                return CorruptRecording(*self._origin, f"{where}: {exc.field}: {exc.problem}", field=prefix + exc.field)
        return CorruptRecording(*self._origin, f"{where}: malformed messages")

    def __len__(self) -> int:
        return len(self._rows) if self._items is None else len(self._items)

    @overload
    def __getitem__(self, i: int) -> MatchMessage: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[MatchMessage, ...]: ...
    def __getitem__(self, i: int | slice) -> MatchMessage | tuple[MatchMessage, ...]:
        return self._load()[i]

    def __iter__(self) -> Iterator[MatchMessage]:
        return iter(self._load())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, MessageBatch)):
            return self._load() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._load())

    def __repr__(self) -> str:
        return repr(self._load())

    def op_codes_and_sizes(self) -> Iterator[tuple[int, int]]:
        """``(op_code, len(data))`` per message without building message objects."""
        if self._items is not None:
            return ((m.op_code, len(m.data or b"")) for m in self._items)
        return self._row_sizes()

    def _row_sizes(self) -> Iterator[tuple[int, int]]:
        ps, check = self._presences, MessageBatch.row_checker
        for row in self._rows:
            try:
                check(row, ps, len(ps), "")
            except InvalidValue:
                raise self._bad_row() from None
            yield row[1], len(row[2] or b"")


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A ``broadcast_message`` (or deferred) the handler made. ``targets`` None means everyone."""

    op_code: int
    data: bytes | None
    targets: tuple[Presence, ...] | None = None
    sender: Presence | None = None
    reliable: bool = True
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class Nondeterministic:
    """A value the handler consumed from a nondeterministic source, in consumption order.

    ``source`` is one of ``time`` (nk.time, ms), ``os_time`` (s), ``random`` (float in [0,1)), ``uuid``,
    ``storage_read``, ``http`` or any other name a runtime extension records.
    """

    source: str
    value: Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call produced; every field is optional so recorders keep only what they can see."""

    accept: bool | None = None  # join attempt verdict
    reason: str | None = None  # join attempt rejection reason
    tick_rate: int | None = None  # init
    label: str | None = None  # init
    broadcasts: tuple[Broadcast, ...] = ()
    kicks: tuple[Presence, ...] = ()
    label_updates: tuple[str, ...] = ()
    reply: str | None = None  # signal reply
    digest: int | None = None  # 64-bit digest of the returned state
    snapshot: bytes | None = None  # canonical encoding of the returned state
    stopped: bool = False  # the callback returned a nil state


@dataclass(frozen=True, slots=True)
class _CallBase:
    kind: ClassVar[str] = ""
    callback: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class InitCall(_CallBase):
    params: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    tick: int = 0
    kind: ClassVar[str] = "init"
    callback: ClassVar[str] = "match_init"


@dataclass(frozen=True, slots=True)
class JoinAttemptCall(_CallBase):
    tick: int
    presence: Presence
    metadata: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    vars: dict[str, str] = field(default_factory=dict)  # the session's vars (ctx.vars)
    kind: ClassVar[str] = "join_attempt"
    callback: ClassVar[str] = "match_join_attempt"


@dataclass(frozen=True, slots=True)
class JoinCall(_CallBase):
    tick: int
    presences: tuple[Presence, ...]
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    kind: ClassVar[str] = "join"
    callback: ClassVar[str] = "match_join"


@dataclass(frozen=True, slots=True)
class LeaveCall(_CallBase):
    tick: int
    presences: tuple[Presence, ...]
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    kind: ClassVar[str] = "leave"
    callback: ClassVar[str] = "match_leave"


@dataclass(frozen=True, slots=True)
class LoopCall(_CallBase):
    tick: int
    messages: Sequence[MatchMessage] = ()  # a tuple, or a MessageBatch from the reader
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    kind: ClassVar[str] = "loop"
    callback: ClassVar[str] = "match_loop"


@dataclass(frozen=True, slots=True)
class SignalCall(_CallBase):
    tick: int
    data: str
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    kind: ClassVar[str] = "signal"
    callback: ClassVar[str] = "match_signal"


@dataclass(frozen=True, slots=True)
class TerminateCall(_CallBase):
    tick: int
    grace_seconds: int
    outcome: Outcome | None = None
    nondeterministic: tuple[Nondeterministic, ...] = ()
    kind: ClassVar[str] = "terminate"
    callback: ClassVar[str] = "match_terminate"


@dataclass(frozen=True, slots=True)
class CrashMarker:
    """How the production match died: Nakama's "Stopping match after error from <callback> execution"."""

    callback: str
    tick: int
    error: str
    traceback: str = ""
    error_type: str = ""  # as the recording runtime classed it (``KeyError``, ``Hang``...); "" when unknown
    kind: ClassVar[str] = "crash"


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One thing seen on a realtime socket by the recording proxy.

    ``event`` is ``envelope`` (``envelope`` holds the parsed JSON object, or ``raw`` the text when it was not
    valid JSON), ``open`` or ``close`` (with ``close_code`` and ``close_reason``). ``direction`` is the
    client's view, as in Nakama transcripts: ``out`` client to server, ``in`` server to client.
    ``t`` is monotonic seconds since the recording started.
    """

    socket: str
    direction: str
    t: float
    event: str = "envelope"
    envelope: dict[str, Any] | None = None
    raw: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    kind: ClassVar[str] = "wire"


Call = InitCall | JoinAttemptCall | JoinCall | LeaveCall | LoopCall | SignalCall | TerminateCall
Event = Call | CrashMarker | WireEvent
#: the record types of ``Call``, for isinstance
CALL_TYPES: tuple[type[Call], ...] = get_args(Call)


@dataclass(frozen=True, slots=True)
class Header:
    """What a recording is about. ``source`` names the recorder: ``capture``, ``lua-capture``, ``proxy``,
    ``jsonl``, ``fuzz``, ``replay``. ``handler`` is a path relative to the recording file.
    ``log_match_id`` is the match id as Nakama's logs print it (no ``.node`` suffix)."""

    match_id: str = ""
    module: str = ""
    tick_rate: int = 0
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    node: str = ""
    source: str = ""
    started_ms: int = 0
    client_versions: dict[str, str] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    handler: str = ""
    recording_kind: str = "calls"  # "calls" or "wire"
    log_match_id: str = ""
    redactions: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION


_BUILDERS: dict[type, Any] = {}


def record_builder(cls: type) -> Any:
    """A fast positional constructor for the frozen slotted record ``cls`` (every field, in order).

    The frozen ``__init__`` stores each field through ``object.__setattr__``, which costs several times a
    plain slot store. The builder is a generated mutable class with the very same slots (and bases) that
    stores the fields directly and then becomes a ``cls`` by ``__class__`` assignment, which Python allows
    between classes with identical layouts. The result is an ordinary ``cls``. For hot paths (decoding,
    the runtime's per-call outcome): no defaults are applied and nothing is validated. A ``msgspec.Struct``
    is its own builder.
    """
    if hasattr(cls, "__struct_fields__"):  # a msgspec.Struct (MatchMessage): built in C already
        return cls
    builder = _BUILDERS.get(cls)
    if builder is None:
        from dataclasses import fields as _fields

        names = [f.name for f in _fields(cls)]
        args = ", ".join(names)
        body = "".join(f"    self.{n} = {n}\n" for n in names)
        namespace: dict[str, Any] = {"_cls": cls}
        # generated from the record's own field names, as dataclasses generates __init__
        exec(f"def __init__(self, {args}):\n{body}    self.__class__ = _cls\n", namespace)
        builder = _BUILDERS[cls] = type(
            f"_{cls.__name__}Builder",
            cls.__bases__,
            {
                "__slots__": vars(cls)["__slots__"],  # slots=True dataclasses define them
                "__init__": namespace["__init__"],
                "__setattr__": object.__setattr__,  # plain slot stores: a frozen base forbids them
                "__delattr__": object.__delattr__,
            },
        )
    return builder
