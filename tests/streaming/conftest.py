"""Fixtures of the streaming tests: a real redis-server, trained models, consumers.

``redis_url`` starts one throw-away ``redis-server`` (Debian's ``redis-server`` package:
``apt-get install -y redis-server``) per test session, on a free 127.0.0.1 port in a
temporary folder, without persistence, and stops it by its PID. Each test gets its own
database number (``redis_db``), so streams never mix between tests.

``yard`` trains a small regressor (``houses``) and a small binary classifier
(``churn``) once per session and promotes both to production.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
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
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "redis.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"redis-server did not start (exit {process.poll()}):\n{log}")
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()  # by PID: this process only
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A database of its own on the session's server, for one test."""
    db = next(_next_db) % _DATABASES
    url = f"{redis_server}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client of the test's database."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
