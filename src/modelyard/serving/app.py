"""The FastAPI application of ``modelyard serve``.

Build it with :func:`create_app` (or let uvicorn call :func:`app_factory`, which reads
the config from the environment). It speaks three protocols at once: modelyard's own
JSON (``/v1``), the Open Inference Protocol V2 (``/v2``) and MLflow's scoring protocol
(``/invocations``); plus ``/healthz``, ``/readyz`` and ``/metrics``. The OpenAPI
description is at ``/openapi.json`` and ``/docs``.

Example:
    >>> from modelyard.serving import ServeConfig, create_app
    >>> app = create_app(ServeConfig(models=["house-prices"]))
    >>> app.title
    'modelyard'

Run it with any ASGI server, e.g. ``uvicorn --factory modelyard.serving.app:app_factory``
with ``MODELYARD_SERVE_MODELS=house-prices``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.errors import LimitExceeded, ModelyardError
from modelyard.predlog.ids import RequestIds
from modelyard.serving.batching import Activity
from modelyard.serving.config import ServeConfig, config_from_env
from modelyard.serving.hot import HotRoutes, ServingApp
from modelyard.serving.manager import ModelManager
from modelyard.serving.metrics import CONTENT_TYPE, ServingMetrics
from modelyard.serving.protocols import (
    LABELS_KEY,
    REQUEST_ID_KEY,
    ServingError,
    ServingState,
    json_response,
    protocol_of,
)
from modelyard.serving.routing import (
    AFTER_RESPONSE_KEY,
    ROUTE_KEY,
    Router,
    run_after_response,
)

if TYPE_CHECKING:
    from modelyard.predlog.writer import PredictionLog
    from modelyard.registry.registry import Registry

__all__ = ["app_factory", "create_app"]

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_MLFLOW_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


class Healthz(BaseModel):
    """Liveness."""

    status: str


class Readyz(BaseModel):
    """Readiness of every served model (``not_ready`` lists those not loaded yet)."""

    ready: bool
    not_ready: list[str]
    errors: dict[str, str]


def create_app(
    config: ServeConfig | None = None, *, registry: Registry | None = None
) -> ServingApp:
    """The serving app for ``config`` (default: read from ``MODELYARD_SERVE_*``).

    Models are loaded in the background once the app starts (its lifespan): ``/readyz``
    answers 200 when every one is loaded and warmed up.

    Args:
        config: what to serve and how.
        registry: an open registry to use instead of opening ``config.settings``'s (it is
            then not closed on shutdown).

    Returns:
        A FastAPI app (:class:`~modelyard.serving.hot.ServingApp`); run it with uvicorn,
        hypercorn, or any ASGI server.
    """
    config = config if config is not None else config_from_env()
    metrics = ServingMetrics()
    activity = Activity()
    manager = ModelManager(config, metrics=metrics, registry=registry, activity=activity)
    state = ServingState(
        config=config,
        manager=manager,
        metrics=metrics,
        api_keys=tuple(key.encode("latin-1") for key in config.api_keys),
        admin_key=config.admin_key.encode("latin-1") if config.admin_key else None,
        started_at=datetime.now(UTC),
    )
    state.router = router = Router(manager, state.engine, metrics, poll_seconds=config.poll_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if _native_telemetry_on(app):  # every request through FastAPI: each gets its span
            assert isinstance(app, ServingApp)
            app.hot = None
        from modelyard.serving.decodepool import DecodePool

        # Large bodies are decoded in a child process, started here under modelyard serve
        # (else on the first one) and stopped with the app.
        decoding = DecodePool(
            warm=["modelyard.serving.protocols._bodies", "modelyard.serving.protocols._requests"]
        )
        app.state.decoding = state.decoding = decoding
        state.engine.off_loop = decoding.decode
        if config.prediction_log:
            state.predlog = await asyncio.to_thread(_open_prediction_log, config)
            if state.predlog is not None:
                log = state.predlog
                metrics.watch_dropped_rows(lambda: float(log.dropped_rows))
        await manager.start()
        routing = asyncio.create_task(router.start(), name="modelyard-routing-start")
        if config.warm_decode_process:
            decoding.start()
        try:
            yield
        finally:
            routing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await routing
            await router.aclose()  # waits for shadow copies, closes the arms
            await manager.aclose()  # stops polling, lets requests finish, drains batchers
            await decoding.aclose()
            if state.predlog is not None:
                await asyncio.to_thread(state.predlog.close)  # flushes

    app = ServingApp(
        title="modelyard",
        version=dist_version("modelyard"),
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.serving = state
    _add_routes(app)
    fault = _add_error_handlers(app, state)
    # modelyard's middleware, innermost first. Each layer wraps the FastAPI routes (as
    # app middleware) and, built once more, the prediction endpoints' own chain (see
    # modelyard.serving.hot); the two share their state: one id sequence, one counter
    # of body bytes in flight.
    from modelyard.serving.limits import BodyLimits, InflightBytes

    # Inside the request context, so a refused body still gets a request id.
    layers: list[tuple[Any, dict[str, Any]]] = [
        (BodyLimits, {"limits": config.connection_limits, "inflight": InflightBytes()})
    ]
    if state.api_keys:  # before any body is read; inside the context for a request id
        from modelyard.serving.access import KeyGate, open_paths

        def refuse(request: Request, exc: ServingError) -> Response:
            metrics.count_error("", exc.kind)
            return _error_response(
                request, exc.http_status, exc.message, exc.detail_list(), exc.headers
            )

        opened = open_paths(config.public_endpoints)
        layers.append((KeyGate, {"state": state, "opened": opened, "render": refuse}))
    context = {"metrics": metrics, "activity": activity, "fault": fault, "ids": RequestIds()}
    layers.append((_RequestContext, context))
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        cors = {
            "allow_origins": config.cors_origins,
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["*"],
            "expose_headers": ["X-Request-ID", "X-Client-Request-ID"],
        }
        layers.append((CORSMiddleware, cors))
    hot: ASGIApp = HotRoutes(app.exception_handlers)
    for layer, options in layers:
        app.add_middleware(layer, **options)
        hot = layer(hot, **options)
    app.hot = hot
    _describe(app)
    return app


def app_factory() -> ServingApp:
    """The app for ``uvicorn --factory``: config from ``MODELYARD_SERVE_CONFIG`` (JSON)
    or ``MODELYARD_SERVE_*`` variables. ``modelyard serve --workers N`` uses it, so the
    worker process takes the connection limits too."""
    from modelyard.serving.limits import GuardedHttpToolsProtocol

    config = config_from_env()
    GuardedHttpToolsProtocol.configure(config.connection_limits)
    return create_app(config)


_DESCRIPTION = """Online predictions from modelyard's registry.

