"""``modelyard labels add``: true labels from a CSV or Parquet file into the feedback log.

The file names each labelled row by ``request_id`` (and ``row``, default 0), as the
prediction log records them, or by the model's id columns (``data.id_columns`` of the
spec) when the log records those as inputs (rows whose ids were never logged cannot be
stored then: they are counted as unmatched). The label is the ``label`` column (or the
one given, or the spec's target column).

The whole file is checked before anything is stored: a bad file raises one error naming
the file, the first bad row and the fix, and stores nothing. Labels then go through the
prediction log's feedback writer (:func:`~modelyard.predlog.feedback.write_feedback`):
one segment, indexed before this returns. The same row labelled twice in the file keeps
the last; a row labelled before gets the new label (the old one stays recorded; readers
take the latest). Rows that match no logged prediction are stored, counted and reported:
readers never join them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from modelyard.errors import DataError, DataValidationError
from modelyard.monitoring.io import logged_segments
from modelyard.predlog import store
from modelyard.predlog.feedback import FeedbackItem, write_feedback
from modelyard.predlog.tables import INPUT_PREFIX
from modelyard.registry.registry import Registry
from modelyard.settings import Settings

__all__ = ["LabelsAdded", "add_labels"]

logger = logging.getLogger(__name__)

_KEYS = ["request_id", "row"]


class LabelsAdded(BaseModel):
    """What :func:`add_labels` stored and what it found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    model: str
    rows: int
    stored: int
    duplicates: int
    replaced: int
    unmatched: int
    matched_by: str


def add_labels(
    settings: Settings, model: str, path: Path, *, label_column: str | None = None
) -> LabelsAdded:
    """Store the labels in ``path`` as feedback of ``model``.

    Args:
        settings: where the registry and the prediction log are.
        model: the model's name.
        path: a ``.csv`` (optionally compressed) or ``.parquet`` file.
        label_column: the label's column; default ``label``, else the spec's target.

    Returns:
        Counts: rows read, labels stored, duplicates in the file (last kept), labels
        replacing earlier ones, and labels matching no logged prediction.

    Raises:
        ModelNotFoundError: no such model.
        DataError: the file is unreadable, lacks the id or label columns, or the log
            does not record the id columns used.
        DataValidationError: a row has a missing or invalid id, row or label; nothing
            is stored.
    """
    with Registry.open(settings) as registry:
        version = registry.get_version(model)
    frame = _read(path).reset_index(drop=True)
    if frame.empty:
        raise DataError(f"labels file {path} has no rows")
    spec_data: dict[str, Any] = version.spec.get("data", {})
    label = _label_column(frame, path, label_column, str(version.spec.get("target", "")))
    if "request_id" in frame.columns:
        keys = pd.DataFrame(
            {
                "request_id": frame["request_id"],
                "row": frame["row"] if "row" in frame.columns else 0,
            }
        )
        matched_by, never_logged = "request_id", 0
    else:
        ids = [c for c in spec_data.get("id_columns", []) if c in frame.columns]
        if not ids or len(ids) < len(spec_data.get("id_columns", [])):
            wanted = ", ".join(["request_id (+ row)", *spec_data.get("id_columns", [])])
            raise DataError(
                f"{path} has no request_id column nor all of the id columns of {model!r}; "
                f"its columns are {', '.join(map(str, frame.columns))}; expected: {wanted}"
            )
        keys = _keys_by_ids(settings, model, frame, ids, path)
        matched_by = ", ".join(ids)
        never_logged = int(keys["request_id"].isna().sum())
        keys = keys[keys["request_id"].notna()]
    items = _items(keys, frame[label].loc[keys.index], path)
    duplicates = len(items) - len({(i.request_id, i.row) for i in items})
    # Counted before writing (the writer checks every item and stores nothing if one is
    # bad); items with malformed keys are left out of the counts, the writer refuses them.
    labelled = pd.DataFrame(
        [
            (i.request_id, i.row)
            for i in items
            if isinstance(i.request_id, str) and isinstance(i.row, int)
        ],
        columns=_KEYS,
    ).drop_duplicates()
    replaced = _already_labelled(settings, model, labelled)
    unmatched = never_logged + (_unmatched(settings, model, labelled) if len(labelled) else 0)
    engine = store.open_index(settings)
    try:
        stored = write_feedback(store.home_of(settings), engine, model, items)
    except DataValidationError as exc:
        first = exc.problems[0] if exc.problems else {}
        raise DataValidationError(
            f"{path}: {len(exc.problems)} of {len(items)} rows are invalid; first: data row "
            f"{first.get('item', 0) + 1} {first.get('field')}: {first.get('message')}; fix the "
            "file and run again (nothing was stored)",
            problems=exc.problems,
        ) from None
    finally:
        engine.dispose()
    if unmatched:
        logger.warning("%d labels in %s match no logged prediction of %s", unmatched, path, model)
    return LabelsAdded(
        file=str(path),
        model=model,
        rows=len(frame),
        stored=stored,
        duplicates=duplicates,
        replaced=replaced,
        unmatched=unmatched,
        matched_by=matched_by,
    )


