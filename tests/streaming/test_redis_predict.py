"""Rows in, predictions out, on a real redis-server: equal to the pipeline's own.

A consumer (the Python API, in a thread) reads one-row, several-row and split
messages and writes one output per message; bad messages go to ``in.dead`` with the
REST API's reasons; every scored row is in the prediction log under endpoint
``stream`` with the message id as request id; the metrics port answers.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from _streams import house_row, push, read_all, start_consumer, wait_for

from _yard import CHURN_ROWS, free_port
from modelyard.predlog import read_predictions
from modelyard.streaming import StreamConfig
from modelyard.streaming.redis import RedisTransport

if TYPE_CHECKING:
    import redis

    from _yard import Yard

pytestmark = pytest.mark.e2e


def test_regressor_predictions_equal_the_pipeline_and_bad_messages_are_dead_letters(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    rows = [house_row(i) for i in range(300)]
    messages: list[dict[str, Any] | bytes] = [
        {"id": f"r{i}", "row": row} for i, row in enumerate(rows)
    ]
    messages.append({"id": "batch", "rows": rows[:5]})
    messages.append({"id": 77, "columns": ["town", "size", "rooms"], "data": [["beta", 80.0, 2]]})
    messages += [
        b"not json",
        {"row": rows[0]},  # no id
        {"id": "missing", "row": {"size": 100.0, "town": "alpha"}},
        {"id": "wrong-type", "rows": [rows[0], {**rows[1], "size": "big"}]},
        {"id": "no-rows"},
    ]
    push(client, "in", messages)
    port = free_port()
    running = start_consumer(
        yard.settings, redis_url, model="houses", max_batch_rows=64, metrics_port=port
    )
    try:
        wait_for(
            lambda: client.xlen("out") + client.xlen("in.dead") >= len(messages), 120, "outputs"
        )
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        stats = running.stop()

    outputs = {doc["id"]: doc for doc in read_all(client, "out")}
    expected = yard.reference("houses:1", rows).values
    assert len(outputs) == 302 and client.xlen("out") == 302
    for index in range(300):
        doc = outputs[f"r{index}"]
        assert doc["model"] == "houses" and doc["version"] == 1
        assert doc["prediction"] == pytest.approx(expected[index], rel=1e-12)
        assert doc["redelivered"] is False and doc["consumer"] == "c1"
        assert doc["timing"]["queued_ms"] >= 0 and doc["timing"]["predict_ms"] > 0
    assert np.allclose(outputs["batch"]["predictions"], expected[:5], rtol=1e-12)
    split = yard.reference("houses:1", [{"size": 80.0, "rooms": 2, "town": "beta"}]).values
    assert outputs["77"]["predictions"] == pytest.approx(split.tolist(), rel=1e-12)

    dead = read_all(client, "in.dead")
    assert len(dead) == 5
    by_id = {doc["id"]: doc for doc in dead}
    not_json = next(doc for doc in dead if doc["message"] == "not json")
    assert not_json["error"]["status"] == 400 and not_json["id"] is None
    assert "not valid JSON" in not_json["error"]["message"]
    assert not_json["entry"]
    no_id = next(doc for doc in dead if doc["id"] is None and doc is not not_json)
    assert 'needs an "id"' in no_id["error"]["message"]
    missing = by_id["missing"]["error"]
    assert missing["status"] == 422
    assert missing["detail"] == [
        {
            "loc": ["body", "row", "rooms"],
            "msg": "column 'rooms': missing",
            "type": "missing_column",
        }
    ]
    assert "does not fit the model's inputs" in missing["message"]
    wrong = by_id["wrong-type"]["error"]["detail"]
    assert wrong[0]["loc"] == ["body", "rows", 1, "size"] and wrong[0]["type"] == "wrong_type"
    assert 'give "row"' in by_id["no-rows"]["error"]["message"]

    # everything acknowledged; the group has nothing pending
    assert client.xpending("in", "modelyard")["pending"] == 0
    assert stats.messages == len(messages) and stats.dead == 5 and stats.predicted == 302
    assert 'modelyard_stream_messages_total{outcome="predicted",stream="in"} 302.0' in metrics
    assert 'modelyard_stream_dead_letters_total{kind="missing_column",stream="in"} 1.0' in metrics
    assert 'modelyard_model_info{model="houses",runtime="sklearn",version="1"} 1.0' in metrics
    assert "modelyard_stream_batch_messages_bucket" in metrics

    logged = read_predictions(yard.settings, "houses")  # (other tests' rows too)
    logged = logged[logged["request_id"].isin(list(outputs))]
    assert set(logged["endpoint"]) == {"stream"}
    assert set(logged["request_id"]) == set(outputs)
    assert len(logged) == 300 + 5 + 1


def test_classifier_outputs_probabilities_equal_the_pipeline(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    rows = [dict(CHURN_ROWS[i % 2], tenure_months=float(i)) for i in range(120)]
    push(client, "in", [{"id": f"c{i}", "row": row} for i, row in enumerate(rows)])
    push(client, "in", [{"id": "both", "rows": rows[:2]}])
    running = start_consumer(yard.settings, redis_url, model="churn@production")
    try:
        wait_for(lambda: client.xlen("out") >= 121, 120, "outputs")
    finally:
        running.stop()
    outputs = {doc["id"]: doc for doc in read_all(client, "out")}
    expected = yard.reference("churn:1", rows)
    for index in range(120):
        doc = outputs[f"c{index}"]
        assert doc["prediction"] == expected.values[index]
        assert doc["classes"] == list(expected.classes)
        assert doc["probabilities"] == pytest.approx(expected.proba[index].tolist(), rel=1e-9)
    both = outputs["both"]
    assert both["predictions"] == list(expected.values[:2])
    assert np.allclose(both["probabilities"], expected.proba[:2], rtol=1e-9)


def test_a_batch_that_cannot_be_written_is_retried_not_lost(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    push(client, "in", [{"id": f"w{i}", "row": house_row(i)} for i in range(40)])
    client.set("out", "not a stream")  # every write to the out stream fails (WRONGTYPE)
    running = start_consumer(yard.settings, redis_url, model="houses", max_batch_rows=16)
    try:
        wait_for(lambda: client.xpending("in", "modelyard")["pending"] > 0, 30, "a batch in hand")
        time.sleep(1.0)  # several failed rounds
        assert client.type("out") == b"string"
        assert client.xpending("in", "modelyard")["pending"] > 0, "a failed batch was acked"
        client.delete("out")  # the out stream can be written again
        wait_for(lambda: client.xlen("out") >= 40, 60, "the outputs")
    finally:
        running.stop()
    outputs = read_all(client, "out")
    assert sorted(doc["id"] for doc in outputs) == sorted(f"w{i}" for i in range(40))
    # the batch that was retried says an output for its inputs may exist already
    assert [doc["redelivered"] for doc in outputs[:16]] == [True] * 16
    assert client.xpending("in", "modelyard")["pending"] == 0
    assert client.xlen("in.dead") == 0


class _SwallowingTransport(RedisTransport):
    """Redis, but the control-stream read swallows its cancellation, as redis-py's
    blocking reads sometimes do (redis/redis-py#2028): cancelling the consumer's event
    task then leaves it looping."""

    swallowed = 0

    async def next_events(self, block_ms: int) -> list[dict[str, Any]]:
        try:
            return await super().next_events(block_ms)
        except asyncio.CancelledError:
            type(self).swallowed += 1
            return []


def test_the_consumer_stops_when_a_read_swallows_its_cancellation(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    push(client, "in", [{"id": f"s{i}", "row": house_row(i)} for i in range(20)])
    config = StreamConfig(
        settings=yard.settings, broker=redis_url, model="houses", in_stream="in", out_stream="out"
    )
    transport = _SwallowingTransport(redis_url, config.streams())
    running = start_consumer(yard.settings, redis_url, model="houses", transport=transport)
    wait_for(lambda: client.xlen("out") >= 20, 120, "outputs")
    stats = running.stop()  # fails if the consumer is still running after 60 s
    assert stats.predicted == 20
    assert _SwallowingTransport.swallowed >= 1, "the event read was never cancelled"
