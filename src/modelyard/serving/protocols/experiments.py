"""Experiments on live traffic, over modelyard's own JSON protocol.

- ``GET /v1/experiments``: every routing policy this server follows, its arms, their
  statistics, the shadow's differential test, the A/B test, bandit and interleaving;
- ``POST /v1/models/{name}/reward``: rewards of answered requests (A/B test, bandit,
  the canary's labelled-metric rollback), by request id;
- ``POST /v1/models/{name}/rank``: the request's rows ranked by score, best first
  (team-draft interleaved with a candidate's ranking under an ``interleave`` policy);
- ``POST /v1/models/{name}/rank/clicks``: the clicked positions of a ranking.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from modelyard.serving.decodepool import BodyDecoder
from modelyard.serving.protocols import (
    OFFLOAD_BYTES,
    SCHEMA_REF,
    ServingState,
    checked_body,
    component_schemas,
    json_response,
    parse_json,
    read_body,
    request_id,
    require_json,
    require_object,
    set_labels,
)
from modelyard.serving.protocols._requests import (
    ClicksRequest,
    RewardRequest,
    clicks_body,
    reward_body,
)

if TYPE_CHECKING:
    from modelyard.engine import Decoder

__all__ = ["openapi_schemas", "router"]

router = APIRouter()


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    from modelyard.serving.protocols.own import DetailError

    return {status: {"model": DetailError} for status in statuses}


def _body(model: str) -> dict[str, Any]:
    schema = {"$ref": SCHEMA_REF.format(model=model)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_schemas() -> dict[str, Any]:
    """The request-body schemas this module's operations refer to."""
    return component_schemas(RewardRequest, ClicksRequest)


def _state(request: Request, name: str, endpoint: str) -> ServingState:
    state: ServingState = request.app.state.serving
    set_labels(request, name, "", endpoint)
    state.check_predict_key(request)
    state.slot(name)
    return state


@router.get("/v1/experiments", tags=["experiments"], responses=_errors(401))
async def experiments(request: Request) -> Response:
    """Live experiments on this server: each routing policy, its arms and statistics."""
    state: ServingState = request.app.state.serving
    state.check_predict_key(request)
    entries = state.router.describe() if state.router is not None else []
    return json_response({"experiments": entries})


@router.post(
    "/v1/models/{name}/reward",
    tags=["experiments"],
    responses=_errors(400, 401, 404, 413, 415, 422),
    openapi_extra=_body("RewardRequest"),
)
async def reward(request: Request, name: str) -> Response:
    """Credit rewards to the arms that answered the requests (by request id)."""
    state = _state(request, name, "reward")
    items = await checked_body(request, state, reward_body)
    assert state.router is not None
    counts = state.router.reward(name, items)
    return json_response({"model": name, **counts})


@router.post(
    "/v1/models/{name}/rank",
    tags=["experiments"],
    responses=_errors(400, 401, 404, 413, 415, 422, 503),
    openapi_extra=_body("PredictRequest"),
)
async def rank(request: Request, name: str) -> Response:
    """The rows (as for /predict) ranked by score, best first, as row positions."""
    from modelyard.serving.protocols._bodies import decode_payload, own_body

    received_at = datetime.now(UTC)
    started = time.perf_counter()
    state = _state(request, name, "rank")
    slot = state.slot(name)
    require_json(request)
    body = await read_body(request, state.config.max_body_bytes)
    shape = 'with "rows" or "columns" and "data"'
    if len(body) > OFFLOAD_BYTES:  # parsed and decoded in the decode process
        decode: Decoder = BodyDecoder(own_body, body, state.config.max_rows_per_request, shape)
    else:
        decode = partial(decode_payload, require_object(parse_json(body), shape))
    primary = state.acquire(slot, None)
    set_labels(request, name, str(primary.number), "rank")
    assert state.router is not None
    ranking, teams = await state.router.rank(
        state.router.routes.get(name),
        primary,
        decode,
        request_id=request_id(request),
        received_at=received_at,
        started=started,
        endpoint="rank",
        offload=len(body) > OFFLOAD_BYTES,
    )
    content: dict[str, Any] = {
        "model": name,
        "version": primary.number,
        "request_id": request_id(request),
        "ranking": ranking,
    }
    if teams is not None:
        content["teams"] = teams
    return json_response(content)


@router.post(
    "/v1/models/{name}/rank/clicks",
    tags=["experiments"],
    responses=_errors(400, 401, 404, 413, 415, 422),
    openapi_extra=_body("ClicksRequest"),
)
async def clicks(request: Request, name: str) -> Response:
    """Credit the clicks on an interleaved ranking to the arm that placed them."""
    state = _state(request, name, "rank_clicks")
    ranking_id, clicked = await checked_body(request, state, clicks_body)
    assert state.router is not None
    winner = state.router.clicks(name, ranking_id, clicked)
    return json_response({"model": name, "request_id": ranking_id, "preferred": winner})
