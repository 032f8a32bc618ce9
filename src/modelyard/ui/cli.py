"""``modelyard ui``: serve the web app with uvicorn (registered by :mod:`modelyard.cli`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

__all__ = ["ui_command"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


def ui_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; another than 127.0.0.1 exposes the app.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
) -> None:
    """Serve the web app: models and versions, batch uploads, jobs and their results,
    live experiments (MODELYARD_UI_SERVER_URL names the server to ask).

    Uploading and cancelling need the admin key MODELYARD_UI_KEY (8+ characters),
    entered once on the sign-in page; without it the app is read-only.

    Jobs are run by `modelyard worker`, started apart.

    Example: MODELYARD_UI_KEY=... modelyard ui --port 8080
    """
    import uvicorn

    from modelyard.batch.cli import _settings
    from modelyard.ui.app import create_ui_app
    from modelyard.ui.config import UiSettings

    ui = UiSettings()
    app = create_ui_app(_settings(ctx), ui=ui)
    mode = "read-only (set MODELYARD_UI_KEY to allow uploads)" if ui.read_only else "admin key set"
    err.print(f"modelyard ui on http://{host}:{port}/ ({mode})")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
