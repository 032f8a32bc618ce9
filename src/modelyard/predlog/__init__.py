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

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FeedbackItem": "modelyard.predlog.feedback",
        "IndexRepair": "modelyard.predlog.reader",
        "PredictionLog": "modelyard.predlog.writer",
        "PredictionLogStats": "modelyard.predlog.writer",
        "read_feedback": "modelyard.predlog.reader",
        "read_predictions": "modelyard.predlog.reader",
        "repair_index": "modelyard.predlog.reader",
        "segment_paths": "modelyard.predlog.reader",
    },
)
