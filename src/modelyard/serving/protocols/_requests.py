"""The JSON bodies of feedback, rewards, clicks and admin loads: their shapes and the one
check each body goes through, as functions the decode process can run.

Each ``*_body`` function takes a body's bytes and does all the work that depends on the
body alone: count its containers (:func:`check_containers`), parse it
(:func:`parse_json`), validate it against its pydantic model, apply its item limits,
and return a plain structure (tuples and text: quick to send back from the decode
process). The routes call the same function in process for a body of at most
:data:`~modelyard.serving.protocols.OFFLOAD_BYTES` and through the decode process
(:meth:`~modelyard.serving.decodepool.DecodePool.run`) for a larger one, so both sizes
meet one rule and get the same answer, errors included.

This module imports neither FastAPI nor the routes: the decode process imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.serving.protocols import ServingError, check_containers, parse_json

__all__ = [
    "ClicksRequest",
    "Feedback",
    "FeedbackItemBody",
    "FeedbackRequest",
    "Label",
    "LoadRequest",
    "RewardItem",
    "RewardRequest",
    "clicks_body",
    "feedback_body",
    "invalid_body",
    "load_body",
    "reward_body",
]

Label = str | float | int | bool
#: Items and clicks one reward or clicks body may carry.
MAX_ITEMS = 10_000
#: Problems a 422 lists in ``detail`` (a body can break its shape a million times over;
#: the first ones are enough to start fixing it) and, of those, in its message.
_DETAILED = 100
_IN_MESSAGE = 10

_Model = TypeVar("_Model", bound=BaseModel)


# -- shapes ---------------------------------------------------------------------------


class FeedbackItemBody(BaseModel):
    """The true label of one predicted row (``row``: its position in the request)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    label: Label
    row: int = Field(default=0, ge=0)


class FeedbackRequest(BaseModel):
    """True labels of earlier predictions of ``model``."""

    model_config = ConfigDict(extra="forbid")
    model: str
    items: list[FeedbackItemBody] = Field(min_length=1)


class LoadRequest(BaseModel):
    """The reference to serve, e.g. ``{"ref": "house-prices:3"}``."""

    model_config = ConfigDict(extra="forbid")
    ref: str


class RewardItem(BaseModel):
    """The reward of one answered request (a bandit's must be in [0, 1])."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    reward: float


class RewardRequest(BaseModel):
    """Rewards of earlier predictions."""

    model_config = ConfigDict(extra="forbid")
    items: list[RewardItem] = Field(min_length=1, max_length=MAX_ITEMS)


class ClicksRequest(BaseModel):
    """The clicked positions (0 = top) of one ranking /rank returned."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    clicked: list[int] = Field(max_length=MAX_ITEMS)


def invalid_body(exc: ValidationError) -> ServingError:
    """A 422 naming where a body breaks its documented shape: the first ``_DETAILED``
    problems in ``detail`` (and one more entry saying how many there are, when more),
    the first ``_IN_MESSAGE`` in the message."""
    count = exc.error_count()
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    items: list[dict[str, Any]] = [
        {"loc": ["body", *item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in errors[:_DETAILED]
    ]
    shown = "; ".join(
        f"{'.'.join(map(str, i['loc'][1:])) or 'body'}: {i['msg']}" for i in items[:_IN_MESSAGE]
    )
    if count > _IN_MESSAGE:
        shown += f"; and {count - _IN_MESSAGE:,} more ({count:,} problems in all)"
    if count > _DETAILED:
        items.append(
            {
                "loc": ["body"],
                "msg": f"and {count - _DETAILED:,} more problems ({count:,} in all); fix "
                "the ones listed and send the body again to see the next",
                "type": "too_many_problems",
            }
        )
    return ServingError(
        422,
        f"the body does not have the documented shape: {shown}",
        kind="validation",
        items=items,
    )


def _validated(body: bytes, model: type[_Model], max_rows: int) -> _Model:
    """``body`` parsed and checked against ``model``; refused (413) before parsing when it
    holds more arrays and objects than ``max_rows`` items of one each need."""
    check_containers(body, max_rows, 1)
    payload = parse_json(body)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid_body(exc) from None


# -- bodies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Feedback:
    """A checked feedback body: the model, and (request id, label, row) per item."""

    model: str
    items: list[tuple[str, Label, int]]


def feedback_body(body: bytes, max_rows: int) -> Feedback:
    """A ``/v1/feedback`` body, checked: its shape (422) and at most ``max_rows`` items
    (413)."""
    found = _validated(body, FeedbackRequest, max_rows)
    if len(found.items) > max_rows:
        raise ServingError(
            413,
            f"{len(found.items)} items, more than the {max_rows} allowed per request; send "
            "them in smaller batches",
            kind="too_many_rows",
            loc=["body", "items"],
        )
    return Feedback(found.model, [(i.request_id, i.label, i.row) for i in found.items])


def reward_body(body: bytes, max_rows: int) -> list[tuple[str, float]]:
    """A ``/v1/models/{name}/reward`` body, checked: (request id, reward) per item."""
    found = _validated(body, RewardRequest, max_rows)
    return [(item.request_id, item.reward) for item in found.items]


def clicks_body(body: bytes, max_rows: int) -> tuple[str, list[int]]:
    """A ``/v1/models/{name}/rank/clicks`` body, checked: the request id and the clicks."""
    found = _validated(body, ClicksRequest, max_rows)
    return found.request_id, found.clicked


def load_body(body: bytes, max_rows: int) -> str:
    """A ``/v1/admin/models/{name}/load`` body, checked: the reference to serve."""
    return _validated(body, LoadRequest, max_rows).ref
