"""The transport suite: the same tests on every broker modelyard streams over, each a
real server started by the tests (redis-server; Tansu, a Kafka-protocol broker;
nats-server with JetStream).

On each: predictions equal the pipeline's and bad messages are dead letters with the
REST API's reasons; a consumer killed with SIGKILL and restarted loses no message and
writes at most one batch of duplicates, marked as redeliveries; a promotion published
on the control stream switches versions; a poison message (delivered again and again,
never acknowledged) goes to the dead-letter stream once it reaches the delivery limit,
with the reason, and the messages after it are predicted.

What the Kafka runs prove: modelyard's Kafka adapter (aiokafka) speaks the Kafka
protocol to a real broker process over TCP: topics are created, the in topic is read by
a consumer group with offsets committed only after the outputs are acknowledged, and
delivery counts survive a consumer's death in the committed offsets' metadata. What
they do not prove: behaviour on Apache Kafka itself (Tansu is another implementation of
the protocol), durability across broker restarts or failover (the broker keeps
everything in memory, one node), or rebalancing across many partitions and members
under load. The NATS runs use nats-server itself (JetStream, file storage, one node).
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from _brokers import Broker, KafkaBroker, NatsBroker, RedisBroker
from _streams import (
    consumer_command,
    house_row,
    kill,
    start_consumer,
    stop,
    subprocess_env,
    wait_for,
)

from modelyard.settings import Settings
from modelyard.streaming import StreamConfig, open_transport

if TYPE_CHECKING:
    from _yard import Yard

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["redis", "kafka", "nats"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A test's streams on each broker in turn."""
    kinds = {
        "redis": ("redis_url", RedisBroker),
        "kafka": ("kafka_server", KafkaBroker),
        "nats": ("nats_server", NatsBroker),
    }
    fixture, kind = kinds[request.param]
    found = kind(request.getfixturevalue(fixture))
    yield found
    found.close()


def test_predictions_equal_the_pipeline_and_bad_messages_are_dead_letters(
    yard: Yard, broker: Broker
) -> None:
    rows = [house_row(i) for i in range(200)]
    messages: list[dict[str, Any] | bytes] = [{"id": f"k{i}", "row": r} for i, r in enumerate(rows)]
    messages += [b"{oops", {"id": "missing", "row": {"size": 1.0, "town": "alpha"}}]
    broker.create("in", 2)
    broker.push("in", messages)
    running = start_consumer(yard.settings, broker.url, model="houses", **broker.options())
    try:
        wait_for(lambda: len(broker.read_all("out")) >= 200, 120, "outputs")
        wait_for(lambda: len(broker.read_all("in.dead")) >= 2, 60, "dead letters")
    finally:
        stats = running.stop()
    outputs = {doc["id"]: doc for doc in broker.read_all("out")}
    expected = yard.reference("houses:1", rows).values
    assert len(outputs) == 200 == len(broker.read_all("out"))
    for index in range(200):
        doc = outputs[f"k{index}"]
        assert doc["version"] == 1 and doc["redelivered"] is False
        assert doc["prediction"] == pytest.approx(expected[index], rel=1e-12)
    dead = {doc["id"]: doc for doc in broker.read_all("in.dead")}
    assert dead[None]["error"]["status"] == 400
    assert dead["missing"]["error"]["detail"][0]["type"] == "missing_column"
    assert stats.predicted == 200 and stats.dead == 2


def _command(yard: Yard, broker: Broker, *args: str) -> list[str]:
    names = broker.options()
    command = consumer_command(yard.settings, broker.url, *args)
    for flag, key in (("--in", "in_stream"), ("--out", "out_stream")):
        command[command.index(flag) + 1] = names[key]
    return command + ["--group", names["group"], "--events-stream", names["events_stream"]]


