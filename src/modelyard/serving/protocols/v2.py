"""The Open Inference Protocol V2 (KServe, MLServer, Triton), over HTTP/REST.

One input tensor per model column (``FP64`` for numbers, ``BYTES`` for categories and
dates, shape ``[rows, 1]`` or ``[rows]``); outputs ``predict`` (one value per row) and,
for classifiers, ``predict_proba`` (``FP64 [rows, classes]``, class order in its
``parameters.classes`` and in the model metadata). Triton's binary tensor extension is
supported both ways (``Inference-Header-Content-Length``), which is what
``tritonclient.http`` sends and asks for by default. Missing values: NaN in FP tensors,
or the positions listed in ``parameters.missing`` (of the tensor, or of the request by
input name), for any datatype, binary or not (see ``_tensors.mark_missing``).

Errors are ``{"error": "..."}``: 400 for a bad request, 404 for an unknown model or
version, 401/413/415/503 as their names say.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from modelyard.serving.decodepool import BodyDecoder
from modelyard.serving.protocols import (
    OFFLOAD_BYTES,
    SCHEMA_REF,
    ServingError,
    ServingState,
    component_schemas,
    json_response,
    parse_json,
    read_body,
    request_id,
    require_json,
    set_labels,
    version_number,
)
from modelyard.serving.protocols._tensors import (
    Datatype,
    as_tensor,
    encode_binary,
    plain,
)

if TYPE_CHECKING:
    from modelyard.engine import Decoder
    from modelyard.serving.manager import ServedModel
    from modelyard.serving.protocols._bodies import V2Request

__all__ = ["openapi_schemas", "router"]

router = APIRouter(tags=["open inference protocol v2"])


# -- documented shapes ------------------------------------------------------------------


class TensorInput(BaseModel):
    """One input tensor: a model column (``shape`` ``[rows, 1]`` or ``[rows]``)."""

    name: str
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: Datatype
    data: list[Any] | None = Field(default=None, description="Flat or nested values.")
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    """An output to return: ``predict`` or ``predict_proba``."""

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An inference request."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[TensorInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class TensorOutput(BaseModel):
    """One output tensor (``data`` is absent when sent as binary)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    """An inference response."""

    model_name: str
    model_version: str
    id: str
    outputs: list[TensorOutput]


class TensorMetadata(BaseModel):
    """Name, datatype and shape (-1: any number of rows) of a tensor."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """A model's inputs and outputs."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] | None = None


class ServerMetadata(BaseModel):
    """The server's name, version and protocol extensions."""

    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    """Liveness."""

    live: bool


class Ready(BaseModel):
    """Readiness."""

    ready: bool


class ModelReady(BaseModel):
    """Readiness of a model."""

    name: str
    ready: bool


class V2Error(BaseModel):
    """The V2 error shape."""

    error: str


def openapi_schemas() -> dict[str, Any]:
    """The request-body schemas this protocol's operations refer to."""
    return component_schemas(InferRequest)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": V2Error} for status in statuses}


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": SCHEMA_REF.format(model="InferRequest")}}
        },
    }
}


# -- health and metadata ----------------------------------------------------------------


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata() -> Response:
    """The server's name, version and supported extensions."""
    return json_response(
        {
            "name": "modelyard",
            "version": dist_version("modelyard"),
            "extensions": ["binary_tensor_data"],
        }
    )


@router.get("/v2/health/live", response_model=Live)
async def live() -> Response:
    """200 while the server runs."""
    return json_response({"live": True})


@router.get("/v2/health/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(request: Request) -> Response:
    """200 once every served model is loaded, else 503."""
    state: ServingState = request.app.state.serving
    is_ready = not state.manager.not_ready()
    return json_response({"ready": is_ready}, status=200 if is_ready else 503)


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=_errors(404, 503))
async def model_metadata(request: Request, name: str) -> Response:
    """The served version's inputs (one per column) and outputs."""
    return json_response(_metadata(request, name, None))


@router.get(
    "/v2/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=_errors(404, 503),
)
async def version_metadata(request: Request, name: str, version: str) -> Response:
    """Inputs and outputs of ``version``, if it is the one served."""
    return json_response(_metadata(request, name, version))


@router.get(
    "/v2/models/{name}/ready",
    response_model=ModelReady,
    responses={404: {"model": V2Error}, 503: {"model": ModelReady}},
)
async def model_ready(request: Request, name: str) -> Response:
    """200 if a version of ``name`` is loaded, else 503."""
    return _readiness(request, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    response_model=ModelReady,
    responses={404: {"model": V2Error}, 503: {"model": ModelReady}},
)
async def version_ready(request: Request, name: str, version: str) -> Response:
    """200 if ``version`` of ``name`` is loaded and served, else 503 (404 if not served)."""
    return _readiness(request, name, version)


def _readiness(request: Request, name: str, version: str | None) -> Response:
    state: ServingState = request.app.state.serving
    slot = state.slot(name)
    loaded = slot.current
    number = version_number(version) if version is not None else None
    if loaded is not None and number is not None and number != loaded.number:
        raise ServingError(
            404,
            f"model {name!r} version {number} is not served here; it serves version "
            f"{loaded.number}",
            kind="not_found",
        )
    return json_response(
        {"name": name, "ready": loaded is not None}, status=200 if loaded is not None else 503
    )


