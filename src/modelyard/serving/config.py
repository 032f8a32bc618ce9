"""Configuration of the online server, read from ``MODELYARD_SERVE_*`` variables.

``ServeConfig`` is built at the edge (the ``serve`` command, or user code calling
:func:`~modelyard.serving.app.create_app`) and passed down. Each field can also be set by
an environment variable, e.g. ``MODELYARD_SERVE_MODELS=house-prices,churn@staging``,
``MODELYARD_SERVE_API_KEYS=key1,key2``, ``MODELYARD_SERVE_ADMIN_KEY=...``. The whole
config as one JSON object in ``MODELYARD_SERVE_CONFIG`` is how ``modelyard serve
--workers N`` hands it to each worker process (:func:`config_from_env`).

Example:
    >>> config = ServeConfig(models=["house-prices", "churn:3"])
    >>> [str(ref) for ref in config.served_refs()]
    ['house-prices@production', 'churn:3']
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modelyard.errors import ModelyardError
from modelyard.registry.refs import ModelRef, parse_ref
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.serving.limits import ConnectionLimits
    from modelyard.serving.process import ProcessSettings

__all__ = ["CONFIG_ENV", "ServeConfig", "config_from_env", "served_ref"]

#: The variable holding a whole :class:`ServeConfig` as JSON (used by ``--workers``).
CONFIG_ENV = "MODELYARD_SERVE_CONFIG"

_MIB = 1024 * 1024


def served_ref(text: str) -> ModelRef:
    """The reference a server follows for ``text``: a bare ``NAME`` means ``NAME@production``.

    ``NAME:VERSION`` pins a version; ``NAME@ALIAS`` and ``NAME:latest`` are followed (the
    server swaps to the version they point at when it changes).

    Raises:
        ModelyardError: ``text`` is not a model reference.
    """
    stripped = text.strip() if isinstance(text, str) else text
    ref = parse_ref(stripped)
    if isinstance(stripped, str) and ":" not in stripped and "@" not in stripped:
        return ModelRef(name=ref.name, alias="production")
    return ref


def _split_list(value: Any) -> Any:
    """Accept a JSON list, or a comma-separated string (handy in environment variables)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


StrList = Annotated[list[str], NoDecode]


