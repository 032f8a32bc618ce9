"""The shadow arm: copies of requests scored after their responses are sent.

A :class:`ShadowRunner` offers a request's copy to the shadow version once the request
has been answered: the copy is queued in the request's scope (:data:`AFTER_RESPONSE_KEY`)
and the app's middleware starts it after the response is out
(:func:`run_after_response`). It runs on threads of its own (never inline on the event
loop), at most ``max_in_flight`` at once per route (more are skipped and counted). A copy
that fails or is late only counts; one on time is paired with the answer for the
differential test (:class:`~modelyard.serving.arms.ShadowStats`).

A late copy is not cancelled (its runtime call cannot be stopped mid-way): it holds its
in-flight place until it ends, so a stalled candidate fills its places and further copies
are skipped, while answers go on unaffected.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from modelyard.engine import Decoder, PredictionEngine
    from modelyard.experiments.policy import ShadowPolicy
    from modelyard.serving.arms import ArmMetrics, ShadowStats
    from modelyard.serving.manager import LoadedModel

__all__ = ["AFTER_RESPONSE_KEY", "ShadowRunner", "run_after_response"]

logger = logging.getLogger(__name__)

#: Scope key: work to start once the request's response is sent (shadow copies).
AFTER_RESPONSE_KEY = "modelyard.after_response"


class ShadowRunner:
    """Runs shadow copies for every route of a router.

    Args:
        engine: the prediction engine (the shadow's predictions are logged, endpoint
            ``shadow``, under the request's id).
        metrics: the per-arm metrics.
        background: starts a task the router tracks (and awaits on shutdown).
        threads: threads for shadow runtime calls, apart from the primary's.
    """

    def __init__(
        self,
        engine: PredictionEngine,
        metrics: ArmMetrics,
        background: Callable[[Coroutine[Any, Any, None]], None],
        *,
        threads: int,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.background = background
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="modelyard-shadow"
        )
        self._random = np.random.default_rng()

    def shutdown(self) -> None:
        """Stop the shadow threads (after the router awaited its tasks); a call still
        running in a stalled candidate is not waited for here."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def offer(
        self,
        name: str,
        policy: ShadowPolicy | None,
        stats: ShadowStats,
        shadow: LoadedModel,
        scope: MutableMapping[str, Any],
        decode: Decoder,
        answered: np.ndarray,
        call: dict[str, Any],
    ) -> None:
        """Queue a copy of one answered request (``answered``: its predictions)."""
        if policy is None or (policy.sample < 1.0 and self._random.random() >= policy.sample):
            return
        if stats.in_flight >= policy.max_in_flight:
            stats.skipped += 1
            self.metrics.shadow.labels(name, str(shadow.number), "skipped").inc()
            return
        stats.in_flight += 1  # taken now, so a burst cannot start more than allowed
        stats.copied += 1

        def start() -> None:
            self.background(
                self._run(
                    name, policy, stats, shadow, decode, answered, {**call, "endpoint": "shadow"}
                )
            )

        scope.setdefault(AFTER_RESPONSE_KEY, []).append(start)

    async def _run(
        self,
        name: str,
        policy: ShadowPolicy,
        stats: ShadowStats,
        shadow: LoadedModel,
        decode: Decoder,
        answered: np.ndarray,
        call: dict[str, Any],
    ) -> None:
        started = time.perf_counter()
        outcome = "compared"
        shadow.acquire()
        try:
            # Decoding runs on a thread too: the shadow takes nothing from the event loop
            # but scheduling.
            answer = await self.engine.predict(shadow, decode, **{**call, "offload": True})
        except Exception as exc:  # a failing shadow only counts
            outcome = "failed"
            stats.failed += 1
            logger.debug("shadow %s failed on %s: %s", shadow.version.ref, call["request_id"], exc)
        else:
            if (time.perf_counter() - started) * 1000 > policy.timeout_ms:
                outcome = "late"
                stats.late += 1
            else:
                stats.pair(np.asarray(answered), np.asarray(answer.output.values))
        finally:
            shadow.release()
            stats.in_flight -= 1
        self.metrics.shadow.labels(name, str(shadow.number), outcome).inc()


def run_after_response(scope: MutableMapping[str, Any]) -> None:
    """Start the work a request left for after its response (the app's middleware
    calls this once the response is sent)."""
    jobs: list[Callable[[], None]] | None = scope.get(AFTER_RESPONSE_KEY)
    if jobs:
        for job in jobs:
            try:
                job()
            except Exception:  # after the response: never the client's problem
                logger.exception("after-response work failed")
