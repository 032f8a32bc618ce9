"""Many versions behind one name on a stream consumer: the registry's routing policies.

A consumer follows the routing policy of its model as a server does, with the server's
own :class:`~modelyard.serving.routing.Router` (one code path: the same arms, the same
canary draw, rollback rule, fallback and shadow runner); this module only carries a
stream message to it where the server carries an HTTP request:

- **canary**: a ``share`` of messages goes to the candidate; with ``sticky``, the
  message's ``"key"`` field is the routing key (what the ``key_header`` is over HTTP),
  so the same key always gets the same arm. Each output document says which arm
  answered (``"arm"``; ``"fallback"`` with the reason when another arm answered for a
  failed or late one) and its ``"version"``. The automatic rollback is the server's:
  the canary stops here at once, and the registry's policy loses its canary (audited,
  actor ``modelyard-stream``), so every server and consumer following it stops too;
- **shadow**: the candidate scores a copy of each message (or a ``sample``) once the
  batch's outputs are written and acknowledged (:meth:`StreamRouting.after_output`), on
  threads of its own; its predictions go to the prediction log under the message id
  (endpoint ``shadow``), paired with the primary's (endpoint ``stream``);
- **fallback** and **composite** work as on the server (a composite's weights come from
  the message's ``"weights"`` object, e.g. ``{"alpha": 0.3}``); a **bandit** chooses arms
  the same way, but rewards are posted to a server (``/v1/models/{name}/reward``): a
  consumer has no endpoint for them.

Policies are read at start and every ``poll_seconds``, so a change needs no restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelyard.serving.routing import AFTER_RESPONSE_KEY, ROUTE_KEY, Router, run_after_response
from modelyard.streaming.batched import predict_batched

if TYPE_CHECKING:
    from modelyard.engine import PredictionEngine
    from modelyard.serving.manager import LoadedModel, ModelManager
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.routing import Route
    from modelyard.streaming.messages import Request
    from modelyard.types import RuntimeOutput

__all__ = ["ACTOR", "Answer", "StreamRouting"]

#: Who the audit trail names for the decisions a consumer takes (a canary rollback).
ACTOR = "modelyard-stream"


@dataclass(frozen=True)
class Answer:
    """One message's prediction: the version that answered, and (when routed) how."""

    loaded: LoadedModel
    rows: int
    output: RuntimeOutput
    route: dict[str, Any] | None = None


@dataclass
class _MessageCall:
    """A stream message as the router reads a request (see :class:`RoutedRequest`)."""

    headers: dict[str, str]
    query_params: dict[str, str]
    scope: MutableMapping[str, Any] = field(default_factory=dict)


class StreamRouting:
    """The routing policies of a consumer's model, applied message by message.

    Args:
        manager: the consumer's model manager (it loads the arms, owns the registry).
        engine: the consumer's prediction engine.
        metrics: where the per-arm metrics go (the consumer's registry).
        poll_seconds: how often policies are re-read (0: at start only).
        batched: predict the messages of a batch without a routing policy together
            (:mod:`~modelyard.streaming.batched`); False predicts each on its own, the
            path a routed message takes (the two give the same documents).
    """

    def __init__(
        self,
        manager: ModelManager,
        engine: PredictionEngine,
        metrics: ServingMetrics,
        *,
        poll_seconds: float,
        batched: bool = True,
    ) -> None:
        self.engine = engine
        self.batched = batched
        self.router = Router(manager, engine, metrics, poll_seconds=poll_seconds, actor=ACTOR)
        self._after: list[MutableMapping[str, Any]] = []

    async def start(self) -> None:
        """Read the policies (the manager has loaded its model), then poll them."""
        await self.router.start()

    async def aclose(self) -> None:
        """Stop polling, wait for shadow copies and decisions, close the arms."""
        await self.router.aclose()

    async def refresh(self) -> list[str]:
        """Re-read the policies now; returns the names whose route changed."""
        return await self.router.refresh()

    def describe(self) -> list[dict[str, Any]]:
        """The live routes, as a server's ``GET /v1/experiments`` shows them."""
        return self.router.describe()

    def plain(self, name: str) -> bool:
        """Whether a batch for ``name`` takes the batched path now (no routing policy):
        such a batch keeps no state here between its prediction and its output, so it
        may be predicted while the batch before it is still being written."""
        return self.batched and self.router.routes.get(name) is None

    async def predict_all(
        self,
        loaded: LoadedModel,
        requests: list[tuple[Request, bool]],
        *,
        received_at: datetime,
        started: float,
    ) -> list[Answer | BaseException]:
        """Predict each ``(request, offload)`` of a batch on ``loaded`` (the primary,
        held by the caller for the whole batch), or by the route of its model.

        Exceptions are returned in place, as ``asyncio.gather`` does. Shadow copies wait
        for :meth:`after_output`; those of a batch that was never written are dropped.
        """
        self._after = []
        route = self.router.routes.get(loaded.name)
        if route is None and self.batched:  # every message goes to ``loaded``
            answers = await predict_batched(
                self.engine,
                loaded,
                requests,
                received_at=received_at,
                started=started,
                one=lambda request, offload: self.engine.predict(
                    loaded, request.decode, **_call(request, received_at, started, offload)
                ),
            )
            return [
                answer
                if isinstance(answer, BaseException)
                else Answer(loaded, answer.rows, answer.output)
                for answer in answers
            ]
        calls = [
            self._one(route, loaded, request, received_at, started, offload)
            for request, offload in requests
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    def after_output(self) -> None:
        """Start the shadow copies of the batch just written (off the output path)."""
        after, self._after = self._after, []
        for scope in after:
            run_after_response(scope)

    async def _one(
        self,
        route: Route | None,
        loaded: LoadedModel,
        request: Request,
        received_at: datetime,
        started: float,
        offload: bool,
    ) -> Answer:
        call = _call(request, received_at, started, offload)
        if route is None:
            answer = await self.engine.predict(loaded, request.decode, **call)
            return Answer(loaded, answer.rows, answer.output)
        message = _message_call(route, request)
        loaded.acquire()  # the router releases the primary it is given
        answering, rows, output = await self.router.predict(
            route, message, loaded, request.decode, **call
        )
        if message.scope.get(AFTER_RESPONSE_KEY):
            self._after.append(message.scope)
        return Answer(answering, rows, output, dict(message.scope.get(ROUTE_KEY) or {}))


def _call(request: Request, received_at: datetime, started: float, offload: bool) -> dict[str, Any]:
    """The engine's keyword arguments for one message."""
    return {
        "request_id": request.id,
        "received_at": received_at,
        "started": started,
        "endpoint": "stream",
        "offload": offload,
    }


def _message_call(route: Route, request: Request) -> _MessageCall:
    """The routing key (``"key"``) and composite weights (``"weights"``) of a message."""
    payload = request.payload
    headers = {}
    canary = route.record.policy.canary
    key = payload.get("key")
    if canary is not None and isinstance(key, str | int) and not isinstance(key, bool):
        headers[canary.key_header] = str(key)
    weights = payload.get("weights")
    params = {str(k): str(v) for k, v in weights.items()} if isinstance(weights, dict) else {}
    return _MessageCall(headers=headers, query_params=params)
