"""Readers of a version's artifacts: its fitted pipeline, its evaluation rows, its ONNX graph.

Every reader goes through :meth:`Registry.read_artifact`, so bytes whose checksum does
not match the registry are refused (:class:`~modelyard.errors.IntegrityError`) before
they are parsed. The readers sit beside the registry so that serving, export and the
workflows all read artifacts the same way without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["StoredGraph", "evaluation_frame", "load_version_pipeline", "read_onnx_graph"]

#: The artifact role of a version's ONNX export.
ONNX_ROLE = "onnx"


def load_version_pipeline(registry: Registry, version: ModelVersion) -> Pipeline:
    """Load a version's fitted pipeline, refusing bytes whose checksum does not match.

    The project folder recorded in the version's lineage is put on ``sys.path`` while
    loading, so a pipeline holding a user transformer finds its module.
    """
    from modelyard.models.artifacts import load_pipeline

    record = version.artifacts["model"]
    data = registry.read_artifact(version, "model")
    recorded = version.lineage_record.project_dir
    project_dir = Path(recorded) if recorded and Path(recorded).is_dir() else None
    trusted = list(record.extra.get("trusted", []))
    return load_pipeline(data, trusted=trusted, project_dir=project_dir)


def evaluation_frame(registry: Registry, version: ModelVersion) -> pd.DataFrame:
    """The rows a version was evaluated on, from its frozen snapshot."""
    from modelyard.data.snapshot import frame_from_parquet

    snapshot = frame_from_parquet(registry.read_artifact(version, "snapshot"))
    table = frame_from_parquet(registry.read_artifact(version, "evaluation"))
    rows = table["row"].to_numpy()
    return snapshot.iloc[rows].reset_index(drop=True)


@dataclass(frozen=True)
class StoredGraph:
    """A version's ONNX graph as registered: checksum-verified bytes and their record.

    ``extra`` is the artifact's JSON record (graph inputs, classes, parity), which the
    export layer parses into its own records.
    """

    model: bytes
    extra: dict[str, Any]


def read_onnx_graph(registry: Registry, version: ModelVersion) -> StoredGraph:
    """The version's ``onnx`` artifact, read checksum-verified.

    Raises:
        ModelNotFoundError: the version has no ``onnx`` artifact.
        IntegrityError: the artifact's bytes differ from the recorded checksum.
    """
    data = registry.read_artifact(version, ONNX_ROLE)
    return StoredGraph(model=data, extra=dict(version.artifacts[ONNX_ROLE].extra))
