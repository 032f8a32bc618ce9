"""Real ``modelyard worker`` processes: SIGKILL mid-job, cancel mid-job, Redis + PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from modelyard.batch import BatchSettings, JobStore, cancel, status, submit
from modelyard.registry import db
from modelyard.settings import Settings

from .conftest import BatchYard, StartWorker, cli_env, house_rows, run_cli, train_houses, wait_for

pytestmark = pytest.mark.e2e

ROWS = 12_000
BAD = set(range(5, ROWS, 997))  # rows whose 'size' is not a number


def _big_input(yard: BatchYard, path: Path, rows: int = ROWS) -> None:
    frame = house_rows(yard, rows)
    frame.loc[sorted(row for row in BAD if row < rows), "size"] = "n/a"
    frame.to_csv(path, index=False)


def _rows_in(settings: Settings, table: sa.Table, job_id: str) -> list[int]:
    with JobStore.open(settings) as store, store.engine.connect() as conn:
        query = sa.select(table.c.row_number).where(table.c.job_id == job_id)
        return [row.row_number for row in conn.execute(query)]


def test_sigkill_mid_job_then_restart_gives_one_prediction_per_valid_row(
    batch_yard: BatchYard,
    settings: Settings,
    batch_settings: BatchSettings,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    _big_input(batch_yard, tmp_path / "in.csv")
    job = submit(tmp_path / "in.csv", model="houses", settings=settings, batch=batch_settings)
    env = cli_env(settings, MODELYARD_BATCH_LEASE_SECONDS="2")
    first = start_worker(env)
    wait_for(lambda: status(job.id, settings=settings).rows_done >= 500, "the first chunks")
    first.kill()
    killed = status(job.id, settings=settings)
    assert killed.status == "running", first.output()
    assert 500 <= killed.next_row < ROWS, "the job ended before the kill: make it longer"

    second = start_worker(env, "--concurrency", "2", "--worker-type", "process")
    wait_for(lambda: status(job.id, settings=settings).finished, "the job to end", timeout=180)
    done = status(job.id, settings=settings)
    assert done.status == "done", second.output()
    assert done.attempts == 2
    # Queued again by a live worker's reaper: the second's, or, on a machine slow enough
    # that the first's lease ran out before the kill, the first's own.
    assert "queued again" in first.output() + second.output()

    scored = _rows_in(settings, db.batch_results, job.id)
    failed = _rows_in(settings, db.batch_failures, job.id)
    assert len(scored) == len(set(scored)) == ROWS - len(BAD)  # exactly one per valid row
    assert sorted(failed) == sorted(BAD)
    assert sorted(scored + failed) == list(range(ROWS))
    assert (done.rows_done, done.rows_failed) == (ROWS - len(BAD), len(BAD))


def test_cancel_stops_a_running_job_at_its_next_chunk(
    batch_yard: BatchYard,
    settings: Settings,
    batch_settings: BatchSettings,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    _big_input(batch_yard, tmp_path / "in.csv", rows=3 * ROWS)
    job = submit(tmp_path / "in.csv", model="houses", settings=settings, batch=batch_settings)
    worker = start_worker(cli_env(settings))
    wait_for(lambda: status(job.id, settings=settings).rows_done > 0, "the first chunk")
    assert cancel(job.id, settings=settings).cancel_requested
    wait_for(lambda: status(job.id, settings=settings).finished, "the job to stop")
    ended = status(job.id, settings=settings)
    assert ended.status == "cancelled", worker.output()
    assert ended.next_row < 3 * ROWS
    scored = _rows_in(settings, db.batch_results, job.id)
    assert len(scored) == ended.rows_done  # only whole committed chunks


def test_cli_with_a_redis_queue_and_a_postgresql_registry(
    batch_yard: BatchYard,
    redis_url: str,
    fresh_postgres_url: str,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", registry_url=fresh_postgres_url)
    train_houses(settings, tmp_path / "houses")
    frame = house_rows(batch_yard, 300).astype({"size": float, "rooms": int, "year": int})
    frame.loc[7, "town"] = None
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    env = cli_env(settings, MODELYARD_QUEUE_URL=redis_url, MODELYARD_BATCH_CHUNK_ROWS="64")

    submitted = run_cli(
        [
            "batch",
            "submit",
            str(tmp_path / "in.parquet"),
            "--model",
            "houses:1",
            "--id-column",
            "house_id",
            "--idempotency-key",
            "k1",
        ],
        env,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[-1]
    assert len(job_id) == 32
    again = run_cli(
        [
            "batch",
            "submit",
            str(tmp_path / "in.parquet"),
            "--model",
            "houses:1",
            "--idempotency-key",
            "k1",
            "--json",
        ],
        env,
    )
    assert json.loads(again.stdout)["id"] == job_id

    import redis

    assert redis.Redis.from_url(redis_url).keys("huey*modelyardbatch*"), "the task is in Redis"
    worker = start_worker(env)
    followed = run_cli(["batch", "status", job_id, "--follow"], env, timeout=180)
    assert followed.returncode == 0, followed.stdout + followed.stderr + worker.output()
    # the job's summary (stdout): the progress bar (stderr) shows only if the job is
    # still running when --follow starts, which a fast worker does not leave it
    assert "299 scored, 1 failed" in followed.stdout
    assert "row 7: column 'town': null" in followed.stdout

    too_late = run_cli(["batch", "cancel", job_id], env)
    assert (too_late.returncode, too_late.stdout.strip()) == (0, f"{job_id}: done")
    listed = run_cli(["batch", "list", "--json"], env)
    assert [job["id"] for job in json.loads(listed.stdout)] == [job_id]
    out = tmp_path / "out.parquet"
    fetched = run_cli(["batch", "results", job_id, "--out", str(out)], env)
    assert fetched.returncode == 0, fetched.stderr
    table = pq.read_table(out)
    assert table.num_rows == 299 and table.column_names == ["row", "house_id", "prediction"]

    # The results live in PostgreSQL.
    engine = sa.create_engine(fresh_postgres_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(db.batch_results)
                .where(db.batch_results.c.job_id == job_id)
            ).scalar()
    finally:
        engine.dispose()
    assert count == 299
    assert status(job_id, settings=settings).rows_per_second
