"""One event schema: per-kind field tables that drive the chunk codec, JSON Lines in both directions and summaries.

Each record is one table of ``Field(name, short, json, type, default)``: the attribute, its short key in a
chunk (the position in the event's msgpack array, or the key in an outcome map), its JSON key, its
``Type`` (how the value travels each way and how it is checked) and its default (``REQUIRED`` when a
JSON line must hold it). ``omit`` says where a field equal to its default is left out: ``BOTH`` (a chunk
writes nil and drops trailing nils; a JSON line leaves the key out) or ``IN_JSON``. ``KINDS`` lists the
event kinds with their kind code; the tables are listed in JSON key order (a chunk orders by ``short``).

From the tables, once at import (as ``dataclasses`` generates ``__init__``), this module generates

- ``encode_event(event, ref)``: one encoder per kind (``ref`` interns presences, see ``_codec``);
- ``iter_events(payload, origin, cache)``: the chunk decoder, every kind's fields checked inline (types,
  integer ranges, presence indexes) with the one validation convention of ``recorder.format._validate``;
- ``event_to_json(event)`` / ``read_event(obj, header_params)``: the JSON Lines forms, unknown and
  missing fields named.

``describe(kind)`` prints a table; ``source(name)`` the generated code of one function. Decoding builds
no object from type tags: it never executes code from the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from typing import Annotated, Any, cast

import msgspec

from recorder.errors import CorruptRecording, InvalidValue, RecordingError
from recorder.format import _jsonvalue as jv
from recorder.format import _validate as validate
from recorder.format._model import (
    Broadcast,
    Call,
    CrashMarker,
    Event,
    Header,
    InitCall,
    JoinAttemptCall,
    JoinCall,
    LeaveCall,
    LoopCall,
    MatchMessage,
    MessageBatch,
    Nondeterministic,
    Outcome,
    Presence,
    SignalCall,
    TerminateCall,
    WireEvent,
    record_builder,
)
from recorder.format._validate import INT64_MAX, each, optional, show

try:  # the optional compiled helper (setup.py): a loop's message rows in C, the same rows
    from recorder.format import _rows as _native

    _native.setup(MatchMessage)  # it reads a MatchMessage's fields from their slots
except (ImportError, TypeError, AttributeError):  # not built (no C compiler at install), or the fields are not
    _native = None  # type: ignore[assignment]  # plain slots: the rows are made in Python

__all__ = [
    "REQUIRED",
    "BOTH",
    "IN_JSON",
    "Type",
    "Field",
    "Record",
    "Kind",
    "PRESENCE",
    "MESSAGE",
    "BROADCAST",
    "NONDETERMINISTIC",
    "OUTCOME",
    "HEADER",
    "KINDS",
    "KIND_NAMES",
    "kind_of",
    "iter_events",
    "encode_events",
    "event_to_json",
    "header_to_json",
    "read_event",
    "read_header",
    "describe",
    "source",
    "native_rows",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a JSON line must hold the field
#: the scalar types msgspec and msgpack pack alike (exactly these, no subclasses)
PLAIN_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
SCALAR = "{v}.__class__ in PLAIN_SCALARS"  # a typed scalar field holds one of them (``Type.plain``)
FREE = "plain_value({v})"  # a free-form value holds only them, lists, tuples and dicts
BOTH, IN_JSON = "both", "json"  # where a field equal to its default is left out


@dataclass(frozen=True, slots=True)
class Type:
    """How one kind of value travels. The chunk side is code: Python expressions in which ``{v}`` stands
    for the value and ``{f}`` for the field name (an expression giving the string), compiled into the
    per-kind codecs. ``pack``: attribute -> chunk value (may use ``ref``); ``fast``: an inline test that a
    chunk value is good ("" when ``unpack`` checks it itself); ``slow``: raises ``InvalidValue`` for a
    value that failed ``fast``; ``unpack``: good chunk value -> attribute (may use ``ps``, ``n``,
    ``origin``, ``i``). ``out``: attribute -> JSON (an expression too); ``read``: JSON -> attribute,
    raising ``InvalidValue(field, problem)``."""

    name: str
    read: Callable[[Any, str], Any]
    pack: str = "{v}"
    fast: str = ""
    slow: str = ""
    unpack: str = "{v}"
    out: str = "{v}"
    #: an expression true when the value holds msgpack's own types only (``_guard``); "" for what the encoders
    #: make themselves (presence indexes) or check apart (rows, a loop's messages)
    plain: str = ""
    item: Type | None = None  # a list's item type
    record: Record | None = None  # a row's record

    def optional(self) -> Type:
        """The same type, or nil/null."""
        fast = f"{{v}} is None or ({self.fast})" if self.fast else ""
        return Type(
            f"{self.name}?",
            optional(self.read),
            _maybe(self.pack),
            fast,
            self.slow,
            _maybe(self.unpack),
            _maybe(self.out),
            self.plain,
        )


def _maybe(template: str) -> str:
    return template if template == "{v}" else f"(None if {{v}} is None else {template})"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    short: int | str  # position in a chunk's array, or key in a chunk's map
    json: str
    type: Type
    default: Any = REQUIRED
    omit: str = ""  # BOTH, IN_JSON or "" (always written)


def _position(f: Field) -> int:
    """A field's place in a chunk array (fields of a map record have none)."""
    return f.short if isinstance(f.short, int) else -1


@dataclass(frozen=True, slots=True)
class Record:
    """A record's table: ``cls`` is built from ``fields`` (listed in JSON order)."""

    cls: type
    fields: tuple[Field, ...]
    json_keys: frozenset[str] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "json_keys", frozenset(f.json for f in self.fields))

    def chunk_order(self) -> list[Field]:
        return sorted(self.fields, key=_position)


@dataclass(frozen=True, slots=True)
class Kind(Record):
    """An event kind: ``name`` is its JSON ``kind``, ``code`` the first item of its chunk array."""

    name: str = ""
    code: int = -1

    @property
    def lengths(self) -> tuple[int, int]:
        """Fewest and most items of the chunk array (the kind code included)."""
        kept = [f for f in self.fields if f.omit != BOTH]
        return 1 + len(kept), 1 + len(self.fields)

    def chunk_shape(self) -> str:
        parts = [str(self.code)] + [f.name + ("?" if f.omit == BOTH else "") for f in self.chunk_order()]
        return f"[{', '.join(parts)}]"


def _sub(template: str, v: str, f: str = "''") -> str:
    """A chunk or JSON template with ``{v}`` (the value) and ``{f}`` (the field name expression) filled in."""
    return template.replace("{v}", v).replace("{f}", f)


def _row_pack(record: Record, var: str, display: str = "[]", ref: str = "ref({v})") -> str:
    """A positional chunk row of ``record`` over the record in ``var``: a list display, or with ``display``
    "()" a tuple (msgpack packs both as the same array); ``ref``: how a presence field becomes its index."""
    items = ", ".join(
        _sub(ref if f.type is PRESENCE_INDEX else f.type.pack, f"{var}.{f.name}") for f in record.chunk_order()
    )
    return display[0] + items + display[1]


# -- chunk helpers the generated code calls ----------------------------------------------------------------


def plain(values: Any) -> bool:
    """Whether ``values`` hold msgpack's own types only: ``PLAIN_SCALARS``, lists, tuples, dicts (exactly
    these, no subclasses) and nondeterministic records of them."""
    scalars = PLAIN_SCALARS
    for v in values:
        t = type(v)
        if t in scalars:
            continue
        if t is list or t is tuple:
            if not plain(v):
                return False
        elif t is dict:
            if not (plain(v) and plain(v.values())):
                return False
        elif t is Nondeterministic:
            if type(v.source) is not str or not plain((v.value,)):
                return False
        else:
            return False
    return True


def plain_value(v: Any) -> bool:
    """``plain((v,))``; False for a value nested deeper than Python recurses (msgpack's limits decide)."""
    try:
        return plain((v,))
    except RecursionError:
        return False


