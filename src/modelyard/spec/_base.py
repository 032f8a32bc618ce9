"""Shared pieces of the spec models: the frozen base model, tasks, metric tables, name rules."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "SPEC_FILENAME", "Task"]


SPEC_FILENAME = "modelyard.yaml"

Task = Literal["regression", "binary", "multiclass"]
Scalar = int | float | date | datetime | str

#: metric name -> True when higher is better.
REGRESSION_METRICS: dict[str, bool] = {
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
    "median_ae": False,
}
CLASSIFICATION_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "f1_macro": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "brier": False,
}
_BINARY_ONLY = {"f1", "precision", "recall", "brier"}
_DEFAULT_METRICS: dict[str, list[str]] = {
    "regression": ["rmse", "mae", "r2"],
    "binary": ["roc_auc", "accuracy", "f1", "log_loss"],
    "multiclass": ["accuracy", "f1_macro", "log_loss"],
}
#: Marks a model-level check's message that names its own key: "@evaluation.metrics.1: ...".
_AT = "@"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_IMPORT_PATH_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
