"""Prometheus gauges of the latest monitoring run, for an existing Grafana to chart.

``modelyard monitor NAME --serve-metrics PORT --every 5m`` runs the monitor, serves the
gauges of its latest report on ``http://127.0.0.1:PORT/metrics`` and runs again every
interval. Each gauge describes the newest window of each version (the one a dashboard
wants now); the whole history stays in the JSON and HTML reports.

Gauges (labels ``model``, ``version`` on each):

- ``modelyard_monitor_window_rows``, ``modelyard_monitor_window_too_small``;
- ``modelyard_monitor_feature_drift{feature}`` (1 drifting, 0 not) and
  ``modelyard_monitor_drift_effect{column,effect}`` (each test's effect size; the
  predictions are the column ``prediction``), ``modelyard_monitor_drifting_features``,
  ``modelyard_monitor_prediction_drift``, ``modelyard_monitor_multivariate_auc``;
- ``modelyard_monitor_missing_rate{feature}``, ``modelyard_monitor_quality_problems``;
- ``modelyard_monitor_skew_rows{state=replayed|mismatched}``;
- ``modelyard_monitor_metric{metric}`` (realised on labelled rows),
  ``modelyard_monitor_labelled_rows``,
  ``modelyard_monitor_estimated_metric{metric,bound=value|low|high}`` (CBPE);
- ``modelyard_monitor_alerts_fired{rule}`` (in the newest run);
- ``modelyard_monitor_last_run_timestamp_seconds``, ``modelyard_monitor_run_failures``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelyard._optional import require

if TYPE_CHECKING:
    from modelyard.monitoring.alerts import FiredAlert
    from modelyard.monitoring.results import MonitorReport, WindowReport

__all__ = ["ReportCollector", "serve_metrics"]

_PREFIX = "modelyard_monitor_"


class ReportCollector:
    """A Prometheus collector giving the gauges of the latest report it was handed.

    :meth:`update` swaps the report under a lock; a scrape reads whole reports only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: MonitorReport | None = None
        self._alerts: list[FiredAlert] = []
        self._at: float | None = None
        self.failures = 0

    def update(self, report: MonitorReport, alerts: list[FiredAlert]) -> None:
        """Serve the gauges of ``report`` (and the alerts it fired) from now on."""
        with self._lock:
            self._report, self._alerts, self._at = report, list(alerts), time.time()

    def failed(self) -> None:
        """Count a run that raised (the previous report keeps being served)."""
        with self._lock:
            self.failures += 1

    def collect(self) -> Iterator[Any]:
        """The gauge families, as :mod:`prometheus_client` asks for them."""
        from prometheus_client.core import GaugeMetricFamily

        with self._lock:
            report, alerts, at, failures = self._report, self._alerts, self._at, self.failures
        families: dict[str, GaugeMetricFamily] = {}

        def gauge(name: str, text: str, labels: dict[str, str], value: float) -> None:
            family = families.get(name)
            if family is None:
                family = GaugeMetricFamily(_PREFIX + name, text, labels=list(labels))
                families[name] = family
            family.add_metric(list(labels.values()), float(value))

        gauge("run_failures", "Monitor runs that failed since the exporter started.", {}, failures)
        if report is not None and at is not None:
            gauge("last_run_timestamp_seconds", "When the latest report was made.", {}, at)
            for version in report.versions:
                if version.windows:
                    base = {"model": report.model, "version": version.ref.rsplit(":", 1)[-1]}
                    _window_gauges(gauge, base, version.windows[-1])
            fired: dict[str, int] = {}
            for alert in alerts:
                fired[alert.rule] = fired.get(alert.rule, 0) + 1
            for rule, count in fired.items():
                labels = {"model": report.model, "rule": rule}
                gauge("alerts_fired", "Alerts fired by the latest run, by rule.", labels, count)
        yield from families.values()


def _window_gauges(gauge: Any, base: dict[str, str], window: WindowReport) -> None:
    gauge("window_rows", "Rows in the newest window.", base, window.rows)
    gauge(
        "window_too_small", "1 when the newest window is too small to test.", base, window.too_small
    )
    for column in window.features:
        labels = {**base, "feature": column.column}
        gauge(
            "feature_drift", "1 when the input drifts in the newest window.", labels, column.drift
        )
    columns = [*window.features, *([window.prediction] if window.prediction else [])]
    for column in columns:
        for test in column.tests:
            labels = {**base, "column": column.column, "effect": test.effect}
            gauge(
                "drift_effect",
                "Effect size of a drift test (see its threshold).",
                labels,
                test.effect_size,
            )
    if not window.too_small:
        drifting = sum(c.drift for c in window.features)
        gauge("drifting_features", "Inputs drifting in the newest window.", base, drifting)
        gauge("prediction_drift", "1 when the predictions drift.", base, window.prediction_drift)
    if window.multivariate is not None:
        gauge(
            "multivariate_auc",
            "Domain classifier ROC AUC (0.5: no joint drift).",
            base,
            window.multivariate.auc,
        )
    for quality in window.quality:
        labels = {**base, "feature": quality.column}
        gauge("missing_rate", "Share of rows missing the input.", labels, quality.missing_rate)
    problems = sum(len(q.problems) for q in window.quality)
    gauge("quality_problems", "Data-quality problems in the newest window.", base, problems)
    if window.skew is not None:
        for state, count in (
            ("replayed", window.skew.rows),
            ("mismatched", window.skew.mismatched),
        ):
            gauge(
                "skew_rows",
                "Logged rows replayed through the pipeline, and those that "
                "differ beyond the parity tolerance.",
                {**base, "state": state},
                count,
            )
    if window.performance is not None:
        gauge(
            "labelled_rows",
            "Rows of the newest window with labels.",
            base,
            window.performance.labelled_rows,
        )
        for name, value in window.performance.metrics.items():
            if value is not None:
                gauge("metric", "A metric on the labelled rows.", {**base, "metric": name}, value)
    if window.estimated is not None:
        for name, found in window.estimated.metrics.items():
            for bound in ("value", "low", "high"):
                number = getattr(found, bound)
                if number is not None:
                    labels = {**base, "metric": name, "bound": bound}
                    gauge(
                        "estimated_metric",
                        "A metric estimated before labels (CBPE): value, and the 95% interval.",
                        labels,
                        number,
                    )


def serve_metrics(port: int) -> tuple[ReportCollector, Any]:
    """Start serving an empty :class:`ReportCollector` on ``127.0.0.1:port/metrics``.

    Returns the collector and the server (``shutdown()`` it to stop).

    Raises:
        MissingExtraError: prometheus-client is not installed.
        ModelyardError: the port cannot be bound.
    """
    from modelyard.errors import ModelyardError

    client = require("prometheus_client", "serve")
    registry = client.CollectorRegistry(auto_describe=False)
    collector = ReportCollector()
    registry.register(collector)
    try:
        server, _thread = client.start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        raise ModelyardError(
            f"--serve-metrics {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
            "choose a free port"
        ) from None
    return collector, server
