"""Fixtures of the serving tests: trained models in a registry, and live servers.

``yard`` trains a small regression model (``houses``) and a small binary classifier
(``churn``) once per session and promotes both to production. ``start_server`` runs the
real app under uvicorn in a thread on a free port (as httpx's own tests do) and waits
until ``/readyz`` says every model is loaded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from _e2e import require_e2e
from _yard import CHURN_ROWS, HOUSE_ROWS, Yard, free_port
from _yard import fresh_yard as fresh_yard  # fixtures shared with the streaming tests
from _yard import yard as yard
from modelyard.serving import ServeConfig, create_app
from modelyard.settings import Settings

# -- live servers -----------------------------------------------------------------------


@dataclass
class LiveServer:
    """The app under uvicorn in a thread."""

    app: Any
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                ready = client.get("/readyz")
                if ready.status_code == 200:
                    return
                time.sleep(0.05)
            models = client.get("/v1/models").text
        raise AssertionError(
            f"{self.url} did not become ready in {timeout} s: {ready.text}; models: {models}; "
            f"threads: {sorted(t.name for t in threading.enumerate())}"
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the server did not shut down"


StartServer = Callable[..., LiveServer]


@contextmanager
def running_servers() -> Iterator[StartServer]:
    """Start servers with ``start(settings, models=[...], **config)``; all stop at exit."""
    started: list[LiveServer] = []

    def start(
        settings: Settings,
        *,
        wait: bool = True,
        prepare: Callable[[Any], None] | None = None,
        **config: Any,
    ) -> LiveServer:
        """``prepare``, if given, is called with the app before it starts."""
        require_e2e("a uvicorn server")
        config.setdefault("models", ["houses", "churn"])
        config.setdefault("poll_seconds", 0)
        # the reference pipeline, so predictions compare exactly (ONNX: test_app_onnx.py)
        config.setdefault("runtime", "sklearn")
        app = create_app(ServeConfig(settings=settings, **config))
        if prepare is not None:
            prepare(app)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        live = LiveServer(app=app, url=f"http://127.0.0.1:{port}", server=server, thread=thread)
        started.append(live)
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.01)
        if wait:
            live.wait_ready()
        return live

    try:
        yield start
    finally:
        for live in started:
            live.stop()


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start servers for one test: ``start_server(settings, models=[...], **config)``."""
    with running_servers() as start:
        yield start


@pytest.fixture(scope="module")
def start_module_server() -> Iterator[StartServer]:
    """Start servers that serve a whole test module: ``start_module_server(settings, ...)``."""
    with running_servers() as start:
        yield start


ADMIN_KEY = "admin-key-123"


@pytest.fixture(scope="session")
def admin_key() -> str:
    """The admin key of ``module_server``."""
    return ADMIN_KEY


@pytest.fixture
def house_rows() -> list[dict[str, Any]]:
    """Three valid rows for ``houses``."""
    return [dict(row) for row in HOUSE_ROWS]


@pytest.fixture
def churn_rows() -> list[dict[str, Any]]:
    """Two valid rows for ``churn`` (one with a missing spend)."""
    return [dict(row) for row in CHURN_ROWS]


#: The config of ``module_server`` and ``keyed_module_server``.
MODULE_SERVER = {"admin_key": ADMIN_KEY, "max_body_bytes": 64 * 1024, "max_rows_per_request": 50}
#: The API key of ``keyed_module_server``.
MODULE_API_KEY = "module-key-123"


@pytest.fixture(scope="module")
def module_servers() -> Iterator[StartServer]:
    """Start servers for a whole test module (as ``start_server``); all stop at its end."""
    with running_servers() as start:
        yield start


@pytest.fixture(scope="module")
def module_server(module_servers: StartServer, yard: Yard) -> LiveServer:
    """One server for a whole test module: houses and churn, open, admin key set."""
    return module_servers(yard.settings, **MODULE_SERVER)


@pytest.fixture(scope="module")
def keyed_module_server(module_servers: StartServer, yard: Yard) -> LiveServer:
    """``module_server`` with the API key :data:`MODULE_API_KEY`: every endpoint but the
    health probes needs it."""
    return module_servers(yard.settings, **MODULE_SERVER, api_keys=[MODULE_API_KEY])
