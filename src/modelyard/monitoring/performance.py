"""Performance of a window's labelled rows, with the evaluation layer's metrics.

Labels come from the feedback the log joins on (request_id, row): ``label`` as text,
``label_float`` when it is a number. Regression compares ``label_float`` with the
logged prediction; classification compares label texts (the log writes class labels
as text the same way), with the logged class probabilities for ROC AUC, log loss and
Brier score.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from modelyard.errors import ModelyardError
from modelyard.evaluation.metrics import compute_metrics
from modelyard.monitoring.profile import ReferenceProfile
from modelyard.predlog.tables import PROBA_PREFIX

__all__ = ["window_metrics"]

logger = logging.getLogger(__name__)


def window_metrics(profile: ReferenceProfile, labelled: pd.DataFrame) -> dict[str, float | None]:
    """The reference's metrics computed on ``labelled`` rows (None where undefined).

    Args:
        profile: the version's reference (task, classes, metric names).
        labelled: columns ``label``, ``label_float``, ``prediction`` and, for
            classifiers, ``proba.<class>``.

    Example:
        >>> from modelyard.monitoring.profile import profile_column
        >>> profile = ReferenceProfile(model="m", version=1, task="regression",
        ...     train_rows=2, eval_rows=2, features={},
        ...     prediction=profile_column(np.array([1.0, 2.0]), "numeric"),
        ...     metrics={"mae": 0.5})
        >>> rows = pd.DataFrame({"label": ["1", "3"], "label_float": [1.0, 3.0],
        ...                      "prediction": [1.0, 2.0]})
        >>> window_metrics(profile, rows)
        {'mae': 0.5}
    """
    task = profile.task
    if task == "regression":
        truth = pd.to_numeric(labelled["label_float"], errors="coerce").to_numpy(np.float64)
        predicted = pd.to_numeric(labelled["prediction"], errors="coerce").to_numpy(np.float64)
        usable = ~np.isnan(truth) & ~np.isnan(predicted)
        y_true, y_pred, proba, classes = truth[usable], predicted[usable], None, None
    else:
        y_true = labelled["label"].astype(str).to_numpy()
        y_pred = labelled["prediction"].astype(str).to_numpy()
        classes = list(profile.classes or [])
        names = [PROBA_PREFIX + c for c in classes]
        proba = None
        if classes and all(n in labelled.columns for n in names):
            proba = labelled[names].to_numpy(np.float64)
    values: dict[str, float | None] = {}
    for metric in profile.metrics:
        try:
            value = compute_metrics(
                task, [metric], y_true, y_pred, proba, classes, positive=profile.positive
            )[metric]
        except ModelyardError as exc:
            logger.info("metric %s not computed on the labelled rows: %s", metric, exc)
            value = math.nan
        values[metric] = value if math.isfinite(value) else None
    return values
