"""The input contract on live servers: hostile text, limits, CSV numbers and ranges, in
every protocol; a refused request never fails the next one on the same connection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from _projects import regression_project
from modelyard import api
from modelyard.settings import Settings

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer

JSON = {"content-type": "application/json"}
# orjson refuses a lone surrogate; the stdlib fallback parser takes it, so the contract must
SURROGATE_ROW = b'{"size": 100.0, "rooms": 3, "town": "alpha\\ud800"}'


@pytest.mark.e2e
def test_lone_surrogates_are_refused_in_every_protocol(
    module_server: LiveServer, house_rows: list[dict[str, Any]]
) -> None:
    v2 = (
        b'{"inputs": [{"name": "size", "datatype": "FP64", "shape": [1], "data": [100.0]},'
        b'{"name": "rooms", "datatype": "INT64", "shape": [1], "data": [3]},'
        b'{"name": "town", "datatype": "BYTES", "shape": [1], "data": ["\\udfff"]}]}'
    )
    with module_server.client() as client:
        own = client.post(
            "/v1/models/houses/predict", content=b'{"rows": [' + SURROGATE_ROW + b"]}", headers=JSON
        )
        assert own.status_code == 422
        (item,) = own.json()["detail"]
        assert (item["type"], item["loc"]) == ("invalid_text", ["body", "rows", 0, "town"])
        assert "lone UTF-16 surrogate" in item["msg"]
        infer = client.post("/v2/models/houses/infer", content=v2, headers=JSON)
        assert infer.status_code == 400 and "surrogate" in infer.json()["error"]
        mlflow = b'{"dataframe_records": [' + SURROGATE_ROW + b"]}"
        invocations = client.post("/invocations", content=mlflow, headers=JSON)
        assert invocations.status_code == 400 and "surrogate" in invocations.json()["message"]
        named = v2.replace(b'["\\udfff"]', b'["alpha"]').replace(b"{", b'{"id": "\\ud800", ', 1)
        assert (
            client.post("/v2/models/houses/infer", content=named, headers=JSON).status_code == 400
        )
        # the same connection goes on serving
        ok = client.post("/v1/models/houses/predict", json={"rows": house_rows})
        assert ok.status_code == 200


@pytest.mark.e2e
def test_csv_numbers_follow_json_number_rules(module_server: LiveServer) -> None:
    csv = {"content-type": "text/csv"}
    with module_server.client() as client:
        good = client.post("/invocations", content=b"size,rooms,town\n1.2e2,3,alpha\n", headers=csv)
        assert good.status_code == 200
        for size in ("1_000", "\u0661\u0662", "+5", ".5", "NaN", "0x10"):
            text = f"size,rooms,town\n{size},3,alpha\n".encode()
            response = client.post("/invocations", content=text, headers=csv)
            assert response.status_code == 400, size
            assert "expected a number" in response.json()["message"]


@pytest.mark.e2e
def test_column_and_text_limits(start_server: StartServer, yard: Any) -> None:
    server = start_server(
        yard.settings, models=["houses"], max_columns_per_request=10, max_text_length=300
    )
    row = {"size": 100.0, "rooms": 3, "town": "alpha"}
    with server.client() as client:
        wide = {**row, **{f"x{i}": 0 for i in range(8)}}
        response = client.post("/v1/models/houses/predict", json={"rows": [wide]})
        assert response.status_code == 422
        assert response.json()["detail"][0]["type"] == "too_many_columns"
        split = {"columns": [*row, "size"], "data": [[*row.values(), 1.0]]}
        response = client.post("/v1/models/houses/predict", json=split)
        assert response.status_code == 422 and "named more than once" in response.text
        long = client.post("/v1/models/houses/predict", json={"rows": [{**row, "town": "a" * 301}]})
        assert long.status_code == 422 and long.json()["detail"][0]["type"] == "text_too_long"
        fine = client.post("/v1/models/houses/predict", json={"rows": [{**row, "x": 1}]})
        assert fine.status_code == 200


def _metric(text: str, name: str, model: str) -> float:
    found = re.search(rf'^{name}\{{model="{model}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.e2e
def test_out_of_range_warns_by_default(module_server: LiveServer) -> None:
    far = {"size": 1e6, "rooms": 3, "town": "alpha"}
    with module_server.client() as client:
        before = _metric(
            client.get("/metrics").text, "modelyard_out_of_range_values_total", "houses"
        )
        assert client.post("/v1/models/houses/predict", json={"rows": [far]}).status_code == 200
        after = _metric(
            client.get("/metrics").text, "modelyard_out_of_range_values_total", "houses"
        )
    assert after == before + 1


@pytest.mark.e2e
def test_out_of_range_is_refused_when_the_spec_says_so(
    start_server: StartServer, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home")
    folder = regression_project(
        tmp_path / "houses",
        data={
            "source": {"path": "data/houses.csv"},
            "id_columns": ["house_id"],
            "timestamp_column": "year",
            "out_of_range": "refuse",
        },
    )
    result = api.train(folder, settings=settings, onnx=False)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=settings)
    server = start_server(settings, models=["houses"])
    with server.client() as client:
        far = {"size": 1e6, "rooms": 3, "town": "alpha"}
        response = client.post("/v1/models/houses/predict", json={"rows": [far]})
        assert response.status_code == 422
        (item,) = response.json()["detail"]
        assert (item["type"], item["loc"]) == ("out_of_range", ["body", "rows", 0, "size"])
        assert "outside the training range" in item["msg"]
        near = {"size": 100.0, "rooms": 3, "town": "alpha"}
        assert client.post("/v1/models/houses/predict", json={"rows": [near]}).status_code == 200


@pytest.mark.e2e
def test_large_bodies_are_decoded_off_the_loop_in_every_protocol(
    start_server: StartServer, yard: Any
) -> None:
    from modelyard.serving.protocols import OFFLOAD_BYTES

    note = "an extra column the model ignores " * 2
    rows = [
        {"size": 40.0 + i % 200, "rooms": 1 + i % 6, "town": "alpha", "note": note}
        for i in range(6_000)
    ]
    expected = yard.reference("houses@production", rows).values
    csv = "size,rooms,town,note\n" + "".join(
        f"{r['size']},{r['rooms']},alpha,{note}\n" for r in rows
    )
    assert len(csv) > OFFLOAD_BYTES
    server = start_server(yard.settings, models=["houses"])
    with server.client() as client:
        own = client.post("/v1/models/houses/predict", json={"rows": rows})
        assert own.status_code == 200
        np.testing.assert_allclose(own.json()["predictions"], expected)
        mlflow = client.post(
            "/invocations", content=csv.encode(), headers={"content-type": "text/csv"}
        )
        assert mlflow.status_code == 200, mlflow.text[:300]
        np.testing.assert_allclose(mlflow.json()["predictions"], expected)
        bad = client.post("/v1/models/houses/predict", json={"rows": [*rows, {"size": "x"}]})
        assert bad.status_code == 422
