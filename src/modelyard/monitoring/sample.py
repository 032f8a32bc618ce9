"""A uniform sample of at most ``limit`` rows of a stream of chunks, in bounded memory.

Bottom-k sampling, the vectorised form of reservoir sampling: every row gets a uniform
random key and the sample is the ``limit`` rows with the smallest keys. Deciding which
rows are kept needs only the keys, so :class:`RowSample` works on the keys alone and
builds the frame of a chunk's rows only for those that enter the sample; a chunk late
in a large window contributes a few rows, not a frame of all of them. The pieces are
joined when the sample is read (and compacted as they pile up, so memory stays within
a few times ``limit`` rows).

The sample is the same frame, rows in the same order, as keeping the whole frame of
each chunk and cutting it down to the smallest keys after each chunk would give: the
same keys are drawn from the same generator and cut by the same
:func:`numpy.argpartition`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["RowSample", "TableSample"]

_Frame = TypeVar("_Frame", pd.DataFrame, pa.Table)

_MAX_PIECES = 32  # pieces kept before they are joined into one


class _BottomK(ABC, Generic[_Frame]):
    """A uniform sample of at most ``limit`` rows of the chunks offered to it, kept as
    frames of one kind (pandas in :class:`RowSample`, Arrow in :class:`TableSample`).

    Args:
        limit: the most rows kept.
        rng: draws the rows' keys.
    """

    def __init__(self, limit: int, rng: np.random.Generator) -> None:
        self.limit = limit
        self.rng = rng
        self._seen = 0
        self._keys = np.zeros(0)
        self._ids = np.zeros(0, np.int64)  # the kept rows, as positions in the stream
        # Rows that entered the sample, each piece's ids ascending and above the last's.
        self._pieces: list[tuple[np.ndarray, _Frame]] = []
        self._stored = 0
        self._frame: _Frame | None = None

    def offer(self, count: int, rows: Callable[[np.ndarray], _Frame]) -> None:
        """Offer the next ``count`` rows of the stream.

        Args:
            count: the chunk's rows.
            rows: builds the frame of the chunk's rows at the given positions
                (ascending; possibly none, which still gives the columns' types).
        """
        keys = np.concatenate([self._keys, self.rng.random(count)])
        ids = np.concatenate([self._ids, np.arange(self._seen, self._seen + count)])
        if len(keys) > self.limit:
            kept = np.argpartition(keys, self.limit)[: self.limit]
            keys, ids = keys[kept], ids[kept]
        entered = np.sort(ids[ids >= self._seen])
        self._pieces.append((entered, self._fresh(rows(entered - self._seen))))
        self._stored += entered.size
        self._seen += count
        self._keys, self._ids, self._frame = keys, ids, None
        if self._stored > 2 * self.limit or len(self._pieces) > _MAX_PIECES:
            self._compact()

    @property
    def keys(self) -> np.ndarray:
        """The random keys of the sample's rows, in the sample's order."""
        return self._keys

    @property
    def frame(self) -> _Frame:
        """The sampled rows (an empty frame before any rows were offered)."""
        if self._frame is None:
            self._frame = self._select(self._ids) if self._pieces else self._empty()
        return self._frame

    @property
    def seen(self) -> int:
        """The rows offered so far."""
        return self._seen

    def _select(self, ids: np.ndarray) -> _Frame:
        stored = np.concatenate([piece[0] for piece in self._pieces])
        joined = self._join([piece[1] for piece in self._pieces])
        return self._take(joined, np.searchsorted(stored, ids))

    @abstractmethod
    def _fresh(self, frame: _Frame) -> _Frame:
        """Implemented by each kind of frame (pandas, Arrow)."""

    @abstractmethod
    def _join(self, frames: Sequence[_Frame]) -> _Frame:
        """Implemented by each kind of frame (pandas, Arrow)."""

    @abstractmethod
    def _take(self, frame: _Frame, at: np.ndarray) -> _Frame:
        """Implemented by each kind of frame (pandas, Arrow)."""

    @abstractmethod
    def _empty(self) -> _Frame:
        """Implemented by each kind of frame (pandas, Arrow)."""

    def _compact(self) -> None:
        """Join the pieces into one holding only the rows still in the sample."""
        ids = np.sort(self._ids)
        self._pieces = [(ids, self._select(ids))]
        self._stored = ids.size


class RowSample(_BottomK[pd.DataFrame]):
    """A uniform sample of at most ``limit`` rows of pandas chunks."""

    def _fresh(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.reset_index(drop=True)

    def _join(self, frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True)

    def _take(self, frame: pd.DataFrame, at: np.ndarray) -> pd.DataFrame:
        return frame.iloc[at].reset_index(drop=True)

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame()


class TableSample(_BottomK[pa.Table]):
    """A uniform sample of at most ``limit`` rows of Arrow chunks: the rows stay in
    Arrow until the sample is read, so a chunk costs one ``take``, not a pandas frame.
    Chunks whose columns differ (an input some requests did not send) are joined with
    nulls where a column is absent."""

    def _fresh(self, frame: pa.Table) -> pa.Table:
        return frame

    def _join(self, frames: Sequence[pa.Table]) -> pa.Table:
        return pa.concat_tables(frames, promote_options="permissive")

    def _take(self, frame: pa.Table, at: np.ndarray) -> pa.Table:
        return frame.take(at)

    def _empty(self) -> pa.Table:
        return pa.table({})
