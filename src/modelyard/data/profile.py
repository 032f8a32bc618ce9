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
  ``categorical``; nested columns (lists, structs) are dropped;
- likely leaks (:mod:`modelyard.data.leakage`) are dropped, with the evidence;
- a time split when the rows are ordered in time, a group split when an id-named entity
  repeats (:mod:`modelyard.data.timeorder`), else a random (stratified) split;
- the positive class of a binary target is the minority class; imbalance is noted;
- rows without a target are dropped (``data.drop_missing_target``);
- boosted trees with early stopping, and gates that beat the baseline on the primary
  metric (log loss, or RMSE) and on the one people read (accuracy, or f1 when the
  classes are imbalanced, or MAE).

:func:`suggest_project` also returns the reasons, which ``init`` writes as comments.
"""

from __future__ import annotations

import difflib
import logging
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml
from pandas.api.types import is_datetime64_any_dtype

from modelyard.data.leakage import Leak, find_leaks
from modelyard.data.prepare import nested_columns
from modelyard.data.schema import check_target, column_kind
from modelyard.data.timeorder import TimeOrder, detect_time_order
from modelyard.errors import DataError
from modelyard.spec import Task

__all__ = ["Suggestion", "render_suggestion", "suggest_project", "suggest_spec"]

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
    "max_iter": 500,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 0.0,
    # Early stopping on a validation split of the training rows, drawn with the project
    # seed (given to the estimator as random_state): max_iter is only a ceiling.
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 10,
}
_SEED = 42
_COMMENT_WIDTH = 88
_IMBALANCED_SHARE = 0.2
_PRIMARY: dict[str, str] = {"regression": "rmse", "binary": "log_loss", "multiclass": "log_loss"}
_READABLE: dict[str, str] = {"regression": "mae", "binary": "accuracy", "multiclass": "accuracy"}
_METRICS: dict[str, list[str]] = {
    "regression": ["rmse", "mae", "r2"],
    "binary": ["log_loss", "roc_auc", "accuracy", "f1"],
    "multiclass": ["log_loss", "accuracy", "f1_macro"],
}


@dataclass(frozen=True)
class Suggestion:
    """A suggested spec and the reasons behind it.

    Attributes:
        spec: plain data that ``ProjectSpec.model_validate`` accepts.
        notes: top-level spec key -> comment lines to write above it.
        leaks: the features left out as likely leaks.
        time_order: the evidence of time order (or a repeating entity), if any.
    """

    spec: dict[str, object]
    notes: dict[str, list[str]]
    leaks: list[Leak] = field(default_factory=list)
    time_order: TimeOrder | None = None


def suggest_spec(
    df: pd.DataFrame,
    *,
    target: str,
    name: str,
    source_path: str,
    source_options: dict[str, str] | None = None,
) -> dict[str, object]:
    """A project spec for predicting ``target`` from the other columns of ``df``.

    The spec of :func:`suggest_project`, without the reasons.

    Example:
        >>> frame = pd.DataFrame({"id": range(40), "x": [v % 7 for v in range(40)],
        ...                       "y": [0, 1] * 20})
        >>> spec = suggest_spec(frame, target="y", name="demo", source_path="demo.csv")
        >>> spec["task"], spec["data"]["id_columns"], spec["features"]["numeric"]
        ('binary', ['id'], ['x'])
    """
    return suggest_project(
        df, target=target, name=name, source_path=source_path, source_options=source_options
    ).spec


def suggest_project(
    df: pd.DataFrame,
    *,
    target: str,
    name: str,
    source_path: str,
    source_options: dict[str, str] | None = None,
) -> Suggestion:
    """A project spec for ``target``, with the reasons for what it decided.

    Args:
        df: The data, as read from ``source_path``.
        target: The column to predict.
        name: The project name; characters a name cannot hold become ``-``.
        source_path: The data file as the spec should refer to it.
        source_options: reader options the file needs (encoding, delimiter).

    Returns:
        The :class:`Suggestion`.

    Raises:
        DataError: the target is missing (close names are suggested), cannot be learned
            (see :func:`~modelyard.data.schema.check_target`), or no feature is left.
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
    notes: dict[str, list[str]] = {}
    data: dict[str, object] = {"source": {"path": source_path}}
    if source_options:
        data["source"] = {"path": source_path, "options": dict(source_options)}
        notes.setdefault("data", []).append(
            "reader options detected from the file: "
            + ", ".join(f"{k}={v!r}" for k, v in source_options.items())
        )
    unlabeled = int(df[target].isna().sum())
    if unlabeled and unlabeled < len(df):
        df = df[df[target].notna()].reset_index(drop=True)
        data["drop_missing_target"] = True
        notes.setdefault("data", []).append(
            f"{unlabeled:,} rows have no {target!r}: they are dropped before training"
        )
    task = _infer_task(df[target], target)
    check_target(df, target, task)
    nested = set(nested_columns(df))
    ids: list[str] = []
    numeric: list[str] = []
    categorical: list[str] = []
    dates: list[str] = []
    drop: list[str] = []
    for column in df.columns:
        if column == target:
            continue
        label = str(column)
        role = "nested" if label in nested else _role(label, df[column])
        if role == "nested":
            notes.setdefault("features", []).append(
                f"{label!r} holds nested values (lists, structs): left out"
            )
            role = "drop"
        {"id": ids, "numeric": numeric, "categorical": categorical, "date": dates, "drop": drop}[
            role
        ].append(label)
    leaks = find_leaks(df, target=target, task=task, features=[*numeric, *categorical], seed=_SEED)
    for leak in leaks:
        for group in (numeric, categorical):
            if leak.column in group:
                group.remove(leak.column)
        drop.append(leak.column)
        notes.setdefault("features", []).append(
            f"left out {leak.column!r} as a likely leak ({leak.kind}): {leak.evidence}"
        )
    # Nested values (lists, arrays) cannot be counted as entities or times.
    time_order = detect_time_order(df, target=target, exclude=(*ids, *sorted(nested)))
    split = _suggest_split(task, time_order, notes)
    if time_order is not None and time_order.column is None and time_order.entity:
        for group in (numeric, categorical):
            if time_order.entity in group:
                group.remove(time_order.entity)
                drop.append(time_order.entity)
    if not (numeric or categorical or dates):
        raise DataError(
            f"{source_path}: no column is left to learn {target!r} from "
            f"(ids: {ids}, dropped: {drop}); add feature columns to the data"
        )
    data["id_columns"] = ids
    features: dict[str, object] = {
        "numeric": numeric,
        "categorical": categorical,
        "drop": drop,
        # Boosted trees split missing numbers on their own, better than a filled median.
        "impute": {"numeric": "none", "categorical": "constant"},
    }
    if dates:
        features["transforms"] = [{"kind": "date_parts", "columns": dates}]
    spec: dict[str, object] = {
        "name": _project_name(name),
        "task": task,
        "target": target,
    }
    imbalanced = False
    if task != "regression":
        imbalanced = _class_notes(df[target], task, spec, notes)
    spec.update(
        {
            "seed": _SEED,
            "description": f"Suggested by `modelyard init` from {source_path}.",
            "data": data,
            "split": split,
            "features": features,
            "model": _suggest_model(task, notes),
            "evaluation": _suggest_evaluation(task, imbalanced, notes),
        }
    )
    return Suggestion(spec=spec, notes=notes, leaks=leaks, time_order=time_order)


