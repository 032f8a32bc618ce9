"""Shared pieces of the retraining tests: a trained, promoted ``sensor`` model and a way
to log live rows and their labels without a server (the e2e simulation uses one)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from _drifting import FEATURES, ShiftingStream, now_utc, write_project
from modelyard import api
from modelyard.predlog import PredictionLog
from modelyard.predlog.feedback import FeedbackItem
from modelyard.settings import Settings
from modelyard.types import RuntimeOutput


def trained_sensor(
    folder: Path, *, retrain: dict[str, Any] | None = None, **options: Any
) -> tuple[Settings, ShiftingStream, Path]:
    """A home with ``sensor:1`` trained (no ONNX) and promoted; its project folder."""
    stream = ShiftingStream(shift_at=now_utc() - timedelta(hours=2))
    project = write_project(folder / "sensor", stream, retrain=retrain, **options)
    settings = Settings(home=folder / "home")
    api.train(project, settings=settings, onnx=False)
    api.promote("sensor:1", settings=settings, reason="first model")
    return settings, stream, project


def log_and_label(
    settings: Settings, frame: pd.DataFrame, *, prefix: str, at: datetime, labels: bool = True
) -> None:
    """Log ``frame`` as predictions of ``sensor:1`` (requests of 20 rows) and, if
    ``labels``, record its true ``y`` as feedback."""
    pipeline = api.load_model("sensor:1", settings=settings)
    values = pipeline.predict(frame[FEATURES])
    items = []
    with PredictionLog.open(settings, flush_seconds=3600) as predlog:
        for number, start in enumerate(range(0, len(frame), 20)):
            part = frame.iloc[start : start + 20]
            predlog.log(
                model="sensor",
                version=1,
                request_id=f"{prefix}{number}",
                received_at=at + timedelta(seconds=number),
                columns={name: part[name].to_numpy() for name in FEATURES},
                rows=len(part),
                output=RuntimeOutput(values=values[start : start + 20]),
                latency_ms=1.0,
                endpoint="predict",
            )
            items += [
                FeedbackItem(request_id=f"{prefix}{number}", row=row, label=float(label))
                for row, label in enumerate(part["y"])
            ]
        if labels:
            predlog.record_feedback("sensor", items)


@pytest.fixture
def sensor(tmp_path: Path) -> tuple[Settings, ShiftingStream, Path]:
    """``sensor:1`` in production, with no trigger declared."""
    return trained_sensor(tmp_path)
