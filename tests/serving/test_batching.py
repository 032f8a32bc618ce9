"""MicroBatcher under real concurrency: each request gets exactly its own rows."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from modelyard.contract import InputColumn, InputContract, decode_records
from modelyard.errors import ModelyardError
from modelyard.models.runtime import SklearnRuntime
from modelyard.serving.batching import INLINE_MAX_ROWS, Activity, MicroBatcher
from modelyard.types import Columns, RuntimeOutput


class RowSums:
    """A runtime: each row's value is the sum of its columns; probabilities [s, 1 - s]."""

    name = "row-sums"

    def __init__(self, *, delay: float = 0.0, poison: float | None = None) -> None:
        self.delay = delay
        self.poison = poison
        self.calls: list[int] = []  # rows per call
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        with self._lock:
            self.calls.append(rows)
        self.started.set()
        self.gate.wait(timeout=10)
        if self.delay:
            time.sleep(self.delay)
        sums = np.sum([np.asarray(values, dtype=np.float64) for values in columns.values()], axis=0)
        if self.poison is not None and np.any(sums == self.poison):
            raise ValueError(f"poisoned row {self.poison}")
        return RuntimeOutput(
            values=sums, proba=np.column_stack([sums, 1 - sums]), classes=["sum", "rest"]
        )


def _request(first: float, rows: int) -> Columns:
    """Rows whose sums are first, first + 1, ... (so each is recognisable)."""
    base = first + np.arange(rows, dtype=np.float64)
    return {"a": base - 1.0, "b": np.ones(rows)}


def _run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(main())


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


def test_200_concurrent_requests_each_get_their_own_rows() -> None:
    runtime = RowSums(delay=0.002)
    batches: list[tuple[int, int]] = []
    rng = random.Random(7)
    sizes = [rng.randint(1, 40) for _ in range(200)]
    pauses = [rng.uniform(0, 0.05) for _ in range(200)]  # arrivals spread over 50 ms

    async def main() -> list[RuntimeOutput]:
        batcher = MicroBatcher(
            runtime,
            max_batch_rows=256,
            max_wait_ms=2.0,
            on_batch=lambda r, n: batches.append((r, n)),
        )

        async def client(i: int) -> RuntimeOutput:
            await asyncio.sleep(pauses[i])
            return await batcher.predict(_request(1000.0 * i, sizes[i]), sizes[i])

        outputs = await asyncio.gather(*(client(i) for i in range(200)))
        await batcher.aclose()
        return outputs

    outputs = _run(main)
    for i, (rows, output) in enumerate(zip(sizes, outputs, strict=True)):
        expected = 1000.0 * i + np.arange(rows)
        np.testing.assert_array_equal(output.values, expected)
        assert output.proba is not None
        np.testing.assert_array_equal(output.proba[:, 0], expected)
        assert output.classes == ["sum", "rest"]
    assert sum(rows for rows, _ in batches) == sum(sizes) == sum(runtime.calls)
    assert sum(requests for _, requests in batches) == 200
    assert max(requests for _, requests in batches) > 1, "no batching under load"
    assert len(batches) < 200
    assert all(rows <= 256 for rows, _ in batches)


def test_a_lone_request_does_not_wait_for_max_wait() -> None:
    runtime = RowSums()

    async def main() -> list[float]:
        batcher = MicroBatcher(runtime, max_wait_ms=5000)
        took = []
        for i in range(3):  # also after a call, once the runtime is idle again
            start = time.monotonic()
            output = await batcher.predict(_request(float(i), 2), 2)
            took.append(time.monotonic() - start)
            np.testing.assert_array_equal(output.values, [i, i + 1])
        await batcher.aclose()
        return took

    assert max(_run(main)) < 2.5  # far below the 5 s window


def test_requests_queued_during_a_call_wait_at_most_max_wait_after_it() -> None:
    runtime = RowSums()

    async def main() -> tuple[float, list[int]]:
        batcher = MicroBatcher(runtime, max_wait_ms=300)
        runtime.gate.clear()
        first = asyncio.create_task(batcher.predict(_request(0, 1), 1))
        await _until(runtime.started.is_set)
        queued = asyncio.create_task(batcher.predict(_request(10, 3), 3))
        await asyncio.sleep(0.01)
        runtime.gate.set()
        await first
        released = time.monotonic()
        await queued
        waited = time.monotonic() - released
        await batcher.aclose()
        return waited, runtime.calls

    waited, calls = _run(main)
    assert calls == [1, 3]
    assert waited < 2.0  # bounded by max_wait_ms (0.3 s), not held for more requests


