"""A binary model with a decision threshold answers the same labels on every runtime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from _projects import classification_frame, threshold_project
from modelyard import api
from modelyard.models.fit import predict
from modelyard.settings import Settings

if TYPE_CHECKING:
    from conftest import StartServer


@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
def test_served_labels_follow_the_threshold(
    start_server: StartServer, tmp_path: Path, runtime: str
) -> None:
    settings = Settings(home=tmp_path / "home")
    result = api.train(threshold_project(tmp_path / "p", 0.2), settings=settings)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=settings)
    rows = classification_frame(rows=60, seed=21).drop(columns=["label", "customer_id"])
    reference = predict(api.load_model(result.ref, settings=settings), rows)
    churned = list(reference.classes or []).index("churned")
    expected = np.where(reference.proba[:, churned] >= 0.2, "churned", "stayed")  # type: ignore[index]
    assert reference.values.tolist() == expected.tolist()

    live = start_server(settings, models=["churn"], runtime=runtime)
    body = {"rows": rows.astype(object).where(rows.notna(), None).to_dict(orient="records")}
    with live.client() as client:
        answer = client.post("/v1/models/churn/predict", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected.tolist()
