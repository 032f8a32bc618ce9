"""modelyard's own JSON protocol: predict, the served models, feedback and admin.

- ``POST /v1/models/{name}/predict`` (and ``.../versions/{version}/predict``) takes
  ``{"rows": [{column: value}, ...]}`` or ``{"columns": [...], "data": [[...], ...]}``;
- ``GET /v1/models`` and ``GET /v1/models/{name}`` say what is served;
- ``POST /v1/feedback`` stores true labels of logged predictions;
- ``POST /v1/admin/reload`` and ``POST /v1/admin/models/{name}/load`` (admin key).

Errors use FastAPI's shape: ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from modelyard.errors import DataValidationError
from modelyard.serving.decodepool import BodyDecoder
from modelyard.serving.protocols import (
    OFFLOAD_BYTES,
    SCHEMA_REF,
    ServingError,
    ServingState,
    checked_body,
    component_schemas,
    json_response,
    jsonable_array,
    parse_json,
    read_body,
    request_id,
    require_json,
    require_object,
    set_labels,
    show_id,
)
from modelyard.serving.protocols._bodies import OWN_SHAPE, decode_payload, own_body
from modelyard.serving.protocols._requests import (
    FeedbackRequest,
    LoadRequest,
    feedback_body,
    load_body,
)
from modelyard.serving.routing import ROUTE_KEY

if TYPE_CHECKING:
    from modelyard.engine import Decoder

__all__ = ["decode_payload", "openapi_schemas", "router"]

router = APIRouter()

Scalar = float | int | str | bool | None


# -- documented shapes ------------------------------------------------------------------


class RecordsRequest(BaseModel):
    """Rows as objects, one per row: ``{"rows": [{"size": 120.5, "town": "alpha"}]}``."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Scalar]] = Field(min_length=1, description="One object per row.")


class SplitRequest(BaseModel):
    """Column names once, then rows as lists in that order (like pandas' ``split``)."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str] = Field(description="The column names, in the order of each row.")
    data: list[list[Scalar]] = Field(min_length=1, description="One list of values per row.")


class PredictResponse(BaseModel):
    """One prediction per row; class probabilities and order for classifiers."""

    model: str
    version: int
    request_id: str
    runtime: str
    predictions: list[Scalar]
    probabilities: list[list[float | None]] | None = Field(
        default=None, description="Classifiers only: one list per row, in `classes` order."
    )
    classes: list[Scalar] | None = Field(default=None, description="Classifiers only.")
    arm: str | None = Field(
        default=None,
        description="With a routing policy: primary, canary, fallback or composite.",
    )
    fallback: str | None = Field(
        default=None, description="Why the fallback answered (the primary failed or was late)."
    )
    weights: dict[str, float] | None = Field(default=None, description="Composite weights.")
    parts: list[str] | None = Field(default=None, description="The composite's versions.")


class ErrorItem(BaseModel):
    """Where (``loc``), what (``msg``) and which kind (``type``) of problem."""

    loc: list[str | int]
    msg: str
    type: str


class DetailError(BaseModel):
    """FastAPI's error shape: every problem found."""

    detail: list[ErrorItem]


class InputInfo(BaseModel):
    """One input column of a model."""

    name: str
    kind: str
    nullable: bool
    categories: list[str] | None = None


class ServedModelInfo(BaseModel):
    """A served model: the reference followed, the version served, and its state."""

    name: str
    ref: str
    version: int | None
    task: str | None
    runtime: str | None
    runtime_reason: str | None = Field(default=None, description="Why this runtime serves it.")
    parity: Any = None
    ready: bool
    loaded_at: str | None
    error: str | None
    error_at: str | None


class ModelDetail(ServedModelInfo):
    """A served model with its inputs and classes."""

    inputs: list[InputInfo] = []
    classes: list[Scalar] | None = None


class ModelsResponse(BaseModel):
    """Every model this server serves."""

    models: list[ServedModelInfo]


class FeedbackResponse(BaseModel):
    """How many labels were stored."""

    model: str
    stored: int


class SwapInfo(BaseModel):
    """What a reload did to one model: ``unchanged``, ``swapped`` or ``failed``."""

    model: str
    ref: str
    status: str
    from_version: int | None
    to_version: int | None
    error: str | None = None


class ReloadResponse(BaseModel):
    """What changed: served versions, and the names whose routing policy was reloaded."""

    changes: list[SwapInfo]
    routing: list[str] = []


