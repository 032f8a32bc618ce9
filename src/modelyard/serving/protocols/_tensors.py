"""Tensor data of the Open Inference Protocol V2: Triton's binary extension both ways,
missing-value marks, and the datatypes answers are sent in.

Split from :mod:`modelyard.serving.protocols.v2` (the routes) as the part that knows
bytes and tensor layouts, not HTTP.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import numpy as np

from modelyard.serving.protocols import ServingError

__all__ = ["Datatype", "as_tensor", "encode_binary", "inline_binary", "mark_missing", "plain"]

_NUMERIC = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "BOOL": "?",
}
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_LENGTH = struct.Struct("<I")


def inline_binary(inputs: Any, binary: bytes) -> Any:
    """Inputs whose data came as binary get it as a list, as if sent in JSON."""
    if not isinstance(inputs, list):
        return inputs
    offset = 0
    inlined = []
    for index, tensor in enumerate(inputs):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise ServingError(
                    400,
                    f"inputs[{index}]: binary_data_size {size!r} goes past the "
                    f"{len(binary)} bytes of binary data after the JSON header",
                    kind="bad_request",
                )
            chunk = binary[offset : offset + size]
            offset += size
            tensor = {**tensor, "data": _decode_binary(chunk, tensor.get("datatype"), index)}
        inlined.append(tensor)
    if offset != len(binary):
        raise ServingError(
            400,
            f"{len(binary) - offset} bytes of binary data follow the JSON header that no "
            "input's parameters.binary_data_size accounts for",
            kind="bad_request",
        )
    return inlined


def mark_missing(inputs: Any, payload: dict[str, Any]) -> Any:
    """Inputs with the elements their ``missing`` parameter names set to null.

    V2 tensors (binary ones above all) have no null: a tensor's ``parameters.missing``,
    or the request's ``parameters.missing`` (``{input name: [...]}``, which
    ``tritonclient``'s ``infer(parameters=...)`` sends), lists the flat positions of its
    missing elements; their data is ignored (send ``""`` or 0). FP tensors may also send
    NaN. Nested data is flattened first (row-major, as V2 lays tensors out).

    Raises:
        ServingError: 400 when ``missing`` is not a list of positions inside the tensor.
    """
    if not isinstance(inputs, list):
        return inputs
    parameters = payload.get("parameters")
    by_name = parameters.get("missing") if isinstance(parameters, dict) else None
    if by_name is not None and not isinstance(by_name, dict):
        raise ServingError(
            400,
            "parameters.missing must map input names to lists of the missing elements' "
            f"positions, found {type(by_name).__name__}",
            kind="bad_request",
            loc=["body", "parameters", "missing"],
        )
    marked = []
    for index, tensor in enumerate(inputs):
        own = tensor.get("parameters") if isinstance(tensor, dict) else None
        positions = own.get("missing") if isinstance(own, dict) else None
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if positions is None and by_name is not None and isinstance(name, str):
            positions = by_name.get(name)
        data = tensor.get("data") if isinstance(tensor, dict) else None
        if positions is None or not isinstance(data, list):
            marked.append(tensor)
            continue
        flat = _flat(data)
        if not isinstance(positions, list) or not all(
            type(p) is int and 0 <= p < len(flat) for p in positions
        ):
            raise ServingError(
                400,
                f"inputs[{index}]: parameters.missing must list positions from 0 to "
                f"{len(flat) - 1} of the tensor's {len(flat)} elements",
                kind="bad_request",
                loc=["body", "inputs", index, "parameters", "missing"],
            )
        for position in positions:
            flat[position] = None
        marked.append({**tensor, "data": flat})
    return marked


def _flat(data: list[Any]) -> list[Any]:
    """A copy of tensor data, flattened row-major (V2 allows nested lists)."""
    if not any(isinstance(item, list) for item in data):
        return list(data)
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:  # iterative: a deeply nested body must not exhaust the Python stack
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


_END = object()


def _decode_binary(chunk: bytes, datatype: Any, index: int) -> list[Any]:
    if datatype == "BYTES":
        values = []
        offset = 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                break
            (length,) = _LENGTH.unpack_from(chunk, offset)
            offset += 4
            if offset + length > len(chunk):
                break
            try:
                values.append(chunk[offset : offset + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise ServingError(
                    400, f"inputs[{index}]: BYTES element is not UTF-8 text", kind="bad_request"
                ) from None
            offset += length
        else:
            return values
        raise ServingError(
            400,
            f"inputs[{index}]: BYTES data is cut short; each element is a 4-byte "
            "little-endian length followed by that many bytes",
            kind="bad_request",
        )
    dtype = _NUMERIC.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise ServingError(
            400,
            f"inputs[{index}]: datatype {datatype!r} cannot be sent as binary data; use one "
            f"of {', '.join([*_NUMERIC, 'BYTES'])}",
            kind="bad_request",
        )
    width = np.dtype(dtype).itemsize
    if len(chunk) % width:
        raise ServingError(
            400,
            f"inputs[{index}]: {len(chunk)} bytes of binary data is not a whole number of "
            f"{datatype} values ({width} bytes each)",
            kind="bad_request",
        )
    return np.frombuffer(chunk, dtype=dtype).tolist()  # type: ignore[no-any-return]


def plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def as_tensor(values: np.ndarray) -> tuple[str, np.ndarray]:
    kind = values.dtype.kind
    if kind == "f":
        return "FP64", np.ascontiguousarray(values, dtype=np.float64)
    if kind in "iu":
        return "INT64", np.ascontiguousarray(values, dtype=np.int64)
    if kind == "b":
        return "BOOL", np.ascontiguousarray(values)
    return "BYTES", np.array([str(plain(v)) for v in values.ravel()], dtype=object).reshape(
        values.shape
    )


def encode_binary(values: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(values, dtype=_NUMERIC[datatype]).tobytes()
    parts = []
    for value in values.ravel():
        encoded = str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)
