"""Serving on ONNX Runtime: chosen when a version's ONNX export holds parity."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from modelyard import api

if TYPE_CHECKING:
    from conftest import StartServer, Yard

pytest.importorskip("onnxruntime")
Rows = list[dict[str, Any]]


def _export(yard: Yard, ref: str) -> None:
    """Attach an ONNX export with its parity check (``modelyard export``)."""
    version = api.export_onnx(ref, settings=yard.settings)
    assert version.artifacts["onnx"].extra["parity"]["ok"] is True


def test_auto_serves_a_version_with_a_faithful_export_on_onnx(
    start_server: StartServer, fresh_yard: Yard, house_rows: Rows
) -> None:
    fresh_yard.train_houses()
    _export(fresh_yard, "houses:1")
    live = start_server(fresh_yard.settings, models=["houses"], runtime="auto")
    with live.client() as client:
        listed = client.get("/v1/models").json()["models"][0]
        response = client.post("/v1/models/houses/predict", json={"rows": house_rows})
    assert listed["runtime"] == "onnx" and "matches the pipeline" in listed["runtime_reason"]
    assert listed["parity"]["ok"] is True
    assert response.json()["runtime"] == "onnx"
    expected = fresh_yard.reference("houses:1", house_rows).values
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-4)


def _copy_without_onnx(yard: Yard, ref: str, name: str) -> str:
    """Register ``ref``'s pipeline again as model ``name``, with no ONNX export."""
    from modelyard.registry.records import ArtifactInput

    with api.open_registry(yard.settings) as registry:
        source = registry.get_version(ref)
        artifacts = {
            role: ArtifactInput(
                registry.read_artifact(source, role), record.media_type, record.extra
            )
            for role, record in source.artifacts.items()
            if role != "onnx"
        }
        copy = registry.register_version(
            name,
            artifacts=artifacts,
            spec={**source.spec, "name": name},
            lineage={key: value for key, value in source.lineage.items() if key != "onnx"},
            metrics=source.metrics,
            report=source.report,
            gates_passed=source.gates_passed,
            actor="test",
        )
        registry.set_alias(name, "production", copy.version, actor="test")
    return copy.ref


def test_runtime_preference_is_obeyed(start_server: StartServer, fresh_yard: Yard) -> None:
    fresh_yard.train_houses()
    _export(fresh_yard, "houses:1")
    _copy_without_onnx(fresh_yard, "houses:1", "plain-houses")
    sklearn = start_server(fresh_yard.settings, models=["houses"], runtime="sklearn")
    onnx = start_server(fresh_yard.settings, models=["houses"], runtime="onnx")
    refused = start_server(fresh_yard.settings, models=["plain-houses"], runtime="onnx", wait=False)
    with sklearn.client() as client:
        assert client.get("/v1/models").json()["models"][0]["runtime"] == "sklearn"
    with onnx.client() as client:
        assert client.get("/v1/models").json()["models"][0]["runtime"] == "onnx"
    with refused.client() as client:
        for _ in range(600):
            entry = client.get("/v1/models").json()["models"][0]
            if entry["error"]:
                break
            time.sleep(0.05)
        assert entry["ready"] is False
        assert "cannot serve plain-houses:1 on ONNX Runtime" in entry["error"]
        assert "no ONNX export" in entry["error"]
        assert client.get("/readyz").status_code == 503
