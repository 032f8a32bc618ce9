"""The edge exports of a registered version: a web folder and a mobile (ORT) folder.

Each export checks parity on the version's evaluation rows for its target and records
it with the version (artifact ``web`` or ``mobile``; ``extra.parity`` holds one record
per runtime checked). Web: ONNX Runtime in Python (the ``onnx`` export's own parity)
and ONNX Runtime Web in a headless Chromium, when one is installed (required with
``verify``). Mobile: ONNX Runtime in Python, then the ``.ort`` file loaded in ONNX
Runtime. An export whose parity fails is refused, and nothing written or recorded,
unless ``allow_parity_failure``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelyard.errors import CheckFailed, ModelyardError
from modelyard.types import DecisionThreshold

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelyard.export._records import OnnxInput, Parity
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["BROWSER_MAX_ROWS", "EdgeExport", "Target", "export_target", "onnx_artifact"]

Target = Literal["web", "mobile"]
#: Evaluation rows (evenly spaced) checked in the browser and in the ORT file.
BROWSER_MAX_ROWS = 2_000


@dataclass(frozen=True)
class EdgeExport:
    """What an edge export wrote and measured.

    Attributes:
        ref: the version exported.
        target: ``web`` or ``mobile``.
        output: the folder written.
        files: each file written, with its sha256.
        parity: per runtime checked (``onnx``, ``browser``, ``ort``), its parity; None
            when it could not be measured (``notes`` says why).
        notes: what was not checked, and why.
    """

    ref: str
    target: str
    output: Path
    files: dict[str, str]
    parity: dict[str, Parity | None]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every parity measured holds."""
        return all(item.ok for item in self.parity.values() if item is not None)

    def record(self) -> dict[str, Any]:
        """The JSON record kept with the version (the artifact's extra)."""
        from modelyard.export._records import finite

        return {
            "target": self.target,
            "parity": {
                name: None if item is None else finite(asdict(item))
                for name, item in self.parity.items()
            },
            "ok": self.ok,
            "files": dict(self.files),
            "notes": list(self.notes),
        }


def onnx_artifact(
    registry: Registry, version: ModelVersion, *, force: bool, actor: str
) -> ModelVersion:
    """The version with its ``onnx`` artifact: the recorded one, or a new export.

    Raises:
        ExportError: the pipeline cannot be converted; nothing is recorded.
    """
    from modelyard.export.onnx import export_pipeline
    from modelyard.registry.readers import evaluation_frame, load_version_pipeline
    from modelyard.registry.registry import ArtifactInput

    if "onnx" in version.artifacts and not force:
        return version
    pipeline = load_version_pipeline(registry, version)
    rows = evaluation_frame(registry, version)
    exported = export_pipeline(pipeline, rows, task=str(version.spec["task"]))
    artifact = ArtifactInput(exported.model, "application/onnx", exported.artifact_extra())
    return registry.add_artifact(version, "onnx", artifact, actor=actor, replace=force)


def export_target(
    registry: Registry,
    ref: str,
    *,
    target: Target,
    output: Path,
    verify: bool = False,
    allow_parity_failure: bool = False,
    force: bool = False,
    actor: str,
) -> EdgeExport:
    """Export ``ref`` for ``target`` into the folder ``output`` and record its parity.

    Raises:
        ExportError: the pipeline cannot be converted, ONNX Runtime Web's files are not
            installed, or (``verify``) no Chromium can check the page.
        CheckFailed: a parity fails (and not ``allow_parity_failure``): nothing written.
        ModelyardError: ``output`` exists and is not an export folder.
    """
    from modelyard.export._records import OnnxInput, Parity
    from modelyard.registry.readers import evaluation_frame, load_version_pipeline

    _check_output(output)
    version = onnx_artifact(registry, registry.get_version(ref), force=force, actor=actor)
    record = version.artifacts["onnx"]
    model = registry.read_artifact(version, "onnx")
    inputs = [OnnxInput.from_dict(item) for item in record.extra["inputs"]]
    pipeline = load_version_pipeline(registry, version)
    rows = _sample(evaluation_frame(registry, version))
    parity: dict[str, Parity | None] = {"onnx": Parity.from_dict(record.extra["parity"])}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-export-") as scratch:
        folder = Path(scratch) / "export"
        if target == "web":
            files, data = _web(version, model, inputs, record.extra, folder)
            parity["browser"] = _browser_parity(folder, pipeline, rows, version, verify, notes)
            media = "application/json"
        else:
            files, data = _mobile(version, model, inputs, record.extra, folder)
            parity["ort"] = _ort_parity(data, inputs, pipeline, rows, version)
            media = "application/vnd.onnxruntime.ort"
        result = EdgeExport(version.ref, target, output, files, parity, notes)
        if not result.ok and not allow_parity_failure:
            raise CheckFailed(
                f"the {target} export of {version.ref} does not reproduce its pipeline: "
                f"{_describe(parity)}; nothing was written. Export it anyway with "
                "--allow-parity-failure",
                details=result.record(),
            )
        from modelyard.registry.registry import ArtifactInput

        registry.add_artifact(
            version, target, ArtifactInput(data, media, result.record()), actor=actor, replace=True
        )
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, output)
    return result


