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

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.errors import (
    IntegrityError,
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
)
from modelyard.registry.refs import ModelRef, check_alias
from modelyard.registry.versions import (
    _ALIAS_MOVES,
    Versions,
    _alias_version,
    _audit,
    _put_alias,
)

if TYPE_CHECKING:
    pass

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


# -- the registry -------------------------------------------------------------------


class Registry(Versions):
    """Versions, aliases and audit trail of models; open it with :meth:`Registry.open`.

    A registry holds a connection pool: close it with :meth:`close`, or use it in a
    ``with`` block. It is safe to use from several threads and processes at once.
    Versions and their artifacts come from :class:`~modelyard.registry.versions.Versions`;
    this class adds the aliases (promote, rollback, delete) and the audit trail.
    """

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
        change = run_write(
            self._engine,
            lambda conn: self._move_alias(
                conn,
                name,
                alias,
                version,
                actor=actor,
                reason=reason,
                allow_failed_gates=allow_failed_gates,
                corrupt=corrupt,
            ),
        )
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

    def _move_alias(
        self,
        conn: Connection,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        allow_failed_gates: bool = False,
        corrupt: list[str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> AliasChange:
        """The write of :meth:`set_alias`, in the caller's transaction ``conn`` (so a
        routing policy's change commits with the alias move or not at all). The caller
        has verified the artifacts (``corrupt``: the problems an override accepted);
        ``details`` go into the audit entry.
        """
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
        recorded: dict[str, Any] = {**(details or {}), "gates_passed": bool(row.gates_passed)}
        if override:
            recorded["allow_failed_gates"] = True
        if corrupt:
            recorded["allow_corrupt_artifacts"] = corrupt
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
            details=recorded,
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
