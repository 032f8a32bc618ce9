"""Running counts of one column of a window, chunk by chunk (pandas or Arrow chunks).

:class:`ColumnCounts` keeps, per column, the counts over the reference bins or
categories and the missing, unseen, out-of-range and unparsable counts that the drift
and data-quality checks of :mod:`modelyard.monitoring.summary` need. Logged numbers and
dictionary-encoded texts are counted straight from Arrow buffers; any other column as
its pandas form.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.contract.text import category_texts
from modelyard.data.schema import category_keys
from modelyard.monitoring.profile import (
    CategoricalProfile,
    FeatureKind,
    FeatureProfile,
    NumericProfile,
    numeric_values,
)

__all__ = ["ColumnCounts", "category_counts", "dictionary_codes", "plain", "plain_arrow"]


@dataclass
class ColumnCounts:
    """Running counts of one column over a window."""

    profile: FeatureProfile
    kind: FeatureKind
    rows: int = 0
    missing: int = 0
    type_problems: int = 0
    out_of_range: int = 0
    unseen: int = 0
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    examples: Counter[str] = field(default_factory=Counter)
    _index: dict[str, int] = field(default_factory=dict)
    _plans: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.profile, NumericProfile):
            self.bins = np.zeros(len(self.profile.bin_edges) + 1, np.int64)
        else:
            self.bins = np.zeros(len(self.profile.counts), np.int64)
            self._index = {key: i for i, key in enumerate(self.profile.counts)}

    def add(self, values: pd.Series) -> None:
        self.rows += len(values)
        profile = self.profile
        if isinstance(profile, NumericProfile):
            self._add_numbers(values, profile)
        elif profile.too_many:
            self.missing += int(values.isna().sum())
        elif isinstance(values.dtype, pd.CategoricalDtype):
            array = values.array
            self._add_codes(np.asarray(array.codes), array.categories.to_numpy())
        else:
            keys, counts = category_counts(values)
            self.missing += len(values) - int(counts.sum())
            self._add_counts(keys, counts)

    def add_arrow(self, values: pa.ChunkedArray) -> None:
        """Add a column of a prediction segment as Arrow read it: logged numbers
        (float64, null missing) and dictionary-encoded texts are counted from their
        buffers; any other type as the pandas column it converts to."""
        profile = self.profile
        if isinstance(profile, NumericProfile) and self.kind == "numeric":
            if pa.types.is_floating(values.type):
                self.rows += len(values)
                numbers = values.to_numpy().astype(np.float64, copy=False)  # null: NaN
                self._add_present(numbers[~np.isnan(numbers)], len(values), profile)
                return
        elif isinstance(profile, CategoricalProfile):
            if profile.too_many:
                self.rows += len(values)
                self.missing += values.null_count
                return
            if pa.types.is_dictionary(values.type):
                self.rows += len(values)
                codes, categories = dictionary_codes(values)
                self._add_codes(codes, categories)
                return
        self.add(values.to_pandas())

    def add_missing(self, rows: int) -> None:
        """Add ``rows`` rows without this column (an input the requests did not send)."""
        self.rows += rows
        self.missing += rows

    def _add_counts(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add the counts of distinct category texts (in order of first appearance)."""
        # A dict, not Index.get_indexer: a chunk has few distinct keys, and building
        # an Index of them cost more than counting the rows.
        at = np.asarray([self._index.get(key, -1) for key in keys.tolist()], np.int64)
        known = at >= 0
        np.add.at(self.bins, at[known], counts[known])
        self.unseen += int(counts[~known].sum())
        if len(self.examples) < 1000:  # bounded: a flood of new values keeps only some
            unseen = zip(keys[~known].tolist(), counts[~known].tolist(), strict=True)
            self.examples.update(dict(unseen))

    def _add_codes(self, codes: np.ndarray, categories: np.ndarray) -> None:
        """Add a categorical chunk (the log's text inputs) from its codes (-1: missing)
        into ``categories``: the texts of its categories and their reference bins are
        worked out once per distinct set of categories, and a chunk costs one
        ``bincount``."""
        key = tuple(categories.tolist())
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 64:  # bounded: segments usually share a few sets
                self._plans.clear()
            texts = category_texts(categories)
            at = np.asarray([self._index.get(text, -1) for text in texts.tolist()], np.int64)
            plan = self._plans[key] = (texts, at)
        texts, at = plan
        counts = np.bincount(codes + 1, minlength=len(categories) + 1)  # -1: missing
        self.missing += int(counts[0])
        counts = counts[1:]
        known = at >= 0
        np.add.at(self.bins, at[known], counts[known])
        if np.any(counts[~known]):
            seen = pd.unique(codes[codes >= 0])  # in order of first appearance
            new = seen[~known[seen]]
            keys, unseen = _merged(texts[new], counts[new])
            self._add_counts(keys, unseen)

    def _add_numbers(self, values: pd.Series, profile: NumericProfile) -> None:
        if self.kind == "numeric" and values.dtype == np.float64:
            # Logged numbers: NaN is missing, nothing is unparsable.
            numbers = values.to_numpy()
            present = numbers[~np.isnan(numbers)]
            self.missing += len(values) - present.size
        else:
            absent = values.isna().to_numpy()
            self.missing += int(absent.sum())
            numbers = numeric_values(values, self.kind)
            unparsable = ~absent & np.isnan(numbers)
            self.type_problems += int(unparsable.sum())
            present = numbers[~np.isnan(numbers)]
        self._add_present(present, 0, profile)

    def _add_present(self, present: np.ndarray, rows: int, profile: NumericProfile) -> None:
        """Count present numbers into the reference bins and the range; ``rows``: the
        chunk's rows, whose other rows are missing (0: already counted)."""
        if rows:
            self.missing += rows - present.size
        if profile.bin_edges or profile.bin_counts:
            edges = np.asarray(profile.bin_edges)
            where = np.searchsorted(edges, present, side="left")
            self.bins += np.bincount(where, minlength=edges.size + 1)
        if profile.min is not None and profile.max is not None:
            self.out_of_range += int(((present < profile.min) | (present > profile.max)).sum())

    @property
    def unparsed(self) -> int:
        """Rows in the missing bin of the drift tests: missing or unparsable."""
        return self.missing + self.type_problems


