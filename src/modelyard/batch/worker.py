"""Running one batch job: claim it, read its input a chunk at a time, score, commit.

:func:`run_job` is what a queue task calls with a job id. Each chunk is read, checked
row by row against the version's input contract, scored by the runtime online serving
would use (see :mod:`modelyard.batch.scoring`), then committed with the job's progress
in one transaction (:meth:`~modelyard.batch.jobs.JobStore.commit_chunk`). The committed
rows then go to the prediction log (endpoint ``batch``, the job id as request id, the
input row number as row), as online predictions do.

A file the model cannot use at all (unreadable, empty, required columns missing) and a
version whose artifacts fail their checksum fail the job at once, with a reason that
says what to fix. Rows that break the contract are stored with their reasons and
counted; they never fail the job.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.batch.backends import Backend, LocalBackend
from modelyard.batch.config import BatchSettings
from modelyard.batch.inputs import Chunk, open_input
from modelyard.batch.jobs import ChunkCommit, Delivery, Job, JobStore
from modelyard.batch.scoring import ChunkScore, ChunkScorer
from modelyard.errors import ModelyardError
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.predlog.writer import PredictionLog

__all__ = ["run_job", "worker_id"]

logger = logging.getLogger(__name__)

DeliveryHook = Callable[[list[Delivery]], None]


def worker_id() -> str:
    """A name for this worker thread, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def run_job(
    settings: Settings,
    batch: BatchSettings,
    job_id: str,
    *,
    on_deliveries: DeliveryHook | None = None,
    backend: Backend | None = None,
) -> str | None:
    """Run job ``job_id`` to its end, if it can be claimed.

    ``backend`` scores the chunks (default: on this thread; see
    :mod:`modelyard.batch.backends`).

    Returns:
        The job's final status, or None when another worker holds it, it had already
        ended, or this worker lost its lease on the way.
    """
    owner = worker_id()
    with JobStore.open(settings) as store:
        job = store.claim(job_id, owner, batch.batch_lease_seconds)
        if job is None:
            logger.info("batch job %s: finished or held by another worker; skipped", job_id)
            return None
        lease = _Lease(store, job_id, owner, batch.batch_lease_seconds)
        ended: tuple[Job, list[Delivery]] | None
        try:
            run = _Run(settings, batch, store, job, owner, lease, backend or LocalBackend())
            status, reason = run.execute()
        except ModelyardError as exc:
            status, reason = "failed", str(exc)
        except Exception as exc:  # a fault of ours: record it, keep the worker alive
            logger.exception("batch job %s failed", job_id)
            status, reason = "failed", f"internal error: {exc!r}; see the worker's log"
        finally:
            lease.stop()
        if status == "lost":
            logger.warning("batch job %s: lease lost to another worker; stopped", job_id)
            return None
        ended = store.finish(job_id, owner, status, reason)
        if ended is None:
            return None
        finished, deliveries = ended
        logger.info(
            "batch job %s %s: %d rows scored, %d failed%s",
            job_id,
            status,
            finished.rows_done,
            finished.rows_failed,
            f" ({reason})" if reason else "",
        )
    if deliveries and on_deliveries is not None:
        on_deliveries(deliveries)
    return status


