"""What the three request protocols share: server state, body reading, keys and errors.

Endpoints parse request bodies themselves (raw bytes → orjson → the decoders), so a large
request is never validated twice; the pydantic models of the prediction bodies only
document their shapes in the OpenAPI description, while those of feedback, rewards,
clicks and admin loads (:mod:`~modelyard.serving.protocols._requests`) check them too.

Errors raised here are :class:`ServingError` (a :class:`~modelyard.errors.ModelyardError`
carrying its HTTP status, kind and problems); the app renders them in the error shape of
the protocol the request used (see :func:`protocol_of`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from modelyard.engine import PredictionEngine
from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from modelyard.contract import InputProblem, RequestValidationError
    from modelyard.engine import Decoder, PredictionSink
    from modelyard.serving.config import ServeConfig
    from modelyard.serving.decodepool import DecodePool
    from modelyard.serving.manager import LoadedModel, ModelManager, ServedModel
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.routing import Router
    from modelyard.types import RuntimeOutput

__all__ = [
    "LABELS_KEY",
    "REQUEST_ID_KEY",
    "SCHEMA_REF",
    "ServingError",
    "ServingState",
    "checked_body",
    "component_schemas",
    "json_response",
    "jsonable_array",
    "check_containers",
    "protocol_of",
    "version_number",
]

logger = logging.getLogger(__name__)

#: Scope keys set by the app's middleware: the request id, and [model, version, endpoint]
#: labels an endpoint fills in for the request metrics.
REQUEST_ID_KEY = "modelyard.request_id"
LABELS_KEY = "modelyard.labels"
#: Where request-body schemas live in the OpenAPI document.
SCHEMA_REF = "#/components/schemas/{model}"

#: JSON and CSV bodies larger than this are parsed, checked and decoded in the decode
#: process (:mod:`modelyard.serving.decodepool`): those of the three protocols' predict
#: endpoints and ``/rank``, feedback, rewards, clicks and admin loads. Health checks and
#: other requests keep being answered meanwhile.
OFFLOAD_BYTES = 256 * 1024

Protocol = Literal["own", "v2", "mlflow"]
_MLFLOW_PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_Checked = TypeVar("_Checked")


def protocol_of(path: str) -> Protocol:
    """Which protocol's error shape a request path answers in."""
    if path == "/v2" or path.startswith("/v2/"):
        return "v2"
    if path in _MLFLOW_PATHS:
        return "mlflow"
    return "own"


_MAX_VERSION = 2**31 - 1  # versions are int32 in the registry


def version_number(version: int | str, *, loc: Sequence[str | int] = ("path", "version")) -> int:
    """A version id as every protocol reads it (``/v1`` and ``/v2`` paths, the
    ``version`` query of ``/invocations``): ASCII digits, leading zeros allowed
    (``01`` is 1), from 1 to 2**31 - 1.

    Raises:
        ServingError: 404 for anything else (no version has that id).
    """
    if isinstance(version, int) and not isinstance(version, bool):
        number = version
    elif isinstance(version, str) and 0 < len(version) <= 12 and version.isascii():
        number = int(version) if version.isdigit() else 0
    else:
        number = 0
    if not 1 <= number <= _MAX_VERSION:
        raise ServingError(
            404,
            f"version {show_id(version)} is not a version number; versions are whole "
            f"numbers from 1 to {_MAX_VERSION} (GET /v1/models shows the one served)",
            kind="not_found",
            loc=loc,
        )
    return number


def show_id(value: object) -> str:
    """A client's id in a message: quoted, cut to 40 characters, non-ASCII escaped."""
    text = value if isinstance(value, str) else repr(value)
    return ascii(text[:40] + ("..." if len(text) > 40 else ""))


