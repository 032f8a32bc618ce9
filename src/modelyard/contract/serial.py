"""The input contract as plain JSON data, and back: what a browser or an app checks with.

The web and mobile exports write :func:`contract_to_dict` as ``contract.json``; the
page's script applies the same rules to it (see :mod:`modelyard.export.web`), and
:func:`contract_from_dict` rebuilds the very contract the server checks with, so tests
run one set of cases through both. Categories are listed sorted (Python's order), the
order the messages list them in.
"""

from __future__ import annotations

from typing import Any

from modelyard.contract.model import InputColumn, InputContract
from modelyard.errors import ModelyardError

__all__ = ["CONTRACT_FORMAT", "contract_from_dict", "contract_to_dict"]

#: The version of the JSON layout below; a reader refuses layouts it does not know.
CONTRACT_FORMAT = 1


def contract_to_dict(contract: InputContract) -> dict[str, Any]:
    """The contract as JSON data (no NaN: an unknown range is null)."""
    return {
        "format": CONTRACT_FORMAT,
        "columns": [
            {
                "name": column.name,
                "kind": column.kind,
                "nullable": column.nullable,
                "categories": None if column.categories is None else sorted(column.categories),
                "integer": column.integer,
                "recorded": column.recorded,
                "min": column.min,
                "max": column.max,
                "max_length": column.max_length,
                "boolean": column.boolean,
            }
            for column in contract.columns
        ],
        "reject_unseen": contract.reject_unseen,
        "max_rows": contract.max_rows,
        "ranges": contract.ranges,
        "range_tolerance": contract.range_tolerance,
        "max_columns": contract.max_columns,
    }


def contract_from_dict(data: dict[str, Any]) -> InputContract:
    """The contract :func:`contract_to_dict` wrote.

    Raises:
        ModelyardError: the data is of another format or incomplete.
    """
    if data.get("format") != CONTRACT_FORMAT:
        raise ModelyardError(
            f"contract format {data.get('format')!r} is not {CONTRACT_FORMAT}; export the "
            "version again with this modelyard"
        )
    try:
        columns = tuple(
            InputColumn(
                name=str(item["name"]),
                kind=item["kind"],
                nullable=bool(item["nullable"]),
                categories=None if item["categories"] is None else frozenset(item["categories"]),
                integer=bool(item["integer"]),
                recorded=item["recorded"],
                min=item["min"],
                max=item["max"],
                max_length=int(item["max_length"]),
            )
            for item in data["columns"]
        )
        return InputContract(
            columns,
            reject_unseen=bool(data["reject_unseen"]),
            max_rows=int(data["max_rows"]),
            ranges=data["ranges"],
            range_tolerance=float(data["range_tolerance"]),
            max_columns=int(data["max_columns"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelyardError(f"the contract data is incomplete: {exc!r}") from exc
