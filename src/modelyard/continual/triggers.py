"""Which of a spec's retraining triggers are due.

Every trigger counts from the model's latest registered version (by ``train`` or
``retrain``, whatever its gates said): a schedule is due once its next time after that
version's creation has passed; drift, performance and label volume look only at what
was logged or labelled since then. So an alert fires a retraining once, and fires again
only on new evidence; no state is kept besides the registry itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modelyard.errors import ModelNotFoundError
from modelyard.monitoring.monitor import monitor
from modelyard.monitoring.results import MonitorReport
from modelyard.monitoring.windows import parse_window
from modelyard.predlog import read_feedback
from modelyard.registry.registry import ModelVersion, Registry
from modelyard.settings import Settings
from modelyard.spec import ProjectSpec, RetrainThreshold

__all__ = ["TriggerCheck", "check_triggers", "latest_version", "next_schedule"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerCheck:
    """What :func:`check_triggers` found.

    Attributes:
        model: the model's name.
        since: when the latest version was registered (None: no version yet).
        checked: the declared triggers that were checked.
        due: each due trigger with the reason, in words, in the order checked.
        next_schedule: the schedule's next time (None without a schedule).
    """

    model: str
    since: datetime | None
    checked: list[str]
    due: dict[str, str] = field(default_factory=dict)
    next_schedule: datetime | None = None

    @property
    def fired(self) -> bool:
        """Whether any trigger is due."""
        return bool(self.due)

    @property
    def trigger(self) -> str | None:
        """The first due trigger, the one recorded as the cause."""
        return next(iter(self.due), None)


def latest_version(registry: Registry, name: str) -> ModelVersion | None:
    """The model's highest-numbered version, or None when it has none."""
    try:
        versions = registry.list_versions(name)
    except ModelNotFoundError:
        return None
    return max(versions, key=lambda v: v.version) if versions else None


def next_schedule(schedule: str, after: datetime) -> datetime:
    """The first time of cron ``schedule`` (UTC) strictly after ``after``.

    Example:
        >>> next_schedule("0 3 * * *", datetime(2026, 1, 1, 3, 0, tzinfo=UTC)).isoformat()
        '2026-01-02T03:00:00+00:00'
    """
    from croniter import croniter

    moment: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return moment.astimezone(UTC)


def check_triggers(
    settings: Settings,
    spec: ProjectSpec,
    registry: Registry,
    *,
    now: datetime | None = None,
) -> TriggerCheck:
    """Check the triggers ``spec.retrain`` declares for ``spec.name`` at ``now``.

    Drift and performance are checked on the production version's log (none in
    production: they are not due); the monitoring window is ``retrain.window``.

    Raises:
        IntegrityError: the production version's artifacts fail their checksum.
        DataError: a segment of the prediction log is unreadable.
    """
    now = now or datetime.now(UTC)
    plan = spec.retrain
    latest = latest_version(registry, spec.name)
    since = latest.created_at.astimezone(UTC) if latest is not None else None
    due: dict[str, str] = {}
    upcoming = None
    if plan.schedule is not None:
        if since is None:
            due["schedule"] = f"schedule {plan.schedule!r}: the model has no version yet"
        else:
            upcoming = next_schedule(plan.schedule, since)
            if upcoming <= now:
                due["schedule"] = (
                    f"schedule {plan.schedule!r}: due at {upcoming:%Y-%m-%d %H:%M} UTC, "
                    f"the first time after the latest version ({since:%Y-%m-%d %H:%M} UTC)"
                )
                upcoming = next_schedule(plan.schedule, now)
    if plan.on_drift is not None or plan.performance:
        report = _monitor(settings, spec, since)
        if report is not None:
            due.update(_alerts(spec, report))
    if plan.min_new_labels is not None:
        labels = len(read_feedback(settings, spec.name, start=since))
        if labels >= plan.min_new_labels:
            due["labels"] = (
                f"{labels:,} labels received since the latest version "
                f"(retrain.min_new_labels: {plan.min_new_labels:,})"
            )
    checked = plan.triggers()
    logger.debug("%s: triggers %s checked, due: %s", spec.name, checked, list(due))
    return TriggerCheck(spec.name, since, checked, due, upcoming)


def _monitor(settings: Settings, spec: ProjectSpec, since: datetime | None) -> MonitorReport | None:
    """The production version's monitoring report since ``since`` (None if nothing is
    in production)."""
    plan = spec.retrain
    try:
        return monitor(
            settings,
            f"{spec.name}@production",
            window=parse_window(plan.window),
            since=since,
            fail_on=plan.on_drift or "none",
            actor="retrain",
        )
    except ModelNotFoundError:
        logger.info("%s has no production version: drift and performance not checked", spec.name)
        return None


def _alerts(spec: ProjectSpec, report: MonitorReport) -> dict[str, str]:
    """The drift and performance triggers ``report`` fires."""
    plan = spec.retrain
    windows = [w for version in report.versions for w in version.windows]
    alerts: dict[str, str] = {}
    if plan.on_drift is not None and report.drift:
        drifted = sorted(
            {c.column for w in windows if not w.too_small for c in w.features if c.drift}
        )
        what = f"; drifted columns: {', '.join(drifted)}" if drifted else ""
        alerts["drift"] = (
            f"monitoring found {plan.on_drift} drift in windows of {report.window} since the "
            f"latest version{what}"
        )
    for threshold in plan.performance:
        for window in windows:
            crossed = _crossed(threshold, window.performance)
            if crossed is not None:
                alerts.setdefault("performance", crossed)
                break
    return alerts


def _crossed(threshold: RetrainThreshold, performance: object) -> str | None:
    from modelyard.monitoring.results import Performance

    if not isinstance(performance, Performance) or performance.labelled_rows < threshold.min_rows:
        return None
    value = performance.metrics.get(threshold.metric)
    if value is None:
        return None
    rows = f"on {performance.labelled_rows:,} labelled rows"
    if threshold.max is not None and value > threshold.max:
        return f"{threshold.metric} {value:,.6g} > {threshold.max:,.6g} {rows}"
    if threshold.min is not None and value < threshold.min:
        return f"{threshold.metric} {value:,.6g} < {threshold.min:,.6g} {rows}"
    return None
