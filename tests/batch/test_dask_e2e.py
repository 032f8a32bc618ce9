"""The Dask backend: a job's chunks scored on a real Dask cluster bound to 127.0.0.1,
through the same contract, engine and runtime, into the same tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.batch import BatchSettings, JobStore, status, submit
from modelyard.batch.backends import DaskBackend
from modelyard.batch.worker import run_job
from modelyard.predlog import read_predictions
from modelyard.settings import Settings

from .conftest import BatchYard, cli_env, house_rows, run_cli, wait_for

pytestmark = pytest.mark.e2e

ROWS = 3000
BAD = (11, 1500, 2999)


@pytest.fixture
def dask_client() -> Iterator[Any]:
    """A client of a local Dask cluster: 2 worker processes on 127.0.0.1, no dashboard."""
    from _e2e import require_e2e

    require_e2e("a Dask cluster")
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _input(batch_yard: BatchYard, folder: Path) -> Path:
    frame = house_rows(batch_yard, ROWS, seed=9)
    frame.loc[list(BAD), "size"] = "n/a"
    path = folder / "big.csv"
    frame.to_csv(path, index=False)
    return path


def _results(settings: Settings, job_id: str) -> pd.DataFrame:
    with JobStore.open(settings) as store:
        rows = [r for page in store.result_pages(job_id) for r in page]
    return pd.DataFrame(
        {"row": [r.row_number for r in rows], "prediction": [r.prediction for r in rows]}
    )


def _scorers_on_workers(client: Any) -> int:
    def count() -> int:
        from modelyard.batch import backends

        return len(backends._scorers)

    return sum(client.run(count).values())


def test_a_job_scored_on_a_dask_cluster_matches_the_local_worker(
    batch_yard: BatchYard, settings: Settings, dask_client: Any, tmp_path: Path
) -> None:
    batch = BatchSettings(batch_chunk_rows=100)
    path = _input(batch_yard, tmp_path)
    on_dask = submit(path, model="houses", id_columns=["house_id"], settings=settings, batch=batch)
    local = submit(path, model="houses:1", settings=settings, batch=batch)

    assert _scorers_on_workers(dask_client) == 0
    backend = DaskBackend(dask_client)
    assert backend.window == 4  # two chunks out per Dask worker thread
    assert run_job(settings, batch, on_dask.id, backend=backend) == "done"
    assert _scorers_on_workers(dask_client) >= 1  # the chunks were scored on the cluster
    assert run_job(settings, batch, local.id) == "done"

    done = status(on_dask.id, settings=settings)
    assert (done.rows_done, done.rows_failed, done.progress) == (ROWS - len(BAD), len(BAD), 1.0)
    with JobStore.open(settings) as store:
        failures = store.failures(on_dask.id)
    assert [f["row_number"] for f in failures] == list(BAD)
    assert all("'size'" in f["reason"] for f in failures)

    clustered, alone = _results(settings, on_dask.id), _results(settings, local.id)
    assert clustered["row"].tolist() == [r for r in range(ROWS) if r not in BAD]  # one each
    np.testing.assert_allclose(clustered["prediction"], alone["prediction"], rtol=1e-12)

    logged = read_predictions(settings, "houses")
    logged = logged[logged["request_id"] == on_dask.id].sort_values("row")
    assert logged["row"].tolist() == clustered["row"].tolist()
    assert set(logged["endpoint"]) == {"batch"}


def test_modelyard_worker_with_the_dask_backend(
    batch_yard: BatchYard, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    env = cli_env(settings, MODELYARD_BATCH_CHUNK_ROWS="250", MODELYARD_BATCH_DASK_WORKERS="1")
    submitted = run_cli(
        ["batch", "submit", str(_input(batch_yard, tmp_path)), "--model", "houses"], env
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[-1]
    worker = start_worker(env, "--backend", "dask")
    wait_for(lambda: status(job_id, settings=settings).finished, "the job on Dask", timeout=300)
    done = status(job_id, settings=settings)
    assert done.status == "done", worker.output()
    assert (done.rows_done, done.rows_failed) == (ROWS - len(BAD), len(BAD))
    assert "scoring on Dask (a local cluster)" in worker.output()
    assert len(_results(settings, job_id)) == ROWS - len(BAD)
    refused = run_cli(["worker", "--backend", "ray"], env)
    assert refused.returncode == 2 and "use local or dask" in refused.stderr
