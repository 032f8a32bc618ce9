"""Kafka transport (``kafka://host:port[,host:port...]``), on aiokafka.

- The in topic is read by a consumer in the group (auto-commit off, from the earliest
  offset when the group has none); the message value is the JSON document, the record
  timestamp its enqueue time.
- Outputs and dead letters are produced (``acks=all``, keyed by the input's
  ``partition:offset``), and
  once the broker has acknowledged them all, the batch's offsets are committed: a
  prediction is written before its input counts as consumed. A consumer that dies
  between the two leaves its batch uncommitted; the member that gets its partitions
  (Kafka's rebalance once the session times out, or the same consumer restarted) reads
  it again, so an output may be written twice, at most one batch's worth.
- Kafka keeps no delivery count, so modelyard keeps one, for its delivery limit, on a
  tally topic (``<in>.deliveries``; records ``OFFSET:COUNT`` keyed ``GROUP/PARTITION``;
  not the committed offsets' metadata, which some Kafka-protocol brokers, Tansu among
  them, do not keep). The first batch a consumer reads from
  a partition it was just assigned (or after a failed batch) may be a dead member's
  unfinished one: before it is predicted, the count of its first record (at the
  committed offset) is incremented and written. When the group had read there
  before, that batch is marked ``redelivered`` (the duplicates are among those) and the
  records after the first count as delivered twice.
- Takeover of a dead member is Kafka's rebalancing: :meth:`claim_stale` has nothing to do.
- Missing topics are created (one partition; create the in topic beforehand with as
  many partitions as consumers you want to share it).
- Model events are records of the control topic, read by every consumer from the end
  (no group).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from modelyard._optional import require
from modelyard.errors import ModelyardError
from modelyard.streaming.messages import InMessage
from modelyard.streaming.transport import (
    Commit,
    GroupLag,
    Streams,
    parse_events,
    run_in_own_loop,
)

__all__ = ["KafkaTransport", "publish_event_sync"]

logger = logging.getLogger(__name__)


def _servers(broker: str) -> str:
    """``host:port,...`` from ``kafka://host:port,...``."""
    servers = broker.split("://", 1)[1].strip("/")
    if not servers:
        raise ModelyardError(f"broker {broker!r} names no server; e.g. kafka://127.0.0.1:9092")
    return servers


async def _ensure_topics(servers: str, topics: Sequence[str]) -> None:
    kafka = require("aiokafka.admin", "stream")
    admin = kafka.AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(topics) if name not in existing]
        if missing:
            new = [kafka.NewTopic(name, num_partitions=1, replication_factor=1) for name in missing]
            try:
                await admin.create_topics(new)
            except Exception as exc:  # another member created it meanwhile
                if "exist" not in str(exc).lower():
                    raise
    finally:
        await admin.close()