def render_suggestion(suggestion: Suggestion) -> str:
    """The suggested spec as YAML, each top-level key preceded by its notes as comments.

    Example:
        >>> print(render_suggestion(Suggestion(spec={"name": "n", "seed": 1},
        ...                                    notes={"seed": ["fixed for repeatability"]})))
        name: n
        # fixed for repeatability
        seed: 1
        <BLANKLINE>
    """
    text = yaml.safe_dump(suggestion.spec, sort_keys=False, allow_unicode=True)
    lines: list[str] = []
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        if line[:1] not in (" ", "-", "") and key in suggestion.notes:
            for note in suggestion.notes[key]:
                lines.extend(f"# {part}" for part in textwrap.wrap(note, _COMMENT_WIDTH))
        lines.append(line)
    return "\n".join(lines) + "\n"


def _suggest_split(
    task: Task, time_order: TimeOrder | None, notes: dict[str, list[str]]
) -> dict[str, object]:
    if time_order is None:
        return {"method": "random", "test_size": 0.2, "stratify": task != "regression"}
    if time_order.column is None:
        assert time_order.entity is not None
        notes["split"] = [
            f"group split: {time_order.reason}",
            "so the evaluation measures the model on entities it has not seen",
        ]
        return {"method": "group", "column": time_order.entity, "test_size": 0.2}
    notes["split"] = [
        f"time split: {time_order.reason};",
        "the latest 20% of rows are the evaluation rows, as in use (predicting the future)",
    ]
    if time_order.entity:
        notes["split"].append(
            f"alternative, to evaluate on unseen {time_order.entity} values instead: "
            f"{{method: group, column: {time_order.entity}}}"
        )
    return {"method": "time", "column": time_order.column, "test_size": 0.2}


