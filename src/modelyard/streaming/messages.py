"""The documents a stream consumer reads and writes.

In: one JSON object per message, with an ``id`` and the rows in one of the shapes the
REST API accepts (``POST /v1/models/{name}/predict``), or one row:

- ``{"id": "o-1", "row": {"size": 120.5, "town": "alpha"}}`` (one row);
- ``{"id": "o-2", "rows": [{...}, {...}]}`` (records);
- ``{"id": "o-3", "columns": ["size", "town"], "data": [[120.5, "alpha"]]}`` (split).

Out, one document per input message: ``id``, ``model``, ``version``, ``prediction`` (one
row) or ``predictions`` (several), ``probabilities`` and ``classes`` for classifiers,
``arm`` (under a routing policy: which arm answered, and ``fallback`` with the reason
when it answered for a failed one), ``redelivered`` (the broker delivered this input
before: an output for it may exist already), ``consumer`` and ``timing`` (milliseconds
queued on the broker and spent predicting). A message that cannot be predicted becomes a
dead letter: its ``id`` (when it has one), the broker's ``entry`` id, ``error``
(``status``, ``message`` and ``detail`` in the REST API's words and shape) and the
original ``message`` text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelyard.contract import (
    InputContract,
    RequestValidationError,
    decode_records,
    decode_split,
)
from modelyard.types import Columns, RuntimeOutput

__all__ = [
    "MAX_ID_LENGTH",
    "BadMessage",
    "InMessage",
    "Request",
    "dead_letter",
    "output_document",
    "parse_message",
]

#: The longest message id accepted (it becomes the prediction log's request id).
MAX_ID_LENGTH = 200

_SHAPES = (
    'give "row" (one object), "rows" (a list of objects, one per row) or "columns" and '
    '"data" (names, then one list of values per row)'
)


@dataclass(frozen=True)
class InMessage:
    """One entry read from the in stream.

    ``entry`` is the broker's position of it (a Redis entry id, a Kafka
    ``partition:offset``, a JetStream sequence); ``enqueued_ms`` the broker's timestamp
    of it (Unix ms), when known; ``redelivered`` whether the broker delivered it before;
    ``deliveries`` how many times it has been delivered, this time included (Redis and
    JetStream count them; on Kafka, modelyard does).
    """

    entry: str
    body: bytes | None
    enqueued_ms: int | None = None
    redelivered: bool = False
    deliveries: int = 1


@dataclass(frozen=True)
class Request:
    """A message that parsed: its id and JSON document."""

    id: str
    payload: dict[str, Any]
    single: bool

    def decode(self, contract: InputContract) -> tuple[Columns, int]:
        """The rows as the model's inputs (the contract's JSON front).

        Raises:
            RequestValidationError: the rows do not fit the model's inputs.
        """
        payload = self.payload
        if self.single:
            return decode_records([payload["row"]], contract)
        if "rows" in payload:
            return decode_records(payload["rows"], contract)
        return decode_split(payload.get("columns"), payload.get("data"), contract)


class BadMessage(Exception):
    """A message that cannot be predicted: the REST API's status, message and detail."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 422,
        kind: str = "malformed",
        loc: list[str | int] | None = None,
        id: str | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.id = id
        self.detail = detail or [{"loc": loc or ["body"], "msg": message, "type": kind}]

    @classmethod
    def from_validation(cls, exc: RequestValidationError, request: Request) -> BadMessage:
        """The contract's findings, located as the REST API locates them."""
        too_many = any(problem.kind == "too_many_rows" for problem in exc.problems)
        prefix: list[str | int] = ["body", "row" if request.single else "rows"]
        if not request.single and "rows" not in request.payload:
            prefix = ["body", "data"]
        detail = []
        for problem in exc.problems:
            loc = list(prefix)
            if problem.row is not None and not request.single:
                loc.append(problem.row)
            if problem.column is not None:
                loc.append(problem.column)
            detail.append({"loc": loc, "msg": problem.message, "type": problem.kind})
        return cls(exc.message, status=413 if too_many else 422, id=request.id, detail=detail)


