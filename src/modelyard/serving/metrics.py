"""Prometheus metrics of one server app, in a registry of its own.

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so two apps in one
process (tests, a user mounting two) never mix counts. Label children are cached, so
counting a request costs a dictionary lookup and two locked additions.

With ``--workers N`` every worker process keeps its own counts; a scrape reaches one of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class ServingMetrics:
    """The server's counters, histograms and gauges.

    Metrics:
        ``modelyard_requests_total{model,version,endpoint,status}``,
        ``modelyard_request_latency_seconds{model,version,endpoint}`` (histogram),
        ``modelyard_batch_rows{model}`` (histogram of rows per model call),
        ``modelyard_errors_total{model,kind}``,
        ``modelyard_model_info{model,version,runtime}`` (1 for each version served),
        ``modelyard_prediction_log_dropped_rows`` (rows the prediction log had to drop),
        ``modelyard_out_of_range_values_total{model}`` (numbers accepted outside their
        training range, under ``data.out_of_range: warn``).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelyard_requests",
            "Requests answered, by model, version, endpoint and HTTP status.",
            ["model", "version", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelyard_request_latency_seconds",
            "Time from receiving a request to sending its response.",
            ["model", "version", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "modelyard_batch_rows",
            "Rows per model call (several requests merged when batching is on).",
            ["model"],
            buckets=_ROW_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "modelyard_errors",
            "Errors by model and kind (validation, auth, not_found, load, internal...).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "modelyard_model_info",
            "1 for each model version being served, with its runtime.",
            ["model", "version", "runtime"],
            registry=self.registry,
        )
        self.prediction_log_dropped = Gauge(
            "modelyard_prediction_log_dropped_rows",
            "Rows the prediction log dropped because it could not keep up or write.",
            registry=self.registry,
        )
        self.out_of_range = Counter(
            "modelyard_out_of_range_values",
            "Numbers accepted outside their training range (data.out_of_range: warn).",
            ["model"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}

    def observe_request(
        self, model: str, version: str, endpoint: str, status: int, seconds: float
    ) -> None:
        """Count one answered request and its latency."""
        key = (model, version, endpoint, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, endpoint, key[3]),
                self.latency.labels(model, version, endpoint),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch_observer(self, model: str) -> Callable[[int, int], None]:
        """A callback ``(rows, requests)`` counting the rows of each model call of ``model``."""
        histogram = self.batch_rows.labels(model)

        def observe(rows: int, requests: int) -> None:
            histogram.observe(rows)

        return observe

    def count_error(self, model: str, kind: str) -> None:
        """Count one error of ``kind`` (``model`` is empty when no served model is concerned)."""
        self.errors.labels(model, kind).inc()

    def count_out_of_range(self, model: str, values: int) -> None:
        """Count ``values`` numbers of one request outside their training range."""
        self.out_of_range.labels(model).inc(values)

    def set_served(self, model: str, version: int, runtime: str) -> None:
        """Mark ``model:version`` as served by ``runtime``."""
        self.model_info.labels(model, str(version), runtime).set(1)

    def set_retired(self, model: str, version: int, runtime: str) -> None:
        """Forget a version that is no longer served."""
        with contextlib.suppress(KeyError):
            self.model_info.remove(model, str(version), runtime)

    def watch_dropped_rows(self, read: Callable[[], float]) -> None:
        """Report the prediction log's dropped-row count, read at each scrape."""
        self.prediction_log_dropped.set_function(read)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
