"""The registry's tables: one SQLAlchemy ``MetaData`` that the migrations build.

Every table name starts with ``modelyard_`` so the registry can share a PostgreSQL
database with other applications. The schema itself is created and upgraded only by the
Alembic migrations in ``modelyard/registry/migrations`` (see :mod:`modelyard.registry.db`);
a table added here needs a migration too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "AUDIT_ACTIONS",
    "BATCH_JOB_STATES",
    "UTCDateTime",
    "aliases",
    "artifacts",
    "audit",
    "batch_deliveries",
    "batch_failures",
    "batch_jobs",
    "batch_results",
    "feedback_segments",
    "metadata",
    "models",
    "prediction_segments",
    "routing_events",
    "routing_policies",
    "versions",
]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: registry timestamps must carry a tz")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

models = sa.Table(
    "modelyard_models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_version", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("name", name="uq_modelyard_models_name"),
)

versions = sa.Table(
    "modelyard_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "model_id",
        sa.Integer,
        sa.ForeignKey("modelyard_models.id", name="fk_modelyard_versions_model"),
        nullable=False,
    ),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("gates_passed", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_modelyard_versions_model_version"),
)

artifacts = sa.Table(
    "modelyard_artifacts",
    metadata,
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
    sa.Index("ix_modelyard_artifacts_digest", "digest"),
)

aliases = sa.Table(
    "modelyard_aliases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "model_id",
        sa.Integer,
        sa.ForeignKey("modelyard_models.id", name="fk_modelyard_aliases_model"),
        nullable=False,
    ),
    sa.Column("alias", sa.String(63), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.ForeignKeyConstraint(
        ["model_id", "version"],
        ["modelyard_versions.model_id", "modelyard_versions.version"],
        name="fk_modelyard_aliases_version",
    ),
    sa.UniqueConstraint("model_id", "alias", name="uq_modelyard_aliases_model_alias"),
)

AUDIT_ACTIONS = ("register", "promote", "rollback", "alias_delete", "add_artifact")

audit = sa.Table(
    "modelyard_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("alias", sa.String(63), nullable=True),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("details", sa.JSON, nullable=False),
    sa.CheckConstraint(
        "action IN ('register', 'promote', 'rollback', 'alias_delete', 'add_artifact')",
        name="ck_modelyard_audit_action",
    ),
    sa.Index("ix_modelyard_audit_model_id", "model", "id"),
)

#: One row per Parquet segment of the prediction log (see modelyard.predlog); ``path`` is
#: relative to the home folder.
prediction_segments = sa.Table(
    "modelyard_prediction_segments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("path", sa.String(400), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("min_received_at", UTCDateTime, nullable=False),
    sa.Column("max_received_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("path", name="uq_modelyard_prediction_segments_path"),
    sa.Index("ix_modelyard_prediction_segments_model_time", "model", "version", "min_received_at"),
)

#: One row per Parquet segment of feedback (labels) on logged predictions.
feedback_segments = sa.Table(
    "modelyard_feedback_segments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("path", sa.String(400), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("min_received_at", UTCDateTime, nullable=False),
    sa.Column("max_received_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("path", name="uq_modelyard_feedback_segments_path"),
    sa.Index("ix_modelyard_feedback_segments_model_time", "model", "min_received_at"),
)


#: Batch prediction (see modelyard.batch): one row per job, its lease and progress.
BATCH_JOB_STATES = ("queued", "running", "done", "failed", "cancelled")

batch_jobs = sa.Table(
    "modelyard_batch_jobs",
    metadata,
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("idempotency_key", name="uq_modelyard_batch_jobs_idempotency_key"),
    sa.CheckConstraint(
        "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
        name="ck_modelyard_batch_jobs_status",
    ),
    sa.Index("ix_modelyard_batch_jobs_status", "status", "lease_expires_at"),
    sa.Index("ix_modelyard_batch_jobs_created_at", "created_at"),
)


def _job_key(table: str) -> list[Any]:
    """The (job_id, row_number) key shared by the result and failure tables."""
    return [
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("modelyard_batch_jobs.id", name=f"fk_{table}_job"),
            primary_key=True,
        ),
        sa.Column("row_number", sa.BigInteger, primary_key=True, autoincrement=False),
    ]


#: One row per scored input row; the key makes a chunk written twice fail, not double.
batch_results = sa.Table(
    "modelyard_batch_results",
    metadata,
    *_job_key("modelyard_batch_results"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("prediction", sa.Float, nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("probabilities", sa.JSON, nullable=True),
    sa.Column("ids", sa.JSON, nullable=True),
)

#: One row per input row that broke the version's input contract, with the reason.
batch_failures = sa.Table(
    "modelyard_batch_failures",
    metadata,
    *_job_key("modelyard_batch_failures"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ids", sa.JSON, nullable=True),
)

#: Notifications of a finished job (email, webhook), their attempts and last error.
batch_deliveries = sa.Table(
    "modelyard_batch_deliveries",
    metadata,
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("job_id", "channel", name="uq_modelyard_batch_deliveries_job_channel"),
)


#: Routing (see modelyard.registry.routing): one policy per served model name, with a
#: revision the servers compare to notice a change, and an audit trail of every change
#: and every decision taken on it (who or what, when, why, with the statistics).
routing_policies = sa.Table(
    "modelyard_routing_policies",
    metadata,
    sa.Column("model", sa.String(100), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("resolved", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

routing_events = sa.Table(
    "modelyard_routing_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("revision", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_modelyard_routing_events_model_id", "model", "id"),
)
