"""Small SVG charts drawn on the server: histograms, bars, scatter, calibration.

Why hand-drawn SVG rather than a chart library: the pages have no front-end build and
allow no outside script (see the app's Content-Security-Policy), and the few plain
charts needed here are a few dozen lines of SVG, where matplotlib would add a heavy
dependency and seconds of import to every page. Every text put in a chart is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

__all__ = ["bars", "calibration", "histogram", "scatter"]

_W, _H = 420, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 14, 40


def _tick(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


@dataclass(frozen=True)
class _Axes:
    """Maps data ranges onto the plot area and draws the frame, ticks and labels."""

    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return _LEFT + (value - self.x0) / span * (_W - _LEFT - _RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return _H - _BOTTOM - (value - self.y0) / span * (_H - _TOP - _BOTTOM)

    def frame(self, xlabel: str, ylabel: str, *, xticks: bool = True) -> list[str]:
        parts = [
            f'<line class="axis" x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{_W - _RIGHT}" '
            f'y2="{_H - _BOTTOM}"/>',
            f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_H - _BOTTOM}"/>',
        ]
        for step in range(5):
            value = self.y0 + (self.y1 - self.y0) * step / 4
            y = self.y(value)
            parts.append(
                f'<text class="tick" x="{_LEFT - 4}" y="{y + 4:.1f}" '
                f'text-anchor="end">{_tick(value)}</text>'
            )
            if xticks:
                xv = self.x0 + (self.x1 - self.x0) * step / 4
                parts.append(
                    f'<text class="tick" x="{self.x(xv):.1f}" y="{_H - _BOTTOM + 14}" '
                    f'text-anchor="middle">{_tick(xv)}</text>'
                )
        parts.append(
            f'<text class="label" x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 6}" '
            f'text-anchor="middle">{escape(xlabel)}</text>'
        )
        parts.append(
            f'<text class="label" x="12" y="{(_TOP + _H - _BOTTOM) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {(_TOP + _H - _BOTTOM) / 2})">{escape(ylabel)}</text>'
        )
        return parts


def _svg(title: str, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<figure><svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>'
        f"<figcaption>{escape(title)}</figcaption></figure>"
    )


def histogram(edges: Sequence[float], counts: Sequence[int], *, title: str, xlabel: str) -> Markup:
    """Bars of ``counts`` between consecutive ``edges`` (``len(edges) == len(counts) + 1``)."""
    if not counts:
        return Markup("")
    axes = _Axes(float(edges[0]), float(edges[-1]), 0.0, float(max(counts)) or 1.0)
    parts = axes.frame(xlabel, "rows")
    for left, right, count in zip(edges[:-1], edges[1:], counts, strict=True):
        x, top = axes.x(left), axes.y(count)
        width = max(axes.x(right) - x - 1, 1)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{axes.y(0) - top:.1f}"><title>{_tick(left)} – {_tick(right)}: '
            f"{count:,}</title></rect>"
        )
    return _svg(title, parts)


def bars(labels: Sequence[str], counts: Sequence[int], *, title: str, xlabel: str) -> Markup:
    """One bar per label (e.g. the predicted classes of a job)."""
    if not counts:
        return Markup("")
    axes = _Axes(0.0, float(len(counts)), 0.0, float(max(counts)) or 1.0)
    parts = axes.frame(xlabel, "rows", xticks=False)
    for index, (label, count) in enumerate(zip(labels, counts, strict=True)):
        x, top = axes.x(index + 0.1), axes.y(count)
        width = axes.x(index + 0.9) - x
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{axes.y(0) - top:.1f}"><title>{escape(label)}: {count:,}</title></rect>'
            f'<text class="tick" x="{x + width / 2:.1f}" y="{_H - _BOTTOM + 14}" '
            f'text-anchor="middle">{escape(label[:14])}</text>'
        )
    return _svg(title, parts)


def scatter(
    actual: Sequence[float], predicted: Sequence[float], *, title: str, limit: int = 2000
) -> Markup:
    """Predicted against actual values, with the line where they are equal."""
    x = np.asarray(actual, dtype=np.float64)
    y = np.asarray(predicted, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) == 0:
        return Markup("")
    if len(x) > limit:  # an even sample keeps the picture and the page small
        picked = np.linspace(0, len(x) - 1, limit).astype(np.int64)
        x, y = x[picked], y[picked]
    low = float(min(x.min(), y.min()))
    high = float(max(x.max(), y.max()))
    axes = _Axes(low, high, low, high)
    parts = axes.frame("actual", "predicted")
    parts.append(
        f'<line class="ideal" x1="{axes.x(low):.1f}" y1="{axes.y(low):.1f}" '
        f'x2="{axes.x(high):.1f}" y2="{axes.y(high):.1f}"/>'
    )
    parts.extend(
        f'<circle class="dot" cx="{axes.x(a):.1f}" cy="{axes.y(p):.1f}" r="2"/>'
        for a, p in zip(x.tolist(), y.tolist(), strict=True)
    )
    return _svg(title, parts)


def calibration(
    predicted: Sequence[float], observed: Sequence[float], counts: Sequence[int], *, title: str
) -> Markup:
    """Observed share of the positive class against the mean predicted probability."""
    points = [
        (p, o, n)
        for p, o, n in zip(predicted, observed, counts, strict=True)
        if n and math.isfinite(p) and math.isfinite(o)
    ]
    if not points:
        return Markup("")
    axes = _Axes(0.0, 1.0, 0.0, 1.0)
    parts = axes.frame("mean predicted probability", "observed share")
    parts.append(
        f'<line class="ideal" x1="{axes.x(0):.1f}" y1="{axes.y(0):.1f}" '
        f'x2="{axes.x(1):.1f}" y2="{axes.y(1):.1f}"/>'
    )
    path = " ".join(f"{axes.x(p):.1f},{axes.y(o):.1f}" for p, o, _ in points)
    parts.append(f'<polyline class="curve" points="{path}"/>')
    parts.extend(
        f'<circle class="dot" cx="{axes.x(p):.1f}" cy="{axes.y(o):.1f}" r="3">'
        f"<title>{n:,} rows: predicted {p:.2f}, observed {o:.2f}</title></circle>"
        for p, o, n in points
    )
    return _svg(title, parts)
