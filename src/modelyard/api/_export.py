"""The Python API's export verbs: ONNX, the edge targets, compression and distillation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.api._open import open_registry
from modelyard.errors import SpecError
from modelyard.settings import Settings, default_actor

if TYPE_CHECKING:
    from modelyard.registry.registry import ModelVersion
    from modelyard.workflows.compress import CompressionReport, DistillResult
    from modelyard.workflows.edge import EdgeExport

__all__ = ["compress", "distill", "export_edge", "export_onnx"]


def export_onnx(
    ref: str,
    *,
    output: str | Path | None = None,
    force: bool = False,
    settings: Settings | None = None,
    actor: str | None = None,
) -> ModelVersion:
    """Export a registered version to ONNX and record it as its ``onnx`` artifact.

    The pipeline is converted, its parity checked on the version's evaluation rows
    (see :mod:`modelyard.export.onnx`), and the graph registered with its parity; serving
    uses it when the parity holds. A version that has an ``onnx`` artifact already keeps
    it unless ``force``. ``output`` also writes the ``.onnx`` file (for use elsewhere).

    Returns:
        The version, with its ``onnx`` artifact (``artifacts["onnx"].extra`` holds the
        inputs, precision, parity, opsets and library versions).

    Raises:
        ExportError: the pipeline cannot be converted; nothing is recorded.
        CheckFailed: the graph does not reproduce the pipeline; it is recorded (serving
            ignores it) and ``output`` is not written.
        IntegrityError: an artifact's bytes differ from their recorded checksum.
    """
    from modelyard.errors import CheckFailed
    from modelyard.workflows.edge import onnx_artifact

    with open_registry(settings) as registry:
        version = onnx_artifact(
            registry, registry.get_version(ref), force=force, actor=actor or default_actor()
        )
        parity = version.artifacts["onnx"].extra.get("parity") or {}
        if not parity.get("ok"):
            raise CheckFailed(
                f"the ONNX export of {version.ref} does not reproduce its pipeline "
                f"(max |diff| {parity.get('max_abs')} on {parity.get('rows')} rows, labels "
                f"equal: {parity.get('labels_equal')}, tolerance {parity.get('tolerance')}); "
                "it is recorded but serving uses the scikit-learn pipeline"
                + (", and no file was written" if output is not None else ""),
                details=parity,
            )
        if output is not None:
            Path(output).write_bytes(registry.read_artifact(version, "onnx"))
        return version


def export_edge(
    ref: str,
    *,
    target: str,
    output: str | Path,
    verify: bool = False,
    allow_parity_failure: bool = False,
    force: bool = False,
    settings: Settings | None = None,
    actor: str | None = None,
) -> EdgeExport:
    """Export a registered version for the browser (``web``) or ONNX Runtime Mobile
    (``mobile``) into the folder ``output``, and record its parity with the version.

    Uses the version's ``onnx`` export (made first if it has none; again with
    ``force``). Parity is measured on the evaluation rows for the target: in a headless
    Chromium for ``web`` (when one is installed; ``verify`` requires it), by loading
    the ``.ort`` file in ONNX Runtime for ``mobile``. See :mod:`modelyard.workflows.edge`.

    Raises:
        ExportError: the version cannot be exported for ``target``.
        CheckFailed: a parity fails (unless ``allow_parity_failure``); nothing written.
    """
    from modelyard.workflows.edge import export_target

    if target not in ("web", "mobile"):
        raise SpecError(f"unknown export target {target!r}; choose onnx, web or mobile")
    with open_registry(settings) as registry:
        return export_target(
            registry,
            ref,
            target=target,  # type: ignore[arg-type]
            output=Path(output),
            verify=verify,
            allow_parity_failure=allow_parity_failure,
            force=force,
            actor=actor or default_actor(),
        )


def compress(
    ref: str,
    *,
    max_metric_loss: float = 0.01,
    register: bool = True,
    settings: Settings | None = None,
    actor: str | None = None,
) -> CompressionReport:
    """Prune and quantize a version within ``max_metric_loss`` of its primary metric
    (0.01: 1%), measure each (size, latency, metric, parity), register the smallest as
    a new version and store the table with ``ref``. See :mod:`modelyard.workflows.compress`.
    """
    from modelyard.workflows.compress import compress_version

    with open_registry(settings) as registry:
        return compress_version(
            registry,
            ref,
            max_metric_loss=max_metric_loss,
            register=register,
            actor=actor or default_actor(),
        )


def distill(
    ref: str,
    *,
    student: str,
    params: dict[str, Any] | None = None,
    generated: int | None = None,
    settings: Settings | None = None,
    actor: str | None = None,
) -> DistillResult:
    """Train ``student`` (an estimator's import path) on the predictions of ``ref`` and
    register it with ``ref`` as its teacher. See :mod:`modelyard.workflows.compress`."""
    from modelyard.workflows.compress import distill_version

    with open_registry(settings) as registry:
        return distill_version(
            registry,
            ref,
            student=student,
            params=params,
            generated=generated,
            actor=actor or default_actor(),
        )
