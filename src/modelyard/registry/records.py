"""The records the registry hands out, and how they are read from the database.

Every record is a frozen dataclass: a :class:`ModelVersion` never changes once
registered, and an :class:`AuditEntry` is history.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.registry import db

if TYPE_CHECKING:
    from modelyard.registry.lineage import Lineage

__all__ = [
    "AliasChange",
    "ArtifactInput",
    "ArtifactRecord",
    "AuditEntry",
    "ModelSummary",
    "ModelVersion",
    "load_audit",
    "load_versions",
]


@dataclass(frozen=True)
class ArtifactInput:
    """Bytes to store with a new version.

    Attributes:
        data: the artifact's bytes.
        media_type: e.g. ``application/octet-stream``, ``application/vnd.apache.parquet``.
        extra: JSON data kept with the artifact, e.g. the skops trusted types.
    """

    data: bytes
    media_type: str = "application/octet-stream"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact of a version: its role, where its bytes are (digest), and about them."""

    role: str
    digest: str
    size: int
    media_type: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as recorded; it never changes once written.

    ``lineage`` is the stored JSON; read it through :attr:`lineage_record`, the typed
    :class:`~modelyard.registry.lineage.Lineage`.
    """

    name: str
    version: int
    created_at: datetime
    created_by: str
    gates_passed: bool
    spec: dict[str, Any]
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    report: dict[str, Any]
    description: str
    artifacts: dict[str, ArtifactRecord]
    aliases: list[str]

    @property
    def ref(self) -> str:
        """The reference that always means this version, e.g. ``house-prices:3``."""
        return f"{self.name}:{self.version}"

    @functools.cached_property
    def lineage_record(self) -> Lineage:
        """The version's lineage, typed (a lineage stored before the model reads as
        schema version 1)."""
        from modelyard.registry.lineage import Lineage

        return Lineage.from_stored(self.lineage)


@dataclass(frozen=True)
class ModelSummary:
    """A model in the registry: its latest version number and its aliases."""

    name: str
    latest_version: int
    aliases: dict[str, int]
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which model, when, and why."""

    id: int
    at: datetime
    actor: str
    action: str
    model: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AliasChange:
    """The outcome of moving or deleting an alias.

    ``audit_id`` is None when nothing changed (the alias already pointed there).
    ``override`` is True when a version whose gates failed, or whose artifacts do not
    verify, was pointed at on purpose (the audit entry says which).
    """

    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    override: bool = False
    audit_id: int | None = None

    @property
    def changed(self) -> bool:
        """Whether the alias moved (and an audit entry was written)."""
        return self.audit_id is not None


def load_versions(
    conn: Connection, model_id: int, name: str, number: int | None
) -> list[ModelVersion]:
    """Versions of one model with their artifacts and aliases (one version if ``number``)."""
    v, a = db.versions, db.artifacts
    version_filter = [v.c.model_id == model_id]
    if number is not None:
        version_filter.append(v.c.version == number)
    rows = conn.execute(sa.select(v).where(*version_filter).order_by(v.c.version)).all()
    records: dict[int, dict[str, ArtifactRecord]] = {}
    for row in conn.execute(
        sa.select(a).join(v, a.c.version_id == v.c.id).where(*version_filter).order_by(a.c.id)
    ):
        records.setdefault(row.version_id, {})[row.role] = ArtifactRecord(
            role=row.role,
            digest=row.digest,
            size=row.size,
            media_type=row.media_type,
            extra=row.extra,
        )
    alias_names: dict[int, list[str]] = {}
    for alias, version in conn.execute(
        sa.select(db.aliases.c.alias, db.aliases.c.version)
        .where(db.aliases.c.model_id == model_id)
        .order_by(db.aliases.c.alias)
    ):
        alias_names.setdefault(version, []).append(alias)
    return [
        ModelVersion(
            name=name,
            version=row.version,
            created_at=row.created_at,
            created_by=row.created_by,
            gates_passed=row.gates_passed,
            spec=row.spec,
            lineage=row.lineage,
            metrics=row.metrics,
            report=row.report,
            description=row.description,
            artifacts=records.get(row.id, {}),
            aliases=alias_names.get(row.version, []),
        )
        for row in rows
    ]


def load_audit(rows: Any) -> list[AuditEntry]:
    """Audit entries from rows of the audit table."""
    return [
        AuditEntry(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            model=row.model,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            reason=row.reason,
            details=row.details,
        )
        for row in rows
    ]
