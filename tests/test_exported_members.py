"""``recorder.__all__`` lists exactly the public names the package defines (as httpx tests its exports)."""

from __future__ import annotations

import types

import recorder


def test_recorder_exports_exactly_its_public_names() -> None:
    public = {
        name
        for name, value in vars(recorder).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)  # submodules appear once imported
    }
    assert sorted(recorder.__all__) == sorted(public)
    assert len(recorder.__all__) == len(set(recorder.__all__))