class ServingError(ModelyardError):
    """A request the server refuses: HTTP status, a kind for metrics, and where.

    ``loc`` is FastAPI-style (``["body", "rows", 3, "size"]``); ``problems`` are the
    decoder's findings, rendered with ``loc`` as their prefix.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str,
        loc: Sequence[str | int] = (),
        problems: Sequence[InputProblem] = (),
        items: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.kind = kind
        self.loc = list(loc)
        self.problems = list(problems)
        self.items = list(items)
        self.headers = headers or {}

    @classmethod
    def from_validation(
        cls, exc: RequestValidationError, *, loc: Sequence[str | int] = ("body",)
    ) -> ServingError:
        """A decoder's findings: 413 for too many rows, else 422 with every problem."""
        too_many = any(problem.kind == "too_many_rows" for problem in exc.problems)
        return cls(
            413 if too_many else 422,
            exc.message,
            kind="too_many_rows" if too_many else "validation",
            loc=loc,
            problems=exc.problems,
        )

    def detail_list(self) -> list[dict[str, Any]]:
        """FastAPI's ``detail`` list: one ``{loc, msg, type}`` per problem."""
        if self.items:
            return self.items
        if not self.problems:
            return [{"loc": self.loc, "msg": self.message, "type": self.kind}]
        details = []
        for problem in self.problems:
            loc: list[str | int] = list(self.loc)
            if problem.row is not None:
                loc.append(problem.row)
            if problem.column is not None:
                loc.append(problem.column)
            details.append({"loc": loc, "msg": problem.message, "type": problem.kind})
        return details