def _check_output(output: Path) -> None:
    """Refuse to replace a folder that is not a modelyard export (or empty)."""
    if output.exists() and (
        not output.is_dir() or (any(output.iterdir()) and not (output / "contract.json").is_file())
    ):
        raise ModelyardError(
            f"{output} exists and is not a modelyard export folder; choose a new or empty "
            "folder for --output"
        )


def _sample(rows: pd.DataFrame) -> pd.DataFrame:
    if len(rows) > BROWSER_MAX_ROWS:
        rows = rows.iloc[np.linspace(0, len(rows) - 1, BROWSER_MAX_ROWS).astype(int)]
    return rows.reset_index(drop=True)


def _document(
    version: ModelVersion, inputs: list[OnnxInput], extra: dict[str, Any]
) -> dict[str, Any]:
    from modelyard.contract.model import InputContract
    from modelyard.export.web import web_document

    return web_document(
        ref=version.ref,
        task=str(version.spec["task"]),
        contract=InputContract.from_version(version),
        inputs=inputs,
        classes=extra.get("classes"),
        precision=str(extra.get("precision")),
        decision_threshold=extra.get("decision_threshold"),
    )


def _web(
    version: ModelVersion,
    model: bytes,
    inputs: list[OnnxInput],
    extra: dict[str, Any],
    folder: Path,
) -> tuple[dict[str, str], bytes]:
    """Write the web folder; the artifact is its manifest (files, runtime, contract)."""
    from modelyard.export._edge_graph import edge_model
    from modelyard.export._runtime import grouped_graph
    from modelyard.export.web import build_web_folder, runtime_version

    graph, groups = grouped_graph(edge_model(model), inputs)
    document = _document(version, inputs, extra)
    document["model"]["groups"] = groups
    files = build_web_folder(folder, graph, document)
    manifest = {"files": files, "onnxruntime_web": runtime_version(), **document}
    return files, json.dumps(manifest, indent=1, sort_keys=True).encode()


def _mobile(
    version: ModelVersion,
    model: bytes,
    inputs: list[OnnxInput],
    extra: dict[str, Any],
    folder: Path,
) -> tuple[dict[str, str], bytes]:
    """Write the mobile folder; the artifact is the ``.ort`` file."""
    from modelyard.export._edge_graph import edge_model
    from modelyard.export.mobile import CONFIG_NAME, MODEL_NAME, convert_to_ort

    data, config = convert_to_ort(edge_model(model))
    folder.mkdir(parents=True)
    (folder / MODEL_NAME).write_bytes(data)
    (folder / CONFIG_NAME).write_text(config)
    document = _document(version, inputs, extra)
    (folder / "contract.json").write_text(json.dumps(document, indent=1, allow_nan=False))
    files = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
    }
    return files, data


def _browser_parity(
    folder: Path,
    pipeline: Pipeline,
    rows: pd.DataFrame,
    version: ModelVersion,
    verify: bool,
    notes: list[str],
) -> Parity | None:
    """The page's predictions of ``rows`` in Chromium against the pipeline's."""
    from modelyard.contract.model import InputContract
    from modelyard.export.browser import find_chromium, predict_in_browser
    from modelyard.export.onnx import compare_outputs
    from modelyard.export.web import json_records
    from modelyard.models.fit import predict
    from modelyard.types import RuntimeOutput

    if not verify and find_chromium() is None:
        notes.append(
            "browser parity not measured: no Chromium installed; install it and run "
            "modelyard export --target web --verify"
        )
        return None
    names = InputContract.from_version(version).names
    answer = predict_in_browser(folder, json_records(rows, names))
    if not answer.get("ok"):
        raise CheckFailed(
            f"the web export of {version.ref} cannot predict its evaluation rows in the "
            f"browser: {answer.get('error')}",
            details=answer.get("problems"),
        )
    task = str(version.spec["task"])
    probabilities = answer.get("probabilities")
    output = RuntimeOutput(
        values=np.asarray(
            answer["predictions"], dtype=np.float64 if task == "regression" else None
        ),
        proba=None if probabilities is None else np.asarray(probabilities, dtype=np.float64),
    )
    reference = predict(pipeline, rows)
    if task != "regression":
        # Labels travel as JSON: compare them as the pipeline's own label type.
        output = RuntimeOutput(
            values=np.asarray(output.values).astype(np.asarray(reference.values).dtype),
            proba=output.proba,
        )
    return compare_outputs(reference, output, task=task)


def _ort_parity(
    data: bytes,
    inputs: list[OnnxInput],
    pipeline: Pipeline,
    rows: pd.DataFrame,
    version: ModelVersion,
) -> Parity:
    from modelyard.export.mobile import ort_parity

    extra = version.artifacts["onnx"].extra
    return ort_parity(
        data,
        inputs,
        pipeline,
        rows,
        task=str(version.spec["task"]),
        classes=extra.get("classes"),
        threshold=DecisionThreshold.from_dict(extra.get("decision_threshold")),
    )


def _describe(parity: dict[str, Parity | None]) -> str:
    parts = []
    for name, item in parity.items():
        if item is None or item.ok:
            continue
        labels = "" if item.labels_equal is None else f", labels equal: {item.labels_equal}"
        parts.append(
            f"{name}: max |diff| {item.max_abs:.3g} (relative {item.max_rel:.3g}) on "
            f"{item.rows:,} rows{labels}, tolerance {item.tolerance}"
        )
    return "; ".join(parts)
