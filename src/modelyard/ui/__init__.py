"""``modelyard ui``: the web app where people look rather than read.

Server-rendered pages (FastAPI + Jinja2, no front-end build step) over the registry and
the batch job tables: models and versions with their evaluation charts, batch jobs
(upload, live progress, failed rows, downloads) and live experiments. Each part of the
app is a :class:`~modelyard.ui.app.Section`: a router and its templates, listed in the
navigation; monitoring pages would be one more.

Names are imported on first use, so ``import modelyard.ui`` loads neither FastAPI nor
Jinja2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.ui.app import create_ui_app
    from modelyard.ui.config import UiSettings
    from modelyard.ui.pages import Section

__all__ = ["Section", "UiSettings", "create_ui_app"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Section": "modelyard.ui.pages",
        "UiSettings": "modelyard.ui.config",
        "create_ui_app": "modelyard.ui.app",
    },
)
