"""The stream consumer: messages in, predictions out, through the serving engine.

A :class:`StreamConsumer` is one member of a consumer group on the in stream. It loads
its model version exactly as the server does (:class:`~modelyard.serving.manager.ModelManager`:
checksums verified, the runtime selected, warmed up off the hot path) and predicts
through the same :class:`~modelyard.engine.PredictionEngine` (input contract, runtime,
prediction log with endpoint ``stream`` and the message id as request id).

The loop:

1. read up to ``max_batch_rows`` messages (its own unacknowledged ones first after a
   restart; every ``claim_every_seconds``, those a dead member left pending for
   ``claim_idle_ms``), waiting at most ``max_wait_ms``;
2. take the version currently served, once for the whole batch, and predict the
   messages on it: together, one contract call and one model call per
   ``max_batch_rows`` rows (:mod:`~modelyard.streaming.batched`), or, under a routing
   policy, each on its own (the engine's micro-batcher merges them into few model calls);
3. write every output (and every dead letter), then acknowledge the inputs;
4. on Redis Streams, meanwhile, the next batch is read and predicted (the runtime's
   call runs on a worker thread, and the event loop decodes the next batch during it),
   but written only after the batch before it, so outputs keep the order of the inputs;
   a third is read only once the first is written. A slow runtime or out stream slows
   the reads: the consumer holds at most two batches, so its memory stays bounded.
   Under a routing policy (its shadow copies start after their batch is written), and
   on Kafka (a committed offset acknowledges every record before it) and NATS, one
   batch at a time.

A version trained with windowed aggregates (``features.windows``) gets their columns
computed from the stream, in the order the messages are read
(:mod:`~modelyard.streaming.features`).

A model event on the control stream (or the registry poll, every ``poll_seconds``)
makes the manager load, verify and warm the new version in the background; it takes
over at the next batch, so each output names the one version that predicted it. A
version that fails to load (a tampered artifact) is refused, and the old one keeps going.

A routing policy in the registry (``modelyard experiments set``) puts more versions behind
the model's name, as on the server: a canary answers a share of the messages, a shadow
scores copies after the outputs are written (:mod:`~modelyard.streaming.routing`).

:meth:`StreamConsumer.stop` (SIGTERM and SIGINT in :func:`run_stream`) lets the batch
in hand finish and be acknowledged, then the prediction log is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.contract import RequestValidationError
from modelyard.engine import PredictionEngine
from modelyard.errors import ModelyardError
from modelyard.serving.config import served_ref
from modelyard.serving.manager import LoadedModel, ModelManager
from modelyard.settings import Settings
from modelyard.streaming.config import StreamConfig
from modelyard.streaming.features import StreamWindows
from modelyard.streaming.messages import (
    BadMessage,
    InMessage,
    Request,
    dead_letter,
    output_document,
    parse_message,
)
from modelyard.streaming.metrics import StreamMetrics
from modelyard.streaming.routing import StreamRouting
from modelyard.streaming.transport import (
    Commit,
    Transport,
    open_transport,
)

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry

__all__ = ["StreamConfig", "StreamConsumer", "StreamStats", "run_stream"]

logger = logging.getLogger(__name__)

_OFFLOAD_BYTES = 256 * 1024  # larger messages are decoded on a worker thread
_REPORT_SECONDS = 2.0  # lag and rows per second are refreshed this often
_END_SECONDS = 10.0  # how long a background loop gets to end after the stop
_STUCK_SECONDS = 20.0  # a stop still running after this long logs where it waits


@dataclass
class StreamStats:
    """What a consumer did: batches, messages, predictions, dead letters, rows."""

    batches: int = 0
    messages: int = 0
    predicted: int = 0
    dead: int = 0
    skipped: int = 0
    redelivered: int = 0
    rows: int = 0


class StreamConsumer:
    """One member of a consumer group, predicting with the served version.

    Args:
        config: what to predict with, and where.
        registry: an open registry to use (default: opened from ``config.settings``).
        transport: a transport to use (default: from ``config.broker``'s scheme).
    """

    def __init__(
        self,
        config: StreamConfig,
        *,
        registry: Registry | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.config = config
        self.ref = served_ref(config.model)
        self.metrics = StreamMetrics()
        self.manager = ModelManager(config.serve_config(), metrics=self.metrics, registry=registry)
        self.engine = PredictionEngine(on_out_of_range=self.metrics.count_out_of_range)
        self.transport = transport or open_transport(config.broker, config.streams())
        self.stats = StreamStats()
        self.windows = StreamWindows()
        # the registry's routing policies (shadow, canary...): modelyard.streaming.routing
        self.routing = StreamRouting(
            self.manager, self.engine, self.metrics, poll_seconds=config.poll_seconds
        )
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._messages = self.metrics.stream_messages
        self._stream = config.in_stream

    # -- control ----------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the batches in hand, acknowledge them, and return from :meth:`run`.

        Safe to call from any thread and from signal handlers.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._stop.set)

    @property
    def version(self) -> int | None:
        """The version predicting now (None before the first load)."""
        slot = self.manager.get(self.ref.name)
        return slot.current.number if slot is not None and slot.current is not None else None

    async def wait_ready(self) -> None:
        """Wait until the first version is loaded and the loop reads messages."""
        await self._ready.wait()

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> StreamStats:
        """Consume until :meth:`stop`; returns what was done.

        Raises:
            ModelyardError: the model cannot be loaded, or the broker not reached.
        """
        self._loop = asyncio.get_running_loop()
        predlog = None
        metrics_server = None
        tasks: list[asyncio.Task[None]] = []
        try:
            if self.config.prediction_log:
                predlog = await asyncio.to_thread(_open_prediction_log, self.config.settings)
                self.engine.predlog = predlog
                if predlog is not None:
                    log = predlog
                    self.metrics.watch_dropped_rows(lambda: float(log.dropped_rows))
            await self.manager.start()
            await self.manager.wait_loaded()
            slot = self.manager.get(self.ref.name)
            if slot is None or slot.current is None:
                why = slot.error if slot is not None and slot.error else "it did not load"
                raise ModelyardError(f"cannot stream with {self.ref}: {why}")
            await self.routing.start()
            await self.transport.open()
            if self.config.metrics_port is not None:
                metrics_server = self.metrics.serve(self.config.metrics_port)
            tasks = [
                asyncio.create_task(self._follow_events(), name="modelyard-stream-events"),
                asyncio.create_task(self._report(), name="modelyard-stream-report"),
            ]
            logger.info(
                "%s: consuming %s as %s/%s with %s:%s, writing %s",
                self.ref,
                self._stream,
                self.config.group,
                self.config.consumer,
                slot.name,
                slot.current.number,
                self.config.out_stream,
            )
            self._ready.set()
            await self._consume()
        finally:
            self._stop.set()  # the background loops end at their next turn
            await _end(tasks)
            await self.routing.aclose()  # waits for shadow copies, closes the arms
            await self.manager.aclose()
            with contextlib.suppress(Exception):
                await self.transport.close()
            if predlog is not None:
                await asyncio.to_thread(predlog.close)  # flushes
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
        return self.stats

    async def _consume(self) -> None:
        config = self.config
        next_claim = time.monotonic() + config.claim_every_seconds
        failures = 0
        # the batch being predicted or written while the next one is read (at most one)
        in_hand: asyncio.Task[None] | None = None
        while not self._stop.is_set():
            batch: asyncio.Task[None] | None = None
            try:
                messages: list[InMessage] = []
                if time.monotonic() >= next_claim:
                    if in_hand is not None:  # its entries are pending: not to be claimed
                        await in_hand
                        in_hand = None
                    messages = await self.transport.claim_stale(
                        config.claim_idle_ms, config.max_batch_rows
                    )
                    if len(messages) < config.max_batch_rows:  # swept the whole backlog
                        next_claim = time.monotonic() + config.claim_every_seconds
                if not messages:
                    messages = await self.transport.read(config.max_batch_rows, config.max_wait_ms)
                if messages:
                    batch = asyncio.create_task(self._handle(messages, after=in_hand))
                    if not self._overlaps(messages):
                        await batch
                        batch = None
                if in_hand is not None:  # written before a third batch is read
                    await in_hand
                in_hand, batch = batch, None
                failures = 0
            except Exception as exc:  # the broker unreachable, say: keep trying
                # A batch that was not acknowledged stays pending on the broker; rewind
                # delivers it again (Redis: this consumer's pending entries; Kafka: from
                # the committed offsets), so nothing is skipped. The batch read after a
                # failed one is not written (it waits for the failed one, and fails too).
                for task in (in_hand, batch):
                    if task is not None:
                        await asyncio.gather(task, return_exceptions=True)
                in_hand = None
                failures += 1
                await self._back_off("reading or predicting", exc, failures)
                try:
                    await self.transport.rewind()
                except Exception as again:  # still unreachable: the next round retries
                    logger.debug("rewinding failed: %s", again)
        if in_hand is not None:  # stopping: the last batch in hand is finished and written
            try:
                await in_hand
            except Exception as exc:  # left unacknowledged: delivered again later
                logger.error("%s: the last batch failed (%s)", self.ref, exc, exc_info=exc)

    def _overlaps(self, messages: list[InMessage]) -> bool:
        """Whether the batch after ``messages`` may be read while they are written: on
        a transport whose commits acknowledge their own messages only, without a
        routing policy, and when none was delivered before (those are read again by
        position among this consumer's pending entries, or claimed: reading on while
        they are pending would deliver them once more)."""
        return (
            self.transport.overlapping
            and self.routing.plain(self.ref.name)
            and not any(message.redelivered for message in messages)
        )

    async def _back_off(self, what: str, exc: Exception, failures: int) -> None:
        """Log a failure, then wait (longer after each of ``failures``) or until stopped."""
        pause = min(5.0, 0.1 * 2**failures)
        logger.error(
            "%s: %s failed (%s: %s); retrying in %.1f s",
            self.ref,
            what,
            type(exc).__name__,
            exc,
            pause,
            exc_info=failures == 1,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), pause)

    async def _write(self, commits: list[Commit]) -> int:
        """Write and acknowledge ``commits``, retrying the same ones while the broker
        refuses (the out stream unwritable, the broker away): the messages are not
        delivered again meanwhile, so an outage does not count against their delivery
        limit. Stopping gives up; the messages stay unacknowledged on the broker. A retry
        marks its outputs ``redelivered``: part of the failed write may have landed (on
        Kafka, where the broker cannot drop the copy)."""
        failures = 0
        while True:
            try:
                return await self.transport.commit(commits)
            except Exception as exc:
                if self._stop.is_set():
                    raise
                failures += 1
                await self._back_off("writing a batch", exc, failures)
                commits = [_as_redelivered(commit) for commit in commits]

    async def _handle(
        self, messages: list[InMessage], *, after: asyncio.Task[None] | None = None
    ) -> None:
        """Handle a batch, written after the batch ``after``; the messages delivered
        before go one at a time, first: if one of them is a poison message that stops
        its consumer, the others are acknowledged and not counted against the delivery
        limit again."""
        again = [message for message in messages if message.redelivered]
        for message in again:
            await self.handle_batch([message], after=after)
            after = None
        if len(again) < len(messages):
            await self.handle_batch(
                [message for message in messages if not message.redelivered], after=after
            )

    async def handle_batch(
        self, messages: list[InMessage], *, after: asyncio.Task[None] | None = None
    ) -> int:
        """Predict ``messages`` on the version served now, write their outputs and dead
        letters, then acknowledge them; returns how many documents were written.

        With ``after`` (the batch read before, still in hand), the prediction may run
        while that batch is written, but the writing waits for it, and is not done
        when it failed (its exception is raised here too): on Kafka, this batch's
        offsets would count the failed one as consumed.
        """
        if after is not None and not self.routing.plain(self.ref.name):
            await after  # a routing policy: its state is the batch's until it is written
        slot = self.manager.get(self.ref.name)
        assert slot is not None and slot.current is not None  # run() loaded it first
        loaded = slot.current
        loaded.acquire()  # held for the whole batch: a swap takes effect after it
        started = time.perf_counter()
        try:
            commits = await self._predict(loaded, messages)
        finally:
            loaded.release()
        if after is not None:
            waited = time.perf_counter()
            await after
            started += time.perf_counter() - waited  # the batch's own time only
        written = await self._write(commits)
        self.routing.after_output()  # shadow copies start once the outputs are out
        self._count(loaded, messages, commits, written, time.perf_counter() - started)
        return written

    async def _predict(self, loaded: LoadedModel, messages: list[InMessage]) -> list[Commit]:
        consumer = self.config.consumer
        commits: list[Commit | None] = [None] * len(messages)
        requests: list[tuple[int, InMessage, Request]] = []
        limit = self.config.max_deliveries
        windows = self.windows.state(loaded.version.spec)
        for index, message in enumerate(messages):
            if message.deliveries > limit:
                commits[index] = self._dead(message, _poison(message, limit), loaded)
                continue
            try:
                request = parse_message(message.body)
                if windows is not None:  # in stream order: each row sees those before
                    request = self.windows.enrich(request, windows)
                requests.append((index, message, request))
            except BadMessage as error:
                commits[index] = self._dead(message, error, loaded)
        received_at = datetime.now(UTC)
        read_at_ms = time.time_ns() // 1_000_000
        started = time.perf_counter()
        answers = await self.routing.predict_all(
            loaded,
            [
                (request, len(message.body or b"") > _OFFLOAD_BYTES)
                for _, message, request in requests
            ],
            received_at=received_at,
            started=started,
        )
        predict_ms = (time.perf_counter() - started) * 1000
        # rows per version, counted once per batch: a metric update per message costs
        # more than the rest of its bookkeeping
        predicted: dict[tuple[str, int], int] = {}
        for (index, message, request), answer in zip(requests, answers, strict=True):
            if isinstance(answer, RequestValidationError):
                commits[index] = self._dead(
                    message, BadMessage.from_validation(answer, request), loaded
                )
            elif isinstance(answer, ModelyardError) and answer.http_status < 500:
                # the message's own mistake (a composite weight out of bounds, say)
                mistake = BadMessage(
                    str(answer), status=answer.http_status, kind="invalid", id=request.id
                )
                commits[index] = self._dead(message, mistake, loaded)
            elif isinstance(answer, BaseException):
                if not isinstance(answer, Exception):  # cancellation, interpreter exit
                    raise answer
                # a fault of the runtime, not of the message: logged with its traceback,
                # the message dead-lettered so it cannot block the stream
                logger.error(
                    "%s: message %s failed", loaded.version.ref, request.id, exc_info=answer
                )
                fault = BadMessage(
                    f"internal error while predicting: {type(answer).__name__}: {answer}",
                    status=500,
                    kind="internal",
                    id=request.id,
                )
                commits[index] = self._dead(message, fault, loaded)
            else:
                answered = answer.loaded
                key = (answered.name, answered.number)
                predicted[key] = predicted.get(key, 0) + answer.rows
                document = output_document(
                    request,
                    message,
                    model=answered.name,
                    version=answered.number,
                    route=answer.route,
                    output=answer.output,
                    consumer=consumer,
                    read_at_ms=read_at_ms,
                    predict_ms=predict_ms,
                )
                commits[index] = Commit(message, document)
        for (name, number), rows in predicted.items():
            self.metrics.count_rows(name, number, rows)
            self.stats.rows += rows
        return [commit for commit in commits if commit is not None]

    def _dead(self, message: InMessage, error: BadMessage, loaded: LoadedModel) -> Commit:
        self.metrics.dead_letters.labels(self._stream, error.detail[0]["type"]).inc()
        document = dead_letter(
            message,
            error,
            model=loaded.name,
            version=loaded.number,
            consumer=self.config.consumer,
        )
        return Commit(message, document, dead=True)

    def _count(
        self,
        loaded: LoadedModel,
        messages: list[InMessage],
        commits: list[Commit],
        written: int,
        seconds: float,
    ) -> None:
        dead = sum(commit.dead for commit in commits)
        redelivered = sum(message.redelivered for message in messages)
        stats = self.stats
        stats.batches += 1
        stats.messages += len(messages)
        stats.dead += dead
        stats.predicted += len(commits) - dead
        stats.skipped += len(commits) - written
        stats.redelivered += redelivered
        self._messages.labels(self._stream, "predicted").inc(len(commits) - dead)
        self._messages.labels(self._stream, "dead").inc(dead)
        if len(commits) > written:
            self._messages.labels(self._stream, "skipped").inc(len(commits) - written)
        if redelivered:
            self.metrics.redelivered.labels(self._stream).inc(redelivered)
        self.metrics.batch_messages.observe(len(messages))
        self.metrics.batch_seconds.observe(seconds)

    # -- background -------------------------------------------------------------------

    async def _follow_events(self) -> None:
        """Reload when the control stream announces a change of this model."""
        while not self._stop.is_set():
            try:
                events = await self.transport.next_events(1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: the registry poll still runs
                logger.warning("reading model events failed (%s); retrying in 1 s", exc)
                await asyncio.sleep(1.0)
                continue
            if any(event.get("model") == self.ref.name for event in events):
                for change in await self.manager.reload():
                    if change.status != "unchanged":
                        logger.info(
                            "%s after a model event: %s (%s -> %s)%s",
                            change.ref,
                            change.status,
                            change.from_version,
                            change.to_version,
                            f": {change.error}" if change.error else "",
                        )

    async def _report(self) -> None:
        """Refresh the lag and rate gauges every few seconds."""
        labels = (self._stream, self.config.group)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), _REPORT_SECONDS)
                return
            self.metrics.update_rate(self.ref.name)
            try:
                lag = await self.transport.lag()
            except Exception as exc:  # metrics must not stop the consumer
                logger.debug("could not read the group's lag: %s", exc)
                continue
            if lag.lag is not None:
                self.metrics.lag.labels(*labels).set(lag.lag)
            self.metrics.pending.labels(*labels).set(lag.pending)


async def _end(tasks: list[asyncio.Task[None]]) -> None:
    """End the consumer's background loops, which check the stop flag at every turn.

    Cancelling alone is not enough: a task blocked in a Redis read can swallow its
    cancellation and keep looping (redis-py, seen in 8.1.0: redis/redis-py#2028), and
    awaiting it then never returns. So each loop also stops on the flag, within one
    blocking read; cancelling only makes that sooner, and a task that still runs after
    :data:`_END_SECONDS` is left behind with a warning rather than waited for.
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, running = await asyncio.wait(tasks, timeout=_END_SECONDS)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())
    for task in running:
        logger.warning("%s did not stop within %.0f s", task.get_name(), _END_SECONDS)


def _as_redelivered(commit: Commit) -> Commit:
    """``commit`` with its document marked ``"redelivered": true``."""
    try:
        content = orjson.loads(commit.document)
    except orjson.JSONDecodeError:  # an ASCII-escaped document orjson refuses: as it is
        return commit
    content["redelivered"] = True
    return replace(commit, document=orjson.dumps(content))


def _poison(message: InMessage, limit: int) -> BadMessage:
    """The reason a message past the delivery limit is set aside."""
    message_id: str | None
    try:
        message_id = parse_message(message.body).id
    except BadMessage as error:
        message_id = error.id
    return BadMessage(
        f"the message was delivered {message.deliveries} times without being acknowledged "
        f"(limit {limit}): predicting it stopped its consumer or failed its batch each "
        "time, so it is set aside here instead of blocking the stream; look at the "
        "consumers' logs for the failure, then push it again (raise the limit with "
        "--max-deliveries)",
        status=500,
        kind="delivery_limit",
        loc=["message"],
        id=message_id,
    )


def _open_prediction_log(settings: Settings) -> Any:
    try:
        from modelyard.predlog.writer import PredictionLog
    except ImportError as exc:
        logger.warning("prediction log unavailable (%s); streaming without it", exc)
        return None
    return PredictionLog.open(settings)


def _report_stuck() -> None:
    """Log where every task of the loop waits: a stop that takes longer than
    :data:`_STUCK_SECONDS` is a fault to be found, not waited out in silence."""
    stacks = []
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=12, file=out)
        stacks.append(out.getvalue())
    logger.warning(
        "still stopping after %.0f s; the loop waits in:\n%s", _STUCK_SECONDS, "\n".join(stacks)
    )


def run_stream(config: StreamConfig) -> StreamStats:
    """Run a consumer until SIGTERM or SIGINT (blocks); each finishes the batches in hand.

    Raises:
        ModelyardError: the model cannot be loaded, or the broker not reached.
    """

    config = config.for_stream_process()  # this is the consuming process: it owns them

    async def main() -> StreamStats:
        consumer = StreamConsumer(config)
        loop = asyncio.get_running_loop()
        report: list[asyncio.TimerHandle] = []

        def stop() -> None:
            consumer.stop()
            if not report:  # a stop that does not finish says what it still waits for
                report.append(loop.call_later(_STUCK_SECONDS, _report_stuck))

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        try:
            return await consumer.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            for handle in report:
                handle.cancel()

    return asyncio.run(main())