class _Lease:
    """Renews a job's lease in the background while its chunk is being scored."""

    def __init__(self, store: JobStore, job_id: str, owner: str, seconds: float) -> None:
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew,
            args=(store, job_id, owner, seconds),
            name=f"modelyard-lease-{job_id[:8]}",
            daemon=True,
        )
        self._thread.start()

    def _renew(self, store: JobStore, job_id: str, owner: str, seconds: float) -> None:
        while not self._stop.wait(seconds / 3):
            try:
                if not store.renew(job_id, owner, seconds):
                    self.lost.set()
                    return
            except ModelyardError:  # the database hiccuped: try again next time
                logger.warning("batch job %s: could not renew the lease", job_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Run:
    """One worker's run of one claimed job."""

    def __init__(
        self,
        settings: Settings,
        batch: BatchSettings,
        store: JobStore,
        job: Job,
        owner: str,
        lease: _Lease,
        backend: Backend,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.batch = batch
        self.store = store
        self.job = job
        self.owner = owner
        self.lease = lease

    def execute(self) -> tuple[str, str]:
        """Score every chunk not yet committed; returns (status, reason)."""
        from modelyard.predlog.writer import PredictionLog
        from modelyard.registry.registry import Registry

        job = self.job
        if job.cancel_requested:
            return "cancelled", "cancelled on request"
        source = open_input(job.source, job.chunk_rows)
        with Registry.open(self.settings) as registry:
            version = registry.get_version(f"{job.model}:{job.version}")
            scorer = ChunkScorer(
                registry, version, chunk_rows=job.chunk_rows, runtime=self.batch.batch_runtime
            )
        scorer.check_columns(source.columns, source.where)
        missing_ids = [name for name in job.id_columns if name not in source.columns]
        if missing_ids:
            raise ModelyardError(
                f"{source.where}: id column(s) {', '.join(map(repr, missing_ids))} are not in "
                "the input; submit again with --id-column naming columns it has"
            )
        self.store.set_started(
            job.id, self.owner, runtime=scorer.runtime_reason, rows_total=source.rows_total
        )
        with PredictionLog.open(self.settings) as predlog:
            return self._chunks(source.chunks(job.next_row), scorer, predlog)

    def _chunks(
        self, chunks: Iterator[Chunk], scorer: ChunkScorer, predlog: PredictionLog
    ) -> tuple[str, str]:
        started = time.monotonic()
        scoring = self.backend.score(chunks, scorer, self.job, self.settings)
        with closing(scoring):  # stops the chunks still being scored when the job stops
            return self._commit(scoring, predlog, started)

    def _commit(
        self, scoring: Iterator[tuple[Chunk, ChunkScore]], predlog: PredictionLog, started: float
    ) -> tuple[str, str]:
        job = self.job
        start_progress = job.progress
        processed = 0
        seen = job.next_row
        for chunk, scored in scoring:
            if self.lease.lost.is_set():
                return "lost", ""
            if self.store.get(job.id).cancel_requested:
                return "cancelled", "cancelled on request"
            processed += chunk.rows
            seen = chunk.first_row + chunk.rows
            elapsed = max(time.monotonic() - started, 1e-9)
            gained = chunk.progress - start_progress
            commit = ChunkCommit(
                first_row=chunk.first_row,
                next_row=seen,
                results=self._results(chunk, scored),
                failures=self._failures(chunk, scored),
                progress=chunk.progress,
                rows_per_second=processed / elapsed,
                eta_seconds=elapsed * (1 - chunk.progress) / gained if gained > 0 else None,
            )
            outcome = self.store.commit_chunk(
                job.id, self.owner, commit, self.batch.batch_lease_seconds
            )
            if outcome == "lost":
                return "lost", ""
            if outcome == "cancelled":
                return "cancelled", "cancelled on request"
            self._log(predlog, chunk, scored)
        if seen == 0:
            return "failed", (
                f"{job.source.get('path')}: the file has a header but no rows; "
                "give one row per prediction"
            )
        return "done", ""

    def _results(self, chunk: Chunk, scored: ChunkScore) -> dict[str, list[Any]]:
        """The scored rows of ``chunk``, column by column (see :class:`ChunkCommit`)."""
        from modelyard.predlog.tables import label_text

        output = scored.output
        if output is None:
            return {}
        count = len(scored.positions)
        nulls: list[Any] = [None] * count
        values = np.asarray(output.values)
        classifier = output.classes is not None or values.dtype.kind in "OUSb"
        ids = self._ids(chunk, scored.positions)
        probabilities = nulls
        if output.proba is not None:
            proba = np.asarray(output.proba, dtype=np.float64)
            classes = [label_text(c) for c in output.classes or ()]
            names = classes or [str(i) for i in range(proba.shape[1])]
            probabilities = [dict(zip(names, row, strict=True)) for row in proba.tolist()]
        return {
            "row_number": (scored.positions + chunk.first_row).tolist(),
            "version": [self.job.version] * count,
            "prediction": nulls if classifier else values.astype(np.float64).tolist(),
            "label": [label_text(value) for value in values] if classifier else nulls,
            "probabilities": probabilities,
            "ids": nulls if ids is None else ids,
        }

    def _failures(self, chunk: Chunk, scored: ChunkScore) -> list[dict[str, Any]]:
        if not scored.rejected:
            return []
        positions = np.array([position for position, _ in scored.rejected], dtype=np.int64)
        ids = self._ids(chunk, positions)
        return [
            {
                "row_number": chunk.first_row + position,
                "reason": reason,
                "ids": ids[index] if ids is not None else None,
            }
            for index, (position, reason) in enumerate(scored.rejected)
        ]

    def _ids(self, chunk: Chunk, positions: np.ndarray) -> list[dict[str, Any]] | None:
        names = self.job.id_columns
        if not names:
            return None
        columns = {name: chunk.values(name) for name in names}
        picked = positions.tolist()
        return [{name: _plain(columns[name][i]) for name in names} for i in picked]

    def _log(self, predlog: PredictionLog, chunk: Chunk, scored: ChunkScore) -> None:
        """Write the engine's held log call for the committed chunk, with each row's
        input row number."""
        if scored.log is None:
            return
        predlog.log(**scored.log, row_numbers=scored.positions + chunk.first_row)


def _plain(value: Any) -> Any:
    """An id value as plain JSON data (no NaN or infinity: the JSON columns refuse them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
