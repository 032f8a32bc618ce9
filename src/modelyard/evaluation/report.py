"""The evaluation report of one version: metrics, baseline, slices, gates and diff.

:class:`EvaluationReport` is plain data (it round-trips through JSON) that the registry
stores with the version; :func:`render_text` and :func:`render_html` turn it into what
people read. Nothing here reads the clock or disk, except the HTML template shipped with
this package.

Example:
    >>> from datetime import datetime, timezone
    >>> report = EvaluationReport(
    ...     model="house-prices", version=3, task="regression", rows=292,
    ...     primary_metric="rmse", metrics={"rmse": 23456.0},
    ...     baseline_metrics={"rmse": 79000.0},
    ...     created_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    >>> report.passed
    True
    >>> "23,456" in render_text(report)
    True
"""

from __future__ import annotations

import math
from datetime import datetime
from importlib import resources
from typing import Any

import pandas as pd
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.errors import MissingExtraError
from modelyard.evaluation.chart_text import chart_lines
from modelyard.evaluation.chart_text import text_table as _table
from modelyard.evaluation.charts import Charts
from modelyard.evaluation.diff import PredictionDiff
from modelyard.evaluation.gates import GateResult
from modelyard.evaluation.metrics import format_value
from modelyard.evaluation.plots import chart_svgs
from modelyard.evaluation.slices import SliceResult
from modelyard.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS, ProjectSpec, Task

__all__ = [
    "EvaluationReport",
    "ProductionComparison",
    "ThresholdSummary",
    "class_summary",
    "gate_summary",
    "render_diff_text",
    "render_html",
    "render_text",
    "with_findings",
]

_TEMPLATE = "report.html.j2"
_WORST_SLICES = 10


class _Frozen(BaseModel):
    # "strings" so that nan metrics survive model_dump_json() as "NaN" instead of null.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class ProductionComparison(_Frozen):
    """The version in production, scored on the same evaluation rows."""

    ref: str
    metrics: dict[str, float]


class ThresholdSummary(_Frozen):
    """A binary classifier's decision threshold and how it was chosen."""

    value: float
    positive_class: str
    rule: str  # "fixed", "f1", "cost" or "recall"
    detail: str = ""

    def text(self) -> str:
        """``0.31 on P(churned) (f1: highest F1 on 80 validation rows ...)``."""
        how = self.rule if not self.detail else f"{self.rule}: {self.detail}"
        return f"{self.value:.4g} on P({self.positive_class}) ({how})"


class EvaluationReport(_Frozen):
    """Everything the evaluation of one version found.

    ``passed`` is whether every gate passed; when not given it is computed from ``gates``,
    and a value that contradicts them is refused. ``created_at`` is when the evaluation
    ran. ``positive_class`` is the class binary metrics are about; ``class_shares`` the
    share of each class in the training rows; ``warnings`` what the training checks
    found (possible leaks, a random split of time-ordered rows); ``decision_threshold``
    the threshold the labels (and so accuracy, f1, precision, recall) come from;
    ``charts`` what the charts show; ``lineage`` what the version was built from, in
    words (data snapshot, split, estimator, code...).
    ``model_dump(mode="json")`` gives JSON data (nan metrics stay float nan;
    ``model_dump_json()`` writes them as ``"NaN"``).
    """

    model: str
    version: int | None
    task: Task
    rows: int
    primary_metric: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    slices: list[SliceResult] = Field(default_factory=list)
    gates: list[GateResult] = Field(default_factory=list)
    passed: bool
    production: ProductionComparison | None = None
    diff: PredictionDiff | None = None
    created_at: datetime
    positive_class: str | None = None
    class_shares: dict[str, float] | None = None
    warnings: list[str] = Field(default_factory=list)
    decision_threshold: ThresholdSummary | None = None
    charts: Charts | None = None
    lineage: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_passed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "passed" not in data:
            gates = data.get("gates") or []
            passed = all(g["passed"] if isinstance(g, dict) else g.passed for g in gates)
            data = {**data, "passed": passed}
        return data

    @model_validator(mode="after")
    def _passed_matches_gates(self) -> EvaluationReport:
        expected = all(gate.passed for gate in self.gates)
        if self.passed != expected:
            failed = [gate.gate for gate in self.gates if not gate.passed]
            raise ValueError(
                f"passed={self.passed} contradicts the gates (failed: {failed or 'none'}); "
                "leave 'passed' out to have it computed"
            )
        return self

    @property
    def title(self) -> str:
        """``house-prices v3``, or ``house-prices (candidate)`` before registration."""
        if self.version is None:
            return f"{self.model} (candidate)"
        return f"{self.model} v{self.version}"

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger ``metric`` is better for this report's task."""
        table = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        return table.get(metric, True)

    def worst_slices(self, limit: int = _WORST_SLICES) -> list[SliceResult]:
        """The slices worst on the primary metric; slices with too few rows, and ``nan``, last."""
        hib = self.higher_is_better(self.primary_metric)

        def badness(item: SliceResult) -> tuple[bool, bool, float]:
            value = item.metrics.get(self.primary_metric, math.nan)
            undefined = math.isnan(value)
            return (
                not item.enough_rows,
                undefined,
                0.0 if undefined else (value if hib else -value),
            )

        return sorted(self.slices, key=badness)[:limit]


