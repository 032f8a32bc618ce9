"""The monitoring tests' shared home: a trained model and a real prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _projects import regression_project, run_cli
from _yard import fresh_yard as fresh_yard  # a trained classifier for the estimate tests
from modelyard import api
from modelyard.predlog import PredictionLog
from modelyard.settings import Settings
from modelyard.types import RuntimeOutput

DAY1 = datetime(2025, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def houses(rows: int, seed: int, *, size_shift: float = 0.0) -> pd.DataFrame:
    """Rows like the training data of ``regression_project``, ``size`` shifted if asked."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "house_id": np.arange(rows) + 1000 * seed,
            "size": rng.uniform(40, 250, rows).round(1) + size_shift,
            "rooms": rng.integers(1, 7, rows),
            "town": rng.choice(["alpha", "beta", "gamma", "delta"], size=rows),
            "year": rng.choice([2019, 2020, 2021, 2022], size=rows),
        }
    )


def log_rows(
    predlog: PredictionLog, pipeline: Any, frame: pd.DataFrame, day: datetime, prefix: str
) -> None:
    """Predict ``frame`` with houses:1 and log it as requests of 10 rows through the day."""
    features = list(pipeline.feature_names_in_)
    values = pipeline.predict(frame[features])
    for number, start in enumerate(range(0, len(frame), 10)):
        part = frame.iloc[start : start + 10]
        columns = {name: part[name].to_numpy() for name in features}
        columns["house_id"] = part["house_id"].to_numpy()  # the id column, logged too
        predlog.log(
            model="houses",
            version=1,
            request_id=f"{prefix}{number}",
            received_at=day + timedelta(minutes=number),
            columns=columns,
            rows=len(part),
            output=RuntimeOutput(values=values[start : start + 10]),
            latency_ms=2.0,
            endpoint="predict",
        )


@pytest.fixture(scope="package")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with houses:1 trained, day 1 logged as in training, day 2 with size shifted."""
    tmp = tmp_path_factory.mktemp("monitor")
    home = tmp / "home"
    run_cli("train", str(regression_project(tmp / "houses")), "--no-onnx", home=home)
    settings = Settings(home=home)
    with PredictionLog.open(settings, flush_seconds=3600) as predlog:
        pipeline = api.load_model("houses:1", settings=settings)
        log_rows(predlog, pipeline, houses(300, 1), DAY1, "a")
        log_rows(predlog, pipeline, houses(300, 2, size_shift=60.0), DAY2, "b")
    return home
