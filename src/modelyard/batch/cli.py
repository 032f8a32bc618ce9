"""``modelyard batch ...`` and ``modelyard worker``: thin over :mod:`modelyard.batch.api`.

Registered on the main command line by :mod:`modelyard.cli`. Heavy imports stay inside
the commands, so ``modelyard --help`` stays quick.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from modelyard.batch.jobs import Job
    from modelyard.settings import Settings

__all__ = ["batch_app", "worker"]

batch_app = typer.Typer(
    help="Score files in the background: submit, follow, fetch results, cancel.",
    no_args_is_help=True,
    epilog="Examples:\n\n  modelyard batch submit houses.csv --model house-prices@production\n\n"
    "  modelyard batch status JOB --follow\n\n"
    "  modelyard batch results JOB --out predictions.parquet",
)

JobArgument = Annotated[str, typer.Argument(help="The job id that submit printed.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
_POLL_SECONDS = 0.5


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _settings(ctx: typer.Context) -> Settings:
    """Settings with the main command's ``--home`` and ``--registry-url``, if given."""
    from modelyard.settings import Settings

    return Settings.from_options(ctx.find_root().params)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@batch_app.command("submit")
def submit(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option(help="NAME (its production alias), NAME:VERSION or NAME@ALIAS.")
    ],
    file: Annotated[
        Path | None,
        typer.Argument(help="A .csv or .parquet file the workers can read (or give --sql)."),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting again with this key returns the first job.")
    ] = None,
    notify: Annotated[str | None, typer.Option(help="Email this address when it ends.")] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST the job (HMAC-signed) to this URL when it ends.")
    ] = None,
    id_column: Annotated[
        list[str] | None,
        typer.Option(help="An input column kept next to each prediction (repeatable)."),
    ] = None,
    sql: Annotated[
        str | None, typer.Option(help="Score the rows of this query instead of a file.")
    ] = None,
    sql_url: Annotated[
        str | None,
        typer.Option(help="The database of --sql (no password in it: use PGPASSWORD, .pgpass)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a job scoring every row of FILE (or of --sql on --sql-url); prints the job id
    alone on the last line.

    Start workers with `modelyard worker`.

    Example: modelyard batch submit houses.csv --model house-prices@production --notify me@x.org
    """
    from modelyard.batch import api

    job = api.submit(
        file,
        model=model,
        sql=sql,
        sql_url=sql_url,
        idempotency_key=idempotency_key,
        notify=notify,
        webhook=webhook,
        id_columns=id_column,
        settings=_settings(ctx),
    )
    if as_json:
        _print_json(job.to_dict())
        return
    what = job.source.get("path") or "a SQL query"
    err.print(f"queued {job.model}:{job.version} on {what} ({job.status})", markup=False)
    out.print(job.id)


@batch_app.command("status")
def status(
    ctx: typer.Context,
    job_id: JobArgument,
    follow: Annotated[bool, typer.Option(help="Show a progress bar until the job ends.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a job's state, counts, speed and first failed rows.

    With --follow, exits 0 when the job is done, 1 when it failed or was cancelled.

    Example: modelyard batch status 3f2a... --follow
    """
    from modelyard.batch import api

    settings = _settings(ctx)
    job = api.status(job_id, settings=settings)
    if follow and not job.finished:
        job = _follow(job_id, settings)
    if as_json:
        _print_json(job.to_dict())
    else:
        _print_job(job)
        if job.rows_failed:
            _print_failures(job, settings)
    if follow and job.status != "done":
        raise typer.Exit(1)


@batch_app.command("list")
def list_jobs(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option("--status", help="Only jobs queued, running, done, failed or cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest jobs.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List the newest jobs.

    Example: modelyard batch list --status running
    """
    from rich.table import Table

    from modelyard.batch import api

    jobs = api.list_jobs(limit=limit, status=state, settings=_settings(ctx))
    if as_json:
        _print_json([job.to_dict() for job in jobs])
        return
    table = Table("job", "model", "status", "rows done", "failed", "progress", "created")
    for job in jobs:
        table.add_row(
            job.id,
            f"{job.model}:{job.version}",
            job.status,
            f"{job.rows_done:,}",
            f"{job.rows_failed:,}",
            f"{job.progress:.0%}",
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        )
    out.print(table)


@batch_app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobArgument, as_json: JsonOption = False) -> None:
    """Cancel a queued job, or stop a running one at its next chunk.

    Example: modelyard batch cancel 3f2a...
    """
    from modelyard.batch import api

    job = api.cancel(job_id, settings=_settings(ctx))
    if as_json:
        _print_json(job.to_dict())
    elif job.status == "running":
        out.print(f"{job.id}: stopping at its next chunk")
    else:
        out.print(f"{job.id}: {job.status}")


@batch_app.command("results")
def results(
    ctx: typer.Context,
    job_id: JobArgument,
    target: Annotated[Path, typer.Option("--out", help="Where to write: a .csv or .parquet file.")],
) -> None:
    """Write a job's predictions to a CSV or Parquet file, in input order.

    Example: modelyard batch results 3f2a... --out predictions.parquet
    """
    from modelyard.batch import api

    written = api.results(job_id, target, settings=_settings(ctx))
    out.print(f"wrote {written:,} rows to {target}")


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once by this worker.", min=1)] = 1,
    worker_type: Annotated[
        str, typer.Option(help="thread or process: how the jobs run side by side.")
    ] = "thread",
    backend: Annotated[
        str | None,
        typer.Option(help="local (score here) or dask (on a Dask cluster); default: setting."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="The Dask scheduler, tcp://HOST:8786; none: a cluster on 127.0.0.1."),
    ] = None,
) -> None:
    """Run batch jobs from the queue until stopped.

    Ctrl-C (SIGINT) lets running jobs finish, a second Ctrl-C or SIGTERM stops at once:
    the jobs it was running are then taken over by another worker, from their last
    committed chunk.

    The queue is the SQLite file <home>/queue.db, or Redis when MODELYARD_QUEUE_URL is
    set (then workers on several machines share the jobs). A job whose worker died is
    taken over once its lease (MODELYARD_BATCH_LEASE_SECONDS) expires.

    With --backend dask the chunks of each job are scored on a Dask cluster (--address,
    or a local one bound to 127.0.0.1); its workers need the same home folder (shared)
    and registry database.

    Example: MODELYARD_QUEUE_URL=redis://127.0.0.1:6379/0 modelyard worker --concurrency 2
    """
    import logging

    from modelyard.batch.config import BatchSettings
    from modelyard.batch.queue import run_worker
    from modelyard.errors import ModelyardError

    if backend not in (None, "local", "dask"):
        raise ModelyardError(f"--backend {backend!r}: use local or dask")
    if worker_type not in ("thread", "process"):
        raise ModelyardError(f"--worker-type {worker_type!r}: use thread or process")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(ctx)
    given: dict[str, Any] = {"batch_backend": backend, "batch_dask_address": address}
    batch = BatchSettings(**{key: value for key, value in given.items() if value is not None})
    queue = batch.queue_url or str(settings.home.expanduser().absolute() / "queue.db")
    where = batch.batch_dask_address or "a local cluster" if batch.batch_backend == "dask" else ""
    scoring = f", scoring on Dask ({where})" if where else ""
    err.print(f"batch worker: {concurrency} {worker_type}(s) on {queue}{scoring}")
    run_worker(settings, batch, concurrency=concurrency, worker_type=worker_type)


# -- rendering ------------------------------------------------------------------------


def _follow(job_id: str, settings: Settings) -> Job:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from modelyard.batch import api

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        console=err,
        transient=False,
    )
    with bar:
        task = bar.add_task(job_id[:12], total=1.0, detail="queued")
        while True:
            job = api.status(job_id, settings=settings)
            bar.update(task, completed=job.progress, detail=_detail(job))
            if job.finished:
                return job
            time.sleep(_POLL_SECONDS)


def _detail(job: Job) -> str:
    parts = [job.status, f"{job.rows_done:,} scored", f"{job.rows_failed:,} failed"]
    if job.rows_per_second:
        parts.append(f"{job.rows_per_second:,.0f} rows/s")
    if job.eta_seconds is not None and not job.finished:
        parts.append(f"ETA {job.eta_seconds:,.0f} s")
    return ", ".join(parts)


def _print_job(job: Job) -> None:
    out.print(f"[bold]{job.id}[/bold]  {job.model}:{job.version} ({job.ref})")
    out.print(f"status: {job.status}" + (f" ({job.reason})" if job.reason else ""), markup=False)
    source = job.source
    shown = source.get("path") or f"{source.get('query')} on {_masked(source.get('url', ''))}"
    out.print(f"input: {shown}", markup=False)
    total = f" of {job.rows_total:,}" if job.rows_total is not None else ""
    out.print(
        f"rows: {job.rows_done + job.rows_failed:,}{total} read, {job.rows_done:,} scored, "
        f"{job.rows_failed:,} failed; {job.progress:.0%}"
    )
    if job.rows_per_second:
        eta = f", ETA {job.eta_seconds:,.0f} s" if job.eta_seconds is not None else ""
        out.print(f"speed: {job.rows_per_second:,.0f} rows/s{eta}")
    if job.runtime:
        out.print(f"runtime: {job.runtime}", markup=False)


def _masked(url: str) -> str:
    from modelyard.data.sources import mask_url

    return mask_url(url)


def _print_failures(job: Job, settings: Settings) -> None:
    from modelyard.batch.jobs import JobStore

    with JobStore.open(settings) as store:
        failures = store.failures(job.id, limit=10)
    out.print(f"first failed rows ({job.rows_failed:,} in all):")
    for failure in failures:
        out.print(f"  row {failure['row_number']}: {failure['reason']}", markup=False)