def test_batches_stop_at_max_batch_rows_and_a_larger_request_runs_alone() -> None:
    runtime = RowSums()

    async def main() -> list[RuntimeOutput]:
        batcher = MicroBatcher(runtime, max_batch_rows=10, max_wait_ms=0)
        runtime.gate.clear()
        head = asyncio.create_task(batcher.predict(_request(0, 1), 1))
        await _until(runtime.started.is_set)
        sizes = [4, 4, 4, 25, 3, 3]
        tasks = [
            asyncio.create_task(batcher.predict(_request(100 * i, n), n))
            for i, n in enumerate(sizes)
        ]
        await asyncio.sleep(0.01)
        runtime.gate.set()
        outputs = await asyncio.gather(head, *tasks)
        await batcher.aclose()
        return outputs

    outputs = _run(main)
    assert runtime.calls == [1, 8, 4, 25, 6]
    np.testing.assert_array_equal(outputs[4].values, 300 + np.arange(25))


def test_a_runtime_error_fails_only_the_request_it_comes_from() -> None:
    runtime = RowSums(poison=-7.0)

    async def main() -> list[Any]:
        batcher = MicroBatcher(runtime, max_wait_ms=0)
        runtime.gate.clear()
        head = asyncio.create_task(batcher.predict(_request(0, 2), 2))
        await _until(runtime.started.is_set)
        same_batch = [
            asyncio.create_task(batcher.predict(_request(first, 2), 2)) for first in (10, -8, 20)
        ]
        await asyncio.sleep(0.01)
        runtime.gate.set()
        results = await asyncio.gather(head, *same_batch, return_exceptions=True)
        after = await batcher.predict(_request(30, 1), 1)
        await batcher.aclose()
        return [*results, after]

    head, ten, poisoned, twenty, after = _run(main)
    np.testing.assert_array_equal(head.values, [0, 1])
    # the merged call of the three failed; each was then predicted on its own
    assert runtime.calls == [2, 6, 2, 2, 2, 1]
    np.testing.assert_array_equal(ten.values, [10, 11])
    np.testing.assert_array_equal(twenty.values, [20, 21])
    assert isinstance(poisoned, ValueError) and "poisoned row -7" in str(poisoned)
    np.testing.assert_array_equal(after.values, [30])


def test_disabled_calls_the_runtime_once_per_request() -> None:
    runtime = RowSums(delay=0.002)
    batches: list[tuple[int, int]] = []

    async def main() -> list[RuntimeOutput]:
        batcher = MicroBatcher(runtime, enabled=False, on_batch=lambda r, n: batches.append((r, n)))
        outputs = await asyncio.gather(
            *(batcher.predict(_request(100 * i, i + 1), i + 1) for i in range(20))
        )
        await batcher.aclose()
        return outputs

    outputs = _run(main)
    assert sorted(runtime.calls) == list(range(1, 21))
    assert sorted(batches) == [(i + 1, 1) for i in range(20)]
    for i, output in enumerate(outputs):
        np.testing.assert_array_equal(output.values, 100 * i + np.arange(i + 1))


def test_aclose_finishes_queued_work_then_refuses_requests() -> None:
    runtime = RowSums()

    async def main() -> list[RuntimeOutput]:
        batcher = MicroBatcher(runtime, max_batch_rows=4, max_wait_ms=1000)
        runtime.gate.clear()
        tasks = [asyncio.create_task(batcher.predict(_request(10 * i, 3), 3)) for i in range(5)]
        await _until(runtime.started.is_set)
        closing = asyncio.create_task(batcher.aclose())
        await asyncio.sleep(0.01)
        with pytest.raises(ModelyardError, match="batcher is closed"):
            await batcher.predict(_request(0, 1), 1)
        runtime.gate.set()
        await closing
        return [task.result() for task in tasks]

    outputs = _run(main)
    assert runtime.calls == [3, 3, 3, 3, 3]
    for i, output in enumerate(outputs):
        np.testing.assert_array_equal(output.values, 10 * i + np.arange(3))


def test_a_cancelled_request_is_left_out_of_the_next_call() -> None:
    runtime = RowSums()

    async def main() -> RuntimeOutput:
        batcher = MicroBatcher(runtime, max_wait_ms=0)
        runtime.gate.clear()
        head = asyncio.create_task(batcher.predict(_request(0, 1), 1))
        await _until(runtime.started.is_set)
        gone = asyncio.create_task(batcher.predict(_request(50, 5), 5))
        kept = asyncio.create_task(batcher.predict(_request(70, 2), 2))
        await asyncio.sleep(0.01)
        gone.cancel()
        runtime.gate.set()
        await head
        output = await kept
        await batcher.aclose()
        return output

    np.testing.assert_array_equal(_run(main).values, [70, 71])
    assert runtime.calls == [1, 2]


