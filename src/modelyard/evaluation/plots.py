"""The report's charts as inline SVG, drawn with matplotlib (the ``report`` extra).

Figures are made with :class:`matplotlib.figure.Figure` directly, never ``pyplot``: no
global figure state, so servers and threads can render reports side by side. The SVG is
deterministic (a fixed hash salt, no date) and keeps text as text, so a page stays small.
"""

from __future__ import annotations

import io
import math
from typing import Any

from modelyard.errors import MissingExtraError

__all__ = ["chart_svgs"]

_SIZE = (4.6, 3.4)
_RC: dict[str, Any] = {"svg.hashsalt": "modelyard", "svg.fonttype": "none", "font.size": 9}
_COLOR, _REFERENCE, _MARK = "#0969da", "#8c959f", "#cf222e"


def chart_svgs(charts: Any) -> list[tuple[str, str]]:
    """``(title, svg)`` for each chart of a :class:`~modelyard.evaluation.charts.Charts`.

    Raises:
        MissingExtraError: matplotlib is not installed.
    """
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError(
            "matplotlib is not installed, so the report has no charts; run: "
            "pip install 'modelyard[report]'"
        ) from exc
    drawn: list[tuple[str, str]] = []
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        for title, draw in _plans(charts):
            figure = Figure(figsize=_SIZE, layout="constrained")
            draw(figure.add_subplot())
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", metadata={"Date": None})
            drawn.append((title, _inline(buffer.getvalue())))
    return drawn


def _plans(charts: Any) -> list[tuple[str, Any]]:
    plans: list[tuple[str, Any]] = []
    regression, classes = charts.regression, charts.classification
    if regression is not None and regression.actual:
        plans += [
            ("Predicted vs actual", lambda ax: _predicted_actual(ax, regression)),
            ("Residuals", lambda ax: _residuals(ax, regression)),
        ]
    if classes is not None:
        plans.append(("Confusion matrix", lambda ax: _confusion(ax, classes)))
        if classes.roc is not None:
            plans.append(("ROC curve", lambda ax: _roc(ax, classes)))
        if classes.pr is not None:
            plans.append(("Precision-recall curve", lambda ax: _pr(ax, classes)))
        if classes.calibration is not None:
            plans.append(("Calibration", lambda ax: _calibration(ax, classes)))
    if charts.importance is not None and charts.importance.columns:
        plans.append(("Permutation importance", lambda ax: _importance(ax, charts.importance)))
    return plans


def _predicted_actual(ax: Any, data: Any) -> None:
    ax.scatter(data.actual, data.predicted, s=8, alpha=0.5, color=_COLOR, linewidths=0)
    low = min(min(data.actual), min(data.predicted))
    high = max(max(data.actual), max(data.predicted))
    ax.plot([low, high], [low, high], color=_REFERENCE, linestyle="--", linewidth=1)
    ax.set(xlabel="actual", ylabel="predicted")
    _sampled(ax, data)


def _residuals(ax: Any, data: Any) -> None:
    ax.scatter(data.predicted, data.residuals, s=8, alpha=0.5, color=_COLOR, linewidths=0)
    ax.axhline(0, color=_REFERENCE, linestyle="--", linewidth=1)
    ax.set(xlabel="predicted", ylabel="predicted - actual")
    _sampled(ax, data)


def _sampled(ax: Any, data: Any) -> None:
    if data.sampled_from > len(data.actual):
        ax.set_title(f"{len(data.actual):,} of {data.sampled_from:,} rows", fontsize=8)


def _confusion(ax: Any, data: Any) -> None:
    counts = data.confusion
    biggest = max((max(row) for row in counts), default=0) or 1
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=biggest)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            dark = value > biggest / 2
            ax.text(
                j, i, f"{value:,}", ha="center", va="center", color="white" if dark else "black"
            )
    ticks = range(len(data.labels))
    ax.set_xticks(ticks, data.labels, rotation=30 if len(data.labels) > 3 else 0)
    ax.set_yticks(ticks, data.labels)
    ax.set(xlabel="predicted", ylabel="actual")


def _roc(ax: Any, data: Any) -> None:
    ax.plot(data.roc.x, data.roc.y, color=_COLOR, label=f"AUC {data.roc.area:.3f}")
    ax.plot([0, 1], [0, 1], color=_REFERENCE, linestyle="--", linewidth=1)
    _mark(ax, data.roc.at_threshold, data.threshold)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)


def _pr(ax: Any, data: Any) -> None:
    ax.plot(data.pr.x, data.pr.y, color=_COLOR, label=f"average precision {data.pr.area:.3f}")
    _mark(ax, data.pr.at_threshold, data.threshold)
    ax.set(
        xlabel=f"recall ({data.positive_class})", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02)
    )
    ax.legend(loc="lower left", fontsize=8)


def _mark(ax: Any, point: tuple[float, float] | None, threshold: float | None) -> None:
    if point is not None and threshold is not None and not any(map(math.isnan, point)):
        ax.plot(*point, "o", color=_MARK, label=f"threshold {threshold:.3g}")


def _calibration(ax: Any, data: Any) -> None:
    bins = data.calibration
    ax.plot([0, 1], [0, 1], color=_REFERENCE, linestyle="--", linewidth=1)
    ax.plot(bins.predicted, bins.observed, "o-", color=_COLOR)
    ax.set(
        xlabel=f"mean predicted P({data.positive_class})",
        ylabel="observed share",
        xlim=(0, 1),
        ylim=(0, 1),
    )


def _importance(ax: Any, data: Any, top: int = 15) -> None:
    columns, mean, std = data.columns[:top][::-1], data.mean[:top][::-1], data.std[:top][::-1]
    ax.barh(columns, mean, xerr=std, color=_COLOR)
    ax.axvline(0, color=_REFERENCE, linewidth=1)
    ax.set(xlabel=f"{data.metric} worse when shuffled")
    ax.tick_params(axis="y", labelsize=8)


def _inline(svg: str) -> str:
    """The ``<svg>`` element alone (no XML declaration or DOCTYPE), to sit in HTML."""
    return svg[svg.index("<svg") :]
