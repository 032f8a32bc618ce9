"""Fixtures of the registry tests: a registry on SQLite, and on PostgreSQL (e2e)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.registry import ArtifactInput, ModelVersion, Registry
from modelyard.settings import Settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty registry database, on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def registry(registry_url: str, tmp_path: Path) -> Iterator[Registry]:
    """An open, empty registry whose artifacts live under ``tmp_path/home``."""
    with Registry.open(Settings(home=tmp_path / "home"), url=registry_url) as opened:
        yield opened


RegisterFn = Callable[..., ModelVersion]


@pytest.fixture
def register(registry: Registry) -> RegisterFn:
    """Register a version with sensible defaults; keyword arguments override them."""

    def _register(name: str = "churn", **overrides: Any) -> ModelVersion:
        model_bytes = overrides.pop("model_bytes", b"fitted pipeline bytes")
        arguments: dict[str, Any] = {
            "artifacts": {
                "model": ArtifactInput(
                    model_bytes, "application/octet-stream", {"trusted": ["numpy.dtype"]}
                ),
                "snapshot": ArtifactInput(b"PAR1...PAR1", "application/vnd.apache.parquet"),
            },
            "spec": {"name": name, "task": "binary", "target": "churned"},
            "lineage": {"data_digest": "ab" * 32, "seed": 42},
            "metrics": {"roc_auc": 0.81, "accuracy": 0.75},
            "report": {"gates": [{"gate": "roc_auc >= 0.7", "passed": True}]},
            "gates_passed": True,
            "actor": "ana",
            "description": "first try",
        }
        arguments.update(overrides)
        return registry.register_version(name, **arguments)

    return _register
