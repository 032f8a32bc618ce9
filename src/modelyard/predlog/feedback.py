"""Feedback: the true labels of logged rows, arriving after the predictions.

Each call writes one segment under ``<home>/feedback/model=<name>/date=<YYYY-MM-DD>/``
(columns: request_id, row, label as text, label_float when the label is a number or a
boolean, received_at) and indexes it before returning, so what the caller was told is
stored is on disk. Readers join labels to predictions on (request_id, row), the latest
received winning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine

from modelyard.errors import DataValidationError
from modelyard.predlog import store
from modelyard.predlog.tables import build_feedback_table, label_text
from modelyard.registry import db
from modelyard.registry.refs import check_model_name

__all__ = ["FeedbackItem", "write_feedback"]


@dataclass(frozen=True)
class FeedbackItem:
    """The true label of one logged row: request id, label, and row within the request."""

    request_id: str
    label: object
    row: int = 0


def write_feedback(
    home: Path,
    engine: Engine,
    model: str,
    items: Sequence[FeedbackItem],
    *,
    received_at: datetime | None = None,
) -> int:
    """Store ``items`` as one feedback segment of ``model`` and index it; returns the count.

    When several items name the same (request_id, row), the last one is kept.

    Raises:
        DataValidationError: an item has an empty request id, a negative row, or a label
            that is missing, NaN or not a scalar; nothing is stored then.
        ModelyardError: the model name is invalid.
        RegistryError: the index could not be written.
    """
    check_model_name(model)
    latest: dict[tuple[str, int], object] = {}
    problems: list[dict[str, object]] = []
    for index, item in enumerate(items):
        problem = _problem_of(item)
        if problem is not None:
            problems.append({"item": index, "field": problem[0], "message": problem[1]})
            continue
        key = (item.request_id, item.row)
        latest.pop(key, None)  # re-insert so the order is that of the last occurrence
        latest[key] = item.label
    if problems:
        first = problems[0]
        raise DataValidationError(
            f"{len(problems)} of {len(items)} feedback items for {model!r} are invalid; "
            f"first: item {first['item']} {first['field']}: {first['message']}; "
            "fix them and send the feedback again",
            problems=problems,
        )
    if not latest:
        return 0
    moment = store.as_utc(received_at) if received_at is not None else db.utcnow()
    keys = list(latest)
    table = build_feedback_table(
        [key[0] for key in keys], [key[1] for key in keys], list(latest.values()), moment
    )
    folder = store.segment_folder(home, "feedback", model, None, moment.date())
    path, size = store.write_segment(table, folder)
    record = store.SegmentRecord(
        kind="feedback",
        model=model,
        version=None,
        path=path.relative_to(home).as_posix(),
        rows=table.num_rows,
        min_received_at=moment,
        max_received_at=moment,
        created_at=db.utcnow(),
        bytes=size,
    )
    store.insert_segments(engine, [record])
    return len(keys)


def _problem_of(item: FeedbackItem) -> tuple[str, str] | None:
    if not isinstance(item.request_id, str) or not item.request_id:
        return "request_id", f"must be a non-empty string, got {item.request_id!r}"
    if isinstance(item.row, bool) or not isinstance(item.row, int) or item.row < 0:
        return "row", f"must be an integer >= 0, got {item.row!r}"
    if (
        isinstance(item.label, list | tuple | dict | set | np.ndarray)
        or label_text(item.label) is None
    ):
        return "label", f"must be a string, number or boolean (not NaN), got {item.label!r}"
    return None