def _array(v: Any, field: str) -> list[Any]:
    if type(v) is not list:
        raise InvalidValue(field, f"must be an array, got {show(v)}")
    return v


def _free_map(v: Any, field: str) -> dict[Any, Any]:
    """A free-form map (params, metadata, envelope): scalar keys, values within the limits."""
    if type(v) is not dict:
        raise InvalidValue(field, f"must be a map, got {show(v)}")
    return cast(dict[Any, Any], validate.value(v, field))


def _text_map(v: Any, field: str) -> dict[str, str]:
    if type(v) is not dict:
        raise InvalidValue(field, f"must be a map, got {show(v)}")
    for k, x in v.items():
        validate.text(k, f"{field}.<key>")
        validate.text(x, f"{field}.{k}")
    return v


def _bytes_or_nil(v: Any, field: str) -> None:
    raise InvalidValue(field, f"must be bytes or nil, got {show(v)}")


def _not_a_number(v: Any, field: str) -> None:
    raise InvalidValue(field, f"must be a number, got {show(v)}")


def _wrong_row(v: Any, field: str, shape: str) -> None:
    raise InvalidValue(field, f"must be {shape}, got {show(v)}")


def _reject() -> bool:
    raise ValueError("a row breaks a rule")


def _json_map(v: Any, field: str) -> dict[Any, Any]:
    return jv.obj(v, field)


def _json_object(v: Any, field: str, allowed: frozenset[str]) -> dict[str, Any]:
    if type(v) is not dict:
        raise InvalidValue(field, f"must be an object, got {show(v)}")
    if not v.keys() <= allowed:
        extra = sorted(set(v) - allowed)
        raise InvalidValue(_join(field, extra[0]), f"unknown field (known: {', '.join(sorted(allowed))})")
    return v


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _data_json(b: bytes | None) -> str | None:
    return None if b is None else jv.b64(b)


# -- the types -------------------------------------------------------------------------------------------

TICK = Type(
    "tick",
    validate.tick,
    fast="{v}.__class__ is int and 0 <= {v} <= INT64_MAX",
    slow="validate.tick({v}, {f})",
    plain=SCALAR,
)
INT64 = Type(  # msgpack holds no integer below int64's minimum: only the top is checked inline
    "int64",
    validate.int64,
    fast="{v}.__class__ is int and {v} <= INT64_MAX",
    slow="validate.int64({v}, {f})",
    plain=SCALAR,
)
UINT64 = Type(
    "uint64", validate.uint64, fast="{v}.__class__ is int and {v} >= 0", slow="validate.uint64({v}, {f})", plain=SCALAR
)
TEXT = Type("text", jv.text, fast="{v}.__class__ is str", slow="validate.text({v}, {f})", plain=SCALAR)
BOOL = Type(
    "bool", validate.boolean, fast="{v} is True or {v} is False", slow="validate.boolean({v}, {f})", plain=SCALAR
)
DATA = Type(  # bytes or nil; base64 in JSON
    "data?",
    optional(jv.data),
    fast="{v} is None or {v}.__class__ is bytes",
    slow="_bytes_or_nil({v}, {f})",
    out="_data_json({v})",
    plain=SCALAR,
)
NUMBER = Type(
    "number",
    jv.number,
    fast="{v}.__class__ is float or {v}.__class__ is int",
    slow="_not_a_number({v}, {f})",
    out="to_json_value({v})",
    plain=SCALAR,
)
VALUE = Type("value", jv.from_json_value, unpack="validate.value({v}, {f})", out="to_json_value({v})", plain=FREE)
FREE_MAP = Type("map", _json_map, unpack="_free_map({v}, {f})", out="to_json_value({v})", plain=FREE)
TEXT_MAP = Type("text map", jv.string_map, unpack="_text_map({v} or {}, {f})", out="to_json_value({v})", plain=FREE)
PRESENCE_INDEX = Type(
    "presence",
    lambda v, f: _read(PRESENCE, v, f),
    pack="ref({v})",
    fast="{v}.__class__ is int and 0 <= {v} < n",
    slow="validate.presence_index({v}, {f}, n)",
    unpack="ps[{v}]",
    out="_json_PRESENCE({v})",
)
PRESENCE_INDEXES = Type(  # a join's or leave's presences (every index named by the list's field)
    "presences",
    lambda v, f: tuple(each(PRESENCE_INDEX.read)(v, f)),
    pack="[ref(p) for p in {v}]",
    unpack="tuple([ps[validate.presence_index(x, {f}, n)] for x in _array({v}, {f})])",
    out="[_json_PRESENCE(p) for p in {v}]",
)


_LISTS: dict[str, Type] = {}  # name -> item type, for the generated ``_list_<name>``
_ROWS: dict[str, Record] = {}  # name -> record, for the generated ``_row_<name>`` and ``_json_<name>``


def _list(item: Type, name: str) -> Type:
    """A list of ``item`` (a tuple in the record); in an outcome an absent or empty list is ()."""
    _LISTS[name] = item
    x = f"x_{name}"
    return Type(
        f"[{item.name}]",
        lambda v, f: tuple(each(item.read)(v, f)),
        pack=f"[{_sub(item.pack, x)} for {x} in {{v}}]",
        unpack=f"_list_{name}({{v}}, ps, n, {{f}})",
        out=f"[{_sub(item.out, x)} for {x} in {{v}}]",
        item=item,
    )


def _row(record: Record, name: str) -> Type:
    """One ``record`` as a positional array in a chunk (checked by the generated ``_row_<name>``), an
    object in JSON."""
    _ROWS[name] = record
    return Type(
        record.cls.__name__,
        lambda v, f: _read(record, v, f),
        pack=_row_pack(record, "{v}"),
        unpack=f"_row_{name}({{v}}, ps, n, {{f}})",
        out=f"_json_{name}({{v}})",
        record=record,
    )


# -- the tables ------------------------------------------------------------------------------------------