def test_a_wrong_number_of_predictions_is_an_error_not_a_misaligned_answer() -> None:
    class Truncating(RowSums):
        def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
            output = super().predict(columns, rows)
            return RuntimeOutput(values=output.values[:-1])

    async def main() -> None:
        batcher = MicroBatcher(Truncating())
        await batcher.predict(_request(0, 3), 3)

    with pytest.raises(ModelyardError, match="returned 2 predictions for 3 rows"):
        _run(main)


def test_batched_sklearn_pipeline_predictions_equal_per_request_predictions() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.uniform(40, 200, 300),
            "town": rng.choice(["alpha", "beta", "gamma"], 300),
        }
    )
    target = 1000 * frame["size"] + frame["town"].map({"alpha": 5e4, "beta": 2e4, "gamma": 0})
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("town", OneHotEncoder(handle_unknown="ignore"), ["town"])],
                    remainder="passthrough",
                ),
            ),
            ("model", LinearRegression()),
        ]
    ).fit(frame, target)
    spec = InputContract(
        (
            InputColumn("size", "numeric", nullable=False),
            InputColumn("town", "categorical", nullable=False),
        )
    )
    picks = [rng.choice(300, size=int(rng.integers(1, 12)), replace=False) for _ in range(40)]
    payloads = [frame.iloc[pick].to_dict(orient="records") for pick in picks]
    runtime = SklearnRuntime(pipeline, ["size", "town"])

    async def main() -> list[RuntimeOutput]:
        batcher = MicroBatcher(runtime, max_wait_ms=1.0)
        decoded = [decode_records(payload, spec) for payload in payloads]
        outputs = await asyncio.gather(*(batcher.predict(cols, rows) for cols, rows in decoded))
        await batcher.aclose()
        return outputs

    for pick, output in zip(picks, _run(main), strict=True):
        expected = pipeline.predict(frame.iloc[pick])
        np.testing.assert_allclose(output.values, expected, rtol=1e-12)


class BriefRowSums(RowSums):
    """RowSums that says its calls are brief, and records the thread of each call."""

    inline = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        self.threads.append(threading.get_ident())
        return super().predict(columns, rows)


def test_a_lone_small_request_runs_on_the_loop_thread_only_when_alone() -> None:
    brief = BriefRowSums()
    slow = RowSums()  # no `inline`: always on a thread
    activity = Activity()
    batches: list[tuple[int, int]] = []

    async def main() -> None:
        loop_thread = threading.get_ident()
        batcher = MicroBatcher(
            brief, activity=activity, on_batch=lambda r, n: batches.append((r, n))
        )
        activity.requests = 1  # this request is the server's only one
        output = await batcher.predict(_request(5.0, 2), 2)
        np.testing.assert_array_equal(output.values, [5.0, 6.0])
        assert brief.threads[-1] == loop_thread
        assert batches[-1] == (2, 1)  # counted like any runtime call
        big = INLINE_MAX_ROWS + 1
        output = await batcher.predict(_request(0.0, big), big)
        assert brief.threads[-1] != loop_thread  # too many rows for the loop thread
        activity.requests = 3  # others are being handled: hand over, so they can batch
        output = await batcher.predict(_request(1.0, 1), 1)
        assert output.values.tolist() == [1.0] and brief.threads[-1] != loop_thread
        await batcher.aclose()
        unaware = MicroBatcher(brief)  # no activity given: never on the loop thread
        activity.requests = 1
        await unaware.predict(_request(1.0, 1), 1)
        assert brief.threads[-1] != loop_thread
        await unaware.aclose()
        plain = MicroBatcher(slow, activity=activity)
        await plain.predict(_request(1.0, 1), 1)
        assert slow.calls == [1]
        await plain.aclose()

    _run(main)


def test_a_burst_of_small_requests_is_batched_not_answered_one_by_one_inline() -> None:
    """Requests that arrive together start as tasks one after another; each counts itself
    in ``activity`` only once it runs. The first must not take the loop thread for its
    runtime call before the others have started, or none of them is ever batched."""
    brief = BriefRowSums()
    activity = Activity()
    batches: list[tuple[int, int]] = []

    async def main() -> list[RuntimeOutput]:
        batcher = MicroBatcher(
            brief, activity=activity, on_batch=lambda r, n: batches.append((r, n))
        )

        async def request(value: float) -> RuntimeOutput:  # as the app's middleware does
            activity.requests += 1
            try:
                return await batcher.predict(_request(value, 1), 1)
            finally:
                activity.requests -= 1

        outputs = await asyncio.gather(*(request(float(i)) for i in range(16)))
        await batcher.aclose()
        return outputs

    outputs = _run(main)
    assert [output.values.tolist() for output in outputs] == [[float(i)] for i in range(16)]
    assert sum(n for _, n in batches) == 16
    assert len(batches) < 16, batches  # merged: fewer runtime calls than requests
