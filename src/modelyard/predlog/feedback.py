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

__all__ = ["FeedbackItem", "check_feedback", "write_feedback"]


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
        DataValidationError: an item has an empty, overlong or invalid request id, a row
            outside 0 to 2**31 - 1, or a label that is missing, NaN, infinite, overlong,
            invalid text or not a scalar; nothing is stored then.
        ModelyardError: the model name is invalid.
        RegistryError: the index could not be written.
    """
    check_feedback(model, items)
    latest: dict[tuple[str, int], object] = {}
    for item in items:
        key = (item.request_id, item.row)
        latest.pop(key, None)  # re-insert so the order is that of the last occurrence
        latest[key] = item.label
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


def check_feedback(model: str, items: Sequence[FeedbackItem]) -> None:
    """Check feedback items before anything looks them up or stores them.

    Raises:
        DataValidationError: as :func:`write_feedback` says, listing every bad item.
        ModelyardError: the model name is invalid.
    """
    check_model_name(model)
    problems: list[dict[str, object]] = []
    for index, item in enumerate(items):
        problem = _problem_of(item)
        if problem is not None:
            problems.append({"item": index, "field": problem[0], "message": problem[1]})
    if problems:
        first = problems[0]
        raise DataValidationError(
            f"{len(problems)} of {len(items)} feedback items for {model!r} are invalid; "
            f"first: item {first['item']} {first['field']}: {first['message']}; "
            "fix them and send the feedback again",
            problems=problems,
        )


_MAX_ROW = 2**31 - 1  # rows are stored as int32
_MAX_ID_CHARS = 256
_MAX_LABEL_CHARS = 10_000


def _problem_of(item: FeedbackItem) -> tuple[str, str] | None:
    request_id, row, label = item.request_id, item.row, item.label
    if not isinstance(request_id, str) or not request_id:
        return "request_id", f"must be a non-empty string, got {_show(request_id)}"
    if len(request_id) > _MAX_ID_CHARS or not _is_unicode(request_id):
        return "request_id", f"must be valid text of at most {_MAX_ID_CHARS} characters"
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= _MAX_ROW:
        return "row", f"must be an integer from 0 to {_MAX_ROW}, got {_show(row)}"
    if isinstance(label, str):
        if len(label) > _MAX_LABEL_CHARS or not _is_unicode(label):
            return "label", f"must be valid text of at most {_MAX_LABEL_CHARS} characters"
        return None
    finite = True
    if isinstance(label, float | np.floating):
        finite = bool(np.isfinite(label))
    elif isinstance(label, int) and not isinstance(label, bool):
        finite = abs(label) < 2**63  # label_float stores it as a float64 too
    if (
        not finite
        or isinstance(label, list | tuple | dict | set | np.ndarray)
        or label_text(label) is None
    ):
        return "label", f"must be a string, finite number or boolean, got {_show(label)}"
    return None


def _is_unicode(text: str) -> bool:
    """Whether ``text`` holds only Unicode scalar values (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
