"""The input contract: what a model version accepts, decided in one place.

A version's recorded schema, feature order and kinds, and its spec's rules are compiled
into one :class:`InputContract`. Every path that hands rows to a model checks them
against it: the serving protocols through the JSON front (:func:`decode_records`,
:func:`decode_split`, :func:`decode_columnar`), training-side validation and evaluation
through the pandas front (:func:`decode_frame`, :func:`check_frame_columns`), batch CSV
chunks through the columnar CSV front (:func:`check_csv_table`, on Arrow columns), the ONNX
export and the prediction log through the category-text rule (:func:`category_text`).

This package sits below data, features, export and serving: it imports only
:mod:`modelyard.types`, :mod:`modelyard.errors`, :mod:`modelyard.spec`, pandas, NumPy and
(in the columnar front, when called) pyarrow.
"""

from modelyard.contract.columnar import check_csv_table
from modelyard.contract.csv import csv_values
from modelyard.contract.frame import check_frame_columns, decode_frame, frame_values
from modelyard.contract.json import (
    check_columnar,
    check_count,
    check_names,
    check_width,
    decode_columnar,
    decode_records,
    decode_rows,
    decode_split,
)
from modelyard.contract.model import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_TEXT_LENGTH,
    DerivedRatio,
    InputColumn,
    InputContract,
    RangeRule,
    kind_of,
)
from modelyard.contract.problems import (
    InputProblem,
    ProblemGroup,
    Problems,
    RequestValidationError,
    fail,
    show,
)
from modelyard.contract.record import ColumnSchema, DataSchema, RecordedKind
from modelyard.contract.text import (
    CATEGORY_INT_LIMIT,
    category_text,
    category_texts,
    first_invalid_text,
    is_valid_text,
)

__all__ = [
    "CATEGORY_INT_LIMIT",
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_TEXT_LENGTH",
    "ColumnSchema",
    "DataSchema",
    "DerivedRatio",
    "InputColumn",
    "InputContract",
    "InputProblem",
    "ProblemGroup",
    "Problems",
    "RangeRule",
    "RecordedKind",
    "RequestValidationError",
    "category_text",
    "category_texts",
    "check_columnar",
    "check_count",
    "check_csv_table",
    "check_frame_columns",
    "check_names",
    "check_width",
    "csv_values",
    "decode_columnar",
    "decode_frame",
    "decode_records",
    "decode_rows",
    "decode_split",
    "fail",
    "first_invalid_text",
    "frame_values",
    "is_valid_text",
    "kind_of",
    "show",
]
