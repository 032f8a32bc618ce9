"""Redis Streams transport (``redis://``, ``rediss://``, ``unix://``), on redis-py's asyncio client.

- The in stream is read with ``XREADGROUP`` as a member of a consumer group (created
  at the stream's start, ``MKSTREAM``, when missing); each entry's ``data`` field holds
  the JSON message.
- A consumer first re-reads its own pending entries (id ``0``): those it read before a
  crash or restart and never acknowledged.
- Redelivered entries carry the group's delivery count (``XPENDING``), which the
  consumer's delivery limit reads.
- ``XAUTOCLAIM`` takes over the entries another member left pending for longer than
  the claim time (it died); entries trimmed from the stream meanwhile are acknowledged.
- Outputs and dead letters are written and their inputs acknowledged by one Lua script
  per batch, atomically: for each input still pending in the group it ``XADD``s the
  document (``MAXLEN ~`` bounds the out and dead-letter streams), then ``XACK``s the
  input. An input another member acknowledged meanwhile (a slow consumer whose entries
  were claimed) is skipped, so the out stream gets one output per input. On Redis
  Cluster the three streams must share a hash slot: name them with one hash tag, e.g.
  ``{orders}.in``, ``{orders}.out``, ``{orders}.in.dead``.
- Replies are parsed by hiredis (a dependency of the ``stream`` extra; redis-py uses it
  when installed): a batch of entries parsed in Python cost more than predicting it.
- Model events are entries of the control stream (``data``: the event as JSON), read
  with plain ``XREAD`` by every consumer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from modelyard._optional import require
from modelyard.errors import ModelyardError
from modelyard.streaming.messages import InMessage
from modelyard.streaming.transport import Commit, GroupLag, Streams, parse_events

__all__ = ["RedisTransport", "publish_event_sync"]

_FIELD = b"data"
_EVENTS_MAXLEN = 10_000

# KEYS: in, out, dead. ARGV: group, maxlen, then (entry id, 1 out | 2 dead, document)...
# XPENDING with a one-id range says whether the entry is still pending in the group.
_COMMIT = """
local written = 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) > 0 then
    local target = KEYS[1 + tonumber(ARGV[i + 1])]
    redis.call('XADD', target, 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[i + 2])
    redis.call('XACK', KEYS[1], ARGV[1], id)
    written = written + 1
  end
