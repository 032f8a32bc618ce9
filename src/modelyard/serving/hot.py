"""The three prediction endpoints, answered ahead of FastAPI's per-request layers.

``POST /invocations``, ``POST /v1/models/{name}/predict`` and ``POST
/v2/models/{name}/infer`` read and check their bodies themselves and take no
dependencies, so what FastAPI and Starlette do around every request (the check for a
configured OpenTelemetry provider, FastAPI's body-size and exception-telemetry layers,
its exit stack, the router's walk, the route's own exception wrapper) only adds time to
the requests that are most often one row. :class:`ServingApp` sends those requests
through a chain of modelyard's own middleware built for them (the same request ids, API
keys, body limits and metrics as every other request, sharing their state: see
``create_app``) to :class:`HotRoutes`; every other request, these paths with another
method included, takes the FastAPI path as before. The FastAPI routes of the three
endpoints stay: they describe them in the OpenAPI document and answer other methods
with 405.

An expected error is answered by the app's own exception handlers, found as Starlette
finds them (by the exception's class hierarchy); any other exception is left to the
request context, which answers it as a server fault.

The hot path is taken only while FastAPI's native OpenTelemetry is off (as it is unless
a tracer, meter or logger provider is configured), checked when the app starts: with it
on, every request goes through FastAPI, so each prediction still gets its span.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HOT_KEY", "HotRoutes", "ServingApp", "hot_endpoint"]

#: The scope key holding the endpoint a hot request matched.
HOT_KEY = "modelyard.hot_endpoint"

Endpoint = Callable[[Request], Awaitable[Response]]


async def _invocations(request: Request) -> Response:
    from modelyard.serving.protocols import mlflow

    return await mlflow.invocations(request)


async def _predict(request: Request) -> Response:
    from modelyard.serving.protocols import own

    return await own.predict(request, request.path_params["name"])


async def _infer(request: Request) -> Response:
    from modelyard.serving.protocols import v2

    return await v2.infer(request, request.path_params["name"])


def hot_endpoint(path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """The endpoint answering a POST to ``path`` on the hot path, with its path
    parameters, or None for any other path.

    The model name matches as Starlette's ``{name}`` does: one or more characters, no
    ``/``.
    """
    if path == "/invocations":
        return _invocations, {}
    if path.startswith("/v1/models/") and path.endswith("/predict"):
        name, endpoint = path[11:-8], _predict
    elif path.startswith("/v2/models/") and path.endswith("/infer"):
        name, endpoint = path[11:-6], _infer
    else:
        return None
    if not name or "/" in name:
        return None
    return endpoint, {"name": name}


class HotRoutes:
    """The innermost app of the hot chain: the endpoint :class:`ServingApp` matched.

    Args:
        handlers: the app's exception handlers (``FastAPI.exception_handlers``), read at
            each error, so handlers added later count too.
    """

    def __init__(self, handlers: Mapping[Any, Callable[..., Any]]) -> None:
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await scope[HOT_KEY](request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # the request context answers it as a server fault
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        for kind in type(exc).__mro__:
            handler = self.handlers.get(kind)
            if handler is not None:
                return handler
        return None


class ServingApp(FastAPI):
    """The serving app: FastAPI, with the prediction endpoints on :attr:`hot`'s chain.

    :attr:`hot` is None (every request through FastAPI) until ``create_app`` sets it.
    """

    hot: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if hot is not None and scope["type"] == "http" and scope["method"] == "POST":
            found = hot_endpoint(scope["path"])
            if found is not None and not scope.get("root_path"):
                scope["app"] = self
                scope[HOT_KEY], scope["path_params"] = found
                await hot(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
