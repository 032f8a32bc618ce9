"""The web app: sections (a router and its templates each), one layout, one error page.

:func:`create_ui_app` builds a FastAPI app from :data:`SECTIONS`. A section is a title,
the path its navigation link opens, and a function building its router from the
shared :class:`Pages` (settings, the template renderer, the admin check). A new page
group (monitoring, say) is one more section: a module with a ``router``
function and templates that extend ``base.html.j2``.

Every page is rendered on the server; the one script (``static/ui.js``) only refreshes
the progress of running jobs. The Content-Security-Policy allows nothing but the app's
own files, so an injected script would not run even if escaping failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelyard.batch.config import BatchSettings
from modelyard.errors import AuthError, ModelyardError
from modelyard.settings import Settings
from modelyard.ui import auth
from modelyard.ui.config import UiSettings
from modelyard.ui.pages import Pages, Section

__all__ = ["SECTIONS", "Pages", "Section", "create_ui_app"]

logger = logging.getLogger(__name__)

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _batch_router(pages: Pages) -> APIRouter:
    from modelyard.ui.batch_pages import router

    return router(pages)


def _model_router(pages: Pages) -> APIRouter:
    from modelyard.ui.model_pages import router

    return router(pages)


def _experiment_router(pages: Pages) -> APIRouter:
    from modelyard.ui.experiment_pages import router

    return router(pages)


#: The app's sections, in navigation order.
SECTIONS: list[Section] = [
    Section("Batch jobs", "/jobs", _batch_router),
    Section("Models", "/models", _model_router),
    Section("Experiments", "/experiments", _experiment_router),
]


def _templates() -> Jinja2Templates:
    from modelyard.ui import charts, formatting

    folder = resources.files("modelyard.ui").joinpath("templates")
    templates = Jinja2Templates(directory=str(folder))
    env = templates.env
    env.filters.update(formatting.FILTERS)
    env.globals["charts"] = charts
    return templates


def create_ui_app(
    settings: Settings | None = None,
    batch: BatchSettings | None = None,
    ui: UiSettings | None = None,
    sections: list[Section] | None = None,
) -> FastAPI:
    """The web app (run it with uvicorn on 127.0.0.1; ``modelyard ui`` does).

    Args:
        settings: the registry home (default: from the environment).
        batch: the batch queue and limits (default: from the environment).
        ui: the admin key and page sizes (default: from the environment).
        sections: the page groups to serve (default: :data:`SECTIONS`).
    """
    chosen = SECTIONS if sections is None else sections
    pages = Pages(
        settings=settings or Settings(),
        batch=batch or BatchSettings(),
        ui=ui or UiSettings(),
        templates=_templates(),
        nav=[(section.title, section.path) for section in chosen],
    )
    app = FastAPI(title="modelyard ui", docs_url=None, redoc_url=None, openapi_url=None)
    static = resources.files("modelyard.ui").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(_home_router(pages, chosen[0].path if chosen else "/login"))
    for section in chosen:
        app.include_router(section.router(pages))
    _add_error_pages(app, pages)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app


def _home_router(pages: Pages, first: str) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(first, status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
        return pages.render(request, "login.html.j2", next=_local(next), failed=False)

    @router.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        key: str = Form(...),
        next: str = Form("/"),  # noqa: A002
    ) -> Response:
        if not auth.key_matches(pages.ui, key):
            return pages.render(
                request, "login.html.j2", status_code=401, next=_local(next), failed=True
            )
        response = RedirectResponse(_local(next), status_code=303)
        token = auth.session_token(pages.ui)
        assert token is not None  # key_matches is False without a key
        response.set_cookie(auth.COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @router.post("/logout")
    def logout() -> RedirectResponse:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/")
        return response

    return router


def _local(target: str) -> str:
    """``target`` if it is a path of this app, else ``/`` (no open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _add_error_pages(app: FastAPI, pages: Pages) -> None:
    @app.exception_handler(ModelyardError)
    async def user_error(request: Request, exc: ModelyardError) -> Response:
        # A modelyard error is the visitor's to fix (a server fault subclass is logged).
        if exc.http_status >= 500:
            logger.error("ui: %s", exc, exc_info=exc)
        sign_in = (
            f"/login?next={quote(request.url.path)}"
            if isinstance(exc, AuthError) and not pages.ui.read_only
            else None
        )
        return pages.render(
            request, "error.html.j2", status_code=exc.http_status, message=str(exc), sign_in=sign_in
        )

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(error["loc"][-1]) for error in exc.errors() if error.get("loc")})
        message = f"fill in or correct: {', '.join(fields)}" if fields else "a field is wrong"
        return pages.render(
            request, "error.html.j2", status_code=422, message=message, sign_in=None
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return pages.render(
            request, "error.html.j2", status_code=exc.status_code, message=message, sign_in=None
        )

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> Response:
        logger.error("ui: %s %s failed", request.method, request.url.path, exc_info=exc)
        return pages.render(
            request,
            "error.html.j2",
            status_code=500,
            message="the server failed on this page; its log has the details",
            sign_in=None,
        )
