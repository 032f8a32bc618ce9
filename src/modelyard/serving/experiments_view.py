"""What ``modelyard experiments list`` and the web app's experiments pages show, read once
for both: the stored policies with their audit events (the registry), and a running
server's live experiments (its ``GET /v1/experiments``: allocation, per-arm statistics,
the shadow's differential test, the A/B test, the bandit and the interleaving test, as
:meth:`~modelyard.serving.routing.Router.describe` computes them in that server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry
    from modelyard.registry.routing import PolicyRecord, RoutingEvent

__all__ = ["StoredExperiment", "live_experiments", "stored_experiments"]


@dataclass(frozen=True)
class StoredExperiment:
    """A model's stored routing policy and its newest audit events (newest first)."""

    record: PolicyRecord
    events: list[RoutingEvent]

    @property
    def last_event(self) -> RoutingEvent | None:
        """The newest change or decision, if any."""
        return self.events[0] if self.events else None


def stored_experiments(registry: Registry, *, events: int = 1) -> list[StoredExperiment]:
    """Every stored routing policy, by model name, with its newest ``events`` events."""
    from modelyard.registry.routing import list_policies, routing_events

    return [
        StoredExperiment(record, routing_events(registry, record.model, limit=events))
        for record in list_policies(registry)
    ]


def live_experiments(url: str, api_key: str | None, *, timeout: float = 10) -> list[dict[str, Any]]:
    """A running server's live experiments (``GET {url}/v1/experiments``).

    Raises:
        ServerFault: the server cannot be reached, or refuses (a wrong API key, say).
    """
    import httpx

    from modelyard.errors import ServerFault

    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        reply = httpx.get(f"{url.rstrip('/')}/v1/experiments", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServerFault(f"cannot reach {url}: {exc}; is `modelyard serve` running?") from None
    if reply.status_code != 200:
        raise ServerFault(f"{url}/v1/experiments answered {reply.status_code}: {reply.text[:300]}")
    return list(reply.json()["experiments"])
