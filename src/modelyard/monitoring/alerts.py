"""Alert rules: a threshold per check, sent to webhooks and the log, with an audit trail.

Rules live in a YAML file given to ``modelyard monitor --rules FILE``::

    alerts:
      - name: inputs-drift
        check: feature_drift       # fires when at least `threshold` inputs drift (default 1)
        threshold: 2
        webhooks: [http://127.0.0.1:9000/hooks/monitoring]
      - name: serving-skew
        check: skew                # any replayed row beyond the parity tolerance
      - name: accuracy-before-labels
        check: estimated_metric    # CBPE estimate below 0.8 (higher is better)
        metric: accuracy
        threshold: 0.8

Checks: ``feature_drift``, ``prediction_drift``, ``multivariate_drift`` (statistical:
windows too small to test never fire), ``skew``, ``quality`` (data-quality problems, at
least ``threshold``, default 1), ``metric`` (realised, on labelled rows) and
``estimated_metric`` (CBPE, before labels). A metric rule fires when the value is worse
than ``threshold``: below it for metrics where higher is better, above it otherwise
(``direction`` overrides).

Every firing is appended to ``<home>/monitoring/alerts.jsonl`` with what each webhook
answered (one JSON object per line: an append-only audit trail a person or a script can
read). A webhook gets one POST per run with every alert of its rules, as JSON; a webhook
that fails is recorded and reported, never retried in a loop and never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.errors import ModelyardError
from modelyard.monitoring.results import MonitorReport, WindowReport
from modelyard.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS

__all__ = [
    "AlertRule",
    "AlertRules",
    "Delivery",
    "FiredAlert",
    "deliver",
    "evaluate",
    "load_rules",
]

logger = logging.getLogger(__name__)

Check = Literal[
    "feature_drift",
    "prediction_drift",
    "multivariate_drift",
    "skew",
    "quality",
    "metric",
    "estimated_metric",
]
_STATISTICAL = frozenset({"feature_drift", "prediction_drift", "multivariate_drift"})
_TIMEOUT = 5.0  # seconds per webhook: a monitor run must not hang on a dead receiver


class AlertRule(BaseModel):
    """One rule: a check, its threshold, and where its alerts go."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    check: Check
    metric: str | None = None
    threshold: float | None = None
    direction: Literal["below", "above"] | None = Field(
        default=None, description="metric rules: fire when the value is below/above"
    )
    webhooks: list[str] = []
    log: bool = True

    @model_validator(mode="after")
    def _complete(self) -> AlertRule:
        metric_check = self.check in ("metric", "estimated_metric")
        if metric_check and (self.metric is None or self.threshold is None):
            raise ValueError(f"a {self.check} rule needs `metric` and `threshold`")
        if not metric_check and (self.metric is not None or self.direction is not None):
            raise ValueError(f"`metric` and `direction` apply to metric rules, not {self.check}")
        if self.metric is not None and self.metric not in {
            *REGRESSION_METRICS,
            *CLASSIFICATION_METRICS,
        }:
            raise ValueError(f"unknown metric {self.metric!r}")
        for url in self.webhooks:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook {url!r} is not an http(s) URL")
        return self

    def fires_below(self) -> bool:
        """Metric rules: whether low values are the bad ones."""
        if self.direction is not None:
            return self.direction == "below"
        assert self.metric is not None
        return bool({**REGRESSION_METRICS, **CLASSIFICATION_METRICS}[self.metric])


