"""Hypothesis strategies for JSON-like match states (shared by the canonical form and kernel tests)."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["scalars", "states", "keys"]

keys = st.one_of(
    st.sampled_from(["hp", "x", "y", "u1", "u2", "players", "bullets", "a b", "é", "", "1", "2"]),
    st.text(max_size=6),
)

numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 2.0**53, 2.0**53 + 2, 2**53 + 1, -(2**53) - 1, 2**60, 0.1, 1e-5]),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=12),
    st.binary(max_size=12),
)


def states(max_leaves: int = 40) -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(keys, inner, max_size=5),
            st.lists(inner, min_size=1, max_size=4).map(lambda xs: {i + 1: x for i, x in enumerate(xs)}),
        ),
        max_leaves=max_leaves,
    )
