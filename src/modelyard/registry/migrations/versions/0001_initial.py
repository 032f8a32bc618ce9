"""The initial registry schema: models, versions, artifacts, aliases, audit.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the registry tables."""
    op.create_table(
        "modelyard_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("name", name="uq_modelyard_models_name"),
    )
    op.create_table(
        "modelyard_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("modelyard_models.id", name="fk_modelyard_versions_model"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("gates_passed", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_modelyard_versions_model_version"),
    )
    op.create_table(
        "modelyard_artifacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("modelyard_versions.id", name="fk_modelyard_artifacts_version"),
            nullable=False,
        ),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(200), nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.UniqueConstraint("version_id", "role", name="uq_modelyard_artifacts_version_role"),
    )
    op.create_index("ix_modelyard_artifacts_digest", "modelyard_artifacts", ["digest"])
    op.create_table(
        "modelyard_aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("modelyard_models.id", name="fk_modelyard_aliases_model"),
            nullable=False,
        ),
        sa.Column("alias", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["modelyard_versions.model_id", "modelyard_versions.version"],
            name="fk_modelyard_aliases_version",
        ),
        sa.UniqueConstraint("model_id", "alias", name="uq_modelyard_aliases_model_alias"),
    )
    op.create_table(
        "modelyard_audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("alias", sa.String(63), nullable=True),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("details", sa.JSON, nullable=False),
        sa.CheckConstraint(
            "action IN ('register', 'promote', 'rollback', 'alias_delete')",
            name="ck_modelyard_audit_action",
        ),
    )
    op.create_index("ix_modelyard_audit_model_id", "modelyard_audit", ["model", "id"])


def downgrade() -> None:
    """Drop the registry tables (and everything recorded in them)."""
    op.drop_index("ix_modelyard_audit_model_id", table_name="modelyard_audit")
    op.drop_table("modelyard_audit")
    op.drop_table("modelyard_aliases")
    op.drop_index("ix_modelyard_artifacts_digest", table_name="modelyard_artifacts")
    op.drop_table("modelyard_artifacts")
    op.drop_table("modelyard_versions")
    op.drop_table("modelyard_models")