class AlertRules(BaseModel):
    """The rules file: a list of alert rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alerts: list[AlertRule] = Field(min_length=1)


class Delivery(BaseModel):
    """What a webhook answered: its HTTP status, or the error that stopped it."""

    model_config = ConfigDict(frozen=True)

    url: str
    status: int | None
    error: str | None = None


class FiredAlert(BaseModel):
    """A rule that fired on one window of one version."""

    model_config = ConfigDict(frozen=True)

    rule: str
    check: str
    model: str
    version: str
    window_start: datetime | None
    window_end: datetime | None
    value: float
    threshold: float
    message: str


def load_rules(path: Path) -> AlertRules:
    """Read and check a rules file.

    Raises:
        ModelyardError: the file is missing, not YAML, or not valid rules (the message
            lists every problem with its place).
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelyardError(f"--rules {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelyardError(f"--rules {path}: not a readable YAML file ({exc})") from None
    try:
        return AlertRules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelyardError(
            f"--rules {path}: invalid alert rules ({problems}); see `modelyard monitor --help`"
        ) from None


def evaluate(report: MonitorReport, rules: AlertRules) -> list[FiredAlert]:
    """Every (rule, window) that fires in ``report``, oldest window first per version."""
    fired = []
    for version in report.versions:
        for window in version.windows:
            for rule in rules.alerts:
                found = _check(rule, window)
                if found is None:
                    continue
                value, threshold, message = found
                fired.append(
                    FiredAlert(
                        rule=rule.name,
                        check=rule.check,
                        model=report.model,
                        version=version.ref,
                        window_start=window.start,
                        window_end=window.end,
                        value=value,
                        threshold=threshold,
                        message=message,
                    )
                )
    return fired


def _check(rule: AlertRule, window: WindowReport) -> tuple[float, float, str] | None:
    """(value, threshold, message) if ``rule`` fires on ``window``, else None."""
    if rule.check in _STATISTICAL and window.too_small:
        return None
    check = rule.check
    if check == "feature_drift":
        drifting = [c.column for c in window.features if c.drift]
        need = rule.threshold if rule.threshold is not None else 1.0
        if drifting and len(drifting) >= need:
            return len(drifting), need, f"{len(drifting)} inputs drift: {', '.join(drifting)}"
        return None
    if check == "prediction_drift":
        return (1.0, 1.0, "the predictions drift") if window.prediction_drift else None
    if check == "multivariate_drift":
        joint = window.multivariate
        if joint is not None and joint.drift:
            return joint.auc, joint.threshold, f"inputs drift jointly (AUC {joint.auc:.3f})"
        return None
    if check == "skew":
        skew = window.skew
        share = skew.mismatched / skew.rows if skew is not None and skew.rows else 0.0
        limit = rule.threshold or 0.0
        if skew is not None and skew.skew and share > limit:
            return (
                share,
                limit,
                f"{skew.mismatched} of {skew.rows} replayed rows differ from the pipeline "
                f"(max |diff| {skew.max_abs:.4g})",
            )
        return None
    if check == "quality":
        problems = [f"{q.column}: {p}" for q in window.quality for p in q.problems]
        need = rule.threshold if rule.threshold is not None else 1.0
        if problems and len(problems) >= need:
            return len(problems), need, "; ".join(problems[:5])
        return None
    return _metric_check(rule, window)


def _metric_check(rule: AlertRule, window: WindowReport) -> tuple[float, float, str] | None:
    assert rule.metric is not None and rule.threshold is not None
    value: float | None = None
    if rule.check == "metric" and window.performance is not None:
        value = window.performance.metrics.get(rule.metric)
        how = f"on {window.performance.labelled_rows} labelled rows"
    elif rule.check == "estimated_metric" and window.estimated is not None:
        found = window.estimated.metrics.get(rule.metric)
        value = found.value if found is not None else None
        how = "estimated before labels"
    if value is None:
        return None
    below = rule.fires_below()
    if (value < rule.threshold) if below else (value > rule.threshold):
        side = "below" if below else "above"
        return value, rule.threshold, f"{rule.metric} {value:.4g} {how}, {side} {rule.threshold:g}"
    return None


def deliver(
    fired: list[FiredAlert], rules: AlertRules, *, home: Path, actor: str
) -> dict[str, list[Delivery]]:
    """Send each rule's alerts to its webhooks and the log, and append them to the audit
    trail ``<home>/monitoring/alerts.jsonl``; returns what each webhook answered, by rule.
    """
    by_rule = {rule.name: rule for rule in rules.alerts}
    outcomes: dict[str, list[Delivery]] = {}
    for url, alerts in _by_webhook(fired, by_rule):
        outcome = _post(url, alerts)
        for name in {alert.rule for alert in alerts}:
            outcomes.setdefault(name, []).append(outcome)
    now = datetime.now(UTC)
    lines = []
    for alert in fired:
        if by_rule[alert.rule].log:
            logger.warning("alert %s on %s: %s", alert.rule, alert.version, alert.message)
        record = {
            "at": now.isoformat(),
            "actor": actor,
            **alert.model_dump(mode="json"),
            "deliveries": [d.model_dump() for d in outcomes.get(alert.rule, [])],
        }
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    if lines:
        trail = home / "monitoring" / "alerts.jsonl"
        trail.parent.mkdir(parents=True, exist_ok=True)
        # One write of whole lines in append mode: concurrent monitors do not interleave
        # within a line on local file systems.
        with trail.open("a", encoding="utf-8") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
    return outcomes


def _by_webhook(
    fired: list[FiredAlert], rules: dict[str, AlertRule]
) -> Iterator[tuple[str, list[FiredAlert]]]:
    urls: dict[str, list[FiredAlert]] = {}
    for alert in fired:
        for url in rules[alert.rule].webhooks:
            urls.setdefault(url, []).append(alert)
    yield from urls.items()


def _post(url: str, alerts: list[FiredAlert]) -> Delivery:
    body = json.dumps(
        {"source": "modelyard monitor", "alerts": [a.model_dump(mode="json") for a in alerts]}
    ).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the URL is checked to be http(s)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
            return Delivery(url=url, status=int(response.status))
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response
        return Delivery(url=url, status=exc.code, error=f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Delivery(url=url, status=None, error=f"{type(exc).__name__}: {reason}")
