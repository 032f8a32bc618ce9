"""Model updates from the queue, on a real redis-server.

A consumer follows ``houses@production`` with registry polling off, so only the
control stream can tell it about a promotion. While messages keep coming, ``houses:2``
is trained and promoted (``api.promote`` publishes the event, ``MODELYARD_EVENTS_URL``
being set): every output names exactly one version and equals that version's own
prediction, none is lost, and once version 2 answers, version 1 never does again. Then
``houses:3``, whose model file no longer matches its checksum, is promoted: it is
refused and version 2 keeps scoring.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import TYPE_CHECKING

import pytest
from _streams import house_row, push, read_all, start_consumer, wait_for

from modelyard import api
from modelyard.settings import Settings

if TYPE_CHECKING:
    import redis

    from _yard import Yard

pytestmark = pytest.mark.e2e


def _feed(client: redis.Redis, stop: threading.Event, sent: list[int]) -> None:
    index = 0
    while not stop.is_set():
        batch = list(range(index, index + 10))
        push(client, "in", [{"id": f"m{i}", "row": house_row(i)} for i in batch])
        sent.extend(batch)
        index += 10
        time.sleep(0.02)


def _corrupt_model_file(yard: Yard, ref: str) -> str:
    with api.open_registry(yard.settings) as registry:
        digest = registry.get_version(ref).artifacts["model"].digest
        path = registry.store.path(digest)
    assert path is not None
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return digest


def test_promotion_mid_stream_switches_between_batches_and_a_tampered_version_is_refused(
    fresh_yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    yard = fresh_yard
    yard.settings = Settings(home=yard.settings.home, events_url=redis_url)
    yard.train_houses(max_iter=60)
    running = start_consumer(yard.settings, redis_url, model="houses", max_batch_rows=32)
    stop = threading.Event()
    sent: list[int] = []
    feeder = threading.Thread(target=_feed, args=(client, stop, sent))
    feeder.start()
    try:
        wait_for(lambda: client.xlen("out") >= 100, 60, "outputs of version 1")
        yard.train_houses(max_iter=25)  # houses:2, promoted: an event on modelyard.models
        assert client.xlen("modelyard.models") == 2  # the promotions of versions 1 and 2
        wait_for(lambda: running.consumer.version == 2, 60, "the switch to houses:2")
        time.sleep(0.3)

        third = yard.train_houses(max_iter=40, promote=False)
        digest = _corrupt_model_file(yard, third)
        # promote refuses a tampered version; an operator forcing it (audited) must still
        # not get it scored
        api.promote(
            third,
            reason="test",
            allow_failed_gates=True,
            allow_corrupt=True,
            settings=yard.settings,
        )
        slot = running.consumer.manager.get("houses")
        assert slot is not None
        wait_for(lambda: slot.error is not None, 60, "houses:3 to be refused")
        time.sleep(0.5)
    finally:
        stop.set()
        feeder.join()
    try:
        wait_for(lambda: client.xlen("out") >= len(sent), 60, "the last outputs")
    finally:
        running.stop()

    # the reason is there; the digest and paths stay in the log (the error is shown to
    # clients)
    assert "refused houses:3" in slot.error and "modified or corrupted" in slot.error
    assert digest not in slot.error
    assert "still serving houses:2" in slot.error
    outputs = read_all(client, "out")
    assert sorted(int(doc["id"][1:]) for doc in outputs) == sorted(sent), "lost or duplicated"
    rows = [house_row(i) for i in range(max(sent) + 1)]
    expected = {v: yard.reference(f"houses:{v}", rows).values for v in (1, 2)}
    assert not (expected[1] == expected[2]).all(), "the versions must predict differently"
    versions = [doc["version"] for doc in outputs]
    assert set(versions) == {1, 2}
    first_two = versions.index(2)
    assert set(versions[first_two:]) == {2}, "version 1 answered after version 2 took over"
    for doc in outputs:
        index = int(doc["id"][1:])
        assert doc["prediction"] == pytest.approx(expected[doc["version"]][index], rel=1e-12)
    assert client.xlen("in.dead") == 0


def test_a_consumer_that_missed_the_event_finds_the_change_at_its_next_poll(
    fresh_yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    yard = fresh_yard  # no MODELYARD_EVENTS_URL: promotions publish nothing
    yard.train_houses(max_iter=60)
    yard.train_houses(max_iter=25)
    running = start_consumer(yard.settings, redis_url, model="houses", poll_seconds=0.3)
    try:
        assert running.consumer.version == 2
        api.rollback("houses", reason="test", settings=yard.settings)
        wait_for(lambda: running.consumer.version == 1, 60, "the poll to find houses:1")
        push(client, "in", [{"id": "after", "row": house_row(3)}])
        wait_for(lambda: client.xlen("out") >= 1, 60, "the output")
    finally:
        running.stop()
    assert client.xlen("modelyard.models") == 0
    (output,) = read_all(client, "out")
    assert output["version"] == 1
    expected = yard.reference("houses:1", [house_row(3)]).values[0]
    assert output["prediction"] == pytest.approx(expected, rel=1e-12)
