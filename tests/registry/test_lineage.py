"""Lineage as a typed, versioned record: new writes are strict, old stored dicts still read."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from modelyard.registry import ModelVersion, Registry
from modelyard.registry.lineage import (
    LINEAGE_SCHEMA_VERSION,
    FeatureLineage,
    Lineage,
    OnnxLineage,
)

RegisterFn = Callable[..., ModelVersion]  # the `register` fixture of conftest.py

#: A lineage as modelyard stored it before the typed record (no schema_version),
#: including a key the record does not know.
LEGACY = {
    "project_dir": "/projects/houses",
    "spec_path": None,
    "spec_digest": "c0ffee",
    "seed": 7,
    "data": {"snapshot_digest": "ab" * 32, "rows": 10, "eval_rows": 3, "sampled": True},
    "features": {"definition_hash": "f00d", "feature_order": ["area", "rooms"]},
    "schema": {"columns": {"area": {"kind": "numeric"}}},
    "predictions": {"fingerprint": "beef", "rows": 3},
    "onnx": {"exported": False, "error": "no converter"},
    "retired_key": {"anything": 1},
}


def test_a_legacy_lineage_reads_as_schema_version_1() -> None:
    lineage = Lineage.from_stored(LEGACY)
    assert lineage.schema_version == 1
    assert lineage.features.feature_order == ["area", "rooms"]
    assert lineage.data.snapshot_digest == "ab" * 32 and lineage.data.rows == 10
    assert lineage.data_schema == {"columns": {"area": {"kind": "numeric"}}}
    assert lineage.onnx == OnnxLineage(exported=False, error="no converter")
    assert lineage.training is None


def test_new_lineages_refuse_unknown_keys_and_are_frozen() -> None:
    with pytest.raises(ValidationError, match="retired_key"):
        Lineage.model_validate({**LEGACY, "schema_version": LINEAGE_SCHEMA_VERSION})
    with pytest.raises(ValidationError, match="feature_ordr"):
        FeatureLineage.model_validate({"feature_ordr": ["a"]})
    lineage = Lineage(seed=1)
    with pytest.raises(ValidationError, match="frozen"):
        lineage.seed = 2  # type: ignore[misc]


def test_the_stored_json_keeps_its_shape() -> None:
    lineage = Lineage(
        seed=3,
        features=FeatureLineage(feature_order=["a"]),
        schema={"columns": {}},
        onnx=OnnxLineage(exported=False, skipped=True),
    )
    stored = lineage.to_stored()
    assert stored == {
        "schema_version": LINEAGE_SCHEMA_VERSION,
        "seed": 3,
        "features": {"feature_order": ["a"]},
        "schema": {"columns": {}},
        "onnx": {"exported": False, "skipped": True},
    }
    assert Lineage.from_stored(stored) == lineage


def test_registry_versions_old_and_new_read_typed(register: RegisterFn, registry: Registry) -> None:
    old = register(lineage=LEGACY)
    new = register(lineage=Lineage(seed=5, features=FeatureLineage(feature_order=["x"])))
    assert registry.get_version(old.ref).lineage == LEGACY  # stored as given
    assert registry.get_version(old.ref).lineage_record.features.feature_order == [
        "area",
        "rooms",
    ]
    reread = registry.get_version(new.ref)
    assert reread.lineage["schema_version"] == LINEAGE_SCHEMA_VERSION
    assert reread.lineage_record == Lineage(seed=5, features=FeatureLineage(feature_order=["x"]))
