"""The one rule that turns a value into a category's text, and the text checks.

Every place that compares or encodes categories uses :func:`category_text` (one value)
or :func:`category_texts` (a column): the schema recorded at training, the fitted
pipeline's :class:`~modelyard.features.transformers.FrameCoercer`, the serving
decoders, the ONNX export and the prediction log's labels. The rule:

- text is itself; a missing value (``None``, NaN, ``pd.NA``, ``NaT``) has no text;
- booleans are ``"True"`` and ``"False"``;
- integers are written in full (``20``, ``2**64``), whatever their size;
- a float that is a whole number of magnitude below 2**63 is written as that integer
  (``20.0`` → ``"20"``, ``-0.0`` → ``"0"``, ``1e16`` → ``"10000000000000000"``);
- any other float is written as Python's shortest round-trip text, ``repr``
  (``2.5`` → ``"2.5"``, ``1e20`` → ``"1e+20"``, ``inf`` → ``"inf"``).

So ``20``, ``20.0`` and ``"20"`` are one category. The 2**63 cut-off is where a float
stops fitting a 64-bit integer: below it the integer text is exact, and the vectorised
form (NumPy's int64 cast) and the ONNX graph (an INT64 cast) compute the same text.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORY_INT_LIMIT",
    "category_text",
    "category_texts",
    "first_invalid_text",
    "is_valid_text",
]

#: Whole floats of magnitude below this are written as integers (``20.0`` → ``"20"``).
CATEGORY_INT_LIMIT = 2.0**63


def category_text(value: Any) -> str | None:
    """The category text of one value (``None`` when it is missing); see the module doc.

    Example:
        >>> [category_text(v) for v in [20, 20.0, "20", None, True, 2.5, 1e20, -0.0]]
        ['20', '20', '20', None, 'True', '2.5', '1e+20', '0']
    """
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < CATEGORY_INT_LIMIT:
            return str(int(number))
        return repr(number)
    return str(value)


def category_texts(values: pd.Series[Any] | np.ndarray[Any, Any] | Iterable[Any]) -> np.ndarray:
    """The category texts of a column: an object array of ``str``, ``None`` where missing.

    The same texts as :func:`category_text` value by value, computed once per distinct
    value (a categorical column has few).
    """
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        array = values.to_numpy()
    elif isinstance(values, np.ndarray):
        array = values
    else:
        array = np.array(list(values), dtype=object)
        if array.ndim != 1:  # values that are sequences themselves
            array = np.empty(len(array), dtype=object)
            array[:] = list(values) if not isinstance(values, list) else values
    if array.dtype.kind == "f":
        return _float_texts(array.astype(np.float64, copy=False))
    if array.dtype.kind in "iub":
        return np.array([category_text(value) for value in array.tolist()], dtype=object)
    array = array.astype(object, copy=False)
    if _ambiguous(array):
        return np.array([category_text(value) for value in array.tolist()], dtype=object)
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    texts = np.array([*(category_text(value) for value in uniques), None], dtype=object)
    out: np.ndarray = texts[codes]  # code -1 (missing) picks the trailing None
    return out


def _float_texts(numbers_: np.ndarray) -> np.ndarray:
    texts = np.empty(len(numbers_), dtype=object)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(numbers_) & (np.floor(numbers_) == numbers_)
        integral &= np.abs(numbers_) < CATEGORY_INT_LIMIT
    texts[integral] = numbers_[integral].astype(np.int64).astype(str)
    rest = ~integral & ~np.isnan(numbers_)
    if rest.any():
        texts[rest] = [repr(value) for value in numbers_[rest].tolist()]
    return texts


def _ambiguous(array: np.ndarray) -> bool:
    """Whether hashing would merge values whose texts differ: ``True == 1`` and
    ``2**70 == 2.0**70`` are one key to :func:`pandas.factorize`."""
    types = set(map(type, array.tolist()))
    if types <= {str, type(None)}:
        return False
    flags = bool(types & {bool, np.bool_})
    flag_types: set[type] = {bool, np.bool_}
    numeric = any(issubclass(kind, numbers.Number) and kind not in flag_types for kind in types)
    return (flags and numeric) or (int in types and bool(types & {float, np.float64}))


def is_valid_text(text: str) -> bool:
    """Whether ``text`` is a string of Unicode scalar values (no lone surrogates), the
    only text UTF-8, the runtimes and the prediction log can take."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_invalid_text(texts: Iterable[Any]) -> int | None:
    """The position of the first ``str`` in ``texts`` holding a lone surrogate, or None.

    One join and one encode for the whole column; value by value only to say where.
    """
    strings = [text if type(text) is str else "" for text in texts]
    if is_valid_text("".join(strings)):
        return None
    return next(index for index, text in enumerate(strings) if not is_valid_text(text))
