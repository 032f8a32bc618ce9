"""Settings.from_options: the one rule by which every command group reads --home/--registry-url."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.settings import Settings


def test_options_given_win_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "from-env"))
    settings = Settings.from_options({"home": tmp_path / "given", "registry_url": None})
    assert settings.home == tmp_path / "given"
    assert settings.resolved_registry_url() == f"sqlite:///{tmp_path / 'given' / 'registry.db'}"


def test_options_left_unset_fall_back_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", "sqlite:///elsewhere.db")
    settings = Settings.from_options({"home": None, "registry_url": None, "debug": True})
    assert settings.home == tmp_path / "from-env"
    assert settings.resolved_registry_url() == "sqlite:///elsewhere.db"
    given = Settings.from_options({"registry_url": "sqlite:///given.db"})
    assert given.resolved_registry_url() == "sqlite:///given.db"
