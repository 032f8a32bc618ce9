"""The monitoring report as one self-contained HTML page: charts as inline SVG.

Per version: the verdict of each window; drift over time (a heat map of every input's
strongest effect size relative to its threshold, window by window, the drifting inputs
on top); for each input, drifting ones first, its reference-vs-current shares in the
window where it moved most; realised and estimated performance over time, with the
estimate's interval and the reference; data quality; skew. No script, no external
asset: the file can be mailed, archived or opened offline.

The SVG is written here rather than with a plotting library: the charts are a few
rectangles and lines each, and a library (matplotlib, plotly) would add a heavy
dependency or a script to a page meant to be static.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from importlib import resources

from markupsafe import Markup, escape

from modelyard.monitoring.alerts import FiredAlert
from modelyard.monitoring.results import (
    ColumnDrift,
    Histogram,
    MonitorReport,
    VersionReport,
    WindowReport,
)

__all__ = ["render_html"]

_TEMPLATE = "monitor.html.j2"
_SHOWN_FEATURES = 12
_REFERENCE, _CURRENT, _DRIFT = "#9aa5b1", "#2f6fb0", "#c0392b"


def render_html(report: MonitorReport, alerts: Sequence[FiredAlert] = ()) -> str:
    """The report (and the alerts it fired) as one HTML document; values escaped."""
    from jinja2 import Environment, StrictUndefined

    source = resources.files("modelyard.monitoring").joinpath("templates", _TEMPLATE)
    environment = Environment(autoescape=True, undefined=StrictUndefined)
    environment.filters["span"] = _span
    environment.filters["num"] = _number
    template = environment.from_string(source.read_text(encoding="utf-8"))
    versions = [_version_view(version) for version in report.versions]
    return template.render(report=report, versions=versions, alerts=list(alerts))


def _version_view(version: VersionReport) -> dict[str, object]:
    windows = version.windows
    tested = [w for w in windows if not w.too_small]
    strongest: dict[str, tuple[float, WindowReport, ColumnDrift]] = {}
    for window in tested:
        for column in [*window.features, *([window.prediction] if window.prediction else [])]:
            known = strongest.get(column.column)
            if known is None or column.strength > known[0]:
                strongest[column.column] = (column.strength, window, column)
    ranked = sorted(
        strongest.values(), key=lambda item: (not item[2].drift, -item[0], item[2].column)
    )
    features = [
        {
            "name": column.column,
            "drift": column.drift,
            "window": window,
            "tests": column.tests,
            "chart": _histogram_chart(column.histogram) if column.histogram else None,
        }
        for _, window, column in ranked[:_SHOWN_FEATURES]
    ]
    metrics = _metric_names(windows)
    return {
        "ref": version.ref,
        "digest": version.profile_digest,
        "windows": windows,
        "heatmap": _heatmap(windows, [item[2].column for item in ranked]) if tested else None,
        "features": features,
        "hidden": max(0, len(ranked) - _SHOWN_FEATURES),
        "performance": [_performance_chart(windows, name) for name in metrics],
        "quality": [(w, q) for w in windows for q in w.quality if q.problems],
        "skew": [w for w in windows if w.skew is not None],
    }


def _metric_names(windows: Sequence[WindowReport]) -> list[str]:
    names: dict[str, None] = {}
    for window in windows:
        if window.performance is not None:
            names.update(dict.fromkeys(window.performance.metrics))
        if window.estimated is not None:
            names.update(dict.fromkeys(window.estimated.metrics))
    return list(names)[:3]


# -- charts ---------------------------------------------------------------------------


def _heatmap(windows: Sequence[WindowReport], columns: list[str]) -> Markup:
    """Rows: columns (strongest first) and the joint check; cells: windows."""
    rows = [*columns, "joint (domain classifier)"]
    cell_w, cell_h, left, top = max(14, min(48, 720 // max(len(windows), 1))), 16, 190, 40
    width, height = left + cell_w * len(windows) + 10, top + cell_h * len(rows) + 10
    parts = [_svg_open(width, height, "drift over time: effect size / threshold per window")]
    for x, window in enumerate(windows):
        label = _span(window)
        if x % max(1, len(windows) // 12) == 0:
            parts.append(
                f'<text x="{left + x * cell_w + 2}" y="{top - 6}" font-size="10" '
                f'transform="rotate(-30 {left + x * cell_w + 2} {top - 6})">'
                f"{escape(label)}</text>"
            )
    for y, name in enumerate(rows):
        parts.append(
            f'<text x="{left - 6}" y="{top + y * cell_h + 12}" font-size="11" '
            f'text-anchor="end">{escape(name[:28])}</text>'
        )
        for x, window in enumerate(windows):
            colour, tip = _cell(window, name)
            parts.append(
                f'<rect x="{left + x * cell_w}" y="{top + y * cell_h}" width="{cell_w - 1}" '
                f'height="{cell_h - 1}" fill="{colour}"><title>{escape(name)} · '
                f"{escape(_span(window))}: {escape(tip)}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _cell(window: WindowReport, name: str) -> tuple[str, str]:
    if window.too_small:
        return "#e5e7eb", "window too small to test"
    if name.startswith("joint"):
        joint = window.multivariate
        if joint is None:
            return "#f3f4f6", "not run"
        strength = (joint.auc - 0.5) / max(joint.threshold - 0.5, 1e-9)
        return _shade(strength, joint.drift), f"AUC {joint.auc:.3f}"
    columns = [*window.features, *([window.prediction] if window.prediction else [])]
    column = next((c for c in columns if c.column == name), None)
    if column is None or not column.tests:
        return "#f3f4f6", "not tested"
    effects = ", ".join(f"{t.effect} {t.effect_size:.3g}" for t in column.tests)
    return _shade(column.strength, column.drift), effects + (" (drift)" if column.drift else "")


def _shade(strength: float, drift: bool) -> str:
    """Green to amber below the threshold; red when the column drifts."""
    if drift:
        return _DRIFT
    level = max(0.0, min(strength, 1.0))
    red, green, blue = int(220 + 30 * level), int(240 - 60 * level), int(220 - 120 * level)
    return f"rgb({red},{green},{blue})"


def _histogram_chart(histogram: Histogram) -> Markup:
    """Horizontal bars: the reference share (grey) above the current one (blue)."""
    bar, gap, left, width = 7, 6, 120, 420
    rows = len(histogram.labels)
    height = rows * (2 * bar + gap) + 24
    peak = max([*histogram.reference, *histogram.current, 1e-9])
    parts = [_svg_open(left + width + 60, height, "reference and current shares")]
    for index, label in enumerate(histogram.labels):
        y = index * (2 * bar + gap)
        parts.append(
            f'<text x="{left - 6}" y="{y + bar + 4}" font-size="10" text-anchor="end">'
            f"{escape(label[:20])}</text>"
        )
        for offset, (share, colour) in enumerate(
            ((histogram.reference[index], _REFERENCE), (histogram.current[index], _CURRENT))
        ):
            length = width * share / peak
            parts.append(
                f'<rect x="{left}" y="{y + offset * bar}" width="{length:.1f}" height="{bar}" '
                f'fill="{colour}"><title>{share:.1%}</title></rect>'
            )
        parts.append(
            f'<text x="{left + width * histogram.current[index] / peak + 4:.1f}" '
            f'y="{y + 2 * bar}" font-size="9">{histogram.current[index]:.1%}</text>'
        )
    legend_y = rows * (2 * bar + gap) + 14
    parts.append(
        f'<rect x="{left}" y="{legend_y - 8}" width="10" height="8" fill="{_REFERENCE}"/>'
        f'<text x="{left + 14}" y="{legend_y}" font-size="10">training</text>'
        f'<rect x="{left + 80}" y="{legend_y - 8}" width="10" height="8" fill="{_CURRENT}"/>'
        f'<text x="{left + 94}" y="{legend_y}" font-size="10">this window</text></svg>'
    )
    return Markup("".join(parts))


def _performance_chart(windows: Sequence[WindowReport], metric: str) -> dict[str, object]:
    """A line per window of the realised metric, the estimate with its band, and the
    reference as a dashed line."""
    realised = [
        w.performance.metrics.get(metric) if w.performance is not None else None for w in windows
    ]
    estimates = [w.estimated.metrics.get(metric) if w.estimated else None for w in windows]
    reference = next(
        (w.performance.reference_metrics.get(metric) for w in windows if w.performance is not None),
        None,
    )
    values = [v for v in realised if v is not None]
    values += [b for e in estimates if e is not None for b in (e.low, e.high) if b is not None]
    values += [reference] if reference is not None else []
    if not values:
        return {"metric": metric, "chart": None}
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    low, high = low - pad, high + pad
    left, top, width, height = 60, 10, 620, 160
    step = width / max(len(windows) - 1, 1)

    def x(index: int) -> float:
        return left + index * step if len(windows) > 1 else left + width / 2

    def y(value: float) -> float:
        return top + height * (high - value) / (high - low)

    parts = [_svg_open(left + width + 20, top + height + 40, f"{metric} over time")]
    for fraction in (0.0, 0.5, 1.0):
        value = high - fraction * (high - low)
        parts.append(
            f'<line x1="{left}" x2="{left + width}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="10" '
            f'text-anchor="end">{value:.4g}</text>'
        )
    band = [(i, e) for i, e in enumerate(estimates) if e and e.low is not None and e.high]
    if band:
        upper = " ".join(f"{x(i):.1f},{y(e.high):.1f}" for i, e in band if e.high is not None)
        lower = " ".join(
            f"{x(i):.1f},{y(e.low):.1f}" for i, e in reversed(band) if e.low is not None
        )
        parts.append(f'<polygon points="{upper} {lower}" fill="#f5b041" fill-opacity="0.25"/>')
        parts.append(
            _polyline(
                [(x(i), y(e.value)) for i, e in band if e.value is not None],
                "#d68910",
                dashed=False,
            )
        )
    points = [(x(i), y(v)) for i, v in enumerate(realised) if v is not None]
    parts.append(_polyline(points, _CURRENT, dashed=False))
    for px, py in points:
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{_CURRENT}"/>')
    if reference is not None:
        parts.append(
            _polyline([(left, y(reference)), (left + width, y(reference))], "#555", dashed=True)
        )
    for index, window in enumerate(windows):
        if index % max(1, len(windows) // 8) == 0:
            parts.append(
                f'<text x="{x(index):.1f}" y="{top + height + 16}" font-size="10" '
                f'text-anchor="middle">{escape(_span(window))}</text>'
            )
    parts.append(
        f'<text x="{left}" y="{top + height + 34}" font-size="10">'
        f'<tspan fill="{_CURRENT}">● realised (labelled rows)</tspan>  '
        '<tspan fill="#d68910">— estimated before labels, 95% band</tspan>  '
        '<tspan fill="#555">- - training evaluation</tspan></text></svg>'
    )
    return {"metric": metric, "chart": Markup("".join(parts))}


def _polyline(points: list[tuple[float, float]], colour: str, *, dashed: bool) -> str:
    if len(points) < 2:
        return ""
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    joined = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polyline points="{joined}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'


def _svg_open(width: float, height: float, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
    )


# -- filters --------------------------------------------------------------------------


def _span(window: WindowReport) -> str:
    if window.start is None:
        return "-"

    def moment(value: datetime) -> str:
        return f"{value:%Y-%m-%d}" if value.time() == time() else f"{value:%Y-%m-%d %H:%M}"

    return moment(window.start)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
