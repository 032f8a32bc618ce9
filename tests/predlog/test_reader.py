"""Reading the log back: index-driven windows and versions, DuckDB, pyarrow, repair."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from modelyard.errors import DataError
from modelyard.predlog import (
    PredictionLog,
    read_predictions,
    repair_index,
    segment_paths,
)
from modelyard.registry import db
from modelyard.settings import Settings

from .conftest import LogFn, at


@pytest.fixture
def three_flushes(predlog: PredictionLog, log_regression: LogFn) -> None:
    """house-prices v1 at t=0 and t=10..11, v2 at t=20, churn v1 at t=5: four segments."""
    log_regression("a", rows=2, received_at=at(0))
    predlog.flush()
    log_regression("b", rows=2, received_at=at(10))
    log_regression("c", rows=1, received_at=at(11))
    log_regression("z", rows=1, received_at=at(5), model="churn")
    predlog.flush()
    log_regression("d", rows=3, received_at=at(20), version=2)
    predlog.flush()


def _ids(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["request_id"]))


@pytest.mark.usefixtures("three_flushes")
def test_time_window_is_start_inclusive_end_exclusive(settings: Settings) -> None:
    assert _ids(read_predictions(settings, "house-prices")) == ["a", "b", "c", "d"]
    assert _ids(read_predictions(settings, "house-prices", start=at(10))) == ["b", "c", "d"]
    assert _ids(read_predictions(settings, "house-prices", end=at(11))) == ["a", "b"]
    # Rows of one segment are filtered too, not just whole segments.
    window = read_predictions(settings, "house-prices", start=at(10.5), end=at(20))
    assert _ids(window) == ["c"]
    assert read_predictions(settings, "house-prices", start=at(30)).empty


@pytest.mark.usefixtures("three_flushes")
def test_version_filter_and_segment_paths(settings: Settings) -> None:
    assert _ids(read_predictions(settings, "house-prices", version=2)) == ["d"]
    assert set(read_predictions(settings, "house-prices", version=1)["version"]) == {1}

    paths = segment_paths(settings, "house-prices")
    assert len(paths) == 3 and all(p.is_absolute() and p.is_file() for p in paths)
    assert len(segment_paths(settings, "house-prices", version=1)) == 2
    # Chosen by the index's time spans: t=0 and t=10..11 overlap [0, 10.5), t=20 does not.
    assert len(segment_paths(settings, "house-prices", start=at(0), end=at(10.5))) == 2
    assert segment_paths(settings, "house-prices", start=at(21)) == []


@pytest.mark.usefixtures("three_flushes")
def test_duckdb_reads_the_tree_with_hive_partitioning(settings: Settings) -> None:
    tree = (settings.home / "predictions").as_posix() + "/**/*.parquet"
    per_version = duckdb.sql(
        f'SELECT model, version, count(*) AS n, min("input.area") AS area '
        f"FROM read_parquet('{tree}', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY model, version"
    ).fetchall()
    assert [row[:3] for row in per_version] == [
        ("churn", 1, 1),
        ("house-prices", 1, 5),
        ("house-prices", 2, 3),
    ]

    listed = [p.as_posix() for p in segment_paths(settings, "house-prices", version=1)]
    rows = duckdb.sql(
        f"SELECT request_id, row, prediction FROM read_parquet({listed!r}) ORDER BY ALL"
    ).fetchall()
    assert rows == [("a", 0, 0.0), ("a", 1, 1000.0), ("b", 0, 0.0), ("b", 1, 1000.0), ("c", 0, 0.0)]


@pytest.mark.usefixtures("three_flushes")
def test_pyarrow_dataset_and_pandas_read_the_tree(settings: Settings) -> None:
    dataset = ds.dataset(settings.home / "predictions", format="parquet", partitioning="hive")
    table = dataset.to_table(filter=(ds.field("model") == "house-prices"))
    assert table.num_rows == 8
    assert sorted(set(table["version"].to_pylist())) == [1, 2]
    assert {"request_id", "row", "received_at", "prediction", "date"} <= set(table.column_names)

    frame = pd.read_parquet(settings.home / "predictions" / "model=house-prices")
    assert len(frame) == 8 and set(frame["version"].astype(int)) == {1, 2}


def test_a_model_never_logged_gives_an_empty_frame_with_the_base_columns(
    settings: Settings,
) -> None:
    frame = read_predictions(settings, "nothing-here")
    assert frame.empty
    assert list(frame.columns) == [
        "request_id",
        "row",
        "received_at",
        "model",
        "version",
        "endpoint",
        "latency_ms",
    ]
    labelled = read_predictions(settings, "nothing-here", with_feedback=True)
    assert list(labelled.columns)[-3:] == ["label", "label_float", "feedback_at"]
    assert segment_paths(settings, "nothing-here") == []


def test_versions_with_different_inputs_are_read_together(
    settings: Settings, predlog: PredictionLog, log_regression: LogFn
) -> None:
    log_regression("old", rows=1, version=1)
    log_regression("new", rows=1, version=2, columns={"area": [1.0], "rooms": [3.0]})
    predlog.flush()

    frame = read_predictions(settings, "house-prices")
    assert frame.set_index("request_id").loc["new", "input.rooms"] == 3.0
    assert pd.isna(frame.set_index("request_id").loc["old", "input.rooms"])
    assert pd.isna(frame.set_index("request_id").loc["new", "input.district"])


@pytest.mark.usefixtures("three_flushes")
def test_a_missing_segment_is_reported_and_repair_index_drops_it(settings: Settings) -> None:
    doomed = segment_paths(settings, "house-prices", version=2)[0]
    doomed.unlink()
    with pytest.raises(DataError, match=r"is missing; run modelyard\.predlog\.repair_index"):
        read_predictions(settings, "house-prices")

    repair = repair_index(settings)

    assert (repair.added, repair.removed, repair.skipped) == (0, 1, ())
    assert _ids(read_predictions(settings, "house-prices")) == ["a", "b", "c"]


@pytest.mark.usefixtures("three_flushes")
def test_repair_index_records_segments_the_index_lacks(settings: Settings) -> None:
    engine = db.create_registry_engine(settings.resolved_registry_url())
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.delete(db.prediction_segments).where(
                    db.prediction_segments.c.model == "house-prices",
                    db.prediction_segments.c.version == 1,
                )
            )
        assert _ids(read_predictions(settings, "house-prices")) == ["d"]
        stray = settings.home / "predictions" / "model=house-prices" / "notes.parquet"
        stray.write_bytes(b"not a segment")

        repair = repair_index(settings)

        assert (repair.added, repair.removed, repair.skipped) == (2, 0, (stray,))
        with engine.connect() as connection:
            spans = connection.execute(
                sa.select(
                    db.prediction_segments.c.rows,
                    db.prediction_segments.c.min_received_at,
                    db.prediction_segments.c.max_received_at,
                )
                .where(
                    db.prediction_segments.c.model == "house-prices",
                    db.prediction_segments.c.version == 1,
                )
                .order_by(db.prediction_segments.c.min_received_at)
            ).all()
    finally:
        engine.dispose()
    assert spans == [(2, at(0), at(0)), (3, at(10), at(11))]
    assert _ids(read_predictions(settings, "house-prices")) == ["a", "b", "c", "d"]
    assert repair_index(settings).added == 0  # idempotent
