"""The Kafka transport against a real Kafka-protocol broker: Tansu, started by the tests.

What this proves: modelyard's Kafka adapter (aiokafka) speaks the Kafka protocol to a
real broker process over TCP: topics are created, the in topic is read by a consumer
group with offsets committed only after the outputs are acknowledged, predictions equal
the pipeline's, dead letters carry the REST API's reasons, a consumer killed with
SIGKILL and restarted loses no message (its uncommitted batch is read again, marked
as redelivered), and a promotion published on the control topic switches versions.
What it does not prove: behaviour on Apache Kafka itself (Tansu is another
implementation of the protocol), durability across broker restarts or failover (the
broker keeps everything in memory, one node), or rebalancing across many partitions
and members under load.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import threading
import uuid
from typing import TYPE_CHECKING, Any

import orjson
import pytest
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

if TYPE_CHECKING:
    from _yard import Yard

pytestmark = pytest.mark.e2e


class Topics:
    """A producer and a reader of a test's topics, on an event loop in a thread."""

    def __init__(self, broker: str) -> None:
        self.servers = broker.split("://", 1)[1]
        self.prefix = uuid.uuid4().hex[:8]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.producer: Any = self.run(self._producer())
        self.readers: dict[str, tuple[Any, list[dict[str, Any]]]] = {}

    def name(self, topic: str) -> str:
        return f"{self.prefix}.{topic}"

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all")
        await producer.start()
        return producer

    def create(self, topic: str, partitions: int) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.servers)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(self.name(topic), partitions, 1)])
            finally:
                await admin.close()

        self.run(create())

    def push(self, topic: str, messages: list[dict[str, Any] | bytes]) -> None:
        async def push() -> None:
            for message in messages:
                value = message if isinstance(message, bytes) else orjson.dumps(message)
                await self.producer.send(self.name(topic), value)
            await self.producer.flush()

        self.run(push())

    def read_all(self, topic: str) -> list[dict[str, Any]]:
        """Every document of ``topic`` so far (one reader per topic, without a group,
        kept open: each call reads only what is new)."""
        from aiokafka import AIOKafkaConsumer

        async def read() -> list[dict[str, Any]]:
            reader, found = self.readers.get(topic, (None, []))
            if reader is None:
                reader = AIOKafkaConsumer(
                    self.name(topic),
                    bootstrap_servers=self.servers,
                    group_id=None,
                    auto_offset_reset="earliest",
                )
                await reader.start()
                self.readers[topic] = (reader, found)
            while True:
                batches = await reader.getmany(timeout_ms=200)
                if not batches:
                    return list(found)
                for records in batches.values():
                    found += [orjson.loads(record.value) for record in records]

        return self.run(read())  # type: ignore[no-any-return]

    def close(self) -> None:
        for reader, _ in self.readers.values():
            self.run(reader.stop())
        self.run(self.producer.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()  # its self-pipe sockets, else left for the GC to warn about


@pytest.fixture
def topics(kafka_server: str) -> Any:
    found = Topics(kafka_server)
    yield found
    found.close()


def _options(topics: Topics) -> dict[str, Any]:
    return {
        "in_stream": topics.name("in"),
        "out_stream": topics.name("out"),
        "group": topics.name("group"),
        "events_stream": topics.name("models"),
    }


def test_kafka_predictions_and_dead_letters(yard: Yard, kafka_server: str, topics: Topics) -> None:
    rows = [house_row(i) for i in range(200)]
    messages: list[dict[str, Any] | bytes] = [{"id": f"k{i}", "row": r} for i, r in enumerate(rows)]
    messages += [b"{oops", {"id": "missing", "row": {"size": 1.0, "town": "alpha"}}]
    topics.create("in", 2)
    topics.push("in", messages)
    running = start_consumer(yard.settings, kafka_server, model="houses", **_options(topics))
    try:
        wait_for(lambda: len(topics.read_all("out")) >= 200, 120, "outputs")
        wait_for(lambda: len(topics.read_all("in.dead")) >= 2, 60, "dead letters")
    finally:
        stats = running.stop()
    outputs = {doc["id"]: doc for doc in topics.read_all("out")}
    expected = yard.reference("houses:1", rows).values
    assert len(outputs) == 200
    for index in range(200):
        doc = outputs[f"k{index}"]
        assert doc["version"] == 1 and doc["redelivered"] is False
        assert doc["prediction"] == pytest.approx(expected[index], rel=1e-12)
    dead = {doc["id"]: doc for doc in topics.read_all("in.dead")}
    assert dead[None]["error"]["status"] == 400
    assert dead["missing"]["error"]["detail"][0]["type"] == "missing_column"
    assert stats.predicted == 200 and stats.dead == 2


def test_kafka_sigkill_then_restart_loses_nothing(
    yard: Yard, kafka_server: str, topics: Topics
) -> None:
    total, batch = 6000, 50
    topics.create("in", 1)
    topics.push("in", [{"id": f"m{i}", "row": house_row(i)} for i in range(total)])
    names = _options(topics)
    command = consumer_command(yard.settings, kafka_server, "--max-batch-rows", str(batch))
    for flag, key in (("--in", "in_stream"), ("--out", "out_stream")):
        command[command.index(flag) + 1] = names[key]
    command += ["--group", names["group"], "--events-stream", names["events_stream"]]
    env = subprocess_env()
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: len(topics.read_all("out")) >= 100 or first.poll() is not None, 120, "outputs"
        )
        assert first.poll() is None, first.communicate()[1][-3000:]
    finally:
        kill(first)
    assert len(topics.read_all("out")) < total, "it finished before it was killed"
    second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: (
                len({d["id"] for d in topics.read_all("out")}) >= total or second.poll() is not None
            ),
            180,
            "every output",
        )
    finally:
        code, stderr = stop(second)
    assert code == 0, stderr[-3000:]
    outputs = topics.read_all("out")
    ids = collections.Counter(doc["id"] for doc in outputs)
    assert set(ids) == {f"m{i}" for i in range(total)}
    assert len(outputs) - len(ids) <= batch, "more duplicates than one batch"
    seen: set[str] = set()
    for doc in outputs:
        if doc["id"] in seen:
            assert doc["redelivered"] is True, doc
        seen.add(doc["id"])


def test_kafka_promotion_event_switches_versions(
    fresh_yard: Yard, kafka_server: str, topics: Topics
) -> None:
    yard = fresh_yard
    names = _options(topics)
    yard.settings = Settings(
        home=yard.settings.home, events_url=kafka_server, events_stream=names["events_stream"]
    )
    yard.train_houses(max_iter=60)
    topics.create("in", 1)
    running = start_consumer(yard.settings, kafka_server, model="houses", **names)
    try:
        topics.push("in", [{"id": "before", "row": house_row(1)}])
        wait_for(lambda: len(topics.read_all("out")) >= 1, 60, "the first output")
        yard.train_houses(max_iter=25)  # houses:2, promoted: an event on the control topic
        wait_for(lambda: running.consumer.version == 2, 60, "the switch to houses:2")
        topics.push("in", [{"id": "after", "row": house_row(1)}])
        wait_for(lambda: len(topics.read_all("out")) >= 2, 60, "the second output")
    finally:
        running.stop()
    outputs = {doc["id"]: doc for doc in topics.read_all("out")}
    assert outputs["before"]["version"] == 1 and outputs["after"]["version"] == 2
    expected = yard.reference("houses:2", [house_row(1)]).values[0]
    assert outputs["after"]["prediction"] == pytest.approx(expected, rel=1e-12)