def parse_message(body: bytes | None) -> Request:
    """The id and rows of a message body.

    Raises:
        BadMessage: not JSON, not an object, no usable id, or no rows in a known shape.
    """
    if not body:
        raise BadMessage('the message is empty; send a JSON object with "id" and rows', status=400)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Python's parser also takes NaN and Infinity, as the REST API does
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadMessage(
                f"the message is not valid JSON: {exc}", status=400, kind="bad_json"
            ) from None
    if not isinstance(payload, dict):
        raise BadMessage(
            f'expected a JSON object with "id" and rows, found {type(payload).__name__}'
        )
    raw_id = payload.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        found = "none" if raw_id is None else type(raw_id).__name__
        raise BadMessage(
            f'the message needs an "id" (text or an integer) to match its prediction to it; '
            f"found {found}",
            loc=["body", "id"],
        )
    message_id = str(raw_id)
    if not message_id or len(message_id) > MAX_ID_LENGTH:
        raise BadMessage(
            f'the message "id" must have 1 to {MAX_ID_LENGTH} characters, it has {len(message_id)}',
            loc=["body", "id"],
        )
    shapes = [key for key in ("row", "rows", "columns") if key in payload]
    if "data" in payload and "columns" not in shapes:
        shapes.append("columns")
    if len(shapes) != 1:
        raise BadMessage(
            _SHAPES + (f", not {' and '.join(map(repr, shapes))}" if shapes else ""),
            id=message_id,
        )
    if shapes == ["row"] and not isinstance(payload["row"], dict):
        raise BadMessage(
            f'expected "row" to be an object {{column: value}}, found '
            f"{type(payload['row']).__name__}",
            loc=["body", "row"],
            id=message_id,
        )
    return Request(message_id, payload, single=shapes == ["row"])


def output_document(
    request: Request,
    message: InMessage,
    *,
    model: str,
    version: int,
    output: RuntimeOutput,
    consumer: str,
    read_at_ms: int,
    predict_ms: float,
    route: dict[str, Any] | None = None,
) -> bytes:
    """The prediction of one message, as JSON; ``route``: what a routing policy did
    (``arm``, and ``fallback``, ``weights``, ``parts`` when they apply)."""
    content: dict[str, Any] = {"id": request.id, "model": model, "version": version}
    if route:
        content.update(route)
    values, proba = output.values, output.proba
    if request.single:
        content["prediction"] = values[0]
        if proba is not None:
            content["probabilities"] = proba[0]
    else:
        content["predictions"] = values
        if proba is not None:
            content["probabilities"] = proba
    if proba is not None:
        content["classes"] = output.classes
    content["redelivered"] = message.redelivered
    content["consumer"] = consumer
    queued = None if message.enqueued_ms is None else max(0, read_at_ms - message.enqueued_ms)
    content["timing"] = {"queued_ms": queued, "predict_ms": round(predict_ms, 3)}
    return _dumps(content)


def dead_letter(
    message: InMessage,
    error: BadMessage,
    *,
    model: str,
    version: int | None,
    consumer: str,
) -> bytes:
    """The dead letter of a message that could not be predicted, as JSON."""
    body = message.body or b""
    content = {
        "id": error.id,
        "entry": message.entry,
        "model": model,
        "version": version,
        "error": {"status": error.status, "message": error.message, "detail": error.detail},
        "message": body.decode("utf-8", errors="replace"),
        "redelivered": message.redelivered,
        "deliveries": message.deliveries,
        "consumer": consumer,
    }
    return _dumps(content)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _dumps(content: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)
    except TypeError:  # text that is not valid UTF-8 (a lone surrogate echoed back)
        return json.dumps(content, ensure_ascii=True, default=_plain).encode("ascii")
