"""The few transformers modelyard adds to scikit-learn's.

Everything else in a feature pipeline is a scikit-learn built-in (imputers, scalers,
encoders, discretisers), so the fitted pipeline converts to ONNX with stock converters.
These follow scikit-learn's conventions: keyword-only ``__init__`` that only stores,
checks in ``fit``, fitted attributes ending in ``_``, ``check_is_fitted`` first.

- :class:`FrameCoercer` is the first step of every pipeline: it picks the input columns
  in a fixed order and gives each one a fixed type, so training and serving see the
  same frame whatever the source (CSV, SQL, JSON) made of the values.
- :class:`Log1pTransformer` is numeric (``log(x + offset)``) and passes scikit-learn's
  common estimator checks.
- :class:`DateParts`, :class:`Ratio` and :class:`Cross` work on named DataFrame columns;
  they are not run through scikit-learn's common checks, which feed unnamed float arrays.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

from modelyard.contract.text import category_texts
from modelyard.errors import DataValidationError

__all__ = [
    "DATE_PARTS",
    "Cross",
    "DateParts",
    "FrameCoercer",
    "Log1pTransformer",
    "Ratio",
    "category_values",
]

logger = logging.getLogger(__name__)

ColumnKind = Literal["numeric", "categorical", "datetime"]
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "quarter", "hour")
#: pandas names of parts whose spec name differs (``dayofweek`` is deprecated in pandas).
_ACCESSORS = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}
_EXAMPLES = 3


def category_values(values: pd.Series[Any] | Iterable[Any]) -> np.ndarray[Any, Any]:
    """Categorical values as an object array of ``str``, missing values as ``np.nan``.

    The text is the input contract's category-text rule
    (:func:`modelyard.contract.category_text`): integral numbers lose their ``.0`` so
    ``20``, ``20.0`` and ``"20"`` are one category, whether the source was a CSV (ints),
    a SQL float column or JSON text; the recorded schema and every serving path use the
    same rule, so what serving accepts is what this pipeline encodes.

    Example:
        >>> category_values([20, 20.0, "20", None, True, 2.5, 1e20]).tolist()
        ['20', '20', '20', nan, 'True', '2.5', '1e+20']
    """
    texts = category_texts(values)
    texts[pd.isna(texts)] = np.nan
    return texts


def _as_frame(X: Any, *, owner: str) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, Mapping):
        if all(np.ndim(value) == 0 for value in X.values()):
            return pd.DataFrame([dict(X)])  # one record given as {column: value}
        return pd.DataFrame(dict(X))
    if isinstance(X, list) and X and all(isinstance(row, Mapping) for row in X):
        return pd.DataFrame(X)
    raise DataValidationError(
        f"{owner} needs named columns: pass a pandas DataFrame, a mapping of column name to "
        f"values, or a list of records; got {type(X).__name__}"
    )


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], *, owner: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        listed = ", ".join(repr(column) for column in missing)
        raise DataValidationError(
            f"{owner}: the input lacks {len(missing)} required column(s): {listed}; "
            "send every column the model was trained on",
            problems=[f"column {column!r} is missing" for column in missing],
        )


def _bad_rows(frame_index: pd.Index, bad: np.ndarray[Any, Any], values: pd.Series[Any]) -> str:
    rows = frame_index[bad][:_EXAMPLES].tolist()
    examples = values[bad].iloc[:_EXAMPLES].tolist()
    return f"e.g. {', '.join(repr(v) for v in examples)} (rows {', '.join(map(str, rows))})"


def _to_float(series: pd.Series[Any], column: str, problems: list[str]) -> np.ndarray[Any, Any]:
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    text = series.astype(object)
    blank = text.map(lambda value: isinstance(value, str) and not value.strip()).to_numpy(bool)
    bad = (converted.isna() & series.notna()).to_numpy(bool) & ~blank
    if bad.any():
        problems.append(
            f"column {column!r} should be numeric but {int(bad.sum())} value(s) are not "
            f"numbers, {_bad_rows(series.index, bad, series)}; fix the data or treat the "
            "column as categorical (features.categorical)"
        )
    return converted.to_numpy(dtype="float64", na_value=np.nan)


def _to_datetime(series: pd.Series[Any], column: str, problems: list[str]) -> pd.Series[Any]:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return cast("pd.Series[Any]", series.dt.tz_convert("UTC").dt.tz_localize(None))
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series
    # utc=True accepts strings with different offsets; the result is naive UTC.
    converted = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    bad = (converted.isna() & series.notna()).to_numpy(bool)
    if bad.any():
        problems.append(
            f"column {column!r} should hold dates or times but {int(bad.sum())} value(s) "
            f"cannot be read as one, {_bad_rows(series.index, bad, series)}; use ISO 8601 "
            "text such as '2010-06-30' or '2010-06-30T14:05:00'"
        )
    return converted.dt.tz_localize(None)


class FrameCoercer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Select the input columns in a fixed order and give each one a fixed type.

    ``numeric`` columns become float64 (text that is no number is an error),
    ``categorical`` columns become object arrays of ``str`` with ``np.nan`` for missing
    (see :func:`category_values`), ``datetime`` columns become naive datetime64 (UTC if
    the values carried a zone). Extra columns are ignored. Always returns a DataFrame.

    Args:
        numeric: numeric input columns.
        categorical: categorical input columns.
        datetime: date/time input columns.

    Raises:
        DataValidationError: a column is missing or holds values of the wrong kind.

    Example:
        >>> coercer = FrameCoercer(numeric=["area"], categorical=["zone"])
        >>> out = coercer.fit_transform({"zone": [20, "RL"], "area": ["5", 7], "x": [0, 0]})
        >>> out.columns.tolist(), out["zone"].tolist(), out["area"].dtype.name
        (['area', 'zone'], ['20', 'RL'], 'float64')
    """

    def __init__(
        self,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        datetime: Sequence[str] = (),
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.datetime = datetime

    def fit(self, X: Any, y: Any = None) -> FrameCoercer:
        """Record the column order and kinds; check that ``X`` has every column."""
        kinds: dict[str, ColumnKind] = {}
        groups: list[tuple[ColumnKind, Sequence[str]]] = [
            ("numeric", self.numeric),
            ("categorical", self.categorical),
            ("datetime", self.datetime),
        ]
        for kind, columns in groups:
            if isinstance(columns, str):
                raise ValueError(
                    f"The '{kind}' parameter of FrameCoercer must be a list of column names. "
                    f"Got {columns!r} instead."
                )
            for column in columns:
                if column in kinds:
                    raise ValueError(
                        f"FrameCoercer: column {column!r} is listed as both {kinds[column]} "
                        f"and {kind}; give each column one kind"
                    )
                kinds[column] = kind
        frame = _as_frame(X, owner="FrameCoercer")
        _require_columns(frame, list(kinds), owner="FrameCoercer")
        self.column_kinds_ = kinds
        self.feature_order_ = list(kinds)
        self.feature_names_in_ = np.asarray(self.feature_order_, dtype=object)
        self.n_features_in_ = len(self.feature_order_)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Return exactly the recorded columns, in order, with their recorded types."""
        check_is_fitted(self)
        frame = _as_frame(X, owner="FrameCoercer")
        _require_columns(frame, self.feature_order_, owner="FrameCoercer")
        problems: list[str] = []
        columns: dict[str, Any] = {}
        for column, kind in self.column_kinds_.items():
            series = frame[column]
            if kind == "numeric":
                columns[column] = _to_float(series, column, problems)
            elif kind == "categorical":
                # An explicit object Series: pandas 3 would infer its own str dtype.
                columns[column] = pd.Series(
                    category_values(series), index=frame.index, dtype=object
                )
            else:
                columns[column] = _to_datetime(series, column, problems)
        if problems:
            raise DataValidationError(
                f"{len(problems)} column(s) hold values of the wrong kind: " + "; ".join(problems),
                problems=problems,
            )
        return pd.DataFrame(columns, index=frame.index, columns=self.feature_order_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray[Any, Any]:
        """The output columns: the recorded feature order."""
        check_is_fitted(self)
        return np.asarray(self.feature_order_, dtype=object)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.dict = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.input_tags.allow_nan = True
        return tags


class Log1pTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """``log(x + offset)`` on numeric columns; ``nan`` where ``x + offset <= 0``.

    Non-positive shifted values give ``nan`` rather than ``-inf`` or an error, so a
    stray negative value at serving time becomes a missing value the model already
    handles. ``nan`` passes through. float32 input stays float32.

    Args:
        offset: added before the logarithm (``1.0``: ``log1p``); a finite number >= 0.

    Example:
        >>> Log1pTransformer().fit_transform(np.array([[0.0], [np.e - 1], [-2.0]])).ravel()
        array([ 0.,  1., nan])
    """

    def __init__(self, *, offset: float = 1.0) -> None:
        self.offset = offset

    def fit(self, X: Any, y: Any = None) -> Log1pTransformer:
        """Check ``offset`` and record the number and names of input columns."""
        offset = self.offset
        if (
            isinstance(offset, bool)
            or not isinstance(offset, numbers.Real)
            or not np.isfinite(offset)
            or offset < 0
        ):
            raise ValueError(
                "The 'offset' parameter of Log1pTransformer must be a finite float >= 0. "
                f"Got {offset!r} instead."
            )
        validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan")
        return self

    def transform(self, X: Any) -> np.ndarray[Any, Any]:
        """Return ``log(X + offset)``, ``nan`` where ``X + offset <= 0``."""
        check_is_fitted(self)
        values = validate_data(
            self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", reset=False
        )
        shifted = values + float(self.offset)
        positive = shifted > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(positive, np.log(np.where(positive, shifted, 1)), np.nan).astype(
                values.dtype, copy=False
            )

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        assert tags.transformer_tags is not None
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _datetime_frame(X: Any) -> pd.DataFrame:
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    return pd.DataFrame(
        {
            index: pd.to_datetime(frame.iloc[:, index], errors="coerce")
            for index in range(frame.shape[1])
        },
        index=frame.index,
    )


class DateParts(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Date/time columns to numeric parts, named ``<column>_<part>``; ``nan`` for missing.

    Args:
        parts: any of ``year, month, day, dayofweek (Monday=0), dayofyear, quarter, hour``.

    Not run through scikit-learn's common checks: its input is dates, not floats.

    Example:
        >>> frame = pd.DataFrame({"sold": pd.to_datetime(["2010-06-30", None])})
        >>> parts = DateParts(parts=["year", "month"]).fit(frame)
        >>> parts.get_feature_names_out().tolist(), parts.transform(frame)[0].tolist()
        (['sold_year', 'sold_month'], [2010.0, 6.0])
    """

    def __init__(self, *, parts: Sequence[str]) -> None:
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DateParts:
        """Check ``parts`` and record the input columns."""
        unknown = [part for part in self.parts if part not in DATE_PARTS]
        if isinstance(self.parts, str) or not self.parts or unknown:
            raise ValueError(
                "The 'parts' parameter of DateParts must be a non-empty list of "
                f"{', '.join(DATE_PARTS)}. Got {self.parts!r} instead."
            )
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        if all(isinstance(column, str) for column in frame.columns):
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray[Any, Any]:
        """Return a float64 array with one column per input column and part."""
        check_is_fitted(self)
        frame = _datetime_frame(X)
        if frame.shape[1] != self.n_features_in_:
            raise DataValidationError(
                f"DateParts was fitted on {self.n_features_in_} column(s) but got "
                f"{frame.shape[1]}; send the same columns as in training"
            )
        outputs = [
            getattr(frame[column].dt, _ACCESSORS.get(part, part)).to_numpy(
                dtype="float64", na_value=np.nan
            )
            for column in frame.columns
            for part in self.parts
        ]
        return np.column_stack(outputs) if outputs else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray[Any, Any]:
        """``<column>_<part>`` for each input column and part."""
        check_is_fitted(self)
        if input_features is None:
            input_features = getattr(
                self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]
            )
        return np.asarray(
            [f"{column}_{part}" for column in input_features for part in self.parts],
            dtype=object,
        )