PRESENCE: Record = Record(
    Presence,
    (
        Field("user_id", 0, "user_id", TEXT),
        Field("session_id", 1, "session_id", TEXT),
        Field("username", 2, "username", TEXT),
        Field("node", 3, "node", TEXT, ""),
        Field("reason", 4, "reason", INT64, 0),
    ),
)
MESSAGE = Record(  # in a chunk: rows a MessageBatch decodes when first used
    MatchMessage,
    (
        Field("sender", 0, "sender", PRESENCE_INDEX),
        Field("op_code", 1, "op_code", INT64),
        Field("data", 2, "data", DATA, None),
        Field("reliable", 3, "reliable", BOOL, True),
        Field("receive_time_ms", 4, "receive_time_ms", INT64, 0),
    ),
)
BROADCAST = Record(
    Broadcast,
    (
        Field("op_code", 0, "op_code", INT64),
        Field("data", 1, "data", DATA, None),
        Field("targets", 2, "targets", _list(PRESENCE_INDEX, "targets").optional(), None),
        Field("sender", 3, "sender", PRESENCE_INDEX.optional(), None),
        Field("reliable", 4, "reliable", BOOL, True),
        Field("deferred", 5, "deferred", BOOL, False),
    ),
)
NONDETERMINISTIC = Record(Nondeterministic, (Field("source", 0, "source", TEXT), Field("value", 1, "value", VALUE)))
OUTCOME = Record(  # a map with short keys in a chunk, every field left out when it holds its default
    Outcome,
    (
        Field("accept", "a", "accept", BOOL.optional(), None, BOTH),
        Field("reason", "r", "reason", TEXT.optional(), None, BOTH),
        Field("tick_rate", "tr", "tick_rate", INT64.optional(), None, BOTH),
        Field("label", "l", "label", TEXT.optional(), None, BOTH),
        Field("broadcasts", "b", "broadcasts", _list(_row(BROADCAST, "BROADCAST"), "broadcasts"), (), BOTH),
        Field("kicks", "k", "kicks", _list(PRESENCE_INDEX, "kicks"), (), BOTH),
        Field("label_updates", "lu", "label_updates", _list(TEXT, "label_updates"), (), BOTH),
        Field("reply", "rp", "reply", TEXT.optional(), None, BOTH),
        Field("digest", "d", "digest", UINT64.optional(), None, BOTH),
        Field("snapshot", "s", "snapshot", DATA, None, BOTH),
        Field("stopped", "x", "stopped", BOOL, False, BOTH),
    ),
)
#: the field a loop's outcome most often holds alone (``_gen_map_codec`` decodes such a map in one step)
OUTCOME_LONE = "digest"
MESSAGES = Type(  # decoded by MessageBatch when first used (recorder.format._model)
    "[MatchMessage]",
    lambda v, f: tuple(each(lambda x, g: _read(MESSAGE, x, g))(v, f)),
    pack="",  # statements, not an expression: _message_rows
    fast="{v}.__class__ is list",
    slow="_array({v}, {f})",
    unpack="MessageBatch({v}, ps, origin, i)",
    out="[_json_MESSAGE(m) for m in {v}]",
)
OUTCOME_TYPE = Type(
    "Outcome?",
    lambda v, f: None if v is None else _read(OUTCOME, v, f),
    pack="_pack_OUTCOME({v}, ref)",  # a call without an outcome leaves it out
    unpack="(None if {v} is None else _unpack_OUTCOME({v}, ps, n))",
    out="_json_OUTCOME({v})",
)
NONDETERMINISTIC_TYPE = Type(
    "[Nondeterministic]",
    lambda v, f: tuple(each(lambda x, g: _read(NONDETERMINISTIC, x, g))(v, f)),
    pack="[[x.source, x.value] for x in {v}]",
    unpack="(_unpack_nondeterministic({v}) if {v} else ())",
    out="[_json_NONDETERMINISTIC(x) for x in {v}]",
    plain="not {v} or plain_value({v})",  # most calls consume none
)


def _call(code: int, cls: type[Call], *middle: Field, tick_default: Any = REQUIRED) -> Kind:
    """A handler call: ``[code, tick, *middle, outcome?, nondeterministic?]``."""
    last = 2 + len(middle)
    return Kind(
        cls,
        (
            Field("tick", 1, "tick", TICK, tick_default),
            *middle,
            Field("outcome", last, "outcome", OUTCOME_TYPE, None, BOTH),
            Field("nondeterministic", last + 1, "nondeterministic", NONDETERMINISTIC_TYPE, (), BOTH),
        ),
        cls.kind,
        code,
    )


_HEADER_PARAMS: Any = object()  # an init line without params takes the header's

INIT = _call(0, InitCall, Field("params", 2, "params", FREE_MAP, _HEADER_PARAMS), tick_default=0)
JOIN_ATTEMPT = Kind(
    JoinAttemptCall,
    (
        Field("tick", 1, "tick", TICK),
        Field("presence", 2, "presence", PRESENCE_INDEX),
        Field("metadata", 3, "metadata", FREE_MAP, {}),
        Field("vars", 6, "vars", TEXT_MAP, {}, BOTH),  # JSON puts the session's vars before the outcome
        Field("outcome", 4, "outcome", OUTCOME_TYPE, None, BOTH),
        Field("nondeterministic", 5, "nondeterministic", NONDETERMINISTIC_TYPE, (), BOTH),
    ),
    "join_attempt",
    1,
)
JOIN = _call(2, JoinCall, Field("presences", 2, "presences", PRESENCE_INDEXES))
LEAVE = _call(3, LeaveCall, Field("presences", 2, "presences", PRESENCE_INDEXES))
LOOP = _call(4, LoopCall, Field("messages", 2, "messages", MESSAGES, ()))
SIGNAL = _call(5, SignalCall, Field("data", 2, "data", TEXT))
TERMINATE = _call(6, TerminateCall, Field("grace_seconds", 2, "grace_seconds", INT64))
CRASH = Kind(
    CrashMarker,
    (
        Field("callback", 1, "callback", TEXT),
        Field("tick", 2, "tick", TICK),
        Field("error", 3, "error", TEXT),
        Field("traceback", 4, "traceback", TEXT, "", IN_JSON),
        Field("error_type", 5, "error_type", TEXT, "", BOTH),
    ),
    "crash",
    7,
)
WIRE = Kind(
    WireEvent,
    (
        Field("socket", 1, "socket", TEXT),
        Field("direction", 2, "direction", TEXT),
        Field("t", 3, "t", NUMBER),
        Field("event", 4, "event", TEXT, "envelope"),
        Field("envelope", 5, "envelope", FREE_MAP.optional(), None, BOTH),
        Field("raw", 6, "raw", TEXT.optional(), None, BOTH),
        Field("close_code", 7, "close_code", INT64.optional(), None, BOTH),
        Field("close_reason", 8, "close_reason", TEXT.optional(), None, BOTH),
    ),
    "wire",
    8,
)

#: every event kind, by kind code
KINDS: tuple[Kind, ...] = (INIT, JOIN_ATTEMPT, JOIN, LEAVE, LOOP, SIGNAL, TERMINATE, CRASH, WIRE)
KIND_NAMES = tuple(k.name for k in KINDS)
_BY_CLASS: dict[type, Kind] = {k.cls: k for k in KINDS}
_BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
_LINE_KEYS = {k.name: k.json_keys | {"kind"} for k in KINDS}  # what a JSON line of each kind may hold

HEADER = Record(  # the JSON header line (a chunk file's header frame is a map of these long keys)
    Header,
    (
        Field("match_id", "match_id", "match_id", TEXT, ""),
        Field("module", "module", "module", TEXT, ""),
        Field("tick_rate", "tick_rate", "tick_rate", INT64, 0),
        Field("label", "label", "label", TEXT, ""),
        Field("params", "params", "params", FREE_MAP, {}),
        Field("node", "node", "node", TEXT, ""),
        Field("handler", "handler", "handler", TEXT, ""),
        Field("client_versions", "client_versions", "client_versions", TEXT_MAP, {}),
        Field("started_ms", "started_ms", "started_ms", INT64, 0),
        Field("source", "source", "source", TEXT, "jsonl"),  # a header line without one came from a JSON file
        Field("tags", "tags", "tags", FREE_MAP, {}),
        Field("recording_kind", "recording_kind", "recording_kind", TEXT, "calls"),
        Field("log_match_id", "log_match_id", "log_match_id", TEXT, ""),
        Field("redactions", "redactions", "redactions", _list(TEXT, "redactions"), ()),
        Field("format_version", "format_version", "format_version", INT64, Header().format_version),
    ),
)


def kind_of(event: Event) -> Kind:
    """The table of ``event``'s kind (``TypeError`` for anything that is not an event)."""
    kind = _BY_CLASS.get(type(event))
    if kind is None:
        raise TypeError(f"not a recordable event: {event!r}")
    return kind


# -- JSON -> records (table-walking: JSON parsing costs far more than this) --------------------------------


def _read(record: Record, v: Any, field: str) -> Any:
    """A JSON object -> ``record`` (a presence, message, broadcast, outcome...): the hot path of reading."""
    plan = _PLANS.get(record.cls)
    if plan is None:
        steps = [(f.json, f.type.read, f) for f in _constructor_order(record)]
        plan = _PLANS[record.cls] = (record.json_keys, steps)
    keys, steps = plan
    d = _json_object(v, field, keys)
    args = []
    for key, read, f in steps:
        if key in d:
            args.append(read(d[key], f"{field}.{key}" if field else key))
        else:
            args.append(_read_field(f, d, field))
    return record.cls(*args)


_PLANS: dict[type, tuple[frozenset[str], list[tuple[str, Callable[[Any, str], Any], Field]]]] = {}


