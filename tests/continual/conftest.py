"""Shared pieces of the retraining tests: a trained, promoted ``sensor`` model, a way to
log live rows and their labels without a server, and :func:`simulation`, the shifted
stream served, labelled and retrained through real processes (for the e2e tests that
carry on from a retrained candidate: shadow, canary)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from _drifting import (
    FEATURES,
    ShiftingStream,
    now_utc,
    predict_rows,
    send_labels,
    serve,
    write_project,
)
from _projects import run_cli
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


#: The triggers of the simulation: input drift, a labelled error bound, label volume.
SIMULATION_TRIGGERS = {
    "on_drift": "feature",
    "performance": [{"metric": "rmse", "max": 8.0}],
    "min_new_labels": 300,
    "window": "200rows",
}


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulation` did, step by step, through the real command and server.

    ``sensor:1`` is in production; ``live`` are the rows after the shift that went
    through ``modelyard serve`` (``answers``: their request ids, rows, versions and
    predictions) and were labelled through ``/v1/feedback``; ``quiet`` is the
    ``retrain --if-due`` before any traffic, ``monitored`` the ``monitor --json`` after
    it, ``retrained`` the ``retrain --if-due --json`` that registered the candidate
    (``outcome``, its parsed JSON).
    """

    folder: Path
    settings: Settings
    stream: ShiftingStream
    project: Path
    live: pd.DataFrame
    answers: pd.DataFrame
    quiet: subprocess.CompletedProcess[str]
    monitored: subprocess.CompletedProcess[str]
    retrained: subprocess.CompletedProcess[str]

    @property
    def outcome(self) -> dict[str, Any]:
        """The retrain's JSON outcome."""
        return json.loads(self.retrained.stdout)  # type: ignore[no-any-return]


def run_simulation(folder: Path, *, live_rows: int = 400) -> Simulation:
    """Train and promote ``sensor:1`` on the history, serve it, send ``live_rows`` rows
    from after the shift and their labels, then monitor and ``retrain --if-due``."""
    stream = ShiftingStream(shift_at=now_utc() - timedelta(hours=2))
    project = write_project(folder / "sensor", stream, retrain=SIMULATION_TRIGGERS)
    home = folder / "home"
    run_cli("train", str(project), home=home)
    run_cli("promote", "sensor:1", "--reason", "first model", home=home)
    quiet = run_cli("retrain", "sensor", "--if-due", "--json", home=home, check=None)
    live = stream.rows(live_rows, after=True, seed=2, start=stream.shift_at)
    with (
        serve(home, "sensor", log=folder / "serve.log") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        answers = predict_rows(client, "sensor", live)
        stored = send_labels(client, "sensor", answers, live["y"])
        assert stored == len(live)
    monitored = run_cli(
        "monitor", "sensor@production", "--window", "200rows", "--json", home=home, check=None
    )
    retrained = run_cli("retrain", "sensor", "--if-due", "--json", home=home, check=None)
    return Simulation(
        folder, Settings(home=home), stream, project, live, answers, quiet, monitored, retrained
    )


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    """The simulation run once per test module (it starts a server: e2e tests only)."""
    return run_simulation(tmp_path_factory.mktemp("simulation"))
