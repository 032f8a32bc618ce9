"""The spec's ``retrain`` section: when ``modelyard retrain`` retrains, and with what."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from modelyard.spec._base import _Frozen

__all__ = ["RetrainSpec", "RetrainThreshold"]

#: A monitoring window: a time (``6h``) or a row count (``1000rows``).
_WINDOW_RE = re.compile(r"^\s*[1-9]\d*\s*([smhdw]|rows?)\s*$")


class RetrainThreshold(_Frozen):
    """A bound on a metric of the labelled predictions in a monitoring window: the
    window's metric below ``min`` or above ``max`` fires a retraining (only windows
    with at least ``min_rows`` labelled rows count)."""

    metric: str
    min: float | None = None
    max: float | None = None
    min_rows: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _has_bound(self) -> RetrainThreshold:
        if self.min is None and self.max is None:
            raise ValueError("a performance trigger needs 'min' or 'max'")
        return self


class RetrainSpec(_Frozen):
    """When ``modelyard retrain`` retrains, and with what (see the README, "Continual
    learning").

    Triggers (any one fires; by hand always works): ``schedule``, a cron expression in
    UTC, due once its next time after the latest version's training has passed;
    ``on_drift``, monitoring's rule (``feature``, ``prediction``, ``multivariate`` or
    ``any``) over the production version's log since then; ``performance``, bounds on
    labelled metrics per ``window``; ``min_new_labels``, that many labels received
    since then.

    ``prediction_log``: add the labelled rows of the prediction log (the inputs logged
    at prediction time, joined to labels that came later) to the source's rows.
    ``stateful``: ``auto`` continues from the production model where its estimator
    can (warm start, LightGBM/XGBoost initial model) and the feature definition has
    not changed; ``never`` always trains from scratch. ``candidate_alias``: the alias
    a retrained version that passes its gates gets (``null``: none); production is
    never moved by a retrain.
    """

    schedule: str | None = None
    on_drift: Literal["feature", "prediction", "multivariate", "any"] | None = None
    performance: list[RetrainThreshold] = Field(default_factory=list)
    min_new_labels: int | None = Field(default=None, ge=1)
    window: str = "1000rows"
    prediction_log: bool = True
    stateful: Literal["auto", "never"] = "auto"
    candidate_alias: str | None = "candidate"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression; expected five fields "
                "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *' for 03:00 UTC"
            )
        return value

    @field_validator("candidate_alias")
    @classmethod
    def _not_production(cls, value: str | None) -> str | None:
        if value == "production":
            raise ValueError(
                "a retrain never moves production; name another alias (default 'candidate') "
                "and promote the candidate once it has proved itself"
            )
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _WINDOW_RE.match(value):
            raise ValueError(f"{value!r} is not a window; use e.g. 1d, 6h, 30m or 1000rows")
        return value.strip()

    def triggers(self) -> list[str]:
        """The triggers declared, by name (``manual`` always applies)."""
        named = [
            ("schedule", self.schedule is not None),
            ("drift", self.on_drift is not None),
            ("performance", bool(self.performance)),
            ("labels", self.min_new_labels is not None),
        ]
        return [name for name, declared in named if declared]
