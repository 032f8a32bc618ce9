"""Numbers that overflow a derived feature get the same 422 on every runtime and path.

``size_per_room = size / rooms`` is a ratio feature: ``rooms: 1e-320`` is a finite
input whose ratio is infinite. scikit-learn estimators refuse infinite features (a 500
before the contract checked them) while the ONNX graph predicts from them (a 200): the
contract now refuses the row on both, naming the row and the column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from _projects import regression_project
from _yard import Yard
from modelyard import api
from modelyard.contract import RequestValidationError, decode_frame, decode_records
from modelyard.errors import DataValidationError
from modelyard.settings import Settings

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer

pytest.importorskip("onnxruntime")

RATIO = {"kind": "ratio", "name": "size_per_room", "numerator": "size", "denominator": "rooms"}
GOOD = {"size": 120.5, "rooms": 3, "town": "alpha"}
OVERFLOW = {"size": 120.5, "rooms": 1e-320, "town": "alpha"}


@pytest.fixture(scope="module")
def ratio_yard(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    """``houses:1`` with a ratio feature, exported to ONNX with parity, in production."""
    yard = Yard(settings=Settings(home=tmp_path_factory.mktemp("ratio") / "home"))
    folder = regression_project(
        yard.settings.home.parent / "houses",
        features={"categorical": ["town"], "transforms": [RATIO]},
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 30, "early_stopping": False},
        },
    )
    result = api.train(folder, settings=yard.settings)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=yard.settings)
    version = api.export_onnx(result.ref, settings=yard.settings, force=True)
    assert version.artifacts["onnx"].extra["parity"]["ok"] is True
    return yard


@pytest.fixture(scope="module", params=["sklearn", "onnx"])
def ratio_server(
    request: pytest.FixtureRequest, module_servers: StartServer, ratio_yard: Yard
) -> tuple[LiveServer, str]:
    live = module_servers(ratio_yard.settings, models=["houses"], runtime=request.param)
    return live, request.param


def _contract(yard: Yard) -> Any:
    from modelyard.contract import InputContract

    with api.open_registry(yard.settings) as registry:
        return InputContract.from_version(registry.get_version("houses:1"))


def test_the_contract_refuses_an_overflowing_ratio_on_both_fronts(ratio_yard: Yard) -> None:
    contract = _contract(ratio_yard)
    assert [ratio.name for ratio in contract.ratios] == ["size_per_room"]
    with pytest.raises(RequestValidationError) as caught:
        decode_records([GOOD, OVERFLOW], contract)
    (problem,) = caught.value.problems
    assert (problem.row, problem.column, problem.kind) == (1, "rooms", "non_finite_feature")
    assert "size_per_room" in problem.message and "further from 0" in problem.message
    frame = pd.DataFrame([GOOD, OVERFLOW]).astype({"size": "float64", "rooms": "float64"})
    with pytest.raises(DataValidationError, match="size_per_room"):
        decode_frame(frame, contract)
    # a zero denominator is the feature's own "missing", not an overflow
    columns, rows = decode_records([GOOD, {**GOOD, "rooms": 0}], contract)
    assert rows == 2 and columns["rooms"][1] == 0


@pytest.mark.e2e
def test_every_runtime_answers_422_naming_the_row_and_column(
    ratio_server: tuple[LiveServer, str],
) -> None:
    live, asked = ratio_server
    v2 = {
        "inputs": [
            {"name": "size", "shape": [2], "datatype": "FP64", "data": [120.5, 120.5]},
            {"name": "rooms", "shape": [2], "datatype": "FP64", "data": [3, 1e-320]},
            {"name": "town", "shape": [2], "datatype": "BYTES", "data": ["alpha", "alpha"]},
        ]
    }
    with live.client() as client:
        runtime = client.get("/v1/models").json()["models"][0]["runtime"]
        own = client.post("/v1/models/houses/predict", json={"rows": [GOOD, OVERFLOW]})
        infer = client.post("/v2/models/houses/infer", json=v2)
        mlflow = client.post("/invocations", json={"dataframe_records": [GOOD, OVERFLOW]})
        fine = client.post("/v1/models/houses/predict", json={"rows": [GOOD]})
    assert runtime == asked
    assert own.status_code == 422, own.text
    (item,) = own.json()["detail"]
    assert (item["type"], item["loc"]) == ("non_finite_feature", ["body", "rows", 1, "rooms"])
    assert infer.status_code == 400 and "size_per_room" in infer.text  # V2: 400 for any input
    assert mlflow.status_code == 400 and "size_per_room" in mlflow.text  # MLflow: 400 too
    assert fine.status_code == 200 and np.isfinite(fine.json()["predictions"][0])
