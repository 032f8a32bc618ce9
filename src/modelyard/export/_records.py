"""The records of an ONNX export: its inputs, its parity with the pipeline, the export."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["OnnxExport", "OnnxInput", "Parity", "finite"]


@dataclass(frozen=True)
class OnnxInput:
    """One graph input: the raw column it takes and how to feed it.

    Attributes:
        column: the raw input column, as in the version's feature order.
        onnx_name: the graph input's name (skl2onnx turns ``Lot.Area`` into ``Lot_Area``).
        kind: ``numeric``, ``categorical`` or ``datetime`` (``date_parts`` columns).
        dtype: ``float64`` (or ``float32``) for numbers, ``string`` for categories,
            ``int64`` (nanoseconds since 1970) for dates; every input is ``[N, 1]``.
    """

    column: str
    onnx_name: str
    kind: Literal["numeric", "categorical", "datetime"]
    dtype: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnnxInput:
        """The input from :func:`dataclasses.asdict` output (e.g. an artifact's extra)."""
        return cls(
            column=str(data["column"]),
            onnx_name=str(data["onnx_name"]),
            kind=data["kind"],
            dtype=str(data["dtype"]),
        )


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX graph reproduces the pipeline's predictions.

    Regression: ``ok`` when every ``|onnx - pipeline| <= atol + rtol * |pipeline|``.
    Classification: ``ok`` when every label is equal and every class probability is
    within ``proba_atol`` (1e-4); ``max_abs``/``max_rel`` are then about probabilities.

    Attributes:
        rows: rows compared.
        max_abs: largest absolute difference.
        max_rel: largest difference relative to the pipeline's value (where it is not 0).
        labels_equal: classification: whether every predicted label is equal.
        tolerance: the tolerances applied (``rtol``, ``atol`` or ``proba_atol``).
        ok: whether the graph may serve in place of the pipeline.
    """

    rows: int
    max_abs: float
    max_rel: float
    labels_equal: bool | None
    tolerance: dict[str, float]
    ok: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parity:
        """The parity from :func:`dataclasses.asdict` output (e.g. an artifact's extra)."""
        labels = data.get("labels_equal")
        return cls(
            rows=int(data["rows"]),
            max_abs=_number(data.get("max_abs")),
            max_rel=_number(data.get("max_rel")),
            labels_equal=None if labels is None else bool(labels),
            tolerance={str(k): float(v) for k, v in dict(data.get("tolerance", {})).items()},
            ok=bool(data["ok"]),
        )


@dataclass(frozen=True)
class OnnxExport:
    """A pipeline converted to ONNX, with its parity on real rows.

    Attributes:
        model: the serialised ONNX model (``.onnx`` file bytes).
        inputs: the graph inputs, in feature order.
        precision: ``float64``, ``float64-splits`` or ``float32-model`` (see
            :mod:`modelyard.export.onnx`).
        parity: the comparison with the pipeline.
        opset: the operator set versions by domain (``""`` is the default domain).
        versions: versions of skl2onnx, onnx, onnxruntime and onnxmltools used.
        classes: a classifier's labels in the order of its probabilities, else None.
        decision_threshold: a binary classifier's threshold
            (:meth:`DecisionThreshold.to_dict`), which runtimes apply to the probabilities.
    """

    model: bytes
    inputs: list[OnnxInput]
    precision: str
    parity: Parity
    opset: dict[str, int]
    versions: dict[str, str]
    classes: list[Any] | None = None
    decision_threshold: dict[str, Any] | None = None

    def artifact_extra(self) -> dict[str, Any]:
        """What the registry keeps next to the ``onnx`` artifact (plain JSON data)."""
        return {
            "inputs": [asdict(item) for item in self.inputs],
            "precision": self.precision,
            "parity": finite(asdict(self.parity)),
            "opset": dict(self.opset),
            "versions": dict(self.versions),
            "classes": self.classes,
            "decision_threshold": self.decision_threshold,
        }


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write those as null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value
