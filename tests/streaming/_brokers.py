"""One test-side client per broker, so the shared transport tests run on each of them.

Each pushes messages to a stream (topic, subject), reads back every document of one,
and names a test's streams apart from other tests' on the session's broker. Redis and
NATS are driven with their own client libraries, Kafka with aiokafka: the test side
never goes through modelyard's transports.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import orjson
import redis


class Broker:
    """A test's view of one broker: ``url`` for modelyard, streams named apart."""

    url: str
    prefix: str = ""

    def name(self, stream: str) -> str:
        """The broker-side name of a test's stream (prefixed on shared brokers)."""
        return f"{self.prefix}{stream}"

    def options(self) -> dict[str, Any]:
        """The consumer's stream options for this test's streams."""
        return {
            "in_stream": self.name("in"),
            "out_stream": self.name("out"),
            "group": self.name("group").replace(".", "-"),
            "events_stream": self.name("models"),
        }

    def create(self, stream: str, partitions: int) -> None:
        """Create the in stream beforehand (Kafka: with ``partitions`` partitions)."""

    def push(self, stream: str, messages: list[dict[str, Any] | bytes]) -> None:
        raise NotImplementedError

    def read_all(self, stream: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def count(self, stream: str) -> int:
        """How many documents ``stream`` holds (cheaper than reading them, where it can)."""
        return len(self.read_all(stream))

    def close(self) -> None:
        """Close the connections."""


class RedisBroker(Broker):
    """Streams of a database of its own (no prefix needed); entries' ``data`` field."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)

    def push(self, stream: str, messages: list[dict[str, Any] | bytes]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for message in messages:
                data = message if isinstance(message, bytes) else orjson.dumps(message)
                pipe.xadd(self.name(stream), {"data": data})
            pipe.execute()

    def read_all(self, stream: str) -> list[dict[str, Any]]:
        entries = self.client.xrange(self.name(stream))
        return [orjson.loads(fields[b"data"]) for _, fields in entries]

    def count(self, stream: str) -> int:
        return int(self.client.xlen(self.name(stream)))

    def close(self) -> None:
        self.client.close()


class _LoopBroker(Broker):
    """A broker driven by an asyncio client, on an event loop in a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"t{uuid.uuid4().hex[:8]}."
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.found: dict[str, list[dict[str, Any]]] = {}
        self.readers: dict[str, Any] = {}

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _reader(self, stream: str) -> Any:
        """A reader of ``stream`` from its start."""
        raise NotImplementedError

    async def _next(self, reader: Any) -> list[bytes]:
        """What ``reader`` has next (empty: nothing more for now)."""
        raise NotImplementedError

    def read_all(self, stream: str) -> list[dict[str, Any]]:
        """Every document so far (one reader per stream, kept open: reads what is new)."""

        async def read() -> list[dict[str, Any]]:
            found = self.found.setdefault(stream, [])
            if stream not in self.readers:
                self.readers[stream] = await self._reader(stream)
            while True:
                values = await self._next(self.readers[stream])
                if not values:
                    return list(found)
                found += [orjson.loads(value) for value in values]

        return self.run(read())  # type: ignore[no-any-return]

    def stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()  # its self-pipe sockets, else left for the GC to warn about


class KafkaBroker(_LoopBroker):
    """Topics of a Kafka-protocol broker, through aiokafka."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.servers = url.split("://", 1)[1]
        self.producer: Any = self.run(self._producer())

    async def _producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all")
        await producer.start()
        return producer

    def create(self, stream: str, partitions: int) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.servers)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(self.name(stream), partitions, 1)])
            finally:
                await admin.close()

        self.run(create())

    def push(self, stream: str, messages: list[dict[str, Any] | bytes]) -> None:
        async def push() -> None:
            for message in messages:
                value = message if isinstance(message, bytes) else orjson.dumps(message)
                await self.producer.send(self.name(stream), value)
            await self.producer.flush()

        self.run(push())

    async def _reader(self, stream: str) -> Any:
        from aiokafka import AIOKafkaConsumer

        reader = AIOKafkaConsumer(
            self.name(stream),
            bootstrap_servers=self.servers,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await reader.start()
        return reader

    async def _next(self, reader: Any) -> list[bytes]:
        batches = await reader.getmany(timeout_ms=200)
        return [record.value for records in batches.values() for record in records]

    def close(self) -> None:
        for reader in self.readers.values():
            self.run(reader.stop())
        self.run(self.producer.stop())
        self.stop_loop()


class NatsBroker(_LoopBroker):
    """Subjects of a nats-server with JetStream, through nats-py."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.nc: Any = self.run(self._connect())
        self.js: Any = self.nc.jetstream()

    async def _connect(self) -> Any:
        import nats

        return await nats.connect(self.url)

    async def _stream(self, subject: str) -> str:
        from nats.js.errors import NotFoundError

        from modelyard.streaming.nats import jetstream_name

        name = jetstream_name(subject)
        try:
            await self.js.stream_info(name)
        except NotFoundError:
            await self.js.add_stream(name=name, subjects=[subject])
        return name

    def push(self, stream: str, messages: list[dict[str, Any] | bytes]) -> None:
        async def push() -> None:
            subject = self.name(stream)
            await self._stream(subject)
            payloads = [m if isinstance(m, bytes) else orjson.dumps(m) for m in messages]
            for start in range(0, len(payloads), 500):  # acknowledged by JetStream
                chunk = payloads[start : start + 500]
                await asyncio.gather(*(self.js.publish(subject, data) for data in chunk))

        self.run(push())

    async def _reader(self, stream: str) -> Any:
        subject = self.name(stream)
        name = await self._stream(subject)
        return await self.js.subscribe(subject, stream=name, ordered_consumer=True)

    async def _next(self, reader: Any) -> list[bytes]:
        try:
            return [(await reader.next_msg(timeout=0.2)).data]
        except TimeoutError:
            return []

    def count(self, stream: str) -> int:
        async def count() -> int:
            info = await self.js.stream_info(await self._stream(self.name(stream)))
            return int(info.state.messages)

        return self.run(count())  # type: ignore[no-any-return]

    def close(self) -> None:
        for reader in self.readers.values():  # its ordered consumer's tasks end with it
            self.run(reader.unsubscribe())
        self.run(self.nc.close())
        self.stop_loop()
