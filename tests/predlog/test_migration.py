"""Migration 0002: a registry made before the prediction log is upgraded when opened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from modelyard.predlog import PredictionLog, read_predictions
from modelyard.registry import ArtifactInput, LocalArtifactStore, Registry, db
from modelyard.settings import Settings
from modelyard.types import RuntimeOutput

from .conftest import T0


def test_a_registry_at_revision_0001_is_upgraded_and_keeps_its_versions(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    url = settings.resolved_registry_url()
    # The registry as the code before the prediction log made it: schema 0001, a version.
    command.upgrade(db.alembic_config(url), "0001")
    engine = db.create_registry_engine(url)
    try:
        old = Registry(engine, LocalArtifactStore(settings.artifact_root))
        old.register_version(
            "house-prices",
            artifacts={"model": ArtifactInput(b"fitted")},
            spec={"task": "regression"},
            lineage={},
            metrics={"rmse": 1.0},
            report={},
            gates_passed=True,
            actor="ana",
        )
        assert "modelyard_prediction_segments" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()

    with PredictionLog.open(settings) as log:  # opening the log upgrades the schema
        log.log(
            model="house-prices",
            version=1,
            request_id="r1",
            received_at=T0,
            columns={"area": np.array([80.0])},
            rows=1,
            output=RuntimeOutput(values=np.array([1.0])),
            latency_ms=1.0,
            endpoint="predict",
        )

    engine = db.create_registry_engine(url)
    try:
        with engine.connect() as connection:
            assert db.current_revision(connection) == db.head_revision()
            context = MigrationContext.configure(
                connection, opts={"version_table": db.VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, db.metadata) == []
            assert (
                connection.execute(
                    sa.select(sa.func.count()).select_from(db.prediction_segments)
                ).scalar()
                == 1
            )
    finally:
        engine.dispose()
    with Registry.open(settings) as registry:
        assert registry.get_version("house-prices:1").metrics == {"rmse": 1.0}
    assert read_predictions(settings, "house-prices")["request_id"].tolist() == ["r1"]


def test_downgrade_to_0001_drops_only_the_log_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    config = db.alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "0001")
    engine = db.create_registry_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert "modelyard_versions" in tables
        assert not tables & {"modelyard_prediction_segments", "modelyard_feedback_segments"}
    finally:
        engine.dispose()