def _read_field(f: Field, d: dict[str, Any], prefix: str, header_params: Callable[[], Any] | None = None) -> Any:
    if f.json in d:
        return f.type.read(d[f.json], _join(prefix, f.json))
    default = f.default
    if default is REQUIRED:
        raise InvalidValue(_join(prefix, f.json), "missing")
    if default is _HEADER_PARAMS:
        return header_params() if header_params is not None else {}
    return {} if type(default) is dict else default  # a fresh map for each record


_ORDERS: dict[type, list[Field]] = {}


def _constructor_order(record: Record) -> list[Field]:
    """The table's fields in the order of the record's constructor."""
    order = _ORDERS.get(record.cls)
    if order is None:
        by_name = {f.name: f for f in record.fields}
        order = _ORDERS[record.cls] = [by_name[f.name] for f in fields(record.cls) if f.name in by_name]
    return order


def read_event(obj: dict[str, Any], header_params: Callable[[], dict[str, Any]]) -> Event:
    """One JSON Lines event object -> its record. Raises ``InvalidValue`` naming the field; ``kind`` must
    be a known kind (checked by the caller, ``KeyError`` otherwise). The keys are checked first, then the
    fields in the record's order."""
    kind = _BY_NAME[obj["kind"]]
    _json_object(obj, "", _LINE_KEYS[kind.name])
    return cast(Event, kind.cls(*[_read_field(f, obj, "", header_params) for f in _constructor_order(kind)]))


def read_header(obj: dict[str, Any]) -> Header:
    """The JSON header line (``kind: header``) -> ``Header``; raises ``InvalidValue`` naming the field."""
    _json_object(obj, "", HEADER.json_keys | {"kind"})
    return Header(**{f.name: _read_field(f, obj, "") for f in HEADER.fields})


# -- code generation -------------------------------------------------------------------------------------

_SOURCES: dict[str, str] = {}


def _compile(name: str, code: str, namespace: dict[str, Any]) -> Any:
    _SOURCES[name] = code
    exec(compile(code, f"<recorder.format._schema {name}>", "exec"), namespace)  # from our own tables
    return namespace[name]


def _is_default(expr: str, default: Any) -> str:
    return f"{expr} is None" if default is None else f"not {expr}"


def _holds_more(expr: str, default: Any) -> str:
    """The test that a field to be left out when it holds its default does not hold it."""
    return f"{expr} is not None" if default is None else expr


def _literal(default: Any) -> str:
    return "{}" if type(default) is dict else repr(default)


def _checked(var: str, t: Type, field: str, indent: str) -> list[str]:
    """Lines that check the chunk value in ``var`` inline and call the slow check when it fails."""
    if not t.fast:
        return []
    return [f"{indent}if not ({_sub(t.fast, var)}):", f"{indent}    {_sub(t.slow, var, field)}"]


def _gen_encoder(kind: Kind) -> str:
    lines = [f"def _pack_{kind.name}(e, ref):"]
    if any(f.type is MESSAGES for f in kind.fields):
        lines.append("    index = ref.__self__.index")
    return "\n".join(lines + _encoder_body(kind, "    ", "return {a}")) + "\n"


def _encoder_body(kind: Kind, indent: str, emit: str) -> list[str]:
    """The statements that make the chunk array of the event ``e`` of ``kind`` and ``emit`` it (a template:
    ``{a}`` is the array). Its items are made in array order (``ref`` numbers presences in order of first
    use); nils at the end are left off (never the first ``lo`` items), the array built once at its length."""
    lo, _hi = kind.lengths
    lines: list[str] = []
    items = [str(kind.code)]
    for f in kind.chunk_order():
        var = f"x{f.short}"
        lines.append(f"{indent}{var} = e.{f.name}")
        lines += _guard(var, f.type, indent)
        if f.type is MESSAGES:
            lines += _message_rows(var, f"i{f.short}", indent)
            items.append(f"i{f.short}")
            continue
        packed = _sub(f.type.pack, var)
        if f.omit == BOTH:
            packed = f"None if {_is_default(var, f.default)} else {packed}"
        if packed != var:
            lines.append(f"{indent}i{f.short} = {packed}")
            packed = f"i{f.short}"
        items.append(packed)
    arrays = [emit.replace("{a}", f"[{', '.join(items[:k])}]") for k in range(len(items), lo - 1, -1)]
    if len(arrays) == 1:
        return [*lines, indent + arrays[0]]
    for k, array in zip(range(len(items), lo, -1), arrays, strict=False):
        lines += [f"{indent}{'if' if k == len(items) else 'elif'} {items[k - 1]} is not None:", f"{indent}    {array}"]
    return [*lines, f"{indent}else:", f"{indent}    {arrays[-1]}"]


def _guard(var: str, t: Type, indent: str) -> list[str]:
    """Lines that mark the chunk as not plain (``ref.__self__.plain``, see ``recorder.format._codec``) when
    the value in ``var``, of the type ``t``, holds anything but msgpack's own types (``Type.plain``), or is a
    row holding such a field: msgspec would pack it in a form of its own (a ``datetime`` as a string...)
    where msgpack packs it otherwise or refuses it, and a writer gives msgpack's bytes or msgpack's error."""
    if t.plain:
        return [f"{indent}if not ({_sub(t.plain, var)}):", f"{indent}    ref.__self__.plain = False"]
    if t.record is not None:
        return [line for f in t.record.fields for line in _guard(f"{var}.{f.name}", f.type, indent)]
    return []


def _message_rows(messages: str, rows: str, indent: str) -> list[str]:
    """A loop's messages -> their chunk rows, the writer's hottest path (one row per message).

    Rows are tuples (a tuple display costs less than a list's; msgpack packs both as one array), and each
    sender is looked up in the chunk's presence table (``index``, ``ref.__self__.index``: a ``Presence``
    hashes in C) without a call of ours per message. A sender the table does not hold yet fails that
    lookup: the loop's rows are then made again through ``ref``, which adds each new sender in message
    order, so the table (and the bytes) are what ``ref`` alone gives.

    With the compiled helper (``recorder.format._rows``, see ``native_rows``) the fast comprehension is one call
    of it, which makes the very same rows (the same values, in the same order of evaluation, the same errors)
    at about a third of the comprehension's cost."""
    fast = _row_pack(MESSAGE, "m", "()", "index[{v}]")
    slow = _row_pack(MESSAGE, "m", "()")
    made = f"_native_rows({messages}, index)" if _NATIVE["on"] else f"[{fast} for m in {messages}]"
    return [
        f"{indent}try:",
        f"{indent}    {rows} = {made}",
        f"{indent}except KeyError:",
        f"{indent}    {rows} = [{slow} for m in {messages}]",
    ]


#: whether the generated loop encoders call the compiled row helper (``native_rows``)
_NATIVE = {"on": _native is not None}


def _gen_encode_events() -> str:
    """``encode_events(events, ref)``: every event's chunk array. A loop, nearly every event of a match, is
    encoded right here (``_encoder_body``), without a call per event; the other kinds call their encoder."""
    lines = [
        "def _encode_events(events, ref):",
        "    index = ref.__self__.index",
        "    out = []",
        "    append = out.append",
        "    for e in events:",
        "        if e.__class__ is not LoopCall:",
        "            append(_PACKERS[e.__class__](e, ref))",
        "            continue",
        *_encoder_body(LOOP, "        ", "append({a})"),
        "    return out",
    ]
    return "\n".join(lines) + "\n"


