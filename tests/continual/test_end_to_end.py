"""The whole continual-learning loop in one scenario, with a known ground truth, through
real processes and the real registry.

The stream of ``tests/_drifting.py`` shifts at a known time. The ``simulation`` fixture
(``tests/continual/conftest.py``) serves production on it, labels the live rows,
lets ``modelyard monitor`` find the drift and ``modelyard retrain --if-due`` register
``sensor:2`` as the candidate. From there, on a new ``modelyard serve`` process:

1. a **shadow** policy (``modelyard experiments set``) has the candidate score a copy
   of every live request; the paired predictions are logged and, once labelled,
   ``modelyard monitor`` shows the candidate's error on the same requests far below
   production's (and the server's live differential test shows them differ);
2. a **canary** whose A/B test scores the true labels of ``/v1/feedback`` and acts on
   its decision promotes the candidate by itself: the production alias moves, and the
   server answers with it;
3. a deliberately worse version (trained on shuffled labels) put on canary the same
   way is rolled back by itself, and production stays.

Every decision is asserted in the audit trails (routing events, alias moves).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd
import pytest

from _drifting import predict_rows, send_labels, serve, write_project
from _projects import run_cli
from continual.conftest import Simulation
from modelyard.predlog.reader import read_predictions
from modelyard.registry.registry import Registry
from modelyard.registry.routing import get_policy, routing_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

T = TypeVar("T")

ADMIN_KEY = "end-to-end-admin-key"
SERVER = "modelyard-serve"

#: The canary's A/B test on the labels: minus the absolute error per labelled row, a
#: difference of 5 to find (the shift costs production about 20), acted on.
LABELLED_AB = {"mde": 5.0, "sigma": 10.0, "alpha": 0.01, "metric": "labels", "act": True}


def _wait_for(what: str, probe: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Call ``probe`` until ``done`` says its value will do; generous, as a loaded
    machine may be slow (the message shows the last value)."""
    deadline = time.monotonic() + 180
    while not done(value := probe()):
        assert time.monotonic() < deadline, f"waited 180 s for {what}; last: {value!r}"
        time.sleep(0.2)
    return value


def _set_policy(client: httpx.Client, home: Path, policy: dict[str, Any], reason: str) -> None:
    """Store ``policy`` with ``modelyard experiments set``; have the server reload it now
    (its poller may have been first) and wait until it routes by that revision."""
    stored = run_cli("experiments", "set", "sensor", "--policy", json.dumps(policy),
                     "--reason", reason, "--json", home=home)  # fmt: skip
    revision = json.loads(stored.stdout)["revision"]
    reloaded = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reloaded.status_code == 200, reloaded.text
    _wait_for(
        f"the server to route by revision {revision}",
        lambda: client.get("/v1/experiments").json()["experiments"],
        lambda entries: [e.get("revision") for e in entries] == [revision],
    )


def _experiment(client: httpx.Client) -> dict[str, Any]:
    [entry] = client.get("/v1/experiments").json()["experiments"]
    return entry  # type: ignore[no-any-return]


class Traffic:
    """Live rows from after the shift, a new seed per batch, predicted and labelled."""

    def __init__(self, simulation: Simulation, client: httpx.Client) -> None:
        self.stream, self.client, self.seed = simulation.stream, client, 100

    def batch(self, rows: int = 200) -> pd.DataFrame:
        """Predict ``rows`` new rows (requests of 20), then send their true labels;
        returns the answers (request id, row, version, prediction) with ``y``."""
        self.seed += 1
        start = self.stream.shift_at + timedelta(hours=1)
        live = self.stream.rows(rows, after=True, seed=self.seed, start=start)
        answers = predict_rows(self.client, "sensor", live)
        assert send_labels(self.client, "sensor", answers, live["y"]) == rows
        return answers.assign(y=live["y"])

    def until(self, what: str, done: Callable[[], bool], *, batches: int = 40) -> int:
        """Send batches until ``done()``; returns how many it took."""
        for sent in range(1, batches + 1):
            self.batch()
            if _wait_for_a_moment(done):
                return sent
        raise AssertionError(f"{batches} batches of live traffic and no {what}")


