"""Streaming features end to end: a model trained with windowed aggregates, fed the same
events on a real redis-server, predicts what its pipeline predicts on the training
table's window columns: the stream's windows equal the training table's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from _streams import push, read_all, start_consumer, wait_for

from _projects import write_spec
from modelyard import api
from modelyard.data.windows import window_columns
from modelyard.models.fit import predict
from modelyard.spec import WindowSpec

if TYPE_CHECKING:
    import redis

    from _yard import Yard

pytestmark = pytest.mark.e2e

WINDOWS = [
    {"name": "trips_1h", "key": "driver", "agg": "count", "minutes": 60},
    {"name": "fare_mean_3", "key": "driver", "agg": "mean", "over": "fare", "events": 3},
]


def _rides(count: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    start = pd.Timestamp("2026-03-01T08:00:00Z")
    minutes = np.sort(rng.integers(0, 600, size=count))
    frame = pd.DataFrame(
        {
            "at": [(start + pd.Timedelta(minutes=int(m))).isoformat() for m in minutes],
            "driver": rng.choice(["d1", "d2", "d3"], size=count),
            "fare": rng.gamma(2.0, 8.0, size=count).round(2),
            "distance": rng.uniform(1, 30, size=count).round(2),
        }
    )
    busy = window_columns(frame, [WindowSpec(**WINDOWS[0])], "at")["trips_1h"]
    frame["minutes"] = frame["distance"] * 2.5 + busy * 4.0 + rng.normal(0, 1, size=count)
    return frame


def test_stream_windows_equal_the_training_tables(
    fresh_yard: Yard, redis_url: str, client: redis.Redis
) -> None:
    yard = fresh_yard
    frame = _rides(400)
    folder = yard.settings.home.parent / "rides"
    (folder / "data").mkdir(parents=True)
    frame.to_csv(folder / "data" / "rides.csv", index=False)
    write_spec(
        folder,
        {
            "name": "rides",
            "task": "regression",
            "target": "minutes",
            "data": {"source": {"path": "data/rides.csv"}, "timestamp_column": "at"},
            "split": {"method": "time", "test_size": 0.25},
            "features": {
                "numeric": ["distance", "trips_1h", "fare_mean_3"],
                "categorical": [],
                "windows": WINDOWS,
            },
            "model": {
                "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                "params": {"max_iter": 40, "early_stopping": False},
            },
        },
    )
    result = api.train(folder, settings=yard.settings)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=yard.settings)

    # the training table's windows, and what the registered pipeline predicts on them
    specs = [WindowSpec(**window) for window in WINDOWS]
    table = pd.concat([frame, window_columns(frame, specs, "at")], axis=1)
    pipeline = api.load_model("rides:1", settings=yard.settings)
    expected = predict(pipeline, table[["distance", "trips_1h", "fare_mean_3"]]).values

    # the same events on the stream, without the window columns: the consumer computes
    # them from the messages before each one
    rows: list[dict[str, Any]] = frame.drop(columns=["minutes"]).to_dict("records")
    push(client, "in", [{"id": f"e{i}", "row": row} for i, row in enumerate(rows[:300])])
    push(client, "in", [{"id": "tail", "rows": rows[300:]}])
    running = start_consumer(yard.settings, redis_url, model="rides", max_batch_rows=64)
    try:
        wait_for(lambda: client.xlen("out") >= 301, 120, "outputs")
    finally:
        stats = running.stop()
    assert stats.dead == 0
    outputs = {doc["id"]: doc for doc in read_all(client, "out")}
    streamed = [outputs[f"e{i}"]["prediction"] for i in range(300)]
    streamed += outputs["tail"]["predictions"]
    assert streamed == pytest.approx(expected.tolist(), rel=1e-12)
    assert len(set(np.round(table["trips_1h"], 6))) > 3, "the windows should vary"
