"""The prediction log's index: one row per Parquet segment of predictions and of feedback.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the segment index tables of the prediction log."""
    op.create_table(
        "modelyard_prediction_segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("min_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("path", name="uq_modelyard_prediction_segments_path"),
    )
    op.create_index(
        "ix_modelyard_prediction_segments_model_time",
        "modelyard_prediction_segments",
        ["model", "version", "min_received_at"],
    )
    op.create_table(
        "modelyard_feedback_segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("min_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("path", name="uq_modelyard_feedback_segments_path"),
    )
    op.create_index(
        "ix_modelyard_feedback_segments_model_time",
        "modelyard_feedback_segments",
        ["model", "min_received_at"],
    )


def downgrade() -> None:
    """Drop the segment index tables (the Parquet files under the home folder stay)."""
    op.drop_index(
        "ix_modelyard_feedback_segments_model_time", table_name="modelyard_feedback_segments"
    )
    op.drop_table("modelyard_feedback_segments")
    op.drop_index(
        "ix_modelyard_prediction_segments_model_time", table_name="modelyard_prediction_segments"
    )
    op.drop_table("modelyard_prediction_segments")
