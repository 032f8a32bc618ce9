"""Delivery on a real redis-server, with `modelyard stream` consumer subprocesses.

- SIGKILL of a consumer under load, then another member: every input id gets an
  output, duplicates stay within one batch and are marked as redeliveries, and the
  messages a dead member left pending are taken over (XAUTOCLAIM);
- two consumers in one group split the load;
- SIGTERM finishes and acknowledges the batch in hand and flushes the prediction log.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
from _streams import (
    consumer_command,
    house_row,
    kill,
    push,
    read_all,
    stop,
    subprocess_env,
    wait_for,
)

from modelyard.predlog import read_predictions

if TYPE_CHECKING:
    import redis

    from _yard import Yard

pytestmark = pytest.mark.e2e

BATCH = 50


def _start(yard: Yard, redis_url: str, name: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        consumer_command(yard.settings, redis_url, *args, consumer=name),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _members(client: redis.Redis) -> dict[str, int]:
    """Group members that have read, and their pending counts."""
    try:
        found = client.xinfo_consumers("in", "modelyard")
    except Exception:  # no group yet
        return {}
    return {member["name"].decode(): int(member["pending"]) for member in found}


def _messages(count: int, prefix: str = "m") -> list[dict[str, Any] | bytes]:
    return [{"id": f"{prefix}{i}", "row": house_row(i)} for i in range(count)]


def test_sigkill_under_load_loses_nothing_and_bounds_duplicates(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    total = 3000
    push(client, "in", _messages(total))
    # a member that read ten messages and died without acknowledging them
    client.xgroup_create("in", "modelyard", id="0")
    ghost = client.xreadgroup("modelyard", "ghost", {"in": ">"}, count=10)
    ghost_ids = {fields[b"data"] for _, fields in ghost[0][1]}
    options = ("--max-batch-rows", str(BATCH), "--claim-idle-ms", "300")
    first = _start(yard, redis_url, "c1", *options)
    try:
        wait_for(lambda: client.xlen("out") >= 600 or first.poll() is not None, 120, "outputs")
        assert first.poll() is None, first.communicate()[1][-3000:]
    finally:
        kill(first)
    held_at_kill = _members(client).get("c1", 0)
    written_at_kill = client.xlen("out")
    assert written_at_kill < total, "c1 finished before it was killed: nothing was tested"

    second = _start(yard, redis_url, "c2", *options)
    try:
        wait_for(
            lambda: (
                len({d["id"] for d in read_all(client, "out")}) >= total
                or second.poll() is not None
            ),
            180,
            "every input's output",
        )
    finally:
        code, stderr = stop(second)
    assert code == 0, stderr[-3000:]

    outputs = read_all(client, "out")
    ids = collections.Counter(doc["id"] for doc in outputs)
    assert set(ids) == {f"m{i}" for i in range(total)}, "an input has no output"
    duplicates = [doc for doc in outputs if ids[doc["id"]] > 1]
    assert len(ids) + BATCH >= len(outputs), f"{len(outputs) - len(ids)} duplicates"
    seen: set[str] = set()
    for doc in outputs:  # every second output of an id is marked as a redelivery
        if doc["id"] in seen:
            assert doc["redelivered"] is True, doc
        seen.add(doc["id"])
    assert not duplicates or all(d["redelivered"] for d in duplicates[1::2])
    # what c1 and the ghost held was delivered again to c2, and marked so
    redelivered = [doc for doc in outputs if doc["redelivered"]]
    assert len(redelivered) >= held_at_kill + len(ghost_ids)
    assert {doc["consumer"] for doc in redelivered} == {"c2"}
    assert client.xpending("in", "modelyard")["pending"] == 0
    assert "stopped:" in stderr


def test_two_consumers_in_a_group_split_the_load(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    options = ("--max-batch-rows", "20", "--max-wait-ms", "20")
    consumers = [_start(yard, redis_url, name, *options) for name in ("c1", "c2")]
    try:
        wait_for(lambda: {"c1", "c2"} <= set(_members(client)), 120, "both members reading")
        total = 2000
        messages = _messages(total)
        for start in range(0, total, 100):  # a steady stream, not one backlog
            push(client, "in", messages[start : start + 100])
            time.sleep(0.05)
        wait_for(lambda: client.xlen("out") >= total, 120, "every output")
    finally:
        results = [stop(process) for process in consumers]
    assert all(code == 0 for code, _ in results), [stderr[-2000:] for _, stderr in results]
    outputs = read_all(client, "out")
    assert sorted(doc["id"] for doc in outputs) == sorted(f"m{i}" for i in range(total))
    shares = collections.Counter(doc["consumer"] for doc in outputs)
    assert set(shares) == {"c1", "c2"}
    assert min(shares.values()) >= total // 5, shares


def test_sigterm_finishes_the_batch_in_hand_and_flushes_the_log(
    fresh_yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    yard = fresh_yard
    yard.train_houses()
    total = 4000
    push(client, "in", _messages(total))
    process = _start(yard, redis_url, "c1", "--max-batch-rows", str(BATCH))
    wait_for(lambda: client.xlen("out") >= 500 or process.poll() is not None, 120, "outputs")
    code, stderr = stop(process, signal.SIGTERM)
    assert code == 0, stderr[-3000:]

    group = client.xinfo_groups("in")[0]
    delivered = int(group["entries-read"])
    assert delivered < total, "the consumer finished before SIGTERM: nothing was tested"
    assert int(group["pending"]) == 0, "the batch in hand was not acknowledged"
    outputs = read_all(client, "out")
    assert len(outputs) == delivered == len({doc["id"] for doc in outputs})
    logged = read_predictions(yard.settings, "houses")
    assert len(logged) == delivered
    assert set(logged["endpoint"]) == {"stream"}
    assert set(logged["request_id"]) == {doc["id"] for doc in outputs}
    assert f"{delivered:,} predicted" in stderr
