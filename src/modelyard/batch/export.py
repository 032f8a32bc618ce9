"""A job's results as a CSV or Parquet file, written a page at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from modelyard.batch.jobs import Job, JobStore

__all__ = ["page_table", "write_results"]


def write_results(store: JobStore, job: Job, target: Path) -> int:
    """Write every result row of ``job`` to ``target`` (.csv or .parquet), in input order.

    The file is written under a temporary name and renamed when complete, so a reader
    never sees half a file.

    Returns:
        The number of rows written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    writer: Any = None
    schema: pa.Schema | None = None
    written = 0
    try:
        for page in store.result_pages(job.id):
            table = _table(page, job.id_columns, schema)
            if writer is None:
                schema = table.schema
                writer = _writer(partial, schema)
            writer.write_table(table)
            written += table.num_rows
        if writer is None:  # no rows: still a file with the columns
            schema = _table([], job.id_columns, None).schema
            writer = _writer(partial, schema)
        writer.close()
        writer = None
        partial.replace(target)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    return written


def page_table(page: list[Any], id_columns: list[str]) -> pa.Table:
    """One page of result rows with the columns of the results file (``row``, the id
    columns, then ``prediction``, or ``label`` and ``proba.<class>``)."""
    return _table(page, id_columns, None)


def _writer(path: Path, schema: pa.Schema) -> Any:
    if path.name.lower().endswith(".parquet.partial"):
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    import pyarrow.csv as pacsv

    return pacsv.CSVWriter(path, schema)


def _table(page: list[Any], id_columns: list[str], schema: pa.Schema | None) -> pa.Table:
    """One page of result rows as columns: row, ids, prediction or label, probabilities."""
    columns: dict[str, list[Any]] = {"row": [r.row_number for r in page]}
    for name in id_columns:
        columns[name] = [(r.ids or {}).get(name) for r in page]
    classifier = (schema is not None and "label" in schema.names) or any(
        r.label is not None for r in page
    )
    if classifier:
        columns["label"] = [r.label for r in page]
        classes: list[str] = []
        if schema is not None:
            classes = [n.removeprefix("proba.") for n in schema.names if n.startswith("proba.")]
        elif page and page[0].probabilities:
            classes = list(page[0].probabilities)
        for name in classes:
            columns[f"proba.{name}"] = [(r.probabilities or {}).get(name) for r in page]
    else:
        columns["prediction"] = [r.prediction for r in page]
    table = pa.table(columns)
    return table.cast(schema) if schema is not None else table
