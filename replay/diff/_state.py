"""Where did two state trajectories first go apart, and which fields differ there?

A trajectory is a sequence of match states (Python values) or of encoded states (``Packed`` msgpack
snapshots, e.g. read from a recording). ``first_divergence`` walks both in numba (``replay.diff._kernels``):
states whose bytes are equal are equal and skipped at memory speed; the others are flattened into sorted
leaves and merged, which tells a real difference from the same state in another key order. ``field_diff``
merges the two sorted leaf arrays at one index and names the differing paths with both values.
``trajectory_digests`` gives one 64-bit digest per state for comparing with digests stored elsewhere.
Floats compare bit for bit unless a ``Tolerance`` is given (NaN equals NaN when the bits are the same).

Python states are encoded with plain ``msgpack.packb`` (C speed); the kernels normalise numbers exactly as
``recorder.format._canonical`` does, so that flattens to the canonical leaves. A state plain msgpack cannot say
enough about (non-string keys: Lua sequences kept as dicts) is compared in canonical form instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from recorder.format import canonical_bytes, leaves
from replay.diff import _kernels as kernels
from replay.errors import SnapshotError
from replay.report._values import exact_bytes, jsonable
from replay.runtime._result import Divergence

__all__ = [
    "Tolerance",
    "path_json",
    "FieldDiff",
    "StateDivergence",
    "encode_states",
    "trajectory_digests",
    "first_divergence",
    "field_diff",
    "diff_trajectories",
    "MISSING",
]


#: Shown for a path that one side does not have.
class _Missing:
    """The value of a path one side lacks (one object; pickles as itself, so results cross processes)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

Trajectory = Sequence[Any] | kernels.Packed


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Two finite floats are equal when ``|a - b| <= max(abs, rel * max(|a|, |b|))``; 0/0 means bit-exact."""

    rel: float = 0.0
    abs: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rel", "abs"):
            x = getattr(self, name)
            if not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0):
                raise ValueError(f"float tolerance {name} must be a finite number >= 0, got {x!r}")

    @property
    def exact(self) -> bool:
        return self.rel == 0.0 and self.abs == 0.0

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"1e-9"`` (relative), ``"rel=1e-9"``, ``"abs=1e-6"`` or ``"rel=1e-9,abs=1e-12"``."""
        rel = abs_ = 0.0
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, eq, number = part.partition("=")
            if not eq:
                name, number = "rel", part
            try:
                value = float(number)
            except ValueError:
                raise ValueError(f"float tolerance {part!r}: {number!r} is not a number") from None
            if name.strip() == "rel":
                rel = value
            elif name.strip() == "abs":
                abs_ = value
            else:
                raise ValueError(f"float tolerance {part!r}: use rel=X and/or abs=X")
        return cls(rel, abs_)

    def __str__(self) -> str:
        return "exact" if self.exact else f"rel={self.rel:g},abs={self.abs:g}"


def path_json(d: Divergence) -> dict[str, Any]:
    """A differing state path as ``diff --json`` writes it: its path, each side's value (bytes exactly, as
    ``{"base64": ...}``; ``null`` where absent) and which side it is missing from."""
    out = {"path": d.field, "a": _leaf_json(d.a), "b": _leaf_json(d.b)}
    if d.a is MISSING or d.b is MISSING:
        out["missing"] = "a" if d.a is MISSING else "b"
    return out


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """The first ``limit`` differing paths (in path order: ``Divergence`` records whose ``field`` is the path)
    and how many differ in all."""

    paths: tuple[Divergence, ...]
    count: int

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass(frozen=True, slots=True)
class StateDivergence:
    """Index of the first differing state; ``diff`` is None when one trajectory simply ended there."""

    index: int
    diff: FieldDiff | None


# ---------------------------------------------------------------- encoding


def encode_states(states: Sequence[Any]) -> kernels.Packed:
    """Encode Python states for the kernels: plain msgpack (C speed) where it can be packed, else canonical.

    Plain msgpack of a dict with non-string keys (a Lua sequence kept as a dict) packs, but the kernels
    refuse its keys; ``first_divergence`` and ``trajectory_digests`` then fall back to the canonical form of
    that state.
    """
    blobs = []
    for state in states:
        try:
            blobs.append(msgpack.packb(state, use_bin_type=True))
        except (TypeError, ValueError, OverflowError):  # sets, objects, huge ints, lone surrogates ...
            blobs.append(canonical_bytes(state))  # ... raises StateError naming the path
    return kernels.pack(blobs)


def _prepare(trajectory: Trajectory) -> tuple[kernels.Packed, Sequence[Any] | None]:
    if isinstance(trajectory, kernels.Packed):
        return trajectory, None
    return encode_states(trajectory), trajectory


def trajectory_digests(trajectory: Trajectory, parallel: bool = True) -> np.ndarray:
    """One 64-bit content digest per state (equal states, equal digests; key order does not matter)."""
    packed, states = _prepare(trajectory)
    if states is None:
        return kernels.content_digests(packed, parallel)
    digests, bad = kernels.content_digests_checked(packed, parallel)
    if bad.size:
        blobs = [packed.blob(i) for i in range(len(packed))]
        for i in bad.tolist():
            blobs[i] = canonical_bytes(states[i])
        digests = kernels.content_digests(kernels.pack(blobs), parallel)
    return digests


