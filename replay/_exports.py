"""Lazy exports for replay's packages: each public name is imported when it is first used.

A package's ``__init__`` lists its public API once as imports inside ``if TYPE_CHECKING:`` (what readers and
type checkers see) and once in ``__all__``, then ends with ``__getattr__, __dir__ = lazy_exports(__name__)``.
``lazy_exports`` reads those imports from the ``__init__``'s own source, so the two lists cannot disagree with
where the names live (``tests/test_exported_members.py`` checks them against ``__all__``). This is scientific
Python's SPEC 1 (``lazy_loader.attach_stub``), with the stub kept in the ``__init__`` itself.

Why lazy: ``import replay`` runs in every supervised handler process, in the pytest plugin of every test run and
before ``nakama-replay --help``; it must not pull numba (``replay.diff``), hypothesis (``replay.fuzz``, an
optional dependency), lupa or websockets. Internal code imports from the private modules directly.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "declared_exports"]


def declared_exports(init_file: str | Path) -> dict[str, tuple[str, str]]:
    """Public name -> (module, attribute), from the ``from M import a as b`` lines under ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"), str(init_file))
    where: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                for alias in stmt.names:
                    where[alias.asname or alias.name] = (stmt.module, alias.name)
    return where


def lazy_exports(package: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: a declared name is imported from its
    module on first access and then kept as an ordinary attribute."""
    module = sys.modules[package]
    where = declared_exports(module.__file__ or "")

    def __getattr__(name: str) -> Any:
        try:
            source, attr = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(source), attr)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(where))

    return __getattr__, __dir__


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
