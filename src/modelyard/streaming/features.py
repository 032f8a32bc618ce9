"""Streaming features: the windows of ``features.windows``, computed from the stream.

A version trained with windowed aggregates (trips per driver in the last hour...) got
their columns from its training table, point in time (:mod:`modelyard.data.windows`).
The consumer computes the same columns from the messages it reads, through the same
:class:`~modelyard.data.windows.Windows`: each row's values come from the rows read
before it, then the row is remembered. A row's window columns, when it carries them
already, are replaced: the stream is the source of truth for them.

The state lives in the consumer's memory and starts empty: a window sees the events
the consumer read since it started (a consumer restarted mid-window undercounts until
the window has passed). One state per window definition is kept across version
switches, so a new version with the same windows sees the same past.
"""

from __future__ import annotations

import math
from typing import Any

from modelyard.data.windows import Windows
from modelyard.errors import DataError
from modelyard.spec import WindowSpec
from modelyard.streaming.messages import BadMessage, Request

__all__ = ["StreamWindows"]


class StreamWindows:
    """The window states of the versions a consumer predicts with."""

    def __init__(self) -> None:
        self._states: dict[str, Windows | None] = {}

    def state(self, spec: dict[str, Any]) -> Windows | None:
        """The windows of a version's spec (a ``ProjectSpec`` as a dict), or None."""
        specs = (spec.get("features") or {}).get("windows") or []
        time_column = (spec.get("data") or {}).get("timestamp_column")
        if not specs or not time_column:
            return None
        windows = [WindowSpec.model_validate(item) for item in specs]
        key = repr(([w.model_dump() for w in windows], time_column))
        if key not in self._states:
            self._states[key] = Windows(windows, time_column)
        return self._states[key]

    def enrich(self, request: Request, windows: Windows) -> Request:
        """``request`` with each row's window columns, computed from the rows before it.

        Raises:
            BadMessage: a row lacks the time, a key or an ``over`` column.
        """
        payload = dict(request.payload)
        try:
            if request.single:
                payload["row"] = self._row(payload["row"], windows)
            elif "rows" in payload:
                payload["rows"] = [self._row(row, windows) for row in _objects(payload["rows"])]
            else:
                columns = list(payload.get("columns") or [])
                rows = [dict(zip(columns, values, strict=False)) for values in payload["data"]]
                payload.pop("columns", None)
                payload.pop("data", None)
                payload["rows"] = [self._row(row, windows) for row in rows]
        except (DataError, TypeError) as exc:
            raise BadMessage(
                f"cannot compute the model's streaming features: {exc}",
                kind="window",
                id=request.id,
            ) from None
        return Request(request.id, payload, request.single)

    @staticmethod
    def _row(row: Any, windows: Windows) -> dict[str, Any]:
        if not isinstance(row, dict):
            raise TypeError(f"expected each row to be an object, found {type(row).__name__}")
        values = windows.observe(row)
        # a mean over an empty window is missing: null, as JSON rows say it
        return {**row, **{k: None if math.isnan(v) else v for k, v in values.items()}}


def _objects(rows: Any) -> list[Any]:
    if not isinstance(rows, list):
        raise TypeError(f'expected "rows" to be a list, found {type(rows).__name__}')
    return rows
