"""Settings: the one piece of global configuration, read from ``MODELYARD_*`` variables.

The registry lives under a *home* folder (``--home`` or ``MODELYARD_HOME``, default
``~/.modelyard``): ``registry.db`` (SQLite) and ``artifacts/`` (content-addressed files).
``MODELYARD_REGISTRY_URL`` points the metadata at another database, e.g.
``postgresql+psycopg://user@host/db``; artifacts stay under the home folder.
``MODELYARD_EVENTS_URL`` names a broker (``redis://...``) on whose control stream
(``MODELYARD_EVENTS_STREAM``) promotions and rollbacks are announced to stream consumers.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_actor"]


def _default_home() -> Path:
    return Path("~/.modelyard").expanduser()


def default_actor() -> str:
    """Who is acting, for the audit trail: ``MODELYARD_ACTOR`` or the login name."""
    actor = os.environ.get("MODELYARD_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a bare container
        return "unknown"


class Settings(BaseSettings):
    """Where the registry and artifacts live.

    Example:
        >>> s = Settings(home=Path("/tmp/my-yard"))
        >>> s.resolved_registry_url()
        'sqlite:////tmp/my-yard/registry.db'
    """

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=_default_home)
    registry_url: str | None = None
    events_url: str | None = None
    events_stream: str = "modelyard.models"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        """Settings with the command line's ``home`` and ``registry_url`` where given.

        The one rule every command group uses (they read the main command's options
        from ``ctx.find_root().params``); options left unset fall back to the
        environment and the defaults.
        """
        given = {key: options[key] for key in ("home", "registry_url") if options.get(key)}
        return cls(**given)

    def resolved_registry_url(self) -> str:
        """The SQLAlchemy URL of the metadata database."""
        if self.registry_url:
            return self.registry_url
        return f"sqlite:///{self.home.expanduser().absolute() / 'registry.db'}"

    @property
    def artifact_root(self) -> Path:
        """The folder of content-addressed artifacts."""
        return self.home.expanduser().absolute() / "artifacts"
