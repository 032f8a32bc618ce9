"""Online serving: the FastAPI app behind ``modelyard serve``.

Example:
    >>> from modelyard.serving import ServeConfig, create_app
    >>> app = create_app(ServeConfig(models=["house-prices"]))   # any ASGI server runs it

Names are imported on first use, so ``import modelyard.serving.runtime`` (used by batch
scoring) loads neither FastAPI nor uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.serving.app import app_factory, create_app
    from modelyard.serving.config import ServeConfig
    from modelyard.serving.manager import ModelManager, select_runtime
    from modelyard.serving.server import serve

__all__ = ["ModelManager", "ServeConfig", "app_factory", "create_app", "select_runtime", "serve"]

_HOMES = {
    "ModelManager": "manager",
    "ServeConfig": "config",
    "app_factory": "app",
    "create_app": "app",
    "select_runtime": "manager",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'modelyard.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"modelyard.serving.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
