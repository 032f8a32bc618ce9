"""The contract's CSV rule: CSV fields read as the JSON values they stand for.

CSV is text. A field of a numeric column (or of a categorical column recorded as
numbers) is read by JSON's number grammar; an empty field is null; a true/false column
takes ``true``/``True``/``TRUE`` and their ``false`` forms. What is left is checked by
the JSON front like any value, so a CSV request and a batch CSV file are held to the
same rules as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from modelyard.contract.model import InputColumn

__all__ = ["JSON_NUMBER", "csv_number", "csv_value", "csv_values", "reads_numbers"]

_TRUE, _FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})
#: JSON's number grammar (RFC 8259), ASCII digits only: CSV numbers are read by the rules
#: JSON numbers are, so ``1_000``, ``+5``, ``.5``, ``NaN`` and non-ASCII digits stay text.
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def reads_numbers(column: InputColumn) -> bool:
    """Whether the column's fields are read as numbers (by :func:`csv_number`)."""
    return column.kind == "numeric" or (
        column.kind == "categorical" and column.recorded in ("integer", "float")
    )


def csv_values(column: InputColumn, texts: Sequence[Any]) -> list[Any]:
    """CSV fields as the JSON values they stand for, by the column's kind."""
    if reads_numbers(column):
        return [csv_number(text) for text in texts]
    if column.boolean:
        return [
            text in _TRUE if text in _TRUE or text in _FALSE else text or None for text in texts
        ]
    return [text or None for text in texts]


def csv_value(column: InputColumn, text: str) -> Any:
    """One CSV field as the JSON value it stands for (:func:`csv_values` of one)."""
    return csv_values(column, (text,))[0]


def csv_number(text: str) -> int | float | str | None:
    """A field as JSON would read it: an int, a float, null when empty, else the text."""
    if text == "":
        return None
    match = JSON_NUMBER.fullmatch(text)
    if match is None:
        return text  # reported as it is
    if match.group(1) is None and match.group(2) is None:
        return int(text)
    return float(text)
