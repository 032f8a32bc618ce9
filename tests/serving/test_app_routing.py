"""Several versions behind one name on a running server, by the registry's routing policy:
shadow (off the response path, failing or stalled without effect), canary (sticky,
rolled back automatically and audited), fallback (on a failed or stalled primary, said in
the reply) and composite (the weighted combination, checked by hand).

A policy changes without a restart: each test stores one in the registry and asks the
server to reload (the poller does the same every ``poll_seconds``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from _projects import run_cli
from _yard import HOUSE_ROWS, Yard
from modelyard.models.runtime import SklearnRuntime
from modelyard.predlog.reader import read_predictions
from modelyard.registry import Registry
from modelyard.registry.routing import clear_policy, get_policy, routing_events, set_policy
from modelyard.settings import Settings
from modelyard.types import Columns, RuntimeOutput

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer
    from modelyard.serving.manager import LoadedModel

pytestmark = pytest.mark.e2e

PREDICT = "/v1/models/houses/predict"


class Crashes(SklearnRuntime):
    """The real pipeline runtime, failing every call."""

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        raise RuntimeError("the candidate lost its session")


class Stalls(SklearnRuntime):
    """The real pipeline runtime, holding every call until the test opens the gate."""

    gate = threading.Event()

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        assert self.gate.wait(60)
        return super().predict(columns, rows)


@pytest.fixture(scope="module")
def two_houses(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    """``houses:1`` in production and ``houses:2`` (predicting differently) registered."""
    yard = Yard(settings=Settings(home=tmp_path_factory.mktemp("routing") / "home"))
    yard.train_houses(max_iter=60)
    yard.train_houses(max_iter=15, promote=False)
    return yard


ADMIN_KEY = "routing-admin-key"
#: A composite of the two versions (also used by the streaming tests).
BLEND = {
    "composite": {
        "parts": [
            {"ref": "houses:1", "weight": "alpha", "default": 0.5},
            {"ref": "houses:2", "weight": "beta", "default": 0.5, "max": 2.0},
        ]
    }
}


@pytest.fixture(scope="module")
def live(two_houses: Yard, start_module_server: StartServer) -> LiveServer:
    return start_module_server(two_houses.settings, models=["houses"], admin_key=ADMIN_KEY)


@pytest.fixture
def registry(two_houses: Yard) -> Iterator[Registry]:
    with Registry.open(two_houses.settings) as opened:
        yield opened
        clear_policy(opened, "houses", actor="test", reason="next test")


def _apply(live: LiveServer, registry: Registry, policy: dict[str, Any], reason: str) -> None:
    set_policy(registry, "houses", policy, actor="test", reason=reason)
    with live.client() as client:
        reloaded = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert reloaded.json()["routing"] == ["houses"], reloaded.text


def _arm(live: LiveServer, role: str) -> LoadedModel:
    router = live.app.state.serving.router
    return router.routes["houses"].arms[role]  # type: ignore[no-any-return]


def _primary(live: LiveServer) -> LoadedModel:
    return live.app.state.serving.manager.get("houses").current  # type: ignore[no-any-return]


class _Installed:
    """Serve ``loaded``'s own pipeline through a broken runtime until the block ends."""

    def __init__(self, loaded: LoadedModel, kind: type[SklearnRuntime]) -> None:
        self.loaded, self.kind = loaded, kind

    def __enter__(self) -> None:
        current = self.loaded.runtime
        assert isinstance(current, SklearnRuntime)
        self.healthy = current
        broken = self.kind(current.pipeline, current.feature_order)
        self.loaded.runtime = self.loaded.batcher.runtime = broken  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.loaded.runtime = self.loaded.batcher.runtime = self.healthy  # type: ignore[attr-defined]


def _shadow_stats(live: LiveServer) -> dict[str, Any]:
    """The shadow's statistics, once every copy offered has finished."""
    deadline = time.monotonic() + 60
    with live.client() as client:
        while True:
            [entry] = client.get("/v1/experiments").json()["experiments"]
            shadow = entry["shadow"]
            if shadow["in_flight"] == 0 or time.monotonic() > deadline:
                return shadow  # type: ignore[no-any-return]
            time.sleep(0.05)


