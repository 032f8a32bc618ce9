"""A generated stream with a known ground truth whose relationship shifts at a known time.

Used by the continual-learning simulation (``tests/continual/test_simulation.py``) and
meant to be reused by tests of what comes after a retraining (shadow, canary):

- :class:`ShiftingStream` makes rows before the shift (the source's history) and after
  it (live traffic), and knows the true target of any row;
- :func:`write_project` writes a project whose source holds only the history, with a
  ``retrain`` section;
- :func:`serve` runs a real ``modelyard serve`` process on a free loopback port;
- :func:`predict_rows` and :func:`send_labels` send live rows and their true labels
  through its REST API (``/v1/models/{name}/predict``, ``/v1/feedback``).

Before the shift ``y = 10·x1 + 20·x2 + region`` with ``x2`` in [0, 1]; after it ``x2``
moves to [1, 2] (input drift) and ``y = 10·x1 − 20·x2 + 30 + region`` (a changed
relationship). A model of the history extrapolates flat past ``x2 = 1`` and errs by
about 20 there; one that learns from the labelled live rows does not.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from _projects import write_spec

REGION_EFFECT = {"north": 5.0, "south": -5.0, "east": 0.0}
NOISE = 1.0


@dataclass(frozen=True)
class ShiftingStream:
    """Rows of a stream whose relationship shifts at ``shift_at``."""

    shift_at: datetime
    seed: int = 7

    def rows(self, count: int, *, after: bool, seed: int, start: datetime) -> pd.DataFrame:
        """``count`` rows one minute apart from ``start``, before or ``after`` the shift,
        with their true target ``y`` (noise included)."""
        rng = np.random.default_rng([self.seed, seed])
        x1 = rng.uniform(0, 10, count).round(3)
        x2 = (rng.uniform(1, 2, count) if after else rng.uniform(0, 1, count)).round(3)
        region = rng.choice(list(REGION_EFFECT), size=count)
        frame = pd.DataFrame(
            {
                "event_id": [f"{'a' if after else 'h'}{seed}-{i}" for i in range(count)],
                "at": [start + timedelta(minutes=i) for i in range(count)],
                "x1": x1,
                "x2": x2,
                "region": region,
            }
        )
        frame["y"] = (self.truth(frame, after=after) + rng.normal(0, NOISE, count)).round(3)
        return frame

    @staticmethod
    def truth(frame: pd.DataFrame, *, after: bool) -> np.ndarray:
        """The noiseless target of ``frame``'s rows in the regime before or after."""
        region = frame["region"].map(REGION_EFFECT).to_numpy(np.float64)
        x1, x2 = frame["x1"].to_numpy(np.float64), frame["x2"].to_numpy(np.float64)
        if after:
            return 10 * x1 - 20 * x2 + 30 + region
        return 10 * x1 + 20 * x2 + region


def write_project(
    folder: Path,
    stream: ShiftingStream,
    *,
    name: str = "sensor",
    history_rows: int = 600,
    retrain: dict[str, Any] | None = None,
    gates: list[dict[str, Any]] | None = None,
) -> Path:
    """A project whose source (``data/history.csv``) holds ``history_rows`` rows before
    the shift, ending a day before it; time split on ``at``."""
    start = stream.shift_at - timedelta(days=1, minutes=history_rows)
    history = stream.rows(history_rows, after=False, seed=1, start=start)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    history.assign(at=history["at"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
        folder / "data" / "history.csv", index=False
    )
    spec: dict[str, Any] = {
        "name": name,
        "task": "regression",
        "target": "y",
        "data": {
            "source": {"path": "data/history.csv"},
            "id_columns": ["event_id"],
            "timestamp_column": "at",
        },
        "split": {"method": "time", "test_size": 0.2},
        "features": {"numeric": ["x1", "x2"], "categorical": ["region"]},
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 60},
        },
        "evaluation": {
            "metrics": ["rmse", "mae", "r2"],
            "gates": gates
            if gates is not None
            else [
                {"metric": "rmse", "beat_baseline": True},
                {"metric": "rmse", "max_regression": 0.0},
            ],
        },
        "retrain": retrain or {},
    }
    write_spec(folder, spec)
    return folder


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(home: Path, *models: str, log: Path, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """``modelyard serve MODELS`` in its own process; yields its URL. SIGTERM at the end
    (the server flushes its prediction log then); its output goes to ``log``."""
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    env.pop("MODELYARD_REGISTRY_URL", None)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", *models, "--port", str(port), *extra],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.2)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    # A graceful shutdown: uvicorn re-raises the signal it captured once it has shut down
    # (uvicorn/server.py, ``signal.raise_signal``), so a single process ends with -SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), (process.returncode, log.read_text())
    assert "Application shutdown complete" in log.read_text()


FEATURES = ["event_id", "x1", "x2", "region"]


def predict_rows(
    client: httpx.Client, model: str, frame: pd.DataFrame, *, per_request: int = 20
) -> pd.DataFrame:
    """Predict ``frame`` through ``/v1/models/{model}/predict`` in requests of
    ``per_request`` rows; returns request_id, row, version and prediction per row."""
    answers = []
    for start in range(0, len(frame), per_request):
        part = frame.iloc[start : start + per_request]
        body = {"rows": part[FEATURES].to_dict(orient="records")}
        reply = client.post(f"/v1/models/{model}/predict", json=body)
        assert reply.status_code == 200, reply.text
        data = reply.json()
        for row, value in enumerate(data["predictions"]):
            answers.append(
                {
                    "request_id": data["request_id"],
                    "row": row,
                    "version": data["version"],
                    "prediction": value,
                }
            )
    return pd.DataFrame(answers, index=frame.index)


def send_labels(client: httpx.Client, model: str, answers: pd.DataFrame, labels: pd.Series) -> int:
    """Send the true ``labels`` of predicted rows to ``/v1/feedback``; returns how many
    were stored."""
    items = [
        {"request_id": r.request_id, "row": int(r.row), "label": float(label)}
        for r, label in zip(answers.itertuples(), labels, strict=True)
    ]
    stored = 0
    for start in range(0, len(items), 200):
        body = {"model": model, "items": items[start : start + 200]}
        reply = client.post("/v1/feedback", json=body)
        assert reply.status_code == 200, reply.text
        stored += int(reply.json()["stored"])
    return stored


def now_utc() -> datetime:
    """The current time, UTC (the shift is placed relative to it)."""
    return datetime.now(UTC).replace(microsecond=0)
