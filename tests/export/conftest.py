"""Fixtures of the ONNX export tests: the bundled Ames data and pipelines fitted on it.

``ames`` is the house-price example's data (2,930 sales) plus three derived columns:
``sold_on`` (a date/time), ``expensive`` (a yes/no label) and ``band`` (low/mid/high).
``small_ames`` keeps 800 rows and a few columns of every kind (dotted names, missing
values, rare categories). ``fit`` fits modelyard's own pipeline for a spec fragment,
with the real training code (``modelyard.workflows.train.build``). ``yard`` is a registry
with two small trained versions; ``own_yard`` a private copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _onnx_helpers import SMALL_COLUMNS, spec_for

from _projects import churn_project, regression_project
from modelyard import api
from modelyard.api import example_project
from modelyard.data.sources import read_source
from modelyard.settings import Settings
from modelyard.spec import load_spec
from modelyard.workflows.train import Build, build

FitFn = Callable[..., Build]


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """One OpenMP thread: on a busy machine, boosting with many threads crawls."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def ames_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundled house-price example project."""
    return example_project(tmp_path_factory.mktemp("ames"))


@pytest.fixture(scope="session")
def ames(ames_project: Path) -> pd.DataFrame:
    """The Ames sales, with ``sold_on``, ``expensive`` and ``band`` added."""
    frame = read_source(load_spec(ames_project).spec.data, base_dir=ames_project)
    day = pd.Series(np.arange(len(frame)) % 28 + 1, index=frame.index)
    sold = pd.to_datetime({"year": frame["Yr.Sold"], "month": frame["Mo.Sold"], "day": day})
    hour = pd.to_timedelta(np.arange(len(frame)) % 24, unit="h")
    frame["sold_on"] = (sold + hour).dt.strftime("%Y-%m-%dT%H:%M:%S")
    frame["expensive"] = np.where(frame["price"] > frame["price"].median(), "yes", "no")
    frame["band"] = pd.qcut(frame["price"], 3, labels=["low", "mid", "high"]).astype(str)
    return frame


@pytest.fixture(scope="session")
def small_ames(ames: pd.DataFrame) -> pd.DataFrame:
    """800 Ames rows and a few columns of each kind."""
    return ames[SMALL_COLUMNS].sample(800, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="session")
def fit(tmp_path_factory: pytest.TempPathFactory) -> FitFn:
    """``fit(frame, **spec_for arguments)``: the fitted ``Build`` of that spec."""
    project_dir = tmp_path_factory.mktemp("project")

    def _fit(frame: pd.DataFrame, **arguments: Any) -> Build:
        return build(spec_for(**arguments), project_dir, frame)

    return _fit


@pytest.fixture(scope="session")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A registry home with ``houses:1`` (regression) and ``churn:1`` (binary, with a
    date column), trained by ``modelyard.api.train``, without ONNX exports."""
    base = tmp_path_factory.mktemp("yard")
    settings = Settings(home=base / "home")
    api.train(regression_project(base / "houses"), settings=settings, onnx=False)
    folder = churn_project(
        base / "churn",
        split=None,
        features={
            "categorical": ["plan", "region"],
            "transforms": [
                {"kind": "date_parts", "columns": ["signup_date"], "parts": ["year", "month"]}
            ],
        },
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 30},
        },
    )
    api.train(folder, settings=settings, onnx=False)
    return settings


@pytest.fixture
def own_yard(yard: Settings, tmp_path: Path) -> Settings:
    """A private copy of ``yard``'s registry, for tests that change or damage it."""
    home = tmp_path / "home"
    shutil.copytree(yard.home, home)
    return Settings(home=home)
