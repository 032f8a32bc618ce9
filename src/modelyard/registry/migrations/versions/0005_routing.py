"""Routing: a policy per served model name (shadow, canary, fallback, composite) and the
audit trail of its changes and decisions.

Revision ID: 0005_routing
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_routing"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the routing tables."""
    op.create_table(
        "modelyard_routing_policies",
        sa.Column("model", sa.String(100), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("resolved", sa.JSON, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "modelyard_routing_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_modelyard_routing_events_model_id", "modelyard_routing_events", ["model", "id"]
    )


def downgrade() -> None:
    """Drop the routing tables."""
    op.drop_index("ix_modelyard_routing_events_model_id", "modelyard_routing_events")
    op.drop_table("modelyard_routing_events")
    op.drop_table("modelyard_routing_policies")
