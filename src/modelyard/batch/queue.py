"""The task queue: Huey, on SQLite by default, on Redis to share work between machines.

Why Huey: it is a small, well-kept task queue whose default storage is a SQLite file
(nothing to run, like the registry's own default), and whose Redis storage runs the
same code unchanged when several machines share the work. Its consumer runs N thread or
process workers, retries failed tasks with a delay, and is started from Python, so
``modelyard worker`` needs no separate daemon. Celery and Dramatiq need a broker server
even on one machine; RQ has no embedded storage.

Huey loses a task whose worker is killed with SIGKILL: the task was taken off the queue
when it started. So the queue only carries job ids, and the job table holds the truth
(:mod:`modelyard.batch.jobs`): each worker, on start and every few seconds after,
queues again every unfinished job whose lease expired and every unsent notification
that the queue does not hold (:meth:`BatchQueue.requeue_stale`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from modelyard._optional import require
from modelyard.batch.config import BatchSettings
from modelyard.batch.jobs import Delivery, JobStore
from modelyard.errors import ModelyardError
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.batch.backends import Backend

__all__ = ["DELIVERY_TASK", "JOB_TASK", "BatchQueue", "run_worker"]

logger = logging.getLogger(__name__)

JOB_TASK = "modelyard.batch.run_job"
DELIVERY_TASK = "modelyard.batch.deliver"
_QUEUE_NAME = "modelyard-batch"


class BatchQueue:
    """The Huey instance of the batch jobs, with its two tasks registered.

    Submitters and workers build the same one from the same settings.

    Raises:
        MissingExtraError: Huey (or redis, for a ``redis://`` queue) is not installed.
        ModelyardError: ``MODELYARD_QUEUE_URL`` is not a ``redis://`` URL.
    """

    def __init__(
        self, settings: Settings, batch: BatchSettings, backend: Backend | None = None
    ) -> None:
        self.settings = settings
        self.batch = batch
        self.backend = backend
        self.huey = _make_huey(settings, batch)
        self._job_task = self.huey.task(name=JOB_TASK)(self._run_job)
        self._delivery_task = self.huey.task(
            name=DELIVERY_TASK,
            retries=batch.notify_retries,
            retry_delay=batch.notify_retry_seconds,
            context=True,
        )(self._deliver)

    # -- enqueueing --------------------------------------------------------------------

    def enqueue_job(self, job_id: str) -> None:
        """Queue a job's task."""
        self._job_task(job_id)

    def enqueue_deliveries(self, deliveries: list[Delivery]) -> None:
        """Queue one task per notification to send."""
        for delivery in deliveries:
            self._delivery_task(delivery.id)

    def queued(self) -> tuple[set[str], set[int]]:
        """Job ids and delivery ids the queue holds (waiting or scheduled for a retry)."""
        jobs: set[str] = set()
        deliveries: set[int] = set()
        for task in [*self.huey.pending(), *self.huey.scheduled()]:
            if task.name == JOB_TASK and task.args:
                jobs.add(task.args[0])
            elif task.name == DELIVERY_TASK and task.args:
                deliveries.add(task.args[0])
        return jobs, deliveries

    def requeue_stale(self, store: JobStore) -> tuple[list[str], list[int]]:
        """Queue again what a dead worker left: unfinished jobs nobody holds a live lease
        on, and pending notifications, unless the queue already holds them.

        Returns:
            The job ids and delivery ids queued again.
        """
        stale_jobs, stale_deliveries = store.stale()
        if not stale_jobs and not stale_deliveries:
            return [], []
        held_jobs, held_deliveries = self.queued()
        jobs = [job_id for job_id in stale_jobs if job_id not in held_jobs]
        deliveries = [d for d in stale_deliveries if d not in held_deliveries]
        for job_id in jobs:
            logger.warning("batch job %s: no live worker holds it; queued again", job_id)
            self._job_task(job_id)
        for delivery_id in deliveries:
            self._delivery_task(delivery_id)
        return jobs, deliveries

    # -- tasks -------------------------------------------------------------------------

    def _run_job(self, job_id: str) -> None:
        from modelyard.batch.worker import run_job

        run_job(
            self.settings,
            self.batch,
            job_id,
            on_deliveries=self.enqueue_deliveries,
            backend=self.backend,
        )

    def _deliver(self, delivery_id: int, task: Any = None) -> None:
        from modelyard.batch.notify import DeliveryFailed, send

        with JobStore.open(self.settings) as store:
            found = store.delivery(delivery_id)
            if found is None:  # sent, or given up, already
                return
            delivery, job = found
            final = task is None or task.retries <= 0
            try:
                send(self.batch, delivery, job)
            except DeliveryFailed as exc:
                store.record_attempt(delivery_id, error=str(exc), final=final)
                logger.warning("delivery %d of job %s failed: %s", delivery_id, job.id, exc)
                raise  # the queue retries it, after retry_delay
            store.record_attempt(delivery_id, error=None, final=True)


def _make_huey(settings: Settings, batch: BatchSettings) -> Any:
    huey = require("huey", "batch")
    url = batch.queue_url
    if url is None:
        home = settings.home.expanduser().absolute()
        home.mkdir(parents=True, exist_ok=True)
        return huey.SqliteHuey(
            _QUEUE_NAME, filename=str(home / "queue.db"), results=False, utc=True, timeout=30
        )
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ModelyardError(
            f"MODELYARD_QUEUE_URL {url!r} is not a Redis URL; give redis://host:6379/0 "
            "(or leave it unset for the SQLite queue in the home folder)"
        )
    require("redis", "batch")
    return huey.RedisHuey(_QUEUE_NAME, url=url, results=False, utc=True)


def run_worker(
    settings: Settings,
    batch: BatchSettings,
    *,
    concurrency: int = 1,
    worker_type: str = "thread",
) -> None:
    """Run a worker until SIGINT (finish running tasks) or SIGTERM (stop now).

    Must be called from the main thread (the consumer installs signal handlers). With
    ``MODELYARD_BATCH_BACKEND=dask`` the jobs' chunks are scored on a Dask cluster
    (see :mod:`modelyard.batch.backends`), with thread workers only.
    """
    from modelyard.batch.backends import open_backend

    if batch.batch_backend != "local" and worker_type != "thread":
        raise ModelyardError(
            f"--backend {batch.batch_backend} runs with thread workers; drop "
            "--worker-type process (the cluster's workers are the processes)"
        )
    with open_backend(batch) as backend:
        _consume(BatchQueue(settings, batch, backend), concurrency, worker_type)


def _consume(queue: BatchQueue, concurrency: int, worker_type: str) -> None:
    settings, batch = queue.settings, queue.batch
    stop = threading.Event()

    def reap() -> None:
        with JobStore.open(settings) as store:
            while True:
                try:
                    queue.requeue_stale(store)
                except Exception:  # keep reaping whatever one pass met
                    logger.exception("could not queue stale batch jobs again")
                if stop.wait(min(max(batch.batch_lease_seconds / 2, 1.0), 30.0)):
                    return

    consumer = queue.huey.create_consumer(
        workers=concurrency,
        worker_type=worker_type,
        periodic=False,
        initial_delay=0.05,
        backoff=1.15,
        max_delay=1.0,
    )
    # Consumer.run() without its SIGHUP restart, so that the reaper thread starts only
    # after process workers have been forked (a fork while another thread holds a lock,
    # a database connection's say, can leave the child stuck on that lock forever).
    consumer.start()
    reaper = threading.Thread(target=reap, name="modelyard-batch-reaper", daemon=True)
    reaper.start()
    stopped = require("huey.consumer", "batch").ConsumerStopped
    checked = time.monotonic()
    try:
        while True:
            try:
                checked = consumer.loop(checked)
            except stopped:
                break
        queue.huey.notify_interrupted_tasks()
    finally:
        stop.set()
        reaper.join(timeout=10)
