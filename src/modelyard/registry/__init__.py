"""The model registry: versions, aliases, audit trail and content-addressed artifacts.

Names are imported on first use, so ``import modelyard.registry.<module>`` does not pay
for SQLAlchemy and Alembic unless the registry itself is used.

Example:
    >>> from modelyard.registry import Registry, parse_ref
    >>> parse_ref("churn@production").alias
    'production'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.registry.records import (
        AliasChange,
        ArtifactInput,
        ArtifactRecord,
        AuditEntry,
        ModelSummary,
        ModelVersion,
    )
    from modelyard.registry.refs import ModelRef, parse_ref
    from modelyard.registry.registry import Registry
    from modelyard.registry.store import ArtifactStore, LocalArtifactStore

__all__ = [
    "AliasChange",
    "ArtifactInput",
    "ArtifactRecord",
    "ArtifactStore",
    "AuditEntry",
    "LocalArtifactStore",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "parse_ref",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AliasChange": "modelyard.registry.records",
        "ArtifactInput": "modelyard.registry.records",
        "ArtifactRecord": "modelyard.registry.records",
        "ArtifactStore": "modelyard.registry.store",
        "AuditEntry": "modelyard.registry.records",
        "LocalArtifactStore": "modelyard.registry.store",
        "ModelRef": "modelyard.registry.refs",
        "ModelSummary": "modelyard.registry.records",
        "ModelVersion": "modelyard.registry.records",
        "Registry": "modelyard.registry.registry",
        "parse_ref": "modelyard.registry.refs",
    },
)
