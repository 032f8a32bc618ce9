"""Settings of ``modelyard ui``, read from ``MODELYARD_UI_*`` variables.

=============================  =========================================================
variable                       meaning
=============================  =========================================================
``MODELYARD_UI_KEY``           the admin key: uploading and cancelling need it (entered
                               once on the sign-in page); unset, the app is read-only
``MODELYARD_UI_PAGE_ROWS``     result rows per page on a job's page (50)
``MODELYARD_UI_SERVER_URL``    a running ``modelyard serve`` whose live experiments
                               (allocation, statistics) the experiments page shows;
                               unset, it shows the stored policies and their decisions
                               only
``MODELYARD_UI_SERVER_KEY``    that server's API key, if it needs one
=============================  =========================================================
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["UiSettings"]


class UiSettings(BaseSettings):
    """How the web app guards its actions and pages its tables.

    Example:
        >>> UiSettings(ui_key="a-long-admin-key").read_only
        False
    """

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", frozen=True, extra="ignore")

    ui_key: SecretStr | None = None
    ui_page_rows: int = Field(default=50, ge=1, le=1000)
    ui_server_url: str | None = Field(default=None, pattern=r"^https?://")
    ui_server_key: SecretStr | None = None

    @field_validator("ui_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("MODELYARD_UI_KEY must be at least 8 characters long")
        return value

    @property
    def read_only(self) -> bool:
        """Whether no admin key is set, so every action is refused."""
        return self.ui_key is None
