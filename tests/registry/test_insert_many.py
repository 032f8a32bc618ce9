"""``db.insert_many`` stores what SQLAlchemy's own ``insert()`` stores, on each backend:
the same values, JSON (null included) written by the same serializer, the same errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.errors import RegistryError
from modelyard.registry import db

_META = sa.MetaData()
_TABLES = [
    sa.Table(
        name,
        _META,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("row_number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prediction", sa.Float, nullable=True),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("ids", sa.JSON, nullable=True),
    )
    for name in ("by_sqlalchemy", "by_insert_many")
]
_ROWS: list[dict[str, Any]] = [
    {"job_id": "j", "row_number": 0, "prediction": 1.5, "label": None, "ids": None},
    {"job_id": "j", "row_number": 1, "prediction": None, "label": "yes", "ids": {"id": "h1"}},
    {"job_id": "j", "row_number": 2**40, "prediction": -0.0, "label": "é", "ids": [1, "a"]},
    {"job_id": "j", "row_number": 3, "prediction": 1e300, "label": "", "ids": {"n": None}},
]


def _stored(conn: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    """Every row as stored, the JSON column as its text (so 'null' and NULL differ)."""
    ids = sa.cast(table.c.ids, sa.Text)
    query = sa.select(table.c.job_id, table.c.row_number, table.c.prediction, table.c.label, ids)
    return [tuple(row) for row in conn.execute(query.order_by(table.c.row_number))]


def test_insert_many_stores_what_sqlalchemy_stores(registry_url: str) -> None:
    engine = db.create_registry_engine(registry_url)
    try:
        _META.create_all(engine)
        with engine.begin() as conn:
            conn.execute(_TABLES[0].insert(), _ROWS)
            db.insert_many(conn, _TABLES[1], _ROWS)
            db.insert_many(conn, _TABLES[1], [])  # nothing to write
        with engine.connect() as conn:
            expected, found = (_stored(conn, table) for table in _TABLES)
        assert found == expected and len(found) == len(_ROWS)
        assert math.copysign(1.0, found[3][2]) == math.copysign(1.0, expected[3][2])
        with pytest.raises(RegistryError, match="registry"):  # NaN is not JSON
            db.run_write(
                engine,
                lambda conn: db.insert_many(
                    conn, _TABLES[1], [{**_ROWS[0], "row_number": 9, "ids": math.nan}]
                ),
            )
        with pytest.raises(RegistryError):  # a key written twice
            db.run_write(engine, lambda conn: db.insert_many(conn, _TABLES[1], _ROWS[:1]))
    finally:
        engine.dispose()
