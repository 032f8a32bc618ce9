"""OnnxRuntime on decoded request columns, and the choice between it and scikit-learn.

Requests go through the real decoder (the contract's JSON front), as the server's do;
the ONNX runtime must answer what the version's own pipeline answers for the same
columns, including missing values, unseen categories and dates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _projects import classification_frame
from modelyard import api
from modelyard.contract import InputContract, decode_records
from modelyard.errors import IntegrityError, ModelyardError
from modelyard.export.onnx import OnnxRuntime
from modelyard.models.runtime import SklearnRuntime
from modelyard.registry import ArtifactInput, Registry
from modelyard.registry.readers import load_version_pipeline
from modelyard.runtime import select_runtime
from modelyard.settings import Settings
from modelyard.types import ColumnBlocks


def _records(name: str, count: int) -> list[dict[str, Any]]:
    """``count`` request records, some with categories never seen in training."""
    random = np.random.default_rng(count)
    if name == "houses":
        towns = ["alpha", "beta", "gamma", "delta", "omega"]  # omega is new
        return [
            {
                "size": round(float(random.uniform(30, 260)), 1),
                "rooms": int(random.integers(1, 8)),
                "town": str(random.choice(towns)),
            }
            for _ in range(count)
        ]
    frame = classification_frame(rows=max(count, 10), seed=count + 1)
    records: list[dict[str, Any]] = (
        frame.drop(columns=["label", "customer_id"]).head(count).to_dict("records")
    )
    for index, record in enumerate(records):
        if index % 5 == 2:
            record["plan"] = "platinum"  # never seen in training
        if record["monthly_spend"] != record["monthly_spend"]:
            record["monthly_spend"] = None
    return records


def _with_gaps(columns: Any, rows: int) -> dict[str, np.ndarray[Any, Any]]:
    """Decoded columns with about one value in seven missing (NaN, None or NaT)."""
    gapped = {}
    for offset, (name, values) in enumerate(columns.items()):
        values = values.copy()
        hole = (np.arange(rows) + offset) % 7 == 0
        if values.dtype == object:
            values[hole] = None
        elif values.dtype.kind == "M":
            values[hole] = np.datetime64("NaT")
        else:
            values[hole] = np.nan
        gapped[name] = values
    return gapped


def _versions(settings: Settings) -> dict[str, Any]:
    with Registry.open(settings) as registry:
        return {name: registry.get_version(f"{name}:1") for name in ("houses", "churn")}


@pytest.fixture(scope="module")
def exported(yard: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of ``yard`` whose versions have ONNX exports."""
    import shutil

    home = tmp_path_factory.mktemp("exported") / "home"
    shutil.copytree(yard.home, home)
    settings = Settings(home=home)
    for ref in ("houses:1", "churn:1"):
        api.export_onnx(ref, settings=settings)
    return settings


@pytest.mark.parametrize("name", ["houses", "churn"])
@pytest.mark.parametrize("count", [1, 500])
def test_onnx_runtime_answers_like_the_pipeline(exported: Settings, name: str, count: int) -> None:
    with Registry.open(exported) as registry:
        version = registry.get_version(f"{name}:1")
        onnx_runtime = OnnxRuntime.from_version(registry, version)
        reference = SklearnRuntime(
            load_version_pipeline(registry, version), version.lineage["features"]["feature_order"]
        )
    columns, rows = decode_records(
        _records(name, count), InputContract.from_version(version, max_rows=1000)
    )
    assert rows == count
    got = onnx_runtime.predict(columns, rows)
    want = reference.predict(columns, rows)
    assert got.values.shape == (count,)
    if name == "houses":
        np.testing.assert_allclose(got.values, want.values, rtol=1e-4, atol=1e-6)
        assert got.proba is None and got.classes is None
        return
    assert got.classes == want.classes == ["churned", "stayed"]
    assert got.values.tolist() == want.values.tolist()
    assert got.proba is not None and want.proba is not None
    np.testing.assert_allclose(got.proba, want.proba, atol=1e-4)


def test_values_of_any_type_are_fed_like_training(exported: Settings) -> None:
    with Registry.open(exported) as registry:
        runtime = OnnxRuntime.from_version(registry, registry.get_version("houses:1"))
    base = {"size": np.array([80.0, 120.0]), "rooms": np.array([2.0, np.nan])}
    as_text = runtime.predict({**base, "town": np.array(["beta", None], dtype=object)}, 2)
    as_nan = runtime.predict({**base, "town": np.array(["beta", np.nan], dtype=object)}, 2)
    as_unicode = runtime.predict({**base, "town": np.array(["beta", "zeta"])}, 2)
    np.testing.assert_array_equal(as_text.values, as_nan.values)
    assert as_unicode.values[0] == as_text.values[0]
    empty = runtime.predict({"size": np.empty(0), "rooms": np.empty(0), "town": np.empty(0)}, 0)
    assert empty.values.shape == (0,)
    with pytest.raises(ModelyardError, match=r"no values for input column 'town'"):
        runtime.predict(base, 2)


def test_an_empty_classifier_batch_keeps_its_classes(exported: Settings) -> None:
    with Registry.open(exported) as registry:
        runtime = OnnxRuntime.from_version(registry, registry.get_version("churn:1"))
    output = runtime.predict({}, 0)
    assert output.proba is not None and output.proba.shape == (0, 2)
    assert output.classes == ["churned", "stayed"]


