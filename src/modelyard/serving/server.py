"""Running the serving app under uvicorn: one process, or several workers.

With ``workers > 1`` uvicorn starts that many processes, each building its app with
:func:`~modelyard.serving.app.app_factory` from the config passed as JSON in
``MODELYARD_SERVE_CONFIG``. Each worker loads its own copy of the models and keeps its
own metrics.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from modelyard.errors import MissingExtraError
from modelyard.serving.config import CONFIG_ENV, ServeConfig

if TYPE_CHECKING:
    from modelyard.registry.records import ModelVersion

__all__ = ["require_serving", "resolve_models", "serve"]

#: The modules serving needs beyond modelyard's own dependencies (the ``serve`` extra).
SERVING_MODULES = ("fastapi", "uvicorn", "orjson", "prometheus_client")

logger = logging.getLogger(__name__)


def require_serving() -> None:
    """Check that the ``serve`` extra is installed.

    Raises:
        MissingExtraError: a module serving needs is missing; the message says what to
            install.
    """
    import importlib.util

    missing = [name for name in SERVING_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"serving needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed: run pip install 'modelyard[serve]' (or pip install -r "
            "requirements.lock in a clone of modelyard)"
        )


def resolve_models(config: ServeConfig) -> list[ModelVersion]:
    """The version each served reference names now (a bare name means ``@production``).

    Serving checks this before starting, so a typo fails at once instead of leaving a
    server that never becomes ready.

    Raises:
        ModelNotFoundError: a reference names no model, version or alias; the message
            says what exists.
    """
    from modelyard.registry.registry import Registry

    with Registry.open(config.settings) as registry:
        return [registry.get_version(ref) for ref in config.served_refs()]


def serve(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve ``config``'s models over HTTP until interrupted (blocks).

    This is the serving process, so it owns the process-wide settings: those ``config``
    leaves unset get :data:`~modelyard.serving.process.SERVE_DEFAULTS` (the garbage
    collector frozen after each load, a 0.2 ms switch interval).

    Args:
        config: what to serve and how.
        host: the address to bind; the default answers only this machine.
        port: the TCP port.
        workers: server processes (each loads every model).
        log_level: uvicorn's log level.
        access_log: log one line per request (off by default: it costs throughput).

    Raises:
        MissingExtraError: the ``serve`` extra is not installed.
    """
    require_serving()
    import uvicorn

    from modelyard.serving.limits import GuardedHttpToolsProtocol

    config = config.for_serve_process()
    # The connection limits live in the protocol uvicorn runs (modelyard.serving.limits).
    GuardedHttpToolsProtocol.configure(config.connection_limits)
    guarded: dict[str, Any] = {"http": GuardedHttpToolsProtocol, "timeout_keep_alive": 5}
    if workers > 1:
        os.environ[CONFIG_ENV] = config.to_env()
        uvicorn.run(
            "modelyard.serving.app:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=30,
            **guarded,
        )
        return
    from modelyard.serving.app import create_app

    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=30,
        **guarded,
    )
