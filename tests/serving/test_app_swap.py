"""Hot swap under load, and refusal of a version whose artifact was tampered with.

A client keeps predicting while a new version is trained and promoted: every request
must succeed and be answered entirely by one version (its predictions equal that
version's reference predictions, and it names that version). Then a third version's
model file is corrupted and promoted: the server refuses it and keeps serving.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from modelyard import api
from modelyard.errors import IntegrityError

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer, Yard

Rows = list[dict[str, Any]]
ADMIN = "swap-admin-key"


@dataclass
class Answer:
    sent_at: float
    status: int
    body: dict[str, Any]


def _hammer(live: LiveServer, rows: Rows, stop: threading.Event, answers: list[Answer]) -> None:
    with live.client() as client:
        while not stop.is_set():
            sent_at = time.monotonic()
            response = client.post("/v1/models/houses/predict", json={"rows": rows})
            body = response.json() if response.status_code == 200 else {"error": response.text}
            answers.append(Answer(sent_at, response.status_code, body))


def _served_version(live: LiveServer) -> Any:
    with live.client() as client:
        return client.get("/v1/models/houses").json()


@pytest.mark.e2e
def test_hot_swap_never_mixes_versions_and_refuses_a_tampered_one(
    start_server: StartServer, fresh_yard: Yard, house_rows: Rows
) -> None:
    yard = fresh_yard
    yard.train_houses(max_iter=60)
    live = start_server(yard.settings, models=["houses"], poll_seconds=0.2, admin_key=ADMIN)
    expected = {1: yard.reference("houses:1", house_rows).values.tolist()}

    stop = threading.Event()
    answers: list[Answer] = []
    clients = [
        threading.Thread(target=_hammer, args=(live, house_rows, stop, answers)) for _ in range(2)
    ]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.3)
        yard.train_houses(max_iter=25)  # houses:2, promoted; the server polls every 0.2 s
        expected[2] = yard.reference("houses:2", house_rows).values.tolist()
        deadline = time.monotonic() + 60
        while _served_version(live)["version"] != 2:
            assert time.monotonic() < deadline, "houses:2 was never swapped in"
            time.sleep(0.05)
        swapped_at = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join()

    assert expected[1] != expected[2], "the two versions must predict differently"
    assert answers and all(answer.status == 200 for answer in answers), [
        a.body for a in answers if a.status != 200
    ][:3]
    for answer in answers:
        assert answer.body["predictions"] == expected[answer.body["version"]], answer.body
    versions = [answer.body["version"] for answer in answers]
    assert 1 in versions and 2 in versions
    after = [a.body["version"] for a in answers if a.sent_at > swapped_at]
    assert after and set(after) == {2}

    # a third version whose model file no longer matches its recorded checksum
    third = yard.train_houses(max_iter=40, promote=False)
    with api.open_registry(yard.settings) as registry:
        versions_by_ref = {ref: registry.get_version(ref) for ref in ("houses:1", "houses:2")}
        version = registry.get_version(third)
        digest = version.artifacts["model"].digest
        assert digest not in {v.artifacts["model"].digest for v in versions_by_ref.values()}
        path = registry.store.path(digest)
    assert path is not None
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    # promote verifies the artifacts and refuses; an operator forcing it (audited) must
    # still not get a broken version served
    api.promote(
        third, reason="test", allow_failed_gates=True, allow_corrupt=True, settings=yard.settings
    )

    with live.client() as client:
        reload = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN})
        after_reload = client.post("/v1/models/houses/predict", json={"rows": house_rows})
        listed = client.get("/v1/models").json()["models"][0]
        metrics = client.get("/metrics").text
    assert reload.status_code == 200
    change = reload.json()["changes"][0]
    assert change["status"] == "failed" and change["from_version"] == 2
    assert "modified or corrupted" in change["error"]
    assert digest not in change["error"] and str(yard.settings.home) not in change["error"]
    assert after_reload.status_code == 200
    assert after_reload.json()["version"] == 2
    assert after_reload.json()["predictions"] == expected[2]
    assert listed["version"] == 2 and listed["ready"] is True
    assert "refused houses:3" in listed["error"] and "modified or corrupted" in listed["error"]
    # no path, digest or registry URL on a public endpoint
    assert digest not in listed["error"] and str(yard.settings.home) not in listed["error"]
    assert 'modelyard_errors_total{kind="load",model="houses"}' in metrics


def _corrupt(yard: Yard, ref: str, role: str) -> str:
    """Flip one byte of ``ref``'s artifact ``role``; returns its digest."""
    with api.open_registry(yard.settings) as registry:
        digest = registry.get_version(ref).artifacts[role].digest
        path = registry.store.path(digest)
    assert path is not None
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return digest


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("role", "runtime"),
    [
        pytest.param("model", "onnx", id="pipeline-while-onnx-serves"),
        pytest.param("onnx", "sklearn", id="graph-while-the-pipeline-serves"),
    ],
)
def test_a_tampered_artifact_is_refused_at_promote_and_swap_whichever_runtime_serves(
    start_server: StartServer, fresh_yard: Yard, house_rows: Rows, role: str, runtime: str
) -> None:
    yard = fresh_yard
    yard.train_houses(max_iter=30)
    live = start_server(yard.settings, models=["houses"], runtime=runtime, admin_key=ADMIN)
    second = yard.train_houses(max_iter=20, promote=False)
    digest = _corrupt(yard, second, role)  # an artifact the serving runtime does not read
    with pytest.raises(IntegrityError, match=rf"(?s)refusing to promote {second}:.*- {role}: "):
        api.promote(second, reason="t", allow_failed_gates=True, settings=yard.settings)
    # an operator forcing it (audited) must still not get a broken version served
    api.promote(
        second, reason="t", allow_failed_gates=True, allow_corrupt=True, settings=yard.settings
    )
    with live.client() as client:
        reload = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN}).json()
        answer = client.post("/v1/models/houses/predict", json={"rows": house_rows})
        listed = client.get("/v1/models").json()["models"][0]
    assert reload["changes"][0]["status"] == "failed"
    assert answer.status_code == 200 and answer.json()["version"] == 1
    assert listed["version"] == 1 and "artifacts that do not match" in listed["error"]
    assert digest not in listed["error"] and str(yard.settings.home) not in listed["error"]


@pytest.mark.e2e
@pytest.mark.parametrize("role", ["model", "onnx"], ids=["pipeline", "graph"])
def test_a_tampered_version_is_refused_at_start_and_nothing_secret_is_shown(
    start_server: StartServer, fresh_yard: Yard, role: str
) -> None:
    yard = fresh_yard
    ref = yard.train_houses(max_iter=30)
    digest = _corrupt(yard, ref, role)
    live = start_server(yard.settings, models=["houses"], wait=False)
    with live.client() as client:
        deadline = time.monotonic() + 60
        while (
            "error" not in (listed := client.get("/v1/models").json()["models"][0])
            or not (listed["error"])
        ):
            assert time.monotonic() < deadline, listed
            time.sleep(0.1)
        bodies = [
            client.get("/readyz"),
            client.get("/ping"),
            client.post("/v1/models/houses/predict", json={"rows": [{"size": 1.0}]}),
        ]
    assert listed["ready"] is False
    for body in [str(listed), *(answer.text for answer in bodies)]:
        assert digest not in body and str(yard.settings.home) not in body
        assert "sqlite" not in body
    assert bodies[0].status_code == 503 and bodies[2].status_code == 503
