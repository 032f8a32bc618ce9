"""Opening the registry for one call of the Python API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry

__all__ = ["open_registry"]


@contextmanager
def open_registry(settings: Settings | None = None) -> Iterator[Registry]:
    """Open the registry named by ``settings`` (default: ``MODELYARD_*`` variables)."""
    from modelyard.registry.registry import Registry

    registry = Registry.open(settings or Settings())
    try:
        yield registry
    finally:
        registry.close()
