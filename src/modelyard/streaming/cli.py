"""The ``modelyard stream`` command (registered on the main CLI by :func:`register`)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register", "stream"]


def stream(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="NAME (= NAME@production), NAME:VERSION or NAME@ALIAS.")
    ],
    broker: Annotated[
        str,
        typer.Option(
            help="redis://HOST:PORT/DB, kafka://HOST:PORT[,HOST:PORT] or nats://HOST:PORT."
        ),
    ],
    in_stream: Annotated[str, typer.Option("--in", help="The stream of requests.")],
    out_stream: Annotated[str, typer.Option("--out", help="The stream of predictions.")],
    dead: Annotated[
        str | None, typer.Option(help="Dead-letter stream [default: <in>.dead].")
    ] = None,
    group: Annotated[str, typer.Option(help="Consumer group; members share the load.")] = (
        "modelyard"
    ),
    consumer: Annotated[
        str | None, typer.Option(help="This member's name in the group [default: HOST-PID].")
    ] = None,
    max_batch_rows: Annotated[
        int | None, typer.Option(help="Messages per batch and rows per model call; default 256.")
    ] = None,
    max_wait_ms: Annotated[
        int | None, typer.Option(help="Longest a read waits for messages; default 100.")
    ] = None,
    claim_idle_ms: Annotated[
        int | None,
        typer.Option(help="Take over messages a member left unacknowledged this long; 30000."),
    ] = None,
    max_deliveries: Annotated[
        int | None,
        typer.Option(help="Dead-letter a message delivered this often, never acked; 5."),
    ] = None,
    out_maxlen: Annotated[
        int | None, typer.Option(help="Trim the out and dead streams to about this; 1000000.")
    ] = None,
    events_stream: Annotated[
        str | None, typer.Option(help="Control stream of model events; modelyard.models.")
    ] = None,
    poll_seconds: Annotated[
        float | None,
        typer.Option(
            help="How often the alias and the routing policy are re-read; 0: events only "
            "(the policy as at start); 5."
        ),
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="auto (ONNX when its export holds parity), onnx, sklearn.")
    ] = None,
    prediction_log: Annotated[
        bool | None, typer.Option(help="Log every predicted row; default on.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Predict the messages of a stream and write the predictions to another.

    Each message is a JSON object with an "id" and rows as the REST API takes them
    ({"id": "o-1", "row": {...}}, "rows": [...], or "columns" + "data"); on Redis, in
    the entry's "data" field, on Kafka the message value. Messages that cannot be
    predicted go to <in>.dead with the reason. Promotions announced on the control
    stream switch versions between two batches. SIGTERM finishes the batches in hand,
    acknowledges them and flushes the log.

    Example: modelyard stream house-prices --broker redis://127.0.0.1:6379/0
    --in houses.in --out houses.out --group scorers
    """
    import logging

    from rich.console import Console

    from modelyard.settings import Settings
    from modelyard.streaming.consumer import StreamConfig, run_stream

    err = Console(stderr=True, highlight=False, soft_wrap=True)

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = StreamConfig.build(
        model=ref,
        broker=broker,
        in_stream=in_stream,
        out_stream=out_stream,
        dead_stream=dead,
        group=group,
        consumer=consumer,
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms,
        claim_idle_ms=claim_idle_ms,
        max_deliveries=max_deliveries,
        out_maxlen=out_maxlen,
        events_stream=events_stream,
        poll_seconds=poll_seconds,
        runtime=runtime,
        prediction_log=prediction_log,
        metrics_port=metrics_port,
        settings=Settings.from_options(ctx.find_root().params),
    )
    err.print(
        f"streaming {config.in_stream} -> {config.out_stream} with {config.model} "
        f"(group {config.group}, consumer {config.consumer})"
    )
    stats = run_stream(config)
    err.print(
        f"stopped: {stats.messages:,} messages in {stats.batches:,} batches, "
        f"{stats.predicted:,} predicted ({stats.rows:,} rows), {stats.dead:,} dead letters, "
        f"{stats.redelivered:,} redelivered"
    )


def register(app: typer.Typer) -> None:
    """Add ``stream`` to the main CLI."""
    app.command(name="stream")(stream)
