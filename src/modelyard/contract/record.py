"""The schema a version records at training: each column's kind, nulls, categories, range.

Recorded in the version's lineage (``lineage.schema``, as JSON) by
:func:`modelyard.data.schema.infer_schema`; :class:`~modelyard.contract.InputContract`
compiles it, with the feature order and kinds, into what every prediction path checks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["ColumnSchema", "DataSchema", "RecordedKind"]

RecordedKind = Literal["integer", "float", "boolean", "string", "datetime"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSchema(_Frozen):
    """One recorded column: kind, nullability, categories and numeric range."""

    name: str
    kind: RecordedKind
    nullable: bool
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None


class DataSchema(_Frozen):
    """The recorded columns of a training frame, in order."""

    columns: list[ColumnSchema]

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [column.name for column in self.columns]

    def get(self, name: str) -> ColumnSchema | None:
        """The column called ``name``, or ``None``."""
        return next((column for column in self.columns if column.name == name), None)
