"""Where did two state trajectories first go apart, and which fields differ there?

A trajectory is a sequence of match states (Python values) or of encoded states (``Packed`` msgpack
snapshots, e.g. read from a recording). ``first_divergence`` turns each state into a 64-bit digest of
its flattened leaves (numba, ``replay.kernels``) and scans the two digest arrays; ``field_diff`` merges
the two sorted leaf arrays at one index and names the differing paths with both values. Floats compare
bit for bit unless a ``Tolerance`` is given (NaN equals NaN when the bits are the same).

Python states are encoded with ``msgpack.packb`` (C speed) when every map key is a string; the kernels
normalise numbers exactly as ``recorder.canonical`` does, so that gives the same leaves as the canonical
bytes. States with other keys (Lua sequences as dicts, numeric keys) go through
``recorder.canonical.canonical_bytes``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import msgpack
import numpy as np

from recorder.canonical import canonical_bytes, leaves
from replay import kernels

__all__ = [
    "Tolerance",
    "PathDiff",
    "FieldDiff",
    "Divergence",
    "encode_states",
    "trajectory_digests",
    "first_divergence",
    "field_diff",
    "diff_trajectories",
    "MISSING",
]

#: Shown for a path that one side does not have.
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>", "__slots__": ()})()

Trajectory = Union[Sequence[Any], kernels.Packed]


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


@dataclass(frozen=True, slots=True)
class PathDiff:
    """One differing leaf: its readable path and the value on each side (``MISSING`` if absent)."""

    path: str
    a: Any
    b: Any

    def to_json(self) -> dict[str, Any]:
        out = {"path": self.path, "a": _json_value(self.a), "b": _json_value(self.b)}
        if self.a is MISSING or self.b is MISSING:
            out["missing"] = "a" if self.a is MISSING else "b"
        return out


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """The first ``limit`` differing paths (in path order) and how many differ in all."""

    paths: tuple[PathDiff, ...]
    count: int

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass(frozen=True, slots=True)
class Divergence:
    """Index of the first differing state; ``diff`` is None when one trajectory simply ended there."""

    index: int
    diff: FieldDiff | None


# ---------------------------------------------------------------- encoding


def encode_states(states: Sequence[Any]) -> kernels.Packed:
    """Encode Python states for the kernels (plain msgpack when that flattens canonically, else canonical)."""
    return _encode_and_digest(states)[0]


def _encode_and_digest(states: Sequence[Any]) -> tuple[kernels.Packed, np.ndarray]:
    blobs = []
    for state in states:
        try:
            blobs.append(msgpack.packb(state, use_bin_type=True))
        except (TypeError, ValueError, OverflowError):  # sets, objects, huge ints, lone surrogates ...
            blobs.append(canonical_bytes(state))  # ... raises StateError naming the path
    packed = kernels.pack(blobs)
    parallel = len(blobs) >= 64
    digests, bad = kernels.content_digests_checked(packed, parallel)
    if bad.size:
        for i in bad.tolist():
            blobs[i] = canonical_bytes(states[i])  # non-string keys: Lua sequences, numeric keys
        packed = kernels.pack(blobs)
        digests = kernels.content_digests(packed, parallel)
    return packed, digests


def _packed_and_digests(trajectory: Trajectory, parallel: bool = True) -> tuple[kernels.Packed, np.ndarray]:
    if isinstance(trajectory, kernels.Packed):
        return trajectory, kernels.content_digests(trajectory, parallel)
    return _encode_and_digest(trajectory)


def trajectory_digests(trajectory: Trajectory, parallel: bool = True) -> np.ndarray:
    """One 64-bit content digest per state (equal states, equal digests; key order does not matter)."""
    return _packed_and_digests(trajectory, parallel)[1]


# ---------------------------------------------------------------- comparing


def first_divergence(a: Trajectory, b: Trajectory, tolerance: Tolerance | None = None) -> int | None:
    """Index of the first state that differs (``min(len)`` when one is a prefix of the other), else None."""
    return _first(_packed_and_digests(a), _packed_and_digests(b), tolerance)


def _first(
    a: tuple[kernels.Packed, np.ndarray], b: tuple[kernels.Packed, np.ndarray], tolerance: Tolerance | None
) -> int | None:
    (pa, da), (pb, db) = a, b
    if tolerance is None or tolerance.exact:
        i = kernels.first_difference(da, db)
    else:
        i = kernels.first_divergence_tolerant(pa, pb, da, db, tolerance.rel, tolerance.abs)
    return None if i < 0 else i


def field_diff(
    a: Any, b: Any, tolerance: Tolerance | None = None, limit: int = 20, encoded: bool = False
) -> FieldDiff:
    """The differing leaves of two states, the first ``limit`` in path order, and their count.

    ``a`` and ``b`` are Python states, or with ``encoded=True`` their msgpack bytes (snapshots).
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    ba, bb = (bytes(a), bytes(b)) if encoded else (_state_bytes(a), _state_bytes(b))
    ha, va = kernels.flatten_bytes(ba)
    hb, vb = kernels.flatten_bytes(bb)
    tol = tolerance or Tolerance()
    ia, ib = kernels.merge_diff(ha, va, hb, vb, tol.rel, tol.abs)
    if not ia.size:
        return FieldDiff((), 0)
    named_a = _named(ba, {int(ha[i]) for i in ia.tolist() if i >= 0})
    named_b = _named(bb, {int(hb[j]) for j in ib.tolist() if j >= 0})
    found = []
    for i, j in zip(ia.tolist(), ib.tolist()):
        pa, xa = named_a[int(ha[i])] if i >= 0 else (None, MISSING)
        pb, xb = named_b[int(hb[j])] if j >= 0 else (None, MISSING)
        found.append(PathDiff(pa if pa is not None else pb, xa, xb))  # type: ignore[arg-type]
    found.sort(key=lambda d: _path_sort_key(d.path))
    return FieldDiff(tuple(found[:limit]), len(found))


def diff_trajectories(
    a: Trajectory, b: Trajectory, tolerance: Tolerance | None = None, limit: int = 20
) -> Divergence | None:
    """First divergence and the field diff there, or None when the trajectories are the same."""
    sa, sb = _packed_and_digests(a), _packed_and_digests(b)
    i = _first(sa, sb, tolerance)
    if i is None:
        return None
    pa, pb = sa[0], sb[0]
    if i >= len(pa) or i >= len(pb):
        return Divergence(i, None)
    return Divergence(i, field_diff(pa.blob(i), pb.blob(i), tolerance, limit, encoded=True))


# ---------------------------------------------------------------- helpers


def _state_bytes(x: Any) -> bytes:
    return encode_states([x]).blob(0)


def _named(data: bytes, wanted: set[int]) -> dict[int, tuple[str, Any]]:
    state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    return {h: (path, _display(leaf)) for path, h, _, leaf in leaves(state) if h in wanted}


def _display(leaf: Any) -> Any:
    """Numbers as ``nk.json_encode`` writes them: whole floats within 2**53 as ints."""
    if isinstance(leaf, float) and leaf.is_integer() and abs(leaf) <= 2**53:
        return int(leaf)
    return leaf


def _json_value(v: Any) -> Any:
    if v is MISSING:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, bytes):
        import base64

        return {"base64": base64.b64encode(v).decode("ascii")}
    return v


_NUM = re.compile(r"\[(\d+)\]")


def _path_sort_key(path: str) -> list[Any]:
    """Sort ``a[10]`` after ``a[9]``."""
    parts: list[Any] = []
    for i, piece in enumerate(_NUM.split(path)):
        parts.append((0, int(piece)) if i % 2 else (1, piece))
    return parts
