"""The segment index: recording a segment twice is harmless, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from modelyard.predlog import store
from modelyard.registry import db
from modelyard.settings import Settings

from .conftest import at


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
def settings_on(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = None if request.param == "sqlite" else request.getfixturevalue("fresh_postgres_url")
    return Settings(home=tmp_path / "home", registry_url=url)


def test_recording_a_segment_twice_keeps_one_entry(settings_on: Settings) -> None:
    home = store.home_of(settings_on)
    folder = store.segment_folder(home, "predictions", "churn", 3, at(0).date())
    path, size = store.write_segment(pa.table({"received_at": [at(0)]}), folder)
    assert path.parent == home / "predictions/model=churn/version=3/date=2025-03-01"
    record = store.SegmentRecord(
        kind="predictions",
        model="churn",
        version=3,
        path=path.relative_to(home).as_posix(),
        rows=1,
        min_received_at=at(0),
        max_received_at=at(0),
        created_at=db.utcnow(),
        bytes=size,
    )
    engine = store.open_index(settings_on)
    try:
        store.insert_segments(engine, [record])
        store.insert_segments(engine, [record, record])
        found = store.find_segments(engine, "predictions", "churn")
    finally:
        engine.dispose()
    assert found == [record]
