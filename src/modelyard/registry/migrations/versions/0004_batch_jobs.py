"""Batch prediction: jobs (with their lease and progress), results, failed rows, deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def _job_key(table: str) -> list[Any]:
    return [
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("modelyard_batch_jobs.id", name=f"fk_{table}_job"),
            primary_key=True,
        ),
        sa.Column("row_number", sa.BigInteger, primary_key=True, autoincrement=False),
    ]


def upgrade() -> None:
    """Create the batch job tables."""
    op.create_table(
        "modelyard_batch_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("ref", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("id_columns", sa.JSON, nullable=False),
        sa.Column("chunk_rows", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("runtime", sa.String(200), nullable=True),
        sa.Column("next_row", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_total", sa.BigInteger, nullable=True),
        sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("rows_per_second", sa.Float, nullable=True),
        sa.Column("eta_seconds", sa.Float, nullable=True),
        sa.Column("notify_email", sa.String(320), nullable=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", _TIME, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("idempotency_key", name="uq_modelyard_batch_jobs_idempotency_key"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_modelyard_batch_jobs_status",
        ),
    )
    op.create_index(
        "ix_modelyard_batch_jobs_status", "modelyard_batch_jobs", ["status", "lease_expires_at"]
    )
    op.create_index("ix_modelyard_batch_jobs_created_at", "modelyard_batch_jobs", ["created_at"])
    op.create_table(
        "modelyard_batch_results",
        *_job_key("modelyard_batch_results"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("prediction", sa.Float, nullable=True),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("probabilities", sa.JSON, nullable=True),
        sa.Column("ids", sa.JSON, nullable=True),
    )
    op.create_table(
        "modelyard_batch_failures",
        *_job_key("modelyard_batch_failures"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ids", sa.JSON, nullable=True),
    )
    op.create_table(
        "modelyard_batch_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("modelyard_batch_jobs.id", name="fk_modelyard_batch_deliveries_job"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.UniqueConstraint("job_id", "channel", name="uq_modelyard_batch_deliveries_job_channel"),
    )


def downgrade() -> None:
    """Drop the batch job tables (their results go with them)."""
    op.drop_table("modelyard_batch_deliveries")
    op.drop_table("modelyard_batch_failures")
    op.drop_table("modelyard_batch_results")
    op.drop_index("ix_modelyard_batch_jobs_created_at", table_name="modelyard_batch_jobs")
    op.drop_index("ix_modelyard_batch_jobs_status", table_name="modelyard_batch_jobs")
    op.drop_table("modelyard_batch_jobs")
