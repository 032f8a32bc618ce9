"""Import optional dependencies late, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from modelyard.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{module} is not installed; run: pip install 'modelyard[{extra}]'"
        raise MissingExtraError(msg) from exc
