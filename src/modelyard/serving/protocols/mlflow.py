"""The MLflow scoring protocol, as ``mlflow models serve`` speaks it (MLflow 2 and 3).

``POST /invocations`` takes JSON (``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``, with optional ``params``; ``Content-Type:
application/json``) or CSV with a header row (``Content-Type: text/csv``) and answers
``{"predictions": [...]}``: values for regressors, labels for classifiers, as an MLflow
pyfunc model would. ``GET /ping`` and ``GET /health`` answer 200 once the model is
loaded; ``GET /version`` gives the server version.

With several models served, ``/invocations`` answers with the first one given to the
server (the others are reachable through ``/v1`` and ``/v2``).

Errors are ``{"error_code": "BAD_REQUEST", "message": "..."}`` with status 400 (or 401,
404, 413, 415, 503 where those say more).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import PlainTextResponse, Response

from modelyard.serving.decodepool import BodyDecoder
from modelyard.serving.protocols import (
    OFFLOAD_BYTES,
    SCHEMA_REF,
    ServingError,
    ServingState,
    component_schemas,
    json_response,
    jsonable_array,
    media_type,
    parse_json,
    read_body,
    require_json,
    set_labels,
    version_number,
)

if TYPE_CHECKING:
    from modelyard.engine import Decoder

__all__ = ["openapi_schemas", "router"]

router = APIRouter(tags=["mlflow scoring protocol"])

Scalar = float | int | str | bool | None


class DataframeSplit(BaseModel):
    """pandas' ``split`` orientation."""

    columns: list[str]
    data: list[list[Scalar]]
    index: list[Any] | None = None


class SplitPayload(BaseModel):
    """``{"dataframe_split": {"columns": [...], "data": [[...]]}}``."""

    model_config = ConfigDict(extra="forbid")
    dataframe_split: DataframeSplit
    params: dict[str, Any] | None = None


class RecordsPayload(BaseModel):
    """``{"dataframe_records": [{column: value}, ...]}``."""

    model_config = ConfigDict(extra="forbid")
    dataframe_records: list[dict[str, Scalar]]
    params: dict[str, Any] | None = None


class InstancesPayload(BaseModel):
    """``{"instances": [{column: value}, ...]}`` (TF serving style)."""

    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Scalar]] | list[list[Scalar]]
    params: dict[str, Any] | None = None


class InputsPayload(BaseModel):
    """``{"inputs": {column: [values]}}`` or ``{"inputs": [{column: value}, ...]}``."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, list[Scalar]] | list[dict[str, Scalar]] | list[list[Scalar]]
    params: dict[str, Any] | None = None


class Predictions(BaseModel):
    """One prediction (value or label) per row."""

    predictions: list[Scalar]


class MlflowError(BaseModel):
    """MLflow's error shape."""

    error_code: str = Field(examples=["BAD_REQUEST"])
    message: str


def openapi_schemas() -> dict[str, Any]:
    """The request-body schemas ``/invocations`` refers to."""
    schemas = component_schemas(SplitPayload, RecordsPayload, InstancesPayload, InputsPayload)
    schemas["InvocationsRequest"] = {
        "title": "InvocationsRequest",
        "oneOf": [
            {"$ref": SCHEMA_REF.format(model=name)}
            for name in ("SplitPayload", "RecordsPayload", "InstancesPayload", "InputsPayload")
        ],
        "examples": [
            {"dataframe_split": {"columns": ["size", "town"], "data": [[120.5, "alpha"]]}}
        ],
    }
    return schemas


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": SCHEMA_REF.format(model="InvocationsRequest")}},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    "parameters": [
        {
            "name": "version",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Answer only with this version (404 unless it is the one served).",
        }
    ],
}


@router.post(
    "/invocations",
    response_model=Predictions,
    responses={status: {"model": MlflowError} for status in (400, 401, 404, 413, 415, 503)},
    openapi_extra=_BODY,
)
async def invocations(request: Request) -> Response:
    """Predict with the first served model (JSON or CSV, as MLflow's scoring server);
    ``?version=N`` insists on version N (404 unless it is the one served)."""
    from modelyard.serving.protocols._bodies import csv_text, decode_mlflow_payload, mlflow_body

    state: ServingState = request.app.state.serving
    received_at = datetime.now(UTC)
    started = time.perf_counter()
    set_labels(request, "", "", "invocations")
    state.check_predict_key(request)
    slot = state.slot(state.manager.names[0])
    # Parsing a query string is work most requests (none) need not pay for.
    version = request.query_params.get("version") if request.scope.get("query_string") else None
    if version is not None:  # checked before the body is read, by the rule of every path
        version_number(version, loc=("query", "version"))
    found = media_type(request)
    if found != "text/csv":
        require_json(request, also=("text/csv",))
    body = await read_body(request, state.config.max_body_bytes)
    csv = found == "text/csv"
    if len(body) > OFFLOAD_BYTES:  # parsed and decoded in the decode process
        decode: Decoder = BodyDecoder(mlflow_body, body, csv, state.config.max_rows_per_request)
    else:
        payload = csv_text(body) if csv else parse_json(body)
        decode = partial(decode_mlflow_payload, payload, csv)
    loaded, _, output = await state.predict(
        request,
        slot,
        version,
        decode,
        endpoint="invocations",
        received_at=received_at,
        started=started,
        size=len(body),
    )
    # MLflow's reply has no place for it: which version answered goes in headers.
    headers = {"X-Model-Name": slot.name, "X-Model-Version": str(loaded.version.version)}
    return json_response({"predictions": jsonable_array(output.values)}, headers=headers)


@router.get(
    "/ping",
    response_class=PlainTextResponse,
    responses={503: {"model": MlflowError}},
)
async def ping(request: Request) -> Response:
    """200 once the model ``/invocations`` uses is loaded."""
    return _health(request)


@router.get(
    "/health",
    response_class=PlainTextResponse,
    responses={503: {"model": MlflowError}},
)
async def health(request: Request) -> Response:
    """The same as ``/ping``."""
    return _health(request)


@router.get("/version", response_class=PlainTextResponse)
async def server_version() -> Response:
    """The server's version."""
    return PlainTextResponse(dist_version("modelyard"))


def _health(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    slot = state.slot(state.manager.names[0])
    if slot.current is None:
        raise ServingError(
            503,
            f"model {slot.name!r} is not loaded yet" + (f": {slot.error}" if slot.error else ""),
            kind="not_ready",
        )
    return PlainTextResponse("\n")
