"""Many versions behind one name on the running server: shadow, canary, fallback, composite.

A :class:`Router` follows the routing policies in the registry
(:mod:`modelyard.registry.routing`): it polls them like the manager polls aliases,
loads the versions a policy names (its *arms*) off the request path, and swaps a new
:class:`Route` in with one assignment, so a policy changes without a restart.

Per request to a name with a route (:meth:`Router.predict`):

- the **canary** answers a ``share`` of requests (by a hash of the routing key when
  ``sticky``, else at random); its errors and latencies, over a moving window, are
  checked against its rollback rule after each of its requests; a crossing stops the
  canary at once in this process and is written to the registry (the policy loses its
  canary, and the audit event carries the statistics). Its A/B test, on posted rewards
  or on the true labels of ``/v1/feedback`` (:meth:`Router.label`), may promote it or
  roll it back (:mod:`modelyard.serving.decisions`);
- the **fallback** answers when the arm chosen fails (a server fault, not a client's
  mistake) or misses the fallback's ``budget_ms``; a failed canary is answered by the
  primary. The reply says so (``X-Modelyard-Fallback``, and ``fallback`` in /v1 bodies);
- a **composite** runs its parts concurrently and combines their outputs with the
  request's weights (query parameters ``?alpha=0.3&beta=0.7``) within declared bounds;
- the **shadow** gets a copy of the request only after the response has been sent (the
  app's request middleware starts it), on threads of its own, at most
  ``max_in_flight`` at once (more are skipped and counted), never inline on the event
  loop. Its predictions go to the prediction log under the same request id (endpoint
  ``shadow``), and the last paired predictions feed the differential test
  (:func:`~modelyard.evaluation.diff.diff_predictions`) shown by :meth:`Router.describe`.
  A shadow that fails or is slow changes nothing but its own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelyard.errors import DataValidationError, ModelyardError
from modelyard.experiments.policy import bucket, combine
from modelyard.experiments.stats import team_draft
from modelyard.serving.arms import ArmMetrics, Route
from modelyard.serving.decisions import SERVER_ACTOR, Decider
from modelyard.serving.live import ranking_of
from modelyard.serving.shadow import AFTER_RESPONSE_KEY, ShadowRunner, run_after_response
from modelyard.types import RuntimeOutput

if TYPE_CHECKING:
    from modelyard.engine import Decoder, Prediction, PredictionEngine
    from modelyard.experiments.policy import RoutingPolicy
    from modelyard.registry.routing import PolicyRecord
    from modelyard.serving.manager import LoadedModel, ModelManager
    from modelyard.serving.metrics import ServingMetrics

__all__ = [
    "AFTER_RESPONSE_KEY",
    "ROUTE_KEY",
    "Route",
    "RoutedRequest",
    "Router",
    "run_after_response",
]

logger = logging.getLogger(__name__)

#: Scope key: what routing did for a request (``arm``, ``fallback``; shown in headers
#: and /v1 bodies).
ROUTE_KEY = "modelyard.route"

_CLOSE_SECONDS = 30.0  # how long shutdown waits for shadow copies and arms' requests


class RoutedRequest(Protocol):
    """What routing reads of a request, whatever carried it: a Starlette request on the
    server; a stream message on the consumer (:mod:`modelyard.streaming.routing`)."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Where a sticky canary finds its routing key (``key_header``)."""
        ...

    @property
    def query_params(self) -> Mapping[str, str]:
        """A composite's weights by name (``alpha``, ``beta``...), as text."""
        ...

    @property
    def scope(self) -> MutableMapping[str, Any]:
        """Per-request state: what routing did (:data:`ROUTE_KEY`) and the work left for
        after the answer is out (:data:`AFTER_RESPONSE_KEY`, shadow copies)."""
        ...


