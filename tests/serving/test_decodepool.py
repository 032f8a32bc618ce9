"""The decode process: large bodies decoded in a child give what this process gives (the
same columns, the same errors), a child killed mid-body fails only that body, and
nothing is left running once the pool is closed."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.contract import InputColumn, InputContract, InputProblem, RequestValidationError
from modelyard.errors import LimitExceeded, ModelyardError, ServiceUnavailable
from modelyard.serving.decodepool import BodyDecoder, DecodePool
from modelyard.serving.protocols import OFFLOAD_BYTES, ServingError
from modelyard.serving.protocols._bodies import OWN_SHAPE, mlflow_body, own_body, v2_body
from modelyard.serving.protocols._requests import (
    clicks_body,
    feedback_body,
    load_body,
    reward_body,
)
from modelyard.types import ColumnBlocks

CONTRACT = InputContract(
    (
        InputColumn("size", "numeric", nullable=False, min=40.0, max=200.0),
        InputColumn("town", "categorical", nullable=False, categories=frozenset({"a", "b"})),
    ),
    reject_unseen=True,
)
ROWS = [{"size": 40.0 + i % 150, "town": "ab"[i % 2]} for i in range(2_000)]
MAX_ROWS = 10_000


def _large(payload: Any) -> bytes:
    """``payload`` as JSON, padded with whitespace past :data:`OFFLOAD_BYTES`."""
    body = orjson.dumps(payload)
    return body + b" " * max(0, OFFLOAD_BYTES + 1 - len(body))


def _distinct_keys(count: int) -> bytes:
    """One /v1 row of ``count`` distinct keys: slow to parse, tiny in containers."""
    return b'{"rows": [{' + b",".join(b'"k%d": 1' % i for i in range(count)) + b"}]}"


def test_errors_survive_pickling() -> None:
    problems = [InputProblem(3, "size", "wrong_type", "'x' is not a number")]
    errors: list[ModelyardError] = [
        ServingError(
            422,
            "the request does not fit",
            kind="validation",
            loc=["body", "rows"],
            problems=problems,
            items=[{"loc": ["body"], "msg": "m", "type": "t"}],
            headers={"Retry-After": "1"},
        ),
        RequestValidationError(problems, total=7),
        LimitExceeded("the body came too slowly", status=408),
        ServiceUnavailable("not now"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.args, str(copy), copy.__dict__) == (error.args, str(error), error.__dict__)
        assert copy.http_status == error.http_status


def _refusal(call: Any) -> ServingError:
    with pytest.raises(ServingError) as caught:
        call()
    return caught.value


async def _remote_refusal(pool: DecodePool, decoder: BodyDecoder) -> ServingError:
    with pytest.raises(ServingError) as caught:
        await pool.decode(decoder, CONTRACT)
    return caught.value


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended and been reaped (a zombie still counts as there)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "X"
    except FileNotFoundError:
        return True


def test_the_decode_process_decodes_as_this_process_does() -> None:
    bad_rows = [*ROWS[:5], {"size": "x", "town": "c"}, *ROWS[5:], {"town": "a"}]
    v2 = {
        "id": "mine",
        "outputs": [{"name": "predict"}],
        "inputs": [
            {
                "name": "size",
                "shape": [len(ROWS)],
                "datatype": "FP64",
                "data": [r["size"] for r in ROWS],
            },
            {
                "name": "town",
                "shape": [len(ROWS)],
                "datatype": "BYTES",
                "data": [r["town"] for r in ROWS],
            },
        ],
    }
    csv = "size,town\n" + "".join(f"{r['size']},{r['town']}\n" for r in ROWS * 4)
    good = [
        BodyDecoder(own_body, _large({"rows": ROWS}), MAX_ROWS, OWN_SHAPE),
        BodyDecoder(mlflow_body, _large({"dataframe_records": ROWS}), False, MAX_ROWS),
        BodyDecoder(mlflow_body, csv.encode(), True, MAX_ROWS),
    ]
    v2_body_bytes = _large(v2)
    v2_good = BodyDecoder(v2_body, v2_body_bytes, len(v2_body_bytes), 4, MAX_ROWS)
    bad = [
        (own_body, _large({"rows": bad_rows}), MAX_ROWS, OWN_SHAPE),
        (own_body, _large([1, 2]), MAX_ROWS, OWN_SHAPE),
        (own_body, b'{"rows": [}' + b" " * OFFLOAD_BYTES, MAX_ROWS, OWN_SHAPE),
        (own_body, _large({"rows": ROWS}), 10, OWN_SHAPE),  # more containers than 10 rows need
        (mlflow_body, _large({"dataframe_split": {"columns": ["size"], "data": [[1]]}}), False, 9),
        (mlflow_body, b"size,town\n\xff,a\n" + b"1,a\n" * 70_000, True, MAX_ROWS),
        (v2_body, v2_body_bytes, len(v2_body_bytes) - 10, 4, MAX_ROWS),  # an unparsable header
    ]

    async def main() -> None:
        pool = DecodePool(warm=["modelyard.serving.protocols._bodies"])
        try:
            for decoder in [*good, v2_good]:
                columns, rows = await pool.decode(decoder, CONTRACT)
                remote_extra = decoder.extra
                here, count = decoder(CONTRACT)
                assert rows == count and remote_extra == decoder.extra
                assert isinstance(columns, ColumnBlocks) and columns.layout is CONTRACT.layout
                for name in CONTRACT.names:
                    np.testing.assert_array_equal(columns[name], here[name])
            assert v2_good.extra is not None and v2_good.extra.given_id == "mine"
            for run, body, *args in bad:
                expected = _refusal(lambda: run(body, CONTRACT, *args))  # noqa: B023
                found = await _remote_refusal(pool, BodyDecoder(run, body, *args))
                assert (found.http_status, found.kind, found.detail_list()) == (
                    expected.http_status,
                    expected.kind,
                    expected.detail_list(),
                )
                assert found.message == expected.message
        finally:
            await pool.aclose()

    asyncio.run(main())


def test_the_decode_process_checks_other_bodies_as_this_process_does() -> None:
    """Feedback, reward, clicks and load bodies: the same checked items, the same
    refusals, from :meth:`DecodePool.run` as from the same function here."""
    items = [
        {"request_id": f"r{i % 7}", "row": i, "label": [1.5, "yes", 3, True][i % 4]}
        for i in range(MAX_ROWS)
    ]
    feedback = _large({"model": "houses", "items": items})
    keys = b'{"model": "m", "items": [{' + b",".join(b'"k%d": 1' % i for i in range(40_000))
    good = [
        (feedback_body, feedback),
        (reward_body, _large({"items": [{"request_id": "r", "reward": 0.5}] * 5_000})),
        (clicks_body, _large({"request_id": "r", "clicked": list(range(MAX_ROWS))})),
        (load_body, _large({"ref": "houses:1"})),
    ]
    bad = [
        (feedback_body, keys + b"}]}"),  # 40,000 unknown keys: 100 of them listed
        (feedback_body, _large({"model": "m", "items": [*items, items[0]]})),  # too many
        (feedback_body, _large({"model": "m", "items": [{"request_id": "", "label": None}]})),
        (reward_body, _large({"items": [{"request_id": "r", "reward": "x"}] * 10_001})),
        (reward_body, b'{"items": [' + b" " * OFFLOAD_BYTES + b"}"),  # not JSON
        (clicks_body, _large({"request_id": "r", "clicked": ["a", 1.5]})),
        (load_body, b'{"ref": [' + b",".join([b"[]"] * 20_000) + b"]}"),  # too many lists
        (load_body, _large([{"ref": "houses:1"}])),
    ]

    async def main() -> None:
        pool = DecodePool(warm=["modelyard.serving.protocols._requests"])
        try:
            for check, body in good:
                assert len(body) > OFFLOAD_BYTES
                assert await pool.run(check, body, MAX_ROWS) == check(body, MAX_ROWS)
            refusals = []
            for check, body in bad:
                expected = _refusal(lambda: check(body, MAX_ROWS))  # noqa: B023
                with pytest.raises(ServingError) as caught:
                    await pool.run(check, body, MAX_ROWS)
                found = caught.value
                assert (found.http_status, found.kind, found.message, found.detail_list()) == (
                    expected.http_status,
                    expected.kind,
                    expected.message,
                    expected.detail_list(),
                )
                refusals.append(found.http_status)
            assert refusals == [422, 413, 422, 422, 400, 422, 413, 422]
            assert pool.handled == len(good) + len(bad)
        finally:
            await pool.aclose()

    asyncio.run(main())


def test_contracts_are_sent_again_to_a_decode_process_that_let_them_go() -> None:
    """More versions than a child keeps, in turn: each body is decoded with its own."""
    contracts = [dataclasses.replace(CONTRACT, max_rows=1_000 + n) for n in range(12)]
    body = _large({"rows": ROWS})

    async def main() -> None:
        pool = DecodePool()
        try:
            for contract in [*contracts, *contracts[::-1], *contracts]:
                decoder = BodyDecoder(own_body, body, MAX_ROWS, OWN_SHAPE)
                with pytest.raises(ServingError, match=f"the {contract.max_rows} allowed"):
                    await pool.decode(decoder, contract)  # 2,000 rows: too many for each
        finally:
            await pool.aclose()

    asyncio.run(main())


async def _kill_midway(pool: DecodePool, job: Coroutine[Any, Any, Any]) -> None:
    """Run ``job`` on the pool's child and kill the child 50 ms into it: a 503."""
    child = pool.pid
    assert child is not None
    busy = _cpu_ticks(child)
    task = asyncio.create_task(job)
    deadline = time.monotonic() + 60
    while _cpu_ticks(child) < busy + 5:
        assert not task.done() and time.monotonic() < deadline
        await asyncio.sleep(0.005)
    os.kill(child, signal.SIGKILL)
    with pytest.raises(ServiceUnavailable, match="send the request again"):
        await task