def _metadata(request: Request, name: str, version: str | None) -> dict[str, Any]:
    state: ServingState = request.app.state.serving
    loaded = state.acquire(state.slot(name), version)
    loaded.release()
    cached = loaded.cache.get("v2_metadata")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    inputs = [
        {"name": c.name, "datatype": "FP64" if c.kind == "numeric" else "BYTES", "shape": [-1, 1]}
        for c in loaded.input_spec.columns
    ]
    outputs = [{"name": "predict", "datatype": _label_datatype(loaded), "shape": [-1]}]
    parameters: dict[str, Any] = {"task": loaded.task, "runtime": loaded.runtime_name}
    if loaded.task != "regression":
        classes = loaded.classes or []
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
        parameters["classes"] = [plain(c) for c in classes]
    metadata = {
        "name": name,
        "versions": [str(loaded.number)],
        "platform": f"modelyard_{loaded.runtime_name}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": parameters,
    }
    loaded.cache["v2_metadata"] = metadata
    return metadata


def _label_datatype(loaded: Any) -> str:
    if loaded.task == "regression":
        return "FP64"
    classes = loaded.classes or []
    if classes and all(isinstance(c, bool | np.bool_) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int | np.integer) for c in classes):
        return "INT64"
    return "BYTES"


# -- inference --------------------------------------------------------------------------


@router.post(
    "/v2/models/{name}/infer",
    response_model=InferResponse,
    responses=_errors(400, 401, 404, 413, 415, 503),
    openapi_extra=_INFER_BODY,
)
async def infer(request: Request, name: str) -> Response:
    """Predict with the served version of ``name``."""
    return await _infer(request, name, None)


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    response_model=InferResponse,
    responses=_errors(400, 401, 404, 413, 415, 503),
    openapi_extra=_INFER_BODY,
)
async def infer_version(request: Request, name: str, version: str) -> Response:
    """Predict with ``version`` of ``name``, if that is the one served."""
    return await _infer(request, name, version)


def _nested_lists(state: ServingState, slot: ServedModel) -> int:
    """Lists per row a V2 body may need: one per input of the version served now (each
    tensor's data may be nested row by row), or the column cap when none is loaded."""
    current = slot.current
    if current is None:
        return state.config.max_columns_per_request + 2
    return len(current.input_spec.names) + 2


async def _infer(request: Request, name: str, version: str | None) -> Response:
    from modelyard.serving.protocols._bodies import decode_inputs, read_v2, v2_body

    state: ServingState = request.app.state.serving
    received_at = datetime.now(UTC)
    started = time.perf_counter()
    set_labels(request, "", "", "v2_infer")
    state.check_predict_key(request)
    slot = state.slot(name)
    require_json(request, also=("application/octet-stream",))
    body = await read_body(request, state.config.max_body_bytes)
    header = _header_length(request, body)
    job: BodyDecoder | None = None
    if len(body) > OFFLOAD_BYTES:  # parsed and decoded in the decode process
        max_rows = state.config.max_rows_per_request
        job = BodyDecoder(v2_body, body, header, _nested_lists(state, slot), max_rows)
        decode: Decoder = job
    else:
        found: V2Request = read_v2(parse_json(body[:header]), body[header:])
        decode = partial(decode_inputs, found.inputs)
    loaded, rows, output = await state.predict(
        request,
        slot,
        version,
        decode,
        endpoint="v2_infer",
        received_at=received_at,
        started=started,
        size=len(body),
    )
    if job is not None:
        found = job.extra
    tensors, blobs = _outputs(output, rows, found.wanted, found.binary_output)
    content = {
        "model_name": name,
        "model_version": str(loaded.number),
        "id": found.given_id if found.given_id is not None else request_id(request),
        "outputs": tensors,
    }
    if not blobs:
        return json_response(content)
    head = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(
        b"".join([head, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


def _header_length(request: Request, body: bytes) -> int:
    """How many of the body's bytes are the JSON header; binary tensor data follows
    (Triton's extension)."""
    declared = request.headers.get("inference-header-content-length")
    if declared is None:
        return len(body)
    if not declared.isdigit() or not 0 < int(declared) <= len(body):
        raise ServingError(
            400,
            f"Inference-Header-Content-Length {declared!r} must be the byte length of the "
            f"JSON header, between 1 and the body's {len(body)} bytes",
            kind="bad_request",
        )
    return int(declared)


def _outputs(
    output: Any, rows: int, wanted: list[tuple[str, bool | None]] | None, binary_default: bool
) -> tuple[list[dict[str, Any]], list[bytes]]:
    available: dict[str, np.ndarray] = {"predict": np.asarray(output.values)}
    if output.proba is not None:
        available["predict_proba"] = np.asarray(output.proba, dtype=np.float64)
    if wanted is None:
        wanted = [(name, None) for name in available]
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in wanted:
        values = available.get(name)
        if values is None:
            raise ServingError(
                400,
                f"output {name!r} does not exist; this model has: {', '.join(available)}",
                kind="bad_request",
            )
        datatype, values = as_tensor(values)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(values.shape)}
        if name == "predict_proba" and output.classes is not None:
            tensor["parameters"] = {"classes": [plain(c) for c in output.classes]}
        if binary if binary is not None else binary_default:
            blob = encode_binary(values, datatype)
            tensor.setdefault("parameters", {})["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            tensor["data"] = values.ravel() if datatype != "BYTES" else values.ravel().tolist()
        tensors.append(tensor)
    return tensors, blobs
