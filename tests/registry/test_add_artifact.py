"""Registry.add_artifact: attach an artifact to an existing version, audited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.errors import IntegrityError, ModelNotFoundError, ModelyardError, RegistryError
from modelyard.registry import ArtifactInput, ModelVersion, Registry
from modelyard.registry import db as registry_db
from modelyard.settings import Settings

RegisterFn = Callable[..., ModelVersion]  # the `register` fixture of conftest.py


def test_adds_an_artifact_and_audits_it(registry: Registry, register: RegisterFn) -> None:
    version = register()
    updated = registry.add_artifact(
        version,
        "onnx",
        ArtifactInput(b"onnx bytes", "application/onnx", {"parity": {"ok": True}}),
        actor="bo",
    )
    assert updated.ref == version.ref
    assert set(updated.artifacts) == {"model", "snapshot", "onnx"}
    assert updated.artifacts["onnx"].extra == {"parity": {"ok": True}}
    assert updated.artifacts["model"] == version.artifacts["model"]
    assert registry.read_artifact(registry.get_version(version.ref), "onnx") == b"onnx bytes"
    entry = registry.audit_log("churn", limit=1)[0]
    assert (entry.action, entry.actor, entry.to_version) == ("add_artifact", "bo", 1)
    assert entry.details["role"] == "onnx"
    assert entry.details["digest"] == updated.artifacts["onnx"].digest


def test_refuses_an_existing_role_unless_replace(registry: Registry, register: RegisterFn) -> None:
    version = register()
    first = registry.add_artifact(version, "onnx", ArtifactInput(b"first"), actor="bo")
    with pytest.raises(RegistryError, match=r"churn:1 already has an artifact 'onnx'.*--force"):
        registry.add_artifact(version, "onnx", ArtifactInput(b"second"), actor="bo")
    assert registry.read_artifact(registry.get_version("churn:1"), "onnx") == b"first"
    replaced = registry.add_artifact(
        version, "onnx", ArtifactInput(b"second"), actor="bo", replace=True
    )
    assert registry.read_artifact(replaced, "onnx") == b"second"
    entry = registry.audit_log("churn", limit=1)[0]
    assert entry.details["replaced"] == first.artifacts["onnx"].digest


def test_rejects_bad_roles_and_missing_versions(registry: Registry, register: RegisterFn) -> None:
    version = register()
    with pytest.raises(ModelyardError, match=r"artifact role '1onnx' is not valid"):
        registry.add_artifact(version, "1onnx", ArtifactInput(b"x"), actor="bo")
    other = register("fraud")
    ghost = type(other)(**{**other.__dict__, "version": 9})
    with pytest.raises(ModelNotFoundError, match=r"model 'fraud' has no version 9"):
        registry.add_artifact(ghost, "onnx", ArtifactInput(b"x"), actor="bo")


def test_an_added_artifact_is_checksum_verified(
    registry: Registry, register: RegisterFn, tmp_path: Path
) -> None:
    version = registry.add_artifact(register(), "onnx", ArtifactInput(b"genuine"), actor="bo")
    path = registry.store.path(version.artifacts["onnx"].digest)
    assert path is not None
    Path(path).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=r"was modified or corrupted"):
        registry.read_artifact(version, "onnx")


def test_audit_check_constraint_accepts_the_new_action(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry.open(Settings(home=tmp_path), url=url).close()
    engine = registry_db.create_registry_engine(url)
    try:
        with engine.connect() as conn:
            sql = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = 'modelyard_audit'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert "'add_artifact'" in sql
