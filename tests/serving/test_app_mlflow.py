"""MLflow's scoring protocol: the request bodies exactly as MLflow's documentation shows them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer, Yard

Rows = list[dict[str, Any]]
JSON = {"Content-Type": "application/json"}


def _bodies(rows: Rows) -> dict[str, str]:
    """The four JSON forms of ``mlflow models serve``, built as MLflow's docs build them."""
    frame = pd.DataFrame(rows)
    return {
        "dataframe_split": json.dumps({"dataframe_split": frame.to_dict(orient="split")}),
        "dataframe_records": json.dumps({"dataframe_records": frame.to_dict(orient="records")}),
        "instances": json.dumps({"instances": rows}),
        "inputs": json.dumps({"inputs": {c: frame[c].tolist() for c in frame.columns}}),
        "split_with_params": json.dumps(
            {"dataframe_split": json.loads(frame.to_json(orient="split")), "params": {"k": 1}}
        ),
    }


@pytest.mark.parametrize(
    "form", ["dataframe_split", "dataframe_records", "instances", "inputs", "split_with_params"]
)
def test_json_forms_give_the_reference_predictions(
    module_server: LiveServer, yard: Yard, house_rows: Rows, form: str
) -> None:
    expected = yard.reference("houses:1", house_rows).values.tolist()
    with module_server.client() as client:
        response = client.post("/invocations", content=_bodies(house_rows)[form], headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}
    assert response.headers["x-model-name"] == "houses"
    assert response.headers["x-model-version"] == "1"


def test_csv_gives_the_reference_predictions(
    module_server: LiveServer, yard: Yard, house_rows: Rows
) -> None:
    csv = pd.DataFrame(house_rows).to_csv(index=False)
    with module_server.client() as client:
        response = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == yard.reference("houses:1", house_rows).values.tolist()


def test_classifier_answers_labels_as_a_pyfunc_model_does(
    start_server: StartServer, yard: Yard, churn_rows: Rows
) -> None:
    live = start_server(yard.settings, models=["churn", "houses"])  # the first one answers
    with live.client() as client:
        response = client.post("/invocations", json={"dataframe_records": churn_rows})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": yard.reference("churn:1", churn_rows).values.tolist()}


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "message"),
    [
        (
            '{"dataframe_split": {"columns": ["size"], "data": [[1.0]]}}',
            JSON,
            400,
            "BAD_REQUEST",
            "column 'rooms': missing",
        ),
        (
            '{"instances": [{"size": "big", "rooms": 1, "town": "alpha"}]}',
            JSON,
            400,
            "BAD_REQUEST",
            "expected a number",
        ),
        ('{"dataframe_records": [], "instances": []}', JSON, 400, "BAD_REQUEST", "exactly one of"),
        ("{not json", JSON, 400, "BAD_REQUEST", "not valid JSON"),
        ("size,rooms,town\n1.0,2", {"Content-Type": "text/csv"}, 400, "BAD_REQUEST", "row 0"),
        ("<xml/>", {"Content-Type": "application/xml"}, 415, "BAD_REQUEST", "text/csv"),
    ],
)
def test_errors_use_mlflow_shape(
    module_server: LiveServer,
    content: str,
    headers: dict[str, str],
    status: int,
    code: str,
    message: str,
) -> None:
    with module_server.client() as client:
        response = client.post("/invocations", content=content, headers=headers)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    assert message in body["message"]


def test_ping_health_and_version(module_server: LiveServer) -> None:
    with module_server.client() as client:
        ping, health, version = client.get("/ping"), client.get("/health"), client.get("/version")
    assert ping.status_code == health.status_code == version.status_code == 200
    from importlib.metadata import version as dist_version

    assert version.text == dist_version("modelyard")


def test_ping_is_503_until_the_model_is_loaded(start_server: StartServer, yard: Yard) -> None:
    live = start_server(yard.settings, models=["houses@nowhere"], wait=False)
    with live.client() as client:
        response = client.get("/ping")
    assert response.status_code == 503
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