def _gen_kind_decoder(kind: Kind, indent: str, emit: str = "yield") -> list[str]:
    """One kind's branch of ``iter_events``: ``ev`` is its array of ``k`` items (``emit``: ``yield`` the
    record, or ``return`` it)."""
    lo, hi = kind.lengths
    out = [f"{indent}if not {lo} <= k <= {hi}:", f"{indent}    _wrong_length({kind.code}, k)"]
    for f in kind.chunk_order():
        pos, field, inner = f.short, repr(f.name), indent
        if f.omit == BOTH:  # may be left off the end
            out.append(f"{indent}if k > {pos}:")
            inner = indent + "    "
        out.append(f"{inner}v = ev[{pos}]")
        out += _checked("v", f.type, field, inner)
        out.append(f"{inner}a{pos} = {_sub(f.type.unpack, 'v', field)}")
        if f.omit == BOTH:
            out += [f"{indent}else:", f"{indent}    a{pos} = {_literal(f.default)}"]
    by_name = {f.name: f"a{f.short}" for f in kind.fields}
    out.append(f"{indent}{emit} _build_{kind.name}({', '.join(by_name[f.name] for f in _constructor_order(kind))})")
    return out


#: a plain loop as ``iter_replay`` yields it: (tick, message rows, whether an outcome was recorded, the
#: recorded digest or None, the recorded broadcast rows or None, the chunk's presences, the chunk payload,
#: the event's index in it, origin, the messages already decoded or None: ``iter_replay_typed`` decodes
#: them, ``iter_replay`` leaves the rows to ``MessageBatch.rows_decoder``, which checks each)
PLAIN_LOOP_FIELDS = (
    "tick",
    "rows",
    "has_outcome",
    "digest",
    "broadcasts",
    "presences",
    "payload",
    "index",
    "origin",
    "messages",
)

_PLAIN_LOOP = [  # iter_replay's loop branch, before the reference decoding (which runs when this falls through)
    "if 3 <= k <= 5 and (k < 5 or not ev[4]):",  # nondeterministic values recorded: the reference path
    "    t = ev[1]",
    "    mr = ev[2]",
    "    if t.__class__ is int and 0 <= t <= INT64_MAX and mr.__class__ is list:",
    "        out = ev[3] if k > 3 else None",
    "        if out is None:",
    "            yield (t, mr, False, None, None, ps, payload, i, origin, None)",
    "            continue",
    "        if out.__class__ is dict:",
    "            if len(out) == 1:",  # the common case: the digest alone (OUTCOME_LONE)
    "                dg = out.get('d')",
    "                if dg.__class__ is int and dg >= 0:",
    "                    yield (t, mr, True, dg, None, ps, payload, i, origin, None)",
    "                    continue",
    "            plain = _plain_outcome(out)",
    "            if plain is not None:",
    "                yield (t, mr, True, plain[0], plain[1], ps, payload, i, origin, None)",
    "                continue",
]


def _plain_outcome(out: dict[Any, Any]) -> tuple[int | None, list[Any] | None] | None:
    """(digest, broadcast rows) of a loop's recorded outcome map that holds nothing but a digest, broadcasts
    to everyone without a sender, a snapshot and a ``stopped`` of false, every field good as
    ``_unpack_OUTCOME`` checks it (it would decode to an ``Outcome`` with those fields and the defaults);
    None for anything else (the reference decoding then decides, errors included)."""
    get = out.get
    if (
        get("a") is not None
        or get("r") is not None
        or get("tr") is not None
        or get("l") is not None
        or get("rp") is not None
        or get("k")
        or get("lu")
        or get("x", False) is not False
    ):
        return None
    s = get("s")
    d = get("d")
    if not (s is None or s.__class__ is bytes) or not (d is None or (d.__class__ is int and d >= 0)):
        return None
    b = get("b")
    if not b:
        return d, None
    if b.__class__ is not list:
        return None
    for r in b:
        if not (
            r.__class__ is list
            and len(r) == 6
            and r[2] is None
            and r[3] is None
            and r[0].__class__ is int
            and r[0] <= INT64_MAX
            and (r[1] is None or r[1].__class__ is bytes)
            and (r[4] is True or r[4] is False)
            and (r[5] is True or r[5] is False)
        ):
            return None
    return d, b


def _gen_iter_events(name: str = "iter_events", replay: bool = False) -> str:
    """The chunk decoder; ``replay``: ``iter_replay``, which yields a loop whose fields are plain (see
    ``PLAIN_LOOP_FIELDS``) as a tuple of its encoded parts instead of a ``LoopCall``."""
    order = [LOOP, JOIN_ATTEMPT, JOIN, LEAVE, SIGNAL, INIT, TERMINATE, CRASH, WIRE]  # a loop per tick first
    assert sorted(k.code for k in order) == list(range(len(KINDS)))
    lines = [
        f"def {name}(payload, origin=('<memory>', 0, 0), presence_cache=None):",
        "    i = -1",
        "    try:",
        "        if payload.__class__ is not list or len(payload) != 2:",
        "            raise InvalidValue('', f'a chunk payload is [presences, events], got {show(payload)}')",
        "        rows, encoded = payload",
        "        ps = _presences(rows, presence_cache)",
        "        n = len(ps)",
        "        if encoded.__class__ is not list:",
        "            raise InvalidValue('events', f'must be an array, got {show(encoded)}')",
        "        for ev in encoded:",
        "            i += 1",
        "            if ev.__class__ is not list or not ev:",
        "                raise InvalidValue('', f'an event is an array [kind, ...], got {show(ev)}')",
        "            code = ev[0]",
        "            if code.__class__ is not int:",
        "                raise InvalidValue('', f'unknown event kind code {show(code)}')",
        "            k = len(ev)",
    ]
    for j, kind in enumerate(order):
        lines.append(f"            {'if' if j == 0 else 'elif'} code == {kind.code}:")
        if replay and kind is LOOP:
            lines += [" " * 16 + line for line in _PLAIN_LOOP]
        lines += _gen_kind_decoder(kind, " " * 16)
    lines += [
        "            else:",
        "                raise InvalidValue('', f'unknown event kind code {show(code)}')",
        *_CHUNK_ERRORS,
    ]
    return "\n".join(lines) + "\n"


_CHUNK_ERRORS = [  # how a chunk decoder turns a failure into CorruptRecording naming the event and field
    "    except InvalidValue as exc:",
    "        raise _corrupt(origin, _encoded_kind(payload, i), i, exc) from None",
    "    except RecordingError:",
    "        raise",
    "    except Exception as exc:  # a failure no check foresaw: still a bad writer, never a crash",
    "        problem = f'{type(exc).__name__}: {exc}'",
    "        raise _corrupt(origin, _encoded_kind(payload, i), i, InvalidValue('', problem)) from exc",
]


def _gen_decode_loop() -> str:
    """``decode_loop(payload, i, ps, origin)``: event ``i`` of a chunk, a loop, decoded by the very lines
    ``iter_events`` runs (what a plain loop of ``iter_replay`` is, as a record)."""
    lines = [
        "def decode_loop(payload, i, ps, origin):",
        "    try:",
        "        ev = payload[1][i]",
        "        n = len(ps)",
        "        k = len(ev)",
        *_gen_kind_decoder(LOOP, " " * 8, "return"),
        *_CHUNK_ERRORS,
    ]
    return "\n".join(lines) + "\n"


