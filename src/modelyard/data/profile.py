"""Profile a frame and suggest a project spec that trains as is (``modelyard init``).

The suggestion is plain data ready for ``ProjectSpec.model_validate`` and for writing
as YAML. It is explicit, so users see (and can edit) every decision:

- task: a numeric target with more than 20 distinct values is ``regression``, one with
  2 is ``binary``, anything else ``multiclass``;
- id columns: all-unique integer or text columns named like an id (``id``, ``ID``,
  ``customer_id``, ``userId``, ``PID``), all-unique text, and integer row numbers (0 or 1,
  then counting up by one in file order, like Ames' ``Order``) go to ``data.id_columns``;
- date-like text (and datetime) columns get a ``date_parts`` transform;
- text with more distinct values than half its rows, and empty columns, are dropped;
- numbers are ``numeric`` (low-cardinality integers too), text and booleans
  ``categorical``.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any

import pandas as pd
from pandas.api.types import is_datetime64_any_dtype

from modelyard.data.schema import check_target, column_kind
from modelyard.errors import DataError
from modelyard.spec import EvaluationSpec, Task

__all__ = ["suggest_spec"]

logger = logging.getLogger(__name__)

_REGRESSION_MIN_DISTINCT = 20
_HIGH_CARDINALITY_SHARE = 0.5
_DATE_SAMPLE = 1000
# id, ID, customer_id, customer.ID, userId, PID; not words like "paid" or "valid".
_ID_NAME_RE = re.compile(r"^(?:[Ii][Dd]|.*[_.\s-](?:id|ID|Id)|.*[a-z0-9]Id|[A-Z]{1,4}ID)$")
_DATE_RE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_ESTIMATORS = {
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
}
_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.05,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 0.0,
    "early_stopping": False,  # a fixed number of rounds: no hidden validation split
}


def suggest_spec(
    df: pd.DataFrame, *, target: str, name: str, source_path: str
) -> dict[str, object]:
    """A project spec for predicting ``target`` from the other columns of ``df``.

    Args:
        df: The data, as read from ``source_path``.
        target: The column to predict.
        name: The project name; characters a name cannot hold become ``-``.
        source_path: The data file as the spec should refer to it.

    Returns:
        A plain dict that ``ProjectSpec.model_validate`` accepts.

    Raises:
        DataError: the target is missing (close names are suggested), cannot be learned
            (see :func:`~modelyard.data.schema.check_target`), or no feature is left.

    Example:
        >>> frame = pd.DataFrame({"id": range(40), "x": [v % 7 for v in range(40)],
        ...                       "y": [0, 1] * 20})
        >>> spec = suggest_spec(frame, target="y", name="demo", source_path="demo.csv")
        >>> spec["task"], spec["data"]["id_columns"], spec["features"]["numeric"]
        ('binary', ['id'], ['x'])
    """
    if target not in df.columns:
        names = [str(column) for column in df.columns]
        close = difflib.get_close_matches(target, names, n=3)
        hint = (
            "did you mean " + " or ".join(map(repr, close)) + "?"
            if close
            else (
                "the columns are: " + ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
            )
        )
        raise DataError(f"{source_path}: no target column {target!r}; {hint}")
    task = _infer_task(df[target], target)
    check_target(df, target, task)
    ids: list[str] = []
    numeric: list[str] = []
    categorical: list[str] = []
    dates: list[str] = []
    drop: list[str] = []
    for column in df.columns:
        if column == target:
            continue
        label = str(column)
        role = _role(label, df[column])
        {"id": ids, "numeric": numeric, "categorical": categorical, "date": dates, "drop": drop}[
            role
        ].append(label)
    if not (numeric or categorical or dates):
        raise DataError(
            f"{source_path}: no column is left to learn {target!r} from "
            f"(ids: {ids}, dropped: {drop}); add feature columns to the data"
        )
    evaluation = EvaluationSpec()
    features: dict[str, object] = {"numeric": numeric, "categorical": categorical, "drop": drop}
    if dates:
        features["transforms"] = [{"kind": "date_parts", "columns": dates}]
    family = "regression" if task == "regression" else "classification"
    return {
        "name": _project_name(name),
        "task": task,
        "target": target,
        "seed": 42,
        "description": f"Suggested by `modelyard init` from {source_path}.",
        "data": {"source": {"path": source_path}, "id_columns": ids},
        "split": {"method": "random", "test_size": 0.2, "stratify": task != "regression"},
        "features": features,
        "model": {"estimator": _ESTIMATORS[family], "params": dict(_PARAMS)},
        "evaluation": {
            "metrics": evaluation.resolved_metrics(task),
            "gates": [{"metric": evaluation.resolved_primary(task), "beat_baseline": True}],
        },
    }


def _infer_task(values: pd.Series, target: str) -> Task:
    distinct = values.nunique(dropna=True)
    if distinct < 2:
        raise DataError(f"the target {target!r} has {distinct} distinct value(s); nothing to learn")
    kind = column_kind(values)
    if kind in ("integer", "float") and distinct > _REGRESSION_MIN_DISTINCT:
        return "regression"
    return "binary" if distinct == 2 else "multiclass"


def _role(name: str, values: pd.Series) -> str:
    present = values.dropna()
    if present.empty:
        logger.debug("column %r is empty: dropped", name)
        return "drop"
    kind = column_kind(values)
    all_unique = len(present) == len(values) and present.is_unique
    if all_unique and kind in ("integer", "string") and _id_like(name):
        return "id"
    if is_datetime64_any_dtype(values.dtype) or kind == "datetime":
        return "date"
    if kind == "string" and _date_like(present):
        return "date"
    if all_unique and kind == "string":
        return "id"
    if all_unique and kind == "integer" and _row_number(present):
        return "id"
    if kind in ("integer", "float"):
        return "numeric"
    if kind == "string" and present.nunique() > _HIGH_CARDINALITY_SHARE * len(present):
        logger.debug("column %r has too many distinct values: dropped", name)
        return "drop"
    return "categorical"


def _id_like(name: str) -> bool:
    return bool(_ID_NAME_RE.match(name))


def _date_like(present: pd.Series) -> bool:
    sample = present.astype(str).head(_DATE_SAMPLE)
    if not sample.map(lambda text: bool(_DATE_RE.match(text))).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def _row_number(present: pd.Series) -> bool:
    """1, 2, 3, ... (or 0, 1, 2, ...) in file order: a row number, not a measurement."""
    numbers = pd.to_numeric(present).to_numpy()
    if len(numbers) < 2 or numbers[0] not in (0, 1):
        return False
    return bool((numbers[1:] - numbers[:-1] == 1).all())


def _project_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:100]
    return cleaned or "project"