class KafkaTransport:
    """One consumer of a Kafka topic in a consumer group (``streams.out_maxlen`` is not
    used: how long topics keep records is their retention's business)."""

    overlapping = False  # a committed offset covers every record before it (see Transport)

    def __init__(self, broker: str, streams: Streams) -> None:
        self.servers = _servers(broker)
        self.broker = broker
        self.streams = streams
        self._consumer: Any = None
        self._producer: Any = None
        self._events: Any = None
        self._tally: Any = None
        self._tally_topic = f"{streams.in_stream}.deliveries"
        self._fresh: dict[Any, bool] = {}  # assigned partitions not read since
        self._partitions: dict[int, Any] = {}  # partition number → its TopicPartition
        # per partition, the last offset of the batch read again after a takeover
        self._redelivered_until: dict[Any, int] = {}

    async def open(self) -> None:
        """Create missing topics, then start the consumer, producer and event reader."""
        aiokafka = require("aiokafka", "stream")
        streams = self.streams
        try:
            await _ensure_topics(
                self.servers,
                [
                    streams.in_stream,
                    streams.out_stream,
                    streams.dead_stream,
                    streams.events_stream,
                    self._tally_topic,
                ],
            )
        except Exception as exc:
            raise ModelyardError(
                f"cannot reach Kafka at {self.broker}: {exc}; check --broker and that the "
                "broker is running"
            ) from None
        transport = self

        class _Listener(aiokafka.ConsumerRebalanceListener):  # type: ignore[misc,name-defined]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                for partition in revoked:
                    transport._fresh.pop(partition, None)
                    transport._redelivered_until.pop(partition, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                for partition in assigned:
                    transport._fresh[partition] = True

        self._consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=self.servers,
            group_id=self.streams.group,
            client_id=self.streams.consumer,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._consumer.subscribe([self.streams.in_stream], listener=_Listener())
        self._producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=self.servers, acks="all", linger_ms=1
        )
        self._events = aiokafka.AIOKafkaConsumer(
            self.streams.events_stream,
            bootstrap_servers=self.servers,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        self._tally = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False
        )
        await self._producer.start()
        await self._consumer.start()
        await self._events.start()
        await self._tally.start()
        self._tally.assign([aiokafka.TopicPartition(self._tally_topic, 0)])

    async def read(self, count: int, block_ms: int) -> list[InMessage]:
        batches = await self._consumer.getmany(timeout_ms=block_ms, max_records=count)
        messages: list[InMessage] = []
        for partition, records in batches.items():
            self._partitions[partition.partition] = partition
            if not self._fresh.pop(partition, False):
                messages += [_message(partition, record, 1) for record in records]
                continue
            # The first read since the partition was assigned: maybe read before by a
            # member that died on it. Count this delivery in the committed offset's
            # metadata before anything is predicted.
            deliveries = await self._count_delivery(partition, records[0].offset)
            messages.append(_message(partition, records[0], deliveries))
            if deliveries > 1:
                self._redelivered_until[partition] = records[-1].offset
                messages += [_message(partition, record, 2) for record in records[1:]]
            else:
                messages += [_message(partition, record, 1) for record in records[1:]]
        return messages

    async def _count_delivery(self, partition: Any, offset: int) -> int:
        """The deliveries of the record at ``offset`` (where the group resumes), this one
        included, recorded on the tally topic before anything is predicted."""
        committed = await self._consumer.committed(partition)
        key = _tally_key(self.streams.group, partition)
        at, _, count = (await self._tallied(key) or "").partition(":")
        if at == str(offset) and count.isdigit():
            deliveries = int(count) + 1
        elif committed is None:
            deliveries = 1  # the group's first read of the partition
        else:
            deliveries = 2  # read before, uncounted: the member that read it died
        await self._producer.send_and_wait(
            self._tally_topic, f"{offset}:{deliveries}".encode(), key=key
        )
        return deliveries

    async def _tallied(self, key: bytes) -> str | None:
        """The latest tally of ``key`` (the topic is written only when a partition is
        taken over, so reading it whole stays cheap)."""
        structs = require("aiokafka.structs", "stream")
        topic = structs.TopicPartition(self._tally_topic, 0)
        end = (await self._tally.end_offsets([topic]))[topic]
        await self._tally.seek_to_beginning(topic)
        latest = None
        while await self._tally.position(topic) < end:
            batches = await self._tally.getmany(topic, timeout_ms=1000)
            for record in batches.get(topic, []):
                if record.key == key:
                    latest = record.value.decode()
        return latest

    async def claim_stale(self, min_idle_ms: int, count: int) -> list[InMessage]:
        return []  # Kafka's rebalance hands a dead member's partitions to the others

    async def commit(self, commits: Sequence[Commit]) -> int:
        structs = require("aiokafka.structs", "stream")
        sends = []
        offsets: dict[Any, Any] = {}
        for commit in commits:
            key = commit.message.entry.encode()
            topic = self.streams.dead_stream if commit.dead else self.streams.out_stream
            sends.append(await self._producer.send(topic, commit.document, key=key))
            number, _, offset = commit.message.entry.partition(":")
            partition = self._partitions[int(number)]
            after = int(offset) + 1
            offsets[partition] = structs.OffsetAndMetadata(after, "")
            if after <= self._redelivered_until.get(partition, -1):
                # the next record was read before too: delivered twice already
                tally = f"{after}:2".encode()
                key = _tally_key(self.streams.group, partition)
                sends.append(await self._producer.send(self._tally_topic, tally, key=key))
        await asyncio.gather(*sends)  # every output acknowledged by the broker...
        if offsets:
            errors = require("aiokafka.errors", "stream")
            try:
                await self._consumer.commit(offsets)  # ...before the inputs count as consumed
            except (errors.CommitFailedError, errors.IllegalStateError) as exc:
                # the group rebalanced meanwhile: the partition's new owner reads the
                # batch again (its outputs are written twice, and marked redelivered)
                logger.warning("could not commit a batch after a rebalance (%s)", exc)
        return len(commits)

    async def rewind(self) -> None:
        # the position moved past the failed batch: back to the committed offsets, or
        # the next commit would skip it; what is read again is counted as redelivered
        await self._consumer.seek_to_committed()
        for partition in self._consumer.assignment():
            self._fresh[partition] = True

    async def lag(self) -> GroupLag:
        assigned = list(self._consumer.assignment())
        if not assigned:
            return GroupLag(0, 0)
        ends = await self._consumer.end_offsets(assigned)
        behind = 0
        for partition in assigned:
            committed = await self._consumer.committed(partition)
            behind += max(0, ends[partition] - (committed or 0))
        return GroupLag(behind, 0)

    async def publish_event(self, event: dict[str, Any]) -> None:
        await self._producer.send_and_wait(self.streams.events_stream, orjson.dumps(event))

    async def next_events(self, block_ms: int) -> list[dict[str, Any]]:
        batches = await self._events.getmany(timeout_ms=block_ms)
        return parse_events(record.value for records in batches.values() for record in records)

    async def close(self) -> None:
        for client in (self._tally, self._events, self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:  # closing: what is left to do is the broker's
                    continue


def publish_event_sync(broker: str, stream: str, event: dict[str, Any]) -> None:
    """Append ``event`` to the control topic ``stream`` (blocking; for promote/rollback)."""
    aiokafka = require("aiokafka", "stream")
    servers = _servers(broker)

    async def send() -> None:
        await _ensure_topics(servers, [stream])
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(stream, orjson.dumps(event))
        finally:
            await producer.stop()

    run_in_own_loop(send, timeout=10)


def _message(partition: Any, record: Any, deliveries: int) -> InMessage:
    entry = f"{partition.partition}:{record.offset}"
    return InMessage(entry, record.value, record.timestamp, deliveries > 1, deliveries)


def _tally_key(group: str, partition: Any) -> bytes:
    return f"{group}/{partition.partition}".encode()
