"""The registry on SQLite and (marked e2e) on a real PostgreSQL server."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.errors import (
    IntegrityError,
    ModelNotFoundError,
    ModelyardError,
    PromotionRefused,
    RegistryError,
)
from modelyard.registry import ArtifactInput, ModelRef, ModelVersion, Registry, db
from modelyard.settings import Settings

Register = Callable[..., ModelVersion]


def _count(registry_url: str, table: sa.Table) -> int:
    engine = db.create_registry_engine(registry_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


# -- register, get, list -------------------------------------------------------------


def test_register_then_get_returns_everything_recorded(
    registry: Registry, register: Register
) -> None:
    before = datetime.now(UTC)
    created = register("churn")
    assert (created.name, created.version, created.ref) == ("churn", 1, "churn:1")
    assert before <= created.created_at <= datetime.now(UTC)
    assert created.created_at.tzinfo is not None
    assert created.created_by == "ana" and created.gates_passed
    assert created.spec == {"name": "churn", "task": "binary", "target": "churned"}
    assert created.metrics == {"roc_auc": 0.81, "accuracy": 0.75}
    assert created.lineage["seed"] == 42 and created.description == "first try"
    model = created.artifacts["model"]
    assert model.size == len(b"fitted pipeline bytes")
    assert model.extra == {"trusted": ["numpy.dtype"]}
    assert created.artifacts["snapshot"].media_type == "application/vnd.apache.parquet"
    assert created.aliases == []
    assert registry.get_version("churn:1") == created


def test_versions_are_numbered_per_model_and_name_alone_means_latest(
    registry: Registry, register: Register
) -> None:
    register("churn")
    register("churn", model_bytes=b"second")
    register("prices")
    assert registry.get_version("churn").version == 2
    assert registry.get_version("churn:latest").version == 2
    assert registry.get_version(ModelRef("churn", version=1)).version == 1
    assert registry.get_version("prices").version == 1
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    summaries = registry.list_models()
    assert [(s.name, s.latest_version) for s in summaries] == [("churn", 2), ("prices", 1)]


def test_same_bytes_in_two_versions_are_stored_once(registry: Registry, register: Register) -> None:
    first, second = register("churn"), register("churn")
    assert first.artifacts["model"].digest == second.artifacts["model"].digest
    assert registry.read_artifact(second, "model") == b"fitted pipeline bytes"


def test_unknown_model_names_the_registry_and_how_to_list(
    registry: Registry, register: Register
) -> None:
    register("house-prices")
    with pytest.raises(
        ModelNotFoundError,
        match=r"no model 'house-price' in the registry at "
        r".*Did you mean 'house-prices'\?.*run `modelyard models list`",
    ):
        registry.get_version("house-price")
    with pytest.raises(ModelNotFoundError, match="no model 'nothing-like-it'"):
        registry.list_versions("nothing-like-it")


def test_unknown_version_says_which_versions_exist(registry: Registry, register: Register) -> None:
    register("churn")
    register("churn")
    with pytest.raises(
        ModelNotFoundError,
        match=r"model 'churn' has no version 7 .*"
        r"\(it has versions 1 to 2\); run `modelyard models list`",
    ):
        registry.get_version("churn:7")


def test_unknown_alias_lists_the_existing_aliases(registry: Registry, register: Register) -> None:
    register("churn")
    with pytest.raises(ModelNotFoundError, match="it has no aliases yet"):
        registry.get_version("churn@production")
    registry.set_alias("churn", "staging", 1, actor="ana")
    with pytest.raises(
        ModelNotFoundError,
        match=r"no alias 'production'.*its aliases are: "
        r"staging -> churn:1",
    ):
        registry.get_version("churn@production")


def test_bad_names_are_refused(registry: Registry, register: Register) -> None:
    with pytest.raises(ModelyardError, match="'bad name' is not a valid model name"):
        register("bad name")
    with pytest.raises(ModelyardError, match="not a model reference"):
        registry.get_version("churn:x")
    with pytest.raises(ModelyardError, match="artifact role '' is not valid"):
        register("churn", artifacts={"": ArtifactInput(b"x")})


# -- artifacts -----------------------------------------------------------------------


def test_read_artifact_detects_a_file_modified_on_disk(
    registry: Registry, register: Register
) -> None:
    version = register("churn")
    assert registry.read_artifact(version, "model") == b"fitted pipeline bytes"
    path = registry.store.path(version.artifacts["model"].digest)
    assert path is not None
    os.chmod(path, 0o644)
    path.write_bytes(b"fitted pipeline bytez")
    with pytest.raises(IntegrityError, match="modified or corrupted"):
        registry.read_artifact(registry.get_version("churn:1"), "model")
    path.unlink()
    with pytest.raises(IntegrityError, match="artifact missing"):
        registry.read_artifact(version, "model")


def test_read_artifact_of_unknown_role_lists_the_roles(
    registry: Registry, register: Register
) -> None:
    version = register("churn")
    with pytest.raises(
        ModelNotFoundError,
        match="churn:1 has no artifact 'onnx'; its artifacts are: model, snapshot",
    ):
        registry.read_artifact(version, "onnx")


# -- atomicity -----------------------------------------------------------------------


def test_failed_registration_leaves_no_trace_and_no_gap_in_numbers(
    registry: Registry, register: Register, registry_url: str
) -> None:
    register("churn")
    # Fails inserting the version row, after the version number was taken.
    with pytest.raises(RegistryError, match="must be plain JSON data"):
        register("churn", spec={"estimator": object()})
    # Fails inserting the artifact rows, after the version row was written.
    with pytest.raises(RegistryError, match="must be plain JSON data"):
        register("churn", artifacts={"model": ArtifactInput(b"m", extra={"when": datetime.now()})})
    # NaN is refused on every backend (PostgreSQL's json type has no NaN).
    with pytest.raises(RegistryError, match="finite numbers"):
        register("churn", metrics={"log_loss": math.nan})
    # A model created by a failed first registration is rolled back too.
    with pytest.raises(RegistryError):
        register("brand-new", spec={"bad": {1, 2}})
    assert [v.version for v in registry.list_versions("churn")] == [1]
    assert [m.name for m in registry.list_models()] == ["churn"]
    assert _count(registry_url, db.versions) == 1
    assert _count(registry_url, db.artifacts) == 2
    assert _count(registry_url, db.audit) == 1
    assert register("churn").version == 2


# -- aliases, promotion, rollback, audit --------------------------------------------


def test_alias_resolves_and_shows_on_versions_and_models(
    registry: Registry, register: Register
) -> None:
    register("churn")
    register("churn")
    change = registry.set_alias("churn", "production", 1, actor="ana", reason="first release")
    assert (change.action, change.from_version, change.to_version) == ("promote", None, 1)
    assert change.changed and not change.override
    assert registry.get_version("churn@production").version == 1
    assert registry.get_version("churn:1").aliases == ["production"]
    assert registry.list_models()[0].aliases == {"production": 1}
    again = registry.set_alias("churn", "production", 1, actor="ana")
    assert not again.changed
    assert len(registry.audit_log("churn")) == 3  # two registrations, one promotion


def test_alias_to_missing_version_or_bad_alias_is_refused(
    registry: Registry, register: Register
) -> None:
    register("churn")
    with pytest.raises(ModelNotFoundError, match="no version 5"):
        registry.set_alias("churn", "production", 5, actor="ana")
    with pytest.raises(ModelyardError, match="not a valid alias"):
        registry.set_alias("churn", "Production", 1, actor="ana")
    with pytest.raises(ModelNotFoundError, match="no model 'other'"):
        registry.set_alias("other", "production", 1, actor="ana")


def test_promotion_of_failed_gates_is_refused_unless_overridden_with_a_reason(
    registry: Registry, register: Register
) -> None:
    register("churn", gates_passed=False)
    with pytest.raises(
        PromotionRefused,
        match=r"failed its evaluation gates.*"
        r"--allow-failed-gates together with --reason",
    ):
        registry.set_alias("churn", "production", 1, actor="ana")
    with pytest.raises(PromotionRefused, match="the override has no reason"):
        registry.set_alias("churn", "production", 1, actor="ana", allow_failed_gates=True)
    change = registry.set_alias(
        "churn",
        "production",
        1,
        actor="bob",
        reason="hotfix, gates flaky",
        allow_failed_gates=True,
    )
    assert change.override and change.to_version == 1
    entry = registry.audit_log("churn", limit=1)[0]
    assert (entry.action, entry.actor, entry.reason) == ("promote", "bob", "hotfix, gates flaky")
    assert entry.details == {"gates_passed": False, "allow_failed_gates": True}


def test_rollback_undoes_moves_one_by_one_with_an_audit_trail(
    registry: Registry, register: Register
) -> None:
    for _ in range(3):
        register("churn")
    for number, actor in [(1, "ana"), (2, "bob"), (3, "cy")]:
        registry.set_alias("churn", "production", number, actor=actor, reason=f"ship {number}")
    before = datetime.now(UTC)
    change = registry.rollback("churn", actor="dee", reason="v3 drops orders")
    assert (change.action, change.from_version, change.to_version) == ("rollback", 3, 2)
    assert registry.get_version("churn@production").version == 2
    entry = registry.audit_log("churn", limit=1)[0]
    assert (entry.action, entry.actor, entry.reason) == ("rollback", "dee", "v3 drops orders")
    assert (entry.alias, entry.from_version, entry.to_version) == ("production", 3, 2)
    assert before <= entry.at <= datetime.now(UTC)
    assert registry.rollback("churn", actor="dee").to_version == 1
    with pytest.raises(RegistryError, match="cannot roll back churn@production: no earlier"):
        registry.rollback("churn", actor="dee")
    history = [(e.action, e.from_version, e.to_version) for e in registry.audit_log("churn")]
    assert history[:5] == [
        ("rollback", 2, 1),
        ("rollback", 3, 2),
        ("promote", 2, 3),
        ("promote", 1, 2),
        ("promote", None, 1),
    ]


def _corrupt(registry: Registry, version: ModelVersion, role: str = "model") -> None:
    path = registry.store.path(version.artifacts[role].digest)
    assert path is not None
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_promote_refuses_a_version_whose_artifacts_were_altered(
    registry: Registry, register: Register
) -> None:
    register("churn", model_bytes=b"version one")
    altered = register("churn", model_bytes=b"version two")
    registry.set_alias("churn", "production", 1, actor="ana")
    _corrupt(registry, altered)
    assert registry.verify_artifacts(registry.get_version("churn:1")) == []
    assert [line.split(":")[0] for line in registry.verify_artifacts(altered)] == ["model"]
    for kwargs in ({}, {"allow_corrupt": True}, {"reason": "urgent"}):
        with pytest.raises(
            IntegrityError, match=r"(?s)refusing to promote churn:2.*--allow-corrupt"
        ):
            registry.set_alias("churn", "production", 2, actor="bob", **kwargs)  # type: ignore[arg-type]
    assert registry.get_version("churn@production").version == 1
    assert [entry.action for entry in registry.audit_log("churn")].count("promote") == 1
    change = registry.set_alias(
        "churn", "production", 2, actor="bob", reason="restoring tonight", allow_corrupt=True
    )
    assert change.override and change.to_version == 2
    entry = registry.audit_log("churn", limit=1)[0]
    assert entry.reason == "restoring tonight"
    assert [line.split(":")[0] for line in entry.details["allow_corrupt_artifacts"]] == ["model"]


def test_rollback_refuses_a_target_whose_artifacts_were_altered(
    registry: Registry, register: Register
) -> None:
    first = register("churn", model_bytes=b"version one")
    register("churn", model_bytes=b"version two")
    registry.set_alias("churn", "production", 1, actor="ana")
    registry.set_alias("churn", "production", 2, actor="ana")
    _corrupt(registry, first, "model")
    with pytest.raises(IntegrityError, match=r"refusing to roll back to churn:1:"):
        registry.rollback("churn", actor="bob", reason="v2 is slow")
    assert registry.get_version("churn@production").version == 2
    change = registry.rollback("churn", actor="bob", reason="v2 is down", allow_corrupt=True)
    assert change.override and change.to_version == 1
    details = registry.audit_log("churn", limit=1)[0].details
    assert "undoes" in details and details["allow_corrupt_artifacts"]


def test_rollback_of_an_alias_never_set_is_refused(registry: Registry, register: Register) -> None:
    register("churn")
    with pytest.raises(RegistryError, match="cannot roll back churn@staging: it was never set"):
        registry.rollback("churn", "staging", actor="ana")


def test_delete_alias_is_audited_and_rollback_restores_it(
    registry: Registry, register: Register
) -> None:
    register("churn")
    registry.set_alias("churn", "staging", 1, actor="ana")
    change = registry.delete_alias("churn", "staging", actor="bob", reason="retired")
    assert (change.action, change.from_version, change.to_version) == ("alias_delete", 1, None)
    with pytest.raises(ModelNotFoundError, match="no alias 'staging'"):
        registry.get_version("churn@staging")
    with pytest.raises(ModelNotFoundError, match="no alias 'staging'"):
        registry.delete_alias("churn", "staging", actor="bob")
    assert registry.rollback("churn", "staging", actor="ana").to_version == 1
    assert registry.get_version("churn@staging").version == 1


def test_audit_log_is_newest_first_limited_and_per_model(
    registry: Registry, register: Register
) -> None:
    register("churn")
    register("prices")
    register("churn")
    entries = registry.audit_log()
    assert [(e.model, e.to_version) for e in entries] == [("churn", 2), ("prices", 1), ("churn", 1)]
    assert all(e.action == "register" and e.actor == "ana" for e in entries)
    assert entries[0].details["gates_passed"] is True
    assert [e.model for e in registry.audit_log(limit=1)] == ["churn"]
    assert [e.to_version for e in registry.audit_log("churn")] == [2, 1]
    with pytest.raises(ModelNotFoundError, match="no model 'nope'"):
        registry.audit_log("nope")


# -- opening ------------------------------------------------------------------------


def test_open_migrates_once_and_is_cheap_afterwards(
    registry_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="modelyard.registry.db")
    Registry.open(Settings(home=tmp_path), url=registry_url).close()
    assert "upgrading registry schema" in caplog.text
    caplog.clear()
    with Registry.open(Settings(home=tmp_path), url=registry_url) as reopened:
        assert reopened.list_models() == []
    assert "upgrading registry schema" not in caplog.text


def test_default_registry_lives_under_the_home_folder(tmp_path: Path) -> None:
    with Registry.open(Settings(home=tmp_path / "yard")) as registry:
        version = registry.register_version(
            "churn",
            artifacts={"model": ArtifactInput(b"m")},
            spec={},
            lineage={},
            metrics={},
            report={},
            gates_passed=True,
            actor="ana",
        )
        assert registry.url == f"sqlite:///{tmp_path / 'yard' / 'registry.db'}"
        assert "LocalArtifactStore" in repr(registry)
    assert (tmp_path / "yard" / "registry.db").is_file()
    digest = version.artifacts["model"].digest
    assert (tmp_path / "yard" / "artifacts" / "sha256" / digest[:2] / digest).is_file()


def test_database_from_a_newer_modelyard_is_refused(registry_url: str, tmp_path: Path) -> None:
    Registry.open(Settings(home=tmp_path), url=registry_url).close()
    engine = db.create_registry_engine(registry_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {db.VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(RegistryError, match="revision '9999'.*newer modelyard: upgrade"):
        Registry.open(Settings(home=tmp_path), url=registry_url)


def test_bad_urls_are_refused_with_the_forms_expected(tmp_path: Path) -> None:
    with pytest.raises(ModelyardError, match="is not a database URL; expected e.g. 'sqlite"):
        Registry.open(Settings(home=tmp_path), url="not a url")
    with pytest.raises(ModelyardError, match="database 'mysql' is not supported"):
        Registry.open(Settings(home=tmp_path), url="mysql://user:pw@host/db")


def test_urls_in_messages_have_passwords_masked() -> None:
    masked = db.mask_url("postgresql+psycopg://ana:s3cret@db.example:5432/yard")
    assert masked == "postgresql+psycopg://ana:***@db.example:5432/yard"


@pytest.mark.e2e
def test_postgres_messages_mask_the_password(fresh_postgres_url: str, tmp_path: Path) -> None:
    # The test server trusts every local login, so any password connects.
    url = sa.make_url(fresh_postgres_url).set(password="s3cret")
    raw = url.render_as_string(hide_password=False)
    with Registry.open(Settings(home=tmp_path), url=raw) as registry:
        assert "s3cret" not in registry.url and ":***@" in registry.url
        with pytest.raises(ModelNotFoundError) as caught:
            registry.get_version("missing")
    assert "s3cret" not in str(caught.value)
    assert f"in the registry at {url.render_as_string()}" in str(caught.value)


def test_unreachable_postgres_is_reported_with_the_masked_url(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://ana:s3cret@127.0.0.1:{port}/yard?connect_timeout=2"
    with pytest.raises(
        RegistryError,
        match=r"could not open the registry at "
        r"postgresql\+psycopg://ana:\*\*\*@127\.0\.0\.1",
    ) as caught:
        Registry.open(Settings(home=tmp_path), url=url)
    assert "s3cret" not in str(caught.value)


def test_package_exports_are_pinned_and_resolve() -> None:
    import modelyard.registry as package

    assert package.__all__ == sorted(package.__all__)
    assert package.__all__ == [
        "AliasChange",
        "ArtifactInput",
        "ArtifactRecord",
        "ArtifactStore",
        "AuditEntry",
        "LocalArtifactStore",
        "ModelRef",
        "ModelSummary",
        "ModelVersion",
        "Registry",
        "parse_ref",
    ]
    for name in package.__all__:
        assert getattr(package, name).__name__ == name
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        package.Nope  # noqa: B018
