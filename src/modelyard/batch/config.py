"""Batch settings: the queue, the leases, and how finished jobs are announced.

Read from ``MODELYARD_*`` variables, like :class:`modelyard.settings.Settings` (which
still says where the home folder and the metadata database are):

=================================  ==============================================================
variable                           meaning
=================================  ==============================================================
``MODELYARD_QUEUE_URL``            ``redis://host:6379/0`` to share the queue between machines;
                                   default: SQLite file ``<home>/queue.db`` (no server)
``MODELYARD_BATCH_CHUNK_ROWS``     rows read, checked, scored and committed at a time (10000)
``MODELYARD_BATCH_LEASE_SECONDS``  a job whose worker has not renewed its lease for this long is
                                   taken over by another worker (60)
``MODELYARD_BATCH_RUNTIME``        ``auto`` (as online serving), ``onnx`` or ``sklearn``
``MODELYARD_BATCH_BACKEND``         ``local`` (score in the worker) or ``dask`` (on a Dask cluster)
``MODELYARD_BATCH_DASK_ADDRESS``    the Dask scheduler, e.g. ``tcp://10.0.0.5:8786``; unset: a
                                   local cluster on 127.0.0.1
``MODELYARD_BATCH_DASK_WORKERS``    processes of that local cluster (2)
``MODELYARD_SMTP_HOST`` / ``_PORT``  the mail server (port 25 default)
``MODELYARD_SMTP_TLS``             ``none``, ``starttls`` or ``ssl`` (default ``none``)
``MODELYARD_SMTP_USER`` / ``_PASSWORD``  login, when the server asks for one
``MODELYARD_SMTP_SENDER``          the From address (default ``modelyard@localhost``)
``MODELYARD_WEBHOOK_SECRET``       key of the ``X-Modelyard-Signature`` HMAC-SHA256 of the body
``MODELYARD_PUBLIC_URL``           base URL put in emails, e.g. ``https://yard.example.com``
``MODELYARD_NOTIFY_RETRIES``       further attempts of a failed delivery (3), spaced by
``MODELYARD_NOTIFY_RETRY_SECONDS`` seconds (30)
=================================  ==============================================================
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BatchSettings"]


class BatchSettings(BaseSettings):
    """How batch jobs are queued, run and announced.

    Example:
        >>> BatchSettings(queue_url="redis://127.0.0.1:6379/0").queue_url
        'redis://127.0.0.1:6379/0'
    """

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", frozen=True, extra="ignore")

    queue_url: str | None = None
    batch_chunk_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    batch_lease_seconds: float = Field(default=60.0, gt=0)
    batch_runtime: Literal["auto", "onnx", "sklearn"] = "auto"
    batch_backend: Literal["local", "dask"] = "local"
    batch_dask_address: str | None = None
    batch_dask_workers: int = Field(default=2, ge=1, le=256)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "modelyard@localhost"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    public_url: str | None = None
    notify_retries: int = Field(default=3, ge=0, le=100)
    notify_retry_seconds: float = Field(default=30.0, ge=0)
