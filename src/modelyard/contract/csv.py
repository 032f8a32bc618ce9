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

__all__ = ["csv_values"]

_TRUE, _FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})
#: JSON's number grammar (RFC 8259), ASCII digits only: CSV numbers are read by the rules
#: JSON numbers are, so ``1_000``, ``+5``, ``.5``, ``NaN`` and non-ASCII digits stay text.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def csv_values(column: InputColumn, texts: Sequence[Any]) -> list[Any]:
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