def test_sigkill_then_restart_loses_nothing(yard: Yard, broker: Broker) -> None:
    total, batch = 6000, 50
    broker.create("in", 1)
    broker.push("in", [{"id": f"m{i}", "row": house_row(i)} for i in range(total)])
    command = _command(yard, broker, "--max-batch-rows", str(batch), "--claim-idle-ms", "1000")
    env = subprocess_env()
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: broker.count("out") >= 100 or first.poll() is not None, 120, "outputs")
        assert first.poll() is None, first.communicate()[1][-3000:]
    finally:
        kill(first)
    assert broker.count("out") < total, "it finished before it was killed"
    second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: (
                len({d["id"] for d in broker.read_all("out")}) >= total or second.poll() is not None
            ),
            180,
            "every output",
        )
    finally:
        code, stderr = stop(second)
    assert code == 0, stderr[-3000:]
    outputs = broker.read_all("out")
    ids = collections.Counter(doc["id"] for doc in outputs)
    assert set(ids) == {f"m{i}" for i in range(total)}
    assert len(outputs) - len(ids) <= batch, "more duplicates than one batch"
    seen: set[str] = set()
    for doc in outputs:
        if doc["id"] in seen:
            assert doc["redelivered"] is True, doc
        seen.add(doc["id"])


def test_promotion_event_switches_versions(fresh_yard: Yard, broker: Broker) -> None:
    yard = fresh_yard
    names = broker.options()
    yard.settings = Settings(
        home=yard.settings.home, events_url=broker.url, events_stream=names["events_stream"]
    )
    yard.train_houses(max_iter=60)
    broker.create("in", 1)
    running = start_consumer(yard.settings, broker.url, model="houses", **names)
    try:
        broker.push("in", [{"id": "before", "row": house_row(1)}])
        wait_for(lambda: len(broker.read_all("out")) >= 1, 60, "the first output")
        yard.train_houses(max_iter=25)  # houses:2, promoted: an event on the control stream
        wait_for(lambda: running.consumer.version == 2, 60, "the switch to houses:2")
        broker.push("in", [{"id": "after", "row": house_row(1)}])
        wait_for(lambda: len(broker.read_all("out")) >= 2, 60, "the second output")
    finally:
        running.stop()
    outputs = {doc["id"]: doc for doc in broker.read_all("out")}
    assert outputs["before"]["version"] == 1 and outputs["after"]["version"] == 2
    expected = yard.reference("houses:2", [house_row(1)]).values[0]
    assert outputs["after"]["prediction"] == pytest.approx(expected, rel=1e-12)


def test_a_poison_message_is_dead_lettered_at_the_delivery_limit(
    yard: Yard, broker: Broker
) -> None:
    limit = 3
    broker.create("in", 1)
    broker.push("in", [{"id": "poison", "row": house_row(0)}])
    config = StreamConfig(
        settings=yard.settings,
        broker=broker.url,
        model="houses",
        consumer="c1",
        claim_idle_ms=500,
        **broker.options(),
    )

    async def die_holding_it() -> None:
        """A member that reads the message and dies before acknowledging it: the
        broker delivers it again (and counts), as after a crash on it."""
        transport = open_transport(config.broker, config.streams())
        await transport.open()
        try:
            for _ in range(40):
                if await transport.read(10, 250):
                    return
            raise AssertionError("the message was not delivered again")
        finally:
            await transport.close()

    for _ in range(limit):
        asyncio.run(die_holding_it())
    broker.push("in", [{"id": f"after{i}", "row": house_row(i)} for i in range(5)])
    running = start_consumer(
        yard.settings, broker.url, model="houses", max_deliveries=limit, claim_idle_ms=500,
        **broker.options(),
    )  # fmt: skip
    try:
        wait_for(lambda: len(broker.read_all("in.dead")) >= 1, 60, "the dead letter")
        wait_for(lambda: len(broker.read_all("out")) >= 5, 60, "the later messages' outputs")
    finally:
        stats = running.stop()
    (dead,) = broker.read_all("in.dead")
    assert dead["id"] == "poison" and dead["deliveries"] == limit + 1
    assert dead["error"]["detail"][0]["type"] == "delivery_limit"
    assert f"delivered {limit + 1} times without being acknowledged" in dead["error"]["message"]
    assert "--max-deliveries" in dead["error"]["message"]
    assert sorted(doc["id"] for doc in broker.read_all("out")) == [f"after{i}" for i in range(5)]
    assert stats.dead == 1 and stats.predicted == 5