def _gen_map_codec(record: Record, name: str, label: str, lone: str = "") -> str:
    """Encoder and decoder of a record kept as a map with short keys (an outcome): a field holding its
    default is left out; an absent key (or nil, or an empty list) decodes to the default. A map holding
    only the field ``lone`` (optional, checked inline), good, is decoded without looking up the others."""
    enc = [f"def _pack_{name}(o, ref):", "    out = {}"]
    dec = [
        f"def _unpack_{name}(d, ps, n):",
        "    if d.__class__ is not dict:",
        f"        raise InvalidValue({label!r}, f'must be a map, got {{show(d)}}')",
        "    get = d.get",
    ]
    if lone:
        only = next(f for f in record.fields if f.name == lone)
        assert only.default is None and only.type.fast, "a lone field is optional and checked inline"
        args = ", ".join(
            _sub(only.type.unpack, "v") if f is only else _literal(f.default) for f in _constructor_order(record)
        )
        dec += [
            "    if len(d) == 1:",
            f"        v = get({only.short!r})",
            f"        if v is not None and ({_sub(only.type.fast, 'v')}):",
            f"            return _build_{name}({args})",
        ]
    for f in record.fields:
        field = repr(f"{label}.{f.name}")
        enc += [f"    val = o.{f.name}", f"    if {_holds_more('val', f.default)}:"]
        if f.type.item is None:
            enc += _guard("val", f.type, "        ")
            enc.append(f"        out[{f.short!r}] = {_sub(f.type.pack, 'val')}")
        else:  # a loop, not a comprehension: an outcome's lists are short, and a comprehension's call costs more
            enc += [
                "        items = []",
                "        for x in val:",
                *_guard("x", f.type.item, "            "),
                f"            items.append({_sub(f.type.item.pack, 'x')})",
                f"        out[{f.short!r}] = items",
            ]
        if f.default is None:
            dec += [f"    v = get({f.short!r})", "    if v is None:", f"        a_{f.name} = None", "    else:"]
            dec += _checked("v", f.type, field, "        ")
            dec.append(f"        a_{f.name} = {_sub(f.type.unpack, 'v', field)}")
        elif f.default == ():
            dec += [f"    v = get({f.short!r})", f"    a_{f.name} = {_sub(f.type.unpack, 'v', field)} if v else ()"]
        else:
            dec.append(f"    v = get({f.short!r}, {f.default!r})")
            dec += _checked("v", f.type, field, "    ")
            dec.append(f"    a_{f.name} = {_sub(f.type.unpack, 'v', field)}")
    enc.append("    return out")
    dec.append(f"    return _build_{name}({', '.join(f'a_{f.name}' for f in _constructor_order(record))})")
    return "\n".join(enc) + "\n\n\n" + "\n".join(dec) + "\n"


def _gen_list(name: str, item: Type) -> str:
    """The chunk decoder of a list field: every item checked, named ``field[j]``."""
    field = "f'{f}[{j}]'"
    lines = [
        f"def _list_{name}(v, ps, n, f):",
        "    if v.__class__ is not list:",
        "        raise InvalidValue(f, f'must be an array, got {show(v)}')",
        "    out = []",
        "    for j, x in enumerate(v):",
        *_checked("x", item, field, "        "),
        f"        out.append({_sub(item.unpack, 'x', field)})",
        "    return tuple(out)",
    ]
    return "\n".join(lines) + "\n"


def _gen_row(record: Record, name: str, build: bool = True) -> str:
    """The chunk decoder of one positional row of ``record`` (a broadcast, a message), each field named
    ``field.name``; ``build=False``: the checks alone (``_check_<name>``, returns None)."""
    order = record.chunk_order()
    shape = "[" + ", ".join(f.name for f in order) + "]"
    lines = [
        f"def _{'row' if build else 'check'}_{name}(r, ps, n, f):",
        f"    if r.__class__ is not list or len(r) != {len(order)}:",
        f"        _wrong_row(r, f, {shape!r})",
    ]
    for f in order:
        field = f"_join(f, {f.name!r})"
        lines.append(f"    v = r[{f.short}]")
        lines += _checked("v", f.type, field, "    ")
        if build:
            lines.append(f"    a_{f.name} = {_sub(f.type.unpack, 'v', field)}")
    if build:
        lines.append(f"    return _build_{name}({', '.join(f'a_{f.name}' for f in _constructor_order(record))})")
    return "\n".join(lines) + "\n"


def _gen_rows(record: Record, name: str) -> str:
    """All rows of ``record`` at once (a loop's messages), as a new list: one comprehension, every field checked
    inline; any failure raises ``ValueError`` (``_check_<name>`` then names the row and field)."""
    order = record.chunk_order()
    names = {f.name: f"x{f.short}" for f in order}
    checks = " and ".join(f"({_sub(f.type.fast, names[f.name])})" for f in order if f.type.fast)
    args = ", ".join(_sub(f.type.unpack, names[f.name]) for f in _constructor_order(record))
    return (
        f"def _rows_{name}(rows, ps):\n"
        "    n = len(ps)\n"
        f"    return [_build_{name}({args}) for {', '.join(names.values())} in rows if ({checks}) or _reject()]\n"
    )


def _gen_json_writer(record: Record, name: str, kind: str = "") -> str:
    """``record`` -> its JSON object: keys in table order, a field that may be left out left out when it
    holds its default."""
    head = [f"'kind': {kind!r}"] if kind else []
    lines = [f"def _json_{name}(e):", "    out = {}"]
    for f in record.fields:
        value = _sub(f.type.out, "val")
        if not f.omit and not lines[2:]:  # the leading fields that are always written: one display
            head.append(f"{f.json!r}: {_sub(f.type.out, 'e.' + f.name)}")
            continue
        lines.append(f"    val = e.{f.name}")
        if f.omit:
            lines += [f"    if {_holds_more('val', f.default)}:", f"        out[{f.json!r}] = {value}"]
        else:
            lines.append(f"    out[{f.json!r}] = {value}")
    lines[1] = f"    out = {{{', '.join(head)}}}"
    lines.append("    return out")
    return "\n".join(lines) + "\n"


def _wrong_length(code: int, k: int) -> None:
    kind = KINDS[code]
    lo, hi = kind.lengths
    raise InvalidValue("", f"a {kind.name} event is {kind.chunk_shape()} ({lo} to {hi} items), got {k}")


def _unpack_nondeterministic(items: Any) -> tuple[Nondeterministic, ...]:
    out = []
    for j, item in enumerate(_array(items, "nondeterministic")):
        if type(item) is not list or len(item) != 2:
            raise InvalidValue(f"nondeterministic[{j}]", "must be [source, value]")
        out.append(
            Nondeterministic(
                validate.text(item[0], f"nondeterministic[{j}].source"),
                validate.value(item[1], f"nondeterministic[{j}].value"),
            )
        )
    return tuple(out)


def _encoded_kind(payload: Any, i: int) -> str:
    """The kind name of event ``i`` of a chunk payload, for messages ("" when it cannot be told)."""
    try:
        code = payload[1][i][0]
        return KIND_NAMES[code] if type(code) is int and 0 <= code < len(KIND_NAMES) else ""
    except Exception:  # only a label for an error message
        return ""


def _corrupt(origin: tuple[str, int, int], kind: str, i: int, exc: InvalidValue) -> CorruptRecording:
    """``CorruptRecording`` for a bad field of event ``i`` (-1: the chunk's own structure)."""
    field = exc.field if i < 0 else (f"events[{i}].{exc.field}" if exc.field else f"events[{i}]")
    where = f"event {i}" + (f" ({kind})" if kind else "") if i >= 0 else "chunk"
    what = f"{exc.field}: {exc.problem}" if exc.field else exc.problem
    return CorruptRecording(*origin, f"{where}: {what}", field=field)


def _presences(rows: Any, cache: dict[tuple[Any, ...], Presence] | None) -> list[Presence]:
    """A chunk's presence table; ``cache`` (one per reader) builds and checks each distinct row once."""
    if type(rows) is not list:
        raise InvalidValue("presences", f"must be an array, got {show(rows)}")
    out = []
    for j, row in enumerate(rows):
        key = tuple(row) if type(row) is list else None
        p = None
        if cache is not None and key is not None:
            try:
                p = cache.get(key)
            except TypeError:  # an unhashable item: reported by the checks below
                key = None
        if p is None:
            p = _presence_row(row, j)
            if cache is not None and key is not None and len(cache) < 65536:
                cache[key] = p  # bounded: a match has few distinct presences, a hostile file many
        out.append(p)
    return out


def _presence_row(row: Any, j: int) -> Presence:
    where = f"presences[{j}]"
    order = PRESENCE.chunk_order()
    if type(row) is not list or len(row) != len(order):
        raise InvalidValue(where, "must be [" + ", ".join(f.name for f in order) + "]")
    for f, v in zip(order, row, strict=True):
        if f.type is TEXT:
            validate.text(v, f"{where}.{f.name}")
        else:
            validate.int64(v, f"{where}.{f.name}")
    return cast(Presence, _build_PRESENCE(*row))


