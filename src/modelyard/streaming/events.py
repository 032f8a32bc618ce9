"""Model events on the control stream: published by promote and rollback.

When the setting ``MODELYARD_EVENTS_URL`` names a broker (e.g.
``redis://127.0.0.1:6379/0``), :func:`announce` appends an event to the control stream
(``MODELYARD_EVENTS_STREAM``, default ``modelyard.models``) after each promotion or
rollback::

    {"event": "alias_moved", "action": "promote", "model": "house-prices",
     "alias": "production", "from_version": 3, "to_version": 4, "actor": "ana",
     "at": "2026-12-01T18:00:00+00:00"}

Stream consumers following that model reload it from the registry when they see one.
The registry stays the source of truth: an event that could not be published is logged,
never fails the promotion, and consumers find the change at their next poll.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.registry.records import AliasChange
    from modelyard.settings import Settings

__all__ = ["alias_event", "announce", "publish"]

logger = logging.getLogger(__name__)

#: broker URL scheme → the module whose ``publish_event_sync`` appends an event.
_PUBLISHERS = {
    "redis": "modelyard.streaming.redis",
    "rediss": "modelyard.streaming.redis",
    "unix": "modelyard.streaming.redis",
    "kafka": "modelyard.streaming.kafka",
    "nats": "modelyard.streaming.nats",
}


def alias_event(change: AliasChange) -> dict[str, Any]:
    """The event announcing ``change`` (a promotion or rollback)."""
    return {
        "event": "alias_moved",
        "action": change.action,
        "model": change.name,
        "alias": change.alias,
        "from_version": change.from_version,
        "to_version": change.to_version,
        "actor": change.actor,
        "at": datetime.now(UTC).isoformat(),
    }


def publish(broker: str, stream: str, event: dict[str, Any]) -> None:
    """Append ``event`` to ``stream`` on ``broker`` (blocking).

    Raises:
        ModelyardError: the broker's scheme is not one modelyard publishes to.
        MissingExtraError: the broker's client library is not installed.
    """
    import importlib

    from modelyard.errors import ModelyardError

    scheme = broker.split("://", 1)[0].lower()
    module = _PUBLISHERS.get(scheme)
    if module is None:
        known = ", ".join(f"{name}://" for name in _PUBLISHERS)
        raise ModelyardError(
            f"MODELYARD_EVENTS_URL {broker!r} has no known scheme; use one of {known}"
        )
    importlib.import_module(module).publish_event_sync(broker, stream, event)


def announce(change: AliasChange, settings: Settings | None) -> AliasChange:
    """Publish ``change`` on the control stream when the settings name a broker.

    Never raises: a failure is logged (consumers still poll the registry). Returns
    ``change``, so ``promote`` and ``rollback`` can end with ``return announce(...)``.
    """
    from modelyard.settings import Settings

    settings = settings if settings is not None else Settings()
    if not settings.events_url or change.audit_id is None:  # nothing moved: no event
        return change
    try:
        publish(settings.events_url, settings.events_stream, alias_event(change))
    except Exception as exc:  # the registry changed; the event is a courtesy
        logger.warning(
            "%s@%s moved to %s, but the event could not be published to %s (%s); stream "
            "consumers will find the change at their next registry poll",
            change.name,
            change.alias,
            change.to_version,
            settings.events_url,
            exc,
        )
    return change
