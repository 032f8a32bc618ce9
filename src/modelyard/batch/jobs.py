"""The job table: the source of truth about every batch job, its lease and its progress.

The task queue only carries job ids; whether a job still has work, who works on it and
how far it got live here, in the registry's database. That is what makes a job survive
a worker killed with SIGKILL (the queue has already handed out, and so lost, its task):

- a worker *claims* a job by taking its lease (``lease_owner``, ``lease_expires_at``) in
  one conditional UPDATE, and renews it while it works;
- each chunk is committed in ONE transaction that writes the chunk's results and failed
  rows and moves the job's cursor (``next_row``) and counters, and only if the worker
  still holds the lease and the cursor is where it left it (compare-and-set). Results
  are keyed by (job, input row number), so a chunk can never be written twice;
- a job whose lease expired (its worker died) is queued again by any live worker
  (:func:`modelyard.batch.queue.requeue_stale`); the next claim resumes at ``next_row``.

So after any crash, each valid input row has exactly one result row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.errors import JobNotFoundError, ModelyardError
from modelyard.registry import db
from modelyard.settings import Settings

__all__ = ["ChunkCommit", "Delivery", "Distribution", "Job", "JobStore", "TERMINAL"]

#: States a job never leaves.
TERMINAL = frozenset({"done", "failed", "cancelled"})
_ACTIVE = ("queued", "running")

_jobs = db.batch_jobs
_results = db.batch_results
_failures = db.batch_failures
_deliveries = db.batch_deliveries


@dataclass(frozen=True)
class Job:
    """One batch job as recorded (see the module docstring for the lease fields)."""

    id: str
    idempotency_key: str | None
    model: str
    ref: str
    version: int
    source: dict[str, Any]
    id_columns: list[str]
    chunk_rows: int
    status: str
    cancel_requested: bool
    reason: str
    runtime: str | None
    next_row: int
    rows_total: int | None
    rows_done: int
    rows_failed: int
    progress: float
    rows_per_second: float | None
    eta_seconds: float | None
    notify_email: str | None
    webhook_url: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: int

    @property
    def finished(self) -> bool:
        """Whether the job is done, failed or cancelled."""
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (times as ISO-8601 text)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data

    def public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` for HTTP answers and pages: no server path is shown.

        An input file is named by its file name only, a SQLite input by its database
        file's name; the worker's own record (:meth:`to_dict`) keeps the full paths.
        """
        data = self.to_dict()
        source = dict(data["source"])
        if source.get("path"):
            source["path"] = Path(str(source["path"])).name
        if str(source.get("url", "")).startswith("sqlite"):
            source["url"] = "sqlite:///" + Path(str(source["url"]).split("///", 1)[-1]).name
        data["source"] = source
        return data


@dataclass(frozen=True)
class ChunkCommit:
    """One chunk's outcome, written by :meth:`JobStore.commit_chunk` in one transaction.

    ``results`` holds the scored rows column by column (``row_number``, ``version``,
    ``prediction``, ``label``, ``probabilities``, ``ids``: a list each, one value per
    row), built without a Python object per row and cell; ``failures`` one dict per
    rejected row (``row_number``, ``reason``, ``ids``).
    """

    first_row: int
    next_row: int
    results: Mapping[str, Sequence[Any]]
    failures: Sequence[dict[str, Any]]
    progress: float
    rows_per_second: float | None
    eta_seconds: float | None

    @property
    def scored(self) -> int:
        """How many rows ``results`` holds."""
        return len(self.results["row_number"]) if self.results else 0


@dataclass(frozen=True)
class Distribution:
    """A job's predictions counted: per bin between ``edges`` (regressors) or per
    predicted label (classifiers)."""

    edges: list[float]
    labels: list[str]
    counts: list[int]


@dataclass(frozen=True)
class Delivery:
    """A notification of a finished job: ``channel`` is ``email`` or ``webhook``."""

    id: int
    job_id: str
    channel: str
    target: str
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    updated_at: datetime


