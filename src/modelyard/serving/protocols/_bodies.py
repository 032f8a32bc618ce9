"""The prediction protocols' bodies decoded from their bytes, by functions the decode
process can run.

A body larger than :data:`~modelyard.serving.protocols.OFFLOAD_BYTES` is parsed and
decoded in the server's decode process (:mod:`modelyard.serving.decodepool`): each
protocol's ``*_body`` function here takes the bytes and the version's contract and does
what the protocol does in process for a small body (the same pieces, so the same
checks, errors and messages), and returns the columns. The protocols' routes call the
pieces themselves for small bodies.

This module imports neither FastAPI nor the protocols' routes: the decode process
imports it and what it needs, not the app.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from modelyard.contract import RequestValidationError, is_valid_text
from modelyard.serving.protocols import ServingError, check_containers, parse_json, require_object
from modelyard.serving.protocols._parse import decode_csv, decode_mlflow, decode_v2
from modelyard.serving.protocols._tensors import inline_binary, mark_missing

if TYPE_CHECKING:
    from modelyard.contract import InputContract
    from modelyard.serving.decodepool import Decoded
    from modelyard.types import Columns

__all__ = [
    "OWN_SHAPE",
    "V2Request",
    "csv_text",
    "decode_inputs",
    "decode_mlflow_payload",
    "decode_payload",
    "mlflow_body",
    "own_body",
    "read_v2",
    "v2_body",
]

#: What a /v1 predict body must be (the 422 of :func:`require_object` says so).
OWN_SHAPE = 'with "rows" (a list of objects) or "columns" and "data"'


def _parsed(body: bytes, max_rows: int, per_row: int) -> Any:
    """A large JSON body, checked by :func:`check_containers` and parsed."""
    check_containers(body, max_rows, per_row)
    return parse_json(body)


# -- /v1 ------------------------------------------------------------------------------


def decode_payload(payload: dict[str, Any], spec: InputContract) -> tuple[Columns, int]:
    """Decode a /v1 body (``rows``, or ``columns`` and ``data``) with ``spec``."""
    from modelyard.contract import decode_records, decode_split

    has_rows, has_split = "rows" in payload, "columns" in payload or "data" in payload
    if has_rows == has_split:
        raise ServingError(
            422,
            'give either "rows" (a list of objects, one per row) or "columns" and "data" '
            "(names, then one list of values per row)" + (", not both" if has_rows else ""),
            kind="malformed",
            loc=["body"],
        )
    try:
        if has_rows:
            return decode_records(payload["rows"], spec)
        return decode_split(payload.get("columns"), payload.get("data"), spec)
    except RequestValidationError as exc:
        raise ServingError.from_validation(
            exc, loc=("body", "rows") if has_rows else ("body", "data")
        ) from None


def own_body(body: bytes, contract: InputContract, max_rows: int, shape: str) -> Decoded:
    """A /v1 body (``shape`` names what it must be), as the decode process runs it."""
    payload = require_object(_parsed(body, max_rows, 2), shape)
    columns, rows = decode_payload(payload, contract)
    return columns, rows, None


# -- MLflow ---------------------------------------------------------------------------


def csv_text(body: bytes) -> str:
    """A CSV body's text (400 unless it is UTF-8)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServingError(
            400, f"the CSV body is not UTF-8 text: {exc}", kind="bad_request"
        ) from None


def decode_mlflow_payload(payload: Any, csv: bool, spec: InputContract) -> tuple[Columns, int]:
    """Decode an ``/invocations`` body: CSV text, or parsed JSON."""
    try:
        if csv:
            return decode_csv(payload, spec)
        return decode_mlflow(payload, spec)
    except RequestValidationError as exc:
        raise ServingError.from_validation(exc) from None


def mlflow_body(body: bytes, contract: InputContract, csv: bool, max_rows: int) -> Decoded:
    """An ``/invocations`` body (CSV or JSON), as the decode process runs it."""
    payload = csv_text(body) if csv else _parsed(body, max_rows, 2)
    columns, rows = decode_mlflow_payload(payload, csv, contract)
    return columns, rows, None


# -- V2 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class V2Request:
    """What a V2 inference request holds besides the model's inputs' values.

    ``inputs`` are the tensors (binary data inlined, missing elements marked); ``wanted``
    the outputs asked for (name, binary or not; None: all); ``given_id`` the client's
    id; ``binary_output`` whether outputs default to binary.
    """

    inputs: Any
    wanted: list[tuple[str, bool | None]] | None
    given_id: str | None
    binary_output: bool


def read_v2(payload: Any, binary: bytes) -> V2Request:
    """The request a V2 body's parsed JSON header and its binary data make.

    Raises:
        ServingError: 422 when the header is not an object; 400 for a malformed
            ``outputs``, binary data or ``missing`` list, or an ``id`` that is not text.
    """
    payload = require_object(payload, '{"inputs": [...]}')
    inputs = mark_missing(inline_binary(payload.get("inputs"), binary), payload)
    wanted = _requested_outputs(payload)
    given_id = payload.get("id")
    if isinstance(given_id, str) and not is_valid_text(given_id):
        raise ServingError(
            400,
            "'id' holds a lone UTF-16 surrogate, which is not a Unicode character; send "
            "valid UTF-8 text or leave 'id' out",
            kind="bad_request",
            loc=["body", "id"],
        )
    parameters = payload.get("parameters")
    return V2Request(
        inputs,
        wanted,
        given_id if isinstance(given_id, str) else None,
        isinstance(parameters, dict) and parameters.get("binary_data_output") is True,
    )


def _requested_outputs(payload: dict[str, Any]) -> list[tuple[str, bool | None]] | None:
    requested = payload.get("outputs")
    if requested is None:
        return None
    if not isinstance(requested, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in requested
    ):
        raise ServingError(
            400,
            '"outputs" must be a list of {"name": "predict" or "predict_proba"}',
            kind="bad_request",
        )
    wanted = []
    for item in requested:
        parameters = item.get("parameters")
        binary = parameters.get("binary_data") if isinstance(parameters, dict) else None
        wanted.append((item["name"], binary if isinstance(binary, bool) else None))
    return wanted


def decode_inputs(inputs: Any, spec: InputContract) -> tuple[Columns, int]:
    """Decode a V2 request's input tensors with ``spec``."""
    try:
        return decode_v2(inputs, spec)
    except RequestValidationError as exc:
        raise ServingError.from_validation(exc, loc=("body", "inputs")) from None


def v2_body(
    body: bytes, contract: InputContract, header: int, per_row: int, max_rows: int
) -> Decoded:
    """A V2 body (its first ``header`` bytes JSON, binary tensor data after), as the
    decode process runs it; the third item is the :class:`V2Request` without inputs."""
    found = read_v2(_parsed(body[:header], max_rows, per_row), body[header:])
    columns, rows = decode_inputs(found.inputs, contract)
    return columns, rows, replace(found, inputs=None)
