"""The spec's ``features`` section: imputing, encoding, transforms and windowed aggregates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modelyard.spec._base import _IMPORT_PATH_RE, _Frozen

__all__ = [
    "BinTransform",
    "CrossTransform",
    "CustomTransform",
    "DatePartsTransform",
    "EncodeSpec",
    "FeaturesSpec",
    "ImputeSpec",
    "LogTransform",
    "PowerTransform",
    "RatioTransform",
    "Transform",
    "WindowSpec",
]


class ImputeSpec(_Frozen):
    """How missing values are filled before encoding and scaling."""

    numeric: Literal["median", "mean", "most_frequent", "zero", "none"] = "median"
    categorical: Literal["most_frequent", "constant", "none"] = "constant"
    add_indicator: bool = False


class EncodeSpec(_Frozen):
    """Categorical encoding, with rare-category grouping and unknown handling.

    ``min_frequency`` groups categories seen less often than this (a share if below 1,
    a count otherwise) into one "infrequent" category. ``unknown`` says what happens to a
    category never seen in training: ``ignore`` encodes it as infrequent/unknown, ``error``
    makes validation and serving reject it.
    """

    method: Literal["onehot", "ordinal"] = "onehot"
    min_frequency: float | None = Field(default=None, gt=0)
    max_categories: int | None = Field(default=None, ge=2)
    unknown: Literal["ignore", "error"] = "ignore"


class _ColumnsTransform(_Frozen):
    columns: list[str] = Field(min_length=1)


class LogTransform(_ColumnsTransform):
    """``log(x + offset)`` on non-negative numeric columns."""

    kind: Literal["log"]
    offset: float = Field(default=1.0, ge=0)


class PowerTransform(_ColumnsTransform):
    """Yeo-Johnson or Box-Cox power transform to make columns more Gaussian."""

    kind: Literal["power"]
    method: Literal["yeo-johnson", "box-cox"] = "yeo-johnson"


class BinTransform(_ColumnsTransform):
    """Discretise numeric columns into ``bins`` bins."""

    kind: Literal["bin"]
    bins: int = Field(default=5, ge=2)
    strategy: Literal["uniform", "quantile", "kmeans"] = "quantile"
    encode: Literal["ordinal", "onehot"] = "ordinal"


DatePart = Literal["year", "month", "day", "dayofweek", "dayofyear", "quarter", "hour"]
_DEFAULT_DATE_PARTS: tuple[DatePart, ...] = ("year", "month", "dayofweek")


class DatePartsTransform(_ColumnsTransform):
    """Replace date/time columns by numeric parts named ``<column>_<part>``."""

    kind: Literal["date_parts"]
    parts: list[DatePart] = Field(default_factory=lambda: list(_DEFAULT_DATE_PARTS))


class RatioTransform(_Frozen):
    """A new numeric column ``name = numerator / denominator`` (missing where 0)."""

    kind: Literal["ratio"]
    numerator: str
    denominator: str
    name: str


class CrossTransform(_Frozen):
    """A new categorical column ``name`` crossing two or more columns' values."""

    kind: Literal["cross"]
    columns: list[str] = Field(min_length=2)
    name: str


class CustomTransform(_ColumnsTransform):
    """A user transformer class, by import path, applied to ``columns``.

    The module is imported from the project folder (or anything on ``sys.path``). Its
    source is hashed into the feature-definition hash, so changing it changes the version.
    """

    kind: Literal["custom"]
    transformer: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("transformer")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH_RE.match(value):
            raise ValueError(
                f"expected an import path like 'my_features.MyTransformer', got {value!r}"
            )
        return value


Transform = Annotated[
    LogTransform
    | PowerTransform
    | BinTransform
    | DatePartsTransform
    | RatioTransform
    | CrossTransform
    | CustomTransform,
    Field(discriminator="kind"),
]


class WindowSpec(_Frozen):
    """A windowed aggregate over an entity key: a streaming feature.

    For each row, the aggregate of the events of the same ``key`` strictly before the
    row's time (``data.timestamp_column``): over the last ``minutes`` minutes, or the
    last ``events`` events. Computed from the training table when training (point in
    time: a row never sees itself or later rows) and from the in stream when a stream
    consumer scores, by one implementation (``modelyard.data.windows``). ``count`` needs
    no ``over``; ``sum`` and ``mean`` aggregate the numeric column ``over``. With no
    event in the window, ``count`` and ``sum`` are 0 and ``mean`` is missing.

    Example: trips per driver in the last hour:
    ``{name: trips_1h, key: driver, agg: count, minutes: 60}``.
    """

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    agg: Literal["count", "sum", "mean"]
    over: str | None = None
    minutes: float | None = Field(default=None, gt=0)
    events: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _window(self) -> WindowSpec:
        if (self.minutes is None) == (self.events is None):
            raise ValueError(f"window {self.name!r}: give exactly one of minutes or events")
        if self.agg != "count" and self.over is None:
            raise ValueError(f"window {self.name!r}: {self.agg} needs over (a numeric column)")
        return self


class FeaturesSpec(_Frozen):
    """Which columns are features and how they are transformed.

    ``numeric`` and ``categorical`` are lists of columns, or ``auto`` to take every
    remaining column of that kind (not the target, an id, a drop, or used by a transform).
    ``windows`` adds windowed aggregates (numeric columns) computed from past events.
    """

    numeric: list[str] | Literal["auto"] = "auto"
    categorical: list[str] | Literal["auto"] = "auto"
    drop: list[str] = Field(default_factory=list)
    impute: ImputeSpec = Field(default_factory=ImputeSpec)
    scale: Literal["none", "standard", "robust", "minmax"] = "none"
    encode: EncodeSpec = Field(default_factory=EncodeSpec)
    transforms: list[Transform] = Field(default_factory=list)
    windows: list[WindowSpec] = Field(default_factory=list)
