"""The batch REST API: a FastAPI router to mount in any app, or a small app of its own.

=======================================  =================================================
route                                    what it does
=======================================  =================================================
``POST /batch/jobs``                     JSON ``{"path", "model", "idempotency_key"?,
                                         "notify"?, "webhook"?, "id_columns"?}``: score a
                                         file the workers can read
``POST /batch/uploads?model=REF&...``    the file itself as the request body (``format``
                                         ``csv`` or ``parquet``), streamed to
                                         ``<home>/batch/uploads/`` and scored
``GET /batch/jobs``                      the newest jobs (``?status=&limit=``)
``GET /batch/jobs/{id}``                 one job: state, counts, speed, ETA
``GET /batch/jobs/{id}/failures``        its first failed rows and their reasons
``GET /batch/jobs/{id}/results``         its predictions as a file (``?format=csv|parquet``)
``POST /batch/jobs/{id}/cancel``         cancel it
=======================================  =================================================

Upload with ``curl --data-binary @houses.csv -H 'content-type: text/csv'
'http://127.0.0.1:8000/batch/uploads?model=house-prices'``. When
``MODELYARD_BATCH_API_KEYS`` is set (comma-separated), every route needs one of the keys
in ``X-API-Key``. Errors answer ``{"detail": message}`` with the error's own status
(404 unknown job or model, 422 unusable file, 409 a job not yet ended).
"""

from __future__ import annotations

import hmac
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from modelyard.batch import api
from modelyard.batch.config import BatchSettings
from modelyard.batch.jobs import JobStore
from modelyard.errors import ModelyardError
from modelyard.settings import Settings

__all__ = [
    "JobRequest",
    "create_batch_app",
    "create_batch_router",
    "results_response",
    "store_upload",
]

T = TypeVar("T")

_UPLOAD_SUFFIX = {"csv": ".csv", "parquet": ".parquet"}
_MAX_UPLOAD_BYTES = 2 << 30


