"""Alembic environment of the modelyard registry.

There is no ``alembic.ini``: the config is built in code by
:func:`modelyard.registry.db.alembic_config`. Registries upgrade themselves when opened;
to work on the schema, call Alembic's commands with that config, e.g.::

    from alembic import command
    from modelyard.registry.db import alembic_config

    config = alembic_config("sqlite:////tmp/dev-registry.db")
    command.upgrade(config, "head")
    command.revision(config, message="add a column", autogenerate=True)
    command.upgrade(config, "head", sql=True)  # print the SQL for a DBA instead

The migrations run on the connection in ``config.attributes["connection"]`` when there is
one (inside the caller's transaction), else on the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from modelyard.errors import RegistryError
from modelyard.registry import db


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        version_table=db.VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the migration SQL instead of running it."""
    config = context.config
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=db.metadata,
        version_table=db.VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new one to the given URL."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RegistryError(
            "no registry database to migrate: build the config with "
            "modelyard.registry.db.alembic_config(url) or pass a connection"
        )
    engine = db.create_registry_engine(url)
    try:
        with engine.connect() as new_connection:
            new_connection.execution_options(**{db.WRITE_OPTION: True})
            with new_connection.begin():
                _run_on(new_connection)
    finally:
        engine.dispose()


# Alembic runs this file inside a migration context; any other import (e.g. doctest
# collection) finds no context and must do nothing.
if hasattr(context, "config"):
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
