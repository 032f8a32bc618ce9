"""The serving app's own protocol, health, metrics, keys, admin and feedback, on live servers."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from modelyard import api

if TYPE_CHECKING:
    from conftest import LiveServer, StartServer, Yard

Rows = list[dict[str, Any]]


def _predict(client: httpx.Client, name: str, body: object, **kwargs: object) -> httpx.Response:
    return client.post(f"/v1/models/{name}/predict", json=body, **kwargs)  # type: ignore[arg-type]


# -- predictions --------------------------------------------------------------------------


def test_records_and_split_give_the_reference_predictions(
    module_server: LiveServer, yard: Yard, house_rows: Rows
) -> None:
    expected = yard.reference("houses:1", house_rows).values.tolist()
    split = {
        "columns": list(house_rows[0]),
        "data": [list(row.values()) for row in house_rows],
    }
    with module_server.client() as client:
        records = _predict(client, "houses", {"rows": house_rows})
        columns = _predict(client, "houses", split)
    for response in (records, columns):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["predictions"] == expected
        assert (body["model"], body["version"], body["runtime"]) == ("houses", 1, "sklearn")
        assert body["request_id"] == response.headers["x-request-id"]
        assert "probabilities" not in body and "classes" not in body


def test_classifier_answers_labels_probabilities_and_classes(
    module_server: LiveServer, yard: Yard, churn_rows: Rows
) -> None:
    reference = yard.reference("churn:1", churn_rows)
    with module_server.client() as client:
        response = _predict(client, "churn", {"rows": churn_rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == reference.values.tolist()
    assert body["classes"] == list(reference.classes)
    np.testing.assert_array_equal(np.array(body["probabilities"]), reference.proba)


def test_exact_version_is_served_and_other_versions_are_404(
    module_server: LiveServer, house_rows: Rows
) -> None:
    with module_server.client() as client:
        ok = client.post("/v1/models/houses/versions/1/predict", json={"rows": house_rows})
        missing = client.post("/v1/models/houses/versions/9/predict", json={"rows": house_rows})
        not_a_number = client.post("/v1/models/houses/versions/x/predict", json={})
        unknown = _predict(client, "no-such-model", {"rows": house_rows})
    assert ok.status_code == 200 and ok.json()["version"] == 1
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["loc"] == ["path", "version"]
    assert "serves houses:1" in missing.json()["detail"][0]["msg"]
    assert not_a_number.status_code == 404  # the rule of every protocol: no such version
    assert not_a_number.json()["detail"][0]["loc"] == ["path", "version"]
    assert unknown.status_code == 404
    assert re.search(r"'no-such-model' is not served.*'houses', 'churn'", unknown.text)


def test_request_ids_are_issued_by_the_server_one_per_prediction(
    module_server: LiveServer, house_rows: Rows
) -> None:
    with module_server.client() as client:
        first, second = (
            _predict(client, "houses", {"rows": house_rows}, headers={"X-Request-ID": "abc-1"})
            for _ in range(2)
        )
        odd = _predict(
            client, "houses", {"rows": house_rows}, headers={"X-Request-ID": "no spaces/allowed"}
        )
    ids = [answer.headers["x-request-id"] for answer in (first, second, odd)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids) and len(set(ids)) == 3
    assert first.json()["request_id"] == ids[0]
    # the client's own id comes back beside the server's, for its correlation
    assert first.headers["x-client-request-id"] == second.headers["x-client-request-id"] == "abc-1"
    assert "x-client-request-id" not in odd.headers


# -- client errors: status and shape ------------------------------------------------------


def test_each_value_problem_is_reported_with_row_and_column(
    module_server: LiveServer, house_rows: Rows
) -> None:
    rows = [dict(house_rows[0]), {**house_rows[1], "size": "big"}, {"size": 80.0, "rooms": 2}]
    with module_server.client() as client:
        response = _predict(client, "houses", {"rows": rows})
    assert response.status_code == 422
    detail = response.json()["detail"]
    locs = {tuple(item["loc"]): item for item in detail}
    assert locs[("body", "rows", 1, "size")]["type"] == "wrong_type"
    assert "expected a number" in locs[("body", "rows", 1, "size")]["msg"]
    assert locs[("body", "rows", 2, "town")]["type"] == "missing_column"


def test_split_problems_point_into_data(module_server: LiveServer) -> None:
    body = {"columns": ["size", "rooms", "town"], "data": [[1.0, 2, "alpha"], [None, 2, "beta"]]}
    with module_server.client() as client:
        response = _predict(client, "houses", body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", 1, "size"]
    assert response.json()["detail"][0]["type"] == "null_value"


@pytest.mark.parametrize(
    ("content", "headers", "status", "kind"),
    [
        (b'{"rows": [', {"content-type": "application/json"}, 400, "bad_json"),
        (b"", {"content-type": "application/json"}, 400, "bad_json"),
        (b"\xff\xfe", {"content-type": "application/json"}, 400, "bad_json"),
        (b"size=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "content_type"),
        (b"{}", {"content-type": "text/plain"}, 415, "content_type"),
        (b"{}", {"content-type": "application/json"}, 422, "malformed"),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "malformed"),
        (b'{"rows": []}', {"content-type": "application/json"}, 422, "empty"),
        (
            b'{"rows": {"size": 1}, "data": []}',
            {"content-type": "application/json"},
            422,
            "malformed",
        ),
        (b'{"rows": "all"}', {"content-type": "application/json"}, 422, "malformed"),
        (b'{"columns": "size", "data": 1}', {"content-type": "application/json"}, 422, "malformed"),
        (b'{"rows": [{"size": 1e999}]}', {"content-type": "application/json"}, 422, "wrong_type"),
        (b'{"rows": [{"size": NaN, "rooms": 1, "town": "alpha"}]}', {}, 422, "null_value"),
        (b'{"rows": [3]}', {"content-type": "application/json"}, 422, "malformed"),
    ],
)
def test_malformed_requests_get_4xx_in_fastapi_shape(
    module_server: LiveServer, content: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    with module_server.client() as client:
        response = client.post("/v1/models/houses/predict", content=content, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail and all({"loc", "msg", "type"} <= set(item) for item in detail)
    assert detail[0]["type"] == kind
    assert detail[0]["msg"]


def test_too_large_bodies_are_refused_by_length_and_while_streaming(
    module_server: LiveServer,
) -> None:
    big = b'{"rows": [' + b" " * (70 * 1024) + b"]}"

    def chunks() -> object:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    with module_server.client() as client:
        declared = client.post(
            "/v1/models/houses/predict", content=big, headers={"content-type": "application/json"}
        )
        streamed = client.post(
            "/v1/models/houses/predict",
            content=chunks(),  # no Content-Length: chunked transfer
            headers={"content-type": "application/json"},
        )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["detail"][0]["type"] == "body_too_large"
        assert "65,536 bytes" in response.json()["detail"][0]["msg"]


def test_wrong_methods_get_405_in_each_protocol_shape(module_server: LiveServer) -> None:
    """The prediction endpoints (served by lean routes ahead of the documented ones)
    refuse other methods as the documented routes do."""
    with module_server.client() as client:
        own = client.get("/v1/models/houses/predict")
        versioned = client.get("/v1/models/houses/versions/1/predict")
        v2 = client.put("/v2/models/houses/infer")
        mlflow = client.get("/invocations")
    for response in (own, versioned, v2, mlflow):
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"
        assert response.headers["x-request-id"]
    assert own.json()["detail"][0]["type"] == versioned.json()["detail"][0]["type"]
    assert "error" in v2.json()
    assert mlflow.json()["error_code"] == "BAD_REQUEST"


def test_too_many_rows_is_413(module_server: LiveServer, house_rows: Rows) -> None:
    with module_server.client() as client:
        response = _predict(client, "houses", {"rows": house_rows * 20})
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "too_many_rows"
    assert "more than the 50 allowed" in response.json()["detail"][0]["msg"]


# -- what is served, health, metrics ------------------------------------------------------


def test_models_list_and_detail(module_server: LiveServer) -> None:
    with module_server.client() as client:
        listed = client.get("/v1/models").json()["models"]
        detail = client.get("/v1/models/churn").json()
        missing = client.get("/v1/models/nope")
    by_name = {entry["name"]: entry for entry in listed}
    assert by_name["houses"]["ref"] == "houses@production"
    assert by_name["houses"]["version"] == 1 and by_name["houses"]["ready"] is True
    assert by_name["houses"]["runtime"] == "sklearn" and by_name["houses"]["error"] is None
    assert detail["classes"] == ["churned", "stayed"]
    inputs = {column["name"]: column for column in detail["inputs"]}
    assert inputs["plan"]["kind"] == "categorical"
    assert inputs["plan"]["categories"] == ["basic", "plus", "premium", "trial"]
    assert inputs["signup_date"]["kind"] == "datetime"
    assert missing.status_code == 404


def test_readiness_waits_for_every_model(
    start_server: StartServer, yard: Yard, churn_rows: Rows, admin_key: str
) -> None:
    live = start_server(
        yard.settings, models=["houses", "churn@canary"], admin_key=admin_key, wait=False
    )
    with live.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        for _ in range(400):  # houses loads; churn@canary cannot, no such alias yet
            ready = client.get("/readyz")
            if ready.json()["not_ready"] == ["churn"]:
                break
            time.sleep(0.05)
        assert ready.status_code == 503
        assert ready.json()["not_ready"] == ["churn"]
        assert "no alias 'canary'" in ready.json()["errors"]["churn"]
        waiting = _predict(client, "churn", {"rows": churn_rows})
        assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"
        assert client.get("/v2/health/ready").status_code == 503

        api.promote("churn:1", alias="canary", reason="test", settings=yard.settings)
        reload = client.post("/v1/admin/reload", headers={"X-API-Key": admin_key})
        assert {c["model"]: c["status"] for c in reload.json()["changes"]} == {
            "houses": "unchanged",
            "churn": "swapped",
        }
        assert client.get("/readyz").json() == {"ready": True, "not_ready": [], "errors": {}}
        assert _predict(client, "churn", {"rows": churn_rows}).status_code == 200


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_errors_batches_and_versions(
    module_server: LiveServer, house_rows: Rows
) -> None:
    with module_server.client() as client:
        before = client.get("/metrics").text
        for _ in range(3):
            assert _predict(client, "houses", {"rows": house_rows}).status_code == 200
        assert _predict(client, "houses", {"rows": [{"size": "x"}]}).status_code == 422
        response = client.get("/metrics")
    after = response.text
    assert response.headers["content-type"].startswith("text/plain")
    ok = {"model": "houses", "version": "1", "endpoint": "v1_predict", "status": "200"}
    assert (
        _metric(after, "modelyard_requests_total", **ok)
        == _metric(before, "modelyard_requests_total", **ok) + 3
    )
    bad = {**ok, "status": "422"}
    assert _metric(after, "modelyard_requests_total", **bad) >= 1
    assert _metric(after, "modelyard_errors_total", model="houses", kind="validation") >= 1
    assert (
        _metric(after, "modelyard_batch_rows_sum", model="houses")
        >= _metric(before, "modelyard_batch_rows_sum", model="houses") + 9
    )
    assert _metric(after, "modelyard_request_latency_seconds_count", model="houses") >= 3
    info = {"model": "houses", "version": "1", "runtime": "sklearn"}
    assert _metric(after, "modelyard_model_info", **info) == 1
    assert "modelyard_prediction_log_dropped_rows 0.0" in after


def test_openapi_documents_every_endpoint(module_server: LiveServer) -> None:
    with module_server.client() as client:
        document = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert docs.status_code == 200
    paths = document["paths"]
    for path, method in [
        ("/v1/models/{name}/predict", "post"),
        ("/v1/models/{name}/versions/{version}/predict", "post"),
        ("/v1/models", "get"),
        ("/v1/feedback", "post"),
        ("/v1/admin/reload", "post"),
        ("/v1/admin/models/{name}/load", "post"),
        ("/v2", "get"),
        ("/v2/health/live", "get"),
        ("/v2/health/ready", "get"),
        ("/v2/models/{name}", "get"),
        ("/v2/models/{name}/versions/{version}", "get"),
        ("/v2/models/{name}/ready", "get"),
        ("/v2/models/{name}/versions/{version}/ready", "get"),
        ("/v2/models/{name}/infer", "post"),
        ("/v2/models/{name}/versions/{version}/infer", "post"),
        ("/invocations", "post"),
        ("/ping", "get"),
        ("/health", "get"),
        ("/version", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], f"{method.upper()} {path} is not documented"
    predict = paths["/v1/models/{name}/predict"]["post"]
    body_ref = predict["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.rsplit("/", 1)[1] in document["components"]["schemas"]
    assert {"200", "400", "404", "413", "415", "422"} <= set(predict["responses"])


# -- keys, CORS ----------------------------------------------------------------------------


def test_api_keys_guard_prediction_endpoints_in_each_protocol_shape(
    start_server: StartServer, yard: Yard, house_rows: Rows
) -> None:
    key = "predict-key-1"
    live = start_server(yard.settings, models=["houses"], api_keys=[key, "predict-key-2"])
    v2_body = {
        "inputs": [
            {"name": "size", "shape": [1], "datatype": "FP64", "data": [100.0]},
            {"name": "rooms", "shape": [1], "datatype": "FP64", "data": [3.0]},
            {"name": "town", "shape": [1], "datatype": "BYTES", "data": ["alpha"]},
        ]
    }
    with live.client() as client:
        missing = _predict(client, "houses", {"rows": house_rows})
        wrong = _predict(client, "houses", {"rows": house_rows}, headers={"X-API-Key": "nope"})
        by_header = _predict(client, "houses", {"rows": house_rows}, headers={"X-API-Key": key})
        by_bearer = _predict(
            client,
            "houses",
            {"rows": house_rows},
            headers={"Authorization": "Bearer predict-key-2"},
        )
        v2_missing = client.post("/v2/models/houses/infer", json=v2_body)
        v2_ok = client.post("/v2/models/houses/infer", json=v2_body, headers={"X-API-Key": key})
        mlflow_missing = client.post("/invocations", json={"dataframe_records": house_rows})
        feedback_missing = client.post("/v1/feedback", json={"model": "houses", "items": []})
        metadata = client.get("/v2/models/houses")
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "X-API-Key" in missing.json()["detail"][0]["msg"]
    assert "not valid" in wrong.json()["detail"][0]["msg"]
    assert by_header.status_code == by_bearer.status_code == 200
    assert v2_missing.status_code == 401 and "API key" in v2_missing.json()["error"]
    assert v2_ok.status_code == 200
    assert mlflow_missing.status_code == 401
    assert mlflow_missing.json()["error_code"] == "UNAUTHENTICATED"
    assert feedback_missing.status_code == 401
    assert metadata.status_code == 401  # the full schema, every training category
    assert "API key" in metadata.json()["error"]


KEYED = [
    "/v1/models",
    "/v1/models/houses",
    "/v2",
    "/v2/models/houses",
    "/v2/models/houses/ready",
    "/v2/models/houses/versions/1",
    "/version",
    "/no/such/path",
]
HEALTH = ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/ping", "/health"]
DOCS = ["/openapi.json", "/docs", "/redoc"]


@pytest.mark.parametrize("public", [[], ["metrics", "docs"]])
def test_with_api_keys_metadata_metrics_and_docs_need_a_key_unless_made_public(
    start_server: StartServer, yard: Yard, public: list[str]
) -> None:
    key = "predict-key-1"
    live = start_server(yard.settings, models=["houses"], api_keys=[key], public_endpoints=public)
    with live.client() as client:
        bare = {path: client.get(path) for path in [*KEYED, *HEALTH, "/metrics", *DOCS]}
        keyed = {path: client.get(path, headers={"X-API-Key": key}) for path in KEYED}
        admin = client.post("/v1/admin/reload", headers={"X-API-Key": key})
    for path in KEYED:
        assert bare[path].status_code == 401, path
        assert bare[path].headers["www-authenticate"] == "Bearer"
        assert keyed[path].status_code == (404 if path == "/no/such/path" else 200), path
    for path in HEALTH:
        assert bare[path].status_code == 200, path
    for path in ["/metrics", *DOCS]:
        assert bare[path].status_code == (200 if public else 401), path
    assert admin.status_code == 403  # admin paths answer to the admin key alone
    with live.client() as client:
        described = client.get("/openapi.json", headers={"X-API-Key": key}).json()
    models = described["paths"]["/v1/models"]["get"]
    assert "401" in models["responses"] and models["security"]
    assert "security" not in described["paths"]["/healthz"]["get"]


def test_cors_is_off_unless_origins_are_given(
    start_server: StartServer, yard: Yard, module_server: LiveServer, house_rows: Rows
) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    live = start_server(yard.settings, models=["houses"], cors_origins=["https://app.example"])
    with live.client() as client:
        allowed = client.options("/v1/models/houses/predict", headers=preflight)
        simple = _predict(
            client, "houses", {"rows": house_rows}, headers={"Origin": preflight["Origin"]}
        )
    with module_server.client() as client:
        closed = _predict(
            client, "houses", {"rows": house_rows}, headers={"Origin": preflight["Origin"]}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in closed.headers


# -- admin ----------------------------------------------------------------------------------


def test_admin_endpoints_are_off_without_an_admin_key(
    start_server: StartServer, yard: Yard
) -> None:
    live = start_server(yard.settings, models=["houses"])
    with live.client() as client:
        response = client.post("/v1/admin/reload", headers={"X-API-Key": "anything-at-all"})
    assert response.status_code == 403
    assert "MODELYARD_SERVE_ADMIN_KEY" in response.json()["detail"][0]["msg"]


def test_admin_load_serves_an_exact_version(module_server: LiveServer, admin_key: str) -> None:
    admin = {"X-API-Key": admin_key}
    with module_server.client() as client:
        no_key = client.post("/v1/admin/reload")
        wrong_key = client.post("/v1/admin/reload", headers={"X-API-Key": "wrong-key-0"})
        pinned = client.post(
            "/v1/admin/models/houses/load", json={"ref": "houses:1"}, headers=admin
        )
        unknown = client.post(
            "/v1/admin/models/houses/load", json={"ref": "houses:99"}, headers=admin
        )
        other_name = client.post(
            "/v1/admin/models/houses/load", json={"ref": "churn:1"}, headers=admin
        )
        not_a_ref = client.post("/v1/admin/models/houses/load", json={"ref": 3}, headers=admin)
        listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        # back to following the alias, for the other tests of this module
        back = client.post(
            "/v1/admin/models/houses/load", json={"ref": "houses@production"}, headers=admin
        )
        by_bearer = client.post(
            "/v1/admin/reload", headers={"Authorization": f"Bearer {admin_key}"}
        )
    assert no_key.status_code == wrong_key.status_code == 401
    # the message names both ways of sending the key, and both work
    assert "X-API-Key" in no_key.json()["detail"][0]["msg"]
    assert "Authorization: Bearer" in no_key.json()["detail"][0]["msg"]
    assert by_bearer.status_code == 200
    assert pinned.status_code == 200
    assert pinned.json()["changes"][0]["status"] == "unchanged"
    assert listed["houses"]["ref"] == "houses:1"
    assert unknown.status_code == 404 and "no version 99" in unknown.json()["detail"][0]["msg"]
    assert other_name.status_code == 422
    assert not_a_ref.status_code == 422
    assert not_a_ref.json()["detail"][0]["loc"] == ["body", "ref"]
    assert back.status_code == 200


# -- prediction log and feedback ------------------------------------------------------------


def test_predictions_are_logged_and_feedback_is_stored(
    start_server: StartServer, yard: Yard, house_rows: Rows
) -> None:
    from modelyard.predlog import read_feedback, read_predictions

    live = start_server(yard.settings, models=["houses"])
    with live.client() as client:
        predicted = _predict(client, "houses", {"rows": house_rows})
        request_id = predicted.json()["request_id"]
        stored = client.post(
            "/v1/feedback",
            json={
                "model": "houses",
                "items": [
                    {"request_id": request_id, "label": 250000.0, "row": 0},
                    {"request_id": request_id, "label": 90000, "row": 1},
                ],
            },
        )
        bad_label = client.post(
            "/v1/feedback",
            json={"model": "houses", "items": [{"request_id": request_id, "label": [1]}]},
        )
        unknown_model = client.post(
            "/v1/feedback", json={"model": "nope", "items": [{"request_id": "r", "label": 1}]}
        )
    live.stop()  # flushes the log
    assert stored.status_code == 200 and stored.json() == {"model": "houses", "stored": 2}
    assert bad_label.status_code == 422
    assert bad_label.json()["detail"][0]["loc"][:4] == ["body", "items", 0, "label"]
    assert unknown_model.status_code == 404
    assert unknown_model.json()["detail"][0]["loc"] == ["body", "model"]
    logged = read_predictions(yard.settings, "houses")
    mine = logged[logged["request_id"] == request_id]
    assert len(mine) == 3
    assert mine["prediction"].tolist() == predicted.json()["predictions"]
    feedback = read_feedback(yard.settings, "houses")
    assert set(feedback["request_id"]) >= {request_id}


def test_feedback_is_refused_for_predictions_never_made(
    start_server: StartServer, fresh_yard: Yard, house_rows: Rows
) -> None:
    fresh_yard.train_houses()
    live = start_server(fresh_yard.settings, models=["houses"])

    def send(client: httpx.Client, *items: tuple[str, int]) -> httpx.Response:
        body = [{"request_id": rid, "row": row, "label": 1.0} for rid, row in items]
        return client.post("/v1/feedback", json={"model": "houses", "items": body})

    with live.client() as client:
        rid = _predict(client, "houses", {"rows": house_rows}).json()["request_id"]
        fresh = send(client, (rid, 0), (rid, 2))  # still in memory: accepted
        made_up = send(client, (rid, 1), ("0" * 32, 0), ("my-own-id", 0))
        past_last_row = send(client, (rid, 3))
        surrogate = client.post(
            "/v1/feedback",
            content=b'{"model": "houses", "items": [{"request_id": "\\ud800", "label": 1}]}',
            headers={"content-type": "application/json"},
        )
    live.stop()  # flushes the log: the next server finds the prediction on disk
    again = start_server(fresh_yard.settings, models=["houses"])
    external = start_server(fresh_yard.settings, models=["houses"], feedback_external_ids=True)
    with again.client() as client:
        on_disk = send(client, (rid, 1))
        still_unknown = send(client, ("my-own-id", 0))
    with external.client() as client:
        accepted = send(client, ("my-own-id", 0))
        # unchecked against the log, the labels' own checks still hold: 4xx, never 5xx
        huge_row = send(client, ("my-own-id", 2**31))
        refused_labels = [
            client.post(
                "/v1/feedback",
                content=b'{"model": "houses", "items": [{"request_id": "x", "label": %s}]}' % label,
                headers={"content-type": "application/json"},
            )
            for label in (b"1" + b"0" * 400, b'"\\ud800"')
        ]
    assert fresh.status_code == 200 and fresh.json()["stored"] == 2
    assert made_up.status_code == 422, made_up.text
    details = made_up.json()["detail"]
    assert [d["loc"] for d in details] == [
        ["body", "items", 1, "request_id"],
        ["body", "items", 2, "request_id"],
    ]
    assert {d["type"] for d in details} == {"unknown_request_id"}
    assert past_last_row.status_code == 422
    assert surrogate.status_code == 422
    assert on_disk.status_code == 200 and on_disk.json()["stored"] == 1
    assert still_unknown.status_code == 422
    assert "--feedback-external-ids" in still_unknown.json()["detail"][0]["msg"]
    assert accepted.status_code == 200
    assert huge_row.status_code == 422
    assert [answer.status_code for answer in refused_labels] == [422, 422]


def test_feedback_needs_the_prediction_log(start_server: StartServer, yard: Yard) -> None:
    live = start_server(yard.settings, models=["houses"], prediction_log=False)
    with live.client() as client:
        response = client.post(
            "/v1/feedback", json={"model": "houses", "items": [{"request_id": "r1", "label": 1}]}
        )
    assert response.status_code == 409
    assert "prediction log is off" in response.json()["detail"][0]["msg"]


def test_one_version_rule_on_every_protocol(module_server: LiveServer, house_rows: Rows) -> None:
    v2_body = {
        "inputs": [
            {"name": "size", "shape": [1], "datatype": "FP64", "data": [100.0]},
            {"name": "rooms", "shape": [1], "datatype": "FP64", "data": [3.0]},
            {"name": "town", "shape": [1], "datatype": "BYTES", "data": ["alpha"]},
        ]
    }

    def answers(client: httpx.Client, version: str) -> list[int]:
        return [
            client.post(
                f"/v1/models/houses/versions/{version}/predict", json={"rows": house_rows}
            ).status_code,
            client.post(f"/v2/models/houses/versions/{version}/infer", json=v2_body).status_code,
            client.get(f"/v2/models/houses/versions/{version}").status_code,
            client.get(f"/v2/models/houses/versions/{version}/ready").status_code,
            client.post(
                "/invocations",
                params={"version": version},
                json={"dataframe_records": house_rows},
            ).status_code,
        ]

    with module_server.client() as client:
        served = client.get("/v1/models/houses").json()["version"]
        assert served == 1
        for same in ("1", "01", "0001"):
            assert answers(client, same) == [200] * 5, same
        for other in ("2", "0", "+1", "1.0", "abc", "99999999999", "%C2%B9"):
            assert answers(client, other) == [404] * 5, other
        refused = client.post(
            "/v1/models/houses/versions/x1/predict", json={"rows": house_rows}
        ).json()
    assert "not a version number" in refused["detail"][0]["msg"]
