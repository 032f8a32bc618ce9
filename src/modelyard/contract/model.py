"""The input contract of a model version: one typed object compiled from its records.

:class:`InputContract` is compiled once per version from its recorded schema
(:class:`~modelyard.contract.record.DataSchema`), its feature order and kinds, and its
spec's rules for unseen categories and out-of-range numbers. Everything that checks or
decodes input for that version reads it: the JSON front (:mod:`modelyard.contract.json`,
every serving protocol), the pandas front (:mod:`modelyard.contract.frame`, training-side
validation and evaluation) and the ONNX export's category handling.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from modelyard.contract.record import ColumnSchema, DataSchema
from modelyard.errors import ModelyardError
from modelyard.types import ColumnLayout, Kind

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_TEXT_LENGTH",
    "DerivedRatio",
    "InputColumn",
    "InputContract",
    "RangeRule",
    "kind_of",
]

RangeRule = Literal["ignore", "warn", "refuse"]

#: Columns one request may name (keys of a row, names of a split or CSV header, tensors).
DEFAULT_MAX_COLUMNS = 2_000
#: The absolute cap on one text value, in characters (see :attr:`InputColumn.max_length`).
DEFAULT_MAX_TEXT_LENGTH = 4_096
#: A category may be this many times longer than the longest one seen in training...
_LENGTH_FACTOR = 8
#: ...and at least this long.
_LENGTH_FLOOR = 256


class _Version(Protocol):
    """What compiling a contract needs of a registered version."""

    @property
    def ref(self) -> str: ...

    @property
    def lineage_record(self) -> Any: ...  # registry.lineage.Lineage (a layer above)

    @property
    def spec(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class InputColumn:
    """One model input: its kind and what training recorded about it.

    ``recorded`` is the recorded data kind (integer, float, boolean, string, datetime),
    or ``None`` when the schema does not know the column. ``min``/``max`` are the
    training range of a numeric column; ``max_length`` caps a text value's length.
    """

    name: str
    kind: Kind
    nullable: bool = True
    categories: frozenset[str] | None = None
    integer: bool = False
    recorded: str | None = None
    min: float | None = None
    max: float | None = None
    max_length: int = DEFAULT_MAX_TEXT_LENGTH

    @property
    def boolean(self) -> bool:
        """Whether training saw true/false here, so JSON booleans are accepted."""
        if self.recorded == "boolean":
            return True
        return self.categories is not None and not self.categories.isdisjoint({"True", "False"})


@dataclass(frozen=True)
class DerivedRatio:
    """A number the pipeline derives from two numeric inputs (a ``ratio`` transform).

    Two finite inputs can still overflow it (``1000 / 1e-320`` is infinite), and a
    non-finite feature is what the runtimes disagree on: scikit-learn estimators refuse
    it, an ONNX graph predicts from it. The contract checks it instead, so every
    runtime and path answers the same (see :func:`~modelyard.contract.values.check_ranges`).
    """

    name: str
    numerator: str
    denominator: str


def kind_of(column: ColumnSchema) -> Kind:
    """The input kind a recorded column is checked as, when no feature kinds are given:
    numbers are numeric unless categories were recorded for them, dates are datetime,
    the rest (text, booleans) categorical."""
    if column.kind == "datetime":
        return "datetime"
    if column.kind in ("integer", "float") and column.categories is None:
        return "numeric"
    return "categorical"


@dataclass(frozen=True)
class InputContract:
    """The inputs a model version takes, in feature order, and the rules and limits.

    Compiled from a version by :meth:`from_version` (rules from its spec:
    ``features.encode.unknown`` and ``data.out_of_range``/``data.range_tolerance``).

    Attributes:
        columns: the inputs, in feature order.
        reject_unseen: a category never seen in training is a problem (``unseen_category``).
        max_rows: more rows in one request is ``too_many_rows``.
        ranges: what a number outside its training range does: ``ignore``, ``warn``
            (accepted, and counted by :meth:`count_out_of_range`) or ``refuse``
            (``out_of_range``).
        range_tolerance: widen each range by this share of its span on each side.
        max_columns: more column names in one request is ``too_many_columns``.
        ratios: numbers the pipeline derives by dividing two numeric inputs; a row whose
            ratio is not finite though both inputs are is ``non_finite_feature``.
    """

    columns: tuple[InputColumn, ...]
    reject_unseen: bool = False
    max_rows: int = 10_000
    ranges: RangeRule = "ignore"
    range_tolerance: float = 0.0
    max_columns: int = DEFAULT_MAX_COLUMNS
    ratios: tuple[DerivedRatio, ...] = ()

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ModelyardError(f"max_rows must be at least 1, got {self.max_rows}")
        if self.max_columns < len(self.columns):
            raise ModelyardError(
                f"max_columns ({self.max_columns}) must be at least the model's "
                f"{len(self.columns)} inputs"
            )

    @functools.cached_property
    def names(self) -> list[str]:
        """The input column names, in feature order (do not change the list)."""
        return [column.name for column in self.columns]

    @functools.cached_property
    def by_name(self) -> dict[str, InputColumn]:
        """The inputs by name."""
        return {column.name: column for column in self.columns}

    @functools.cached_property
    def layout(self) -> ColumnLayout:
        """Where each input sits in the decoded blocks (one layout per contract)."""
        return ColumnLayout(
            tuple(column.name for column in self.columns),
            tuple(column.kind for column in self.columns),
        )

    @functools.cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Lowest and highest accepted value of each numeric input, in block order
        (-inf/inf where no range is recorded); ``None`` when ranges are ignored."""
        if self.ranges == "ignore":
            return None
        numeric = [column for column in self.columns if column.kind == "numeric"]
        low = np.full(len(numeric), -np.inf)
        high = np.full(len(numeric), np.inf)
        for index, column in enumerate(numeric):
            if column.min is not None and column.max is not None:
                span = column.max - column.min
                low[index] = column.min - self.range_tolerance * span
                high[index] = column.max + self.range_tolerance * span
        if np.isneginf(low).all() and np.isposinf(high).all():
            return None
        return low, high

    def out_of_range(self, numeric: np.ndarray) -> np.ndarray | None:
        """A ``[rows, numeric inputs]`` mask of values outside their range, or None
        when every value is inside (or ranges are ignored). NaN is never outside."""
        bounds = self.bounds
        if bounds is None or numeric.size == 0:
            return None
        low, high = bounds
        outside: np.ndarray = (numeric < low) | (numeric > high)
        return outside if outside.any() else None

    @functools.cached_property
    def ratio_positions(self) -> tuple[tuple[DerivedRatio, int, int], ...]:
        """Each ratio with the numeric-block positions of its numerator and denominator
        (ratios of inputs that are not numeric inputs are left out)."""
        index = self.layout.index
        found = []
        for ratio in self.ratios:
            top, bottom = index.get(ratio.numerator), index.get(ratio.denominator)
            if top is not None and bottom is not None and top[0] == bottom[0] == 0:
                found.append((ratio, top[1], bottom[1]))
        return tuple(found)

    @functools.cached_property
    def ratio_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """The numeric-block positions of every ratio's numerator and of its denominator,
        in :attr:`ratio_positions` order: one indexing reads them all."""
        positions = self.ratio_positions
        tops = np.array([top for _, top, _ in positions], dtype=np.intp)
        bottoms = np.array([bottom for _, _, bottom in positions], dtype=np.intp)
        return tops, bottoms

    def count_out_of_range(self, blocks: Any) -> int:
        """How many numeric values of decoded :class:`~modelyard.types.ColumnBlocks`
        fall outside their range (0 unless ranges are checked)."""
        outside = self.out_of_range(blocks.blocks[0]) if self.bounds is not None else None
        return 0 if outside is None else int(np.count_nonzero(outside))

    # -- compiling --------------------------------------------------------------------

    @classmethod
    def from_schema(
        cls,
        schema: DataSchema | None,
        names: Sequence[str],
        *,
        kinds: Mapping[str, Kind] | None = None,
        max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
        **rules: Any,
    ) -> InputContract:
        """The contract of columns ``names`` of ``schema``.

        Args:
            schema: the recorded schema (None: the columns are known by kind only).
            names: the input columns, in order.
            kinds: each input's kind (default: :func:`kind_of` its recorded column;
                a column the schema does not know is then datetime).
            max_text_length: the absolute cap on one text value; a categorical input's
                own cap is 8 times its longest training category (at least 256), below
                this.
            rules: the other fields of :class:`InputContract`.
        """
        columns = []
        for name in names:
            known = schema.get(name) if schema is not None else None
            kind: Kind = "datetime"
            if kinds is not None and name in kinds:
                kind = kinds[name]
            elif known is not None:
                kind = kind_of(known)
            if known is None:
                columns.append(InputColumn(name=name, kind=kind, max_length=max_text_length))
                continue
            categories = None
            length = max_text_length
            if kind == "categorical" and known.categories is not None:
                categories = frozenset(known.categories)
                longest = max(map(len, known.categories), default=0)
                length = min(max_text_length, max(_LENGTH_FLOOR, _LENGTH_FACTOR * longest))
            numeric = kind == "numeric" and known.kind in ("integer", "float")
            columns.append(
                InputColumn(
                    name=name,
                    kind=kind,
                    nullable=known.nullable,
                    categories=categories,
                    integer=known.kind == "integer",
                    recorded=known.kind,
                    min=known.min if numeric else None,
                    max=known.max if numeric else None,
                    max_length=length,
                )
            )
        return cls(tuple(columns), **rules)

    @classmethod
    def from_version(
        cls,
        version: _Version,
        *,
        max_rows: int = 10_000,
        max_columns: int = DEFAULT_MAX_COLUMNS,
        max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
    ) -> InputContract:
        """The contract of a registered version, from its lineage and spec.

        Raises:
            ModelyardError: the version's lineage records no feature order.
        """
        lineage, spec = version.lineage_record, version.spec
        features = lineage.features
        order = list(features.feature_order)
        if not order:
            raise ModelyardError(
                f"version {version.ref} records no input columns "
                "(lineage.features.feature_order); train it again to serve it"
            )
        kinds: dict[str, Kind] = dict.fromkeys(order, "datetime")
        kinds.update(dict.fromkeys(features.categorical, "categorical"))
        kinds.update(dict.fromkeys(features.numeric, "numeric"))
        recorded = lineage.data_schema
        schema = DataSchema.model_validate(recorded) if recorded else None
        encode = (spec.get("features") or {}).get("encode") or {}
        data = spec.get("data") or {}
        transforms = (spec.get("features") or {}).get("transforms") or []
        ratios = tuple(
            DerivedRatio(str(item["name"]), str(item["numerator"]), str(item["denominator"]))
            for item in transforms
            if isinstance(item, Mapping) and item.get("kind") == "ratio"
        )
        return cls.from_schema(
            schema,
            order,
            kinds=kinds,
            max_text_length=max_text_length,
            reject_unseen=encode.get("unknown") == "error",
            max_rows=max_rows,
            ranges=data.get("out_of_range", "warn"),
            range_tolerance=float(data.get("range_tolerance", 0.0)),
            max_columns=max(max_columns, len(order)),
            ratios=ratios,
        )