def _class_notes(
    values: pd.Series, task: Task, spec: dict[str, object], notes: dict[str, list[str]]
) -> bool:
    """Name the positive class (binary) and report imbalance; True when imbalanced."""
    counts = values.value_counts()
    shares = counts / counts.sum()
    minority = shares.idxmin()
    imbalanced = bool(shares.min() < _IMBALANCED_SHARE)
    lines = notes.setdefault("target", [])
    if task == "binary":
        ordered = sorted(counts.index, key=lambda label: (counts[label], str(label)))
        positive = ordered[0]
        spec["positive_class"] = positive.item() if hasattr(positive, "item") else positive
        notes.setdefault("positive_class", []).append(
            f"the minority class {positive!r} ({shares[positive]:.1%} of rows); "
            "f1, precision, recall and ROC AUC are about it"
        )
    if imbalanced:
        threshold = (
            ", or model.decision_threshold: {rule: f1} (a threshold chosen on validation "
            "rows carved from the training rows; probabilities kept)"
            if task == "binary"
            else ""
        )
        lines.append(
            f"imbalanced classes: {minority!r} is {shares.min():.1%} of rows; consider "
            "model.class_weight: balanced (better recall of the rare class, worse "
            f"calibrated probabilities){threshold}"
        )
    return imbalanced


def _suggest_model(task: Task, notes: dict[str, list[str]]) -> dict[str, object]:
    family = "regression" if task == "regression" else "classification"
    notes["model"] = [
        "boosted trees with early stopping: up to max_iter rounds, stopping when the loss on "
        "a validation_fraction of the training rows (drawn with the project seed) stops "
        "improving for n_iter_no_change rounds"
    ]
    return {"estimator": _ESTIMATORS[family], "params": dict(_PARAMS)}


def _suggest_evaluation(
    task: Task, imbalanced: bool, notes: dict[str, list[str]]
) -> dict[str, object]:
    primary = _PRIMARY[task]
    readable = _READABLE[task]
    if imbalanced and task != "regression":
        readable = "f1" if task == "binary" else "f1_macro"
    metrics = [primary, *[m for m in _METRICS[task] if m != primary]]
    notes["evaluation"] = [
        f"gates: beat the baseline ({'class prior' if task != 'regression' else 'mean'}) on "
        f"{primary} (the primary metric) and on {readable}"
    ]
    return {
        "metrics": metrics,
        "primary_metric": primary,
        "gates": [
            {"metric": primary, "beat_baseline": True},
            {"metric": readable, "beat_baseline": True},
        ],
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