# -- text -----------------------------------------------------------------------------


def render_text(report: EvaluationReport) -> str:
    """The report as plain text: metrics beside the baseline, gates, worst slices, diff.

    Args:
        report: the report to show.

    Returns:
        Lines of text, ending with a newline.
    """
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"Evaluation of {report.title}: {verdict}",
        f"{report.task}, {report.rows:,} evaluation rows, "
        f"evaluated {report.created_at.isoformat(timespec='seconds')}",
    ]
    lines += _class_lines(report)
    lines.append("")
    headers = ["metric", "candidate", "baseline"]
    if report.production is not None:
        headers.append(f"production ({report.production.ref})")
    lines += _table(headers, _metric_rows(report), right_from=1)
    lines.append(f"(* primary metric; {_direction_note(report)})")
    lines.append("")
    if report.gates:
        lines.append(f"Gates: {gate_summary(report.gates)}")
        for gate in report.gates:
            mark = "SKIP" if gate.skipped else ("PASS" if gate.passed else "FAIL")
            lines.append(f"  {mark}  {gate.gate}")
            lines.append(f"        {gate.detail}")
            if gate.reason and not gate.skipped:
                lines.append(f"        not checked: {gate.reason}")
    else:
        lines.append("Gates: none declared")
    if report.warnings:
        lines += ["", f"Warnings ({len(report.warnings)})"]
        lines += [f"  - {warning}" for warning in report.warnings]
    worst = report.worst_slices()
    if worst:
        lines += ["", f"Worst slices by {report.primary_metric} ({len(report.slices)} in all)"]
        rows = [
            [
                f"{item.column}={item.value}",
                f"{item.rows:,}" + ("" if item.enough_rows else " (few)"),
                format_value(item.metrics.get(report.primary_metric, math.nan)),
            ]
            for item in worst
        ]
        table = _table(["slice", "rows", report.primary_metric], rows, right_from=1)
        lines += ["  " + line for line in table]
    if report.charts is not None:
        lines += chart_lines(report.charts)
    if report.diff is not None:
        old_ref = report.production.ref if report.production is not None else "production"
        lines += ["", render_diff_text(report.diff, old_ref=old_ref, new_ref=report.title)]
    if report.lineage:
        lines += ["", "Lineage"]
        lines += [f"  {key}: {value}" for key, value in report.lineage.items()]
    return "\n".join(lines).rstrip("\n") + "\n"


def gate_summary(gates: list[GateResult]) -> str:
    """``3 passed, 1 failed, 1 skipped (of 5)``: a skipped gate is not counted as passed.

    Example:
        >>> gate_summary([GateResult(gate="a", passed=True, detail=""),
        ...               GateResult(gate="b", passed=True, detail="", skipped=True)])
        '1 passed, 1 skipped (of 2)'
    """
    skipped = sum(gate.skipped for gate in gates)
    passed = sum(gate.passed and not gate.skipped for gate in gates)
    failed = sum(not gate.passed for gate in gates)
    parts = [f"{passed} passed"]
    if failed:
        parts.append(f"{failed} failed")
    if skipped:
        parts.append(f"{skipped} skipped")
    return ", ".join(parts) + f" (of {len(gates)})"


def with_findings(
    report: EvaluationReport, warnings: list[str], *, failing_gate: str | None = None
) -> EvaluationReport:
    """``report`` with training-check ``warnings``, and a failed gate if ``failing_gate``.

    ``failing_gate`` names the gate as people read it (e.g. ``no likely target leak``);
    its detail is the warnings.
    """
    gates = list(report.gates)
    if failing_gate is not None:
        gates.append(GateResult(gate=failing_gate, passed=False, detail="; ".join(warnings)))
    return report.model_copy(
        update={
            "warnings": [*report.warnings, *warnings],
            "gates": gates,
            "passed": all(gate.passed for gate in gates),
        }
    )


def class_summary(
    spec: ProjectSpec, y_train: pd.Series, classes: list[Any] | None
) -> dict[str, Any]:
    """The report fields about classes: the positive class and the training class shares.

    Example:
        >>> from modelyard.spec import ProjectSpec
        >>> spec = ProjectSpec.model_validate({"name": "n", "task": "binary", "target": "y",
        ...     "data": {"source": {"path": "a.csv"}},
        ...     "model": {"estimator": "sklearn.linear_model.LogisticRegression"}})
        >>> class_summary(spec, pd.Series(["no", "no", "no", "yes"]), ["no", "yes"])
        {'positive_class': 'yes', 'class_shares': {'no': 0.75, 'yes': 0.25}}
    """
    if spec.task == "regression":
        return {}
    counts = y_train.astype(str).value_counts(normalize=True).sort_index()
    shares = {str(label): round(float(share), 6) for label, share in counts.items()}
    positive = None
    if spec.task == "binary":
        if spec.positive_class is not None:
            positive = str(spec.positive_class)
        elif classes is not None and len(classes) == 2:
            positive = str(classes[1])
    return {"positive_class": positive, "class_shares": shares}