# ---------------------------------------------------------------- comparing


def first_divergence(a: Trajectory, b: Trajectory, tolerance: Tolerance | None = None) -> int | None:
    """Index of the first state that differs (``min(len)`` when one is a prefix of the other), else None."""
    return _first(_prepare(a), _prepare(b), tolerance or Tolerance())


def _first(
    a: tuple[kernels.Packed, Sequence[Any] | None], b: tuple[kernels.Packed, Sequence[Any] | None], tol: Tolerance
) -> int | None:
    (pa, sa), (pb, sb) = a, b
    start = 0
    while True:
        t, code, _side, _ = kernels.first_divergence_checked(pa, pb, tol.rel, tol.abs, start)
        if code == 0:
            return None if t < 0 else t
        if code != kernels.BAD_KEY:
            kernels.first_divergence(pa, pb, tol.rel, tol.abs, t)  # raises SnapshotError naming blob and offset
        # plain msgpack cannot say what a non-string key means: compare this state in canonical form
        if _field_diff_bytes(_tick_bytes(pa, sa, t), _tick_bytes(pb, sb, t), tol, 0).count:
            return t
        start = t + 1


def field_diff(a: Any, b: Any, tolerance: Tolerance | None = None, limit: int = 20, encoded: bool = False) -> FieldDiff:
    """The differing leaves of two states, the first ``limit`` in path order, and their count.

    ``a`` and ``b`` are Python states, or with ``encoded=True`` their msgpack bytes (snapshots).
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if encoded:
        ba, bb = _flattenable(bytes(a)), _flattenable(bytes(b))
    else:
        ba, bb = canonical_bytes(a), canonical_bytes(b)
    return _field_diff_bytes(ba, bb, tolerance or Tolerance(), limit)


def _field_diff_bytes(ba: bytes, bb: bytes, tol: Tolerance, limit: int) -> FieldDiff:
    ha, va = kernels.flatten_bytes(ba)
    hb, vb = kernels.flatten_bytes(bb)
    ia, ib = kernels.merge_diff(ha, va, hb, vb, tol.rel, tol.abs)
    if not ia.size or limit == 0:
        return FieldDiff((), int(ia.size))
    named_a = _named(ba, {int(ha[i]) for i in ia.tolist() if i >= 0})
    named_b = _named(bb, {int(hb[j]) for j in ib.tolist() if j >= 0})
    found = []
    for i, j in zip(ia.tolist(), ib.tolist()):
        pa, xa = named_a[int(ha[i])] if i >= 0 else (None, MISSING)
        pb, xb = named_b[int(hb[j])] if j >= 0 else (None, MISSING)
        path = pa if pa is not None else pb
        assert path is not None, "merge_diff pairs a field with at most one missing side"
        found.append(Divergence(path, xa, xb))
    found.sort(key=lambda d: _path_sort_key(d.field))
    return FieldDiff(tuple(found[:limit]), len(found))


def diff_trajectories(
    a: Trajectory, b: Trajectory, tolerance: Tolerance | None = None, limit: int = 20
) -> StateDivergence | None:
    """First divergence and the field diff there, or None when the trajectories are the same."""
    tol = tolerance or Tolerance()
    sa, sb = _prepare(a), _prepare(b)
    i = _first(sa, sb, tol)
    if i is None:
        return None
    if i >= len(sa[0]) or i >= len(sb[0]):
        return StateDivergence(i, None)
    return StateDivergence(i, _field_diff_bytes(_tick_bytes(*sa, i), _tick_bytes(*sb, i), tol, limit))


# ---------------------------------------------------------------- helpers


def _tick_bytes(packed: kernels.Packed, states: Sequence[Any] | None, i: int) -> bytes:
    """Bytes of state ``i`` the kernels can flatten: canonical when the Python state is at hand."""
    return _flattenable(packed.blob(i)) if states is None else canonical_bytes(states[i])


def _flattenable(data: bytes) -> bytes:
    """``data``, or its canonical form when plain msgpack carries non-string keys (a Lua sequence as a dict)."""
    try:
        kernels.flatten_bytes(data)
    except SnapshotError as exc:
        if exc.problem != kernels.BAD_KEY_PROBLEM:
            raise
        return canonical_bytes(msgpack.unpackb(data, raw=False, strict_map_key=False))
    return data


def _named(data: bytes, wanted: set[int]) -> dict[int, tuple[str, Any]]:
    state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    return {h: (path, _display(leaf)) for path, h, _, leaf in leaves(state) if h in wanted}


def _leaf_json(v: Any) -> Any:
    return None if v is MISSING else jsonable(v, exact_bytes)


def _display(leaf: Any) -> Any:
    """Numbers as ``nk.json_encode`` writes them: whole floats within 2**53 as ints."""
    if isinstance(leaf, float) and leaf.is_integer() and abs(leaf) <= 2**53:
        return int(leaf)
    return leaf


_NUM = re.compile(r"\[(\d+)\]")


def _path_sort_key(path: str) -> list[Any]:
    """Sort ``a[10]`` after ``a[9]``."""
    parts: list[Any] = []
    for i, piece in enumerate(_NUM.split(path)):
        parts.append((0, int(piece)) if i % 2 else (1, piece))
    return parts
