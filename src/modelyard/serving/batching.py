"""Micro-batching: concurrent requests share runtime calls.

A model predicts a batch of rows for little more than the cost of one row, so requests
that arrive while the runtime is busy are queued and predicted together:

- when the runtime is idle, a request is predicted at once (a lone request never waits);
- while a call is in flight, arriving requests queue; the next call takes them all, in
  arrival order, up to ``max_batch_rows`` rows (a larger request runs alone);
- after a call, the next one starts when ``max_batch_rows`` rows are queued, or the
  oldest queued request has waited ``max_wait_ms``, whichever comes first.

Runtime calls run in an executor thread, one at a time, so the event loop keeps
decoding requests meanwhile. Each request gets back exactly its own rows. A merged call
that fails is made again for each of its requests alone, so a request the runtime
cannot take fails by itself and never the others merged with it.

One exception: a small request that is the only one the server is handling (see
:class:`Activity`) runs on the event loop's thread when the runtime says its calls are
brief (ONNX Runtime: about 0.1 ms for a row). Nothing else is waiting then, and the
hand-off to a thread and back costs more than the call itself.

Example:
    >>> batcher = MicroBatcher(runtime, max_batch_rows=256, max_wait_ms=2.0)  # doctest: +SKIP
    >>> output = await batcher.predict(columns, rows)  # doctest: +SKIP
    >>> await batcher.aclose()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from modelyard.errors import ModelyardError, ServerFault, ServiceUnavailable
from modelyard.types import Columns, Runtime, RuntimeOutput, concat_columns

__all__ = ["Activity", "BatchStats", "MicroBatcher"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStats:
    """Runtime calls made so far: how many, for how many requests and rows."""

    batches: int = 0
    requests: int = 0
    rows: int = 0
    largest_rows: int = 0


class Activity:
    """How many requests the server is handling right now (kept by the app's middleware)."""

    __slots__ = ("requests",)

    def __init__(self) -> None:
        self.requests = 0


#: The most rows a lone request may have to run on the event loop's thread.
INLINE_MAX_ROWS = 8


@dataclass
class _Pending:
    columns: Columns
    rows: int
    future: asyncio.Future[RuntimeOutput]
    arrived: float


class MicroBatcher:
    """Predicts concurrent requests together; use it from one event loop.

    Args:
        runtime: What predicts; called from an executor thread.
        max_batch_rows: The most rows one call takes (a larger request runs alone).
        max_wait_ms: The longest a queued request waits once the runtime is free.
        enabled: ``False`` calls the runtime once per request, at once, with no queue.
        executor: Where runtime calls run; the event loop's default executor if ``None``.
        on_batch: Called with ``(rows, requests)`` of each runtime call, e.g. for metrics.
        activity: The server's count of requests in progress; with it, a lone small
            request runs at once on the calling thread if the runtime's ``inline`` is true.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        max_batch_rows: int = 256,
        max_wait_ms: float = 2.0,
        enabled: bool = True,
        executor: concurrent.futures.Executor | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        activity: Activity | None = None,
    ) -> None:
        if max_batch_rows < 1:
            raise ModelyardError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_wait_ms < 0:
            raise ModelyardError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.runtime = runtime
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = max_wait_ms
        self.enabled = enabled
        self.executor = executor
        self.on_batch = on_batch
        self.activity = activity
        self._inline = activity is not None and bool(getattr(runtime, "inline", False))
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: list[_Pending] = []
        self._direct: set[asyncio.Future[RuntimeOutput]] = set()
        self._closing = False
        self._stats = BatchStats()

    @property
    def closing(self) -> bool:
        """Whether :meth:`aclose` was called: new requests are refused from then on."""
        return self._closing

    @property
    def stats(self) -> BatchStats:
        """Runtime calls made so far."""
        return self._stats

    async def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        """Predict one request's ``rows`` rows; returns exactly those rows' output.

        Raises:
            ServiceUnavailable: the batcher is closed (its version is being unloaded).
            ServerFault: the runtime returned another number of predictions than rows.
            Exception: whatever the runtime raised for the call this request was part of.
        """
        if self._closing:
            raise ServiceUnavailable(
                f"the {self.runtime.name} batcher is closed (the model is being unloaded); "
                "retry the request"
            )
        if self._alone(rows):
            # Requests that arrived together are tasks the event loop has not started yet,
            # so they are not counted in ``activity``. Yield once to let them start: an
            # inline call never yields, so without this a burst would be answered one
            # request at a time on the loop's thread and never batched.
            await asyncio.sleep(0)
            if self._alone(rows):
                self._record(rows, 1)
                output = self.runtime.predict(columns, rows)
                _check_length(output, rows, self.runtime.name)
                return output
        if not self.enabled:
            return await self._call_alone(columns, rows)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RuntimeOutput] = loop.create_future()
        self._queue.append(_Pending(columns, rows, future, loop.time()))
        self._queued_rows += rows
        if self._worker is None:
            self._worker = loop.create_task(self._work(), name="modelyard-micro-batcher")
        self._wakeup.set()
        return await future

    def _alone(self, rows: int) -> bool:
        """Whether this small request is the only one the server handles (run it inline)."""
        return (
            self._inline
            and rows <= INLINE_MAX_ROWS
            and self.activity is not None
            and self.activity.requests <= 1
            and not self._queue
            and not self._in_flight
            and not self._direct
        )

    async def aclose(self) -> None:
        """Refuse new requests, finish the queued and running ones, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await asyncio.shield(self._worker)
        if self._direct:
            await asyncio.gather(*self._direct, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self.max_wait_ms / 1000.0
        after_call = False
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    after_call = False  # the runtime was idle: this request goes at once
                    continue
                full = self._queued_rows >= self.max_batch_rows
                if after_call and not full and not self._closing:
                    delay = self._queue[0].arrived + wait - loop.time()
                    if delay > 0:
                        self._wakeup.clear()
                        timer = loop.call_later(delay, self._wakeup.set)
                        await self._wakeup.wait()
                        timer.cancel()
                        continue
                batch = self._take()
                if batch:
                    await self._run(batch)
                after_call = True
        finally:  # stopped by a bug or by the loop shutting down: nobody waits forever
            for pending in [*self._in_flight, *self._queue]:
                pending.future.cancel()
            self._queue.clear()
            self._queued_rows = 0

    def _take(self) -> list[_Pending]:
        """The next batch: queued requests in arrival order, up to max_batch_rows rows."""
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            pending = self._queue[0]
            if not pending.future.done() and batch and rows + pending.rows > self.max_batch_rows:
                break
            self._queue.popleft()
            self._queued_rows -= pending.rows
            if not pending.future.done():  # done here means its caller gave up
                batch.append(pending)
                rows += pending.rows
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        rows = sum(pending.rows for pending in batch)
        self._in_flight = batch
        try:
            columns = concat_columns([pending.columns for pending in batch])
            self._record(rows, len(batch))
            output = await loop.run_in_executor(self.executor, self.runtime.predict, columns, rows)
            _check_length(output, rows, self.runtime.name)
        except Exception as error:  # it belongs to the requests, not to the worker
            if len(batch) > 1:
                # One request's rows may be what the runtime cannot take: call it again
                # for each request on its own, so only the offending one fails.
                logger.warning(
                    "a merged call of %d requests failed (%s); retrying each on its own",
                    len(batch),
                    error,
                )
                await self._run_each(batch)
            else:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
            return
        finally:
            self._in_flight = []
        offset = 0
        for pending in batch:
            part = slice(offset, offset + pending.rows)
            offset += pending.rows
            if not pending.future.done():
                proba = output.proba[part] if output.proba is not None else None
                result = RuntimeOutput(
                    values=output.values[part], proba=proba, classes=output.classes
                )
                pending.future.set_result(result)

    async def _run_each(self, batch: list[_Pending]) -> None:
        """Predict each request of a failed merged call alone; each gets its own outcome."""
        loop = asyncio.get_running_loop()
        self._in_flight = batch
        for pending in batch:
            if pending.future.done():
                continue
            try:
                self._record(pending.rows, 1)
                output = await loop.run_in_executor(
                    self.executor, self.runtime.predict, pending.columns, pending.rows
                )
                _check_length(output, pending.rows, self.runtime.name)
            except Exception as error:
                if not pending.future.done():
                    pending.future.set_exception(error)
            else:
                if not pending.future.done():
                    pending.future.set_result(output)

    async def _call_alone(self, columns: Columns, rows: int) -> RuntimeOutput:
        loop = asyncio.get_running_loop()
        self._record(rows, 1)
        call = loop.run_in_executor(self.executor, self.runtime.predict, columns, rows)
        self._direct.add(call)
        call.add_done_callback(self._direct.discard)
        output = await call
        _check_length(output, rows, self.runtime.name)
        return output

    def _record(self, rows: int, requests: int) -> None:
        stats = self._stats
        self._stats = BatchStats(
            batches=stats.batches + 1,
            requests=stats.requests + requests,
            rows=stats.rows + rows,
            largest_rows=max(stats.largest_rows, rows),
        )
        if self.on_batch is not None:
            try:
                self.on_batch(rows, requests)
            except Exception:  # a metrics hook must not fail predictions
                logger.exception("the on_batch callback failed")


def _check_length(output: RuntimeOutput, rows: int, runtime: str) -> None:
    """A runtime that answers another number of rows is broken: the server's fault."""
    if len(output.values) != rows:
        raise ServerFault(
            f"the {runtime} runtime returned {len(output.values)} predictions for {rows} rows; "
            "its predict() must return one per row"
        )
