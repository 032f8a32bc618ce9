"""The experiments page: live experiments per model, their allocation, statistics and
decisions.

=======================  ==========================================================
route                    page
=======================  ==========================================================
``GET /experiments``     each model with a routing policy: its kind (shadow, canary,
                         A/B test, bandit, interleaving, fallback, composite), its
                         arms and their allocation, the live statistics, and its
                         decisions (the routing audit events, newest first)
=======================  ==========================================================

The data is what ``modelyard experiments list|events`` print, read by the same code
(:mod:`modelyard.serving.experiments_view`): the stored policies and audit events from
the registry, and, when ``MODELYARD_UI_SERVER_URL`` names a running server, its
``GET /v1/experiments`` (per-arm requests, errors, latency and rewards, the shadow's
differential test, the mSPRT verdict, the bandit's allocation and estimated regret, the
interleaving preference). Nothing is computed again here: the page only arranges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from modelyard.errors import ServerFault
from modelyard.ui.pages import Pages

if TYPE_CHECKING:
    from modelyard.registry.routing import PolicyRecord, RoutingEvent
    from modelyard.serving.experiments_view import StoredExperiment

__all__ = ["router"]

#: Decisions (audit events) shown per model.
EVENTS_SHOWN = 20

_KINDS = ("shadow", "canary", "bandit", "interleave", "fallback", "composite")


@dataclass
class ArmRow:
    """One arm of an experiment: its version, its allocation and its live statistics."""

    arm: str
    version: str
    allocation: str
    stats: dict[str, Any] | None = None


@dataclass
class Experiment:
    """One model's experiment as the page shows it."""

    model: str
    record: PolicyRecord | None
    events: list[RoutingEvent] = field(default_factory=list)
    live: dict[str, Any] | None = None
    arms: list[ArmRow] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        """The policy's parts (an A/B test is a canary with ``ab``)."""
        if self.record is None:
            return []
        policy = self.record.policy
        kinds = [kind for kind in _KINDS if getattr(policy, kind) is not None]
        if policy.canary is not None and policy.canary.ab is not None:
            kinds[kinds.index("canary")] = "canary (A/B test)"
        return kinds


def router(pages: Pages) -> APIRouter:
    """The experiments page's route (see the module docstring)."""
    from modelyard import api
    from modelyard.serving.experiments_view import live_experiments, stored_experiments

    routes = APIRouter()
    settings = pages.settings
    server = pages.ui.ui_server_url
    key = pages.ui.ui_server_key.get_secret_value() if pages.ui.ui_server_key else None

    def stored() -> list[StoredExperiment]:
        with api.open_registry(settings) as registry:
            return stored_experiments(registry, events=EVENTS_SHOWN)

    @routes.get("/experiments", response_class=HTMLResponse)
    async def experiments_page(request: Request) -> HTMLResponse:
        found = await run_in_threadpool(stored)
        live: list[dict[str, Any]] | None = None
        live_error = None
        if server is not None:
            try:
                live = await run_in_threadpool(live_experiments, server, key)
            except ServerFault as exc:  # the stored half is still worth showing
                live_error = str(exc)
        return pages.render(
            request,
            "experiments.html.j2",
            experiments=_experiments(found, live or []),
            server=server,
            live_error=live_error,
        )

    return routes


def _experiments(stored: list[StoredExperiment], live: list[dict[str, Any]]) -> list[Experiment]:
    """One entry per model with a stored policy or a live route, by name."""
    entries = {s.record.model: Experiment(s.record.model, s.record, s.events) for s in stored}
    for entry in live:
        name = str(entry["model"])
        entries.setdefault(name, Experiment(name, None)).live = entry
    for experiment in entries.values():
        experiment.arms = _arms(experiment)
    return [entries[name] for name in sorted(entries)]


def _arms(experiment: Experiment) -> list[ArmRow]:
    """The primary and each role of the policy, with its allocation and live statistics."""
    live = experiment.live or {}
    statistics: dict[str, Any] = live.get("statistics") or {}
    if experiment.record is not None:
        policy, resolved = experiment.record.policy, experiment.record.resolved
    elif "policy" in live:  # a server following a policy this registry no longer has
        from modelyard.experiments.policy import parse_policy

        policy, resolved = parse_policy(live["policy"]), dict(live.get("resolved") or {})
    else:
        return []
    bandit = live.get("bandit") or {}
    allocated = dict(zip(bandit.get("arms", []), bandit.get("allocation", []), strict=False))
    canary = policy.canary
    if canary is not None:
        primary_share = f"{1 - canary.share:.0%} of requests"
    elif policy.bandit is not None:
        primary_share = _bandit_share(allocated, "primary")
    elif policy.composite is not None:
        primary_share = "(the composite answers)"
    else:
        primary_share = "every request"
    rows = [ArmRow("primary", str(live.get("primary") or "the served version"), primary_share)]
    for role, ref in resolved.items():
        rows.append(ArmRow(role, ref, _allocation(policy, role, allocated)))
    for row in rows:
        row.stats = statistics.get(row.arm)
    for arm in sorted(statistics.keys() - {row.arm for row in rows}):  # fallback, composite answers
        rows.append(ArmRow(arm, "", "answered for another arm", statistics[arm]))
    return rows


def _allocation(policy: Any, role: str, allocated: dict[str, float]) -> str:
    if role == "canary":
        sticky = f", sticky by {policy.canary.key_header}" if policy.canary.sticky else ""
        return f"{policy.canary.share:.0%} of requests{sticky}"
    if role == "shadow":
        return f"a copy of {policy.shadow.sample:.0%} of requests, off the response path"
    if role == "fallback":
        budget = policy.fallback.budget_ms
        return "when the primary fails" + (f" or takes over {budget:g} ms" if budget else "")
    if role == "interleave":
        return "its ranking interleaved with the primary's on /rank"
    if role.startswith("bandit:"):
        return _bandit_share(allocated, role)
    weight = role.removeprefix("part:")
    part = next(p for p in policy.composite.parts if p.weight == weight)
    return f"weight {weight} = {part.default:g} by default, {part.min:g} to {part.max:g}"


def _bandit_share(allocated: dict[str, float], arm: str) -> str:
    share = allocated.get(arm)
    return "chosen by Thompson sampling" + (f": {share:.0%} so far" if share is not None else "")