def _namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {
        "INT64_MAX": INT64_MAX,
        "PLAIN_SCALARS": PLAIN_SCALARS,
        "plain_value": plain_value,
        "InvalidValue": InvalidValue,
        "RecordingError": RecordingError,
        "MessageBatch": MessageBatch,
        "validate": validate,
        "show": show,
        "to_json_value": jv.to_json_value,
        "_array": _array,
        "_free_map": _free_map,
        "_text_map": _text_map,
        "_bytes_or_nil": _bytes_or_nil,
        "_not_a_number": _not_a_number,
        "_wrong_row": _wrong_row,
        "_reject": _reject,
        "_join": _join,
        "_wrong_length": _wrong_length,
        "_data_json": _data_json,
        "_unpack_nondeterministic": _unpack_nondeterministic,
        "_presences": _presences,
        "_encoded_kind": _encoded_kind,
        "_corrupt": _corrupt,
        "_plain_outcome": _plain_outcome,
    }
    for kind in KINDS:
        ns[f"_build_{kind.name}"] = record_builder(kind.cls)
    for record, name in ((OUTCOME, "OUTCOME"), (BROADCAST, "BROADCAST"), (PRESENCE, "PRESENCE"), (MESSAGE, "MESSAGE")):
        ns[f"_build_{name}"] = record_builder(record.cls)
    if _native is not None:
        ns["_native_rows"] = _native.rows
    return ns


_NS = _namespace()
_build_PRESENCE = _NS["_build_PRESENCE"]


def _check_tables() -> None:
    """Every table names each field of its record once, and a kind's chunk positions run 1..n with the
    fields that may be left off the end last (a record field the table forgot would be silently dropped)."""
    for record in (PRESENCE, MESSAGE, BROADCAST, NONDETERMINISTIC, OUTCOME, HEADER, *KINDS):
        names = [f.name for f in record.fields]
        wanted = [f.name for f in fields(record.cls)]
        if sorted(names) != sorted(wanted) or len({f.json for f in record.fields}) != len(names):
            raise AssertionError(f"the {record.cls.__name__} table names {names}, the record has {wanted}")
    for kind in KINDS:
        order = kind.chunk_order()
        optional = [f.omit == BOTH for f in order]
        if [f.short for f in order] != list(range(1, len(order) + 1)) or optional != sorted(optional):
            raise AssertionError(f"the {kind.name} table's chunk positions are not 1..n with optional fields last")


def _build() -> None:
    """Generate every function from the tables, once."""
    _check_tables()
    for name, item in _LISTS.items():
        _compile(f"_list_{name}", _gen_list(name, item), _NS)
    for name, record in _ROWS.items():
        _compile(f"_row_{name}", _gen_row(record, name), _NS)
    _compile("_row_MESSAGE", _gen_row(MESSAGE, "MESSAGE"), _NS)
    _compile("_check_MESSAGE", _gen_row(MESSAGE, "MESSAGE", build=False), _NS)
    MessageBatch.rows_decoder = _compile("_rows_MESSAGE", _gen_rows(MESSAGE, "MESSAGE"), _NS)
    MessageBatch.row_checker = _NS["_check_MESSAGE"]
    codec = _gen_map_codec(OUTCOME, "OUTCOME", "outcome", OUTCOME_LONE)
    _compile("_pack_OUTCOME", codec, _NS)
    _SOURCES["_unpack_OUTCOME"] = codec
    for record, name in ((PRESENCE, "PRESENCE"), (MESSAGE, "MESSAGE"), (NONDETERMINISTIC, "NONDETERMINISTIC")):
        _compile(f"_json_{name}", _gen_json_writer(record, name), _NS)
    for name, record in (("BROADCAST", BROADCAST), ("OUTCOME", OUTCOME)):
        _compile(f"_json_{name}", _gen_json_writer(record, name), _NS)
    _compile("_json_HEADER", _gen_json_writer(HEADER, "HEADER", "header"), _NS)
    for kind in KINDS:
        _PACKERS[kind.cls] = _compile(f"_pack_{kind.name}", _gen_encoder(kind), _NS)
        _JSON_WRITERS[kind.cls] = _compile(f"_json_{kind.name}", _gen_json_writer(kind, kind.name, kind.name), _NS)
    _NS["_PACKERS"], _NS["LoopCall"] = _PACKERS, LoopCall
    _compile("_encode_events", _gen_encode_events(), _NS)
    _compile("iter_events", _gen_iter_events(), _NS)
    _compile("iter_replay", _gen_iter_events("iter_replay", replay=True), _NS)
    _compile("decode_loop", _gen_decode_loop(), _NS)


_PACKERS: dict[type, Callable[[Any, Callable[[Presence], int]], list[Any]]] = {}
_JSON_WRITERS: dict[type, Callable[[Any], dict[str, Any]]] = {}
_build()


def native_rows(enabled: bool | None = None) -> bool:
    """Whether the writer makes a loop's message rows with the compiled helper (``recorder.format._rows``, built
    by ``pip install`` where a C compiler is there) rather than in Python; the rows, and so the bytes, are the
    same either way. ``enabled`` turns it off or back on (on only where the helper was built) by generating the
    loop encoders again; for tests and comparisons."""
    if enabled is not None:
        _NATIVE["on"] = enabled and _native is not None
        _PACKERS[LoopCall] = _compile("_pack_loop", _gen_encoder(LOOP), _NS)
        _compile("_encode_events", _gen_encode_events(), _NS)
    return _NATIVE["on"]


iter_events: Callable[..., Iterator[Event]] = _NS["iter_events"]
#: ``iter_events`` for a replay: a loop that is plain (recorded nondeterministic values none; its outcome
#: absent, or a digest, broadcasts to everyone without a sender, a snapshot: ``_plain_outcome``) comes as
#: a tuple of its encoded parts (``PLAIN_LOOP_FIELDS``), so that the replay compares its outcome without
#: building it; ``decode_loop(payload, index, presences, origin)`` makes the record of one when needed
iter_replay: Callable[..., Iterator[Any]] = _NS["iter_replay"]
decode_loop: Callable[[Any, int, list[Presence], tuple[str, int, int]], LoopCall] = _NS["decode_loop"]
iter_events.__doc__ = """Decode a chunk payload ``[presences, events]``, one event at a time.

Building each record only when it is asked for keeps records short-lived: a reader's consumer drops each
one before the next is built, so the garbage collector never has to walk a whole chunk of them. Every
field is checked as its table says; malformed input raises ``CorruptRecording`` naming ``origin`` (path,
offset, chunk), the event and the field when the iteration reaches it. A loop's messages are checked when
they are first used (``MessageBatch``)."""


def encode_events(events: list[Event], ref: Callable[[Presence], int]) -> list[list[Any]]:
    """Each event as its chunk array (``ref`` gives a presence's index in the chunk's table)."""
    try:
        return cast(list[list[Any]], _NS["_encode_events"](events, ref))
    except KeyError:
        for e in events:
            kind_of(e)  # raises TypeError naming the first event that is not one
        raise


def event_to_json(e: Event) -> dict[str, Any]:
    """One event as its JSON Lines object (``kind`` first, then the table's fields)."""
    write = _JSON_WRITERS.get(e.__class__)
    if write is None:
        raise TypeError(f"not a recordable event: {e!r}")
    return write(e)


def header_to_json(h: Header) -> dict[str, Any]:
    """The header line. Every header field is written, so an export keeps all of them."""
    return cast(dict[str, Any], _NS["_json_HEADER"](h))


def source(name: str) -> str:
    """The generated code of one function (``iter_events``, ``_pack_loop``, ``_json_loop``...)."""
    return _SOURCES[name]


