"""Streaming prediction: requests from a stream, predictions to a stream.

A consumer reads JSON messages from the in stream as a member of a consumer group,
predicts them with a registered version through the same engine the server uses, writes
one output per message to the out stream (or a dead letter to ``<in>.dead``), and only
then acknowledges the input. Promotions and rollbacks announced on the control stream
(``modelyard.models``) switch it to the new version between two batches.

Example:
    >>> from modelyard.streaming import stream
    >>> stream("house-prices", broker="redis://127.0.0.1:6379/0",
    ...        in_stream="houses.in", out_stream="houses.out")  # doctest: +SKIP

Names are imported on first use: importing this package loads no broker client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.streaming.consumer import (
        StreamConfig,
        StreamConsumer,
        StreamStats,
        run_stream,
    )
    from modelyard.streaming.events import announce, publish
    from modelyard.streaming.transport import Transport, open_transport

__all__ = [
    "StreamConfig",
    "StreamConsumer",
    "StreamStats",
    "Transport",
    "announce",
    "open_transport",
    "publish",
    "run_stream",
    "stream",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "StreamConfig": "modelyard.streaming.config",
        "StreamConsumer": "modelyard.streaming.consumer",
        "StreamStats": "modelyard.streaming.consumer",
        "run_stream": "modelyard.streaming.consumer",
        "announce": "modelyard.streaming.events",
        "publish": "modelyard.streaming.events",
        "Transport": "modelyard.streaming.transport",
        "open_transport": "modelyard.streaming.transport",
    },
)


def stream(model: str, *, broker: str, in_stream: str, out_stream: str, **options: Any) -> Any:
    """Predict the messages of ``in_stream`` with ``model`` until SIGTERM or SIGINT.

    Args:
        model: ``NAME`` (= ``NAME@production``), ``NAME:VERSION`` or ``NAME@ALIAS``.
        broker: e.g. ``redis://127.0.0.1:6379/0``.
        in_stream: the stream of requests.
        out_stream: the stream of predictions.
        options: any other :class:`~modelyard.streaming.consumer.StreamConfig` field
            (``group``, ``consumer``, ``max_batch_rows``, ``max_wait_ms``,
            ``metrics_port``, ``settings``...).

    Returns:
        The :class:`~modelyard.streaming.consumer.StreamStats` of the run.

    Raises:
        ModelyardError: a bad option, a model that cannot be loaded, an unreachable broker.
    """
    from modelyard.streaming.consumer import StreamConfig, run_stream

    config = StreamConfig.build(
        model=model, broker=broker, in_stream=in_stream, out_stream=out_stream, **options
    )
    return run_stream(config)
