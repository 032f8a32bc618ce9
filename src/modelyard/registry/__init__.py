"""The model registry: versions, aliases, audit trail and content-addressed artifacts.

Names are imported on first use, so ``import modelyard.registry.<module>`` does not pay
for SQLAlchemy and Alembic unless the registry itself is used.

Example:
    >>> from modelyard.registry import Registry, parse_ref
    >>> parse_ref("churn@production").alias
    'production'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

_HOMES = {
    "AliasChange": "records",
    "ArtifactInput": "records",
    "ArtifactRecord": "records",
    "ArtifactStore": "store",
    "AuditEntry": "records",
    "LocalArtifactStore": "store",
    "ModelRef": "refs",
    "ModelSummary": "records",
    "ModelVersion": "records",
    "Registry": "registry",
    "parse_ref": "refs",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'modelyard.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"modelyard.registry.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
