"""The spec's ``data`` and ``split`` sections: where rows come from and how they are split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelyard.spec._base import Scalar, _Frozen

__all__ = ["ColumnSpec", "DataSpec", "SourceSpec", "SplitSpec"]


class SourceSpec(_Frozen):
    """Where the rows come from: a CSV/Parquet file, or a SQL query on any SQLAlchemy URL."""

    path: str | None = None
    format: Literal["csv", "parquet"] | None = None
    url: str | None = None
    query: str | None = None
    table: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' (a CSV or Parquet file) or 'url' (SQL)")
        if self.url is not None and (self.query is None) == (self.table is None):
            raise ValueError("a SQL source needs exactly one of 'query' or 'table'")
        if self.path is not None and (self.query or self.table):
            raise ValueError("'query' and 'table' go with 'url', not with 'path'")
        return self

    @property
    def kind(self) -> Literal["csv", "parquet", "sql"]:
        """The reader this source needs."""
        if self.url is not None:
            return "sql"
        if self.format is not None:
            return self.format
        assert self.path is not None
        name = self.path.lower()
        return "parquet" if name.endswith((".parquet", ".pq")) else "csv"


class ColumnSpec(_Frozen):
    """What the spec knows about one input column.

    ``serving: false``: the column is not available when the model is used live (e.g. it
    is recorded after the outcome); ``reason`` says why, for the people reading the spec.
    """

    serving: bool = True
    reason: str = ""


class DataSpec(_Frozen):
    """The source, the id and timestamp columns, and an optional point in time to read as of.

    ``out_of_range`` says what a number outside its training range (widened by
    ``range_tolerance`` times the range's span on each side) does wherever the model
    takes input (serving, evaluation on new data): ``ignore``, ``warn`` (accepted,
    counted and logged) or ``refuse`` (an ``out_of_range`` problem, 422 at serving).
    ``drop_missing_target`` drops rows whose target is missing (counted in the lineage)
    instead of refusing them. ``columns`` describes single columns: ``serving: false``
    marks one that will not exist when the model is used live (known only after the
    outcome, or filled in later); training refuses a model that uses it as a feature.
    """

    source: SourceSpec
    id_columns: list[str] = Field(default_factory=list)
    timestamp_column: str | None = None
    as_of: Scalar | None = None
    out_of_range: Literal["ignore", "warn", "refuse"] = "warn"
    range_tolerance: float = Field(default=0.0, ge=0)
    drop_missing_target: bool = False
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)

    def not_at_serving(self) -> list[str]:
        """The columns marked ``serving: false``: absent when the model is used live."""
        return [name for name, column in self.columns.items() if not column.serving]

    @model_validator(mode="after")
    def _as_of_needs_timestamp(self) -> DataSpec:
        if self.as_of is not None and self.timestamp_column is None:
            raise ValueError("'as_of' needs 'timestamp_column' to know what time a row has")
        return self


class SplitSpec(_Frozen):
    """How rows are split into training and evaluation rows.

    - ``random``: a seeded shuffle, stratified on the target for classification;
    - ``time``: rows whose ``column`` (default: the timestamp column) is at or after
      ``test_from`` are evaluation rows; without ``test_from``, the latest ``test_size``;
    - ``group``: whole groups of ``column`` go to one side (no group leaks across).
    """

    method: Literal["random", "time", "group"] = "random"
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    column: str | None = None
    test_from: Scalar | None = None
    stratify: bool = True

    @model_validator(mode="after")
    def _check(self) -> SplitSpec:
        if self.method == "group" and self.column is None:
            raise ValueError("a 'group' split needs 'column', the column that names the groups")
        if self.test_from is not None and self.method != "time":
            raise ValueError("'test_from' goes with method 'time'")
        return self