def category_counts(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The category texts (:func:`~modelyard.data.schema.category_keys`) of the present
    values of ``values`` and the count of each, in order of first appearance.

    Columns of one plain type (text, numbers, booleans) are counted by value first
    (Arrow's ``value_counts`` for Arrow-backed text) and only their distinct values
    turned into text; object columns may mix ``1`` and ``True`` (one key to hashing,
    two texts), so they are turned into text row by row first.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        codes = codes[codes >= 0]
        seen = pd.unique(codes)  # in order of first appearance
        counts = np.bincount(codes, minlength=len(dtype.categories))[seen]
        return _merged(category_texts(dtype.categories.to_numpy()[seen]), counts)
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        counted = pc.value_counts(pa.array(values.array))
        present = counted.field("values").is_valid()
        keys = counted.field("values").filter(present).to_numpy(zero_copy_only=False)
        counts = counted.field("counts").filter(present).to_numpy()
        return keys.astype(object), counts.astype(np.int64)  # text is its own category
    if isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "fiub"):
        by_value = values.value_counts(sort=False)  # missing values left out
        return _merged(category_texts(by_value.index.to_numpy()), by_value.to_numpy(np.int64))
    counted = category_keys(values[values.notna().to_numpy()]).value_counts(sort=False)
    return counted.index.to_numpy(dtype=object), counted.to_numpy(np.int64)


def plain(values: pd.Series) -> pd.Series:
    """A categorical column as objects (missing: NaN), so that the sampled rows of
    chunks with different categories join without a union of their categories."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values
    categories = values.array.categories.to_numpy(dtype=object)
    objects = np.append(categories, np.nan).take(values.array.codes)  # code -1: NaN
    return pd.Series(objects, index=values.index, dtype=object)


def dictionary_codes(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The codes (-1: missing) and categories (an object array) of a dictionary-encoded
    column, its chunks' dictionaries unified first."""
    if values.num_chunks > 1:
        values = values.unify_dictionaries()
    if values.num_chunks == 0:
        return np.zeros(0, np.int64), np.zeros(0, object)
    categories = values.chunk(0).dictionary.to_numpy(zero_copy_only=False).astype(object)
    codes = [
        (pc.fill_null(chunk.indices, -1) if chunk.null_count else chunk.indices).to_numpy()
        for chunk in values.chunks
    ]
    return np.concatenate(codes).astype(np.int64, copy=False), categories


def plain_arrow(values: pa.ChunkedArray) -> pd.Series:
    """A column of sampled rows as :func:`plain` gives its pandas form: dictionary
    texts as objects (missing: NaN), any other type as pandas converts it."""
    if not pa.types.is_dictionary(values.type):
        converted: pd.Series = values.to_pandas()
        return converted
    codes, categories = dictionary_codes(values)
    return pd.Series(np.append(categories, np.nan).take(codes), dtype=object)


def _merged(texts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counts of distinct values added up by their text: distinct values can share
    one (0.0 and -0.0 are "0")."""
    codes, uniques = pd.factorize(texts)
    if len(uniques) == len(texts):
        return texts, counts.astype(np.int64)
    summed = np.bincount(codes, weights=counts.astype(np.float64))
    return np.asarray(uniques, dtype=object), summed.astype(np.int64)
