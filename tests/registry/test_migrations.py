"""Registry schema migrations: fresh databases reach head, and the schema matches the code."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from modelyard.registry import Registry, db
from modelyard.settings import Settings

_TABLES = {
    "modelyard_models",
    "modelyard_versions",
    "modelyard_artifacts",
    "modelyard_aliases",
    "modelyard_audit",
    "modelyard_prediction_segments",
    "modelyard_feedback_segments",
    "modelyard_batch_jobs",
    "modelyard_batch_results",
    "modelyard_batch_failures",
    "modelyard_batch_deliveries",
    db.VERSION_TABLE,
}


def test_fresh_database_is_upgraded_to_head_on_open(registry_url: str, tmp_path: Path) -> None:
    Registry.open(Settings(home=tmp_path), url=registry_url).close()
    engine = db.create_registry_engine(registry_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= _TABLES
        with engine.connect() as conn:
            assert db.current_revision(conn) == db.head_revision() == "0005_routing"
            context = MigrationContext.configure(
                conn, opts={"version_table": db.VERSION_TABLE, "compare_type": True}
            )
            # The migrations build exactly the schema the code queries.
            assert compare_metadata(context, db.metadata) == []
    finally:
        engine.dispose()


def test_alembic_current_reports_head(registry_url: str, tmp_path: Path) -> None:
    Registry.open(Settings(home=tmp_path), url=registry_url).close()
    config = db.alembic_config(registry_url)
    command.current(config)
    assert config.stdout.getvalue().split() == [db.head_revision(), "(head)"]  # type: ignore[union-attr]


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    config = db.alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = db.create_registry_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {db.VERSION_TABLE}
        db.upgrade_to_head(engine)
        assert set(sa.inspect(engine).get_table_names()) >= _TABLES
    finally:
        engine.dispose()


def test_offline_mode_prints_the_sql(tmp_path: Path) -> None:
    config = db.alembic_config("postgresql+psycopg://ana@localhost/yard")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        command.upgrade(config, "head", sql=True)
    sql = printed.getvalue()
    assert "CREATE TABLE modelyard_models" in sql
    assert f"CREATE TABLE {db.VERSION_TABLE}" in sql


def test_migrations_folder_ships_inside_the_package() -> None:
    import modelyard

    package = Path(modelyard.__file__).parent
    assert package / "registry" / "migrations" == db.MIGRATIONS_DIR
    assert (db.MIGRATIONS_DIR / "env.py").is_file()
    assert (db.MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (db.MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


@pytest.mark.parametrize("name", ["registry.db", "nested/deeper/registry.db"])
def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(
    tmp_path: Path, name: str
) -> None:
    engine = db.create_registry_engine(f"sqlite:///{tmp_path / name}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()
