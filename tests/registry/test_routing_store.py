"""Routing policies in the registry: validated, resolved, revised and audited in one
transaction; a canary rollback or promotion only applies to the revision it was decided
on, and a promotion moves the production alias in the same transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from modelyard.errors import ModelNotFoundError, ModelyardError, PromotionRefused
from modelyard.registry import Registry, db
from modelyard.registry.routing import (
    clear_policy,
    get_policy,
    list_policies,
    promote_canary,
    record_event,
    rollback_canary,
    routing_events,
    set_policy,
)


def test_set_policy_resolves_refs_bumps_revision_and_audits(registry: Registry, register) -> None:  # type: ignore[no-untyped-def]
    register("houses")
    register("houses")
    registry.set_alias("houses", "candidate", 2, actor="ana", reason="try")
    first = set_policy(
        registry, "houses", {"shadow": {"ref": "houses@candidate"}}, actor="ana", reason="shadow"
    )
    assert first.revision == 1 and first.resolved == {"shadow": "houses:2"}
    second = set_policy(
        registry,
        "houses",
        {
            "canary": {"ref": "houses:2", "share": 0.2, "sticky": True},
            "fallback": {"ref": "houses:1"},
        },
        actor="bo",
        reason="canary at 20%",
    )
    assert second.revision == 2
    stored = get_policy(registry, "houses")
    assert stored is not None and stored.policy.canary is not None
    assert stored.policy.canary.share == 0.2 and stored.resolved["fallback"] == "houses:1"
    assert [p.model for p in list_policies(registry)] == ["houses"]
    events = routing_events(registry, "houses")
    assert [(e.action, e.actor, e.reason, e.revision) for e in events] == [
        ("set", "bo", "canary at 20%", 2),
        ("set", "ana", "shadow", 1),
    ]
    assert events[0].details["previous"] == {
        "shadow": {
            "ref": "houses@candidate",
            "sample": 1.0,
            "timeout_ms": 2000.0,
            "max_in_flight": 64,
            "batch_ms": 20.0,
            "idle": False,
        }
    }


def test_composite_lineage_names_its_parts(registry: Registry, register) -> None:  # type: ignore[no-untyped-def]
    register("quality")
    register("engagement")
    record = set_policy(
        registry,
        "quality",
        {
            "composite": {
                "parts": [
                    {"ref": "quality", "weight": "alpha", "default": 0.7},
                    {"ref": "engagement", "weight": "beta", "default": 0.3},
                ]
            }
        },
        actor="ana",
        reason="blend",
    )
    assert record.resolved == {"part:alpha": "quality:1", "part:beta": "engagement:1"}
    assert routing_events(registry, "quality")[0].details["resolved"] == record.resolved


@pytest.mark.parametrize(
    ("policy", "error", "match"),
    [
        ({"shadow": {"ref": "houses:9"}}, ModelNotFoundError, "shadow"),
        ({"shadow": {"ref": "other:1"}}, ModelyardError, "another model"),
        ({"canary": {"ref": "houses:1", "share": 1.5}}, ModelyardError, "canary.share"),
        ({"shadows": {"ref": "houses:1"}}, ModelyardError, "shadows"),
    ],
)
def test_bad_policies_are_refused_and_nothing_is_written(  # type: ignore[no-untyped-def]
    registry: Registry, register, policy, error, match
) -> None:
    register("houses")
    register("other")
    with pytest.raises(error, match=match):
        set_policy(registry, "houses", policy, actor="ana", reason="x")
    assert get_policy(registry, "houses") is None and routing_events(registry) == []


def test_a_reason_is_required(registry: Registry, register) -> None:  # type: ignore[no-untyped-def]
    register("houses")
    with pytest.raises(ModelyardError, match="reason"):
        set_policy(registry, "houses", {"shadow": {"ref": "houses:1"}}, actor="ana", reason=" ")


def test_rollback_applies_only_to_its_revision(registry: Registry, register) -> None:  # type: ignore[no-untyped-def]
    register("houses")
    register("houses")
    policy = {"canary": {"ref": "houses:2", "share": 0.5}, "shadow": {"ref": "houses:2"}}
    record = set_policy(registry, "houses", policy, actor="ana", reason="canary")
    stats = {"requests": 60, "errors": 12}
    assert (
        rollback_canary(
            registry,
            "houses",
            revision=record.revision + 5,
            actor="server",
            reason="x",
            statistics=stats,
        )
        is None
    )
    rolled = rollback_canary(
        registry,
        "houses",
        revision=record.revision,
        actor="server",
        reason="errors",
        statistics=stats,
    )
    assert rolled is not None and rolled.policy.canary is None and rolled.policy.shadow is not None
    assert "canary" not in rolled.resolved
    event = routing_events(registry, "houses")[0]
    assert (event.action, event.details["statistics"], event.details["canary_version"]) == (
        "rollback",
        stats,
        "houses:2",
    )
    # decided twice (two servers): the second finds the canary gone and writes nothing
    assert (
        rollback_canary(
            registry,
            "houses",
            revision=rolled.revision,
            actor="server",
            reason="x",
            statistics=stats,
        )
        is None
    )
    assert len(routing_events(registry, "houses")) == 2


def test_clear_and_decisions_are_audited(registry: Registry, register) -> None:  # type: ignore[no-untyped-def]
    register("houses")
    set_policy(registry, "houses", {"shadow": {"ref": "houses:1"}}, actor="ana", reason="s")
    record_event(
        registry, "houses", "decision", actor="ab-test", reason="winner", details={"p": 0.01}
    )
    assert clear_policy(registry, "houses", actor="ana", reason="done")
    assert not clear_policy(registry, "houses", actor="ana", reason="again")
    assert [e.action for e in routing_events(registry, "houses")] == ["clear", "decision", "set"]
    with registry.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(db.routing_policies)).scalar() == 0
        )


def test_revisions_only_grow_across_a_clear(registry: Registry, register) -> None:  # type: ignore[no-untyped-def]
    register("houses")
    set_policy(registry, "houses", {"shadow": {"ref": "houses:1"}}, actor="a", reason="s")
    clear_policy(registry, "houses", actor="a", reason="c")
    again = set_policy(registry, "houses", {"shadow": {"ref": "houses:1"}}, actor="a", reason="s")
    assert again.revision == 3  # a server that saw revision 1 notices the change


def test_promotion_moves_the_alias_and_ends_the_canary_in_one_audited_write(  # type: ignore[no-untyped-def]
    registry: Registry, register
) -> None:
    register("houses")
    register("houses")
    registry.set_alias("houses", "production", 1, actor="ana", reason="first")
    policy = {"canary": {"ref": "houses:2", "share": 0.5}, "shadow": {"ref": "houses:2"}}
    record = set_policy(registry, "houses", policy, actor="ana", reason="canary")
    stats = {"ab_test": {"decision": "winner", "p_value": 0.001}}
    stale = promote_canary(
        registry, "houses", revision=record.revision + 1, actor="s", reason="x", statistics=stats
    )
    assert stale is None and registry.get_version("houses@production").version == 1
    promoted = promote_canary(
        registry, "houses", revision=record.revision, actor="server", reason="won", statistics=stats
    )
    assert promoted is not None
    new_policy, change = promoted
    assert new_policy.policy.canary is None and new_policy.resolved == {"shadow": "houses:2"}
    assert (change.from_version, change.to_version) == (1, 2)
    assert registry.get_version("houses@production").version == 2
    [move, *_] = registry.audit_log("houses")
    assert (move.action, move.actor, move.reason, move.alias) == (
        "promote",
        "server",
        "won",
        "production",
    )
    assert move.details["statistics"] == stats
    event = routing_events(registry, "houses")[0]
    assert (event.action, event.revision, event.details["audit_id"]) == (
        "promote",
        record.revision + 1,
        change.audit_id,
    )
    assert event.details["statistics"] == stats and event.details["canary_version"] == "houses:2"
    # an alias move like any other: `modelyard rollback` undoes it
    assert registry.rollback("houses", actor="ana", reason="undo").to_version == 1


def test_a_canary_that_failed_its_gates_is_never_promoted(  # type: ignore[no-untyped-def]
    registry: Registry, register
) -> None:
    register("houses")
    register("houses", gates_passed=False)
    registry.set_alias("houses", "production", 1, actor="ana", reason="first")
    record = set_policy(
        registry, "houses", {"canary": {"ref": "houses:2", "share": 0.5}}, actor="a", reason="c"
    )
    with pytest.raises(PromotionRefused, match="failed its evaluation gates"):
        promote_canary(
            registry, "houses", revision=record.revision, actor="s", reason="won", statistics={}
        )
    stored = get_policy(registry, "houses")
    assert stored is not None and stored.revision == record.revision  # nothing written
    assert stored.policy.canary is not None
    assert registry.get_version("houses@production").version == 1
    assert [e.action for e in routing_events(registry, "houses")] == ["set"]
