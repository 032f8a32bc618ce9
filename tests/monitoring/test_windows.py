"""Window and time arguments: accepted forms, UTC alignment, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelyard.errors import ModelyardError
from modelyard.monitoring.windows import parse_moment, parse_window, window_start

NOW = datetime(2025, 3, 10, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "length", "rows"),
    [
        ("1d", timedelta(days=1), None),
        ("6h", timedelta(hours=6), None),
        (" 30m ", timedelta(minutes=30), None),
        ("2w", timedelta(weeks=2), None),
        ("10000rows", None, 10000),
        ("1 row", None, 1),
    ],
)
def test_window_forms(text: str, length: timedelta | None, rows: int | None) -> None:
    spec = parse_window(text)
    assert (spec.length, spec.rows) == (length, rows)


@pytest.mark.parametrize("text", ["", "d", "0d", "-1d", "1y", "1.5d", "0rows", "rows", "1d2h"])
def test_bad_windows_are_refused_with_the_forms(text: str) -> None:
    with pytest.raises(ModelyardError, match=r"is not a window size; use .*10000rows"):
        parse_window(text)


def test_moments() -> None:
    assert parse_moment("2025-03-01", now=NOW, option="--since") == datetime(2025, 3, 1, tzinfo=UTC)
    offset = parse_moment("2025-03-01T02:00:00+02:00", now=NOW, option="--since")
    assert offset == datetime(2025, 3, 1, tzinfo=UTC) and offset.tzinfo == UTC
    assert parse_moment("7d", now=NOW, option="--since") == NOW - timedelta(days=7)
    with pytest.raises(ModelyardError, match=r"--until 'last week' is not a time"):
        parse_moment("last week", now=NOW, option="--until")


def test_time_windows_are_aligned_to_utc() -> None:
    day = timedelta(days=1)
    assert window_start(NOW, day) == datetime(2025, 3, 10, tzinfo=UTC)
    assert window_start(NOW, timedelta(hours=6)) == datetime(2025, 3, 10, 12, tzinfo=UTC)
    local = NOW.astimezone(timezone(timedelta(hours=-8)))
    assert window_start(local, day) == datetime(2025, 3, 10, tzinfo=UTC)
