"""Trained models in a registry home, shared by the serving and streaming tests.

:class:`Yard` trains a small regression model (``houses``) and a small binary
classifier (``churn``) and knows what their registered pipelines predict.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _projects import churn_project, regression_project
from modelyard import api
from modelyard.settings import Settings

HOUSE_ROWS = [
    {"size": 120.5, "rooms": 3, "town": "alpha"},
    {"size": 64.0, "rooms": 1, "town": "delta"},
    {"size": 210.0, "rooms": 6, "town": "beta"},
]
CHURN_ROWS = [
    {
        "tenure_months": 12.5,
        "monthly_spend": 30.2,
        "support_tickets": 2,
        "plan": "basic",
        "region": "north",
        "signup_date": "2023-05-01",
    },
    {
        "tenure_months": 1.0,
        "monthly_spend": None,
        "support_tickets": 5,
        "plan": "trial",
        "region": "south",
        "signup_date": "2024-01-15",
    },
]


@dataclass
class Yard:
    """A registry home with trained, promoted models."""

    settings: Settings
    projects: dict[str, Path] = field(default_factory=dict)

    def reference(self, ref: str, rows: list[dict[str, Any]]) -> Any:
        """What the registered pipeline itself predicts for ``rows`` (values, proba, classes)."""
        from modelyard.models.fit import predict

        pipeline = api.load_model(ref, settings=self.settings)
        return predict(pipeline, reference_frame(rows))

    def train_houses(self, *, max_iter: int = 60, promote: bool = True) -> str:
        """Train another version of ``houses`` (``max_iter`` changes its predictions)."""
        return _train_houses(self, max_iter=max_iter, promote=promote)

    def train_churn(self) -> str:
        """Train and promote the binary classifier ``churn``."""
        return _train_churn(self)


def reference_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``rows`` as a frame typed as serving decodes them (numbers as float64)."""
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, int | float) or v is None).all():
            frame[column] = frame[column].astype(np.float64)
    return frame


def _train_houses(yard: Yard, *, max_iter: int = 60, promote: bool = True) -> str:
    """Train (another version of) ``houses``; a different ``max_iter`` predicts differently."""
    folder = yard.projects.get("houses")
    if folder is None:
        folder = regression_project(yard.settings.home.parent / "houses")
        yard.projects["houses"] = folder
    regression_project(
        folder,
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": max_iter, "early_stopping": False},
        },
    )
    result = api.train(folder, settings=yard.settings)
    if promote:
        api.promote(result.ref, reason="test", allow_failed_gates=True, settings=yard.settings)
    return result.ref


def _train_churn(yard: Yard) -> str:
    """Train and promote the binary classifier ``churn``."""
    folder = churn_project(
        yard.settings.home.parent / "churn",
        features={
            "numeric": ["tenure_months", "monthly_spend", "support_tickets"],
            "categorical": ["plan", "region"],
            "transforms": [{"kind": "date_parts", "columns": ["signup_date"]}],
        },
        evaluation={"gates": [{"metric": "roc_auc", "beat_baseline": True}]},
    )
    yard.projects["churn"] = folder
    result = api.train(folder, settings=yard.settings)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=yard.settings)
    return result.ref


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    """``houses:1`` and ``churn:1``, both promoted to production."""
    yard = Yard(settings=Settings(home=tmp_path_factory.mktemp("yard") / "home"))
    yard.train_houses()
    yard.train_churn()
    return yard


@pytest.fixture
def fresh_yard(tmp_path: Path) -> Yard:
    """An empty registry home, for tests that change what is promoted."""
    return Yard(settings=Settings(home=tmp_path / "home"))
