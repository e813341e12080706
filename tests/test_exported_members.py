"""Every package exports exactly its public names, and every module outside that API is private (as httpx tests
its exports): ``__all__`` of ``recorder``, ``replay`` and each subpackage is complete and resolves, and no
public-looking module appears beside the few that are public on purpose."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import recorder
import replay
from replay._exports import declared_exports

#: modules whose names do not start with "_" although they are not packages: namespaces used qualified
#: (``protocol as P``), the error trees, and the pytest plugin's entry point
PUBLIC_MODULES = {
    "recorder.errors",
    "recorder.wire.protocol",
    "recorder.wire.session_token",
    "replay.errors",
    "replay.regression.pytest_plugin",
}
#: names a module binds that are not part of its API: typing's flag, a lazy ``__init__``'s helper (replay._exports)
MACHINERY = {"TYPE_CHECKING", "lazy_exports", "annotations"}


def _walk(package: types.ModuleType) -> list[tuple[str, bool]]:
    """(module name, is a package) for the package and everything under it (walk_packages imports packages only)."""
    found = pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    return [(package.__name__, True)] + [(m.name, m.ispkg) for m in found if not m.name.endswith(".__main__")]


ALL_MODULES = [name for name, _ in _walk(recorder) + _walk(replay)]
PACKAGES = [name for name, is_package in _walk(recorder) + _walk(replay) if is_package]
EXPORTING = [name for name in PACKAGES if "._" not in name] + ["recorder.errors", "replay.errors"]


def _public(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)  # submodules appear once imported
    }


@pytest.mark.parametrize("name", EXPORTING)
def test_each_package_exports_exactly_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    if "__getattr__" in vars(module):  # a lazy __init__: the TYPE_CHECKING imports are the API, loaded on first use
        assert set(declared_exports(module.__file__)) == set(exported), (
            f"{name}: TYPE_CHECKING imports and __all__ differ"
        )
        assert _public(module) - set(exported) <= MACHINERY, f"{name} defines public names outside __all__"
    else:
        submodules = {n for n in exported if isinstance(getattr(module, n), types.ModuleType)}
        assert set(exported) - submodules == _public(module) - MACHINERY, f"{name}.__all__ is not its public names"
        assert all(getattr(module, n).__name__ == f"{name}.{n}" for n in submodules)
    for attr in exported:
        getattr(module, attr)


def test_every_other_module_is_private() -> None:
    public = {
        name
        for name in ALL_MODULES
        if not any(part.startswith("_") for part in name.split(".")) and name not in PACKAGES
    }
    assert public == PUBLIC_MODULES


def test_the_top_level_names_come_from_their_subpackages() -> None:
    for name in replay.__all__:
        value = getattr(replay, name)
        home = getattr(value, "__module__", "")
        assert home.startswith("replay.") or home.startswith("recorder."), (name, home)


def test_importing_replay_loads_no_heavy_or_optional_dependency() -> None:
    """``import replay`` (every supervised handler process, the pytest plugin, ``--help``) stays light: numba,
    hypothesis, lupa and websockets load when a name that needs them is first used."""
    code = (
        "import sys, replay, replay.runtime, replay.diff, replay.fuzz, replay.live, replay.regression, replay.lua; "
        "print(sorted(m for m in ('numba', 'hypothesis', 'lupa', 'websockets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
