"""Routing policies on a stream consumer, on a real redis-server and the real registry.

``houses:1`` is in production and ``houses:2`` (predicting differently) is registered.
Each test stores a policy with :func:`~modelyard.registry.routing.set_policy` (what
``modelyard experiments set`` calls), and the consumer follows it without a restart:

- shadow: every output comes from the primary, while the candidate scores a copy of each
  message after the outputs are written; its predictions are in the prediction log under
  the message id (endpoint ``shadow``) and the differential test sees the difference;
- canary: stored while the consumer runs, it takes half of the keys (sticky per
  ``"key"``), and each output names the arm and the version that answered it;
- a failing canary: the primary answers for it (``"fallback"`` says why), the rule rolls
  it back in the registry (audited, actor ``modelyard-stream``), and then only the
  primary answers;
- composite: the message's ``"weights"`` give the hand-computed combination, and a weight
  out of its bounds makes a dead letter (422), not an internal error.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from _streams import RunningConsumer, house_row, push, read_all, start_consumer, wait_for

from modelyard.predlog.reader import read_predictions
from modelyard.registry.routing import get_policy, routing_events, set_policy
from serving.test_app_routing import BLEND, Crashes, _Installed
from serving.test_app_routing import registry as registry  # the server tests' fixtures
from serving.test_app_routing import two_houses as two_houses

if TYPE_CHECKING:
    import redis

    from _yard import Yard
    from modelyard.registry import Registry
    from modelyard.serving.routing import Route

pytestmark = pytest.mark.e2e


def _consumer(yard: Yard, redis_url: str) -> RunningConsumer:
    # policies (and aliases) are re-read every 0.2 s: a change needs no restart
    return start_consumer(yard.settings, redis_url, model="houses", poll_seconds=0.2)


def _route(running: RunningConsumer, revision: int | None = None) -> Route:
    """The consumer's route of ``houses`` (at ``revision``, once its poll found it)."""
    routes = running.consumer.routing.router.routes

    def ready() -> bool:
        route = routes.get("houses")
        return route is not None and revision in (None, route.record.revision)

    wait_for(ready, 60, f"the consumer to route by revision {revision}")
    return routes["houses"]


def _messages(count: int, start: int = 0, **fields: Any) -> list[dict[str, Any]]:
    return [{"id": f"m{i}", "row": house_row(i), **fields} for i in range(start, start + count)]


def _expected(yard: Yard, count: int) -> dict[int, np.ndarray]:
    rows = [house_row(i) for i in range(count)]
    return {version: yard.reference(f"houses:{version}", rows).values for version in (1, 2)}


def test_shadow_scores_a_copy_of_each_message_and_logs_the_pairs(
    two_houses: Yard, registry: Registry, redis_url: str, client: redis.Redis
) -> None:
    policy = {"shadow": {"ref": "houses:2", "max_in_flight": 64}}
    set_policy(registry, "houses", policy, actor="test", reason="shadow v2")
    expected = _expected(two_houses, 30)
    assert not np.allclose(expected[1], expected[2]), "the versions must predict differently"
    running = _consumer(two_houses, redis_url)
    try:
        stats = _route(running).shadow_stats
        push(client, "in", _messages(30))
        wait_for(lambda: client.xlen("out") >= 30, 60, "the outputs")
        wait_for(lambda: stats.copied == 30 and stats.in_flight == 0, 60, "the shadow copies")
        [entry] = running.consumer.routing.describe()
    finally:
        running.stop()  # flushes the prediction log
    outputs = read_all(client, "out")
    assert {(doc["version"], doc["arm"]) for doc in outputs} == {(1, "primary")}
    for doc in outputs:  # the answers are the primary's own, untouched by the shadow
        assert doc["prediction"] == pytest.approx(expected[1][int(doc["id"][1:])], rel=1e-12)
    shadow = entry["shadow"]
    assert (shadow["copied"], shadow["compared"], shadow["failed"]) == (30, 30, 0), shadow
    changed = int((~np.isclose(expected[1], expected[2], rtol=0, atol=1e-6)).sum())
    assert shadow["differential"]["rows"] == 30 and shadow["differential"]["changed"] == changed
    frame = read_predictions(two_houses.settings, "houses")
    stream = frame[frame["endpoint"] == "stream"]
    copies = frame[frame["endpoint"] == "shadow"]
    assert set(stream["version"]) == {1} and set(copies["version"]) == {2}
    assert set(copies["request_id"]) == set(stream["request_id"]) == {f"m{i}" for i in range(30)}
    paired = copies.set_index("request_id")["prediction"].sort_index()
    by_id = {f"m{i}": expected[2][i] for i in range(30)}
    np.testing.assert_allclose(paired.to_numpy(float), [by_id[i] for i in paired.index])


