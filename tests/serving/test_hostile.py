"""``modelyard serve`` under hostile clients: a real process, real sockets, real load.

Each test reproduces an attack that once broke the server and checks it no longer does:
one client's bad input failing others, a small body freezing the event loop, stalled
uploads and slow headers exhausting memory, and huge texts bloating the prediction log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Yard

pytestmark = pytest.mark.e2e

HOUSE = {"size": 120.5, "rooms": 3, "town": "alpha"}
# A JSON text holding a lone UTF-16 surrogate: valid JSON, not a Unicode string.
SURROGATE = b'"\\ud800"'


@dataclass
class Served:
    """A ``modelyard serve`` process and its URL."""

    process: subprocess.Popen[str]
    url: str
    home: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(yard: Yard, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``modelyard serve houses churn`` with its default limits, in its own process (its
    log goes to a file: a pipe nobody reads would fill up and stall the server)."""
    port = _port()
    log = (tmp_path_factory.mktemp("hostile") / "serve.log").open("w")
    env = {**os.environ, "MODELYARD_HOME": str(yard.settings.home)}
    env.pop("MODELYARD_REGISTRY_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", "houses", "churn", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, Path(log.name).read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.2)
    try:
        yield Served(process, url, yard.settings.home)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        log.close()
        # A client's bad input is answered, never logged as a server fault.
        assert "Traceback" not in Path(log.name).read_text()


def _hostile_bodies() -> list[tuple[str, bytes, str]]:
    """(path, body, content type) of requests whose text is not valid Unicode."""
    row = b'{"size": 100.0, "rooms": 2, "town": ' + SURROGATE + b"}"
    v2 = (
        b'{"inputs": [{"name": "size", "shape": [1], "datatype": "FP64", "data": [1.0]},'
        b'{"name": "rooms", "shape": [1], "datatype": "INT64", "data": [2]},'
        b'{"name": "town", "shape": [1], "datatype": "BYTES", "data": [' + SURROGATE + b"]}]}"
    )
    return [
        ("/v1/models/houses/predict", b'{"rows": [' + row + b"]}", "application/json"),
        ("/v2/models/houses/infer", v2, "application/json"),
        ("/invocations?model=houses", b'{"dataframe_records": [' + row + b"]}", "application/json"),
    ]


def test_one_clients_bad_text_never_fails_another(served: Served) -> None:
    failures: list[str] = []
    hostile_statuses: list[int] = []
    stop = threading.Event()

    def valid_client() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as client:  # keep-alive
            for _ in range(150):
                try:
                    answer = client.post("/v1/models/houses/predict", json={"rows": [HOUSE]})
                except httpx.TransportError as error:
                    failures.append(f"transport: {error!r}")
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")

    def hostile_client() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            while not stop.is_set():
                for path, body, kind in _hostile_bodies():
                    answer = client.post(path, content=body, headers={"content-type": kind})
                    hostile_statuses.append(answer.status_code)

    valid = [threading.Thread(target=valid_client) for _ in range(4)]
    hostile = [threading.Thread(target=hostile_client) for _ in range(2)]
    for thread in [*valid, *hostile]:
        thread.start()
    for thread in valid:
        thread.join()
    stop.set()
    for thread in hostile:
        thread.join()
    assert failures == []
    assert hostile_statuses and set(hostile_statuses) <= {400, 422}, set(hostile_statuses)


def _health_latency_while(served: Served, path: str, body: bytes) -> tuple[float, int]:
    """The slowest /healthz answer while ``body`` is being handled, and its status."""
    done = threading.Event()
    result: dict[str, Any] = {}

    def send() -> None:
        answer = httpx.post(
            f"{served.url}{path}",
            content=body,
            headers={"content-type": "application/json"},
            timeout=300,
        )
        result["status"] = answer.status_code
        done.set()

    worst = 0.0
    sender = threading.Thread(target=send)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        client.get("/healthz")
        sender.start()
        while not done.is_set():
            started = time.perf_counter()
            client.get("/healthz")
            worst = max(worst, time.perf_counter() - started)
            time.sleep(0.005)
    sender.join()
    return worst, int(result["status"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(
            "/v1/models/houses/predict",
            b'{"columns": ['
            + b",".join(b'"c%d"' % i for i in range(100_000))
            + b'], "data": [[1]]}',
            id="100k-column-names",
        ),
        pytest.param(
            "/v1/models/houses/predict",
            b'{"rows": [{' + b",".join(b'"k%d": 1' % i for i in range(100_000)) + b"}]}",
            id="100k-junk-keys",
        ),
        pytest.param(
            "/invocations?model=houses",
            b'{"dataframe_split": {"columns": ['
            + b",".join(b'"c%d"' % i for i in range(100_000))
            + b'], "data": [[1]]}}',
            id="mlflow-split",
        ),
    ],
)
def test_a_single_body_never_freezes_the_server(served: Served, path: str, body: bytes) -> None:
    worst, status = _health_latency_while(served, path, body)
    assert 400 <= status < 500
    assert worst < 0.1, f"/healthz took {worst * 1000:.0f} ms while the body was handled"


def _stall(url: str, count: int, request: bytes) -> list[socket.socket]:
    """``count`` connections that each send ``request`` and then nothing more."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        try:
            sock.sendall(request)
        except OSError:  # closed at once: past the connection cap
            sock.close()
            continue
        held.append(sock)
    return held


def test_stalled_uploads_and_slow_headers_keep_memory_bounded(served: Served) -> None:
    """200 uploads that stop after 60 kB of a declared 15 MiB, and 2,000 connections
    whose headers never end: memory stays bounded while they are held, and the server
    answers again once they are gone (the header deadline frees the slots)."""
    before = served.rss_mib()
    upload = (
        b"POST /v1/models/houses/predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 15728640\r\n\r\n"
        + b'{"rows": ['
        + b" " * 60_000
    )
    held = _stall(served.url, 200, upload)
    held += _stall(served.url, 2000, b"POST /v1/models/houses/predict HTTP/1.1\r\nHost: x\r\n")
    try:
        time.sleep(1.0)
        during = served.rss_mib()
    finally:
        for sock in held:
            sock.close()
    assert during - before < 300, f"memory grew by {during - before:.0f} MiB"
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = httpx.post(
                f"{served.url}/v1/models/houses/predict", json={"rows": [HOUSE]}, timeout=5
            )
            if answer.status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.2)


def test_huge_texts_are_refused_or_stored_cut(served: Served) -> None:
    huge = "x" * 5_000_000
    answer = httpx.post(
        f"{served.url}/v1/models/houses/predict",
        json={"rows": [{**HOUSE, "town": huge}]},
        timeout=60,
    )
    assert answer.status_code in (413, 422), answer.status_code
    assert huge[:1000] not in answer.text
