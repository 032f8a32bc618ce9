"""Template filters: numbers, times, sizes and durations as people read them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from modelyard.evaluation.metrics import format_value

__all__ = ["FILTERS"]


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else format_value(value)
    return str(value)


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _size(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{value} B"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 90:
        return f"{value:,.0f} s"
    if value < 5400:
        return f"{value / 60:,.0f} min"
    return f"{value / 3600:,.1f} h"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


FILTERS: dict[str, Callable[..., str]] = {
    "number": _number,
    "when": _when,
    "size": _size,
    "seconds": _seconds,
    "percent": _percent,
}