class Router:
    """Follows the registry's routing policies for the models ``manager`` serves.

    Args:
        manager: the server's model manager (it loads arms, and owns the registry).
        engine: the prediction engine (decode, predict, log).
        metrics: where the per-arm metrics go.
        poll_seconds: how often policies are re-read (0: only on :meth:`refresh`).
        shadow_threads: threads running shadow calls, apart from the primary's.
        actor: who the audit trail names for the decisions taken here (a rollback, an
            A/B verdict, a promotion).
    """

    def __init__(
        self,
        manager: ModelManager,
        engine: PredictionEngine,
        metrics: ServingMetrics,
        *,
        poll_seconds: float,
        shadow_threads: int = 2,
        actor: str = SERVER_ACTOR,
    ) -> None:
        self.manager = manager
        self.actor = actor
        self.engine = engine
        self.metrics = ArmMetrics(metrics)
        self.poll_seconds = poll_seconds
        self.routes: dict[str, Route] = {}
        self.errors: dict[str, str] = {}
        self.shadows = ShadowRunner(engine, self.metrics, self._background, threads=shadow_threads)
        self.decider = Decider(manager, self.metrics, self._background, self.refresh, actor=actor)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._random = random.Random()
        self._rng = np.random.default_rng()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Read the policies once (after the manager's first load), then poll."""
        await self.manager.wait_loaded()
        await self.refresh()
        if self.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll_forever(), name="modelyard-routing")

    async def aclose(self) -> None:
        """Stop polling, wait for shadow copies, close every arm."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._tasks:
            # A stalled shadow must not hold the shutdown: wait a while, then give up on it.
            _, late = await asyncio.wait(list(self._tasks), timeout=_CLOSE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                logger.warning("%d shadow or audit tasks still running at shutdown", len(late))
                await asyncio.gather(*late, return_exceptions=True)
        for route in self.routes.values():
            for loaded in route.arms.values():
                await loaded.retire(timeout=_CLOSE_SECONDS)
        self.routes.clear()
        self.shadows.shutdown()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except Exception:  # keep polling whatever one round met
                logger.exception("reading the routing policies failed")

    async def refresh(self) -> list[str]:
        """Re-read the policies; load and swap in the routes that changed.

        Returns:
            The names whose route changed.
        """
        from modelyard.registry.routing import list_policies

        registry = self.manager.registry
        records = await asyncio.to_thread(list_policies, registry)
        wanted = {r.model: r for r in records if self.manager.get(r.model) is not None}
        changed = []
        async with self._lock:
            for name in list(self.routes):
                if name not in wanted:
                    await self._swap(name, None)
                    changed.append(name)
            for name, record in wanted.items():
                current = self.routes.get(name)
                if current is not None and current.record.revision == record.revision:
                    continue
                try:
                    route = await self._build(record, current)
                except Exception as exc:  # a bad arm leaves the route as it was
                    self.errors[name] = f"routing policy revision {record.revision}: {exc}"
                    logger.error(
                        "%s: not routing by revision %d", name, record.revision, exc_info=exc
                    )
                    continue
                self.errors.pop(name, None)
                await self._swap(name, route)
                changed.append(name)
        return changed

    async def _build(self, record: PolicyRecord, current: Route | None) -> Route:
        from modelyard.registry.refs import parse_ref

        registry = self.manager.registry
        shadow = record.policy.shadow
        executor = self.shadows.executor_for(idle=shadow is not None and shadow.idle)
        reuse = {
            (role, loaded.version.ref, loaded.batcher.executor): loaded
            for role, loaded in (current.arms.items() if current else ())
        }
        arms: dict[str, LoadedModel] = {}
        for role, ref in record.resolved.items():
            found = reuse.get((role, ref, executor if role == "shadow" else None))
            if found is None and role != "shadow":
                found = next((v for k, v in reuse.items() if k[:2] == (role, ref)), None)
            if found is None:
                version = await asyncio.to_thread(registry.get_version, parse_ref(ref))
                if role == "shadow":
                    found = await self.manager.load_version(
                        version, executor=executor, inline=False
                    )
                else:
                    found = await self.manager.load_version(version, inline=role != "fallback")
            arms[role] = found
        route = Route(record=record, arms=arms)
        if current is not None and _same_experiment(current.record.policy, record.policy):
            # the same experiment keeps its history (a shadow or fallback changed)
            route.stats, route.live = current.stats, current.live
        return route

    async def _swap(self, name: str, route: Route | None) -> None:
        old = self.routes.pop(name, None)
        if route is not None:
            self.routes[name] = route
            canary = route.record.policy.canary
            self.metrics.share.labels(name, "canary").set(canary.share if canary else 0.0)
            logger.info("%s: routing by policy revision %d", name, route.record.revision)
        else:
            self.metrics.share.labels(name, "canary").set(0.0)
        if old is not None:
            keep = set(map(id, route.arms.values())) if route else set()
            for loaded in old.arms.values():
                if id(loaded) not in keep:
                    self._background(loaded.retire())

    # -- requests -------------------------------------------------------------------

    async def predict(
        self,
        route: Route,
        request: RoutedRequest,
        primary: LoadedModel,
        decode: Decoder,
        *,
        request_id: str,
        endpoint: str,
        received_at: datetime,
        started: float,
        offload: bool,
    ) -> tuple[LoadedModel, int, RuntimeOutput]:
        """Answer one request by ``route``; see the module docstring.

        ``primary`` is the slot's current version, acquired by the caller; it is
        released here.
        """
        policy = route.record.policy
        info: dict[str, Any] = {"arm": "primary"}
        request.scope[ROUTE_KEY] = info
        arm, answering = "primary", primary
        canary = route.arms.get("canary")
        if canary is not None and policy.canary is not None and route.canary_stopped is None:
            key = request.headers.get(policy.canary.key_header) if policy.canary.sticky else None
            draw = bucket(key, route.name) if key is not None else self._random.random()
            if draw < policy.canary.share:
                arm, answering = "canary", canary
        elif policy.bandit is not None and route.live is not None:
            arm = route.live.choose_bandit_arm()
            answering = route.arms.get(arm, primary)
        kwargs: dict[str, Any] = {
            "request_id": request_id,
            "received_at": received_at,
            "started": started,
            "endpoint": endpoint,
            "offload": offload,
        }
        decoded = None
        try:
            if policy.composite is not None:
                info["arm"] = "composite"
                output, rows = await self._composite(route, request, decode, kwargs, info)
                loaded = primary
            else:
                info["arm"] = arm
                loaded, answer = await self._answer(
                    route, (arm, answering), primary, decode, kwargs, info
                )
                rows, output = answer.rows, answer.output
                decoded = (loaded.input_spec, answer.columns, rows)
        finally:
            primary.release()
        if route.live is not None and (policy.canary or policy.bandit):
            route.live.assign(request_id, info["arm"])  # rewards are credited to it
            route.live.keep_output(request_id, output.values)  # scored when labelled
        if policy.shadow is not None and "shadow" in route.arms:
            self.shadows.offer(
                route.name,
                route.record.policy.shadow,
                route.shadow_stats,
                route.arms["shadow"],
                request.scope,
                decode,
                decoded,
                output.values,
                kwargs,
            )
        return loaded, rows, output

    async def _answer(
        self,
        route: Route,
        chosen: tuple[str, LoadedModel],
        primary: LoadedModel,
        decode: Decoder,
        kwargs: dict[str, Any],
        info: dict[str, Any],
    ) -> tuple[LoadedModel, Prediction]:
        arm, loaded = chosen
        policy = route.record.policy
        budget = policy.fallback.budget_ms if policy.fallback is not None else None
        rescue = route.arms.get("fallback")
        if arm != "primary" and rescue is None:  # a candidate failed: the primary answers
            rescue = primary
        started = time.perf_counter()
        try:
            call = self.engine.predict(loaded, decode, **kwargs)
            answer = await (asyncio.wait_for(call, budget / 1000) if budget else call)
        except Exception as exc:
            if _client_error(exc):
                raise
            self._observe(route, arm, loaded, ok=False, started=started)
            if rescue is None:
                raise
            why = (
                f"{arm} {loaded.version.ref} missed its {budget:g} ms budget"
                if isinstance(exc, TimeoutError)
                else f"{arm} {loaded.version.ref} failed ({type(exc).__name__})"
            )
            logger.warning(
                "request %s: %s; answered by %s", kwargs["request_id"], why, rescue.version.ref
            )
            info["fallback"] = why
            info["arm"] = "fallback"
            rescue_started = time.perf_counter()
            rescue.acquire()
            try:
                answer = await self.engine.predict(rescue, decode, **kwargs)
            finally:
                rescue.release()
            self._observe(route, "fallback", rescue, ok=True, started=rescue_started)
            return rescue, answer
        self._observe(route, arm, loaded, ok=True, started=started)
        return loaded, answer

    def _observe(
        self, route: Route, arm: str, loaded: LoadedModel, *, ok: bool, started: float
    ) -> None:
        seconds = time.perf_counter() - started
        stats = route.arm_stats(arm)
        stats.record(ok, seconds * 1000)
        self.metrics.requests.labels(
            route.name, arm, str(loaded.number), "ok" if ok else "error"
        ).inc()
        self.metrics.latency.labels(route.name, arm).observe(seconds)
        if arm == "canary":
            self.decider.check_canary(route)

    async def _composite(
        self,
        route: Route,
        request: RoutedRequest,
        decode: Decoder,
        kwargs: dict[str, Any],
        info: dict[str, Any],
    ) -> tuple[RuntimeOutput, int]:
        composite = route.record.policy.composite
        assert composite is not None
        given = {}
        for part in composite.parts:
            text = request.query_params.get(part.weight)
            if text is None:
                continue
            try:
                given[part.weight] = float(text)
            except ValueError:
                raise DataValidationError(
                    f"composite weight {part.weight}={text!r} (a query parameter) is not a "
                    "number; give e.g. ?alpha=0.3"
                ) from None
        weights = composite.weights(given)  # DataValidationError (422) when out of bounds
        parts = [route.arms[f"part:{item.weight}"] for item in composite.parts]
        started = time.perf_counter()
        for loaded in parts:
            loaded.acquire()
        try:
            answers = await asyncio.gather(
                *(self.engine.predict(loaded, decode, **kwargs) for loaded in parts)
            )
        finally:
            for loaded in parts:
                loaded.release()
        values, proba = combine(
            weights, [a.output.values for a in answers], [a.output.proba for a in answers]
        )
        classes = answers[0].output.classes
        if proba is not None:
            if any(a.output.classes != classes for a in answers):
                raise ModelyardError("the composite's parts do not have the same classes")
            values = np.asarray(classes, dtype=object)[values] if classes else values
        self._observe(route, "composite", parts[0], ok=True, started=started)
        info["weights"] = {item.weight: w for item, w in zip(composite.parts, weights, strict=True)}
        info["parts"] = [loaded.version.ref for loaded in parts]
        return RuntimeOutput(values=values, proba=proba, classes=classes), answers[0].rows

    # -- feedback on experiments ------------------------------------------------------

    def reward(self, name: str, items: list[tuple[str, float]]) -> dict[str, int]:
        """Credit rewards (request id, value) to the arms that answered; an A/B test
        whose decision changes is audited.

        Raises:
            DataValidationError: ``name`` has no canary or bandit here, or a bad reward.
        """
        route = self.routes.get(name)
        policy = route.record.policy if route is not None else None
        if route is None or route.live is None or not (policy and (policy.canary or policy.bandit)):
            raise DataValidationError(
                f"model {name!r} runs no canary, A/B test or bandit on this server, so "
                "rewards have no arm to go to; `modelyard experiments list` shows policies"
            )
        live = route.live
        matched = 0
        for request_id, value in items:
            arm = live.reward(request_id, value)
            if arm is not None:
                matched += 1
                route.arm_stats(arm).add_reward(value)
        self.decider.judge(route)  # the labelled metric or the A/B test may decide now
        return {"stored": matched, "unmatched": len(items) - matched}

    def label(self, name: str, items: list[tuple[str, int, Any]]) -> int:
        """Score true labels (request id, row, label) of a canary whose A/B test is
        judged by them (``metric: labels``), crediting the arm that answered each row;
        returns how many were scored. Feedback for any other model changes nothing."""
        route = self.routes.get(name)
        live = route.live if route is not None else None
        if route is None or live is None or not live.judged_by_labels:
            return 0
        task = route.arms["canary"].task  # a canary judged by labels has its arm
        scored = 0
        for request_id, row, label in items:
            credited = live.label(request_id, row, label, task)
            if credited is not None:
                scored += 1
                route.arm_stats(credited[0]).add_reward(credited[1])
        if scored:
            self.decider.judge(route)
        return scored

    async def rank(
        self, route: Route | None, primary: LoadedModel, decode: Decoder, **call: Any
    ) -> tuple[list[int], list[str] | None]:
        """Rank the request's rows by the primary's scores, best first; with an
        ``interleave`` policy, team-draft interleave the candidate's ranking into it.

        ``primary`` is acquired by the caller and released here. Returns the row
        positions in order, and (interleaving) which arm placed each.
        """
        candidate = route.arms.get("interleave") if route is not None else None
        try:
            if candidate is None:
                answer = await self.engine.predict(primary, decode, **call)
                return ranking_of(answer.output), None
            candidate.acquire()
            try:
                mine, theirs = await asyncio.gather(
                    self.engine.predict(primary, decode, **call),
                    self.engine.predict(candidate, decode, **{**call, "endpoint": "interleave"}),
                )
            finally:
                candidate.release()
        finally:
            primary.release()
        assert route is not None and route.live is not None
        shown, teams = team_draft(ranking_of(mine.output), ranking_of(theirs.output), rng=self._rng)
        route.live.remember_teams(call["request_id"], teams)
        return shown, [("primary", "candidate")[team] for team in teams]

    def clicks(self, name: str, request_id: str, clicked: list[int]) -> str:
        """Credit the clicks on an interleaved ranking; returns who won it."""
        route = self.routes.get(name)
        if route is None or route.live is None or route.record.policy.interleave is None:
            raise DataValidationError(
                f"model {name!r} runs no interleaving experiment on this server"
            )
        outcome = route.live.clicks(request_id, clicked)
        return {1: "primary", -1: "candidate", 0: "tie"}[outcome]

    # -- reporting ------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every live route: policy, arms, statistics, the shadow's differential test."""
        entries = []
        for _, route in sorted(self.routes.items()):
            primary = _current(self, route)
            task = primary.task if primary is not None else "regression"
            atol = _diff_tolerance(primary)
            entry: dict[str, Any] = {
                **route.record.as_dict(),
                "primary": primary.version.ref if primary else None,
                "arms": {role: loaded.version.ref for role, loaded in route.arms.items()},
                "statistics": {arm: s.summary() for arm, s in route.stats.items()},
                "canary_stopped": route.canary_stopped,
            }
            if route.live is not None:
                entry.update(route.live.describe())
            if route.record.policy.shadow is not None:
                entry["shadow"] = route.shadow_stats.summary(task, atol)
            entries.append(entry)
        for name, error in sorted(self.errors.items()):
            entries.append({"model": name, "error": error})
        return entries

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _current(router: Router, route: Route) -> LoadedModel | None:
    slot = router.manager.get(route.name)
    return slot.current if slot is not None else None


def _same_experiment(old: RoutingPolicy, new: RoutingPolicy) -> bool:
    return (old.canary, old.bandit, old.interleave, old.composite) == (
        new.canary,
        new.bandit,
        new.interleave,
        new.composite,
    )


def _diff_tolerance(loaded: LoadedModel | None) -> float:
    """The version's ``evaluation.diff_tolerance``: changes up to it are no change."""
    if loaded is None:
        return 1e-6
    evaluation = loaded.version.spec.get("evaluation") or {}
    return float(evaluation.get("diff_tolerance", 1e-6))


def _client_error(exc: BaseException) -> bool:
    """A request's own mistake (it gets its 4xx; no fallback would do better)."""
    return isinstance(exc, ModelyardError) and exc.http_status < 500