def openapi_schemas() -> dict[str, Any]:
    """The request-body schemas this protocol's operations refer to."""
    schemas = component_schemas(RecordsRequest, SplitRequest, FeedbackRequest, LoadRequest)
    schemas["PredictRequest"] = {
        "title": "PredictRequest",
        "description": 'Either "rows" (records) or "columns" + "data" (split).',
        "oneOf": [
            {"$ref": SCHEMA_REF.format(model="RecordsRequest")},
            {"$ref": SCHEMA_REF.format(model="SplitRequest")},
        ],
        "examples": [{"rows": [{"size": 120.5, "rooms": 3, "town": "alpha"}]}],
    }
    return schemas


def _body(model: str) -> dict[str, Any]:
    schema = {"$ref": SCHEMA_REF.format(model=model)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": DetailError} for status in statuses}


# -- predict ----------------------------------------------------------------------------


@router.post(
    "/v1/models/{name}/predict",
    response_model=PredictResponse,
    responses=_errors(400, 401, 404, 413, 415, 422, 503),
    openapi_extra=_body("PredictRequest"),
    tags=["predict"],
    summary="Predict with the served version",
)
async def predict(request: Request, name: str) -> Response:
    """Predict rows with the version currently served for ``name``."""
    return await _predict(request, name, None)


@router.post(
    "/v1/models/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    responses=_errors(400, 401, 404, 413, 415, 422, 503),
    openapi_extra=_body("PredictRequest"),
    tags=["predict"],
    summary="Predict with an exact version (404 unless it is the one served)",
)
async def predict_version(request: Request, name: str, version: str) -> Response:
    """Predict rows with version ``version`` of ``name``, if that is what is served
    (digits, leading zeros allowed: ``01`` is 1)."""
    return await _predict(request, name, version)


async def _predict(request: Request, name: str, version: str | None) -> Response:
    state: ServingState = request.app.state.serving
    received_at = datetime.now(UTC)
    started = time.perf_counter()
    set_labels(request, "", "", "v1_predict")
    state.check_predict_key(request)
    slot = state.slot(name)
    require_json(request)
    body = await read_body(request, state.config.max_body_bytes)
    if len(body) > OFFLOAD_BYTES:  # parsed and decoded in the decode process
        decode: Decoder = BodyDecoder(own_body, body, state.config.max_rows_per_request, OWN_SHAPE)
    else:
        payload = require_object(parse_json(body), OWN_SHAPE)
        decode = partial(decode_payload, payload)
    loaded, _, output = await state.predict(
        request,
        slot,
        version,
        decode,
        endpoint="v1_predict",
        received_at=received_at,
        started=started,
        size=len(body),
    )
    content: dict[str, Any] = {
        "model": name,
        "version": loaded.number,
        "request_id": request_id(request),
        "runtime": loaded.runtime_name,
        "predictions": jsonable_array(output.values),
    }
    if output.proba is not None:
        content["probabilities"] = jsonable_array(output.proba)
        content["classes"] = output.classes
    route = request.scope.get(ROUTE_KEY)
    if route is not None:  # several versions behind this name: which answered, and why
        content.update(route)
    return json_response(content)


# -- what is served ---------------------------------------------------------------------


@router.get("/v1/models", response_model=ModelsResponse, tags=["models"])
async def list_models(request: Request) -> Response:
    """Every served model: reference, version, runtime, parity, readiness, load error."""
    state: ServingState = request.app.state.serving
    return json_response({"models": state.manager.describe()})


@router.get(
    "/v1/models/{name}", response_model=ModelDetail, responses=_errors(404), tags=["models"]
)
async def get_model(request: Request, name: str) -> Response:
    """One served model, with its input columns and classes."""
    state: ServingState = request.app.state.serving
    slot = state.slot(name)
    entry = next(item for item in state.manager.describe() if item["name"] == slot.name)
    loaded = slot.current
    if loaded is not None:
        entry["inputs"] = [
            {
                "name": column.name,
                "kind": column.kind,
                "nullable": column.nullable,
                "categories": sorted(column.categories) if column.categories else None,
            }
            for column in loaded.input_spec.columns
        ]
        entry["classes"] = loaded.classes
    return json_response(entry)


# -- feedback ---------------------------------------------------------------------------


@router.post(
    "/v1/feedback",
    response_model=FeedbackResponse,
    responses=_errors(400, 401, 404, 409, 413, 415, 422),
    openapi_extra=_body("FeedbackRequest"),
    tags=["feedback"],
)
async def feedback(request: Request) -> Response:
    """Store the true labels of logged predictions (by request id and row)."""
    from modelyard.predlog.writer import FeedbackItem

    state: ServingState = request.app.state.serving
    set_labels(request, "", "", "feedback")
    state.check_predict_key(request)
    body = await checked_body(request, state, feedback_body)  # shape and item count
    if state.manager.get(body.model) is None:
        raise ServingError(
            404,
            f"model {body.model!r} is not served here; served: {', '.join(state.manager.names)}",
            kind="not_found",
            loc=["body", "model"],
        )
    set_labels(request, body.model, "", "feedback")
    if state.predlog is None:
        raise ServingError(
            409,
            "the prediction log is off on this server, so feedback cannot be matched to "
            "predictions; start it with --prediction-log (MODELYARD_SERVE_PREDICTION_LOG=true)",
            kind="conflict",
            loc=["body"],
        )
    labels = [FeedbackItem(request_id, label, row) for request_id, label, row in body.items]
    try:
        if not state.config.feedback_external_ids:
            await _require_logged(state, body.model, labels)
        stored = await asyncio.to_thread(state.predlog.record_feedback, body.model, labels)
    except DataValidationError as exc:
        items = [
            {
                "loc": ["body", "items", problem.get("item"), problem.get("field")],
                "msg": str(problem.get("message")),
                "type": "value_error",
            }
            for problem in exc.problems
            if isinstance(problem, dict)
        ]
        raise ServingError(
            422, exc.message, kind="validation", loc=["body", "items"], items=items
        ) from None
    if state.router is not None:  # a canary judged by the labels scores them now
        state.router.label(body.model, [(rid, row, label) for rid, label, row in body.items])
    return json_response({"model": body.model, "stored": stored})


async def _require_logged(state: ServingState, model: str, labels: list[Any]) -> None:
    """Refuse feedback naming a (request id, row) the prediction log does not hold."""
    unknown = await asyncio.to_thread(state.predlog.unknown_feedback, model, labels)
    if not unknown:
        return
    fix = (
        "send the request_id an answer carried (X-Request-ID) and a row it had; a "
        "prediction another server process made is on disk within 2 s of its answer, so "
        "retry then; or start the server with --feedback-external-ids"
    )
    items = [
        {
            "loc": ["body", "items", index, "request_id"],
            "msg": (
                f"request id {show_id(labels[index].request_id)} row {labels[index].row} "
                f"is not a prediction of {model!r} in the prediction log; {fix}"
            ),
            "type": "unknown_request_id",
        }
        for index in unknown[:50]
    ]
    raise ServingError(
        422,
        f"{len(unknown)} of {len(labels)} feedback items name predictions of {model!r} "
        f"that were never made; first: {items[0]['msg']}",
        kind="unknown_request_id",
        loc=["body", "items"],
        items=items,
    )


# -- admin ------------------------------------------------------------------------------


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses=_errors(401, 403),
    tags=["admin"],
)
async def reload(request: Request) -> Response:
    """Re-resolve every served reference now; load and swap in the versions that changed."""
    state: ServingState = request.app.state.serving
    state.check_admin_key(request)
    changes = await state.manager.reload()
    routed = await state.router.refresh() if state.router is not None else []
    return json_response({"changes": [_swap(change) for change in changes], "routing": routed})


@router.post(
    "/v1/admin/models/{name}/load",
    response_model=ReloadResponse,
    responses=_errors(400, 401, 403, 404, 409, 413, 415, 422),
    openapi_extra=_body("LoadRequest"),
    tags=["admin"],
)
async def load(request: Request, name: str) -> Response:
    """Serve the version ``ref`` names for model ``name`` (e.g. ``{"ref": "name:3"}``)."""
    from modelyard.errors import ModelyardError

    state: ServingState = request.app.state.serving
    state.check_admin_key(request)
    ref = await checked_body(request, state, load_body)
    try:
        change = await state.manager.load(name, ref)
    except ModelyardError as exc:
        raise ServingError(422, exc.message, kind="validation", loc=["body", "ref"]) from None
    if change.status == "failed":
        raise ServingError(
            404 if change.not_found else 409,
            change.error or f"{ref} was not loaded",
            kind="load",
            loc=["body", "ref"],
        )
    return json_response({"changes": [_swap(change)]})


def _swap(change: Any) -> dict[str, Any]:
    return {
        "model": change.model,
        "ref": change.ref,
        "status": change.status,
        "from_version": change.from_version,
        "to_version": change.to_version,
        "error": change.error,
    }
