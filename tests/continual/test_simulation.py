"""The retraining half of the continual-learning simulation, with a known ground truth.

A project is trained on a stream's history and served by a real ``modelyard serve``;
live rows from after a known shift (``tests/_drifting.py``) are predicted through it,
their true labels sent back as feedback; monitoring then finds the drift, the spec's
triggers fire, and ``modelyard retrain --if-due`` registers a candidate that the ground
truth shows better than production, while production stays where it was. The steps run
once, in the ``simulation`` fixture (``tests/continual/conftest.py``), which tests of
what follows a retraining can reuse.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _drifting import FEATURES, ShiftingStream
from _projects import run_cli
from continual.conftest import Simulation
from modelyard import api
from modelyard.registry.registry import Registry

pytestmark = pytest.mark.e2e


def _rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - truth) ** 2)))


def test_before_any_traffic_no_trigger_is_due(simulation: Simulation) -> None:
    assert simulation.quiet.returncode == 99, simulation.quiet.stderr
    assert json.loads(simulation.quiet.stdout)["status"] == "not_due"
    assert (simulation.answers["version"] == 1).all()


def test_monitoring_finds_the_input_that_shifted(simulation: Simulation) -> None:
    assert simulation.monitored.returncode == 1, simulation.monitored.stderr
    drifted = {
        column["column"]
        for version in json.loads(simulation.monitored.stdout)["versions"]
        for window in version["windows"]
        for column in window["features"]
        if column["drift"]
    }
    assert "x2" in drifted and "x1" not in drifted


def test_the_triggers_fire_and_a_candidate_is_registered(simulation: Simulation) -> None:
    assert simulation.retrained.returncode == 0, simulation.retrained.stderr
    outcome = simulation.outcome
    assert outcome["status"] == "candidate" and outcome["ref"] == "sensor:2"
    assert outcome["trigger"] == "drift"
    assert set(outcome["due"]) == {"drift", "performance", "labels"}
    assert outcome["production"] == "sensor:1" and outcome["alias"] == "candidate"
    with Registry.open(simulation.settings) as registry:
        candidate = registry.get_version("sensor:2")
        production = registry.get_version("sensor@production")
    assert production.version == 1, "a retrain never moves production"
    assert candidate.aliases == ["candidate"] and candidate.gates_passed
    lineage = candidate.lineage_record.retrain
    assert lineage is not None
    assert (lineage.trigger, lineage.production) == ("drift", "sensor:1")
    assert (lineage.source_rows, lineage.log_rows) == (600, len(simulation.live))
    assert lineage.stateful.continued and lineage.stateful.method == "warm_start"
    assert lineage.stateful.parent == "sensor:1"


def test_the_ground_truth_shows_the_candidate_better(simulation: Simulation) -> None:
    holdout = simulation.stream.rows(500, after=True, seed=3, start=simulation.stream.shift_at)
    truth = ShiftingStream.truth(holdout, after=True)
    settings = simulation.settings
    new = _rmse(api.load_model("sensor:2", settings=settings).predict(holdout[FEATURES]), truth)
    old = _rmse(api.load_model("sensor:1", settings=settings).predict(holdout[FEATURES]), truth)
    assert new < old / 3, (new, old)


def test_the_evidence_used_does_not_fire_again(simulation: Simulation) -> None:
    assert simulation.retrained.returncode == 0
    run_cli("retrain", "sensor", "--if-due", home=simulation.settings.home, check=99)
