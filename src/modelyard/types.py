"""Shared column and runtime types: what every prediction path hands around.

A neutral module (like Starlette's ``types.py``): the contract, the runtimes, the
prediction log, export, serving, batch and streaming all import these, and it imports
nothing of modelyard, so no layer has to import a consumer to name them.

A request is decoded straight into :data:`Columns` (one NumPy array per input column,
in the version's recorded feature order), never through pandas on the fast path:

- numeric columns: ``float64`` arrays, missing values as NaN;
- categorical columns: ``object`` arrays of ``str``, missing values as ``None``;
- datetime columns: ``datetime64[ns]`` arrays, missing as NaT.

The request decoders return :class:`ColumnBlocks`: the same mapping, held as one
row-major block per kind (``[rows, columns]``), so that merging requests, feeding ONNX
Runtime and writing the prediction log each cost a few NumPy calls per request instead
of one per column (the house-price model has 77 inputs).

A :class:`Runtime` turns them into a :class:`RuntimeOutput`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

__all__ = [
    "ColumnBlocks",
    "ColumnLayout",
    "Columns",
    "DecisionThreshold",
    "Runtime",
    "Kind",
    "KINDS",
    "RuntimeOutput",
    "concat_columns",
]

Columns = Mapping[str, np.ndarray]
Kind = Literal["numeric", "categorical", "datetime"]
#: The block of each kind, by position in :attr:`ColumnLayout.kinds`.
KINDS: tuple[Kind, ...] = ("numeric", "categorical", "datetime")
_DTYPES = (np.dtype(np.float64), np.dtype(object), np.dtype("datetime64[ns]"))


@dataclass(frozen=True, eq=False)
class ColumnLayout:
    """Where each input column sits in a :class:`ColumnBlocks`: its kind and position.

    One layout is made per model version (compared by identity) and shared by every
    request decoded for it.
    """

    order: tuple[str, ...]
    kinds: tuple[Kind, ...]
    names: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = field(init=False)
    index: dict[str, tuple[int, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.order) != len(self.kinds) or len(set(self.order)) != len(self.order):
            raise ValueError("a layout needs one kind per column and unique column names")
        names: list[list[str]] = [[], [], []]
        index = {}
        for name, kind in zip(self.order, self.kinds, strict=True):
            block = KINDS.index(kind)
            index[name] = (block, len(names[block]))
            names[block].append(name)
        object.__setattr__(self, "names", (tuple(names[0]), tuple(names[1]), tuple(names[2])))
        object.__setattr__(self, "index", index)


class ColumnBlocks(Mapping[str, np.ndarray]):
    """Decoded columns held as three row-major blocks, one per kind.

    ``blocks[0]`` holds the numeric columns (float64, ``[rows, n]``), ``blocks[1]`` the
    categorical ones (object: ``str`` or ``None``), ``blocks[2]`` the datetime ones
    (``datetime64[ns]``), each C-contiguous with columns in ``layout.names`` order. As a
    mapping it gives each column as a (strided) view, in feature order.
    """

    __slots__ = ("blocks", "layout", "rows")

    def __init__(
        self,
        layout: ColumnLayout,
        blocks: tuple[np.ndarray, np.ndarray, np.ndarray],
        rows: int,
    ) -> None:
        for block, names, dtype in zip(blocks, layout.names, _DTYPES, strict=True):
            if block.shape != (rows, len(names)) or block.dtype != dtype:
                raise ValueError(
                    f"a block of shape {block.shape} and dtype {block.dtype} does not hold "
                    f"{len(names)} {dtype} columns of {rows} rows"
                )
        self.layout = layout
        self.blocks = blocks
        self.rows = rows

    def __getitem__(self, name: str) -> np.ndarray:
        block, position = self.layout.index[name]
        return self.blocks[block][:, position]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layout.order)

    def __len__(self) -> int:
        return len(self.layout.order)

    def take(self, rows: slice | np.ndarray) -> ColumnBlocks:
        """Some of the rows: a slice (as views: nothing is copied) or positions."""
        blocks = self.blocks
        part: ColumnBlocks = object.__new__(ColumnBlocks)
        # cut from blocks checked once: checking every cut again costs more than the cut
        part.blocks = (blocks[0][rows], blocks[1][rows], blocks[2][rows])
        part.layout = self.layout
        part.rows = len(part.blocks[0])
        return part

    @classmethod
    def of(cls, layout: ColumnLayout, columns: Columns, rows: int) -> ColumnBlocks:
        """Blocks holding ``columns`` (one 1-D array per name of ``layout``), copied.

        Raises:
            KeyError: a column of ``layout`` is missing from ``columns``.
            ValueError: a column does not have ``rows`` values of its kind.
        """
        blocks = []
        for names, dtype in zip(layout.names, _DTYPES, strict=True):
            block = np.empty((rows, len(names)), dtype=dtype)
            for position, name in enumerate(names):
                block[:, position] = columns[name]
            blocks.append(block)
        return cls(layout, (blocks[0], blocks[1], blocks[2]), rows)

    @classmethod
    def concat(cls, parts: Sequence[ColumnBlocks]) -> ColumnBlocks:
        """The rows of ``parts``, in order (they must share one layout)."""
        layout = parts[0].layout
        if any(part.layout is not layout for part in parts):
            raise ValueError("only blocks of one layout can be concatenated")
        if len(parts) == 1:
            return parts[0]
        blocks = tuple(np.concatenate([part.blocks[kind] for part in parts]) for kind in range(3))
        return cls(layout, blocks, sum(part.rows for part in parts))  # type: ignore[arg-type]


def concat_columns(parts: Sequence[Columns]) -> Columns:
    """The rows of several requests' columns, in order (all with the same columns)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, ColumnBlocks) and all(
        isinstance(part, ColumnBlocks) and part.layout is first.layout for part in parts
    ):
        return ColumnBlocks.concat(parts)  # type: ignore[arg-type]
    return {name: np.concatenate([part[name] for part in parts]) for name in first}


