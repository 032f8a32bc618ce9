"""The prediction log indexed in PostgreSQL instead of SQLite (a real local server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.predlog import (
    FeedbackItem,
    PredictionLog,
    read_predictions,
    repair_index,
    segment_paths,
)
from modelyard.settings import Settings
from modelyard.types import RuntimeOutput

from .conftest import at, house_columns


@pytest.mark.e2e
def test_round_trip_with_the_index_on_postgres(tmp_path: Path, fresh_postgres_url: str) -> None:
    settings = Settings(home=tmp_path / "home", registry_url=fresh_postgres_url)
    with PredictionLog.open(settings, flush_rows=1_000_000, flush_seconds=3600) as log:
        for number, version in enumerate([1, 1, 2]):
            log.log(
                model="house-prices",
                version=version,
                request_id=f"r{number}",
                received_at=at(number),
                columns=house_columns(2),
                rows=2,
                output=RuntimeOutput(values=np.array([1.0, 2.0])),
                latency_ms=1.0,
                endpoint="predict",
            )
            log.flush()
        assert log.record_feedback("house-prices", [FeedbackItem("r1", 7)], received_at=at(9)) == 1

    frame = read_predictions(settings, "house-prices", start=at(1), with_feedback=True)
    assert frame["request_id"].tolist() == ["r1", "r1", "r2", "r2"]
    assert frame["label"].tolist()[:1] == ["7"]
    assert len(segment_paths(settings, "house-prices", version=1)) == 2
    # Every segment was indexed as it was written: nothing for repair to add.
    assert repair_index(settings).added == 0
