"""Fixtures of the prediction log tests: a home folder with a SQLite registry, and requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.predlog import PredictionLog
from modelyard.settings import Settings
from modelyard.types import RuntimeOutput

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fresh home folder; the registry database is SQLite inside it."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def predlog(settings: Settings) -> Iterator[PredictionLog]:
    """An open log that only flushes when asked (long timer, large size trigger)."""
    log = PredictionLog.open(settings, flush_rows=1_000_000, flush_seconds=3600)
    try:
        yield log
    finally:
        log.close()


def house_columns(rows: int, *, offset: int = 0) -> dict[str, np.ndarray]:
    """Decoded inputs as serving produces them: numeric, categorical and datetime."""
    index = np.arange(offset, offset + rows)
    area = (50.0 + index).astype(np.float64)
    area[::4] = np.nan
    district = np.array([f"d{i % 3}" for i in index], dtype=object)
    district[1::5] = None
    built = np.array("2000-01-01", dtype="datetime64[ns]") + index.astype("timedelta64[D]")
    built[2::7] = np.datetime64("NaT")
    return {"area": area, "district": district, "built": built}


LogFn = Callable[..., None]


@pytest.fixture
def log_regression(predlog: PredictionLog) -> LogFn:
    """Log a regression request of ``rows`` rows; keyword arguments override defaults."""

    def _log(request_id: str, rows: int = 3, **overrides: Any) -> None:
        offset = overrides.pop("offset", 0)
        arguments: dict[str, Any] = {
            "model": "house-prices",
            "version": 1,
            "request_id": request_id,
            "received_at": T0,
            "columns": house_columns(rows, offset=offset),
            "rows": rows,
            "output": RuntimeOutput(values=np.arange(rows, dtype=np.float64) * 1000.0 + offset),
            "latency_ms": 4.25,
            "endpoint": "predict",
        }
        arguments.update(overrides)
        predlog.log(**arguments)

    return _log


def at(seconds: float) -> datetime:
    """``T0`` plus some seconds."""
    return T0 + timedelta(seconds=seconds)