def test_a_canary_stored_while_streaming_takes_a_sticky_share_of_keys(
    two_houses: Yard, registry: Registry, redis_url: str, client: redis.Redis
) -> None:
    running = _consumer(two_houses, redis_url)
    try:
        push(client, "in", _messages(5))
        wait_for(lambda: client.xlen("out") >= 5, 60, "the outputs before the policy")
        policy = {"canary": {"ref": "houses:2", "share": 0.5, "sticky": True}}
        record = set_policy(registry, "houses", policy, actor="test", reason="canary at 50%")
        _route(running, record.revision)  # picked up by the poll: no restart
        keyed = [
            {"id": f"k{key}-{n}", "row": house_row(key), "key": f"customer-{key}"}
            for n in range(3)
            for key in range(40)
        ]
        push(client, "in", keyed)
        wait_for(lambda: client.xlen("out") >= 5 + len(keyed), 60, "the routed outputs")
    finally:
        running.stop()
    outputs = read_all(client, "out")
    assert all("arm" not in doc and doc["version"] == 1 for doc in outputs[:5])
    expected = _expected(two_houses, 40)
    arms: dict[str, set[str]] = {}
    for doc in outputs[5:]:
        key = int(doc["id"][1:].split("-")[0])
        assert doc["version"] == (2 if doc["arm"] == "canary" else 1), doc
        assert doc["prediction"] == pytest.approx(expected[doc["version"]][key], rel=1e-12)
        arms.setdefault(doc["id"].split("-")[0], set()).add(doc["arm"])
    assert len(arms) == 40 and all(len(seen) == 1 for seen in arms.values())  # sticky
    canary_keys = sum(seen == {"canary"} for seen in arms.values())
    assert 8 <= canary_keys <= 32  # a fair coin over 40 keys: far outside only by a bug


def test_a_failing_canary_is_rolled_back_automatically_and_audited(
    two_houses: Yard, registry: Registry, redis_url: str, client: redis.Redis
) -> None:
    policy = {
        "canary": {
            "ref": "houses:2",
            "share": 0.5,
            "rollback": {"max_error_rate": 0.2, "min_requests": 5, "window": 50},
        }
    }
    record = set_policy(registry, "houses", policy, actor="test", reason="canary at 50%")
    expected = _expected(two_houses, 120)
    running = _consumer(two_houses, redis_url)
    try:
        route = _route(running, record.revision)
        with _Installed(route.arms["canary"], Crashes):
            push(client, "in", _messages(60))
            wait_for(lambda: client.xlen("out") >= 60, 60, "the outputs")
            deadline = time.monotonic() + 30
            while get_policy(registry, "houses").policy.canary is not None:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the rollback was not written"
                time.sleep(0.05)
        _route(running, record.revision + 1)  # the policy without its canary
        push(client, "in", _messages(60, start=60))
        wait_for(lambda: client.xlen("out") >= 120, 60, "the outputs after the rollback")
    finally:
        running.stop()
    outputs = read_all(client, "out")
    assert client.xlen("in.dead") == 0
    for doc in outputs:  # every message answered, by the primary when the canary failed
        assert doc["version"] == 1
        assert doc["prediction"] == pytest.approx(expected[1][int(doc["id"][1:])], rel=1e-12)
    fallbacks = [doc for doc in outputs[:60] if doc["arm"] == "fallback"]
    assert fallbacks and all("canary houses:2 failed" in doc["fallback"] for doc in fallbacks)
    assert {doc["arm"] for doc in outputs[60:]} == {"primary"}
    event = routing_events(registry, "houses")[0]
    assert event.action == "rollback" and event.actor == "modelyard-stream"
    assert "error rate" in event.reason
    assert event.details["statistics"]["canary"]["window_errors"] >= 5


def test_a_composite_combines_by_the_message_weights_and_refuses_bad_ones(
    two_houses: Yard, registry: Registry, redis_url: str, client: redis.Redis
) -> None:
    set_policy(registry, "houses", BLEND, actor="test", reason="blend")
    expected = _expected(two_houses, 3)
    running = _consumer(two_houses, redis_url)
    try:
        _route(running)
        push(
            client,
            "in",
            [
                {"id": "m0", "row": house_row(0), "weights": {"alpha": 0.3, "beta": 1.2}},
                {"id": "m1", "row": house_row(1)},
                {"id": "m2", "row": house_row(2), "weights": {"alpha": 1.5}},
            ],
        )
        wait_for(lambda: client.xlen("out") + client.xlen("in.dead") >= 3, 60, "the answers")
    finally:
        running.stop()
    weighted, default = read_all(client, "out")
    assert weighted["arm"] == "composite" and weighted["weights"] == {"alpha": 0.3, "beta": 1.2}
    assert weighted["parts"] == ["houses:1", "houses:2"]
    hand = 0.3 * expected[1][0] + 1.2 * expected[2][0]
    assert weighted["prediction"] == pytest.approx(hand, rel=1e-12)
    assert default["prediction"] == pytest.approx(
        0.5 * expected[1][1] + 0.5 * expected[2][1], rel=1e-12
    )
    [dead] = read_all(client, "in.dead")
    assert dead["id"] == "m2" and dead["error"]["status"] == 422
    assert "outside its declared bounds" in dead["error"]["message"]