class JobStore:
    """Reads and writes batch jobs in the registry database.

    Args:
        engine: the registry database (schema at head).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, settings: Settings) -> JobStore:
        """Open the job tables of the registry named by ``settings`` (migrated to head).

        Raises:
            RegistryError: the database cannot be reached, or has a newer schema.
        """
        from modelyard.predlog.store import open_index  # the same engine, migrated

        return cls(open_index(settings))

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- submitting and reading ----------------------------------------------------------

    def create(self, fields: dict[str, Any], *, idempotency_key: str | None) -> tuple[Job, bool]:
        """Record a queued job; with a key already used, the first job instead.

        Returns:
            The job, and whether it was created now (False: the key's earlier job).
        """
        now = db.utcnow()
        row = {
            **fields,
            "id": uuid.uuid4().hex,
            "idempotency_key": idempotency_key,
            "status": "queued",
            "created_at": now,
            "updated_at": now,
        }

        def work(conn: Connection) -> tuple[Job, bool]:
            if idempotency_key is not None:
                found = conn.execute(
                    sa.select(_jobs).where(_jobs.c.idempotency_key == idempotency_key)
                ).first()
                if found is not None:
                    return _job(found), False
            conn.execute(_jobs.insert().values(row))
            return self._get(conn, row["id"]), True

        # Two submits racing on one key: the loser's INSERT breaks the unique key, the
        # transaction is retried by run_write, and then finds the winner's job.
        return db.run_write(self.engine, work)

    def get(self, job_id: str) -> Job:
        """The job ``job_id``.

        Raises:
            JobNotFoundError: no job has that id.
        """
        return db.run_read(self.engine, lambda conn: self._get(conn, job_id))

    def _get(self, conn: Connection, job_id: str, *, lock: bool = False) -> Job:
        query = sa.select(_jobs).where(_jobs.c.id == job_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found = conn.execute(query).first()
        if found is None:
            raise JobNotFoundError(
                f"no batch job {job_id!r} in {db.mask_url(self.engine.url)}; "
                "run `modelyard batch list` to see the jobs"
            )
        return _job(found)

    def recent(self, *, limit: int = 50, status: str | None = None) -> list[Job]:
        """The newest jobs first."""
        query = sa.select(_jobs).order_by(_jobs.c.created_at.desc(), _jobs.c.id).limit(limit)
        if status is not None:
            query = query.where(_jobs.c.status == status)
        return db.run_read(self.engine, lambda conn: [_job(r) for r in conn.execute(query)])

    def failures(self, job_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The first failed rows of a job: row number, reason and id columns."""
        query = (
            sa.select(_failures.c.row_number, _failures.c.reason, _failures.c.ids)
            .where(_failures.c.job_id == job_id)
            .order_by(_failures.c.row_number)
            .limit(limit)
        )
        return db.run_read(
            self.engine, lambda conn: [dict(row._mapping) for row in conn.execute(query)]
        )

    def result_page(self, job_id: str, *, after: int = -1, limit: int = 50) -> list[Any]:
        """Up to ``limit`` result rows of a job whose input row number is past ``after``,
        in input order (keyset pagination: as quick on the last page as on the first)."""
        query = (
            sa.select(_results)
            .where(_results.c.job_id == job_id, _results.c.row_number > after)
            .order_by(_results.c.row_number)
            .limit(limit)
        )
        return db.run_read(self.engine, partial(_all_rows, query=query))

    def result_pages(self, job_id: str, *, page_rows: int = 10_000) -> Iterator[list[Any]]:
        """The job's result rows in input order, a page at a time."""
        after = -1
        while page := self.result_page(job_id, after=after, limit=page_rows):
            yield page
            after = page[-1].row_number

    def prediction_counts(self, job_id: str, *, bins: int = 20) -> Distribution:
        """How a job's predictions spread, counted by the database (no rows are read):
        ``bins`` equal-width bins of the regressor's predictions, or the rows per
        predicted label (the 20 most frequent)."""
        where = _results.c.job_id == job_id
        prediction, label = _results.c.prediction, _results.c.label

        def work(conn: Connection) -> Distribution:
            low, high, numeric = conn.execute(
                sa.select(
                    sa.func.min(prediction), sa.func.max(prediction), sa.func.count(prediction)
                ).where(where)
            ).one()
            if numeric:
                step = (high - low) / bins if high > low else 1.0
                edges = [low + step * i for i in range(bins + 1)]
                # One CASE sum per bin: portable, unlike FLOOR or CAST rounding rules.
                sums = [
                    sa.func.sum(
                        sa.case(
                            (
                                sa.and_(
                                    prediction >= edges[i],
                                    prediction <= edges[i + 1]
                                    if i == bins - 1
                                    else prediction < edges[i + 1],
                                ),
                                1,
                            ),
                            else_=0,
                        )
                    )
                    for i in range(bins)
                ]
                counts = conn.execute(sa.select(*sums).where(where)).one()
                return Distribution(edges=edges, labels=[], counts=[int(c or 0) for c in counts])
            rows = conn.execute(
                sa.select(label, sa.func.count())
                .where(where, label.is_not(None))
                .group_by(label)
                .order_by(sa.func.count().desc(), label)
                .limit(20)
            ).all()
            return Distribution(edges=[], labels=[r[0] for r in rows], counts=[r[1] for r in rows])

        return db.run_read(self.engine, work)

    # -- cancelling --------------------------------------------------------------------

    def request_cancel(self, job_id: str) -> tuple[Job, list[Delivery]]:
        """Cancel a queued job now, or ask the worker of a running one to stop.

        Returns:
            The job after the change, and the deliveries to send if it ended now.
        """

        def work(conn: Connection) -> tuple[Job, list[Delivery]]:
            job = self._get(conn, job_id, lock=True)
            if job.finished:
                return job, []
            if job.status == "queued":
                return self._end(conn, job, "cancelled", "cancelled before it started")
            conn.execute(
                _jobs.update()
                .where(_jobs.c.id == job_id)
                .values(cancel_requested=True, updated_at=db.utcnow())
            )
            return self._get(conn, job_id), []

        return db.run_write(self.engine, work)

    # -- the worker's side -------------------------------------------------------------

    def claim(self, job_id: str, owner: str, lease_seconds: float) -> Job | None:
        """Take the job's lease if it is unfinished and nobody holds a live lease.

        Returns:
            The claimed job (status ``running``), or None when it is finished or another
            worker holds it.
        """
        now = db.utcnow()
        update = (
            _jobs.update()
            .where(
                _jobs.c.id == job_id,
                _jobs.c.status.in_(_ACTIVE),
                sa.or_(_jobs.c.lease_expires_at.is_(None), _jobs.c.lease_expires_at < now),
            )
            .values(
                status="running",
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=sa.func.coalesce(_jobs.c.started_at, now),
                attempts=_jobs.c.attempts + 1,
                updated_at=now,
            )
        )

        def work(conn: Connection) -> Job | None:
            if conn.execute(update).rowcount != 1:
                return None
            return self._get(conn, job_id)

        return db.run_write(self.engine, work)

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend the lease ``owner`` holds; False when it holds it no more."""
        now = db.utcnow()
        update = (
            _jobs.update()
            .where(_jobs.c.id == job_id, _jobs.c.lease_owner == owner, _jobs.c.status == "running")
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
        return bool(db.run_write(self.engine, lambda conn: conn.execute(update).rowcount == 1))

    def set_started(self, job_id: str, owner: str, *, runtime: str, rows_total: int | None) -> None:
        """Record the runtime chosen and the row count (when the input knows it)."""
        update = (
            _jobs.update()
            .where(_jobs.c.id == job_id, _jobs.c.lease_owner == owner)
            .values(runtime=runtime[:200], rows_total=rows_total, updated_at=db.utcnow())
        )
        db.run_write(self.engine, lambda conn: conn.execute(update))

    def commit_chunk(
        self, job_id: str, owner: str, chunk: ChunkCommit, lease_seconds: float
    ) -> str:
        """Write one chunk's results and failures and move the job's cursor, atomically.

        Returns:
            ``ok``; ``cancelled`` (cancel was asked: nothing written); or ``lost`` (the
            lease or the cursor moved: another worker owns the job, nothing written).
        """

        def work(conn: Connection) -> str:
            job = self._get(conn, job_id, lock=True)
            if job.lease_owner != owner or job.status != "running":
                return "lost"
            if job.next_row != chunk.first_row:
                return "lost"
            if job.cancel_requested:
                return "cancelled"
            scored = chunk.scored
            if scored:
                db.insert_columns(conn, _results, {"job_id": [job_id] * scored, **chunk.results})
            db.insert_many(conn, _failures, [{"job_id": job_id, **f} for f in chunk.failures])
            now = db.utcnow()
            conn.execute(
                _jobs.update()
                .where(_jobs.c.id == job_id)
                .values(
                    next_row=chunk.next_row,
                    rows_done=_jobs.c.rows_done + scored,
                    rows_failed=_jobs.c.rows_failed + len(chunk.failures),
                    progress=chunk.progress,
                    rows_per_second=chunk.rows_per_second,
                    eta_seconds=chunk.eta_seconds,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
            )
            return "ok"

        return db.run_write(self.engine, work)

    def finish(
        self, job_id: str, owner: str | None, status: str, reason: str = ""
    ) -> tuple[Job, list[Delivery]] | None:
        """End a job (``done``, ``failed`` or ``cancelled``) and record its notifications.

        ``owner`` must hold the lease (None: whoever holds it). Returns the job and the
        deliveries to send, or None when ``owner`` lost the job meanwhile.
        """
        if status not in TERMINAL:
            raise ModelyardError(f"a job ends done, failed or cancelled, not {status!r}")

        def work(conn: Connection) -> tuple[Job, list[Delivery]] | None:
            job = self._get(conn, job_id, lock=True)
            if job.finished or (owner is not None and job.lease_owner != owner):
                return None
            return self._end(conn, job, status, reason)

        return db.run_write(self.engine, work)

    def _end(
        self, conn: Connection, job: Job, status: str, reason: str
    ) -> tuple[Job, list[Delivery]]:
        now = db.utcnow()
        values: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "finished_at": now,
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
            "eta_seconds": None,
        }
        if status == "done":
            values["progress"] = 1.0
        conn.execute(_jobs.update().where(_jobs.c.id == job.id).values(values))
        targets = [("email", job.notify_email), ("webhook", job.webhook_url)]
        for channel, target in targets:
            if target:
                conn.execute(
                    _deliveries.insert().values(
                        job_id=job.id,
                        channel=channel,
                        target=target,
                        status="pending",
                        attempts=0,
                        last_error="",
                        created_at=now,
                        updated_at=now,
                    )
                )
        deliveries = [
            _delivery(row)
            for row in conn.execute(
                sa.select(_deliveries)
                .where(_deliveries.c.job_id == job.id, _deliveries.c.status == "pending")
                .order_by(_deliveries.c.id)
            )
        ]
        return self._get(conn, job.id), deliveries

    def stale(self) -> tuple[list[str], list[int]]:
        """Unfinished jobs nobody holds a live lease on, and unsent deliveries.

        Returns:
            Job ids (oldest first) and delivery ids: what a live worker should queue
            again unless the queue already holds it.
        """
        now = db.utcnow()
        jobs = (
            sa.select(_jobs.c.id)
            .where(
                _jobs.c.status.in_(_ACTIVE),
                sa.or_(_jobs.c.lease_expires_at.is_(None), _jobs.c.lease_expires_at < now),
            )
            .order_by(_jobs.c.created_at)
        )
        deliveries = sa.select(_deliveries.c.id).where(_deliveries.c.status == "pending")

        def work(conn: Connection) -> tuple[list[str], list[int]]:
            return (
                [row.id for row in conn.execute(jobs)],
                [row.id for row in conn.execute(deliveries)],
            )

        return db.run_read(self.engine, work)

    # -- deliveries --------------------------------------------------------------------

    def delivery(self, delivery_id: int) -> tuple[Delivery, Job] | None:
        """A delivery and its job, or None if it is not pending any more."""

        def work(conn: Connection) -> tuple[Delivery, Job] | None:
            row = conn.execute(
                sa.select(_deliveries).where(_deliveries.c.id == delivery_id)
            ).first()
            if row is None or row.status != "pending":
                return None
            return _delivery(row), self._get(conn, row.job_id)

        return db.run_read(self.engine, work)

    def deliveries(self, job_id: str) -> list[Delivery]:
        """Every delivery of a job."""
        query = sa.select(_deliveries).where(_deliveries.c.job_id == job_id)
        return db.run_read(
            self.engine, lambda conn: [_delivery(r) for r in conn.execute(query.order_by("id"))]
        )

    def record_attempt(self, delivery_id: int, *, error: str | None, final: bool) -> None:
        """Count an attempt: ``sent`` when ``error`` is None, ``failed`` once ``final``."""
        status = "sent" if error is None else ("failed" if final else "pending")
        update = (
            _deliveries.update()
            .where(_deliveries.c.id == delivery_id)
            .values(
                status=status,
                attempts=_deliveries.c.attempts + 1,
                last_error=error or "",
                updated_at=db.utcnow(),
            )
        )
        db.run_write(self.engine, lambda conn: conn.execute(update))


def _all_rows(conn: Connection, *, query: Any) -> list[Any]:
    return list(conn.execute(query))


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    data["cancel_requested"] = bool(data["cancel_requested"])
    return Job(**data)


def _delivery(row: Any) -> Delivery:
    return Delivery(**dict(row._mapping))
