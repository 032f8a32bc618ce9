"""Decisions a server takes on live evidence, written to the registry's audit trail
(used by :mod:`modelyard.serving.routing`).

- a canary whose rollback rule fires (error rate, p95 latency, labelled metric) is
  stopped at once in this process and rolled back in the registry;
- a canary's sequential A/B test that changes its decision is audited; with ``act``,
  a **winner is promoted** (the production alias moves to it and the canary ends, in
  one registry transaction; this process then swaps it in without waiting for its
  poll) and a **loser is rolled back**.

Each write carries the statistics that decided it (the arms' windows, the A/B test).
A write that fails leaves the canary stopped here, and the log says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.errors import PromotionRefused
from modelyard.experiments.policy import rollback_reason

if TYPE_CHECKING:
    from modelyard.serving.arms import ArmMetrics, Route
    from modelyard.serving.manager import ModelManager

__all__ = ["SERVER_ACTOR", "Decider"]

logger = logging.getLogger(__name__)

#: Who the audit trail names for decisions a server takes.
SERVER_ACTOR = "modelyard-serve"


class Decider:
    """Takes and records the decisions of a router's canaries.

    Args:
        manager: the server's model manager (its registry; reloaded after a promotion).
        metrics: the per-arm metrics (decisions are counted there).
        background: runs a coroutine off the request path.
        refresh: re-reads the routing policies now.
        actor: who the audit trail names for the decisions taken here.
    """

    def __init__(
        self,
        manager: ModelManager,
        metrics: ArmMetrics,
        background: Callable[[Coroutine[Any, Any, Any]], None],
        refresh: Callable[[], Awaitable[Any]],
        *,
        actor: str = SERVER_ACTOR,
    ) -> None:
        self.manager = manager
        self.actor = actor
        self.metrics = metrics
        self.background = background
        self.refresh = refresh

    def check_canary(self, route: Route) -> None:
        """Stop the canary here, and roll it back in the registry, if its rule fired."""
        canary = route.record.policy.canary
        if canary is not None and route.canary_stopped is None:
            summary = route.arm_stats("canary").summary()
            reason = rollback_reason(
                canary.rollback,
                requests=summary["window_requests"],
                errors=summary["window_errors"],
                p95_ms=summary["p95_ms"],
                metric=summary["mean_reward"],
            )
            if reason is not None:
                self._stop(route, "rollback", reason, {})

    def judge(self, route: Route) -> None:
        """After new evidence: the rollback rule, then the A/B test's decision (audited;
        acted on when the test says ``act``)."""
        policy = route.record.policy
        if policy.canary is not None:
            self.check_canary(route)
        live = route.live
        result = live.ab_result() if live is not None else None
        if live is None or result is None or result.decision == live.decision:
            return
        live.decision = result.decision
        self.metrics.decisions.labels(route.name, f"ab_{result.decision}").inc()
        statistics = result.as_dict()
        ab = policy.canary.ab if policy.canary is not None else None
        acts = ab is not None and ab.act and route.canary_stopped is None
        if acts and result.decision in ("winner", "loser"):
            assert ab is not None
            why = (
                f"A/B test (sequential, mSPRT, alpha {ab.alpha:g}, metric {ab.metric}) found "
                f"the canary {'better' if result.decision == 'winner' else 'worse'}: "
                f"difference {result.difference:+.4g}, p {result.p_value:.2g} after "
                f"{result.n_control} + {result.n_candidate} observations"
            )
            action = "promote" if result.decision == "winner" else "rollback"
            self._stop(route, action, why, {"ab_test": statistics})
        else:
            self.background(self._audit_decision(route, statistics))

    def _stop(self, route: Route, action: str, reason: str, extra: dict[str, Any]) -> None:
        """No canary traffic here from now on; write the ``action`` to the registry."""
        route.canary_stopped = f"{'promoted' if action == 'promote' else 'rolled back'}: {reason}"
        self.metrics.decisions.labels(route.name, action).inc()
        statistics = {
            "canary": route.arm_stats("canary").summary(),
            "primary": route.arm_stats("primary").summary(),
            "decided_at": datetime.now(UTC).isoformat(),
            **extra,
        }
        if action == "promote":
            self.background(self._promote(route, reason, statistics))
        else:
            self.background(self._roll_back(route, reason, statistics))

    async def _roll_back(self, route: Route, reason: str, statistics: dict[str, Any]) -> None:
        from modelyard.registry.routing import rollback_canary

        logger.warning("%s: rolling the canary back: %s", route.name, reason)
        await self._write(
            route,
            "the canary rollback",
            rollback_canary,
            reason=f"automatic rollback: {reason}",
            statistics=statistics,
        )

    async def _promote(self, route: Route, reason: str, statistics: dict[str, Any]) -> None:
        from modelyard.registry.routing import promote_canary

        canary = route.record.resolved.get("canary")
        logger.warning("%s: promoting the canary %s: %s", route.name, canary, reason)
        try:
            promoted = await self._write(
                route,
                "the canary promotion",
                promote_canary,
                reason=f"automatic promotion: {reason}",
                statistics=statistics,
                refused=PromotionRefused,
            )
        except PromotionRefused as exc:  # the gates still rule: audited, not promoted
            logger.warning("%s: the canary won but was not promoted: %s", route.name, exc)
            route.canary_stopped = f"won, but not promoted: {exc}"
            await self._event(
                route,
                f"the canary won but was not promoted: {exc}",
                {"canary": canary, "statistics": statistics},
            )
            return
        if promoted:  # serve the promoted version here now; other processes at their poll
            await self.manager.reload()
            await self.refresh()

    async def _audit_decision(self, route: Route, statistics: dict[str, Any]) -> None:
        reason = f"A/B test (sequential, mSPRT): {statistics['decision']}"
        details = {"ab_test": statistics, "canary": route.record.resolved.get("canary")}
        await self._event(route, reason, details)

    async def _event(self, route: Route, reason: str, details: dict[str, Any]) -> None:
        from modelyard.registry.routing import record_event

        await self._write(
            route, "the decision", record_event, "decision", reason=reason, details=details
        )

    async def _write(
        self,
        route: Route,
        what: str,
        write: Callable[..., Any],
        *args: Any,
        refused: type[Exception] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Run the registry ``write`` for ``route`` off the event loop (as this server,
        at the route's revision); whether it was written. A failure is logged (the
        decision stays in force in this process, and on /v1/experiments); a ``refused``
        error is raised for the caller to handle."""
        try:
            await asyncio.to_thread(
                write,
                self.manager.registry,
                route.name,
                *args,
                revision=route.record.revision,
                actor=self.actor,
                **kwargs,
            )
        except Exception as exc:
            if refused is not None and isinstance(exc, refused):
                raise
            logger.exception("%s: could not record %s", route.name, what)
            return False
        return True