def test_shadow_scores_copies_off_the_response_path(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    # room for every copy, however slowly a busy machine runs them
    _apply(live, registry, {"shadow": {"ref": "houses:2", "max_in_flight": 64}}, "shadow v2")
    primary = two_houses.reference("houses:1", HOUSE_ROWS).values
    candidate = two_houses.reference("houses:2", HOUSE_ROWS).values
    with live.client() as client:
        for _ in range(10):
            reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
            assert reply.status_code == 200 and reply.json()["version"] == 1
            assert reply.headers["x-modelyard-arm"] == "primary"
            np.testing.assert_allclose(reply.json()["predictions"], primary)
    shadow = _shadow_stats(live)
    assert (shadow["copied"], shadow["compared"], shadow["failed"]) == (10, 10, 0), shadow
    differential = shadow["differential"]
    assert differential["rows"] == 30
    changed = int((~np.isclose(primary, candidate, rtol=0, atol=1e-6)).sum())
    assert differential["changed"] == 10 * changed > 0
    # the shadow's predictions are in the prediction log, paired by request id
    live.app.state.serving.predlog.flush()
    frame = read_predictions(two_houses.settings, "houses")
    shadow_rows = frame[frame["endpoint"] == "shadow"]
    assert len(shadow_rows) == 30 and set(shadow_rows["version"]) == {2}
    assert set(shadow_rows["request_id"]) <= set(frame[frame["version"] == 1]["request_id"])
    with live.client() as client:
        metrics = client.get("/metrics").text
    assert (
        'modelyard_shadow_requests_total{model="houses",outcome="compared",version="2"} 10.0'
        in metrics
    )


def test_shadow_copies_waiting_together_are_scored_in_one_runtime_call(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    # a wait longer than the requests take: every copy joins the first batch
    policy = {"shadow": {"ref": "houses:2", "max_in_flight": 64, "batch_ms": 10_000}}
    _apply(live, registry, policy, "shadow v2")
    calls = _arm(live, "shadow").batcher.stats
    with live.client() as client:
        for _ in range(10):
            assert client.post(PREDICT, json={"rows": HOUSE_ROWS}).status_code == 200
        [entry] = client.get("/v1/experiments").json()["experiments"]
        assert entry["shadow"]["compared"] == 0  # still waiting for their batch
    shadow = _shadow_stats(live)
    assert (shadow["compared"], shadow["failed"]) == (10, 0), shadow
    done = _arm(live, "shadow").batcher.stats
    assert done.requests - calls.requests == 10
    assert done.batches - calls.batches == 1  # ten copies, one runtime call


def test_a_failing_shadow_never_fails_a_response(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    # room for every copy, however slowly a busy machine runs them
    _apply(live, registry, {"shadow": {"ref": "houses:2", "max_in_flight": 64}}, "shadow v2")
    primary = two_houses.reference("houses:1", HOUSE_ROWS).values
    with _Installed(_arm(live, "shadow"), Crashes), live.client() as client:
        for _ in range(8):
            reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
            assert reply.status_code == 200
            np.testing.assert_allclose(reply.json()["predictions"], primary)
        shadow = _shadow_stats(live)
    assert shadow["failed"] == 8 and shadow["compared"] == 0


def test_a_stalled_shadow_never_delays_a_response(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    policy = {"shadow": {"ref": "houses:2", "max_in_flight": 2, "timeout_ms": 1}}
    _apply(live, registry, policy, "shadow v2")
    Stalls.gate.clear()
    try:
        with _Installed(_arm(live, "shadow"), Stalls), live.client() as client:
            # Every answer arrives while the candidate is held: none waits for it.
            for _ in range(12):
                reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
                assert reply.status_code == 200 and reply.json()["version"] == 1
            [entry] = client.get("/v1/experiments").json()["experiments"]
            assert entry["shadow"]["in_flight"] == 2 and entry["shadow"]["skipped"] == 10
            Stalls.gate.set()
            shadow = _shadow_stats(live)
    finally:
        Stalls.gate.set()
    assert shadow["late"] == 2 and shadow["compared"] == 0


def test_canary_is_sticky_per_key_and_shares_traffic(live: LiveServer, registry: Registry) -> None:
    policy = {"canary": {"ref": "houses:2", "share": 0.5, "sticky": True}}
    _apply(live, registry, policy, "canary at 50%")
    arms: dict[str, set[str]] = {}
    with live.client() as client:
        for key in (f"customer-{i}" for i in range(40)):
            for _ in range(3):
                reply = client.post(
                    PREDICT, json={"rows": HOUSE_ROWS}, headers={"X-Routing-Key": key}
                )
                assert reply.status_code == 200
                body = reply.json()
                assert body["arm"] == reply.headers["x-modelyard-arm"]
                assert body["version"] == (2 if body["arm"] == "canary" else 1)
                arms.setdefault(key, set()).add(body["arm"])
    assert all(len(seen) == 1 for seen in arms.values())  # sticky
    canary_keys = sum(seen == {"canary"} for seen in arms.values())
    assert 8 <= canary_keys <= 32  # a fair coin over 40 keys: far outside only by a bug


def test_a_failing_canary_is_rolled_back_automatically_and_audited(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    policy = {
        "canary": {
            "ref": "houses:2",
            "share": 0.5,
            "rollback": {"max_error_rate": 0.2, "min_requests": 5, "window": 50},
        }
    }
    _apply(live, registry, policy, "canary at 50%")
    primary = two_houses.reference("houses:1", HOUSE_ROWS).values
    with _Installed(_arm(live, "canary"), Crashes), live.client() as client:
        for _ in range(60):
            reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
            # a failed canary request is answered by the primary, and says so
            assert reply.status_code == 200 and reply.json()["version"] == 1
            np.testing.assert_allclose(reply.json()["predictions"], primary)
            if reply.headers["x-modelyard-arm"] == "fallback":
                assert "canary houses:2 failed" in reply.headers["x-modelyard-fallback"]
    deadline = time.monotonic() + 30
    while get_policy(registry, "houses").policy.canary is not None:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the rollback was not written"
        time.sleep(0.05)
    event = routing_events(registry, "houses")[0]
    assert event.action == "rollback" and event.actor == "modelyard-serve"
    assert "error rate" in event.reason
    statistics = event.details["statistics"]["canary"]
    assert statistics["window_requests"] == 5 and statistics["window_errors"] == 5
    with live.client() as client:
        [entry] = client.get("/v1/experiments").json()["experiments"]
        assert "error rate" in entry["canary_stopped"]
        # after the rollback every request stays on the primary
        replies = [client.post(PREDICT, json={"rows": HOUSE_ROWS}) for _ in range(10)]
    assert {r.headers["x-modelyard-arm"] for r in replies} == {"primary"}


def test_fallback_answers_when_the_primary_fails(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    _apply(live, registry, {"fallback": {"ref": "houses:2"}}, "fallback v2")
    fallback = two_houses.reference("houses:2", HOUSE_ROWS).values
    with _Installed(_primary(live), Crashes), live.client() as client:
        reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
    assert reply.status_code == 200
    body = reply.json()
    assert body["version"] == 2 and body["arm"] == "fallback"
    assert body["fallback"] == reply.headers["x-modelyard-fallback"]
    assert "primary houses:1 failed (RuntimeError)" in body["fallback"]
    np.testing.assert_allclose(body["predictions"], fallback)
    with live.client() as client:  # a client's mistake is still its own 422, not a fallback
        bad = client.post(PREDICT, json={"rows": [{"size": "big"}]})
    assert bad.status_code == 422 and "x-modelyard-fallback" not in bad.headers


def test_fallback_answers_when_the_primary_stalls(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    _apply(live, registry, {"fallback": {"ref": "houses:2", "budget_ms": 300}}, "budget")
    fallback = two_houses.reference("houses:2", HOUSE_ROWS).values
    Stalls.gate.clear()
    try:
        with _Installed(_primary(live), Stalls), live.client() as client:
            reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
            assert not Stalls.gate.is_set()  # answered while the primary was still held
    finally:
        Stalls.gate.set()
    assert reply.status_code == 200 and reply.json()["version"] == 2
    assert "missed its 300 ms budget" in reply.headers["x-modelyard-fallback"]
    np.testing.assert_allclose(reply.json()["predictions"], fallback)


def test_composite_weights_give_the_hand_computed_combination(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    _apply(live, registry, BLEND, "blend")
    one = two_houses.reference("houses:1", HOUSE_ROWS).values
    two = two_houses.reference("houses:2", HOUSE_ROWS).values
    with live.client() as client:
        reply = client.post(PREDICT + "?alpha=0.3&beta=1.2", json={"rows": HOUSE_ROWS})
        default = client.post(PREDICT, json={"rows": HOUSE_ROWS})
        outside = client.post(PREDICT + "?alpha=1.5", json={"rows": HOUSE_ROWS})
        unknown = client.post(PREDICT + "?gamma=1", json={"rows": HOUSE_ROWS})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["arm"] == "composite" and body["weights"] == {"alpha": 0.3, "beta": 1.2}
    assert body["parts"] == ["houses:1", "houses:2"]
    np.testing.assert_allclose(body["predictions"], 0.3 * one + 1.2 * two, rtol=1e-12)
    np.testing.assert_allclose(default.json()["predictions"], 0.5 * one + 0.5 * two, rtol=1e-12)
    assert outside.status_code == 422 and "outside its declared bounds" in outside.text
    # query parameters the composite does not declare are ignored, not refused
    assert unknown.status_code == 200


def test_a_policy_naming_a_missing_version_is_refused(registry: Registry, tmp_path: Path) -> None:
    from modelyard.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="shadow"):
        set_policy(registry, "houses", {"shadow": {"ref": "houses:9"}}, actor="t", reason="x")


def test_experiments_cli_sets_lists_and_shows_the_live_experiment(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    home = two_houses.settings.home
    stored = run_cli(
        "experiments", "set", "houses", "--canary", "houses:2", "--share", "0.25",
        "--sticky", "--shadow", "houses:2", "--reason", "canary v2", "--json", home=home,
    )  # fmt: skip
    record = json.loads(stored.stdout)
    assert record["resolved"] == {"shadow": "houses:2", "canary": "houses:2"}
    refused = run_cli("experiments", "set", "houses", "--canary", "houses:2", "--reason", "x",
                      home=home, check=2)  # fmt: skip
    assert "--share" in refused.stderr and "Traceback" not in refused.stderr
    with live.client() as client:
        client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
        for i in range(8):
            client.post(PREDICT, json={"rows": HOUSE_ROWS}, headers={"X-Routing-Key": str(i)})
    listed = json.loads(run_cli("experiments", "list", "--json", home=home).stdout)
    assert listed[0]["model"] == "houses" and listed[0]["last_event"]["reason"] == "canary v2"
    shown = run_cli("experiments", "list", "--url", live.url, home=home).stdout
    assert "25.0% canary" in shown and "primary" in shown and "shadow houses:2" in shown
    live_json = json.loads(
        run_cli("experiments", "list", "--url", live.url, "--json", home=home).stdout
    )
    stats = live_json[0]["statistics"]
    assert sum(arm["requests"] for arm in stats.values()) == 8
    events = json.loads(run_cli("experiments", "events", "houses", "--json", home=home).stdout)
    assert events[0]["action"] == "set" and events[0]["actor"]
    run_cli("experiments", "clear", "houses", "--reason", "done", home=home)
    assert get_policy(registry, "houses") is None


def _experiment(live: LiveServer) -> dict[str, Any]:
    with live.client() as client:
        [entry] = client.get("/v1/experiments").json()["experiments"]
    return entry  # type: ignore[no-any-return]


def test_ab_test_on_the_canary_split_decides_sequentially_and_audits(
    live: LiveServer, registry: Registry
) -> None:
    policy = {"canary": {"ref": "houses:2", "share": 0.5, "ab": {"mde": 0.2, "sigma": 0.5}}}
    _apply(live, registry, policy, "A/B v2")
    with live.client() as client:
        answered = [client.post(PREDICT, json={"rows": HOUSE_ROWS}) for _ in range(120)]
        assert _experiment(live)["ab_test"]["decision"] == "not yet"
        # the candidate earns the reward, the primary does not: a planted effect
        items = [
            {"request_id": r.json()["request_id"], "reward": float(r.json()["arm"] == "canary")}
            for r in answered
        ] + [{"request_id": "never-issued", "reward": 1.0}]
        stored = client.post("/v1/models/houses/reward", json={"items": items}).json()
    assert stored == {"model": "houses", "stored": 120, "unmatched": 1}
    ab = _experiment(live)["ab_test"]
    assert ab["decision"] == "winner" and ab["p_value"] <= 0.05
    assert ab["design"]["max_per_arm"] > 0 and ab["n_control"] + ab["n_candidate"] == 120
    deadline = time.monotonic() + 30
    while routing_events(registry, "houses")[0].action != "decision":
        assert time.monotonic() < deadline, "the decision was not audited"
        time.sleep(0.05)
    event = routing_events(registry, "houses")[0]
    assert event.actor == "modelyard-serve" and event.details["ab_test"]["decision"] == "winner"


def test_bandit_moves_traffic_to_the_arm_that_earns_rewards(
    live: LiveServer, registry: Registry
) -> None:
    _apply(live, registry, {"bandit": {"refs": ["houses:2"]}}, "bandit")
    with live.client() as client:
        for _ in range(150):
            body = client.post(PREDICT, json={"rows": HOUSE_ROWS}).json()
            assert body["version"] == (2 if body["arm"] == "bandit:1" else 1)
            reward = 0.9 if body["arm"] == "bandit:1" else 0.1
            item = {"request_id": body["request_id"], "reward": reward}
            client.post("/v1/models/houses/reward", json={"items": [item]})
        refused = client.post(
            "/v1/models/houses/reward",
            json={"items": [{"request_id": body["request_id"], "reward": 3}]},
        )
    assert refused.status_code == 422 and "[0, 1]" in refused.text
    bandit = _experiment(live)["bandit"]
    assert bandit["arms"] == ["primary", "bandit:1"] and sum(bandit["pulls"]) == 150
    assert bandit["allocation"][1] > 0.6 and bandit["posterior_means"][1] > 0.7


def test_rank_orders_rows_and_interleaving_credits_clicks(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    primary = two_houses.reference("houses:1", HOUSE_ROWS).values
    with live.client() as client:
        plain = client.post("/v1/models/houses/rank", json={"rows": HOUSE_ROWS}).json()
    assert plain["ranking"] == [int(i) for i in np.argsort(-primary, kind="stable")]
    assert "teams" not in plain
    _apply(live, registry, {"interleave": {"ref": "houses:2"}}, "interleave v2")
    with live.client() as client:
        for _ in range(20):
            ranked = client.post("/v1/models/houses/rank", json={"rows": HOUSE_ROWS}).json()
            assert sorted(ranked["ranking"]) == [0, 1, 2] and len(ranked["teams"]) == 3
            # users here prefer whatever the candidate placed
            clicked = [p for p, team in enumerate(ranked["teams"]) if team == "candidate"]
            answer = client.post(
                "/v1/models/houses/rank/clicks",
                json={"request_id": ranked["request_id"], "clicked": clicked},
            ).json()
            assert answer["preferred"] == "candidate"
        again = client.post(
            "/v1/models/houses/rank/clicks",
            json={"request_id": ranked["request_id"], "clicked": [0]},
        )
    assert again.status_code == 422 and "waiting for clicks" in again.text
    interleaving = _experiment(live)["interleaving"]
    assert interleaving["impressions"] == 20 and interleaving["wins_b"] == 20
    assert interleaving["p_value"] < 0.001


def test_a_canary_whose_labelled_metric_falls_is_rolled_back(
    live: LiveServer, registry: Registry
) -> None:
    rule = {"max_error_rate": None, "min_metric": 0.5, "min_requests": 5}
    policy = {"canary": {"ref": "houses:2", "share": 0.5, "rollback": rule}}
    _apply(live, registry, policy, "canary judged by its reward")
    with live.client() as client:
        answered = [client.post(PREDICT, json={"rows": HOUSE_ROWS}).json() for _ in range(40)]
        items = [
            {"request_id": body["request_id"], "reward": float(body["arm"] != "canary")}
            for body in answered
        ]
        client.post("/v1/models/houses/reward", json={"items": items})
    deadline = time.monotonic() + 30
    while get_policy(registry, "houses").policy.canary is not None:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the rollback was not written"
        time.sleep(0.05)
    event = routing_events(registry, "houses")[0]
    assert event.action == "rollback" and "labelled metric 0.0000" in event.reason
    assert event.details["statistics"]["canary"]["mean_reward"] == 0.0


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_an_idle_shadow_runs_on_threads_under_sched_idle(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    _apply(live, registry, {"shadow": {"ref": "houses:2", "idle": True}}, "idle shadow")
    primary = two_houses.reference("houses:1", HOUSE_ROWS).values
    with live.client() as client:
        for _ in range(3):
            reply = client.post(PREDICT, json={"rows": HOUSE_ROWS})
            np.testing.assert_allclose(reply.json()["predictions"], primary)
    _shadow_stats(live)
    idle = [t for t in threading.enumerate() if t.name.startswith("modelyard-shadow-idle")]
    assert idle and all(
        os.sched_getscheduler(t.native_id) == os.SCHED_IDLE  # type: ignore[arg-type]
        for t in idle
    )


def test_a_canary_judged_by_labels_that_loses_is_rolled_back_by_itself(
    live: LiveServer, registry: Registry, two_houses: Yard
) -> None:
    ab = {"mde": 2000.0, "sigma": 5000.0, "metric": "labels", "act": True}
    policy = {"canary": {"ref": "houses:2", "share": 0.5, "ab": ab}}
    _apply(live, registry, policy, "canary judged by the labels")
    truth = two_houses.reference("houses:1", HOUSE_ROWS).values  # the primary is right
    with live.client() as client:
        refused = client.post(
            "/v1/models/houses/reward", json={"items": [{"request_id": "r", "reward": 1.0}]}
        )
        assert refused.status_code == 422 and "/v1/feedback" in refused.text
        for _ in range(100):
            stored = get_policy(registry, "houses")
            if stored is None or stored.policy.canary is None:
                break
            answered = client.post(PREDICT, json={"rows": HOUSE_ROWS}).json()
            items = [
                {"request_id": answered["request_id"], "row": row, "label": float(value)}
                for row, value in enumerate(truth)
            ]
            labelled = client.post("/v1/feedback", json={"model": "houses", "items": items})
            assert labelled.status_code == 200, labelled.text
            time.sleep(0.05)  # the rollback is written off the request path
    deadline = time.monotonic() + 30
    while get_policy(registry, "houses").policy.canary is not None:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the rollback was not written"
        time.sleep(0.05)
    event = routing_events(registry, "houses")[0]
    assert (event.action, event.actor) == ("rollback", "modelyard-serve")
    assert "automatic rollback" in event.reason and "worse" in event.reason
    ab_test = event.details["statistics"]["ab_test"]
    assert ab_test["decision"] == "loser" and ab_test["difference"] < 0
    assert registry.get_version("houses@production").version == 1
