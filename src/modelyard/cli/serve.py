"""``modelyard serve``: the REST server's command (registered by :mod:`modelyard.cli`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelyard.cli.render import err
from modelyard.errors import ModelyardError


def serve(
    ctx: typer.Context,
    refs: Annotated[
        list[str],
        typer.Argument(
            help="Models to serve: NAME (= NAME@production), NAME:VERSION or NAME@ALIAS.",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1)] = 1,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="auto (ONNX when its export holds parity), onnx or sklearn; default auto."
        ),
    ] = None,
    batching: Annotated[
        bool | None, typer.Option(help="Merge concurrent requests into one model call.")
    ] = None,
    max_batch_rows: Annotated[int | None, typer.Option(help="Rows per merged call.")] = None,
    max_batch_wait_ms: Annotated[
        float | None, typer.Option(help="Longest a request waits to be merged.")
    ] = None,
    max_rows_per_request: Annotated[
        int | None, typer.Option(help="Larger requests get 413; default 10000.")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Larger bodies get 413; default 16 MiB.")
    ] = None,
    poll_seconds: Annotated[
        float | None, typer.Option(help="How often aliases are re-checked; 0: never; default 5.")
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            help="A key prediction requests must send (repeatable) "
            "(better: MODELYARD_SERVE_API_KEYS=key1,key2, kept out of the process list)."
        ),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(help="Key of the admin endpoints (better: MODELYARD_SERVE_ADMIN_KEY)."),
    ] = None,
    public: Annotated[
        list[str] | None,
        typer.Option(help="With API keys, leave 'metrics' or 'docs' open (repeatable)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="An origin allowed by CORS (repeatable).")
    ] = None,
    prediction_log: Annotated[
        bool | None, typer.Option(help="Record every prediction; default on.")
    ] = None,
    feedback_external_ids: Annotated[
        bool | None,
        typer.Option(help="Accept feedback for request ids not in the prediction log."),
    ] = None,
    model_threads: Annotated[
        int | None,
        typer.Option(help="Native threads per model call; 0: library default; default 1."),
    ] = None,
    gc_freeze: Annotated[
        bool | None,
        typer.Option(help="Freeze the loaded heap out of garbage collection; default on."),
    ] = None,
    switch_interval_ms: Annotated[
        float | None,
        typer.Option(help="GIL switch interval while serving; 0: Python's; default 0.2."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve models over HTTP: modelyard JSON (/v1), Open Inference Protocol V2 (/v2)
    and MLflow scoring (/invocations); /docs describes every endpoint.

    Aliases are followed: when house-prices@production moves, the new version is loaded,
    warmed up and swapped in without dropping a request. Every option can also be set by
    a MODELYARD_SERVE_<OPTION> variable.

    Example: modelyard serve house-prices churn@staging --port 8080 --workers 2
    """
    from pydantic import ValidationError

    from modelyard.serving.config import ServeConfig
    from modelyard.serving.server import require_serving, resolve_models
    from modelyard.serving.server import serve as run_server
    from modelyard.settings import Settings

    require_serving()

    given: dict[str, Any] = {
        "runtime": runtime,
        "batching": batching,
        "max_batch_rows": max_batch_rows,
        "max_batch_wait_ms": max_batch_wait_ms,
        "max_rows_per_request": max_rows_per_request,
        "max_body_bytes": max_body_bytes,
        "poll_seconds": poll_seconds,
        "api_keys": api_key or None,
        "admin_key": admin_key,
        "cors_origins": cors_origin or None,
        "public_endpoints": public or None,
        "prediction_log": prediction_log,
        "feedback_external_ids": feedback_external_ids,
        "model_threads": model_threads,
        "gc_freeze": gc_freeze,
        "switch_interval_ms": switch_interval_ms,
    }
    try:
        config = ServeConfig(
            models=refs,
            settings=Settings.from_options(ctx.find_root().params),
            **{key: value for key, value in given.items() if value is not None},
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'serve'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelyardError(f"cannot serve: {problems}") from None
    versions = resolve_models(config)
    for ref, version in zip(config.served_refs(), versions, strict=True):
        err.print(f"serving {version.ref} ({ref})")
    err.print(f"on http://{host}:{port}  (API description: http://{host}:{port}/docs)")
    run_server(
        config,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )
