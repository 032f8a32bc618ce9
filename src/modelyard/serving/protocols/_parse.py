"""The request envelopes of the V2 and MLflow protocols, and CSV, parsed into the
generic shapes of the input contract's JSON front (:mod:`modelyard.contract.json`).

Each parser takes one protocol's body and returns the model's inputs as
:class:`~modelyard.types.ColumnBlocks` and the row count, or raises the contract's
:class:`~modelyard.contract.RequestValidationError`. What a value may be is the
contract's business; only the envelopes are parsed here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from modelyard.contract import (
    InputColumn,
    InputContract,
    Problems,
    check_count,
    check_width,
    decode_columnar,
    decode_records,
    decode_rows,
    decode_split,
    fail,
    show,
)
from modelyard.contract.json import assemble
from modelyard.types import Columns

__all__ = ["decode_csv", "decode_mlflow", "decode_v2"]

_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_V2_NUMBERS = frozenset(
    ["FP16", "FP32", "FP64", *(f"{s}INT{b}" for s in ("", "U") for b in (8, 16, 32, 64))]
)
_V2_TYPES = _V2_NUMBERS | {"BOOL", "BYTES"}
_TRUE, _FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})
#: JSON's number grammar (RFC 8259), ASCII digits only: CSV numbers are read by the rules
#: JSON numbers are, so ``1_000``, ``+5``, ``.5``, ``NaN`` and non-ASCII digits stay text.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def decode_v2(inputs: object, contract: InputContract) -> tuple[Columns, int]:
    """Decode Open Inference Protocol V2 ``inputs``: one tensor per column.

    Each tensor is ``{name, shape: [n] or [n, 1], datatype, data}``, ``data`` flat or
    nested ``[[v], [v]]``. One ``[n, k]`` tensor whose ``parameters.columns`` names its
    ``k`` columns is accepted too. Numeric columns take FP*/INT*/UINT* tensors,
    categorical ones those or BYTES, datetime ones BYTES; BOOL fits true/false columns.

    Raises:
        RequestValidationError: every problem found.
    """
    if not isinstance(inputs, list) or not inputs:
        fail("malformed", f"expected 'inputs': a non-empty list of tensors, found {show(inputs)}")
    check_width(len(inputs), contract, "input tensors")
    problems = Problems()
    tensors: dict[str, tuple[list[Any], str | None]] = {}
    rows: int | None = None
    for index, tensor in enumerate(inputs):
        found = _v2_tensor(tensor, f"inputs[{index}]", problems)
        if found is None:
            continue
        count, named = found
        if rows is None:
            rows = check_count(count, contract)
        elif count != rows:
            detail = f"inputs[{index}] has {count} rows, inputs[0] {rows}; give each the same"
            problems.add(None, None, "malformed", detail)
        for name in named:
            if name in tensors:
                column = name if name in contract.by_name else None  # only the model's names
                problems.add(
                    None, column, "malformed", f"{show(name)} is given by more than one tensor"
                )
        tensors.update(named)
        check_width(len(tensors), contract, "columns in the input tensors")
    problems.check()

    def lookup(column: InputColumn) -> list[Any] | None:
        if column.name not in tensors:
            return None
        values, datatype = tensors[column.name]
        allowed = {"numeric": _V2_NUMBERS, "categorical": _V2_NUMBERS | {"BYTES"}}.get(
            column.kind, frozenset({"BYTES"})
        ) | ({"BOOL"} if column.boolean else set())
        if datatype is None or datatype in allowed:
            return values
        usual = " or ".join(sorted(allowed & {"FP64", "INT64", "BYTES", "BOOL"}))
        detail = f"datatype {datatype} does not fit a {column.kind} column; send {usual}"
        problems.add(None, column.name, "wrong_type", detail)
        return []

    assert rows is not None  # a tensor was decoded, or problems.check() raised
    return assemble(contract, lookup, tensors, problems, rows), rows


def _v2_tensor(
    tensor: Any, where: str, problems: Problems
) -> tuple[int, dict[str, tuple[list[Any], str | None]]] | None:
    """A tensor's row count and columns, or ``None`` once the reason is reported."""
    if not isinstance(tensor, dict):
        found = f"found {show(tensor)}"
        problems.add(None, None, "malformed", f"{where}: expected a tensor object, {found}")
        return None
    name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
    datatype = tensor.get("datatype")
    parameters = tensor.get("parameters")
    names = parameters.get("columns") if isinstance(parameters, dict) else None
    detail: str | None = None
    if not isinstance(name, str):
        detail = f"'name' must be the column name, found {show(name)}"
    elif not isinstance(datatype, str) or datatype not in _V2_TYPES:
        detail = f"'datatype' must be one of {', '.join(sorted(_V2_TYPES))}, found {show(datatype)}"
    elif not (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(type(size) is int and size >= 0 for size in shape)
    ):
        detail = f"'shape' must be [rows] or [rows, 1], found {show(shape)}"
    elif not isinstance(data, list):
        detail = f"'data' must be a list of values, found {show(data)}"
    else:
        count, width = shape[0], shape[-1] if len(shape) == 2 else 1
        if width != 1 and not (
            isinstance(names, list) and len(names) == width and all(type(n) is str for n in names)
        ):
            detail = f"shape {shape} needs parameters.columns naming its {width} columns"
        elif data and isinstance(data[0], list):
            if len(data) != count or any(
                type(item) is not list or len(item) != width for item in data
            ):
                detail = f"nested 'data' must hold {count} lists of {width} values, as 'shape' says"
            data = [value for item in data if isinstance(item, list) for value in item]
        if detail is None and len(data) != count * width:
            detail = f"'data' has {len(data)} values, shape {shape} needs {count * width}"
    if detail is not None:
        problems.add(None, None, "malformed", f"{where} ({show(name)}): {detail}")
        return None
    assert isinstance(name, str) and isinstance(data, list) and isinstance(datatype, str)
    if width == 1:
        return count, {name: (data, datatype)}
    assert isinstance(names, list)
    return count, {column: (data[index::width], None) for index, column in enumerate(names)}