def _read(path: Path) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            return pd.read_parquet(path)
        if ".csv" in suffixes:
            return pd.read_csv(path, dtype={"request_id": str})
    except FileNotFoundError:
        raise DataError(f"labels file {path} does not exist") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"labels file {path} is unreadable: {exc}") from None
    raise DataError(f"labels file {path}: expected a .csv or .parquet file")


def _label_column(frame: pd.DataFrame, path: Path, given: str | None, target: str) -> str:
    candidates = [given] if given else ["label", target]
    for name in candidates:
        if name and name in frame.columns:
            return name
    raise DataError(
        f"{path} has no label column {' or '.join(repr(c) for c in candidates if c)}; its "
        f"columns are {', '.join(map(str, frame.columns))}; name it with --label-column"
    )


def _items(keys: pd.DataFrame, labels: pd.Series, path: Path) -> list[FeedbackItem]:
    """Feedback items of the file's rows; bad values are passed on for the writer's checks."""
    if keys.empty and labels.empty:
        return []
    request_ids = [None if pd.isna(v) else str(v) for v in keys["request_id"].tolist()]
    numbers = pd.to_numeric(pd.Series(keys["row"]), errors="coerce").tolist()
    rows = [_row_number(n, v) for n, v in zip(numbers, keys["row"].tolist(), strict=True)]
    values = [None if _missing(v) else v for v in labels.tolist()]
    return [
        FeedbackItem(request_id=rid, label=value, row=row)  # type: ignore[arg-type]
        for rid, value, row in zip(request_ids, values, rows, strict=True)
    ]


def _row_number(number: float, value: Any) -> Any:
    """An integral ``number`` as ``int``; else the file's ``value``, for the writer to reject."""
    if np.isfinite(number) and float(number).is_integer():
        return int(number)
    return value


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _already_labelled(settings: Settings, model: str, wanted: pd.DataFrame) -> int:
    from modelyard.predlog import read_feedback

    earlier = read_feedback(settings, model)[_KEYS]
    if earlier.empty or wanted.empty:
        return 0
    earlier["row"] = earlier["row"].astype(np.int64)
    return len(wanted.astype({"row": np.int64}).merge(earlier, on=_KEYS, how="inner"))


def _logged_segments(settings: Settings, model: str) -> list[Path]:
    home = store.home_of(settings)
    return [home / record.path for record in logged_segments(settings, model)]


def _unmatched(settings: Settings, model: str, wanted: pd.DataFrame) -> int:
    """How many distinct labelled rows match no logged prediction (read by segment)."""
    wanted = wanted.astype({"row": np.int64})
    ids = pa.array(wanted["request_id"].unique(), pa.string())
    found = []
    for path in _logged_segments(settings, model):
        table = pq.read_table(path, columns=_KEYS, partitioning=None)
        table = table.filter(pc.is_in(table["request_id"], value_set=ids))
        if table.num_rows:
            found.append(table.to_pandas())
    if not found:
        return len(wanted)
    logged = pd.concat(found).drop_duplicates()
    logged["row"] = logged["row"].astype(np.int64)
    matched = wanted.merge(logged, on=_KEYS, how="inner")
    return len(wanted) - len(matched)


def _keys_by_ids(
    settings: Settings, model: str, frame: pd.DataFrame, ids: list[str], path: Path
) -> pd.DataFrame:
    """(request_id, row) of each file row, found through the ids the log records as inputs
    (the latest logged prediction of an id); null for ids never logged."""
    logged_names = [INPUT_PREFIX + c for c in ids]
    found = []
    for segment in _logged_segments(settings, model):
        names = pq.read_schema(segment).names
        if not all(n in names for n in logged_names):
            continue
        table = pq.read_table(segment, columns=[*_KEYS, *logged_names], partitioning=None)
        found.append(table.to_pandas().rename(columns=dict(zip(logged_names, ids, strict=True))))
    if not found:
        raise DataError(
            f"{path} names rows by {', '.join(ids)}, but the prediction log of {model!r} does "
            "not record those columns; add request_id (and row) columns to the file instead"
        )
    logged = pd.concat(found, ignore_index=True).drop_duplicates(ids, keep="last")
    wanted = frame[ids].copy()
    for column in ids:  # compare ids as text: the log stores inputs as floats or text
        logged[column] = _id_text(logged[column])
        wanted[column] = _id_text(wanted[column])
    joined = wanted.merge(logged, on=ids, how="left", validate="many_to_one")
    joined.index = frame.index
    return joined[_KEYS]


def _id_text(values: pd.Series) -> pd.Series:
    from modelyard.data.schema import category_keys

    present = values.notna()
    text = pd.Series("", index=values.index, dtype=object)
    text[present] = category_keys(values[present]).to_numpy()
    return text
