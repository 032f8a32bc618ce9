"""Prometheus metrics of a stream consumer: the server's, plus the stream's own.

A consumer counts what a server counts (:class:`~modelyard.serving.metrics.ServingMetrics`:
rows per model call, load errors, the version in use as ``modelyard_model_info``), and:

- ``modelyard_stream_messages_total{stream,outcome}``: messages handled, by outcome
  (``predicted``, ``dead``, ``skipped``: acknowledged by another member meanwhile);
- ``modelyard_stream_rows_total{model,version}``: rows predicted (rows per second is
  its ``rate()``), and ``modelyard_stream_rows_per_second{model}``, the same over the
  last few seconds, for a glance without a query;
- ``modelyard_stream_batch_messages`` (histogram of messages per batch) and
  ``modelyard_stream_batch_seconds`` (read to acknowledged);
- ``modelyard_stream_dead_letters_total{stream,kind}`` and
  ``modelyard_stream_redelivered_total{stream}``;
- ``modelyard_stream_lag{stream,group}`` (entries not yet delivered to the group) and
  ``modelyard_stream_pending{stream,group}`` (delivered, not acknowledged).

``serve_metrics`` exposes them over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from modelyard.serving.metrics import ServingMetrics

__all__ = ["StreamMetrics"]

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class StreamMetrics(ServingMetrics):
    """The server's metrics and a stream consumer's, in one registry."""

    def __init__(self) -> None:
        super().__init__()
        registry = self.registry
        self.stream_messages = Counter(
            "modelyard_stream_messages",
            "Messages handled, by stream and outcome (predicted, dead, skipped).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.stream_rows = Counter(
            "modelyard_stream_rows",
            "Rows predicted from the stream, by model and version.",
            ["model", "version"],
            registry=registry,
        )
        self.rows_per_second = Gauge(
            "modelyard_stream_rows_per_second",
            "Rows predicted per second over the last few seconds.",
            ["model"],
            registry=registry,
        )
        self.batch_messages = Histogram(
            "modelyard_stream_batch_messages",
            "Messages per batch read from the stream.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "modelyard_stream_batch_seconds",
            "Time from reading a batch to acknowledging it.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Counter(
            "modelyard_stream_dead_letters",
            "Messages sent to the dead-letter stream, by kind of problem.",
            ["stream", "kind"],
            registry=registry,
        )
        self.redelivered = Counter(
            "modelyard_stream_redelivered",
            "Messages the broker delivered again (after a crash or a takeover).",
            ["stream"],
            registry=registry,
        )
        self.lag = Gauge(
            "modelyard_stream_lag",
            "Entries of the stream not yet delivered to the group.",
            ["stream", "group"],
            registry=registry,
        )
        self.pending = Gauge(
            "modelyard_stream_pending",
            "Entries delivered to the group and not acknowledged yet.",
            ["stream", "group"],
            registry=registry,
        )
        self._rate_mark: tuple[float, float] | None = None
        self._rows_seen = 0.0

    def count_rows(self, model: str, version: int, rows: int) -> None:
        """Count ``rows`` predicted by ``model:version``."""
        self.stream_rows.labels(model, str(version)).inc(rows)
        self._rows_seen += rows

    def update_rate(self, model: str) -> None:
        """Set rows per second since the previous call (called every few seconds)."""
        now = time.monotonic()
        if self._rate_mark is not None:
            then, rows = self._rate_mark
            if now > then:
                self.rows_per_second.labels(model).set((self._rows_seen - rows) / (now - then))
        self._rate_mark = (now, self._rows_seen)

    def serve(self, port: int) -> Any:
        """Expose the metrics on ``http://127.0.0.1:port/metrics``; returns the server
        (call ``shutdown()`` on it to stop)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return server
