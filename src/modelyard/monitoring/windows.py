"""Window and time arguments of ``modelyard monitor``: ``1d``, ``10000rows``, ``2025-03-01``.

Time windows are cut at multiples of their length since 1970-01-01 UTC, so ``1d``
windows are calendar days in UTC and two runs over overlapping ranges agree on them.
Row windows are consecutive runs of that many logged rows, oldest first.

Example:
    >>> parse_window("6h").length
    datetime.timedelta(seconds=21600)
    >>> parse_window("10000rows").rows
    10000
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelyard.errors import ModelyardError

__all__ = ["WindowSpec", "parse_moment", "parse_window", "window_start"]

_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_ROWS = re.compile(r"^\s*(\d+)\s*rows?\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FORMS = "e.g. 1d, 6h, 30m, 2w (time) or 10000rows (row count)"


@dataclass(frozen=True)
class WindowSpec:
    """A window: a length of time, or a number of rows (exactly one is set)."""

    text: str
    length: timedelta | None = None
    rows: int | None = None


def parse_window(text: str) -> WindowSpec:
    """Parse ``--window``: ``<n>s|m|h|d|w`` or ``<n>rows``.

    Raises:
        ModelyardError: the text is neither, or the size is 0.
    """
    duration = _DURATION.match(text)
    if duration:
        count = int(duration[1])
        if count > 0:
            return WindowSpec(text=text.strip(), length=count * _UNITS[duration[2]])
    rows = _ROWS.match(text)
    if rows and int(rows[1]) > 0:
        return WindowSpec(text=text.strip(), rows=int(rows[1]))
    raise ModelyardError(f"--window {text!r} is not a window size; use a positive size, {_FORMS}")


def parse_moment(text: str, *, now: datetime, option: str) -> datetime:
    """Parse ``--since``/``--until``: an ISO date or time (UTC unless it says), or a
    duration before ``now`` such as ``7d``.

    Raises:
        ModelyardError: the text is neither.
    """
    duration = _DURATION.match(text)
    if duration:
        return now - int(duration[1]) * _UNITS[duration[2]]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ModelyardError(
            f"{option} {text!r} is not a time; use an ISO date or time such as 2025-03-01 or "
            "2025-03-01T12:00:00+00:00 (UTC when no offset is given), or a duration before "
            "now such as 7d or 12h"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_start(moment: datetime, length: timedelta) -> datetime:
    """The start of the time window of ``length`` that holds ``moment``."""
    return _EPOCH + ((moment - _EPOCH) // length) * length
