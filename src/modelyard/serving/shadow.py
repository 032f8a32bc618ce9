"""The shadow arm: copies of requests scored after their responses are sent.

A :class:`ShadowRunner` offers a request's copy to the shadow version once the request
has been answered: the copy is queued in the request's scope (:data:`AFTER_RESPONSE_KEY`)
and the app's middleware starts it after the response is out
(:func:`run_after_response`). Copies wait up to the policy's ``batch_ms`` and are then
scored together: the shadow's micro-batcher merges them into a few runtime calls, so a
shadow takes a fraction of the CPU time its copies would take one by one, in short bursts
rather than right after every answer (when the next request arrives). It runs on threads
of its own (never inline on the event loop), at most ``max_in_flight`` copies waiting or
scored at once per route (more are skipped and counted). A copy that fails or is late
only counts; one on time is paired with the answer for the differential test
(:class:`~modelyard.serving.arms.ShadowStats`).

A late copy is not cancelled (its runtime call cannot be stopped mid-way): it holds its
in-flight place until it ends, so a stalled candidate fills its places and further copies
are skipped, while answers go on unaffected.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from modelyard.contract import InputContract
    from modelyard.engine import Decoder, PredictionEngine
    from modelyard.experiments.policy import ShadowPolicy
    from modelyard.serving.arms import ArmMetrics, ShadowStats
    from modelyard.serving.manager import LoadedModel
    from modelyard.types import Columns

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
        self._threads = threads
        self._idle_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._random = np.random.default_rng()
        self._contracts: dict[tuple[int, int], bool] = {}
        # copies waiting for their batch, per shadow version; each list is scored by one
        # drain, started when its first copy arrives
        self._waiting: dict[int, list[Coroutine[Any, Any, None]]] = {}

    def _same_contract(self, answered: InputContract, shadow: InputContract) -> bool:
        """Whether both versions decode requests alike (remembered per pair)."""
        key = (id(answered), id(shadow))
        same = self._contracts.get(key)
        if same is None:
            if len(self._contracts) > 64:  # versions come and go: forget old pairs
                self._contracts.clear()
            same = self._contracts[key] = answered is shadow or answered == shadow
        return same

    def executor_for(self, *, idle: bool) -> concurrent.futures.ThreadPoolExecutor:
        """The shadow threads: normal ones, or (``idle``) ones under SCHED_IDLE."""
        if not idle:
            return self.executor
        if self._idle_executor is None:
            self._idle_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._threads,
                thread_name_prefix="modelyard-shadow-idle",
                initializer=_idle_priority,
            )
        return self._idle_executor

    def shutdown(self) -> None:
        """Stop the shadow threads (after the router awaited its tasks); a call still
        running in a stalled candidate is not waited for here."""
        for executor in (self.executor, self._idle_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def offer(
        self,
        name: str,
        policy: ShadowPolicy | None,
        stats: ShadowStats,
        shadow: LoadedModel,
        scope: MutableMapping[str, Any],
        decode: Decoder,
        decoded: tuple[InputContract, Columns, int] | None,
        answered: np.ndarray,
        call: dict[str, Any],
    ) -> None:
        """Queue a copy of one answered request (``answered``: its predictions).

        ``decoded``: the contract the answer was decoded with, the columns and rows; when
        the shadow's contract is the same, the copy reuses them instead of decoding again.
        """
        if policy is None or (policy.sample < 1.0 and self._random.random() >= policy.sample):
            return
        if stats.in_flight >= policy.max_in_flight:
            stats.skipped += 1
            self.metrics.shadow.labels(name, str(shadow.number), "skipped").inc()
            return
        stats.in_flight += 1  # taken now, so a burst cannot start more than allowed
        stats.copied += 1
        offload = True  # decoding on a thread: the copy takes nothing from the event loop
        if decoded is not None and self._same_contract(decoded[0], shadow.input_spec):
            _, columns, rows = decoded

            def reuse(spec: InputContract) -> tuple[Columns, int]:
                return columns, rows

            decode, offload = reuse, False
        call = {**call, "endpoint": "shadow", "offload": offload}

        def start() -> None:
            copy = self._run(name, policy, stats, shadow, decode, answered, call)
            if policy.batch_ms <= 0:
                self.background(copy)
                return
            waiting = self._waiting.get(id(shadow))
            if waiting is None:  # the first of a batch: its drain scores what came meanwhile
                waiting = self._waiting[id(shadow)] = []
                self.background(self._drain(id(shadow), policy.batch_ms / 1000))
            waiting.append(copy)

        scope.setdefault(AFTER_RESPONSE_KEY, []).append(start)

    async def _drain(self, key: int, wait: float) -> None:
        """After ``wait`` seconds, score the copies waiting for shadow ``key`` together
        (the shadow's micro-batcher merges them); copies arriving meanwhile start the
        next batch."""
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:  # shutting down: the waiting copies are dropped
            for copy in self._waiting.pop(key, []):
                copy.close()
            raise
        await asyncio.gather(*self._waiting.pop(key, []))

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
            answer = await self.engine.predict(shadow, decode, **call)
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


def _idle_priority() -> None:
    """Run the calling shadow thread under Linux's SCHED_IDLE policy: it gets a core only
    when nothing else wants it, so a shadow's runtime calls never take CPU time from the
    primary's. Elsewhere (or when refused), the thread keeps the normal policy."""
    set_scheduler = getattr(os, "sched_setscheduler", None)
    idle = getattr(os, "SCHED_IDLE", None)
    if set_scheduler is None or idle is None:
        return
    try:
        set_scheduler(0, idle, os.sched_param(0))  # 0: this thread (a task on Linux)
    except OSError:
        logger.debug("SCHED_IDLE refused for the shadow threads; normal priority")
