"""What the app's sections share: :class:`Pages` (settings, templates, the admin check)
and :class:`Section` (a group of pages: a title, a link and a router factory)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from modelyard.batch.config import BatchSettings
from modelyard.settings import Settings
from modelyard.ui import auth
from modelyard.ui.config import UiSettings

__all__ = ["Pages", "Section"]


@dataclass(frozen=True)
class Pages:
    """What every section's routes share: settings, templates and the admin check."""

    settings: Settings
    batch: BatchSettings
    ui: UiSettings
    templates: Jinja2Templates
    nav: list[tuple[str, str]] = field(default_factory=list)

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """Render ``template`` inside the layout, with the navigation and sign-in state."""
        context.update(
            nav=self.nav,
            admin=auth.is_admin(request, self.ui),
            read_only=self.ui.read_only,
            path=request.url.path,
        )
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)

    def check_admin(self, request: Request) -> None:
        """Refuse an action unless the visitor signed in (see :mod:`modelyard.ui.auth`)."""
        auth.check_admin(request, self.ui)


@dataclass(frozen=True)
class Section:
    """A group of pages: its navigation title and link, and its router's factory."""

    title: str
    path: str
    router: Callable[[Pages], APIRouter]
