"""The Open Inference Protocol V2 endpoints, through Triton's own HTTP client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

if TYPE_CHECKING:
    from conftest import LiveServer, Yard

Rows = list[dict[str, Any]]


def _client(server: LiveServer) -> Any:
    return tritonhttp.InferenceServerClient(server.url.removeprefix("http://"))


def _inputs(client: Any, model: str, rows: Rows, *, binary: bool) -> list[Any]:
    """One InferInput per column, typed and shaped as the model metadata says."""
    metadata = client.get_model_metadata(model)
    inputs = []
    for tensor in metadata["inputs"]:
        values = [row[tensor["name"]] for row in rows]
        if tensor["datatype"] == "FP64":
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            array = np.array(values, dtype=object)
        array = array.reshape(len(rows), 1)
        infer_input = tritonhttp.InferInput(tensor["name"], list(array.shape), tensor["datatype"])
        infer_input.set_data_from_numpy(array, binary_data=binary)
        inputs.append(infer_input)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_regression_matches_the_reference(
    module_server: LiveServer, yard: Yard, house_rows: Rows, binary: bool
) -> None:
    client = _client(module_server)
    result = client.infer("houses", _inputs(client, "houses", house_rows, binary=binary))
    expected = yard.reference("houses:1", house_rows).values
    np.testing.assert_array_equal(result.as_numpy("predict"), expected)
    response = result.get_response()
    assert response["model_name"] == "houses" and response["model_version"] == "1"
    assert [output["name"] for output in response["outputs"]] == ["predict"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_classifier_gives_labels_and_probabilities(
    module_server: LiveServer, yard: Yard, churn_rows: Rows, binary: bool
) -> None:
    client = _client(module_server)
    outputs = [
        tritonhttp.InferRequestedOutput("predict", binary_data=binary),
        tritonhttp.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer(
        "churn",
        _inputs(client, "churn", churn_rows, binary=binary),
        outputs=outputs,
        model_version="1",
        request_id="my-request",
    )
    reference = yard.reference("churn:1", churn_rows)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert labels == reference.values.tolist()
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), reference.proba)
    proba = result.get_output("predict_proba")
    assert proba["parameters"]["classes"] == ["churned", "stayed"]
    assert result.get_response()["id"] == "my-request"


def test_requested_outputs_are_honoured(module_server: LiveServer, churn_rows: Rows) -> None:
    client = _client(module_server)
    result = client.infer(
        "churn",
        _inputs(client, "churn", churn_rows, binary=False),
        outputs=[tritonhttp.InferRequestedOutput("predict_proba", binary_data=False)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predict_proba"]
    assert result.as_numpy("predict_proba").shape == (2, 2)


def test_health_and_metadata(module_server: LiveServer) -> None:
    client = _client(module_server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("houses") and client.is_model_ready("churn", "1")
    assert not client.is_model_ready("churn", "7")
    assert client.get_server_metadata()["name"] == "modelyard"
    metadata = client.get_model_metadata("churn", "1")
    assert metadata["versions"] == ["1"]
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    assert inputs["tenure_months"] == {
        "name": "tenure_months",
        "datatype": "FP64",
        "shape": [-1, 1],
    }
    assert inputs["plan"]["datatype"] == inputs["signup_date"]["datatype"] == "BYTES"
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]
    assert metadata["parameters"]["classes"] == ["churned", "stayed"]
    regression = client.get_model_metadata("houses")
    assert regression["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


def test_errors_reach_tritonclient_with_status_and_message(
    module_server: LiveServer, house_rows: Rows
) -> None:
    client = _client(module_server)
    inputs = _inputs(client, "houses", house_rows, binary=True)
    with pytest.raises(InferenceServerException, match=r"column 'town': missing") as missing:
        client.infer("houses", inputs[:2])
    assert missing.value.status() == "400"
    with pytest.raises(InferenceServerException, match=r"'nope' is not served") as unknown:
        client.infer("nope", inputs)
    assert unknown.value.status() == "404"
    with pytest.raises(InferenceServerException, match=r"version 5 is not served") as version:
        client.infer("houses", inputs, model_version="5")
    assert version.value.status() == "404"
    with pytest.raises(InferenceServerException, match=r"output 'score' does not exist"):
        client.infer("houses", inputs, outputs=[tritonhttp.InferRequestedOutput("score")])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": "size"}, "non-empty list of tensors"),
        ({"inputs": [{"name": "size", "shape": [1], "datatype": "FP64", "data": ["x"]}]}, "size"),
        (
            {"inputs": [{"name": "size", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
            "needs 2",
        ),
        ({"outputs": "predict", "inputs": []}, '"outputs" must be a list'),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_v2_bodies_are_400_with_an_error_message(
    module_server: LiveServer, body: object, message: str
) -> None:
    with module_server.client() as client:
        response = client.post("/v2/models/houses/infer", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_bad_binary_framing_is_400(module_server: LiveServer) -> None:
    header = (
        b'{"inputs": [{"name": "size", "shape": [1], "datatype": "FP64",'
        b' "parameters": {"binary_data_size": 8}}]}'
    )
    with module_server.client() as client:
        short = client.post(
            "/v2/models/houses/infer",
            content=header + b"\x00" * 4,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        bad_length = client.post(
            "/v2/models/houses/infer",
            content=header,
            headers={"Inference-Header-Content-Length": "99999"},
        )
    assert short.status_code == 400 and "binary_data_size 8" in short.json()["error"]
    assert bad_length.status_code == 400
    assert "Inference-Header-Content-Length" in bad_length.json()["error"]


def test_unknown_model_paths_are_404_in_v2_shape(module_server: LiveServer) -> None:
    with module_server.client() as client:
        for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/houses/versions/3"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert set(response.json()) == {"error"}


def test_binary_tensors_send_missing_values_by_position(
    module_server: LiveServer, yard: Yard, churn_rows: Rows, house_rows: Rows
) -> None:
    client = _client(module_server)
    # churn_rows[1] has no monthly_spend: sent as 999.0 in binary, and named missing
    stand_in = [dict(row, monthly_spend=row["monthly_spend"] or 999.0) for row in churn_rows]
    inputs = _inputs(client, "churn", stand_in, binary=True)
    marked = client.infer("churn", inputs, parameters={"missing": {"monthly_spend": [1]}})
    reference = yard.reference("churn:1", churn_rows)
    np.testing.assert_array_equal(marked.as_numpy("predict_proba"), reference.proba)
    # a category has no NaN: without the parameter "" is just an unseen category (200),
    # with it the row arrives missing, and this model, trained without any, refuses it
    blank = [dict(row, town="") if index == 1 else row for index, row in enumerate(house_rows)]
    houses = _inputs(client, "houses", blank, binary=True)
    assert client.infer("houses", houses).as_numpy("predict").shape == (3,)
    with pytest.raises(InferenceServerException, match=r"row 1, column 'town': null") as null:
        client.infer("houses", houses, parameters={"missing": {"town": [1]}})
    assert null.value.status() == "400"


def test_a_tensor_names_its_own_missing_elements(
    module_server: LiveServer, yard: Yard, churn_rows: Rows
) -> None:
    rows = [churn_rows[1], churn_rows[0]]  # the missing spend first
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    tensors = []
    for name, values in columns.items():
        numeric = name in ("tenure_months", "monthly_spend", "support_tickets")
        tensor: dict[str, Any] = {
            "name": name,
            "shape": [2, 1],
            "datatype": "FP64" if numeric else "BYTES",
            "data": [[0.0 if value is None else value] for value in values],
        }
        if name == "monthly_spend":
            tensor["parameters"] = {"missing": [0]}
        tensors.append(tensor)
    bad = [dict(tensors[0], parameters={"missing": [2]}), *tensors[1:]]
    with module_server.client() as http:
        answer = http.post("/v2/models/churn/infer", json={"inputs": tensors})
        outside = http.post("/v2/models/churn/infer", json={"inputs": bad})
    proba = next(o for o in answer.json()["outputs"] if o["name"] == "predict_proba")
    expected = yard.reference("churn:1", rows).proba
    np.testing.assert_array_equal(np.reshape(proba["data"], (2, -1)), expected)
    assert outside.status_code == 400
    assert "parameters.missing must list positions from 0 to 1" in outside.json()["error"]
