"""The prediction log: what online serving predicted, and the true labels that came later.

Online serving writes it (:class:`PredictionLog`); batch scoring and monitoring read it
(:func:`read_predictions`, :func:`read_feedback`, or DuckDB over :func:`segment_paths`).
Rows are stored as Parquet segments under ``<home>/predictions/`` and ``<home>/feedback/``
(Hive-partitioned by model, version and UTC date), indexed in the registry's database.
See :mod:`modelyard.predlog.writer` for the buffering and crash bounds, and
:mod:`modelyard.predlog.tables` for the columns.

Names are imported on first use, so ``import modelyard.predlog`` does not load pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.predlog.feedback import FeedbackItem
    from modelyard.predlog.reader import (
        IndexRepair,
        read_feedback,
        read_predictions,
        repair_index,
        segment_paths,
    )
    from modelyard.predlog.writer import PredictionLog, PredictionLogStats

__all__ = [
    "FeedbackItem",
    "IndexRepair",
    "PredictionLog",
    "PredictionLogStats",
    "read_feedback",
    "read_predictions",
    "repair_index",
    "segment_paths",
]

_HOMES = {
    "FeedbackItem": "feedback",
    "IndexRepair": "reader",
    "PredictionLog": "writer",
    "PredictionLogStats": "writer",
    "read_feedback": "reader",
    "read_predictions": "reader",
    "repair_index": "reader",
    "segment_paths": "reader",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'modelyard.predlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"modelyard.predlog.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
