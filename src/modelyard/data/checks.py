"""Checks ``train`` runs on the rows it is about to learn from.

- :func:`refuse_unservable`: a model may not use a column the spec marks
  ``serving: false`` (``data.columns``), directly or through a transform;
- :func:`training_findings`: likely target leaks among the features
  (:mod:`modelyard.data.leakage`, on the training rows), and a random split of rows
  that look ordered in time or made of repeating entities
  (:mod:`modelyard.data.timeorder`). These are warnings; ``evaluation.leakage: fail``
  makes leaks fail the gates.

Example:
    >>> from modelyard.spec import ProjectSpec
    >>> spec = ProjectSpec.model_validate({
    ...     "name": "n", "task": "regression", "target": "y",
    ...     "data": {"source": {"path": "a.csv"}, "columns": {"late": {"serving": False}}},
    ...     "model": {"estimator": "sklearn.linear_model.Ridge"}})
    >>> refuse_unservable(spec, ["x", "late"])
    Traceback (most recent call last):
    ...
    modelyard.errors.SpecError: the model would use 'late', marked serving: false ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modelyard.data.leakage import Leak, find_leaks
from modelyard.data.timeorder import TimeOrder, detect_time_order
from modelyard.errors import SpecError
from modelyard.spec import ProjectSpec

__all__ = ["TrainingFindings", "refuse_unservable", "training_findings"]


@dataclass(frozen=True)
class TrainingFindings:
    """What the checks found: likely leaks, time order under a random split."""

    leaks: list[Leak] = field(default_factory=list)
    time_order: TimeOrder | None = None

    @property
    def messages(self) -> list[str]:
        """One warning per finding, each with its evidence and fix."""
        lines = [f"possible target leak: {leak.describe()}" for leak in self.leaks]
        if self.time_order is not None:
            order = self.time_order
            fix = (
                f"split: {{method: time, column: {order.column}}}"
                if order.column
                else f"split: {{method: group, column: {order.entity}}}"
            )
            lines.append(
                f"random split on data that looks ordered in time or grouped ({order.reason}); "
                f"the evaluation may be optimistic; consider {fix}"
            )
        return lines

    def record(self) -> dict[str, object]:
        """JSON data for the lineage."""
        return {
            "leaks": [
                {"column": leak.column, "kind": leak.kind, "evidence": leak.evidence}
                for leak in self.leaks
            ],
            "time_order": None
            if self.time_order is None
            else {
                "column": self.time_order.column,
                "entity": self.time_order.entity,
                "reason": self.time_order.reason,
            },
            "warnings": self.messages,
        }


def refuse_unservable(spec: ProjectSpec, input_columns: list[str]) -> None:
    """Refuse a model whose inputs include a column marked ``serving: false``.

    Raises:
        SpecError: naming the column and how to leave it out.
    """
    unservable = [c for c in spec.data.not_at_serving() if c in input_columns]
    if unservable:
        names = ", ".join(map(repr, unservable))
        raise SpecError(
            f"the model would use {names}, marked serving: false in data.columns (not "
            "available when the model is used); add it to features.drop and remove it from "
            "every transform"
        )


def training_findings(
    spec: ProjectSpec, frame: pd.DataFrame, train_rows: np.ndarray, input_columns: list[str]
) -> TrainingFindings:
    """Leak and time-order checks on the training rows of ``frame``.

    Leaks are looked for among ``input_columns`` unless ``evaluation.leakage`` is
    ``off``; time order only when the split is random.
    """
    rows = frame.iloc[train_rows]
    leaks: list[Leak] = []
    if spec.evaluation.leakage != "off":
        features = [c for c in input_columns if c in rows.columns]
        leaks = find_leaks(
            rows, target=spec.target, task=spec.task, features=features, seed=spec.seed
        )
    order = None
    if spec.split.method == "random":
        order = detect_time_order(frame, target=spec.target, exclude=tuple(spec.data.id_columns))
    return TrainingFindings(leaks=leaks, time_order=order)