class JobRequest(BaseModel):
    """A job on a file the workers can read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    model: str
    idempotency_key: str | None = None
    notify: str | None = None
    webhook: str | None = None
    id_columns: list[str] = Field(default_factory=list)


def _answer(work: Callable[[], T]) -> T:
    """Run ``work``; a modelyard error becomes its own status with its message."""
    try:
        return work()
    except ModelyardError as exc:
        raise HTTPException(exc.http_status, detail=str(exc)) from exc


def create_batch_router(
    settings: Settings | None = None, batch: BatchSettings | None = None
) -> APIRouter:
    """The batch routes (see the module docstring), for ``app.include_router``."""
    settings = settings or Settings()
    batch = batch or BatchSettings()
    keys = [k for k in os.environ.get("MODELYARD_BATCH_API_KEYS", "").split(",") if k]

    def check_key(given: str | None) -> None:
        if keys and not any(hmac.compare_digest(given or "", key) for key in keys):
            raise HTTPException(401, detail="send a valid key in the X-API-Key header")

    router = APIRouter(prefix="/batch", tags=["batch"])
    key_header = Header(default=None, alias="X-API-Key")

    @router.post("/jobs", status_code=201)
    def submit_path(body: JobRequest, x_api_key: str | None = key_header) -> dict[str, Any]:
        """Queue a job on a file the workers can read."""
        check_key(x_api_key)
        job = _answer(
            lambda: api.submit(
                body.path,
                model=body.model,
                idempotency_key=body.idempotency_key,
                notify=body.notify,
                webhook=body.webhook,
                id_columns=body.id_columns,
                settings=settings,
                batch=batch,
            )
        )
        return job.public_dict()

    @router.post("/uploads", status_code=201)
    async def submit_upload(
        request: Request,
        model: str,
        format: Literal["csv", "parquet"] = "csv",  # noqa: A002 - the query parameter's name
        idempotency_key: str | None = None,
        notify: str | None = None,
        webhook: str | None = None,
        id_column: list[str] = Query(default_factory=list),  # noqa: B008
        x_api_key: str | None = key_header,
    ) -> dict[str, Any]:
        """Queue a job on the request body (the file's bytes), stored in the home folder."""
        from starlette.concurrency import run_in_threadpool

        check_key(x_api_key)
        target = await store_upload(settings, request.stream(), format)
        job = await run_in_threadpool(
            _answer,
            lambda: api.submit(
                target,
                model=model,
                idempotency_key=idempotency_key,
                notify=notify,
                webhook=webhook,
                id_columns=id_column,
                settings=settings,
                batch=batch,
            ),
        )
        if job.source.get("path") != str(target):  # the key's earlier job: keep no copy
            target.unlink(missing_ok=True)
        return job.public_dict()

    @router.get("/jobs")
    def list_jobs(
        status: str | None = None,
        limit: int = Query(default=50, ge=1, le=1000),
        x_api_key: str | None = key_header,
    ) -> list[dict[str, Any]]:
        """The newest jobs first."""
        check_key(x_api_key)
        jobs = _answer(lambda: api.list_jobs(limit=limit, status=status, settings=settings))
        return [job.public_dict() for job in jobs]

    @router.get("/jobs/{job_id}")
    def get_job(job_id: str, x_api_key: str | None = key_header) -> dict[str, Any]:
        """One job as recorded now."""
        check_key(x_api_key)
        return _answer(lambda: api.status(job_id, settings=settings)).public_dict()

    @router.get("/jobs/{job_id}/failures")
    def get_failures(
        job_id: str,
        limit: int = Query(default=100, ge=1, le=10_000),
        x_api_key: str | None = key_header,
    ) -> list[dict[str, Any]]:
        """The job's first failed rows, with their reasons."""
        check_key(x_api_key)

        def read() -> list[dict[str, Any]]:
            with JobStore.open(settings) as store:
                store.get(job_id)
                return store.failures(job_id, limit=limit)

        return _answer(read)

    @router.get("/jobs/{job_id}/results")
    def get_results(
        job_id: str,
        format: Literal["csv", "parquet"] = "csv",  # noqa: A002 - the query parameter's name
        x_api_key: str | None = key_header,
    ) -> FileResponse:
        """The job's predictions as a CSV or Parquet file, in input order."""
        check_key(x_api_key)
        return results_response(job_id, format, settings)

    @router.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str, x_api_key: str | None = key_header) -> dict[str, Any]:
        """Cancel a queued job, or stop a running one at its next chunk."""
        check_key(x_api_key)
        return _answer(lambda: api.cancel(job_id, settings=settings, batch=batch)).public_dict()

    return router


async def store_upload(
    settings: Settings,
    pieces: AsyncIterator[bytes],
    format: Literal["csv", "parquet"],  # noqa: A002
) -> Path:
    """Stream an uploaded file to ``<home>/batch/uploads/`` (where the workers read it).

    Raises:
        HTTPException: 413 past 2 GiB (the partial file is removed).
    """
    from starlette.concurrency import run_in_threadpool

    folder = settings.home.expanduser().absolute() / "batch" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}{_UPLOAD_SUFFIX[format]}"
    size = 0
    with open(target, "wb") as sink:
        async for piece in pieces:
            size += len(piece)
            if size > _MAX_UPLOAD_BYTES:
                sink.close()
                target.unlink(missing_ok=True)
                raise HTTPException(413, detail="the upload is larger than 2 GiB")
            await run_in_threadpool(sink.write, piece)
    return target


def results_response(
    job_id: str,
    format: Literal["csv", "parquet"],  # noqa: A002
    settings: Settings,
) -> FileResponse:
    """A job's predictions as a file download, written to a temporary folder that is
    removed once sent.

    Raises:
        HTTPException: the job does not exist (404) or has not ended (409).
    """
    folder = Path(tempfile.mkdtemp(prefix="modelyard-results-"))
    target = folder / f"{job_id}{_UPLOAD_SUFFIX[format]}"
    try:
        _answer(lambda: api.results(job_id, target, settings=settings))
    except BaseException:
        _remove(folder)
        raise
    media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
    return FileResponse(
        target, media_type=media, filename=target.name, background=BackgroundTask(_remove, folder)
    )


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def create_batch_app(
    settings: Settings | None = None, batch: BatchSettings | None = None
) -> FastAPI:
    """A FastAPI app serving only the batch routes (run it with uvicorn on 127.0.0.1)."""
    app = FastAPI(title="modelyard batch", version="1")
    app.include_router(create_batch_router(settings, batch))
    return app
