"""The batch pages: upload a file, the job list with live progress, a job's page.

=================================  ==========================================================
route                              page
=================================  ==========================================================
``GET /jobs``                      the upload form and the newest jobs (progress refreshes)
``POST /jobs``                     upload a file (admin): queue it, then open its page
``GET /jobs/{id}``                 counts, speed, failed rows and reasons, deliveries, the
                                   predictions' distribution, a page of results, downloads
``GET /jobs/{id}/progress``        the job's progress as JSON (what ``ui.js`` polls)
``GET /jobs/{id}/download``        its results as ``?format=csv`` or ``parquet``
``POST /jobs/{id}/cancel``         cancel it (admin)
=================================  ==========================================================
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelyard.batch import api
from modelyard.batch.jobs import Job, JobStore
from modelyard.batch.rest import results_response, store_upload
from modelyard.errors import DataError
from modelyard.ui.pages import Pages

__all__ = ["router"]

_FORMATS: dict[str, Literal["csv", "parquet"]] = {".csv": "csv", ".parquet": "parquet"}
_READ_BYTES = 1 << 20


def progress_of(job: Job) -> dict[str, Any]:
    """What the progress bar and counters of a job show."""
    return {
        "id": job.id,
        "status": job.status,
        "finished": job.finished,
        "progress": job.progress,
        "rows_done": job.rows_done,
        "rows_failed": job.rows_failed,
        "rows_total": job.rows_total,
        "rows_per_second": job.rows_per_second,
        "eta_seconds": job.eta_seconds,
        "reason": job.reason,
    }


def router(pages: Pages) -> APIRouter:
    """The batch pages' routes (see the module docstring)."""
    routes = APIRouter()
    settings = pages.settings

    @routes.get("/jobs", response_class=HTMLResponse)
    def job_list(request: Request, status: str | None = None) -> HTMLResponse:
        from modelyard import api as yard

        jobs = api.list_jobs(limit=100, status=status, settings=settings)
        models = yard.list_models(settings=settings)
        choices: list[str] = []
        for model in models:
            choices.extend(f"{model.name}@{alias}" for alias in sorted(model.aliases))
            choices.extend(f"{model.name}:{n}" for n in range(model.latest_version, 0, -1))
        return pages.render(request, "jobs.html.j2", jobs=jobs, choices=choices, status=status)

    @routes.post("/jobs")
    async def upload(
        request: Request,
        file: UploadFile = File(...),  # noqa: B008
        model: str = Form(...),
        notify: str = Form(""),
        id_columns: str = Form(""),
    ) -> RedirectResponse:
        pages.check_admin(request)
        name = file.filename or ""
        suffix = PurePath(name).suffix.lower()
        if suffix not in _FORMATS:
            raise DataError(f"{name or 'the upload'}: choose a .csv or .parquet file")

        async def pieces() -> Any:
            while piece := await file.read(_READ_BYTES):
                yield piece

        target = await store_upload(settings, pieces(), _FORMATS[suffix])
        ids = [part.strip() for part in id_columns.split(",") if part.strip()]
        try:
            job = await run_in_threadpool(
                lambda: api.submit(
                    target,
                    model=model.strip(),
                    notify=notify.strip() or None,
                    id_columns=ids,
                    settings=settings,
                    batch=pages.batch,
                )
            )
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @routes.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str, after: int = Query(-1, ge=-1)) -> HTMLResponse:
        from modelyard.batch.export import page_table

        with JobStore.open(settings) as store:
            job = store.get(job_id)
            failures = store.failures(job_id, limit=100)
            deliveries = store.deliveries(job_id)
            page = store.result_page(job_id, after=after, limit=pages.ui.ui_page_rows)
            counts = store.prediction_counts(job_id) if job.rows_done else None
        table = page_table(page, job.id_columns)
        return pages.render(
            request,
            "job.html.j2",
            job=job,
            progress=progress_of(job),
            failures=failures,
            deliveries=deliveries,
            columns=table.column_names,
            rows=table.to_pylist(),
            after=after,
            next_after=page[-1].row_number if len(page) == pages.ui.ui_page_rows else None,
            counts=counts,
        )

    @routes.get("/jobs/{job_id}/progress")
    def job_progress(job_id: str) -> dict[str, Any]:
        return progress_of(api.status(job_id, settings=settings))

    @routes.get("/jobs/{job_id}/download")
    def download(
        job_id: str,
        format: Literal["csv", "parquet"] = "csv",  # noqa: A002 - the query parameter's name
    ) -> FileResponse:
        return results_response(job_id, format, settings)

    @routes.post("/jobs/{job_id}/cancel")
    def cancel(request: Request, job_id: str) -> RedirectResponse:
        pages.check_admin(request)
        api.cancel(job_id, settings=settings, batch=pages.batch)
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    return routes
