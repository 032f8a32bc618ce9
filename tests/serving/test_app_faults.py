"""Server faults answer 5xx with the request id and a logged traceback; a client's mistake
answers 4xx; and a keep-alive connection still answers the next request after a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from modelyard.models.runtime import SklearnRuntime
from modelyard.types import Columns, RuntimeOutput

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer, Yard
    from modelyard.serving.manager import LoadedModel

pytestmark = pytest.mark.e2e


class DropsARow(SklearnRuntime):
    """The real pipeline runtime, broken: it answers one prediction fewer than rows."""

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        output = super().predict(columns, rows)
        return RuntimeOutput(values=output.values[:-1], proba=None, classes=output.classes)


class Crashes(SklearnRuntime):
    """The real pipeline runtime, failing with an exception no one expected."""

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        raise RuntimeError("the runtime lost its session")


class Gated(SklearnRuntime):
    """The real pipeline runtime, holding each call until the test opens the gate."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        self.entered.set()
        assert self.gate.wait(30)
        return super().predict(columns, rows)


def _served(live: LiveServer, name: str = "houses") -> LoadedModel:
    slot = live.app.state.serving.manager.get(name)
    assert slot is not None and slot.current is not None
    return slot.current  # type: ignore[no-any-return]


def _install(loaded: LoadedModel, kind: type[SklearnRuntime]) -> SklearnRuntime:
    """Serve ``loaded``'s own pipeline through ``kind`` from now on."""
    current = loaded.runtime
    assert isinstance(current, SklearnRuntime)
    runtime = kind(current.pipeline, current.feature_order)
    loaded.runtime = loaded.batcher.runtime = runtime
    return runtime


class RawConnection:
    """One HTTP/1.1 keep-alive connection over a plain socket, so nothing reconnects
    behind the test's back (a client library may silently retry on a new connection)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.host = f"{host}:{port}"
        self.buffer = b""

    def post(self, path: str, body: object) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
        )
        self.sock.sendall(head.encode() + data)
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {
            key.strip().lower(): value.strip()
            for key, value in (line.split(":", 1) for line in lines)
        }
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._receive()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, json.loads(payload)

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection without answering")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [(DropsARow, "returned 2 predictions for 3 rows"), (Crashes, "internal error")],
)
def test_a_runtime_fault_is_a_500_and_the_connection_answers_the_next_request(
    start_server: StartServer,
    yard: Yard,
    house_rows: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    runtime: type[SklearnRuntime],
    expected: str,
) -> None:
    live = start_server(yard.settings, models=["houses"])
    loaded = _served(live)
    healthy = loaded.runtime
    _install(loaded, runtime)
    connection = RawConnection(live.url)
    try:
        with caplog.at_level(logging.ERROR, logger="modelyard.serving.app"):
            status, headers, body = connection.post(
                "/v1/models/houses/predict", {"rows": house_rows}
            )
        assert status == 500
        request_id = headers["x-request-id"]
        [detail] = body["detail"]
        assert expected in detail["msg"] and request_id in detail["msg"]
        assert detail["request_id"] == request_id
        [record] = [r for r in caplog.records if request_id in r.getMessage()]
        assert record.exc_info is not None  # the traceback is in the log
        # the same connection still answers, and a client's mistake is still a 4xx
        loaded.runtime = loaded.batcher.runtime = healthy
        status, _, body = connection.post("/v1/models/houses/predict", {"rows": house_rows})
        assert status == 200 and len(body["predictions"]) == 3
        status, _, body = connection.post(
            "/v1/models/houses/predict", {"rows": [{**house_rows[0], "size": "big"}]}
        )
        assert status == 422
    finally:
        connection.close()


def test_an_unload_racing_a_request_answers_503_and_finishes_the_running_one(
    start_server: StartServer, yard: Yard, house_rows: list[dict[str, Any]]
) -> None:
    live = start_server(yard.settings, models=["houses"])
    loaded = _served(live)
    gated = _install(loaded, Gated)
    assert isinstance(gated, Gated)
    answers: list[Any] = []

    def running_request() -> None:
        with live.client() as client:
            answers.append(client.post("/v1/models/houses/predict", json={"rows": house_rows}))

    first = threading.Thread(target=running_request)
    first.start()
    assert gated.entered.wait(30)
    # Unload the version while its request runs; the drain gives up at once.
    loop = live.server.servers[0].get_loop()
    retiring = asyncio.run_coroutine_threadsafe(loaded.retire(timeout=0.01), loop)
    deadline = time.monotonic() + 30
    while not loaded.batcher.closing and time.monotonic() < deadline:
        time.sleep(0.01)
    connection = RawConnection(live.url)
    try:
        status, headers, body = connection.post("/v1/models/houses/predict", {"rows": house_rows})
        assert status == 503, body
        assert headers["retry-after"] == "1"
        [detail] = body["detail"]
        assert "being unloaded" in detail["msg"] and headers["x-request-id"] in detail["msg"]
    finally:
        connection.close()
        gated.gate.set()
        first.join(30)
    retiring.result(30)
    assert answers[0].status_code == 200 and len(answers[0].json()["predictions"]) == 3
