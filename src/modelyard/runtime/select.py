"""The runtime that serves a version, and the reason, decided in one place.

``auto`` picks ONNX Runtime when the version has an ``onnx`` artifact whose recorded
parity holds (and onnxruntime is installed), else the scikit-learn pipeline; ``onnx``
insists on ONNX Runtime; ``sklearn`` takes the pipeline. Every artifact is read through
the registry's readers, so its checksum is verified, and a checksum mismatch is never
hidden by a fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args

from modelyard.errors import MissingExtraError, ModelyardError
from modelyard.types import Runtime

if TYPE_CHECKING:
    from modelyard.models.runtime import SklearnRuntime
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["RuntimeChoice", "RuntimePreference", "onnx_problem", "select_runtime"]

logger = logging.getLogger(__name__)

RuntimePreference = Literal["auto", "onnx", "sklearn"]
_PREFERENCES: tuple[str, ...] = get_args(RuntimePreference)


class RuntimeChoice(NamedTuple):
    """The runtime serving a version, and why it was chosen (a sentence for operators;
    ``modelyard serve`` shows it on ``/v1/models``)."""

    runtime: Runtime
    reason: str


def select_runtime(
    registry: Registry, version: ModelVersion, preference: str = "auto"
) -> RuntimeChoice:
    """The runtime to serve ``version`` with, and why (see the module docstring).

    Raises:
        IntegrityError: an artifact's bytes differ from the recorded checksum.
        ModelyardError: ``onnx`` is asked for and the version has no usable export, or
            ``preference`` is unknown.
        MissingExtraError: ``onnx`` is asked for and onnxruntime is not installed.
    """
    if preference not in _PREFERENCES:
        raise ModelyardError(
            f"runtime {preference!r} is not known; use 'auto', 'onnx' or 'sklearn'"
        )
    if preference == "sklearn":
        return RuntimeChoice(_sklearn(registry, version), "scikit-learn pipeline (asked for)")
    from modelyard.export._common import ExportError
    from modelyard.export._runtime import OnnxRuntime

    problem = onnx_problem(version)
    if problem is None:
        try:
            runtime = OnnxRuntime.from_version(registry, version)
        except MissingExtraError as exc:
            if preference == "onnx":
                raise
            problem = str(exc)
        except ExportError as exc:
            problem = str(exc)
        else:
            assert runtime.parity is not None
            parity = runtime.parity
            return RuntimeChoice(
                runtime,
                f"ONNX Runtime: its export matches the pipeline on {parity.rows} rows "
                f"(max |diff| {parity.max_abs:.3g}, max relative {parity.max_rel:.3g})",
            )
    if preference == "onnx":
        raise ModelyardError(
            f"cannot serve {version.ref} on ONNX Runtime: {problem}; serve it with the "
            "sklearn runtime instead"
        )
    logger.info("serving %s with scikit-learn: %s", version.ref, problem)
    return RuntimeChoice(_sklearn(registry, version), f"scikit-learn pipeline: {problem}")


def onnx_problem(version: ModelVersion) -> str | None:
    """Why the version's ONNX export cannot serve it, or None if it can."""
    from modelyard.registry.readers import ONNX_ROLE

    record = version.artifacts.get(ONNX_ROLE)
    if record is None:
        recorded = version.lineage_record.onnx
        if recorded is not None and recorded.error:
            return f"its ONNX export failed at registration ({recorded.error})"
        return f"it has no ONNX export (create one with `modelyard export {version.ref}`)"
    parity = record.extra.get("parity")
    if not isinstance(parity, Mapping):
        return f"its ONNX export records no parity check (`modelyard export {version.ref} --force`)"
    if not parity.get("ok"):
        return (
            f"its ONNX export does not reproduce the pipeline (max |diff| "
            f"{parity.get('max_abs')}, labels equal: {parity.get('labels_equal')}, "
            f"tolerance {parity.get('tolerance')})"
        )
    return None


def _sklearn(registry: Registry, version: ModelVersion) -> SklearnRuntime:
    from modelyard.models.runtime import SklearnRuntime
    from modelyard.registry.readers import load_version_pipeline

    pipeline = load_version_pipeline(registry, version)
    return SklearnRuntime(pipeline, list(version.lineage_record.features.feature_order))
