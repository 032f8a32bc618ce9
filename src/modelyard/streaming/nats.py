"""NATS JetStream transport (``nats://host:port[,nats://host:port...]``), on nats-py.

- Each of the in, out, dead-letter and control subjects is captured by a JetStream
  stream of its own, created when missing (named after the subject, dots made
  underscores: ``houses.in`` → ``houses_in``; the out and dead-letter streams keep
  about ``out_maxlen`` messages). The message payload is the JSON document.
- The consumer group is a durable pull consumer on the in stream (explicit acks);
  every member fetches from it, so members share the load. A message a member fetched
  and did not acknowledge within ``ack_wait`` (the consumer's ``claim_idle_ms``) is
  delivered again, to any member: that is how a dead member's messages are taken over,
  and :meth:`claim_stale` has nothing to do. JetStream counts the deliveries of each
  message (``num_delivered``); modelyard's delivery limit reads that count.
- Outputs and dead letters are published and each publication awaited (JetStream
  acknowledges it once stored) before the inputs are acknowledged. Each carries the
  header ``Nats-Msg-Id: <in stream>:<sequence>``, so JetStream drops a second output for
  the same input within its duplicate window (two minutes by default): a duplicate is
  not written when the broker can tell.
- After a failed batch, the messages in hand are negatively acknowledged: delivered
  again at once rather than after ``ack_wait``.
- Model events are messages of the control stream, read by every consumer with an
  ordered consumer of its own from the stream's end.
"""

from __future__ import annotations

import asyncio
import contextlib
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

__all__ = ["NatsTransport", "jetstream_name", "publish_event_sync"]

_EVENTS_MAXLEN = 10_000
_MAX_ACK_PENDING = 65_536  # messages in hand across the group, unacknowledged


def jetstream_name(subject: str) -> str:
    """The JetStream stream capturing ``subject`` (stream names take no dots)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in subject)


def _nats() -> Any:
    return require("nats", "stream")


async def _connect(broker: str) -> Any:
    nats = _nats()
    try:
        return await nats.connect(broker, connect_timeout=5, max_reconnect_attempts=3)
    except Exception as exc:
        raise ModelyardError(
            f"cannot reach NATS at {broker}: {exc}; check --broker and that nats-server runs "
            "with JetStream enabled (nats-server -js)"
        ) from None


async def _ensure_stream(js: Any, subject: str, max_msgs: int = -1) -> str:
    """The name of the stream capturing ``subject``, created when missing."""
    errors = require("nats.js.errors", "stream")
    name = jetstream_name(subject)
    try:
        await js.stream_info(name)
    except errors.NotFoundError:
        try:
            await js.add_stream(name=name, subjects=[subject], max_msgs=max_msgs)
        except errors.BadRequestError as exc:  # another member created it meanwhile
            if "already" not in str(exc).lower():
                raise
    return name


class NatsTransport:
    """One member of a durable JetStream pull consumer.

    Args:
        broker: the NATS URL, e.g. ``nats://127.0.0.1:4222``.
        streams: where to read and write.

    A fetched message may stay unacknowledged ``streams.claim_idle_ms`` (JetStream's
    ``ack_wait``) before it is delivered again.
    """

    overlapping = False  # kept to one batch at a time (see Transport)

    def __init__(self, broker: str, streams: Streams) -> None:
        self.broker = broker
        self.streams = streams
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._events: Any = None
        self._stream = jetstream_name(streams.in_stream)
        self._held: dict[str, Any] = {}  # entry → the fetched message, until acknowledged

    async def open(self) -> None:
        """Connect, create missing streams, and join (or create) the durable consumer."""
        api = require("nats.js.api", "stream")
        self._nc = await _connect(self.broker)
        self._js = self._nc.jetstream()
        streams = self.streams
        await _ensure_stream(self._js, streams.in_stream)
        for subject in (streams.out_stream, streams.dead_stream):
            await _ensure_stream(self._js, subject, streams.out_maxlen)
        events = await _ensure_stream(self._js, streams.events_stream, _EVENTS_MAXLEN)
        config = api.ConsumerConfig(
            durable_name=streams.group,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=streams.claim_idle_ms / 1000,
            max_deliver=-1,  # modelyard's own delivery limit dead-letters, with the reason
            max_ack_pending=_MAX_ACK_PENDING,
        )
        self._sub = await self._js.pull_subscribe(
            streams.in_stream, durable=streams.group, stream=self._stream, config=config
        )
        self._events = await self._js.subscribe(
            streams.events_stream,
            stream=events,
            ordered_consumer=True,
            config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW),
        )

    async def read(self, count: int, block_ms: int) -> list[InMessage]:
        try:
            fetched = await self._sub.fetch(count, timeout=block_ms / 1000)
        except TimeoutError:
            return []
        messages = []
        for msg in fetched:
            meta = msg.metadata
            entry = str(meta.sequence.stream)
            self._held[entry] = msg
            enqueued = int(meta.timestamp.timestamp() * 1000) if meta.timestamp else None
            deliveries = int(meta.num_delivered or 1)
            messages.append(InMessage(entry, msg.data, enqueued, deliveries > 1, deliveries))
        return messages

    async def claim_stale(self, min_idle_ms: int, count: int) -> list[InMessage]:
        return []  # JetStream delivers a dead member's messages again after ack_wait

    async def commit(self, commits: Sequence[Commit]) -> int:
        streams = self.streams
        acks = await asyncio.gather(
            *(
                self._js.publish(
                    streams.dead_stream if commit.dead else streams.out_stream,
                    commit.document,
                    headers={"Nats-Msg-Id": f"{streams.in_stream}:{commit.message.entry}"},
                )
                for commit in commits
            )
        )  # every output stored by JetStream...
        for commit in commits:  # ...before its input is acknowledged
            msg = self._held.pop(commit.message.entry, None)
            if msg is not None:
                await msg.ack()
        await self._nc.flush()
        return sum(not ack.duplicate for ack in acks)

    async def rewind(self) -> None:
        held, self._held = self._held, {}
        for msg in held.values():
            try:
                await msg.nak()  # delivered again now, not after ack_wait
            except Exception:  # the connection is down: ack_wait redelivers them
                break

    async def lag(self) -> GroupLag:
        info = await self._sub.consumer_info()
        return GroupLag(int(info.num_pending or 0), int(info.num_ack_pending or 0))

    async def publish_event(self, event: dict[str, Any]) -> None:
        await self._js.publish(self.streams.events_stream, orjson.dumps(event))

    async def next_events(self, block_ms: int) -> list[dict[str, Any]]:
        bodies: list[bytes | None] = []
        timeout = block_ms / 1000
        while True:
            try:
                msg = await self._events.next_msg(timeout=timeout)
            except TimeoutError:
                return parse_events(bodies)
            bodies.append(msg.data)
            timeout = 0.001  # whatever else is already here, without waiting

    async def close(self) -> None:
        if self._nc is not None:
            if self._events is not None:  # its ordered consumer's tasks end with it
                with contextlib.suppress(Exception):
                    await self._events.unsubscribe()
            await self._nc.close()


def publish_event_sync(broker: str, stream: str, event: dict[str, Any]) -> None:
    """Append ``event`` to the control subject ``stream`` (blocking; for promote/rollback)."""

    async def send() -> None:
        nc = await _connect(broker)
        try:
            js = nc.jetstream()
            await _ensure_stream(js, stream, _EVENTS_MAXLEN)
            await js.publish(stream, orjson.dumps(event))
        finally:
            await nc.close()

    run_in_own_loop(send, timeout=10)
