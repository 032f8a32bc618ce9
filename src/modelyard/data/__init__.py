"""The data layer: read sources in a fixed order, record and check schemas, snapshot, split.

- :func:`read_source` / :func:`describe_source`: CSV, Parquet or SQL rows, optionally as of
  a point in time, and a lineage record of where they came from;
- :func:`infer_schema`, :func:`validate_frame`, :func:`check_frame`, :func:`check_target`:
  the recorded input schema and checks of new data against it;
- :func:`frame_digest`, :func:`frame_to_parquet`, :func:`frame_from_parquet`:
  content-addressed snapshots of training rows;
- :func:`split_rows`: random, time or group splits, deterministic for a seed;
- :func:`suggest_spec`: a starting project spec for ``modelyard init``.

Also, by module: :mod:`~modelyard.data.prepare` (the rows ``train`` learns from: nested
columns, missing targets), :mod:`~modelyard.data.leakage` (likely target leaks),
:mod:`~modelyard.data.timeorder` (time order and repeating entities) and
:mod:`~modelyard.data.checks` (what ``train`` checks on its training rows).
"""

from modelyard.data.profile import suggest_spec
from modelyard.data.schema import (
    ColumnSchema,
    DataSchema,
    Problem,
    check_frame,
    check_target,
    infer_schema,
    validate_frame,
)
from modelyard.data.snapshot import frame_digest, frame_from_parquet, frame_to_parquet
from modelyard.data.sources import describe_source, read_source
from modelyard.data.split import split_rows

__all__ = [
    "ColumnSchema",
    "DataSchema",
    "Problem",
    "check_frame",
    "check_target",
    "describe_source",
    "frame_digest",
    "frame_from_parquet",
    "frame_to_parquet",
    "infer_schema",
    "read_source",
    "split_rows",
    "suggest_spec",
    "validate_frame",
]