class _AppendColumn(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Base of transformers that append one derived column ``name`` to a DataFrame."""

    name: str

    def _inputs(self) -> list[str]:
        raise NotImplementedError

    def _derive(self, frame: pd.DataFrame) -> pd.Series[Any]:
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None) -> _AppendColumn:
        """Check that the input columns exist and ``name`` is new."""
        owner = type(self).__name__
        frame = _as_frame(X, owner=owner)
        _require_columns(frame, self._inputs(), owner=owner)
        if self.name in frame.columns:
            raise ValueError(
                f"{owner}: the output column {self.name!r} already exists in the input; "
                "choose another 'name'"
            )
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Return the input frame with the derived column appended."""
        check_is_fitted(self)
        owner = type(self).__name__
        frame = _as_frame(X, owner=owner)
        if list(frame.columns) != list(self.feature_names_in_):
            raise DataValidationError(
                f"{owner}: the input columns differ from those seen in fit "
                f"({len(frame.columns)} vs {self.n_features_in_}); send the same columns"
            )
        return frame.assign(**{self.name: self._derive(frame)})

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray[Any, Any]:
        """The input columns followed by ``name``."""
        check_is_fitted(self)
        return np.asarray([*self.feature_names_in_, self.name], dtype=object)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags


class Ratio(_AppendColumn):
    """Append ``name = numerator / denominator``; ``nan`` where the denominator is 0 or
    either side is missing.

    Example:
        >>> frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [2.0, 0.0, np.nan]})
        >>> Ratio(numerator="a", denominator="b", name="a_per_b").fit_transform(frame)[
        ...     "a_per_b"].tolist()
        [0.5, nan, nan]
    """

    def __init__(self, *, numerator: str, denominator: str, name: str) -> None:
        self.numerator = numerator
        self.denominator = denominator
        self.name = name

    def _inputs(self) -> list[str]:
        return [self.numerator, self.denominator]

    def _derive(self, frame: pd.DataFrame) -> pd.Series[Any]:
        top = pd.to_numeric(frame[self.numerator]).to_numpy("float64", na_value=np.nan)
        bottom = pd.to_numeric(frame[self.denominator]).to_numpy("float64", na_value=np.nan)
        usable = (bottom != 0) & ~np.isnan(bottom) & ~np.isnan(top)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(usable, top / np.where(usable, bottom, 1.0), np.nan)
        return pd.Series(ratio, index=frame.index, dtype="float64")


class Cross(_AppendColumn):
    """Append ``name``: the columns' category values joined with ``'|'``.

    Values are formatted like :func:`category_values` (``20.0`` -> ``"20"``); the cross
    is missing (``nan``) when any of its parts is.

    Example:
        >>> frame = pd.DataFrame({"zone": ["RL", "RM", None], "class": [20, 60, 20]})
        >>> Cross(columns=["zone", "class"], name="zc").fit_transform(frame)["zc"].tolist()
        ['RL|20', 'RM|60', nan]
    """

    def __init__(self, *, columns: Sequence[str], name: str) -> None:
        self.columns = columns
        self.name = name

    def _inputs(self) -> list[str]:
        return list(self.columns)

    def _derive(self, frame: pd.DataFrame) -> pd.Series[Any]:
        parts = [pd.Series(category_values(frame[column]), dtype=object) for column in self.columns]
        joined = parts[0].str.cat(pd.concat(parts[1:], axis=1), sep="|")
        crossed = joined.to_numpy(dtype=object, copy=True)
        crossed[joined.isna().to_numpy(bool)] = np.nan
        # An explicit object Series: pandas 3 would infer its own str dtype.
        return pd.Series(crossed, index=frame.index, dtype=object)