def _class_lines(report: EvaluationReport) -> list[str]:
    lines = []
    if report.positive_class is not None:
        lines.append(f"positive class: {report.positive_class!r} (f1, precision, recall, ROC AUC)")
    if report.class_shares:
        shares = ", ".join(f"{label} {share:.1%}" for label, share in report.class_shares.items())
        lines.append(f"training classes: {shares}")
    if report.decision_threshold is not None:
        lines.append(f"decision threshold: {report.decision_threshold.text()}")
    return lines


def render_diff_text(diff: PredictionDiff, *, old_ref: str, new_ref: str) -> str:
    """The differential test as plain text.

    Args:
        diff: the diff of ``old_ref``'s predictions to ``new_ref``'s.
        old_ref: how to name the reference version, e.g. ``house-prices@production``.
        new_ref: how to name the candidate.

    Returns:
        Lines of text, ending with a newline.
    """
    lines = [
        f"Prediction diff {old_ref} -> {new_ref}: {diff.changed:,} of {diff.rows:,} rows "
        f"changed ({diff.changed_share:.1%}, tolerance {diff.atol:g})"
    ]
    stats = diff.change
    if stats is not None:
        what = "change new - old" if diff.task == "regression" else "largest probability move"
        lines.append(
            f"  {what}: mean {format_value(stats.mean)}, std {format_value(stats.std)}, "
            f"min {format_value(stats.min)}, max {format_value(stats.max)}"
        )
        label = "|change|" if diff.task == "regression" else "move"
        quantiles = ", ".join(f"{k} {format_value(v)}" for k, v in stats.quantiles.items())
        lines.append(f"  {label} quantiles: {quantiles}")
    if diff.labels_changed is not None:
        lines.append(f"  labels changed: {diff.labels_changed:,}")
        for transition in diff.transitions or []:
            lines.append(f"    {transition.old} -> {transition.new}: {transition.count:,}")
    if diff.top_rows:
        lines.append(f"  most changed rows ({len(diff.top_rows)}):")
        with_ids = any(row.ids for row in diff.top_rows)
        rows = [
            [
                str(row.position),
                *([_ids_text(row.ids)] if with_ids else []),
                _value_text(row.old),
                _value_text(row.new),
                format_value(row.change),
            ]
            for row in diff.top_rows
        ]
        headers = ["row", *(["ids"] if with_ids else []), "old", "new", "change"]
        table = _table(headers, rows, right_from=2 if with_ids else 1)
        lines += ["    " + line for line in table]
    return "\n".join(lines) + "\n"


def _metric_names(report: EvaluationReport) -> list[str]:
    return list(dict.fromkeys([*report.metrics, *report.baseline_metrics]))


def _metric_rows(report: EvaluationReport) -> list[list[str]]:
    rows = []
    for name in _metric_names(report):
        row = [
            ("* " if name == report.primary_metric else "  ") + name,
            _cell(report.metrics, name),
            _cell(report.baseline_metrics, name),
        ]
        if report.production is not None:
            row.append(_cell(report.production.metrics, name))
        rows.append(row)
    return rows


def _cell(values: dict[str, float], name: str) -> str:
    """A metric value, or ``-`` when it was not computed at all (``nan`` when undefined)."""
    return format_value(values[name]) if name in values else "-"


def _direction_note(report: EvaluationReport) -> str:
    primary = report.primary_metric
    return f"{'higher' if report.higher_is_better(primary) else 'lower'} {primary} is better"


def _ids_text(ids: dict[str, Any] | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in ids.items()) if ids else "-"


def _value_text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return format_value(value)
    return str(value)


# -- html -----------------------------------------------------------------------------


def render_html(report: EvaluationReport) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG charts, no
    external assets). Without matplotlib (``pip install 'modelyard[report]'``) the page
    says so where the charts would be.

    Args:
        report: the report to show.

    Returns:
        The HTML document; every value from the report is escaped.
    """
    charts: list[tuple[str, str]] = []
    charts_missing = ""
    if report.charts is not None:
        try:
            charts = chart_svgs(report.charts)
        except MissingExtraError as exc:
            charts_missing = str(exc)
    source = resources.files("modelyard.evaluation").joinpath("templates", _TEMPLATE)
    environment = Environment(
        autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
    )
    environment.filters["fmt"] = format_value
    environment.filters["cell"] = _cell
    environment.filters["value"] = _value_text
    environment.filters["ids"] = _ids_text
    template = environment.from_string(source.read_text(encoding="utf-8"))
    worst = report.worst_slices()
    return template.render(
        report=report,
        metric_names=_metric_names(report),
        direction=_direction_note(report),
        worst_slices=worst,
        old_ref=report.production.ref if report.production is not None else "production",
        charts=[(title, Markup(svg)) for title, svg in charts],
        charts_missing=charts_missing,
    )