def decode_mlflow(payload: object, contract: InputContract) -> tuple[Columns, int]:
    """Decode an MLflow scoring request (MLflow 2 and 3 ``/invocations`` JSON).

    Exactly one of ``dataframe_split`` ``{columns, data, index?}``, ``dataframe_records``
    (a list of rows), ``instances`` (a list of rows) or ``inputs`` (a list of rows, or
    ``{column: [values]}``); rows given as lists follow the model's feature order.
    ``params`` and other keys are ignored.

    Raises:
        RequestValidationError: every problem found.
    """
    accepted = ", ".join(map(repr, _MLFLOW_KEYS))
    if not isinstance(payload, dict):
        fail("malformed", f"expected an object with one of {accepted}, found {show(payload)}")
    found = [key for key in _MLFLOW_KEYS if key in payload]
    if len(found) != 1:
        keys = ", ".join(map(repr, payload)) or "none"
        fail("malformed", f"expected exactly one of {accepted} (and 'params'); found: {keys}")
    key = found[0]
    body = payload[key]
    if key == "dataframe_split":
        if not isinstance(body, dict) or "columns" not in body:
            fail("malformed", "'dataframe_split' must be an object {columns, data}")
        return decode_split(body["columns"], body.get("data"), contract)
    if key == "inputs" and isinstance(body, dict):
        return decode_columnar(body, contract)
    if not isinstance(body, list):
        fail("malformed", f"'{key}' must be a list of rows, found {show(body)}")
    if not body or isinstance(body[0], dict) or key == "dataframe_records":
        return decode_records(body, contract)
    if isinstance(body[0], list):
        order = ", ".join(contract.names[:10]) + (", ..." if len(contract.columns) > 10 else "")
        return decode_rows(
            contract.names, body, contract, f"one per model input, in order: {order}"
        )
    if len(contract.columns) == 1:
        return decode_columnar({contract.columns[0].name: body}, contract)
    fail("malformed", f"'{key}' must be a list of rows (objects or lists), found single values")


def decode_csv(text: str, contract: InputContract) -> tuple[Columns, int]:
    """Decode CSV text with a header row; an empty field is null.

    Raises:
        RequestValidationError: every problem found.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    table: list[list[str]] = []
    try:
        for line in reader:
            if line:
                table.append(line)
            if len(table) > contract.max_rows + 1:
                fail("too_many_rows", f"more than the {contract.max_rows} rows allowed per request")
    except csv.Error as error:
        fail("malformed", f"not valid CSV at line {reader.line_num}: {error}")
    if not table:
        fail("empty", "the CSV text is empty; send a header row, then one line per row")
    return decode_rows(table[0], table[1:], contract, "one per name in the header", _csv_values)


def _csv_values(column: InputColumn, texts: Sequence[Any]) -> list[Any]:
    """CSV fields as the JSON values they stand for, by the column's kind."""
    numeric = column.kind == "numeric" or (
        column.kind == "categorical" and column.recorded in ("integer", "float")
    )
    if numeric:
        return [_csv_number(text) for text in texts]
    if column.boolean:
        return [
            text in _TRUE if text in _TRUE or text in _FALSE else text or None for text in texts
        ]
    return [text or None for text in texts]


def _csv_number(text: str) -> int | float | str | None:
    """A field as JSON would read it: an int, a float, null when empty, else the text."""
    if text == "":
        return None
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        return text  # reported as it is
    if match.group(1) is None and match.group(2) is None:
        return int(text)
    return float(text)
