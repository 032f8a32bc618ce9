"""Routing policies in the registry, and the audit trail of their changes and decisions.

One :class:`~modelyard.experiments.policy.RoutingPolicy` per model name. Storing one
checks that every version it names exists, records what each reference resolved to
(the composite's lineage names its parts), bumps the policy's ``revision`` (servers
poll it and reload without a restart) and writes an audit event, all in one
transaction. Decisions a server takes (a canary rolled back, say) are events too, with
their statistics.

Example:
    >>> from modelyard.registry import Registry
    >>> with Registry.open() as registry:  # doctest: +SKIP
    ...     set_policy(registry, "houses", {"shadow": {"ref": "houses:2"}},
    ...                actor="ana", reason="try v2 on live traffic")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.errors import ModelNotFoundError, ModelyardError, RegistryError
from modelyard.experiments.policy import RoutingPolicy, parse_policy
from modelyard.registry import db
from modelyard.registry.db import run_read, run_write, utcnow
from modelyard.registry.refs import check_model_name, parse_ref

if TYPE_CHECKING:
    from modelyard.registry.records import AliasChange
    from modelyard.registry.registry import Registry

__all__ = [
    "PolicyRecord",
    "RoutingEvent",
    "clear_policy",
    "get_policy",
    "list_policies",
    "promote_canary",
    "record_event",
    "rollback_canary",
    "routing_events",
    "set_policy",
]

EventAction = Literal["set", "clear", "rollback", "promote", "decision"]


@dataclass(frozen=True)
class PolicyRecord:
    """A stored policy: its revision, what its references resolved to, who set it."""

    model: str
    revision: int
    policy: RoutingPolicy
    resolved: dict[str, str]
    updated_at: datetime
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "model": self.model,
            "revision": self.revision,
            "policy": self.policy.model_dump(mode="json", exclude_none=True),
            "resolved": self.resolved,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class RoutingEvent:
    """One audit entry of routing: who or what, when, which action, why, the statistics."""

    id: int
    at: datetime
    actor: str
    action: str
    model: str
    revision: int | None
    reason: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "model": self.model,
            "revision": self.revision,
            "reason": self.reason,
            "details": self.details,
        }


def set_policy(
    registry: Registry, name: str, policy: object, *, actor: str, reason: str
) -> PolicyRecord:
    """Store ``policy`` for model ``name`` (replacing any), audited.

    Raises:
        ModelyardError: the policy is malformed, names another model's version where
            that is not allowed, or no reason is given.
        ModelNotFoundError: a version it names does not exist.
    """
    check_model_name(name)
    parsed = policy if isinstance(policy, RoutingPolicy) else parse_policy(policy)
    if not reason.strip():
        raise ModelyardError(
            "changing a routing policy needs a reason (--reason '...'); it goes in the audit log"
        )
    resolved = _resolve(registry, name, parsed)
    data = parsed.model_dump(mode="json", exclude_none=True)

    def work(conn: Connection) -> PolicyRecord:
        now = utcnow()
        current = _row(conn, name, lock=True)
        # Revisions only grow, across a clear too: a server compares them to notice a change.
        last = conn.execute(
            sa.select(sa.func.max(db.routing_events.c.revision)).where(
                db.routing_events.c.model == name
            )
        ).scalar()
        revision = max(current.revision if current is not None else 0, last or 0) + 1
        values = {
            "revision": revision,
            "policy": data,
            "resolved": resolved,
            "updated_at": now,
            "updated_by": actor,
        }
        if current is None:
            conn.execute(sa.insert(db.routing_policies).values(model=name, **values))
        else:
            conn.execute(
                sa.update(db.routing_policies)
                .where(db.routing_policies.c.model == name)
                .values(**values)
            )
        details = {"policy": data, "resolved": resolved}
        if current is not None:
            details["previous"] = current.policy.model_dump(mode="json", exclude_none=True)
        _event(conn, now, actor, "set", name, revision, reason, details)
        return PolicyRecord(name, revision, parsed, resolved, now, actor)

    return run_write(registry.engine, work)


def clear_policy(registry: Registry, name: str, *, actor: str, reason: str) -> bool:
    """Remove the policy of ``name`` (the primary alone answers again); audited.

    Returns:
        Whether there was a policy to remove.
    """

    def work(conn: Connection) -> bool:
        current = _row(conn, name, lock=True)
        if current is None:
            return False
        conn.execute(sa.delete(db.routing_policies).where(db.routing_policies.c.model == name))
        details = {"previous": current.policy.model_dump(mode="json", exclude_none=True)}
        _event(conn, utcnow(), actor, "clear", name, current.revision + 1, reason, details)
        return True

    return run_write(registry.engine, work)


def rollback_canary(
    registry: Registry,
    name: str,
    *,
    revision: int,
    actor: str,
    reason: str,
    statistics: dict[str, Any],
) -> PolicyRecord | None:
    """Remove the canary of ``name``'s policy, if it is still at ``revision``; audited
    with the ``statistics`` that decided it.

    Returns:
        The new policy, or None when the policy had changed meanwhile (someone else
        decided first; nothing is written).
    """

    def work(conn: Connection) -> PolicyRecord | None:
        current = _canary_at(conn, name, revision)
        if current is None:
            return None
        return _end_canary(
            conn,
            current,
            actor=actor,
            action="rollback",
            reason=reason,
            details={},
            statistics=statistics,
        )

    return run_write(registry.engine, work)


def promote_canary(
    registry: Registry,
    name: str,
    *,
    revision: int,
    actor: str,
    reason: str,
    statistics: dict[str, Any],
    alias: str = "production",
) -> tuple[PolicyRecord, AliasChange] | None:
    """Promote the canary of ``name``'s policy, if it is still at ``revision``: point
    ``name@alias`` at it and end the canary, in one transaction, audited twice with the
    ``statistics`` that decided it (the alias move in the registry's audit log, undone
    by ``modelyard rollback``; the promotion among the routing events).

    Returns:
        The new policy and the alias change, or None when the policy had changed
        meanwhile (someone else decided first; nothing is written).

    Raises:
        PromotionRefused: the canary's version failed its evaluation gates (an
            automatic promotion never overrides them).
        IntegrityError: an artifact of the canary's version is missing or altered.
    """
    planned = get_policy(registry, name)
    if planned is None or planned.revision != revision or "canary" not in planned.resolved:
        return None
    target = parse_ref(planned.resolved["canary"])
    assert target.version is not None  # resolved references are NAME:VERSION
    # Checked before the write transaction, as a promotion by hand does (hashing takes a
    # while; a registered artifact's bytes never change).
    registry._check_integrity(
        name, target.version, action="promote", allow_corrupt=False, reason=reason
    )

    def work(conn: Connection) -> tuple[PolicyRecord, AliasChange] | None:
        current = _canary_at(conn, name, revision)
        if current is None:
            return None
        assert target.version is not None
        change = registry._move_alias(
            conn,
            name,
            alias,
            target.version,
            actor=actor,
            reason=reason,
            details={"routing_revision": revision + 1, "statistics": statistics},
        )
        record = _end_canary(
            conn,
            current,
            actor=actor,
            action="promote",
            reason=reason,
            details={
                "alias": alias,
                "from_version": change.from_version,
                "to_version": change.to_version,
                "audit_id": change.audit_id,
            },
            statistics=statistics,
        )
        return record, change

    return run_write(registry.engine, work)


def record_event(
    registry: Registry,
    name: str,
    action: EventAction,
    *,
    actor: str,
    reason: str,
    details: dict[str, Any],
    revision: int | None = None,
) -> int:
    """Write one audit event (a decision taken on live traffic, say); returns its id."""
    return run_write(
        registry.engine,
        lambda conn: _event(conn, utcnow(), actor, action, name, revision, reason, details),
    )


def get_policy(registry: Registry, name: str) -> PolicyRecord | None:
    """The policy of model ``name``, or None."""
    return run_read(registry.engine, lambda conn: _row(conn, name))


def list_policies(registry: Registry) -> list[PolicyRecord]:
    """Every stored policy, by model name."""

    def work(conn: Connection) -> list[PolicyRecord]:
        rows = conn.execute(sa.select(db.routing_policies).order_by(db.routing_policies.c.model))
        return [_record(row) for row in rows.mappings()]

    return run_read(registry.engine, work)


def routing_events(
    registry: Registry, name: str | None = None, *, limit: int = 100
) -> list[RoutingEvent]:
    """The newest ``limit`` routing events, newest first; of one model if ``name``."""

    def work(conn: Connection) -> list[RoutingEvent]:
        table = db.routing_events
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        if name is not None:
            query = query.where(table.c.model == name)
        return [RoutingEvent(**dict(row)) for row in conn.execute(query).mappings()]

    return run_read(registry.engine, work)


def _resolve(registry: Registry, name: str, policy: RoutingPolicy) -> dict[str, str]:
    """What each reference of ``policy`` points to now, as ``name:version`` by role.

    Shadow, canary and fallback must be versions of ``name`` itself (they answer its
    requests with its input contract); a composite's parts may be other models.
    """
    resolved = {}
    for role, text in policy.refs().items():
        ref = parse_ref(text)
        if not role.startswith("part:") and ref.name != name:
            raise ModelyardError(
                f"the {role} of {name!r} is {text!r}, a version of another model; give a "
                f"version of {name!r} (e.g. '{name}:2' or '{name}@candidate')"
            )
        try:
            version = registry.get_version(ref)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(f"routing policy of {name!r}, {role}: {exc}") from None
        resolved[role] = version.ref
    return resolved


def _canary_at(conn: Connection, name: str, revision: int) -> PolicyRecord | None:
    """The policy of ``name``, locked, if it is still at ``revision`` with a canary (a
    decision applies only to the revision it was taken on)."""
    current = _row(conn, name, lock=True)
    if current is None or current.revision != revision or current.policy.canary is None:
        return None
    return current


def _end_canary(
    conn: Connection,
    current: PolicyRecord,
    *,
    actor: str,
    action: EventAction,
    reason: str,
    details: dict[str, Any],
    statistics: dict[str, Any],
) -> PolicyRecord:
    """Store ``current`` without its canary (ended by ``action``) at the next revision,
    and write the event with the canary and the ``statistics``."""
    policy = current.policy.model_copy(update={"canary": None})
    now = utcnow()
    name, revision = current.model, current.revision + 1
    resolved = {k: v for k, v in current.resolved.items() if k in policy.refs()}
    conn.execute(
        sa.update(db.routing_policies)
        .where(db.routing_policies.c.model == name)
        .values(
            revision=revision,
            policy=policy.model_dump(mode="json", exclude_none=True),
            resolved=resolved,
            updated_at=now,
            updated_by=actor,
        )
    )
    canary = current.policy.canary
    details = {
        **details,
        "canary": canary.model_dump(mode="json") if canary else {},
        "canary_version": current.resolved.get("canary"),
        "statistics": statistics,
    }
    _event(conn, now, actor, action, name, revision, reason, details)
    return PolicyRecord(name, revision, policy, resolved, now, actor)


def _row(conn: Connection, name: str, *, lock: bool = False) -> PolicyRecord | None:
    query = sa.select(db.routing_policies).where(db.routing_policies.c.model == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return _record(row) if row is not None else None


def _record(row: Any) -> PolicyRecord:
    try:
        policy = parse_policy(row["policy"])
    except ModelyardError as exc:  # written by a newer modelyard, say
        raise RegistryError(
            f"the stored routing policy of {row['model']!r} cannot be read: {exc}; "
            "set it again with `modelyard experiments set`"
        ) from None
    return PolicyRecord(
        model=row["model"],
        revision=int(row["revision"]),
        policy=policy,
        resolved=dict(row["resolved"]),
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _event(
    conn: Connection,
    at: datetime,
    actor: str,
    action: EventAction,
    model: str,
    revision: int | None,
    reason: str,
    details: dict[str, Any],
) -> int:
    event_id = conn.execute(
        sa.insert(db.routing_events)
        .values(
            at=at,
            actor=actor,
            action=action,
            model=model,
            revision=revision,
            reason=reason,
            details=details,
        )
        .returning(db.routing_events.c.id)
    ).scalar_one()
    return int(event_id)
