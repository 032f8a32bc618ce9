"""Windowed aggregates over an entity key: one implementation for training and streaming.

A :class:`~modelyard.spec.WindowSpec` (``features.windows``) says, for instance, "trips
per driver in the last hour". Its value for an event is computed from the events of
the same key strictly before it (point in time: never from the event itself, from
events at the same instant, or from later ones):

- :func:`window_columns` computes every window's column for a training table, walking
  its rows in time order through a :class:`Windows` state;
- a stream consumer keeps one :class:`Windows` per model and calls
  :meth:`Windows.observe` for each row it scores, in the order the stream delivers them.

Both go through :meth:`Windows.observe`, so the same events give the same values.
Among events at one instant, "the last N events" are taken in the table's row order
(training) or arrival order (streaming). Online, events of one key must arrive in time
order (a late event sees the window as of its arrival); a window needs every event of
its keys, so a group of consumers must split the stream by key (Kafka: the key as the
message key) or be a single member.

Example:
    >>> import pandas as pd
    >>> from modelyard.spec import WindowSpec
    >>> trips = WindowSpec(name="trips_1h", key="driver", agg="count", minutes=60)
    >>> frame = pd.DataFrame({
    ...     "driver": ["a", "a", "b", "a"],
    ...     "at": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 10:30",
    ...                           "2026-01-01 10:40", "2026-01-01 11:20"]),
    ... })
    >>> window_columns(frame, [trips], "at")["trips_1h"].tolist()
    [0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from modelyard.errors import DataError
from modelyard.spec import WindowSpec

__all__ = ["Windows", "event_time", "window_columns"]


def event_time(value: Any, column: str) -> float:
    """``value`` (a timestamp, ISO 8601 text, or Unix seconds) as Unix seconds (UTC when
    it names no zone).

    Raises:
        DataError: the value is missing or not a time.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    try:
        stamp: Any = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = None
    if not isinstance(stamp, pd.Timestamp) or pd.isna(stamp):
        raise DataError(
            f"column {column!r}: {value!r} is not a time; give ISO 8601 text like "
            "'2026-01-01T10:00:00Z' (a window looks back from each event's time)"
        )
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


class _Window:
    """One window's events per key: ``(time, value)`` in arrival order, trimmed to what a
    later event can still see."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.seconds = None if spec.minutes is None else spec.minutes * 60.0
        self.events: dict[Hashable, deque[tuple[float, float]]] = {}

    def value(self, key: Hashable, at: float) -> float:
        """The aggregate of ``key``'s events strictly before ``at``, within the window."""
        past = [
            (time, value)
            for time, value in self.events.get(key, ())
            if time < at and (self.seconds is None or time >= at - self.seconds)
        ]
        if self.spec.events is not None:
            past = past[-self.spec.events :]
        if self.spec.agg == "count":
            return float(len(past))
        values = [value for _, value in past if not math.isnan(value)]
        if self.spec.agg == "sum":
            return float(math.fsum(values))
        return math.fsum(values) / len(values) if values else math.nan

    def add(self, key: Hashable, at: float, value: float) -> None:
        """Remember an event, and forget those no later event can see."""
        kept = self.events.setdefault(key, deque())
        kept.append((at, value))
        if self.seconds is not None:
            while kept and kept[0][0] < at - self.seconds:
                kept.popleft()
        else:
            # a later event (at ``at`` or after) sees the last N events before it: keep
            # N of those strictly before ``at``, plus those at ``at``
            limit = self.spec.events or 0
            at_now = sum(1 for time, _ in kept if time >= at)
            while len(kept) - at_now > limit:
                kept.popleft()


class Windows:
    """The state of a model's windows: observe events in time order, get their values.

    Args:
        specs: the windows (``features.windows``).
        time_column: the column holding each event's time (``data.timestamp_column``).
    """

    def __init__(self, specs: Sequence[WindowSpec], time_column: str) -> None:
        self.specs = list(specs)
        self.time_column = time_column
        self._windows = [_Window(spec) for spec in specs]

    def observe(self, row: Mapping[str, Any]) -> dict[str, float]:
        """Each window's value for the event ``row`` (from earlier events only), then
        remember the event.

        Raises:
            DataError: the row lacks the time, a key or an ``over`` column, or its
                ``over`` value is not a number.
        """
        at = event_time(self._get(row, self.time_column), self.time_column)
        values = {}
        for window in self._windows:
            key = _key(self._get(row, window.spec.key))
            values[window.spec.name] = window.value(key, at)
        self.remember(row, at)
        return values

    def values(self, row: Mapping[str, Any], at: float) -> dict[str, float]:
        """Each window's value at ``at`` for ``row``'s keys, without remembering it."""
        return {
            window.spec.name: window.value(_key(self._get(row, window.spec.key)), at)
            for window in self._windows
        }

    def remember(self, row: Mapping[str, Any], at: float) -> None:
        """Remember the event ``row`` at ``at``."""
        for window in self._windows:
            spec = window.spec
            value = 1.0 if spec.over is None else _number(self._get(row, spec.over), spec)
            window.add(_key(self._get(row, spec.key)), at, value)

    @staticmethod
    def _get(row: Mapping[str, Any], column: str) -> Any:
        if column not in row:
            raise DataError(
                f"column {column!r} is missing; the model's windows (features.windows) "
                "need it in every row"
            )
        return row[column]


def window_columns(
    frame: pd.DataFrame, specs: Sequence[WindowSpec], time_column: str
) -> pd.DataFrame:
    """Every window's column for the rows of ``frame``, point in time (aligned on
    ``frame``'s index): each row sees only the events of earlier rows' times.

    Rows are walked in time order; rows at the same instant all get their values
    before any of them is remembered, as a stream consumer that reads them one by one
    would see them only if they were strictly earlier.

    Raises:
        DataError: a column is missing, a time or an ``over`` value unusable, or a
            window's name taken by a column of the data.
    """
    for spec in specs:
        if spec.name in frame.columns:
            raise DataError(
                f"features.windows: {spec.name!r} is already a column of the data; "
                "give the window another name"
            )
    windows = Windows(specs, time_column)
    records = cast(list[dict[str, Any]], frame.to_dict("records"))
    times = np.array([event_time(_plain(r.get(time_column)), time_column) for r in records])
    order = np.argsort(times, kind="stable")
    found: list[dict[str, float]] = [{}] * len(records)
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and times[order[end]] == times[order[start]]:
            end += 1
        instant = [int(i) for i in order[start:end]]
        for index in instant:  # all of the instant first: none sees another
            found[index] = windows.values(records[index], float(times[index]))
        for index in instant:
            windows.remember(records[index], float(times[index]))
        start = end
    return pd.DataFrame(found, index=frame.index, columns=[spec.name for spec in specs])


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | pd.Timestamp | np.datetime64):
        return pd.Timestamp(value)
    return value


def _key(value: Any) -> Hashable:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 7.0 from one front and 7 from the other: one key
    return value if isinstance(value, Hashable) else str(value)


def _number(value: Any, spec: WindowSpec) -> float:
    if value is None or value is pd.NA or value is pd.NaT:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"window {spec.name!r}: column {spec.over!r} holds {value!r}, not a number"
        ) from None
