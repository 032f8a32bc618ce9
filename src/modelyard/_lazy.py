"""Lazy package exports: a package's public names, imported from their modules on first use.

The package keeps its ``__all__`` and its ``TYPE_CHECKING`` imports (for type checkers
and readers) and gets module-level ``__getattr__`` and ``__dir__`` (PEP 562) from
:func:`lazy_exports`, so importing it stays cheap: ``import modelyard`` loads neither
pandas nor scikit-learn. scientific-python's ``lazy_loader`` does the same; this is the
dozen lines modelyard needs, without another dependency.

Example:
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"Registry": "modelyard.registry.registry"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose names live in ``homes``.

    Args:
        package: the package's ``__name__``.
        homes: each exported name and the module it is imported from.

    Returns:
        ``(__getattr__, __dir__)``; a name, once imported, is set on the package.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
