"""What a stream consumer predicts with, where it reads and writes, and how."""

from __future__ import annotations

import os
import socket
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.errors import ModelyardError
from modelyard.serving.config import ServeConfig, served_ref
from modelyard.settings import Settings
from modelyard.streaming.transport import Streams, transport_class

__all__ = ["StreamConfig", "default_consumer_name"]


def default_consumer_name() -> str:
    """``HOST-PID``: unique among running members (a restarted process gets a new name,
    and takes over its predecessor's pending messages after ``claim_idle_ms``)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamConfig(BaseModel):
    """What a stream consumer predicts with, where it reads and writes, and how.

    Attributes:
        model: ``NAME`` (= ``NAME@production``), ``NAME:VERSION``, ``NAME@ALIAS`` or
            ``NAME:latest``; aliases and ``latest`` are followed.
        broker: the broker URL, e.g. ``redis://127.0.0.1:6379/0``.
        in_stream: the stream of requests.
        out_stream: the stream predictions are written to.
        dead_stream: where messages that cannot be predicted go (``<in_stream>.dead``).
        group: the consumer group; members of one group share the in stream's messages.
        consumer: this member's name in the group (default ``HOST-PID``). Restarting
            with the same name re-reads the messages it had not acknowledged at once.
        max_batch_rows: messages read per batch, and rows per model call.
        max_wait_ms: how long a read waits for messages when there are none.
        claim_idle_ms: a message another member left unacknowledged this long is
            taken over (that member is taken to be dead).
        claim_every_seconds: how often to look for such messages.
        max_deliveries: a message delivered more often than this without being
            acknowledged (its consumers died on it, or its batch kept failing) is a
            poison message: it goes to the dead-letter stream (``delivery_limit``)
            instead of being predicted again.
        out_maxlen: the out and dead-letter streams are trimmed to about this many entries.
        events_stream: the control stream of model events.
        poll_seconds: how often the registry is asked which version the alias names
            (0: only on events).
        runtime: ``auto`` (ONNX when its export holds parity), ``onnx`` or ``sklearn``.
        prediction_log: log every predicted row (endpoint ``stream``).
        metrics_port: serve Prometheus metrics on ``127.0.0.1:PORT/metrics``.
        max_rows_per_message: larger messages are dead letters (``too_many_rows``).
        model_threads: native threads per model call (see ``ServeConfig``).
        gc_freeze: freeze the loaded model out of garbage collection (see
            ``ServeConfig``; None: off in a library, on in ``modelyard stream``).
        switch_interval_ms: the GIL switch interval while consuming (see
            ``ServeConfig``; 0 or None: Python's in a library, 0.2 ms in ``modelyard stream``).
        settings: where the registry lives.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    broker: str
    in_stream: str = Field(min_length=1)
    out_stream: str = Field(min_length=1)
    dead_stream: str | None = None
    group: str = Field(default="modelyard", min_length=1)
    consumer: str = Field(default_factory=default_consumer_name, min_length=1)
    max_batch_rows: int = Field(default=256, ge=1, le=100_000)
    max_wait_ms: int = Field(default=100, ge=1, le=60_000)
    claim_idle_ms: int = Field(default=30_000, ge=10)
    claim_every_seconds: float = Field(default=5.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1, le=1000)
    out_maxlen: int = Field(default=1_000_000, ge=1)
    events_stream: str = "modelyard.models"
    poll_seconds: float = Field(default=5.0, ge=0)
    runtime: Literal["auto", "onnx", "sklearn"] = "auto"
    prediction_log: bool = True
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_rows_per_message: int = Field(default=10_000, ge=1)
    model_threads: int = Field(default=1, ge=0, le=256)
    gc_freeze: bool | None = None
    switch_interval_ms: float | None = Field(default=None, ge=0, le=100)
    settings: Settings = Field(default_factory=Settings)

    @property
    def dead_letters(self) -> str:
        """The dead-letter stream."""
        return self.dead_stream or f"{self.in_stream}.dead"

    def streams(self) -> Streams:
        """Where the consumer reads and writes."""
        return Streams(
            in_stream=self.in_stream,
            out_stream=self.out_stream,
            dead_stream=self.dead_letters,
            group=self.group,
            consumer=self.consumer,
            out_maxlen=self.out_maxlen,
            events_stream=self.events_stream,
            claim_idle_ms=self.claim_idle_ms,
        )

    def serve_config(self) -> ServeConfig:
        """The model manager's config: what the server would use for this model."""
        return ServeConfig(
            models=[self.model],
            settings=self.settings,
            runtime=self.runtime,
            max_batch_rows=self.max_batch_rows,
            max_batch_wait_ms=2.0,
            max_rows_per_request=self.max_rows_per_message,
            poll_seconds=self.poll_seconds,
            prediction_log=self.prediction_log,
            model_threads=self.model_threads,
            gc_freeze=self.gc_freeze,
            switch_interval_ms=self.switch_interval_ms,
        )

    def for_stream_process(self) -> StreamConfig:
        """This config with the process settings ``modelyard stream`` owns where it leaves
        them unset: the same as ``modelyard serve``'s (a full garbage collection walking
        a loaded model's objects stalls every message in the batch at hand)."""
        served = self.serve_config().for_serve_process()
        return self.model_copy(
            update={"gc_freeze": served.gc_freeze, "switch_interval_ms": served.switch_interval_ms}
        )

    @classmethod
    def build(cls, **values: Any) -> StreamConfig:
        """A config from keyword values, with one readable error for bad values.

        Raises:
            ModelyardError: a value is out of range or of the wrong type.
        """
        given = {key: value for key, value in values.items() if value is not None}
        try:
            config = cls(**given)
            served_ref(config.model)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'stream'}: {e['msg']}" for e in exc.errors()
            )
            raise ModelyardError(f"cannot stream: {problems}") from None
        transport_class(config.broker)  # an unknown scheme or a missing client fails now
        return config
