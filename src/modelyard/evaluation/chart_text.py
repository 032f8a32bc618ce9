"""The report's charts as text: the tables behind each chart, for terminals and logs.

Example:
    >>> print("\\n".join(text_table(["a", "b"], [["x", "1"], ["yy", "22"]], right_from=1)))
    a    b
    x    1
    yy  22
"""

from __future__ import annotations

import math

import numpy as np

from modelyard.evaluation.charts import Charts, ClassificationCharts, Importance, RegressionCharts
from modelyard.evaluation.metrics import format_value

__all__ = ["chart_lines", "text_table"]

_TOP_COLUMNS = 10
_DECILES = 10


def text_table(headers: list[str], rows: list[list[str]], *, right_from: int = 99) -> list[str]:
    """Columns padded to their widest cell; columns from ``right_from`` on right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if index >= right_from else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def chart_lines(charts: Charts) -> list[str]:
    """Lines of text for every chart in ``charts`` (each section after a blank line)."""
    lines: list[str] = []
    if charts.regression is not None and charts.regression.actual:
        lines += _regression(charts.regression)
    if charts.classification is not None:
        lines += _classification(charts.classification)
    if charts.importance is not None and charts.importance.columns:
        lines += _importance(charts.importance)
    return lines


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]


def _regression(data: RegressionCharts) -> list[str]:
    sample = (
        f" ({len(data.actual):,} of {data.sampled_from:,} rows)"
        if data.sampled_from > len(data.actual)
        else ""
    )
    quantiles = ", ".join(f"{k} {format_value(v)}" for k, v in data.residual_quantiles.items())
    lines = ["", f"Residuals (predicted - actual): {quantiles}"]
    lines += ["", f"Predicted vs actual, by tenth of the predictions{sample}"]
    predicted, actual = np.asarray(data.predicted), np.asarray(data.actual)
    order = np.argsort(predicted, kind="stable")
    rows = [
        [
            f"{len(part):,}",
            format_value(float(predicted[part].mean())),
            format_value(float(actual[part].mean())),
        ]
        for part in np.array_split(order, min(_DECILES, len(order)))
        if len(part)
    ]
    return lines + _indent(
        text_table(["rows", "mean predicted", "mean actual"], rows, right_from=0)
    )


def _classification(data: ClassificationCharts) -> list[str]:
    headers = ["actual \\ predicted", *data.labels]
    rows = [
        [label, *(f"{count:,}" for count in counts)]
        for label, counts in zip(data.labels, data.confusion, strict=True)
    ]
    lines = ["", "Confusion matrix", *_indent(text_table(headers, rows, right_from=1))]
    at = f"at threshold {data.threshold:.4g}" if data.threshold is not None else ""
    if data.roc is not None:
        point = data.roc.at_threshold
        where = f"; {at}: TPR {point[1]:.3f}, FPR {point[0]:.3f}" if point else ""
        lines += ["", f"ROC curve ({data.positive_class}): AUC {data.roc.area:.4f}{where}"]
    if data.pr is not None:
        point = data.pr.at_threshold
        where = f"; {at}: recall {point[0]:.3f}, precision {point[1]:.3f}" if point else ""
        lines += [f"Precision-recall: average precision {data.pr.area:.4f}{where}"]
    if data.calibration is not None:
        bins = data.calibration
        rows = [
            [f"{p:.3f}", f"{o:.3f}", f"{n:,}"]
            for p, o, n in zip(bins.predicted, bins.observed, bins.rows, strict=True)
        ]
        lines += ["", f"Calibration of P({data.positive_class}) (equal-count bins)"]
        lines += _indent(text_table(["mean predicted", "observed", "rows"], rows, right_from=0))
    return lines


def _importance(data: Importance) -> list[str]:
    shown = min(_TOP_COLUMNS, len(data.columns))
    rows = [
        [column, _signed(mean), format_value(std)]
        for column, mean, std in zip(data.columns[:shown], data.mean, data.std, strict=False)
    ]
    title = (
        f"Permutation importance: {data.metric} worse when a column is shuffled "
        f"({data.repeats} shuffles of {data.rows:,} rows; top {shown} of {len(data.columns)})"
    )
    return ["", title, *_indent(text_table(["column", "mean", "std"], rows, right_from=1))]


def _signed(value: float) -> str:
    return "nan" if math.isnan(value) else ("+" if value > 0 else "") + format_value(value)
