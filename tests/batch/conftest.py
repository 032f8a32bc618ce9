"""Fixtures of the batch tests: small trained models, input files, workers, Redis.

``batch_yard`` trains a small regressor (``houses``) and a small binary classifier
(``churn``) once per session and promotes both. ``start_worker`` runs the real
``modelyard worker`` command in a subprocess (its own process group, so a test can
SIGKILL it as a crash would); ``redis_url`` starts a throw-away ``redis-server`` on a
free 127.0.0.1 port (Debian's ``redis-server`` package).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _projects import churn_project, classification_frame, regression_project
from modelyard import api
from modelyard.batch import BatchSettings
from modelyard.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class BatchYard:
    """A registry home with ``houses`` and ``churn`` promoted, and their training data."""

    settings: Settings
    houses: pd.DataFrame
    churn: pd.DataFrame


def train_houses(settings: Settings, folder: Path) -> pd.DataFrame:
    """Train and promote ``houses``; returns its training table (as text, as in the CSV)."""
    regression_project(
        folder,
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 30, "early_stopping": False},
        },
    )
    result = api.train(folder, settings=settings)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=settings)
    return pd.read_csv(folder / "data" / "houses.csv", dtype=str)


@pytest.fixture(scope="session")
def batch_yard(tmp_path_factory: pytest.TempPathFactory) -> BatchYard:
    base = tmp_path_factory.mktemp("batch-yard")
    settings = Settings(home=base / "home")
    houses = train_houses(settings, base / "houses")
    folder = churn_project(base / "churn", rows=300, max_iter=20)
    churn = classification_frame(rows=300)  # the rows churn_project wrote
    result = api.train(folder, settings=settings)
    api.promote(result.ref, reason="test", allow_failed_gates=True, settings=settings)
    return BatchYard(settings=settings, houses=houses, churn=churn)


def house_rows(yard: BatchYard, rows: int, *, seed: int = 0) -> pd.DataFrame:
    """``rows`` input rows for ``houses`` (drawn from its training rows, as text)."""
    rng = np.random.default_rng(seed)
    picked = yard.houses.iloc[rng.integers(0, len(yard.houses), rows)].reset_index(drop=True)
    frame = picked.drop(columns=["price"])
    frame["house_id"] = [f"h{i}" for i in range(rows)]
    return frame


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``modelyard`` subprocess on ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MODELYARD_HOME"] = str(settings.home)
    if settings.registry_url:
        env["MODELYARD_REGISTRY_URL"] = settings.registry_url
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole worker (its process group): no cleanup runs, as in a crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start ``modelyard worker`` subprocesses: ``start(env, *args)``; all stop at the end."""
    started: list[Worker] = []

    def start(env: dict[str, str], *args: str) -> Worker:
        from _e2e import require_e2e

        require_e2e("a modelyard worker process")
        log = tmp_path / f"worker-{len(started)}.log"
        with open(log, "wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelyard", "worker", *args],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A ``redis://`` URL of a fresh redis-server on 127.0.0.1, stopped by PID at the end."""
    from _e2e import require_e2e

    require_e2e("a Redis server")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    folder = Path(tempfile.mkdtemp(prefix="modelyard-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        wait_for(lambda: _pings(client), "redis-server to answer", timeout=30)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


@pytest.fixture
def batch_settings() -> BatchSettings:
    """Small chunks, a short lease: crashes are taken over in seconds."""
    return BatchSettings(batch_chunk_rows=50, batch_lease_seconds=2.0, notify_retry_seconds=0)


@pytest.fixture
def settings(batch_yard: BatchYard, tmp_path: Path) -> Settings:
    """A copy of the session's registry home, so each test has its own jobs and queue."""
    home = tmp_path / "home"
    shutil.copytree(batch_yard.settings.home, home)
    return Settings(home=home)


def drain(settings: Settings, batch: BatchSettings) -> int:
    """Run every task the queue holds in this process (Huey's own dequeue and execute).

    Returns:
        How many tasks ran.
    """
    from modelyard.batch.queue import BatchQueue

    queue = BatchQueue(settings, batch)
    ran = 0
    while (task := queue.huey.dequeue()) is not None:
        queue.huey.execute(task)
        ran += 1
    return ran


@dataclass
class Mailbox:
    port: int
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
