"""The batch REST routes under a real uvicorn server, with a real HTTP client."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

from modelyard.batch import BatchSettings
from modelyard.batch.rest import create_batch_app
from modelyard.settings import Settings

from .conftest import BatchYard, drain, free_port, house_rows

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(
    settings: Settings, batch_settings: BatchSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    monkeypatch.setenv("MODELYARD_BATCH_API_KEYS", "k-one,k-two")
    port = free_port()
    config = uvicorn.Config(
        create_batch_app(settings, batch_settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": "k-two"}, timeout=60
        ) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_upload_follow_download_and_cancel_over_http(
    batch_yard: BatchYard,
    settings: Settings,
    batch_settings: BatchSettings,
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    frame = house_rows(batch_yard, 120)
    frame.loc[9, "size"] = "big"
    uploaded = client.post(
        "/batch/uploads",
        params={"model": "houses", "id_column": "house_id"},
        content=frame.to_csv(index=False).encode(),
        headers={"content-type": "text/csv"},
    )
    assert uploaded.status_code == 201, uploaded.text
    job = uploaded.json()
    assert job["status"] == "queued" and job["source"]["kind"] == "csv"
    # The answer names the stored upload by its file name, never by a server path.
    assert job["source"]["path"].endswith(".csv") and "/" not in job["source"]["path"]
    assert str(settings.home) not in uploaded.text
    assert client.get(f"/batch/jobs/{job['id']}/results").status_code == 409  # not ended

    drain(settings, batch_settings)
    done = client.get(f"/batch/jobs/{job['id']}").json()
    assert (done["status"], done["rows_done"], done["rows_failed"]) == ("done", 119, 1)
    (failure,) = client.get(f"/batch/jobs/{job['id']}/failures").json()
    assert failure["row_number"] == 9 and "'size'" in failure["reason"]
    csv = client.get(f"/batch/jobs/{job['id']}/results")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(csv.text))
    assert len(table) == 119 and table.columns.tolist() == ["row", "house_id", "prediction"]
    parquet = client.get(f"/batch/jobs/{job['id']}/results", params={"format": "parquet"})
    assert len(pd.read_parquet(io.BytesIO(parquet.content))) == 119
    assert [j["id"] for j in client.get("/batch/jobs").json()] == [job["id"]]

    frame.to_csv(tmp_path / "shared.csv", index=False)
    by_path = client.post(
        "/batch/jobs", json={"path": str(tmp_path / "shared.csv"), "model": "houses:1"}
    )
    assert by_path.status_code == 201, by_path.text
    cancelled = client.post(f"/batch/jobs/{by_path.json()['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"


def test_errors_keep_their_status_and_keys_are_required(client: httpx.Client) -> None:
    assert client.get("/batch/jobs/" + "0" * 32).status_code == 404
    missing = client.post("/batch/jobs", json={"path": "/nowhere/x.csv", "model": "houses"})
    assert missing.status_code == 422 and "no such file" in missing.json()["detail"]
    unknown = client.post("/batch/uploads", params={"model": "nope"}, content=b"a\n1\n")
    assert unknown.status_code == 404
    anonymous = httpx.get(f"{client.base_url}/batch/jobs")
    assert anonymous.status_code == 401
