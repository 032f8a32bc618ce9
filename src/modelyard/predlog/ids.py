"""Request ids: one per prediction, unique, and found again when feedback names them.

:class:`RequestIds` issues the ids ``modelyard serve`` answers with: 32 hex digits, the
issue time in milliseconds (12), a random tag per process (8) and a counter (12). Ids
are unique across restarts and worker processes (the tag and the time), and carry when
they were issued, so :func:`find_logged` reads only the segments logged around then
instead of the whole log.

:func:`find_logged` says which ``(request_id, row)`` pairs the prediction log holds on
disk; the writer adds those still in memory (:meth:`PredictionLog.unknown_feedback`).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["RequestIds", "find_logged", "issued_at"]

_ISSUED = re.compile(r"^([0-9a-f]{12})[0-9a-f]{20}$")
#: How far a row's logged time may lie from its id's issue time (a slow request, a
#: clock step between the two readings).
_SLACK = timedelta(minutes=10)


class RequestIds:
    """Issues request ids; safe from one event loop (the counter is not locked, and
    ``itertools.count`` is atomic under the GIL anyway)."""

    def __init__(self) -> None:
        self._tag = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        """A new id: issue time, this process's tag, and the next count."""
        millis = time.time_ns() // 1_000_000
        return (
            f"{millis & 0xFFFFFFFFFFFF:012x}{self._tag}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"
        )


def issued_at(request_id: str) -> datetime | None:
    """When an id of :class:`RequestIds` was issued (None for any other id)."""
    found = _ISSUED.match(request_id)
    if found is None:
        return None
    try:  # a client may send any 32 hex digits: past year 9999 is no issue time
        return datetime.fromtimestamp(int(found.group(1), 16) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def find_logged(
    home: Path, engine: Engine, model: str, pairs: Iterable[tuple[str, int]]
) -> set[tuple[str, int]]:
    """Which of ``pairs`` (request id, row) the indexed prediction segments of ``model``
    hold. Only segments logged around the ids' issue times are read; an id not issued
    by :class:`RequestIds` (a batch job's, a stream's) makes every segment of the model
    a candidate.

    Raises:
        RegistryError: the index cannot be read.
        OSError, pyarrow.ArrowException: a segment cannot be read.
    """
    import pyarrow.compute as pc  # here: the request path imports this module
    import pyarrow.parquet as pq

    from modelyard.predlog import store

    wanted = set(pairs)
    if not wanted:
        return set()
    times = [issued_at(request_id) for request_id, _ in wanted]
    start = end = None
    if all(moment is not None for moment in times):
        known = [moment for moment in times if moment is not None]
        try:
            start, end = min(known) - _SLACK, max(known) + _SLACK
        except OverflowError:  # within the slack of year 1 or 9999: read every segment
            start = end = None
    ids = sorted({request_id for request_id, _ in wanted})
    found: set[tuple[str, int]] = set()
    for record in store.find_segments(engine, "predictions", model, start=start, end=end):
        table = pq.read_table(
            home / record.path,
            columns=["request_id", "row"],
            filters=pc.field("request_id").isin(ids),
            partitioning=None,
        )
        for request_id, row in zip(
            table.column("request_id").to_pylist(), table.column("row").to_pylist(), strict=True
        ):
            if (request_id, row) in wanted:
                found.add((request_id, row))
        if len(found) == len(wanted):
            break
    return found
