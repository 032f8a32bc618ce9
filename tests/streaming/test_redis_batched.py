"""The batch path gives every message the documents the one-message path gives it.

The same messages, good ones mixed with every kind of bad one (so the chunks of the
batch path have rows to map back to their messages, problems of a whole chunk, more
problems than the contract lists, messages decoded alone), go through a consumer
predicting batch by batch and one predicting message by message, on a real
redis-server; the outputs and the dead letters must be the same documents, apart from
the timing and the broker's entry ids. (Ids start with ``eq-`` or ``logged-``: the
session's yard, and its prediction log, are shared with other tests.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from _streams import house_row, push, read_all, start_consumer, wait_for

from _yard import CHURN_ROWS
from modelyard.predlog import read_predictions

if TYPE_CHECKING:
    import redis

    from _yard import Yard

pytestmark = pytest.mark.e2e


def _house_messages() -> list[dict[str, Any] | bytes]:
    messages: list[dict[str, Any] | bytes] = []
    for i in range(150):
        row = house_row(i)
        if i % 9 == 4:
            row["size"] = "big"  # wrong_type
        elif i % 13 == 5:
            del row["rooms"]  # missing_column (alone), a missing value (among others)
        elif i % 17 == 6:
            row["town"] = None  # null_value
        elif i % 19 == 7:
            row["rooms"] = True  # wrong_type: a boolean
        messages.append({"id": f"eq-r{i}", "row": row})
        if i % 23 == 0:
            three = [house_row(i + 1), {**house_row(i + 2), "size": None}, house_row(i + 3)]
            messages.append({"id": f"eq-three-{i}", "rows": three})
            messages.append({"id": f"eq-ok-{i}", "rows": [house_row(i + k) for k in range(4)]})
    bad_rows = [{"size": "x", "rooms": "y", "town": "alpha"} for _ in range(30)]
    messages += [
        {"id": "eq-many-bad", "rows": bad_rows},  # 60 problems: more than the 50 listed
        {"id": "eq-too-many", "rows": [house_row(k) for k in range(101)]},
        {"id": "eq-empty", "rows": []},
        {"id": "eq-one-object", "rows": house_row(3)},
        {"id": "eq-not-an-object", "rows": [house_row(1), 5, house_row(2)]},
        {"id": "eq-split", "columns": ["town", "size", "rooms"], "data": [["beta", 80.0, 2]]},
        {"id": "eq-split-short", "columns": ["town", "size", "rooms"], "data": [["beta", 80.0]]},
        {"id": "eq-unseen", "row": {**house_row(4), "town": "omega"}},
        {"id": "eq-extra", "row": {**house_row(5), "colour": "red"}},
        b'{"id": "eq-inf", "row": {"size": 1e400, "rooms": 2, "town": "alpha"}}',
        b"not json",
        {"row": house_row(0)},
        {"id": "eq-no-rows"},
    ]
    messages += [{"id": f"eq-tail{i}", "row": house_row(i)} for i in range(40)]
    return messages


def _churn_messages() -> list[dict[str, Any] | bytes]:
    rows = [dict(CHURN_ROWS[i % 2], tenure_months=float(i)) for i in range(60)]
    messages: list[dict[str, Any] | bytes] = [
        {"id": f"eq-c{i}", "row": row} for i, row in enumerate(rows)
    ]
    messages[7] = {"id": "eq-c7", "row": {**rows[7], "signup_date": "yesterday"}}
    messages[20] = {"id": "eq-c20", "row": {**rows[20], "plan": 3.5}}
    messages.append({"id": "eq-both", "rows": rows[:2]})
    messages.append({"id": "eq-one-bad", "rows": [rows[0], {**rows[1], "tenure_months": "long"}]})
    return messages


def _documents(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """The stream's documents without what differs between two runs by nature."""
    found = []
    for document in read_all(client, stream):
        document.pop("timing", None)  # milliseconds measured
        document.pop("entry", None)  # the broker's id of the input
        found.append(document)
    return found


def _run(
    yard: Yard,
    redis_url: str,
    client: redis.Redis,
    model: str,
    messages: list[dict[str, Any] | bytes],
    prefix: str,
    *,
    batched: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    running = start_consumer(
        yard.settings,
        redis_url,
        model=model,
        in_stream=f"{prefix}.in",
        out_stream=f"{prefix}.out",
        max_batch_rows=64,
        max_rows_per_message=100,
    )
    running.consumer.routing.batched = batched  # before any message is pushed
    try:
        push(client, f"{prefix}.in", messages)
        wait_for(
            lambda: (
                client.xlen(f"{prefix}.out") + client.xlen(f"{prefix}.in.dead") >= len(messages)
            ),
            120,
            "outputs",
        )
    finally:
        stats = running.stop()
    assert stats.messages == len(messages)
    return _documents(client, f"{prefix}.out"), _documents(client, f"{prefix}.in.dead")


@pytest.mark.parametrize(
    ("model", "messages"),
    [("houses", _house_messages()), ("churn@production", _churn_messages())],
    ids=["regressor", "classifier"],
)
def test_the_batch_path_writes_what_the_one_message_path_writes(
    yard: Yard,
    redis_url: str,
    client: redis.Redis,
    model: str,
    messages: list[dict[str, Any] | bytes],
) -> None:
    one_out, one_dead = _run(yard, redis_url, client, model, messages, "one", batched=False)
    out, dead = _run(yard, redis_url, client, model, messages, "batched", batched=True)

    assert one_dead, "the messages include bad ones"
    assert len(one_out) + len(one_dead) == len(messages)
    assert out == one_out  # in the same order, with the same numbers
    assert dead == one_dead  # the same reasons, in the same words


def test_the_batch_path_logs_each_message_under_its_own_id(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    messages: list[dict[str, Any] | bytes] = [
        {"id": f"logged-{i}", "rows": [house_row(i + k) for k in range(1 + i % 3)]}
        for i in range(90)
    ]
    messages.append({"id": "logged-bad", "rows": [house_row(0), {**house_row(1), "size": "x"}]})
    out, dead = _run(yard, redis_url, client, "houses", messages, "logged", batched=True)
    assert len(out) == 90 and [document["id"] for document in dead] == ["logged-bad"]

    def logged_rows() -> dict[str, list[int]]:
        frame = read_predictions(yard.settings, "houses")  # (other tests' rows too)
        frame = frame[frame["request_id"].str.startswith("logged-")]
        return {
            str(request_id): sorted(group["row"].tolist())
            for request_id, group in frame.groupby("request_id")
        }

    logged = logged_rows()
    assert logged == {f"logged-{i}": list(range(1 + i % 3)) for i in range(90)}


def test_overlapping_batches_write_their_outputs_in_input_order(
    yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    # batches of 8: the next one is read and predicted while the one before is written
    messages: list[dict[str, Any] | bytes] = [
        {"id": f"order-{i}", "row": house_row(i)} for i in range(300)
    ]
    running = start_consumer(
        yard.settings,
        redis_url,
        model="houses",
        in_stream="order.in",
        out_stream="order.out",
        group="order",
        max_batch_rows=8,
    )
    assert running.consumer.transport.overlapping
    try:
        push(client, "order.in", messages)
        wait_for(lambda: client.xlen("order.out") >= len(messages), 120, "outputs")
    finally:
        stats = running.stop()
    assert stats.batches >= len(messages) // 8
    ids = [document["id"] for document in read_all(client, "order.out")]
    assert ids == [f"order-{i}" for i in range(300)]  # each once, in the order pushed
    assert client.xpending("order.in", "order")["pending"] == 0
