"""Batch jobs run in this process through the real queue: scoring, bad rows, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from modelyard import api
from modelyard.batch import BatchSettings, JobStore, cancel, list_jobs, results, status, submit
from modelyard.errors import DataError, JobNotFoundError, ModelNotFoundError
from modelyard.models.fit import predict
from modelyard.predlog import read_predictions
from modelyard.registry import Registry, db
from modelyard.settings import Settings

from .conftest import BatchYard, drain, house_rows


def _scored(settings: Settings, job_id: str) -> pd.DataFrame:
    with JobStore.open(settings) as store, store.engine.connect() as conn:
        query = sa.select(db.batch_results).where(db.batch_results.c.job_id == job_id)
        return pd.DataFrame([dict(r._mapping) for r in conn.execute(query)])


def test_a_csv_is_scored_with_bad_rows_kept_apart(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    frame = house_rows(batch_yard, 230)
    frame.loc[3, "size"] = "big"  # not a number
    frame.loc[60, "town"] = ""  # missing, and training had no missing towns
    frame.loc[61, "rooms"] = "2.5.1"
    frame.to_csv(tmp_path / "in.csv", index=False)

    job = submit(
        tmp_path / "in.csv",
        model="houses",
        id_columns=["house_id"],
        settings=settings,
        batch=batch_settings,
    )
    assert (job.status, job.ref, job.version) == ("queued", "houses@production", 1)
    assert drain(settings, batch_settings) == 1
    job = status(job.id, settings=settings)
    assert (job.status, job.rows_done, job.rows_failed, job.next_row) == ("done", 227, 3, 230)
    assert job.progress == 1.0 and job.rows_per_second and job.runtime

    with JobStore.open(settings) as store:
        failures = store.failures(job.id)
    assert [(f["row_number"], f["ids"]) for f in failures] == [
        (3, {"house_id": "h3"}),
        (60, {"house_id": "h60"}),
        (61, {"house_id": "h61"}),
    ]
    assert "column 'size': expected a number, found 'big'" in failures[0]["reason"]
    assert "column 'town': null" in failures[1]["reason"]
    assert "'rooms'" in failures[2]["reason"]

    # One result per valid row, each the pipeline's own prediction for that row.
    scored = _scored(settings, job.id).sort_values("row_number")
    valid = [row for row in range(230) if row not in (3, 60, 61)]
    assert scored["row_number"].tolist() == valid
    inputs = frame.iloc[valid].astype({"size": float, "rooms": float, "year": float})
    expected = predict(api.load_model("houses:1", settings=settings), inputs).values
    np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-4)
    assert scored["ids"].iloc[0] == {"house_id": "h0"}

    # The same rows went to the prediction log, as online traffic does.
    logged = read_predictions(settings, "houses")
    logged = logged[logged["endpoint"] == "batch"].sort_values("row")
    assert set(logged["request_id"]) == {job.id}
    assert logged["row"].tolist() == valid
    np.testing.assert_allclose(logged["prediction"], scored["prediction"])

    out = tmp_path / "predictions.csv"
    assert results(job.id, out, settings=settings) == 227
    written = pd.read_csv(out)
    assert written.columns.tolist() == ["row", "house_id", "prediction"]
    assert written["row"].tolist() == valid


def test_a_classifier_on_parquet_gives_labels_and_probabilities(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    frame = batch_yard.churn.drop(columns=["label"]).head(120).copy()
    frame["signup_date"] = pd.to_datetime(frame["signup_date"])  # a typed column
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    job = submit(
        tmp_path / "in.parquet",
        model="churn:1",
        id_columns=["customer_id"],
        settings=settings,
        batch=batch_settings,
    )
    drain(settings, batch_settings)
    job = status(job.id, settings=settings)
    assert (job.status, job.rows_total, job.rows_done, job.rows_failed) == ("done", 120, 120, 0)
    scored = _scored(settings, job.id).sort_values("row_number")
    assert set(scored["label"]) <= {"churned", "stayed"}
    assert scored["prediction"].isna().all()
    first = scored["probabilities"].iloc[0]
    assert set(first) == {"churned", "stayed"} and sum(first.values()) == pytest.approx(1.0)
    reference = predict(api.load_model("churn:1", settings=settings), frame)
    assert scored["label"].tolist() == [str(v) for v in reference.values]

    out = tmp_path / "predictions.parquet"
    results(job.id, out, settings=settings)
    table = pq.read_table(out)
    assert table.column_names == ["row", "customer_id", "label", "proba.churned", "proba.stayed"]
    assert table.column("customer_id").to_pylist()[:2] == [10_000, 10_001]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "the file is empty; give a header row"),
        ("size,rooms,town,year\n", "the file has a header but no rows"),
        (
            "area,rooms,town\n80,2,alpha\n",
            "lacks 1 input column(s) of houses:1: 'size'; it has: 'area', 'rooms', 'town'",
        ),
    ],
    ids=["empty", "header-only", "wrong-columns"],
)
def test_a_file_the_model_cannot_use_fails_the_job_at_once(
    settings: Settings, batch_settings: BatchSettings, tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(content)
    job = submit(path, model="houses", settings=settings, batch=batch_settings)
    drain(settings, batch_settings)
    job = status(job.id, settings=settings)
    assert job.status == "failed"
    assert reason in job.reason
    assert (job.rows_done, job.rows_failed) == (0, 0)


def test_an_unreadable_parquet_file_fails_with_its_path(
    settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    path = tmp_path / "in.parquet"
    path.write_bytes(b"this is not parquet at all")
    job = submit(path, model="houses", settings=settings, batch=batch_settings)
    drain(settings, batch_settings)
    job = status(job.id, settings=settings)
    assert job.status == "failed"
    assert f"{path}: cannot read it as PARQUET" in job.reason


def test_a_version_whose_artifacts_fail_their_checksum_is_refused(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    house_rows(batch_yard, 20).to_csv(tmp_path / "in.csv", index=False)
    with Registry.open(settings) as registry:
        version = registry.get_version("houses:1")
        for record in version.artifacts.values():
            path = registry.store.path(record.digest)  # type: ignore[attr-defined]
            path.chmod(0o644)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
    job = submit(tmp_path / "in.csv", model="houses", settings=settings, batch=batch_settings)
    drain(settings, batch_settings)
    job = status(job.id, settings=settings)
    assert job.status == "failed"
    assert "modified or corrupted" in job.reason
    assert job.rows_done == 0 and _scored(settings, job.id).empty


def test_the_same_idempotency_key_returns_the_first_job(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    house_rows(batch_yard, 30).to_csv(tmp_path / "in.csv", index=False)
    first = submit(
        tmp_path / "in.csv",
        model="houses",
        idempotency_key="nightly-42",
        settings=settings,
        batch=batch_settings,
    )
    again = submit(
        tmp_path / "in.csv",
        model="houses",
        idempotency_key="nightly-42",
        settings=settings,
        batch=batch_settings,
    )
    assert again.id == first.id
    assert drain(settings, batch_settings) == 1  # one task was queued
    after = submit(
        tmp_path / "in.csv",
        model="houses",
        idempotency_key="nightly-42",
        settings=settings,
        batch=batch_settings,
    )
    assert (after.id, after.status, after.rows_done) == (first.id, "done", 30)
    assert drain(settings, batch_settings) == 0
    assert [job.id for job in list_jobs(settings=settings)] == [first.id]


def test_cancel_a_queued_job_and_a_running_one(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    house_rows(batch_yard, 100).to_csv(tmp_path / "in.csv", index=False)
    queued = submit(tmp_path / "in.csv", model="houses", settings=settings, batch=batch_settings)
    assert cancel(queued.id, settings=settings).status == "cancelled"

    running = submit(tmp_path / "in.csv", model="houses", settings=settings, batch=batch_settings)
    with JobStore.open(settings) as store:  # a worker claimed it, and died at once
        assert store.claim(running.id, "a-worker-that-died", lease_seconds=0.001) is not None
    asked = cancel(running.id, settings=settings)
    assert (asked.status, asked.cancel_requested) == ("running", True)
    drain(settings, batch_settings)  # the two tasks: both end at once
    for job_id in (queued.id, running.id):
        job = status(job_id, settings=settings)
        assert (job.status, job.rows_done) == ("cancelled", 0)
    assert _scored(settings, running.id).empty


def test_unknown_models_jobs_and_files_are_user_errors(
    settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    (tmp_path / "in.csv").write_text("size\n1\n")
    with pytest.raises(ModelNotFoundError):
        submit(tmp_path / "in.csv", model="nope", settings=settings, batch=batch_settings)
    with pytest.raises(DataError, match=r"no such file"):
        submit(tmp_path / "missing.csv", model="houses", settings=settings, batch=batch_settings)
    with pytest.raises(DataError, match=r"\.csv, \.parquet or \.pq"):
        submit(tmp_path / "in.json", model="houses", settings=settings, batch=batch_settings)
    with pytest.raises(JobNotFoundError, match=r"batch list"):
        status("0" * 32, settings=settings)


def test_a_job_whose_task_was_lost_is_queued_again(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    from modelyard.batch import BatchQueue

    house_rows(batch_yard, 40).to_csv(tmp_path / "in.csv", index=False)
    job = submit(tmp_path / "in.csv", model="houses", settings=settings, batch=batch_settings)
    queue = BatchQueue(settings, batch_settings)
    with JobStore.open(settings) as store:
        assert queue.requeue_stale(store) == ([], [])  # its task is in the queue
        queue.huey.flush()  # as if a worker took the task and died before claiming the job
        assert queue.requeue_stale(store) == ([job.id], [])
        assert queue.requeue_stale(store) == ([], [])  # queued once, not twice
    assert drain(settings, batch_settings) == 1
    assert status(job.id, settings=settings).status == "done"


def test_the_rows_of_a_sql_query_are_scored_in_a_fixed_order(
    batch_yard: BatchYard, settings: Settings, batch_settings: BatchSettings, tmp_path: Path
) -> None:
    frame = house_rows(batch_yard, 130, seed=4).astype({"size": float, "rooms": int})
    frame["house_id"] = range(1000, 1130)
    frame = frame.sample(frac=1.0, random_state=1)  # stored out of order
    database = tmp_path / "houses.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    frame.to_sql("houses", engine, index=False)
    with engine.begin() as conn:  # SQLite keeps a word in a REAL column: a bad row
        conn.exec_driver_sql("UPDATE houses SET size = 'big' WHERE house_id = 1007")
    engine.dispose()

    job = submit(
        model="houses",
        sql="SELECT house_id, size, rooms, town FROM houses WHERE rooms > 0",
        sql_url=f"sqlite:///{database}",
        id_columns=["house_id"],
        settings=settings,
        batch=batch_settings,
    )
    assert job.source["order_by"] == ["house_id"]
    drain(settings, batch_settings)
    job = status(job.id, settings=settings)
    assert (job.status, job.rows_total, job.rows_done, job.rows_failed) == ("done", 130, 129, 1)
    scored = _scored(settings, job.id).sort_values("row_number")
    assert [ids["house_id"] for ids in scored["ids"]][:8] == [
        1000,
        1001,
        1002,
        1003,
        1004,
        1005,
        1006,
        1008,
    ]
    with JobStore.open(settings) as store:
        (failure,) = store.failures(job.id)
    assert failure["ids"] == {"house_id": 1007} and "'size'" in failure["reason"]


def test_a_sql_url_holding_a_password_is_refused(
    settings: Settings, batch_settings: BatchSettings
) -> None:
    with pytest.raises(DataError, match=r"holds a password.*PGPASSWORD") as caught:
        submit(
            model="houses",
            sql="SELECT 1",
            sql_url="postgresql://ana:hunter2@db.example/yard",
            settings=settings,
            batch=batch_settings,
        )
    assert "hunter2" not in str(caught.value)
