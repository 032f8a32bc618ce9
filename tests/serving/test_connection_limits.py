"""Connection and body limits against a real uvicorn server and raw sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from modelyard.serving import ServeConfig, create_app
from modelyard.serving.limits import ConnectionLimits, GuardedHttpToolsProtocol

if TYPE_CHECKING:
    from conftest import Yard

pytestmark = pytest.mark.e2e

LIMITS = ConnectionLimits(
    header_timeout=0.5, body_timeout=0.5, max_connections=20, max_inflight_body_bytes=200_000
)


@pytest.fixture
def guarded(yard: Yard) -> Iterator[str]:
    """The app (whose BodyLimits take the config's limits) under uvicorn with the guarded
    protocol, as ``modelyard serve`` runs it; its URL."""
    config = ServeConfig(
        settings=yard.settings,
        models=["houses"],
        runtime="sklearn",
        poll_seconds=0,
        header_timeout_s=LIMITS.header_timeout,
        body_timeout_s=LIMITS.body_timeout,
        max_connections=LIMITS.max_connections,
        max_inflight_body_bytes=LIMITS.max_inflight_body_bytes,
    )
    assert config.connection_limits == LIMITS
    GuardedHttpToolsProtocol.configure(config.connection_limits)
    app = create_app(config)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http=GuardedHttpToolsProtocol,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        GuardedHttpToolsProtocol.configure(ConnectionLimits())


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_slow_headers_are_cut_off_and_others_still_served(guarded: str) -> None:
    sockets = [_connect(guarded) for _ in range(10)]
    for sock in sockets:
        sock.sendall(b"POST /v1/models/houses/predict HTTP/1.1\r\nHost: x\r\n")  # never ends
    assert _healthy(guarded)
    answers = [_read_all(sock) for sock in sockets]  # the server closes each
    for sock in sockets:
        sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[0]
    assert all(b"connection: close" in answer.lower() for answer in answers)


def test_connections_past_the_cap_are_closed_at_once(guarded: str) -> None:
    held = [_connect(guarded) for _ in range(LIMITS.max_connections)]
    time.sleep(0.1)
    extra = _connect(guarded)
    started = time.monotonic()
    assert _read_all(extra) == b""  # closed before reading anything
    assert time.monotonic() - started < LIMITS.header_timeout
    extra.close()
    for sock in held:  # idle: cut off by the header deadline, then the server is open again
        assert _read_all(sock).startswith(b"HTTP/1.1 408")
        sock.close()
    assert _healthy(guarded)


def _post_head(path: str, length: int, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _status_and_headers(answer: bytes) -> tuple[int, dict[str, str]]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), headers


def test_a_stalled_upload_gets_408_in_the_protocol_error_shape(guarded: str) -> None:
    sock = _connect(guarded)
    sock.sendall(_post_head("/v1/models/houses/predict", 10_000) + b'{"rows": [')
    status, headers = _status_and_headers(_read_all(sock))
    sock.close()
    assert status == 408 and headers["connection"] == "close"
    assert headers["content-type"].startswith("application/json")
    assert _healthy(guarded)


def test_bodies_in_flight_are_capped_and_small_requests_still_pass(guarded: str) -> None:
    stalled = _connect(guarded)
    stalled.sendall(_post_head("/v1/models/houses/predict", 150_000) + b"{")
    time.sleep(0.1)
    second = _connect(guarded)
    second.sendall(_post_head("/v1/models/houses/predict", 100_000) + b"{")
    status, headers = _status_and_headers(_read_all(second))
    second.close()
    assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
    rows: list[dict[str, Any]] = [{"size": 100.0, "rooms": 3, "town": "alpha"}]
    small = httpx.post(f"{guarded}/v1/models/houses/predict", json={"rows": rows}, timeout=5)
    assert small.status_code == 200, small.text
    assert _status_and_headers(_read_all(stalled))[0] == 408  # and its bytes are released
    stalled.close()
    again = httpx.post(
        f"{guarded}/v1/models/houses/predict", content=b"{" + b" " * 120_000 + b"}", timeout=5
    )
    assert again.status_code != 503


def test_the_cap_holds_across_the_prediction_endpoints_and_the_other_routes(
    guarded: str,
) -> None:
    """The prediction endpoints take a chain of their own (modelyard.serving.hot): the
    bytes in flight are one count for it and the FastAPI routes, either way round."""
    for first, then in (
        ("/invocations", "/v1/models/houses/versions/1/predict"),
        ("/v1/models/houses/versions/1/predict", "/v2/models/houses/infer"),
    ):
        stalled = _connect(guarded)
        stalled.sendall(_post_head(first, 150_000) + b"{")
        time.sleep(0.1)
        second = _connect(guarded)
        second.sendall(_post_head(then, 100_000) + b"{")
        status, headers = _status_and_headers(_read_all(second))
        second.close()
        assert status == 503 and headers["retry-after"] == "1", (first, then)
        assert _status_and_headers(_read_all(stalled))[0] == 408
        stalled.close()