@dataclass(frozen=True)
class RuntimeOutput:
    """Predictions for a batch: values (or labels), class probabilities and class order."""

    values: np.ndarray
    proba: np.ndarray | None = None
    classes: list[Any] | None = None


@dataclass(frozen=True)
class DecisionThreshold:
    """A binary classifier's decision threshold, as every runtime applies it.

    A row is labelled ``positive`` when its probability of ``positive`` is at least
    ``value``, else the other class: scikit-learn's ``FixedThresholdClassifier`` rule.

    Example:
        >>> rule = DecisionThreshold(value=0.3, positive="yes")
        >>> rule.labels(np.array([[0.8, 0.2], [0.6, 0.4]]), ["no", "yes"]).tolist()
        ['no', 'yes']
    """

    value: float
    positive: Any

    def labels(self, proba: np.ndarray, classes: list[Any]) -> np.ndarray:
        """The labels of rows with class probabilities ``proba`` (columns as ``classes``)."""
        labels = np.asarray(classes)
        if labels.dtype.kind == "U":
            labels = labels.astype(object)
        at = next(i for i, label in enumerate(classes) if label == self.positive)
        chosen = np.where(np.asarray(proba)[:, at] >= self.value, at, 1 - at)
        return labels[chosen]

    def to_dict(self) -> dict[str, Any]:
        """JSON data: ``{"value": ..., "positive": ...}``."""
        positive = self.positive.item() if isinstance(self.positive, np.generic) else self.positive
        return {"value": float(self.value), "positive": positive}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DecisionThreshold | None:
        """The threshold :meth:`to_dict` wrote, or None for None."""
        return None if data is None else cls(float(data["value"]), data["positive"])


class Runtime(Protocol):
    """Predicts for decoded columns; safe to call from several threads.

    ``inline`` says a call on a few rows is brief enough (well under a millisecond) to
    run on the event loop's thread when nothing else is waiting.
    """

    name: str
    inline: bool

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        """Predict ``rows`` rows given as one array per input column."""
