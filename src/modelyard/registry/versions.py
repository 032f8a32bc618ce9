"""The registry's versions: numbered versions of named models and their checked artifacts.

:class:`Versions` is the base of :class:`~modelyard.registry.registry.Registry`, which
adds aliases and the audit trail; the lookups and row helpers here serve both.
"""

from __future__ import annotations

import difflib
import logging
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.errors import (
    IntegrityError,
    ModelNotFoundError,
    ModelyardError,
    RegistryError,
)
from modelyard.registry import db
from modelyard.registry.db import run_read, run_write
from modelyard.registry.records import (
    ArtifactInput,
    ModelSummary,
    ModelVersion,
    load_versions,
)
from modelyard.registry.refs import ModelRef, check_model_name, parse_ref
from modelyard.registry.store import ArtifactStore, LocalArtifactStore, sha256_hex
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.registry.lineage import Lineage

__all__ = ["Versions"]

logger = logging.getLogger(__name__)

AuditAction = Literal["register", "promote", "rollback", "alias_delete", "add_artifact"]
_ALIAS_MOVES = ("promote", "rollback", "alias_delete")
_LIST_HINT = "run `modelyard models list` to see the models, versions and aliases"


# -- the registry -------------------------------------------------------------------


class Versions:
    """Numbered versions of named models and their artifacts: the base of :class:`Registry`.

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
    ) -> Self:
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

    def __enter__(self) -> Self:
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