def _wait_for_a_moment(done: Callable[[], bool]) -> bool:
    """Whether ``done()`` holds within a few seconds (decisions are written off the
    request path, so the registry may lag the last answer a little)."""
    deadline = time.monotonic() + 5
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def server(simulation: Simulation) -> Iterator[httpx.Client]:
    """A new ``modelyard serve sensor`` (production, followed) on the simulation's home."""
    with (
        serve(
            simulation.settings.home,
            "sensor",
            log=simulation.folder / "end-to-end.log",
            extra=("--admin-key", ADMIN_KEY, "--poll-seconds", "1"),
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


def _production(registry: Registry) -> int:
    return registry.get_version("sensor@production").version


def test_drift_retrain_shadow_canary_promote_then_roll_back_a_worse_one(
    simulation: Simulation, server: httpx.Client
) -> None:
    home, settings = simulation.settings.home, simulation.settings
    # Monitoring fired on the shifted stream, and the retrain registered the candidate.
    assert simulation.monitored.returncode == 1, simulation.monitored.stderr
    assert simulation.outcome["status"] == "candidate"
    assert simulation.outcome["ref"] == "sensor:2"
    traffic = Traffic(simulation, server)
    registry = Registry.open(settings)
    try:
        assert _production(registry) == 1

        # 1. Shadow: the candidate scores copies; labelled, it is better on live traffic.
        since = datetime.now(UTC)
        # room and time for every copy, however slowly a loaded machine runs them
        policy = {"shadow": {"ref": "sensor@candidate", "max_in_flight": 64, "timeout_ms": 6e4}}
        _set_policy(server, home, policy, "retrained candidate on live traffic")
        answers = pd.concat([traffic.batch(150), traffic.batch(150)])
        assert (answers["version"] == 1).all()  # the shadow never answers
        requests = answers["request_id"].nunique()
        shadow = _wait_for(
            "every shadow copy to finish",
            lambda: _experiment(server)["shadow"],
            lambda found: found["copied"] == requests and found["in_flight"] == 0,
        )
        assert shadow["compared"] == requests, shadow
        assert (shadow["failed"], shadow["skipped"]) == (0, 0), shadow
        assert shadow["differential"]["rows"] == 300 and shadow["differential"]["changed"] > 0
        logged = _wait_for(
            "the paired predictions in the prediction log",
            lambda: read_predictions(settings, "sensor", start=since),
            lambda frame: len(frame) == 600,
        )
        paired = logged[logged["endpoint"] == "shadow"]
        assert set(paired["version"]) == {2}
        assert set(paired["request_id"]) == set(answers["request_id"])
        monitored = run_cli("monitor", "sensor", "--since", since.isoformat(), "--window",
                            "300rows", "--json", home=home, check=None)  # fmt: skip
        assert monitored.returncode in (0, 1), monitored.stderr
        rmse = {
            version["ref"]: version["windows"][0]["performance"]["metrics"]["rmse"]
            for version in json.loads(monitored.stdout)["versions"]
        }
        assert set(rmse) == {"sensor:1", "sensor:2"}
        assert rmse["sensor:2"] < rmse["sensor:1"] / 3, rmse

        # 2. Canary, judged by the labels: the candidate wins and is promoted by itself.
        canary = {"ref": "sensor@candidate", "share": 0.5, "ab": LABELLED_AB}
        _set_policy(server, home, {"canary": canary}, "canary the retrained candidate")
        traffic.until("promotion", lambda: _production(registry) == 2)
        promoted = routing_events(registry, "sensor")[0]
        assert (promoted.action, promoted.actor) == ("promote", SERVER)
        assert "automatic promotion" in promoted.reason and "better" in promoted.reason
        ab = promoted.details["statistics"]["ab_test"]
        assert ab["decision"] == "winner" and ab["p_value"] <= LABELLED_AB["alpha"]
        assert ab["difference"] > LABELLED_AB["mde"]  # error smaller by more than declared
        assert promoted.details["canary_version"] == "sensor:2"
        move = registry.audit_log("sensor")[0]
        assert (move.action, move.actor, move.alias) == ("promote", SERVER, "production")
        assert (move.from_version, move.to_version) == (1, 2)
        assert move.id == promoted.details["audit_id"]
        stored = get_policy(registry, "sensor")
        assert stored is not None and stored.policy.canary is None
        after = _wait_for(
            "the server answering with the promoted version",
            lambda: traffic.batch(40),
            lambda answers: set(answers["version"]) == {2},
        )
        # production errs by about 20 since the shift (tests/_drifting.py); no longer
        assert float(np.abs(after["prediction"] - after["y"]).mean()) < 5

        # 3. A deliberately worse version on canary is rolled back by itself.
        worse = _worse_candidate(simulation)
        assert worse == "sensor:3"
        canary = {"ref": worse, "share": 0.5, "ab": LABELLED_AB}
        _set_policy(server, home, {"canary": canary}, "canary a version trained on noise")
        traffic.until(
            "rollback",
            lambda: (p := get_policy(registry, "sensor")) is not None and p.policy.canary is None,
        )
        rolled = routing_events(registry, "sensor")[0]
        assert (rolled.action, rolled.actor) == ("rollback", SERVER)
        assert "automatic rollback" in rolled.reason and "worse" in rolled.reason
        ab = rolled.details["statistics"]["ab_test"]
        assert ab["decision"] == "loser" and ab["p_value"] <= LABELLED_AB["alpha"]
        assert rolled.details["canary_version"] == worse
        assert _production(registry) == 2  # production stays
        replies = traffic.batch(40)
        assert set(replies["version"]) == {2}

        # Every decision, in order, in the audit trail.
        events = list(reversed(routing_events(registry, "sensor")))
        assert [e.action for e in events] == ["set", "set", "promote", "set", "rollback"]
        assert [e.actor == SERVER for e in events] == [False, False, True, False, True]
        assert [e.revision for e in events] == [1, 2, 3, 4, 5]
    finally:
        registry.close()


def _worse_candidate(simulation: Simulation) -> str:
    """Train ``sensor`` again on the history with its labels shuffled (no gates); the
    registered version's reference."""
    project = write_project(simulation.folder / "worse", simulation.stream, gates=[])
    data = project / "data" / "history.csv"
    frame = pd.read_csv(data)
    frame["y"] = np.random.default_rng(11).permutation(frame["y"].to_numpy())
    frame.to_csv(data, index=False)
    trained = run_cli("train", str(project), "--json", home=simulation.settings.home)
    return str(json.loads(trained.stdout)["ref"])
