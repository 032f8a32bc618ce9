"""The batch verbs as functions: submit, status, list, cancel, results.

Example:
    >>> from modelyard.batch import submit, status
    >>> job = submit("houses.csv", model="house-prices@production")   # doctest: +SKIP
    >>> status(job.id).status                                          # doctest: +SKIP
    'queued'
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modelyard.batch.config import BatchSettings
from modelyard.batch.inputs import source_of, sql_source_of
from modelyard.batch.jobs import Job, JobStore
from modelyard.errors import DataError, JobNotFinished, ModelyardError
from modelyard.settings import Settings, default_actor

__all__ = ["cancel", "list_jobs", "results", "status", "submit"]

logger = logging.getLogger(__name__)

_MAX_KEY = 200


def submit(
    path: str | Path | None = None,
    *,
    model: str,
    sql: str | None = None,
    sql_url: str | None = None,
    idempotency_key: str | None = None,
    notify: str | None = None,
    webhook: str | None = None,
    id_columns: list[str] | None = None,
    settings: Settings | None = None,
    batch: BatchSettings | None = None,
) -> Job:
    """Queue a job scoring every row of ``path`` (CSV or Parquet), or of a SQL query,
    with ``model``.

    Args:
        path: a file the workers can read (give a shared path when they run elsewhere).
        sql: a query whose rows to score instead of a file, on the database ``sql_url``
            (a URL without its password: see
            :func:`modelyard.batch.inputs.sql_source_of`). Rows are sorted by
            ``id_columns`` (by every column when there are none), so a resumed job
            reads them in the same order.
        model: ``NAME`` (its ``production`` alias), ``NAME:VERSION`` or ``NAME@ALIAS``;
            resolved now, so a later promotion does not change what the job scores with.
        idempotency_key: a second submit with the same key returns the first job.
        notify: an email address told when the job ends.
        webhook: a URL POSTed the job (signed) when it ends.
        id_columns: input columns copied next to each prediction and failed row.

    Returns:
        The queued job (or the key's earlier job, whatever its state).

    Raises:
        ModelNotFoundError: no such model, version or alias.
        DataError: the file does not exist or is not CSV or Parquet; both or neither
            of a file and a query were given; the SQL URL holds a password.
    """
    from modelyard.batch.queue import BatchQueue
    from modelyard.registry.refs import ModelRef, parse_ref
    from modelyard.registry.registry import Registry

    settings = settings or Settings()
    batch = batch or BatchSettings()
    _check_options(idempotency_key, notify, webhook)
    if (path is None) == (sql is None) or (sql is None) != (sql_url is None):
        raise DataError("give a file, or a SQL query and its database URL (not both)")
    if sql is not None and sql_url is not None:
        source = sql_source_of(sql_url, sql, order_by=id_columns)
    else:
        assert path is not None
        source = source_of(path)
    queue = BatchQueue(settings, batch)  # fails early when the queue cannot be used
    with JobStore.open(settings) as store:
        ref: ModelRef = parse_ref(model)
        if ref.version is None and ref.alias is None:
            ref = parse_ref(f"{ref.name}@production")
        with Registry.open(settings) as registry:
            version = registry.get_version(ref)
        fields: dict[str, Any] = {
            "model": version.name,
            "ref": str(ref),
            "version": version.version,
            "source": source,
            "id_columns": list(id_columns or []),
            "chunk_rows": batch.batch_chunk_rows,
            "notify_email": notify,
            "webhook_url": webhook,
            "created_by": default_actor(),
        }
        job, created = store.create(fields, idempotency_key=idempotency_key)
    if created:
        try:
            queue.enqueue_job(job.id)
        except Exception:  # the job is recorded: the next worker to start queues it
            logger.warning(
                "batch job %s is recorded but could not be queued; a worker queues it when "
                "it starts (check MODELYARD_QUEUE_URL)",
                job.id,
                exc_info=True,
            )
    return job


def _check_options(key: str | None, notify: str | None, webhook: str | None) -> None:
    if key is not None and not 0 < len(key) <= _MAX_KEY:
        raise ModelyardError(f"the idempotency key must have 1 to {_MAX_KEY} characters")
    if notify is not None and ("@" not in notify or len(notify) > 320 or " " in notify):
        raise ModelyardError(f"--notify {notify!r} is not an email address")
    if webhook is not None and (
        not webhook.startswith(("http://", "https://")) or len(webhook) > 2000
    ):
        raise ModelyardError(f"--webhook {webhook!r} must be an http:// or https:// URL")


def status(job_id: str, *, settings: Settings | None = None) -> Job:
    """The job as recorded now.

    Raises:
        JobNotFoundError: no job has that id.
    """
    with JobStore.open(settings or Settings()) as store:
        return store.get(job_id)


def list_jobs(
    *, limit: int = 50, status: str | None = None, settings: Settings | None = None
) -> list[Job]:
    """The newest jobs first (``status`` keeps only jobs in that state)."""
    with JobStore.open(settings or Settings()) as store:
        return store.recent(limit=limit, status=status)


def cancel(
    job_id: str, *, settings: Settings | None = None, batch: BatchSettings | None = None
) -> Job:
    """Cancel a queued job, or stop a running one at its next chunk.

    Raises:
        JobNotFoundError: no job has that id.
    """
    from modelyard.batch.queue import BatchQueue

    settings = settings or Settings()
    with JobStore.open(settings) as store:
        job, deliveries = store.request_cancel(job_id)
    if deliveries:
        BatchQueue(settings, batch or BatchSettings()).enqueue_deliveries(deliveries)
    return job


def results(job_id: str, out: str | Path, *, settings: Settings | None = None) -> int:
    """Write a job's predictions to ``out`` (.csv or .parquet), in input order.

    Columns: ``row`` (the input row number, from 0), the job's id columns, then
    ``prediction`` (regressors) or ``label`` and ``proba.<class>`` (classifiers).
    Read a page at a time, so memory stays bounded.

    Returns:
        The number of rows written.

    Raises:
        JobNotFoundError: no job has that id.
        JobNotFinished: the job has not ended (a failed or cancelled job gives the
            rows it scored before it ended).
        DataError: ``out`` is neither .csv nor .parquet.
    """
    from modelyard.batch.export import write_results

    target = Path(out)
    if target.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--out {target}: give a .csv or .parquet file name")
    with JobStore.open(settings or Settings()) as store:
        job = store.get(job_id)
        if not job.finished:
            raise JobNotFinished(
                f"batch job {job_id} is {job.status}; its results can be written once it "
                f"ends (follow it with `modelyard batch status {job_id} --follow`)"
            )
        return write_results(store, job, target)
