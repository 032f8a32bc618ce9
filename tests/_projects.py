"""Generated projects and a CLI runner for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

#: The house-price example of this clone and the Ames sales (2,930 rows) it ships with:
#: the suite reads no data from outside the project folder.
EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "house-prices"
AMES_CSV = EXAMPLE_DIR / "data" / "ames.csv.gz"


def classification_frame(rows: int = 600, *, classes: int = 2, seed: int = 7) -> pd.DataFrame:
    """A table no project has seen: ids, numbers, categories, dates, nulls, a label."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "premium", "trial"], size=rows, p=[0.4, 0.3, 0.2, 0.1])
    tenure = rng.gamma(2.0, 12.0, size=rows).round(1)
    spend = rng.lognormal(3.0, 0.6, size=rows).round(2)
    tickets = rng.poisson(1.5, size=rows)
    region = rng.choice(["north", "south", "east", "west"], size=rows)
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    score = 0.08 * tickets - 0.03 * tenure + 0.01 * spend + (plan == "trial") * 1.2
    score = score + rng.normal(0, 0.5, rows)
    if classes == 2:
        label = np.where(score > np.quantile(score, 0.7), "churned", "stayed")
    else:
        label = np.array(["low", "mid", "high"])[
            np.digitize(score, np.quantile(score, [0.33, 0.66]))
        ]
    spend[rng.choice(rows, size=rows // 20, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "customer_id": np.arange(10_000, 10_000 + rows),
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_spend": spend,
            "support_tickets": tickets,
            "signup_date": signup.strftime("%Y-%m-%d"),
            "label": label,
        }
    )


def regression_project(
    folder: Path, *, rows: int = 400, seed: int = 3, **overrides: object
) -> Path:
    """A small, fast regression project written to ``folder``; returns the folder."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(40, 250, rows).round(1)
    rooms = rng.integers(1, 7, rows)
    town = rng.choice(["alpha", "beta", "gamma", "delta"], size=rows)
    year = rng.choice([2019, 2020, 2021, 2022], size=rows)
    price = (
        1500 * size
        + 8000 * rooms
        + np.select([town == "alpha", town == "beta"], [40_000, 15_000], 0)
        + rng.normal(0, 10_000, rows)
    )
    frame = pd.DataFrame(
        {
            "house_id": np.arange(rows),
            "size": size,
            "rooms": rooms,
            "town": town,
            "year": year,
            "price": price.round(0),
        }
    )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "data" / "houses.csv", index=False)
    spec: dict[str, object] = {
        "name": "houses",
        "task": "regression",
        "target": "price",
        "seed": 11,
        "data": {
            "source": {"path": "data/houses.csv"},
            "id_columns": ["house_id"],
            "timestamp_column": "year",
        },
        "split": {"method": "time", "test_from": 2022},
        "features": {"categorical": ["town"]},
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 60, "early_stopping": True, "validation_fraction": 0.2},
        },
        "evaluation": {"slices": ["town"], "gates": [{"metric": "rmse", "beat_baseline": True}]},
    }
    for key, value in overrides.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    write_spec(folder, spec)
    return folder


def churn_project(
    folder: Path, *, rows: int = 400, max_iter: int = 30, **overrides: object
) -> Path:
    """A small binary-classification project (``churn``) written to ``folder``.

    ``overrides`` replace top-level spec keys (``features``, ``split``, ``model``, ...);
    ``None`` removes a key (its default applies). Returns the folder.
    """
    (folder / "data").mkdir(parents=True, exist_ok=True)
    classification_frame(rows=rows).to_csv(folder / "data" / "customers.csv", index=False)
    spec: dict[str, object] = {
        "name": "churn",
        "task": "binary",
        "target": "label",
        "seed": 5,
        "data": {"source": {"path": "data/customers.csv"}, "id_columns": ["customer_id"]},
        "split": {"method": "random", "test_size": 0.25, "stratify": True},
        "features": {
            "numeric": ["tenure_months", "monthly_spend", "support_tickets"],
            "categorical": ["plan", "region"],
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": max_iter, "early_stopping": False},
        },
    }
    for key, value in overrides.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    write_spec(folder, spec)
    return folder


def write_spec(folder: Path, spec: dict[str, object]) -> None:
    (folder / "modelyard.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def read_spec(folder: Path) -> dict[str, object]:
    return yaml.safe_load((folder / "modelyard.yaml").read_text())  # type: ignore[no-any-return]


def run_cli(
    *args: str, home: Path, cwd: Path | None = None, check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run the real ``modelyard`` command in a subprocess with its own registry home."""
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("MODELYARD_REGISTRY_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )
    if check is not None and result.returncode != check:
        raise AssertionError(
            f"modelyard {' '.join(args)} exited {result.returncode}, expected {check}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


#: Signup dates from here on are the evaluation rows of :func:`threshold_project`.
THRESHOLD_TEST_FROM = "2024-06-01"


def threshold_project(
    folder: Path, threshold: object, *, frame: pd.DataFrame | None = None
) -> Path:
    """A binary ``churn`` project (time split) with ``model.decision_threshold: threshold``."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    frame = classification_frame(rows=500, seed=3) if frame is None else frame
    frame.to_csv(folder / "data" / "customers.csv", index=False)
    write_spec(
        folder,
        {
            "name": "churn",
            "task": "binary",
            "target": "label",
            "positive_class": "churned",
            "seed": 9,
            "data": {"source": {"path": "data/customers.csv"}, "id_columns": ["customer_id"]},
            "split": {"method": "time", "column": "signup_date", "test_from": THRESHOLD_TEST_FROM},
            "features": {
                "numeric": ["tenure_months", "monthly_spend", "support_tickets"],
                "categorical": ["plan", "region"],
            },
            "model": {
                "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 25, "early_stopping": False},
                "decision_threshold": threshold,
            },
            "evaluation": {"metrics": ["log_loss", "f1", "precision", "recall", "accuracy"]},
        },
    )
    return folder