end
return written
"""


def _redis() -> Any:
    return require("redis.asyncio", "stream")


def _entry_ms(entry: str) -> int | None:
    head = entry.split("-", 1)[0]
    return int(head) if head.isdigit() else None


class RedisTransport:
    """One consumer of a Redis stream in a consumer group.

    Args:
        broker: the Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        streams: where to read and write.
    """

    overlapping = True  # each commit acks its own entries (see Transport)

    def __init__(self, broker: str, streams: Streams) -> None:
        self.broker = broker
        self.streams = streams
        self._client: Any = None
        self._events_client: Any = None
        self._commit_script: Any = None
        self._own_pending = True  # re-read this consumer's unacknowledged entries first
        self._claim_cursor = "0-0"
        self._events_from: str | None = None

    async def open(self) -> None:
        """Connect, and create the group at the stream's start if it does not exist."""
        redis = _redis()
        self._client = redis.Redis.from_url(self.broker)
        # a connection of its own: control-stream reads block while batches are read
        self._events_client = redis.Redis.from_url(self.broker)
        try:
            await self._client.xgroup_create(
                self.streams.in_stream, self.streams.group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except redis.ConnectionError as exc:
            raise ModelyardError(
                f"cannot reach Redis at {self.broker}: {exc}; check --broker and that the "
                "server is running"
            ) from None
        self._commit_script = self._client.register_script(_COMMIT)
        # model events are followed from the control stream's current end
        last = await self._events_client.xrevrange(self.streams.events_stream, count=1)
        self._events_from = _text(last[0][0]) if last else "0-0"

    async def read(self, count: int, block_ms: int) -> list[InMessage]:
        if self._own_pending:
            found = await self._read("0", count, None, redelivered=True)
            if found:
                return found
            self._own_pending = False
        return await self._read(">", count, block_ms, redelivered=False)

    async def _read(
        self, start: str, count: int, block_ms: int | None, *, redelivered: bool
    ) -> list[InMessage]:
        reply = await self._client.xreadgroup(
            self.streams.group,
            self.streams.consumer,
            {self.streams.in_stream: start},
            count=count,
            block=block_ms,
        )
        messages: list[InMessage] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                messages.append(self._message(entry_id, fields, redelivered))
        return await self._counted(messages) if redelivered else messages

    async def _counted(self, messages: list[InMessage]) -> list[InMessage]:
        """``messages`` (redelivered to this consumer) with the group's delivery counts."""
        if not messages:
            return messages
        pending = await self._client.xpending_range(
            self.streams.in_stream,
            self.streams.group,
            min=messages[0].entry,
            max=messages[-1].entry,
            count=len(messages),
            consumername=self.streams.consumer,
        )
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [replace(message, deliveries=counts.get(message.entry, 2)) for message in messages]

    def _message(self, entry_id: Any, fields: Any, redelivered: bool) -> InMessage:
        entry = _text(entry_id)
        body = fields.get(_FIELD) if fields else None
        return InMessage(entry, body, _entry_ms(entry), redelivered, 2 if redelivered else 1)

    async def claim_stale(self, min_idle_ms: int, count: int) -> list[InMessage]:
        reply = await self._client.xautoclaim(
            self.streams.in_stream,
            self.streams.group,
            self.streams.consumer,
            min_idle_time=min_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        cursor, entries = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._claim_cursor = _text(cursor)
        if deleted:  # trimmed from the stream before anyone predicted them: nothing to do
            await self._client.xack(self.streams.in_stream, self.streams.group, *deleted)
        return await self._counted(
            [self._message(entry_id, fields, True) for entry_id, fields in entries if fields]
        )

    async def commit(self, commits: Sequence[Commit]) -> int:
        if not commits:
            return 0
        args: list[Any] = [self.streams.group, self.streams.out_maxlen]
        for commit in commits:
            args += [commit.message.entry, 2 if commit.dead else 1, commit.document]
        keys = [self.streams.in_stream, self.streams.out_stream, self.streams.dead_stream]
        return int(await self._commit_script(keys=keys, args=args))

    async def rewind(self) -> None:
        self._own_pending = True

    async def lag(self) -> GroupLag:
        for group in await self._client.xinfo_groups(self.streams.in_stream):
            if _text(group["name"]) == self.streams.group:
                lag = group.get("lag")
                return GroupLag(None if lag is None else int(lag), int(group["pending"]))
        return GroupLag(None, 0)

    async def publish_event(self, event: dict[str, Any]) -> None:
        await self._client.xadd(
            self.streams.events_stream, {_FIELD: orjson.dumps(event)}, maxlen=_EVENTS_MAXLEN
        )

    async def next_events(self, block_ms: int) -> list[dict[str, Any]]:
        reply = await self._events_client.xread(
            {self.streams.events_stream: self._events_from or "$"}, block=block_ms, count=100
        )
        bodies = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._events_from = _text(entry_id)
                bodies.append(fields.get(_FIELD))
        return parse_events(bodies)

    async def close(self) -> None:
        for client in (self._client, self._events_client):
            if client is not None:
                await client.aclose()


def publish_event_sync(broker: str, stream: str, event: dict[str, Any]) -> None:
    """Append ``event`` to the control stream ``stream`` (blocking; for promote/rollback)."""
    redis = require("redis", "stream")
    client = redis.Redis.from_url(broker, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.xadd(stream, {_FIELD: orjson.dumps(event)}, maxlen=_EVENTS_MAXLEN)
    finally:
        client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
