"""The retraining half of the continual-learning simulation, with a known ground truth.

A project is trained on a stream's history and served by a real ``modelyard serve``;
live rows from after a known shift (``tests/_drifting.py``) are predicted through it,
their true labels sent back as feedback; monitoring then finds the drift, the spec's
triggers fire, and ``modelyard retrain --if-due`` registers a candidate that the ground
truth shows better than production, while production stays where it was.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from _drifting import ShiftingStream, now_utc, predict_rows, send_labels, serve, write_project
from _projects import run_cli
from modelyard import api
from modelyard.registry.registry import Registry
from modelyard.settings import Settings

pytestmark = pytest.mark.e2e

RETRAIN = {
    "on_drift": "feature",
    "performance": [{"metric": "rmse", "max": 8.0}],
    "min_new_labels": 300,
    "window": "200rows",
}


def _rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - truth) ** 2)))


def test_a_shift_fires_monitoring_and_retraining_registers_a_better_candidate(
    tmp_path: Path,
) -> None:
    now = now_utc()
    stream = ShiftingStream(shift_at=now - timedelta(hours=2))
    project = write_project(tmp_path / "sensor", stream, retrain=RETRAIN)
    home = tmp_path / "home"
    run_cli("train", str(project), home=home)
    run_cli("promote", "sensor:1", "--reason", "first model", home=home)

    # Nothing logged yet: no trigger is due, nothing is registered (exit 99).
    quiet = run_cli("retrain", "sensor", "--if-due", "--json", home=home, check=99)
    assert json.loads(quiet.stdout)["status"] == "not_due"

    live = stream.rows(400, after=True, seed=2, start=stream.shift_at)
    with (
        serve(home, "sensor", log=tmp_path / "serve.log") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        answers = predict_rows(client, "sensor", live)
        assert (answers["version"] == 1).all()
        assert send_labels(client, "sensor", answers, live["y"]) == len(live)

    # Monitoring, run by hand, finds the input drift the shift brought.
    monitored = run_cli(
        "monitor", "sensor@production", "--window", "200rows", "--json", home=home, check=1
    )
    drifted = {
        column["column"]
        for version in json.loads(monitored.stdout)["versions"]
        for window in version["windows"]
        for column in window["features"]
        if column["drift"]
    }
    assert "x2" in drifted and "x1" not in drifted

    done = run_cli("retrain", "sensor", "--if-due", "--json", home=home, check=0)
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "candidate" and outcome["ref"] == "sensor:2"
    assert outcome["trigger"] == "drift"
    assert set(outcome["due"]) == {"drift", "performance", "labels"}
    assert outcome["production"] == "sensor:1" and outcome["alias"] == "candidate"

    settings = Settings(home=home)
    with Registry.open(settings) as registry:
        candidate = registry.get_version("sensor:2")
        production = registry.get_version("sensor@production")
    assert production.version == 1, "a retrain never moves production"
    assert candidate.aliases == ["candidate"] and candidate.gates_passed
    lineage = candidate.lineage_record.retrain
    assert lineage is not None
    assert (lineage.trigger, lineage.production) == ("drift", "sensor:1")
    assert (lineage.source_rows, lineage.log_rows) == (600, 400)
    assert lineage.stateful.continued and lineage.stateful.method == "warm_start"
    assert lineage.stateful.parent == "sensor:1"

    # The ground truth: on fresh rows after the shift, the candidate is far closer.
    holdout = stream.rows(500, after=True, seed=3, start=now)
    truth = ShiftingStream.truth(holdout, after=True)
    features = holdout[["event_id", "x1", "x2", "region"]]
    new = _rmse(api.load_model("sensor:2", settings=settings).predict(features), truth)
    old = _rmse(api.load_model("sensor:1", settings=settings).predict(features), truth)
    assert new < old / 3, (new, old)

    # The evidence was used: checked again, nothing new is due.
    run_cli("retrain", "sensor", "--if-due", home=home, check=99)
