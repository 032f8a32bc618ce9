"""The model registry: numbered versions of named models, aliases, and an audit trail.

Metadata lives in a SQL database (SQLite by default, PostgreSQL by URL); artifact bytes
live in a content-addressed :class:`~modelyard.registry.store.ArtifactStore`. Versions
are numbered 1, 2, 3... per model, never reused, and never change once written. Aliases
(``production``, ``staging``...) point at versions; every move of an alias is recorded
in the audit log with who, when and why, and can be rolled back.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from modelyard.settings import Settings
    >>> registry = Registry.open(Settings(home=Path(tempfile.mkdtemp())))
    >>> v1 = registry.register_version(
    ...     "churn", artifacts={"model": ArtifactInput(b"...")}, spec={}, lineage={},
    ...     metrics={"roc_auc": 0.81}, report={}, gates_passed=True, actor="ana")
    >>> v1.ref
    'churn:1'
    >>> registry.set_alias("churn", "production", 1, actor="ana").to_version
    1
    >>> registry.get_version("churn@production").metrics
    {'roc_auc': 0.81}
    >>> registry.close()
"""

from __future__ import annotations

import difflib
import logging
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.errors import (
    IntegrityError,
    ModelNotFoundError,
    ModelyardError,
    PromotionRefused,
    RegistryError,
)
from modelyard.registry import db
from modelyard.registry.db import run_read, run_write
from modelyard.registry.records import (
    AliasChange,
    ArtifactInput,
    ArtifactRecord,
    AuditEntry,
    ModelSummary,
    ModelVersion,
    load_audit,
    load_versions,
)
from modelyard.registry.refs import ModelRef, check_alias, check_model_name, parse_ref
from modelyard.registry.store import ArtifactStore, LocalArtifactStore, sha256_hex
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.registry.lineage import Lineage

__all__ = [
    "AliasChange",
    "ArtifactInput",
    "ArtifactRecord",
    "AuditEntry",
    "ModelSummary",
    "ModelVersion",
    "Registry",
]

logger = logging.getLogger(__name__)

AuditAction = Literal["register", "promote", "rollback", "alias_delete", "add_artifact"]
_ALIAS_MOVES = ("promote", "rollback", "alias_delete")
_LIST_HINT = "run `modelyard models list` to see the models, versions and aliases"


# -- the registry -------------------------------------------------------------------