def test_a_killed_decode_process_fails_only_its_body_and_is_replaced() -> None:
    async def main() -> None:
        pool = DecodePool()
        good = BodyDecoder(own_body, _large({"rows": ROWS}), MAX_ROWS, OWN_SHAPE)
        slow = _distinct_keys(1_200_000)
        try:
            await pool.decode(good, CONTRACT)
            first = pool.pid
            await _kill_midway(
                pool, pool.decode(BodyDecoder(own_body, slow, MAX_ROWS, OWN_SHAPE), CONTRACT)
            )
            _, rows = await pool.decode(good, CONTRACT)  # a new child
            second = pool.pid
            assert rows == len(ROWS) and second not in (None, first)
            assert second is not None
            os.kill(second, signal.SIGKILL)  # a child that dies while idle
            deadline = time.monotonic() + 60
            while not _gone(second):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            _, rows = await pool.decode(good, CONTRACT)  # taken by a new child at once
            assert rows == len(ROWS) and pool.pid not in (None, first, second)
            third = pool.pid
            await _kill_midway(pool, pool.run(feedback_body, slow, MAX_ROWS))  # a check too
            assert await pool.run(load_body, _large({"ref": "a:1"}), MAX_ROWS) == "a:1"
            last = pool.pid
            assert last not in (None, third)
        finally:
            await pool.aclose()
        assert last is not None and _gone(last)
        assert last not in [child.pid for child in multiprocessing.active_children()]
        with pytest.raises(ServiceUnavailable):
            await pool.decode(good, CONTRACT)  # closed: no new child

    asyncio.run(main())