def test_auto_picks_onnx_only_with_a_passing_export(exported: Settings, yard: Settings) -> None:
    with Registry.open(yard) as registry:
        runtime, reason = select_runtime(registry, registry.get_version("houses:1"))
        assert isinstance(runtime, SklearnRuntime)
        assert "no ONNX export" in reason and "modelyard export houses:1" in reason
    with Registry.open(exported) as registry:
        version = registry.get_version("houses:1")
        runtime, reason = select_runtime(registry, version)
        assert isinstance(runtime, OnnxRuntime)
        assert runtime.parity is not None and runtime.parity.ok
        assert reason.startswith("ONNX Runtime: its export matches the pipeline on")
        runtime, reason = select_runtime(registry, version, preference="sklearn")
        assert isinstance(runtime, SklearnRuntime)
        assert reason == "scikit-learn pipeline (asked for)"
        runtime, _ = select_runtime(registry, version, preference="onnx")
        assert isinstance(runtime, OnnxRuntime)


def test_onnx_preference_without_a_usable_export_is_refused(yard: Settings) -> None:
    with Registry.open(yard) as registry:
        version = registry.get_version("churn:1")
        with pytest.raises(
            ModelyardError, match=r"cannot serve churn:1 on ONNX Runtime: it has no ONNX export"
        ):
            select_runtime(registry, version, preference="onnx")
        with pytest.raises(ModelyardError, match=r"runtime 'fast' is not known"):
            select_runtime(registry, version, preference="fast")  # type: ignore[arg-type]


def test_an_export_without_parity_is_not_served(exported: Settings, tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(exported.home, home)
    with Registry.open(Settings(home=home)) as registry:
        version = registry.get_version("houses:1")
        record = version.artifacts["onnx"]
        failing = {**record.extra, "parity": {**record.extra["parity"], "ok": False}}
        version = registry.add_artifact(
            version,
            "onnx",
            ArtifactInput(registry.read_artifact(version, "onnx"), record.media_type, failing),
            actor="test",
            replace=True,
        )
        runtime, reason = select_runtime(registry, version)
        assert isinstance(runtime, SklearnRuntime)
        assert "does not reproduce the pipeline" in reason
        with pytest.raises(ModelyardError, match=r"does not reproduce the pipeline"):
            select_runtime(registry, version, preference="onnx")


def test_a_failed_export_recorded_in_lineage_is_the_reason(own_yard: Settings) -> None:
    with Registry.open(own_yard) as registry:
        original = registry.get_version("houses:1")
        record = original.artifacts["model"]
        version = registry.register_version(
            "houses",
            artifacts={
                "model": ArtifactInput(
                    registry.read_artifact(original, "model"), record.media_type, record.extra
                )
            },
            spec=original.spec,
            lineage={**original.lineage, "onnx": {"error": "step 'x' has no ONNX converter"}},
            metrics={},
            report={},
            gates_passed=True,
            actor="test",
        )
        runtime, reason = select_runtime(registry, version)
    assert isinstance(runtime, SklearnRuntime)
    assert "failed at registration (step 'x' has no ONNX converter)" in reason


def test_a_tampered_onnx_artifact_is_refused(exported: Settings, tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(exported.home, home)
    with Registry.open(Settings(home=home)) as registry:
        version = registry.get_version("houses:1")
        path = registry.store.path(version.artifacts["onnx"].digest)
        assert path is not None
        data = bytearray(Path(path).read_bytes())
        data[-10] ^= 0xFF  # one flipped byte in the graph
        Path(path).write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match=r"modified or corrupted"):
            OnnxRuntime.from_version(registry, version)
        with pytest.raises(IntegrityError, match=r"modified or corrupted"):
            select_runtime(registry, version)  # never hidden by a fallback


def test_predictions_of_an_exported_version_survive_a_round_trip(exported: Settings) -> None:
    versions = _versions(exported)
    assert set(versions["houses"].artifacts) >= {"model", "onnx"}
    extra = versions["churn"].artifacts["onnx"].extra
    assert extra["classes"] == ["churned", "stayed"]
    kinds = {item["column"]: item["kind"] for item in extra["inputs"]}
    assert kinds["signup_date"] == "datetime"
    assert pd.Series(kinds).value_counts().to_dict() == {
        "numeric": 3,
        "categorical": 2,
        "datetime": 1,
    }


@pytest.mark.parametrize("name", ["houses", "churn"])
def test_grouped_inputs_and_decoded_blocks_change_no_prediction(
    exported: Settings, name: str
) -> None:
    """One input per dtype (split inside the graph) answers bit for bit like one per column,
    whether the columns come as decoded blocks or as separate arrays, gaps included."""
    with Registry.open(exported) as registry:
        version = registry.get_version(f"{name}:1")
        grouped = OnnxRuntime.from_version(registry, version)
        per_column = OnnxRuntime.from_version(registry, version, grouped=False)
    spec = InputContract.from_version(version, max_rows=1000)
    decoded, rows = decode_records(_records(name, 300), spec)
    assert isinstance(decoded, ColumnBlocks)
    gapped = _with_gaps(decoded, rows)
    as_blocks = ColumnBlocks.of(spec.layout, gapped, rows)
    feeds = grouped.feeds(as_blocks, rows)
    assert all(key.startswith("modelyard.inputs.") for key in feeds)
    assert len(feeds) < len(per_column.feeds(gapped, rows)) == len(spec.columns)
    for columns in (decoded, as_blocks):
        want = per_column.predict(dict(columns), rows)
        for got in (grouped.predict(columns, rows), grouped.predict(dict(columns), rows)):
            np.testing.assert_array_equal(got.values, want.values)
            if want.proba is not None:
                np.testing.assert_array_equal(got.proba, want.proba)
    one = ColumnBlocks.of(spec.layout, {key: values[:1] for key, values in gapped.items()}, 1)
    np.testing.assert_array_equal(
        grouped.predict(one, 1).values, per_column.predict(gapped, rows).values[:1]
    )