class Registry:
    """Versions, aliases and audit trail of models; open it with :meth:`Registry.open`.

    A registry holds a connection pool: close it with :meth:`close`, or use it in a
    ``with`` block. It is safe to use from several threads and processes at once.
    """

    def __init__(self, engine: Engine, store: ArtifactStore) -> None:
        self._engine = engine
        self._store = store

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        store: ArtifactStore | None = None,
    ) -> Registry:
        """Open (creating or upgrading its schema if needed) the registry.

        Args:
            settings: where the registry lives; default: read from ``MODELYARD_*``.
            url: a SQLAlchemy URL overriding ``settings.resolved_registry_url()``.
            store: where artifact bytes go; default: files under ``settings.artifact_root``.

        Raises:
            RegistryError: the database cannot be reached, or has a newer schema.
            ModelyardError: the URL is malformed or names an unsupported database.
        """
        settings = settings if settings is not None else Settings()
        engine = db.create_registry_engine(url or settings.resolved_registry_url())
        try:
            db.upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        if store is None:
            store = LocalArtifactStore(settings.artifact_root)
        return cls(engine, store)

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return db.mask_url(self._engine.url)

    @property
    def engine(self) -> Engine:
        """The database engine (for the registry's own modules, e.g. routing)."""
        return self._engine

    @property
    def store(self) -> ArtifactStore:
        """Where artifact bytes are kept."""
        return self._store

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry(url={self.url!r}, store={self._store!r})"

    # -- versions -------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        *,
        artifacts: dict[str, ArtifactInput],
        spec: dict[str, Any],
        lineage: Lineage | dict[str, Any],
        metrics: dict[str, Any],
        report: dict[str, Any],
        gates_passed: bool,
        actor: str,
        description: str = "",
    ) -> ModelVersion:
        """Record a new version of model ``name`` (creating the model on first use).

        ``lineage`` is a :class:`~modelyard.registry.lineage.Lineage` (stored with its
        ``schema_version``) or already-stored JSON, kept as given.

        The artifact bytes are stored first (content-addressed, so a failure later
        leaves nothing but harmless files); then one transaction takes the next version
        number, and writes the version, its artifacts and an audit entry. Concurrent
        registrations of one model get distinct, consecutive numbers.

        Returns:
            The new version, e.g. with ``ref == "churn:4"``.

        Raises:
            ModelyardError: ``name`` or an artifact role is malformed.
            RegistryError: a value is not plain JSON data, or the database failed; no
                version is recorded then.
        """
        check_model_name(name)
        if not isinstance(lineage, dict):
            lineage = lineage.to_stored()
        for role, artifact in artifacts.items():
            _check_role(role)
            if not isinstance(artifact.data, bytes):
                raise ModelyardError(
                    f"artifact {role!r}: data must be bytes, got {type(artifact.data).__name__}"
                )
        digests = {role: self._store.put(artifact.data) for role, artifact in artifacts.items()}

        def work(conn: Connection) -> int:
            now = db.utcnow()
            conn.execute(_insert_model_if_missing(conn, name, now))
            model_id, number = conn.execute(
                sa.update(db.models)
                .where(db.models.c.name == name)
                .values(last_version=db.models.c.last_version + 1)
                .returning(db.models.c.id, db.models.c.last_version)
            ).one()
            version_id = conn.execute(
                sa.insert(db.versions)
                .values(
                    model_id=model_id,
                    version=number,
                    created_at=now,
                    created_by=actor,
                    gates_passed=bool(gates_passed),
                    description=description,
                    spec=spec,
                    lineage=lineage,
                    metrics=metrics,
                    report=report,
                )
                .returning(db.versions.c.id)
            ).scalar_one()
            for role, artifact in artifacts.items():
                conn.execute(
                    sa.insert(db.artifacts).values(
                        version_id=version_id,
                        role=role,
                        digest=digests[role],
                        size=len(artifact.data),
                        media_type=artifact.media_type,
                        extra=artifact.extra,
                    )
                )
            _audit(
                conn,
                now,
                actor,
                "register",
                name,
                to_version=number,
                details={"gates_passed": bool(gates_passed), "artifacts": digests},
            )
            return int(number)

        number = run_write(self._engine, work)
        logger.info("registered %s:%d by %s", name, number, actor)
        return self.get_version(ModelRef(name, version=number))

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        """The version that ``ref`` names: ``name``, ``name:3``, ``name:latest``, ``name@alias``.

        Raises:
            ModelyardError: ``ref`` is not a model reference.
            ModelNotFoundError: no such model, version or alias; the message says what
                exists.
        """
        target = parse_ref(ref) if isinstance(ref, str) else ref

        def work(conn: Connection) -> ModelVersion:
            model_id = self._model_id(conn, target.name)
            number = self._resolve(conn, model_id, target)
            return load_versions(conn, model_id, target.name, number)[0]

        return run_read(self._engine, work)

    def list_models(self) -> list[ModelSummary]:
        """Every model, by name, with its latest version number and aliases."""

        def work(conn: Connection) -> list[ModelSummary]:
            alias_map: dict[int, dict[str, int]] = {}
            for model_id, alias, version in conn.execute(
                sa.select(db.aliases.c.model_id, db.aliases.c.alias, db.aliases.c.version).order_by(
                    db.aliases.c.alias
                )
            ):
                alias_map.setdefault(model_id, {})[alias] = version
            rows = conn.execute(sa.select(db.models).order_by(db.models.c.name)).all()
            return [
                ModelSummary(
                    name=row.name,
                    latest_version=row.last_version,
                    aliases=alias_map.get(row.id, {}),
                    created_at=row.created_at,
                )
                for row in rows
            ]

        return run_read(self._engine, work)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of model ``name``, oldest first.

        Raises:
            ModelNotFoundError: there is no such model.
        """

        def work(conn: Connection) -> list[ModelVersion]:
            return load_versions(conn, self._model_id(conn, name), name, None)

        return run_read(self._engine, work)

    def read_artifact(self, version: ModelVersion, role: str) -> bytes:
        """The bytes of ``version``'s artifact ``role``, checked against the recorded digest.

        Raises:
            ModelNotFoundError: the version has no artifact with that role.
            IntegrityError: the bytes are missing, or differ from what was registered.
        """
        record = version.artifacts.get(role)
        if record is None:
            roles = ", ".join(sorted(version.artifacts)) or "none"
            raise ModelNotFoundError(
                f"{version.ref} has no artifact {role!r}; its artifacts are: {roles}"
            )
        data = self._store.get(record.digest)
        actual = sha256_hex(data)
        if actual != record.digest or len(data) != record.size:
            where = self._store.path(record.digest) or self._store
            raise IntegrityError(
                f"artifact {role!r} of {version.ref} at {where} was modified or corrupted: "
                f"the registry recorded sha256 {record.digest} ({record.size} bytes), the "
                f"store returned sha256 {actual} ({len(data)} bytes); restore it from a backup"
            )
        return data

    def verify_artifacts(self, version: ModelVersion) -> list[str]:
        """The problems of ``version``'s stored artifacts: one line per missing or altered one.

        Every artifact is read back and hashed; an empty list means each one matches the
        digest and size the registry recorded.
        """
        problems = []
        for role in sorted(version.artifacts):
            try:
                self.read_artifact(version, role)
            except IntegrityError as error:
                problems.append(f"{role}: {error.message}")
        return problems

    def _check_integrity(
        self, name: str, version: int, *, action: str, allow_corrupt: bool, reason: str
    ) -> list[str]:
        """Refuse to point an alias at a version whose artifacts do not verify.

        Returns the problems found when ``allow_corrupt`` and a ``reason`` override them
        (recorded in the audit trail by the caller).

        Raises:
            IntegrityError: an artifact is missing or altered and there is no override.
        """
        target = self.get_version(ModelRef(name, version=version))
        problems = self.verify_artifacts(target)
        if problems and not (allow_corrupt and reason.strip()):
            lines = "\n".join(f"  - {problem}" for problem in problems)
            raise IntegrityError(
                f"refusing to {action} {name}:{version}: its stored artifacts do not match "
                f"the registry, so a server could not load it:\n{lines}\nRestore them, or "
                "pass --allow-corrupt-artifacts with --reason '...' (allow_corrupt=True, "
                "reason=...) to move the alias anyway; the override is audited"
            )
        return problems

    def add_artifact(
        self,
        version: ModelVersion,
        role: str,
        artifact: ArtifactInput,
        *,
        actor: str,
        replace: bool = False,
    ) -> ModelVersion:
        """Attach an artifact to an existing version (e.g. an ONNX export made later).

        The bytes are stored first (content-addressed); then one transaction records the
        artifact and an ``add_artifact`` audit entry. A version's other records never
        change.

        Args:
            version: the version to add to.
            role: the artifact's role, e.g. ``onnx``.
            artifact: its bytes, media type and extra data.
            actor: who adds it, for the audit trail.
            replace: replace an artifact the version already has in this role.

        Returns:
            The version as recorded now, with the new artifact.

        Raises:
            ModelyardError: ``role`` is malformed or the data is not bytes.
            ModelNotFoundError: no such version.
            RegistryError: the version already has an artifact ``role`` and ``replace``
                is False, or a value is not plain JSON data.
        """
        _check_role(role)
        if not isinstance(artifact.data, bytes):
            raise ModelyardError(
                f"artifact {role!r}: data must be bytes, got {type(artifact.data).__name__}"
            )
        digest = self._store.put(artifact.data)

        def work(conn: Connection) -> None:
            model_id = self._model_id(conn, version.name, lock=True)
            version_id = conn.execute(
                sa.select(db.versions.c.id).where(
                    db.versions.c.model_id == model_id,
                    db.versions.c.version == version.version,
                )
            ).scalar_one_or_none()
            if version_id is None:
                raise self._missing_version(conn, model_id, version.name, version.version)
            existing = conn.execute(
                sa.select(db.artifacts.c.id, db.artifacts.c.digest).where(
                    db.artifacts.c.version_id == version_id, db.artifacts.c.role == role
                )
            ).one_or_none()
            values = {
                "digest": digest,
                "size": len(artifact.data),
                "media_type": artifact.media_type,
                "extra": artifact.extra,
            }
            details: dict[str, Any] = {"role": role, "digest": digest}
            if existing is not None and not replace:
                raise RegistryError(
                    f"{version.ref} already has an artifact {role!r} (sha256 "
                    f"{existing.digest}); pass replace=True (--force) to replace it"
                )
            if existing is not None:
                conn.execute(
                    sa.update(db.artifacts).where(db.artifacts.c.id == existing.id).values(**values)
                )
                details["replaced"] = existing.digest
            else:
                conn.execute(
                    sa.insert(db.artifacts).values(version_id=version_id, role=role, **values)
                )
            _audit(
                conn,
                db.utcnow(),
                actor,
                "add_artifact",
                version.name,
                to_version=version.version,
                details=details,
            )

        run_write(self._engine, work)
        logger.info("added artifact %s to %s by %s", role, version.ref, actor)
        return self.get_version(ModelRef(version.name, version=version.version))

    # -- aliases --------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        allow_failed_gates: bool = False,
        allow_corrupt: bool = False,
    ) -> AliasChange:
        """Point ``name@alias`` at ``version`` ("promote"), recording it in the audit log.

        Setting an alias to the version it already points to changes nothing and writes
        no audit entry.

        Raises:
            ModelyardError: ``alias`` is not a valid alias name.
            ModelNotFoundError: no such model or version.
            PromotionRefused: the version failed its gates, and ``allow_failed_gates``
                was not given together with a ``reason``.
            IntegrityError: an artifact of the version is missing or altered, and
                ``allow_corrupt`` was not given together with a ``reason``.
        """
        check_alias(alias)
        # Verified before the write transaction: hashing artifacts can take a while, and an
        # artifact's bytes never change once registered (content-addressed store).
        corrupt = self._check_integrity(
            name, version, action="promote", allow_corrupt=allow_corrupt, reason=reason
        )

        def work(conn: Connection) -> AliasChange:
            model_id = self._model_id(conn, name, lock=True)
            row = conn.execute(
                sa.select(db.versions.c.gates_passed).where(
                    db.versions.c.model_id == model_id, db.versions.c.version == version
                )
            ).one_or_none()
            if row is None:
                raise self._missing_version(conn, model_id, name, version)
            override = not row.gates_passed
            if override and not (allow_failed_gates and reason.strip()):
                missing = "" if not allow_failed_gates else " (the override has no reason)"
                raise PromotionRefused(
                    f"refusing to point {name}@{alias} at {name}:{version}: that version "
                    f"failed its evaluation gates{missing}; see its report. To promote it "
                    "anyway, pass --allow-failed-gates together with --reason '...' "
                    "(allow_failed_gates=True, reason=...); the override is audited"
                )
            current = _alias_version(conn, model_id, alias)
            if current == version:
                return AliasChange(name, alias, "promote", current, version, actor, reason)
            now = db.utcnow()
            _put_alias(conn, model_id, alias, version, now, actor, exists=current is not None)
            details: dict[str, Any] = {"gates_passed": bool(row.gates_passed)}
            if override:
                details["allow_failed_gates"] = True
            if corrupt:
                details["allow_corrupt_artifacts"] = corrupt
            audit_id = _audit(
                conn,
                now,
                actor,
                "promote",
                name,
                alias=alias,
                from_version=current,
                to_version=version,
                reason=reason,
                details=details,
            )
            return AliasChange(
                name,
                alias,
                "promote",
                current,
                version,
                actor,
                reason,
                override=override or bool(corrupt),
                audit_id=audit_id,
            )

        change = run_write(self._engine, work)
        if change.override:
            logger.warning(
                "%s@%s -> %d despite failed gates or altered artifacts, by %s: %s",
                name,
                alias,
                version,
                actor,
                reason,
            )
        return change

    def rollback(
        self,
        name: str,
        alias: str = "production",
        *,
        actor: str,
        reason: str = "",
        allow_corrupt: bool = False,
    ) -> AliasChange:
        """Undo the latest move of ``name@alias``: point it back where it was before.

        Rollbacks stack like "undo": after moves 1 -> 2 -> 3, a rollback goes to 2, a
        second rollback to 1, a third fails. A deleted alias is restored.

        Raises:
            ModelNotFoundError: no such model.
            RegistryError: the alias has no earlier version to go back to.
            IntegrityError: an artifact of the version rolled back to is missing or
                altered, and ``allow_corrupt`` was not given together with a ``reason``.
        """
        check_alias(alias)
        # Find the target first and verify its artifacts outside the write transaction;
        # the write then checks that the alias history has not moved meanwhile.
        planned = run_read(self._engine, lambda conn: self._rollback_target(conn, name, alias))
        corrupt = self._check_integrity(
            name, planned[1], action="roll back to", allow_corrupt=allow_corrupt, reason=reason
        )

        def work(conn: Connection) -> AliasChange:
            model_id = self._model_id(conn, name, lock=True)
            undone, target = self._rollback_target(conn, name, alias)
            if (undone, target) != planned:
                raise RegistryError(
                    f"{name}@{alias} moved while its rollback was being checked; run the "
                    "rollback again"
                )
            current = _alias_version(conn, model_id, alias)
            now = db.utcnow()
            _put_alias(conn, model_id, alias, target, now, actor, exists=current is not None)
            audit_id = _audit(
                conn,
                now,
                actor,
                "rollback",
                name,
                alias=alias,
                from_version=current,
                to_version=target,
                reason=reason,
                details={"undoes": undone}
                | ({"allow_corrupt_artifacts": corrupt} if corrupt else {}),
            )
            return AliasChange(
                name,
                alias,
                "rollback",
                current,
                target,
                actor,
                reason,
                override=bool(corrupt),
                audit_id=audit_id,
            )

        change = run_write(self._engine, work)
        logger.info(
            "rolled back %s@%s from %s to %s, by %s",
            name,
            alias,
            change.from_version,
            change.to_version,
            actor,
        )
        return change

    def _rollback_target(self, conn: Connection, name: str, alias: str) -> tuple[int, int]:
        """The audit id of the move a rollback of ``name@alias`` undoes, and its target."""
        self._model_id(conn, name)
        moves = conn.execute(
            sa.select(db.audit.c.id, db.audit.c.action, db.audit.c.from_version)
            .where(
                db.audit.c.model == name,
                db.audit.c.alias == alias,
                db.audit.c.action.in_(_ALIAS_MOVES),
            )
            .order_by(db.audit.c.id)
        ).all()
        undoable: list[Any] = []
        for move in moves:
            if move.action == "rollback":
                if undoable:
                    undoable.pop()
            else:
                undoable.append(move)
        if not undoable or undoable[-1].from_version is None:
            history = "it was never set" if not moves else "no earlier version is recorded"
            raise RegistryError(
                f"cannot roll back {name}@{alias}: {history}; point the alias at a "
                "version explicitly instead (promote)"
            )
        return int(undoable[-1].id), int(undoable[-1].from_version)

    def delete_alias(self, name: str, alias: str, *, actor: str, reason: str = "") -> AliasChange:
        """Remove ``name@alias``, recording it in the audit log (a rollback restores it).

        Raises:
            ModelNotFoundError: no such model or alias.
        """
        check_alias(alias)

        def work(conn: Connection) -> AliasChange:
            model_id = self._model_id(conn, name, lock=True)
            current = _alias_version(conn, model_id, alias)
            if current is None:
                raise self._missing_alias(conn, model_id, name, alias)
            conn.execute(
                sa.delete(db.aliases).where(
                    db.aliases.c.model_id == model_id, db.aliases.c.alias == alias
                )
            )
            audit_id = _audit(
                conn,
                db.utcnow(),
                actor,
                "alias_delete",
                name,
                alias=alias,
                from_version=current,
                reason=reason,
            )
            return AliasChange(
                name, alias, "alias_delete", current, None, actor, reason, audit_id=audit_id
            )

        return run_write(self._engine, work)

    def audit_log(self, name: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` audit entries, newest first; of one model if ``name``.

        Raises:
            ModelNotFoundError: ``name`` is given and there is no such model.
        """

        def work(conn: Connection) -> list[AuditEntry]:
            query = sa.select(db.audit).order_by(db.audit.c.id.desc()).limit(limit)
            if name is not None:
                self._model_id(conn, name)
                query = query.where(db.audit.c.model == name)
            return load_audit(conn.execute(query))

        return run_read(self._engine, work)

    # -- lookups --------------------------------------------------------------------

    def _model_id(self, conn: Connection, name: str, *, lock: bool = False) -> int:
        """The id of model ``name``; ``lock`` row-locks it (PostgreSQL) for alias changes."""
        query = sa.select(db.models.c.id).where(db.models.c.name == name)
        model_id = conn.execute(query.with_for_update() if lock else query).scalar_one_or_none()
        if model_id is None:
            names = list(conn.execute(sa.select(db.models.c.name)).scalars())
            close = difflib.get_close_matches(name, names, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ModelNotFoundError(
                f"no model {name!r} in the registry at {self.url}.{hint} {_LIST_HINT}"
            )
        return int(model_id)

    def _resolve(self, conn: Connection, model_id: int, ref: ModelRef) -> int:
        """The version number ``ref`` stands for."""
        if ref.alias is not None:
            number = _alias_version(conn, model_id, ref.alias)
            if number is None:
                raise self._missing_alias(conn, model_id, ref.name, ref.alias)
            return number
        latest = conn.execute(
            sa.select(sa.func.max(db.versions.c.version)).where(db.versions.c.model_id == model_id)
        ).scalar_one_or_none()
        if latest is None:
            raise ModelNotFoundError(
                f"model {ref.name!r} has no versions in the registry at {self.url}; {_LIST_HINT}"
            )
        if ref.version is None:
            return int(latest)
        if ref.version > latest:
            raise self._missing_version(conn, model_id, ref.name, ref.version)
        return ref.version

    def _missing_version(
        self, conn: Connection, model_id: int, name: str, version: int
    ) -> ModelNotFoundError:
        numbers = list(
            conn.execute(
                sa.select(db.versions.c.version).where(db.versions.c.model_id == model_id)
            ).scalars()
        )
        have = f"versions {min(numbers)} to {max(numbers)}" if numbers else "no versions"
        return ModelNotFoundError(
            f"model {name!r} has no version {version} in the registry at {self.url} "
            f"(it has {have}); {_LIST_HINT}"
        )

    def _missing_alias(
        self, conn: Connection, model_id: int, name: str, alias: str
    ) -> ModelNotFoundError:
        existing = conn.execute(
            sa.select(db.aliases.c.alias, db.aliases.c.version)
            .where(db.aliases.c.model_id == model_id)
            .order_by(db.aliases.c.alias)
        ).all()
        have = (
            "its aliases are: " + ", ".join(f"{a} -> {name}:{v}" for a, v in existing)
            if existing
            else "it has no aliases yet"
        )
        return ModelNotFoundError(
            f"model {name!r} has no alias {alias!r} in the registry at {self.url}; {have}; "
            f"{_LIST_HINT}"
        )


# -- helpers ------------------------------------------------------------------------


def _check_role(role: str) -> None:
    if not isinstance(role, str) or not role or len(role) > 100 or not role[0].isalpha():
        raise ModelyardError(
            f"artifact role {role!r} is not valid: use a short name starting with a letter, "
            "e.g. 'model', 'snapshot', 'eval_predictions', 'onnx'"
        )


def _insert_model_if_missing(conn: Connection, name: str, now: datetime) -> Any:
    values = {"name": name, "created_at": now, "last_version": 0}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(db.models).values(**values).on_conflict_do_nothing(index_elements=["name"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(db.models).values(**values).on_conflict_do_nothing(index_elements=["name"])


def _alias_version(conn: Connection, model_id: int, alias: str) -> int | None:
    number = conn.execute(
        sa.select(db.aliases.c.version).where(
            db.aliases.c.model_id == model_id, db.aliases.c.alias == alias
        )
    ).scalar_one_or_none()
    return None if number is None else int(number)


def _put_alias(
    conn: Connection,
    model_id: int,
    alias: str,
    version: int,
    now: datetime,
    actor: str,
    *,
    exists: bool,
) -> None:
    values = {"version": version, "updated_at": now, "updated_by": actor}
    if exists:
        conn.execute(
            sa.update(db.aliases)
            .where(db.aliases.c.model_id == model_id, db.aliases.c.alias == alias)
            .values(**values)
        )
    else:
        conn.execute(sa.insert(db.aliases).values(model_id=model_id, alias=alias, **values))


def _audit(
    conn: Connection,
    at: datetime,
    actor: str,
    action: AuditAction,
    model: str,
    *,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> int:
    audit_id = conn.execute(
        sa.insert(db.audit)
        .values(
            at=at,
            actor=actor,
            action=action,
            model=model,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            reason=reason,
            details=details or {},
        )
        .returning(db.audit.c.id)
    ).scalar_one()
    return int(audit_id)