class ServeConfig(BaseSettings):
    """What a server serves and how.

    Attributes:
        models: references to serve, e.g. ``house-prices`` (= ``house-prices@production``),
            ``churn:3``, ``churn@staging``; one per model name.
        settings: where the registry lives (``MODELYARD_HOME``, ``MODELYARD_REGISTRY_URL``).
        runtime: ``auto`` (ONNX when the version's recorded parity holds, else scikit-learn),
            ``onnx`` or ``sklearn``.
        batching: merge concurrent requests into one model call.
        max_batch_rows: at most this many rows per merged model call.
        max_batch_wait_ms: how long a queued request may wait beyond the call in flight.
        max_rows_per_request: larger requests are refused with 413.
        max_body_bytes: larger request bodies are refused with 413.
        max_columns_per_request: a request naming more columns (keys of a row, names
            of a split or CSV header, V2 tensors) is refused with 422 before its values
            are looked at; at least the model's own inputs are always allowed.
        max_text_length: the longest text value accepted, in characters; a categorical
            input's own limit is 8 times its longest training category (at least
            256), up to this.
        poll_seconds: how often followed aliases are re-resolved; 0 turns polling off.
        api_keys: keys accepted on the prediction endpoints (``X-API-Key`` or
            ``Authorization: Bearer``); empty means open.
        admin_key: the key of the admin endpoints; unset means they answer 403.
        public_endpoints: what stays open when ``api_keys`` are set: ``metrics``
            (``/metrics``) and ``docs`` (``/openapi.json``, ``/docs``); everything else
            but the health probes needs a key then (see :mod:`modelyard.serving.access`).
        cors_origins: origins allowed by CORS; empty means no CORS headers at all.
        prediction_log: record every prediction (and accept feedback).
        feedback_external_ids: accept feedback for request ids this server's prediction
            log does not hold (ids of predictions made elsewhere); off: such feedback
            is refused with 422, so labels join only predictions that were made.
        warmup_rows: evaluation rows predicted once before a version takes traffic.
        model_threads: threads one model call may use inside native libraries (OpenMP,
            BLAS). 1 suits a server, whose parallelism comes from concurrent requests:
            an idle OpenMP team costs more than a small batch takes. 0 keeps the
            libraries' own defaults. The limit applies to the server's own runtime
            threads only (OpenMP's limit is per thread), and ONNX Runtime sessions run
            one intra-op thread each, so neither changes an embedding app's threads.
        gc_freeze: freeze the live heap out of garbage collection after each load, and
            release retired versions by unfreezing and collecting after a swap
            (:mod:`modelyard.serving.process`). Process-wide: None (the default) means
            on under ``modelyard serve``, off in an app built with ``create_app``.
        switch_interval_ms: the GIL switch interval while serving, in ms; 0 leaves
            Python's. Process-wide: None means 0.2 under ``modelyard serve``, Python's
            own in an app built with ``create_app``.
        header_timeout_s: a request's headers must arrive within this many seconds of
            its first byte (the connection is closed otherwise). ``modelyard serve`` only.
        body_timeout_s: a request's body must arrive within this many seconds of its
            headers (408 otherwise).
        max_connections: open connections beyond this are closed at once.
            ``modelyard serve`` only.
        max_inflight_body_bytes: bytes of request bodies read at once across all
            requests; a request past it gets 503 with ``Retry-After``.
        warm_decode_process: start the decode process, which parses and decodes
            (or validates) JSON and CSV bodies over 256 KiB
            (:mod:`modelyard.serving.decodepool`), with the server. None (the
            default) means yes under ``modelyard serve``; an app built with
            ``create_app`` starts it on its first large body.
    """

    model_config = SettingsConfigDict(
        env_prefix="MODELYARD_SERVE_", frozen=True, extra="forbid", populate_by_name=True
    )

    models: Annotated[StrList, Field(min_length=1)]
    settings: Settings = Field(default_factory=Settings)
    runtime: Literal["auto", "onnx", "sklearn"] = "auto"
    batching: bool = True
    max_batch_rows: int = Field(default=256, ge=1)
    max_batch_wait_ms: float = Field(default=2.0, ge=0)
    max_rows_per_request: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=16 * _MIB, ge=1024)
    max_columns_per_request: int = Field(default=2_000, ge=1)
    max_text_length: int = Field(default=4_096, ge=1)
    poll_seconds: float = Field(default=5.0, ge=0)
    api_keys: StrList = Field(default_factory=list, repr=False)
    admin_key: str | None = Field(default=None, repr=False)
    public_endpoints: StrList = Field(default_factory=list)
    cors_origins: StrList = Field(default_factory=list)
    prediction_log: bool = True
    feedback_external_ids: bool = False
    warmup_rows: int = Field(default=8, ge=0, le=1000)
    model_threads: int = Field(default=1, ge=0, le=256)
    gc_freeze: bool | None = None
    switch_interval_ms: float | None = Field(default=None, ge=0, le=100)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1024, ge=1)
    max_inflight_body_bytes: int = Field(default=256 * _MIB, ge=1024)
    warm_decode_process: bool | None = None

    @field_validator("models", "api_keys", "cors_origins", "public_endpoints", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for text in value:
            try:
                ref = served_ref(text)
            except ModelyardError:
                raise ValueError(
                    f"{text!r} is not a model reference; expected 'NAME' (= NAME@production), "
                    "'NAME:VERSION' (e.g. 'house-prices:3'), 'NAME@ALIAS' (e.g. "
                    "'house-prices@staging') or 'NAME:latest'"
                ) from None
            if ref.name in seen:
                raise ValueError(
                    f"model {ref.name!r} is listed twice ({seen[ref.name]!r} and {text!r}); "
                    "a server serves one version per model name: keep one of them"
                )
            seen[ref.name] = text
        return [text.strip() for text in value]

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: list[str]) -> list[str]:
        if any(len(key) < 8 for key in value):
            raise ValueError("API keys must be at least 8 characters long")
        return value

    @field_validator("public_endpoints")
    @classmethod
    def _check_public(cls, value: list[str]) -> list[str]:
        allowed = ("metrics", "docs")  # serving.access.PUBLIC_CHOICES
        unknown = [item for item in value if item not in allowed]
        if unknown:
            raise ValueError(
                f"public endpoints {unknown} are not known; choose among {list(allowed)}"
            )
        return list(dict.fromkeys(value))

    @field_validator("admin_key")
    @classmethod
    def _check_admin_key(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 8:
            raise ValueError("the admin key must be at least 8 characters long")
        return value or None

    def served_refs(self) -> list[ModelRef]:
        """The references to serve, a bare name meaning ``NAME@production``."""
        return [served_ref(text) for text in self.models]

    def process_settings(self) -> ProcessSettings:
        """What this config changes in the process (None fields: nothing)."""
        from modelyard.serving.process import ProcessSettings

        interval = self.switch_interval_ms
        return ProcessSettings(
            gc_freeze=bool(self.gc_freeze),
            switch_interval=interval / 1000 if interval else None,
        )

    @property
    def connection_limits(self) -> ConnectionLimits:
        """The deadlines and caps of :mod:`modelyard.serving.limits`."""
        from modelyard.serving.limits import ConnectionLimits

        return ConnectionLimits(
            header_timeout=self.header_timeout_s,
            body_timeout=self.body_timeout_s,
            max_connections=self.max_connections,
            max_inflight_body_bytes=self.max_inflight_body_bytes,
        )

    def for_serve_process(self) -> ServeConfig:
        """This config with ``modelyard serve``'s process settings where it leaves them
        unset (:data:`~modelyard.serving.process.SERVE_DEFAULTS`, and the decode
        process started with the server)."""
        from modelyard.serving.process import SERVE_DEFAULTS

        update: dict[str, Any] = {}
        if self.gc_freeze is None:
            update["gc_freeze"] = SERVE_DEFAULTS.gc_freeze
        if self.switch_interval_ms is None:
            assert SERVE_DEFAULTS.switch_interval is not None
            update["switch_interval_ms"] = SERVE_DEFAULTS.switch_interval * 1000
        if self.warm_decode_process is None:
            update["warm_decode_process"] = True
        return self.model_copy(update=update)

    def to_env(self) -> str:
        """This config as JSON for :data:`CONFIG_ENV`, keys included (unlike ``repr``)."""
        return self.model_dump_json()


def config_from_env() -> ServeConfig:
    """The config of a worker process: :data:`CONFIG_ENV` if set, else ``MODELYARD_SERVE_*``.

    Raises:
        ModelyardError: the variables do not make a valid config; the message says which.
    """
    from pydantic import ValidationError

    raw = os.environ.get(CONFIG_ENV)
    try:
        if raw:
            return ServeConfig.model_validate_json(raw)
        return ServeConfig()  # type: ignore[call-arg]  # fields come from the environment
    except ValidationError as exc:
        where = CONFIG_ENV if raw else "MODELYARD_SERVE_* variables"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'config'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ModelyardError(
            f"invalid server config in {where}: {problems}; e.g. set "
            "MODELYARD_SERVE_MODELS=house-prices"
        ) from None
