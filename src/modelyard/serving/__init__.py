"""Online serving: the FastAPI app behind ``modelyard serve``.

Example:
    >>> from modelyard.serving import ServeConfig, create_app
    >>> app = create_app(ServeConfig(models=["house-prices"]))   # any ASGI server runs it

Names are imported on first use, so importing this package
loads neither FastAPI nor uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.runtime.select import select_runtime
    from modelyard.serving.app import app_factory, create_app
    from modelyard.serving.config import ServeConfig
    from modelyard.serving.manager import ModelManager
    from modelyard.serving.server import serve

__all__ = ["ModelManager", "ServeConfig", "app_factory", "create_app", "select_runtime", "serve"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ModelManager": "modelyard.serving.manager",
        "ServeConfig": "modelyard.serving.config",
        "app_factory": "modelyard.serving.app",
        "create_app": "modelyard.serving.app",
        "select_runtime": "modelyard.runtime.select",
        "serve": "modelyard.serving.server",
    },
)