Three protocols: modelyard's own JSON (`/v1`), the Open Inference Protocol V2 (`/v2`,
as KServe, MLServer and Triton speak it) and MLflow's scoring protocol (`/invocations`,
answered by the first model served). Prediction endpoints need an API key
(`X-API-Key` or `Authorization: Bearer`) when the server has any; admin endpoints need
the admin key in `X-API-Key`.
"""


def _native_telemetry_on(app: FastAPI) -> bool:
    """Whether FastAPI's native OpenTelemetry would trace this app's requests (FastAPI
    0.160 and later; its check is private API, so an app without it counts as off)."""
    telemetry = getattr(app, "_native_telemetry", None)
    enabled = getattr(telemetry, "enabled", None)
    return bool(enabled()) if callable(enabled) else False


def _open_prediction_log(config: ServeConfig) -> PredictionLog | None:
    try:
        from modelyard.predlog.writer import PredictionLog
    except ImportError as exc:
        logger.warning("prediction log unavailable (%s); serving without it", exc)
        return None
    return PredictionLog.open(config.settings)


# -- routes ---------------------------------------------------------------------------


def _add_routes(app: FastAPI) -> None:
    from modelyard.serving.protocols import mlflow, own, v2

    @app.get("/healthz", response_model=Healthz, tags=["health"])
    async def healthz() -> Response:
        """200 while the process runs."""
        return json_response({"status": "ok"})

    @app.get("/readyz", response_model=Readyz, responses={503: {"model": Readyz}}, tags=["health"])
    async def readyz(request: Request) -> Response:
        """200 once every served model is loaded and warmed up; else 503 naming those not."""
        state: ServingState = request.app.state.serving
        missing = state.manager.not_ready()
        errors = {
            entry["name"]: entry["error"] for entry in state.manager.describe() if entry["error"]
        }
        body = {"ready": not missing, "not_ready": missing, "errors": errors}
        return json_response(body, status=503 if missing else 200)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
        tags=["health"],
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this server process."""
        state: ServingState = request.app.state.serving
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    # The protocols' routes join the app's own list, hottest first, instead of going
    # through include_router: FastAPI (0.137+) keeps included routers as lazy wrappers
    # and walks each of them, route by route, on every request. That cost 90 µs per
    # prediction here, a third of the app's own time for a one-row request.
    from modelyard.serving.protocols import experiments

    for router in (mlflow.router, own.router, v2.router, experiments.router):
        app.router.routes.extend(router.routes)