def describe(record: Record) -> str:
    """A table of ``record``'s fields, for documentation and debugging."""
    rows = [("name", "short", "json", "type", "default", "omit")]
    rows += [(f.name, str(f.short), f.json, f.type.name, repr(f.default), f.omit) for f in record.fields]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    title = f"{record.cls.__name__}" + (
        f" (kind {record.name!r}, code {record.code})" if isinstance(record, Kind) else ""
    )
    return (
        title + "\n" + "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    )


# -- typed chunk decoding: a replay's fast path ----------------------------------------------------------
# A chunk made of plain loops only (what a match writes after its first chunk, tick after tick) is decoded
# by msgspec against the types below, in C: every field is checked there as the tables check it (the
# msgspec type of each table type is in ``_TYPED``), and the messages of each loop are then built without
# checking a field again. The types accept a subset of what ``iter_replay`` accepts as plain loops (the same
# tick, rows, outcome keys and broadcast rows; an outcome map with any other key, nil or not, a
# nondeterministic value, an event of any other kind or anything msgspec reads otherwise than msgpack does
# (text that is not UTF-8, an extension type) does not fit). A chunk that does not fit is decoded by the
# reference, ``iter_replay``, whole: it holds what the reference accepts (decoded the same) or refuses (with
# its error, at its event). ``tests/format/test_replay_events.py`` holds the two to each other, value or error.

_TYPED: dict[Type, Any] = {
    TICK: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)],
    INT64: Annotated[int, msgspec.Meta(le=INT64_MAX)],  # msgpack holds no integer below int64's minimum
    UINT64: Annotated[int, msgspec.Meta(ge=0)],  # nor one above uint64's maximum
    BOOL: bool,
    DATA: bytes | None,  # msgpack's bin (a str or an extension type is no ``bytes`` to msgspec)
    PRESENCE_INDEX: Annotated[int, msgspec.Meta(ge=0)],  # below the table's length: ``ps[i]`` raises otherwise
}


_TUPLE: Any = tuple  # subscripted with types made here (mypy reads no type in a variable)
_LIST: Any = list


def _typed_row(record: Record, none: tuple[str, ...] = ()) -> Any:
    """A row of ``record`` as a msgspec tuple type, the fields named in ``none`` nil (a plain broadcast)."""
    return _TUPLE[tuple(type(None) if f.name in none else _TYPED[f.type] for f in record.chunk_order())]


def _typed_outcome() -> Any:
    """A plain loop's outcome map: its digest, broadcasts to everyone without a sender, its snapshot; no other key."""
    kept = {
        "digest": _TYPED[UINT64],
        "snapshot": _TYPED[DATA],
        "broadcasts": _LIST[_typed_row(BROADCAST, ("targets", "sender"))],
    }
    table = [f for f in OUTCOME.fields if f.name in kept]
    assert len(table) == len(kept) and all(f.default in (None, ()) for f in table)
    return msgspec.defstruct(
        "_PlainOutcome",
        [(f.name, kept[f.name] | None, None) for f in table],
        rename={f.name: str(f.short) for f in table},
        forbid_unknown_fields=True,
        gc=False,
    )


def _typed_chunk() -> Any:
    """``[presences, events]`` with plain loops for events, each ``[4, tick, rows, outcome?, []?]``."""
    order = LOOP.chunk_order()
    assert [f.name for f in order] == ["tick", "messages", "outcome", "nondeterministic"]
    loop = msgspec.defstruct(
        "_PlainLoop",
        [
            ("tick", _TYPED[TICK]),
            ("messages", _LIST[_typed_row(MESSAGE)]),
            ("outcome", _typed_outcome() | None, None),
            ("nondeterministic", Annotated[list[Any], msgspec.Meta(max_length=0)] | None, None),
        ],
        array_like=True,
        tag=LOOP.code,
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.defstruct(
        "_PlainChunk", [("presences", list[list[str | int]]), ("events", _LIST[loop])], array_like=True, gc=False
    )


_PlainChunk = _typed_chunk()
_build_MESSAGE = _NS["_build_MESSAGE"]
_TYPED_DECODER = msgspec.msgpack.Decoder(_PlainChunk)


def typed_chunk(payload: bytes) -> Any:
    """The chunk ``payload`` (msgpack bytes) decoded as plain loops (``_PlainChunk``: ``.presences``,
    ``.events``), or None when it is anything else: the reference decoding decides then."""
    try:
        return _TYPED_DECODER.decode(payload)
    except Exception:  # does not fit the types, or is no msgpack at all: iter_replay says which
        return None


class PlainLoops:
    """The plain loops of one chunk ``typed_chunk`` decoded, from ``next`` on (a replay runs them in one loop,
    ``replay.runtime.MatchRuntime.replay_plain``). ``events`` the typed loops (``.tick``, ``.messages``: rows
    as tuples, checked; ``.outcome``: None or ``.digest``, ``.broadcasts``, ``.snapshot``); ``presences`` the
    chunk's table; ``payload`` the chunk's msgpack tree, read only where the reference must decide (indexable,
    ``tree()`` the tree itself: ``decode_loop``); ``origin`` (path, offset, chunk). Iterating it yields the
    loops left as ``iter_replay`` tuples (``PLAIN_LOOP_FIELDS``, their messages decoded), ``next`` advancing."""

    __slots__ = ("events", "presences", "payload", "origin", "next")

    def __init__(self, events: list[Any], presences: list[Presence], payload: Any, origin: tuple[str, int, int]):
        self.events = events
        self.presences = presences
        self.payload = payload
        self.origin = origin
        self.next = 0

    def part(self, i: int) -> tuple[Any, ...]:
        """Loop ``i`` as an ``iter_replay`` tuple, its messages decoded (None, and its rows the tree's, when a
        sender index is past the presence table: ``MessageBatch`` then refuses them as the reader does);
        ``next`` moves past it."""
        self.next = i + 1
        ev = self.events[i]
        ps = self.presences
        rows = ev.messages
        try:
            messages = [_build_MESSAGE(ps[s], op, data, reliable, at) for s, op, data, reliable, at in rows]
        except IndexError:  # a sender past the presence table
            messages = None
            rows = self.payload[1][i][2]
        out = ev.outcome
        if out is None:
            return (ev.tick, rows, False, None, None, ps, self.payload, i, self.origin, messages)
        return (ev.tick, rows, True, out.digest, out.broadcasts or None, ps, self.payload, i, self.origin, messages)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while self.next < len(self.events):
            yield self.part(self.next)

    def calls(self) -> Iterator[LoopCall]:
        """The loops left as records (``decode_loop``), ``next`` advancing."""
        while self.next < len(self.events):
            i = self.next
            self.next = i + 1
            yield decode_loop(self.payload, i, self.presences, self.origin)


def plain_loops(
    chunk: Any,
    payload: Any,
    origin: tuple[str, int, int] = ("<memory>", 0, 0),
    presence_cache: dict[tuple[Any, ...], Presence] | None = None,
) -> Iterable[Any]:
    """What a replay reads of a chunk ``typed_chunk`` decoded: one ``PlainLoops``, or, when the reference refuses
    its presence table, ``iter_replay`` of its tree (which raises that error). ``payload`` as in ``PlainLoops``."""
    try:
        ps = _presences(chunk.presences, presence_cache)
    except Exception:
        return iter_replay(payload.tree(), origin, presence_cache)
    return (PlainLoops(chunk.events, ps, payload, origin),)


def iter_replay_typed(
    chunk: Any,
    payload: Any,
    origin: tuple[str, int, int] = ("<memory>", 0, 0),
    presence_cache: dict[tuple[Any, ...], Presence] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """``iter_replay`` of a chunk ``typed_chunk`` decoded: each loop as the tuple of its parts, its messages
    decoded (``PLAIN_LOOP_FIELDS``); the errors are the reference's (see ``plain_loops``)."""
    for item in plain_loops(chunk, payload, origin, presence_cache):
        if item.__class__ is PlainLoops:
            yield from item
        else:
            yield item
