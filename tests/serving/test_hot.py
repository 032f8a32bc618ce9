"""The prediction endpoints' own chain (modelyard.serving.hot): the same answers as
through FastAPI, the same request ids, keys and body limits, and FastAPI's path whenever
its telemetry is on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send
from tests._yard import Yard
from tests.serving.conftest import MODULE_API_KEY, LiveServer, StartServer

from modelyard.serving.hot import ServingApp, hot_endpoint

Rows = list[dict[str, Any]]


def test_the_hot_paths_match_as_the_routes_do() -> None:
    assert hot_endpoint("/invocations") is not None
    for path, name in (
        ("/v1/models/houses/predict", "houses"),
        ("/v2/models/houses/infer", "houses"),
        ("/v1/models/a.b-c/predict", "a.b-c"),
    ):
        found = hot_endpoint(path)
        assert found is not None and found[1] == {"name": name}
    for path in (
        "/invocations/",
        "/v1/models//predict",
        "/v1/models/a/b/predict",
        "/v1/models/houses/versions/1/predict",
        "/v2/models/houses/versions/1/infer",
        "/v1/models/houses",
        "/v2/models//infer",
        "/healthz",
    ):
        assert hot_endpoint(path) is None, path


class _Counting:
    """An ASGI app counting the requests it passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


@pytest.fixture
def counted(module_server: LiveServer) -> Iterator[tuple[ServingApp, _Counting]]:
    app = module_server.app
    assert isinstance(app, ServingApp) and app.hot is not None
    chain = app.hot
    counting = _Counting(chain)
    app.hot = counting
    try:
        yield app, counting
    finally:
        app.hot = chain


def _requests(house_rows: Rows) -> list[tuple[str, dict[str, Any]]]:
    """Good and bad requests to the three endpoints: (path, httpx keyword arguments)."""
    split = {"columns": list(house_rows[0]), "data": [list(row.values()) for row in house_rows]}

    def tensor(name: str) -> dict[str, Any]:
        values = [row[name] for row in house_rows]
        kind = "BYTES" if isinstance(values[0], str) else "FP64"
        return {"name": name, "shape": [len(values)], "datatype": kind, "data": values}

    v2 = {"inputs": [tensor(name) for name in house_rows[0]]}
    json_type = {"content-type": "application/json"}
    return [
        ("/invocations", {"json": {"dataframe_split": split}}),
        ("/invocations", {"json": {"dataframe_records": house_rows}}),
        ("/invocations?version=1", {"json": {"dataframe_records": house_rows}}),
        ("/invocations?version=7", {"json": {"dataframe_records": house_rows}}),
        ("/invocations", {"content": b"{not json", "headers": json_type}),
        ("/invocations", {"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}}),
        ("/invocations", {"content": b"<x/>", "headers": {"content-type": "application/xml"}}),
        ("/v1/models/houses/predict", {"json": {"rows": house_rows}}),
        ("/v1/models/houses/predict", {"json": {"rows": [{**house_rows[0], "size": "big"}]}}),
        ("/v1/models/houses/predict", {"json": {"rows": house_rows * 20}}),
        ("/v1/models/houses/predict", {"content": b"{" + b" " * 70_000 + b"}"}),
        ("/v1/models/nope/predict", {"json": {"rows": house_rows}}),
        ("/v2/models/houses/infer", {"json": v2}),
        ("/v2/models/houses/infer", {"json": {"inputs": []}}),
    ]


def _answer(response: httpx.Response) -> tuple[int, Any, set[str]]:
    """Status, body (with the request's own id taken out) and header names."""
    text = response.text.replace(response.headers["x-request-id"], "<id>")
    body = json.loads(text) if text else None
    names = set(response.headers) - {"date", "x-request-id", "content-length"}
    return response.status_code, body, names


def test_both_paths_give_the_same_answers(
    module_server: LiveServer, counted: tuple[ServingApp, _Counting], house_rows: Rows
) -> None:
    app, counting = counted
    requests = _requests(house_rows)
    with module_server.client() as client:
        hot = [_answer(client.post(path, **kwargs)) for path, kwargs in requests]
        assert counting.calls == len(requests)  # every one took the hot chain
        app.hot = None
        plain = [_answer(client.post(path, **kwargs)) for path, kwargs in requests]
        app.hot = counting
        ids = {client.post(path, **kwargs).headers["x-request-id"] for path, kwargs in requests}
    assert counting.calls == 2 * len(requests)
    for (path, _), one, other in zip(requests, hot, plain, strict=True):
        assert one == other, path
    statuses = [status for status, _, _ in hot]
    assert statuses.count(200) == 5 and {400, 404, 413, 415, 422} <= set(statuses)
    assert len(ids) == len(requests)


def test_keys_are_checked_on_the_hot_path(
    keyed_module_server: LiveServer, house_rows: Rows
) -> None:
    app = keyed_module_server.app
    assert isinstance(app, ServingApp) and app.hot is not None
    body = {"rows": house_rows}
    with keyed_module_server.client() as client:
        missing = client.post("/v1/models/houses/predict", json=body)
        wrong = client.post("/invocations", json={"dataframe_records": house_rows},
                            headers={"X-API-Key": "nope"})  # fmt: skip
        good = client.post(
            "/v2/models/houses/infer",
            json={"inputs": []},
            headers={"Authorization": f"Bearer {MODULE_API_KEY}"},
        )
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert good.status_code == 400  # past the key: the (empty) body is what is refused


def test_with_native_telemetry_every_request_goes_through_fastapi(
    start_server: StartServer, yard: Yard, house_rows: Rows
) -> None:
    def trace_it(app: ServingApp) -> None:
        assert app.hot is not None
        # A configured tracer provider turns FastAPI's native telemetry on for this app.
        app._native_telemetry.config["tracer_provider"] = trace.NoOpTracerProvider()

    live = start_server(yard.settings, models=["houses"], prepare=trace_it)
    assert live.app.hot is None
    with live.client() as client:
        answer = client.post("/v1/models/houses/predict", json={"rows": house_rows})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(house_rows)