@dataclass(eq=False)
class ServingState:
    """Everything endpoints need, built once per app.

    ``engine`` runs every prediction (decode, validate, predict, log); ``predlog`` is
    its prediction log; ``decoding`` the decode process large bodies go to (set as the
    app starts; without it they are checked on a worker thread).
    """

    config: ServeConfig
    manager: ModelManager
    metrics: ServingMetrics
    api_keys: tuple[bytes, ...]
    admin_key: bytes | None
    started_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)
    engine: PredictionEngine = field(default_factory=PredictionEngine)
    router: Router | None = None
    decoding: DecodePool | None = None

    def __post_init__(self) -> None:
        self.engine.on_out_of_range = self.metrics.count_out_of_range

    @property
    def predlog(self) -> Any:
        """The prediction log (a :class:`~modelyard.predlog.writer.PredictionLog`), or
        None when predictions are not logged."""
        return self.engine.predlog

    @predlog.setter
    def predlog(self, log: PredictionSink | None) -> None:
        self.engine.predlog = log

    # -- keys -----------------------------------------------------------------------

    def check_predict_key(self, request: Request) -> None:
        """Require one of the API keys, when any are configured (401 otherwise)."""
        if not self.api_keys:
            return
        given = _given_key(request)
        if given is None:
            raise ServingError(
                401,
                "this endpoint needs an API key: send it in the X-API-Key header or as "
                "'Authorization: Bearer <key>'",
                kind="auth",
                loc=["header", "X-API-Key"],
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not _matches(given, self.api_keys):
            raise ServingError(
                401,
                "the API key is not valid; check the key you were given",
                kind="auth",
                loc=["header", "X-API-Key"],
                headers={"WWW-Authenticate": "Bearer"},
            )

    def check_admin_key(self, request: Request) -> None:
        """Require the admin key (403 when none is configured, 401 when wrong or missing)."""
        if self.admin_key is None:
            raise ServingError(
                403,
                "admin endpoints are off: start the server with --admin-key KEY or set "
                "MODELYARD_SERVE_ADMIN_KEY to turn them on",
                kind="forbidden",
                loc=["header", "X-API-Key"],
            )
        given = _given_key(request)
        if given is None or not _matches(given, (self.admin_key,)):
            raise ServingError(
                401,
                "admin endpoints need the admin key in the X-API-Key header or as "
                "'Authorization: Bearer <key>'"
                + ("; the key given is not valid" if given is not None else ""),
                kind="auth",
                loc=["header", "X-API-Key"],
                headers={"WWW-Authenticate": "Bearer"},
            )

    # -- models ---------------------------------------------------------------------

    def slot(self, name: str) -> ServedModel:
        """The served model ``name`` (404 if this server does not serve it)."""
        slot = self.manager.get(name)
        if slot is None:
            served = ", ".join(map(repr, self.manager.names)) or "none"
            raise ServingError(
                404,
                f"model {name!r} is not served here; served models: {served} "
                "(GET /v1/models lists them)",
                kind="not_found",
                loc=["path", "name"],
            )
        return slot

    def acquire(self, slot: ServedModel, version: int | str | None) -> LoadedModel:
        """The version of ``slot`` to answer with, marked in use; ``release()`` it after.

        ``version`` is read by :func:`version_number`, the one rule of every protocol.

        Raises:
            ServingError: 503 while no version is loaded; 404 if ``version`` is given and
                is not the one served (or not a version id).
        """
        number = version_number(version) if version is not None else None
        loaded = slot.current
        if loaded is None:
            why = f": {slot.error}" if slot.error else ""
            raise ServingError(
                503,
                f"model {slot.name!r} is not loaded yet{why}; GET /readyz says when it is",
                kind="not_ready",
                loc=["path", "name"],
                headers={"Retry-After": "1"},
            )
        if number is not None and number != loaded.number:
            raise ServingError(
                404,
                f"model {slot.name!r} version {version} is not served here; this server "
                f"serves {slot.name}:{loaded.number} (following {slot.ref}); leave the "
                "version out to use it",
                kind="not_found",
                loc=["path", "version"],
            )
        loaded.acquire()
        return loaded

    async def predict(
        self,
        request: Request,
        slot: ServedModel,
        version: int | str | None,
        decode: Decoder,
        *,
        endpoint: str,
        received_at: datetime,
        started: float,
        size: int = 0,
    ) -> tuple[LoadedModel, int, RuntimeOutput]:
        """One prediction request: on the version :meth:`acquire` gives, the engine
        decodes the request with its input contract, predicts and logs the prediction.

        The version is held from decoding to the answer, so a swap never splits a
        request. ``decode`` raises :class:`ServingError` for input that does not fit;
        it runs off the event loop (the engine's ``off_loop``: the decode process for a
        :class:`~modelyard.serving.decodepool.BodyDecoder`) when the body had more than
        :data:`OFFLOAD_BYTES` (``size``).

        Returns:
            The version that answered, the row count and its output.
        """
        loaded = self.acquire(slot, version)
        set_labels(request, slot.name, str(loaded.number), endpoint)
        call: dict[str, Any] = {
            "request_id": request_id(request),
            "received_at": received_at,
            "started": started,
            "endpoint": endpoint,
            "offload": size > OFFLOAD_BYTES,
        }
        route = self.router.routes.get(slot.name) if self.router and version is None else None
        if route is not None:  # several versions behind this name (modelyard.serving.routing)
            assert self.router is not None
            loaded, rows, output = await self.router.predict(route, request, loaded, decode, **call)
            set_labels(request, slot.name, str(loaded.number), endpoint)
            return loaded, rows, output
        try:
            answer = await self.engine.predict(loaded, decode, **call)
        finally:
            loaded.release()
        return loaded, answer.rows, answer.output


def _given_key(request: Request) -> bytes | None:
    key = request.headers.get("x-api-key")
    if key is None:
        authorization = request.headers.get("authorization")
        if authorization and authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
    return key.encode("latin-1") if key else None


def _matches(given: bytes, keys: Iterable[bytes]) -> bool:
    """Compare with every key in constant time, so timing reveals neither key nor index."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


# -- bodies ---------------------------------------------------------------------------


def request_id(request: Request) -> str:
    """The id the server issued for the request (unique per request, see
    :class:`~modelyard.predlog.ids.RequestIds`)."""
    return str(request.scope[REQUEST_ID_KEY])


def set_labels(request: Request, model: str, version: str, endpoint: str) -> None:
    """Name the model, version and endpoint this request's metrics count under."""
    labels = request.scope[LABELS_KEY]
    labels[0], labels[1], labels[2] = model, version, endpoint


def media_type(request: Request) -> str | None:
    """The request's media type, lowercased, without parameters (None if not given)."""
    value = request.headers.get("content-type")
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()


def require_json(request: Request, *, also: Iterable[str] = ()) -> str | None:
    """Refuse (415) a body that is not JSON; a missing Content-Type is taken as JSON."""
    found = media_type(request)
    if found is None or found == "application/json" or found.endswith("+json") or found in also:
        return found
    accepted = ", ".join(["application/json", *also])
    raise ServingError(
        415,
        f"Content-Type {found!r} is not accepted here; send {accepted}",
        kind="content_type",
        loc=["header", "Content-Type"],
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before reading them all.

    Checks ``Content-Length`` first, then counts while reading (a chunked body, or a
    client that lies about its length, cannot get past the limit either).
    """
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise ServingError(
            415,
            f"Content-Encoding {request.headers['content-encoding']!r} is not supported; "
            "send the body uncompressed",
            kind="content_type",
            loc=["header", "Content-Encoding"],
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ServingError(
                400,
                f"Content-Length {declared!r} is not a number",
                kind="bad_request",
                loc=["header", "Content-Length"],
            )
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def checked_body(
    request: Request,
    state: ServingState,
    check: Callable[[bytes, int], _Checked],
) -> _Checked:
    """The request's JSON body, read and checked by ``check(body, max_rows_per_request)``
    (parsed, validated, what it returns): here for a body of at most
    :data:`OFFLOAD_BYTES`, in the decode process for a larger one, so parsing and
    validating it never hold this process's interpreter lock for long.

    ``check`` is a module-level function the decode process can import (see
    :mod:`~modelyard.serving.protocols._requests`).

    Raises:
        ServingError: what :func:`require_json`, :func:`read_body` or ``check`` raise;
            503 if the decode process ended while checking the body.
    """
    require_json(request)
    body = await read_body(request, state.config.max_body_bytes)
    max_rows = state.config.max_rows_per_request
    if len(body) <= OFFLOAD_BYTES:
        return check(body, max_rows)
    if state.decoding is None:  # an app not started by its lifespan
        return await asyncio.to_thread(check, body, max_rows)
    return await state.decoding.run(check, body, max_rows)


def _too_large(size: int, limit: int) -> ServingError:
    return ServingError(
        413,
        f"the request body has more than {limit:,} bytes (at least {size:,}); send fewer "
        "rows per request, or raise the server's max_body_bytes",
        kind="body_too_large",
        loc=["body"],
    )


def check_containers(body: bytes, max_rows: int, per_row: int = 2) -> None:
    """Refuse (413) a JSON body with more arrays and objects than a request of
    ``max_rows`` rows needs (``per_row`` per row, plus 1,024), before parsing it:
    two for the row-wise forms (an object or list per row), one per input column for V2
    tensors, whose data may be nested one list per row.

    The parser's cost is per JSON container far more than per byte: 16 MiB of
    ``[],[],...`` took it over a second, which the decode process (where large bodies
    are parsed) would spend while other large bodies wait. Counting ``[`` and ``{``
    bytes is a memchr-speed scan; brackets inside strings count too, which only a body
    of thousands of bracketed texts reaches.
    """
    limit = per_row * max_rows + 1024
    found = body.count(b"[") + body.count(b"{")
    if found > limit:
        raise ServingError(
            413,
            f"the JSON body holds {found:,} arrays and objects (counting '[' and '{{'), "
            f"more than the {limit:,} a request of up to {max_rows:,} rows needs "
            f"({per_row} per row, plus 1,024); send one object or list per row, or raise "
            "the server's max_rows_per_request",
            kind="body_too_large",
            loc=["body"],
        )


def parse_json(body: bytes) -> Any:
    """Parse a JSON body (400 with the position of the first error)."""
    if not body:
        raise ServingError(
            400, "the request body is empty; send a JSON object", kind="bad_json", loc=["body"]
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    # Python's own parser also takes NaN and Infinity, which some clients send
    # (tritonclient's JSON tensors, pandas' to_json of floats): NaN is then a missing value.
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ServingError(
            400, f"the body is not valid JSON: {error}", kind="bad_json", loc=["body"]
        ) from None


def require_object(
    payload: Any, what: str, *, loc: Sequence[str | int] = ("body",)
) -> dict[str, Any]:
    """``payload`` if it is a JSON object, else 422 saying what was expected."""
    if not isinstance(payload, dict):
        raise ServingError(
            422,
            f"expected a JSON object {what}, found {type(payload).__name__}",
            kind="malformed",
            loc=loc,
        )
    return payload


# -- documentation --------------------------------------------------------------------


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """JSON schemas of ``models`` (and the models they nest) for ``components.schemas``."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=SCHEMA_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


# -- responses ------------------------------------------------------------------------


def jsonable_array(values: np.ndarray) -> Any:
    """An array orjson serializes natively when it can (numbers), else a list."""
    if values.dtype.kind in "fiub" and values.flags.c_contiguous:
        return values
    return values.tolist()


def _plain_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def json_response(
    content: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialized by orjson (NumPy arrays included, NaN as null).

    Text orjson refuses (a lone surrogate a client sent, echoed in a message) is written
    with JSON escapes instead, so no reply fails to serialize.
    """
    try:
        body = orjson.dumps(content, option=_JSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: str that is not valid UTF-8
        body = json.dumps(content, ensure_ascii=True, default=_plain_json).encode("ascii")
    return Response(
        body,
        status_code=status,
        headers=headers,
        media_type="application/json",
    )