def _describe(app: FastAPI) -> None:
    """Add the request-body schemas (bodies are parsed by hand, so FastAPI cannot)."""
    from modelyard.serving.protocols import mlflow, own, v2

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        from modelyard.serving.protocols import experiments

        schemas = (own, v2, mlflow, experiments)
        for extra in (module.openapi_schemas() for module in schemas):
            for name, value in extra.items():
                components.setdefault(name, value)
        state: ServingState = app.state.serving
        if state.api_keys:
            _describe_keys(schema, state.config.public_endpoints)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe_keys(schema: dict[str, Any], public: list[str]) -> None:
    """Document the API key on every keyed operation: its schemes, and the 401."""
    from modelyard.serving.access import needs_key, open_paths

    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    schemes["Bearer"] = {"type": "http", "scheme": "bearer"}
    opened = open_paths(public)
    for path, operations in schema.get("paths", {}).items():
        if not needs_key(path, opened):
            continue
        for operation in operations.values():
            operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
            operation.setdefault("responses", {}).setdefault(
                "401", {"description": "The API key is missing or not valid"}
            )


# -- errors ---------------------------------------------------------------------------


def _error_response(
    request: Request,
    status: int,
    message: str,
    details: list[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> Response:
    """An error in the shape of the request's protocol."""
    protocol = protocol_of(request.url.path)
    if protocol == "v2":
        return json_response(
            {"error": message}, status=400 if status == 422 else status, headers=headers
        )
    if protocol == "mlflow":
        status = 400 if status == 422 else status
        code = _MLFLOW_CODES.get(status, "BAD_REQUEST")
        return json_response(
            {"error_code": code, "message": message}, status=status, headers=headers
        )
    return json_response({"detail": details}, status=status, headers=headers)


FaultResponse = Callable[[Request, Exception], Response]


def _add_error_handlers(app: FastAPI, state: ServingState) -> FaultResponse:
    """Install the handlers of expected errors; returns the answer to a server fault."""

    def count(request: Request, kind: str) -> None:
        labels = request.scope.get(LABELS_KEY) or ("", "", "")
        state.metrics.count_error(labels[0], kind)

    async def modelyard_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelyardError)
        if isinstance(exc, ServingError):
            count(request, exc.kind)
            return _error_response(
                request, exc.http_status, exc.message, exc.detail_list(), exc.headers
            )
        kind = type(exc).__name__
        if exc.http_status >= 500 and not isinstance(exc, LimitExceeded):
            return fault(request, exc)
        count(request, kind)
        detail = [{"loc": [], "msg": exc.message, "type": kind}]
        # LimitExceeded: load shedding or a slow client, not a fault; no traceback
        # (BodyLimits adds Connection: close and Retry-After).
        return _error_response(request, exc.http_status, exc.message, detail)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        count(request, "validation")
        details = [
            {
                "loc": list(error.get("loc", ())),
                "msg": error.get("msg", ""),
                "type": error.get("type", ""),
            }
            for error in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details)
        return _error_response(request, 422, message, details)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = str(exc.detail)
        details = [{"loc": ["path"], "msg": message, "type": "http_error"}]
        headers = dict(exc.headers) if exc.headers else None
        return _error_response(request, exc.status_code, message, details, headers)

    def fault(request: Request, exc: Exception) -> Response:
        """A server fault: 500 (503 for :class:`ServiceUnavailable`) with the request id,
        and the traceback in the log. Never a client's mistake (those are 4xx)."""
        rid = str(request.scope.get(REQUEST_ID_KEY, ""))
        status = exc.http_status if isinstance(exc, ModelyardError) else 500
        kind = type(exc).__name__ if isinstance(exc, ModelyardError) else "internal"
        count(request, kind)
        logger.error("request %s %s failed", rid, request.url.path, exc_info=exc)
        what = exc.message if isinstance(exc, ModelyardError) else "internal error"
        message = f"{what}; quote request id {rid} when reporting it"
        details = [{"loc": [], "msg": message, "type": kind, "request_id": rid}]
        headers = {"Retry-After": "1"} if status == 503 else None
        return _error_response(request, status, message, details, headers)

    app.add_exception_handler(ModelyardError, modelyard_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    return fault  # any other exception is answered by _RequestContext (see there)


# -- per-request context ----------------------------------------------------------------


class _RequestContext:
    """Gives each request an id (``X-Request-ID``), counts it in the metrics and in
    ``activity`` while it runs, and answers an unexpected exception with a 500.

    A plain ASGI middleware, so it costs a header scan and a timer per request.

    Unexpected exceptions are answered here rather than by an ``Exception`` handler:
    Starlette runs that handler in its outermost middleware, which re-raises after
    sending the response, and uvicorn then closes the keep-alive connection without
    ``Connection: close``, so the client's next request on it got no answer. Answered
    here, the exception ends with the response and the connection stays usable.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServingMetrics,
        activity: Activity,
        fault: FaultResponse,
        ids: RequestIds | None = None,
    ) -> None:
        self.app = app
        self.fault = fault
        self.metrics = metrics
        self.activity = activity
        # Issued here, never taken from the client: one id per prediction, so feedback
        # joins exactly one (a client's X-Request-ID comes back as X-Client-Request-ID).
        # One sequence shared by every chain in front of the app (``ids``).
        self._ids = ids if ids is not None else RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = next((value for key, value in scope["headers"] if key == b"x-request-id"), None)
        request_id = self._ids.new().encode()
        echoed = [(b"x-request-id", request_id)]
        if given is not None and _REQUEST_ID.match(given):
            echoed.append((b"x-client-request-id", given))
        scope[REQUEST_ID_KEY] = request_id.decode("latin-1")
        labels = ["", "", ""]
        scope[LABELS_KEY] = labels
        status = 500

        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), *echoed]
                route = scope.get(ROUTE_KEY)
                if route is not None:
                    message["headers"].extend(_route_headers(route))
            await send(message)

        self.activity.requests += 1
        try:
            await self.app(scope, receive, send_with_id)
            if AFTER_RESPONSE_KEY in scope:  # shadow copies: only once the answer is out
                run_after_response(scope)
        except ClientDisconnect:
            # The client went away before its body arrived: nobody to answer, no fault.
            logger.debug("request %s: the client disconnected", scope[REQUEST_ID_KEY])
        except Exception as exc:
            if started_response:  # half an answer is out: only closing the connection is left
                raise
            response = self.fault(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            self.activity.requests -= 1
            if labels[2]:
                self.metrics.observe_request(
                    labels[0], labels[1], labels[2], status, time.perf_counter() - started
                )


def _route_headers(route: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """``X-Modelyard-Arm`` (which arm answered) and, when it answered for a failed or
    late one, ``X-Modelyard-Fallback`` (why)."""
    headers = [(b"x-modelyard-arm", str(route.get("arm", "")).encode("latin-1", "replace"))]
    if route.get("fallback"):
        headers.append(
            (b"x-modelyard-fallback", str(route["fallback"]).encode("latin-1", "replace"))
        )
    return headers
