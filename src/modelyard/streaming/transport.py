"""The small interface every stream transport implements, and the factory by URL scheme.

A transport reads batches from the in stream as a member of a consumer group, writes
outputs and dead letters, acknowledges what it read, takes over the unacknowledged
messages of a dead group member, and publishes and follows the control stream of model
events. :class:`~modelyard.streaming.redis.RedisTransport` (``redis://``,
``rediss://``, ``unix://``) is the default, :class:`~modelyard.streaming.kafka.KafkaTransport`
(``kafka://``) and :class:`~modelyard.streaming.nats.NatsTransport` (``nats://``, JetStream)
the others; a transport is picked by the broker URL's scheme and its client
library imported on first use.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelyard.errors import ModelyardError
from modelyard.streaming.messages import InMessage

__all__ = [
    "Commit",
    "GroupLag",
    "Streams",
    "Transport",
    "open_transport",
    "parse_events",
    "run_in_own_loop",
    "transport_class",
]

#: broker URL scheme → the transport class, imported on first use.
TRANSPORTS = {
    "redis": "modelyard.streaming.redis:RedisTransport",
    "rediss": "modelyard.streaming.redis:RedisTransport",
    "unix": "modelyard.streaming.redis:RedisTransport",
    "kafka": "modelyard.streaming.kafka:KafkaTransport",
    "nats": "modelyard.streaming.nats:NatsTransport",
}


@dataclass(frozen=True)
class Streams:
    """Where one consumer reads and writes.

    Attributes:
        in_stream: the stream (topic) read.
        out_stream: where predictions go.
        dead_stream: where dead letters go.
        group: the consumer group.
        consumer: this member's name in the group.
        out_maxlen: the out and dead-letter streams are trimmed to about this many
            entries (Redis; on Kafka, that is the topics' retention's business).
        events_stream: the control stream of model events.
        claim_idle_ms: a message left unacknowledged this long is taken to be a dead
            member's and delivered again (Redis: claimed; NATS: JetStream's ack wait).
    """

    in_stream: str
    out_stream: str
    dead_stream: str
    group: str
    consumer: str
    out_maxlen: int
    events_stream: str
    claim_idle_ms: int = 30_000


@dataclass(frozen=True)
class Commit:
    """What a batch leaves behind: per input message, the document to write (to the out
    stream, or to the dead-letter stream when ``dead``), written before it is acked."""

    message: InMessage
    document: bytes
    dead: bool = False


@dataclass(frozen=True)
class GroupLag:
    """How far the group is behind: entries not yet delivered, and delivered but not acked."""

    lag: int | None
    pending: int


class Transport(Protocol):
    """One consumer's connection to a broker.

    ``overlapping`` says whether the next batch may be read and predicted while the
    batch before it is written: true where a commit acknowledges exactly its own
    messages (Redis: by entry id, in one script with the writes); false where
    acknowledging a batch also acknowledges those read before it (Kafka's offsets).
    """

    overlapping: bool

    async def open(self) -> None:
        """Connect, and create the consumer group if it does not exist."""

    async def read(self, count: int, block_ms: int) -> list[InMessage]:
        """Up to ``count`` messages for this consumer, waiting at most ``block_ms``.

        Messages delivered to this consumer before and never acknowledged come first
        (marked ``redelivered``).
        """
        ...

    async def claim_stale(self, min_idle_ms: int, count: int) -> list[InMessage]:
        """Take over up to ``count`` messages other members read and left unacknowledged
        for ``min_idle_ms`` (their consumer died); they are marked ``redelivered``."""
        ...

    async def commit(self, commits: Sequence[Commit]) -> int:
        """Write each commit's document, then acknowledge its message; returns how many
        documents were written (a message another member acknowledged meanwhile is
        not written again, where the broker can tell)."""
        ...

    async def rewind(self) -> None:
        """After a batch failed: deliver this consumer's unacknowledged messages again."""

    async def lag(self) -> GroupLag:
        """The group's lag on the in stream."""
        ...

    async def publish_event(self, event: dict[str, Any]) -> None:
        """Append a model event to the control stream."""

    async def next_events(self, block_ms: int) -> list[dict[str, Any]]:
        """Model events published since the previous call (the first call starts at the
        control stream's end), waiting at most ``block_ms`` for one."""
        ...

    async def close(self) -> None:
        """Close the connections."""


def parse_events(bodies: Iterable[bytes | None]) -> list[dict[str, Any]]:
    """The model events among the control stream's message bodies (JSON objects).

    Anything else is skipped: it is not modelyard's, and the registry poll still finds
    every change.
    """
    import orjson

    events = []
    for body in bodies:
        try:
            event = orjson.loads(body or b"")
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def transport_class(broker: str) -> Any:
    """The transport class for ``broker``'s URL scheme.

    Raises:
        ModelyardError: the scheme is not one modelyard streams over.
    """
    scheme = broker.split("://", 1)[0].lower() if "://" in broker else ""
    target = TRANSPORTS.get(scheme)
    if target is None:
        known = ", ".join(f"{name}://" for name in TRANSPORTS)
        raise ModelyardError(
            f"broker {broker!r} has no known scheme; modelyard streams over {known} "
            "(e.g. --broker redis://127.0.0.1:6379/0)"
        )
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def open_transport(broker: str, streams: Streams) -> Transport:
    """A transport for ``broker`` (not connected yet: call ``await transport.open()``)."""
    return transport_class(broker)(broker, streams)  # type: ignore[no-any-return]


def run_in_own_loop(coroutine: Callable[[], Awaitable[None]], *, timeout: float) -> None:
    """Run ``coroutine()`` to completion on an event loop of its own, in a thread of its
    own, and re-raise what it raised: the asyncio-only clients (aiokafka, nats-py) need a
    loop, and the caller (promote, rollback) may already be inside a running one, a
    notebook say."""
    failure: list[BaseException] = []

    async def bounded() -> None:
        await asyncio.wait_for(coroutine(), timeout=timeout)

    def run() -> None:
        try:
            asyncio.run(bounded())
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=run, name="modelyard-publish-event")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
