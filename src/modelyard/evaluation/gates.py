"""Gates: the conditions of the spec a trained version must meet to be promotable.

Each :class:`~modelyard.spec.GateSpec` gives one :class:`GateResult`. A gate may combine
conditions (``min``, ``max``, ``beat_baseline``, ``max_regression``); it passes when none
fails. A condition that has nothing to compare with (no version in production yet) is
skipped with a reason; a gate whose every condition was skipped counts as passed and says
so with ``skipped=True``. A metric that is ``nan`` fails: an undefined value proves nothing.

Slice gates (``slice: Neighborhood``) check every value of the column with at least
``min_rows`` evaluation rows. ``beat_baseline`` per slice compares with the baseline's
slice metrics when ``baseline_slices`` is given (slice the baseline's predictions with
:func:`~modelyard.evaluation.slice_metrics`), and is skipped with a reason otherwise.

Example:
    >>> from modelyard.spec import GateSpec
    >>> [result] = check_gates(
    ...     [GateSpec(metric="rmse", max=40000)], metrics={"rmse": 23456.0},
    ...     baseline={}, slices=[], production=None, higher_is_better=lambda m: False)
    >>> result.passed, result.detail
    (True, 'rmse 23,456 <= 40,000')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from modelyard.evaluation.metrics import format_pair, format_value, is_better
from modelyard.evaluation.slices import SliceResult
from modelyard.spec import GateSpec

__all__ = ["GateResult", "check_gates"]

NO_PRODUCTION = "no version in production to compare with"
_MAX_LISTED_REASONS = 5


class GateResult(BaseModel):
    """The outcome of one gate.

    Attributes:
        gate: the gate as people read it (:meth:`GateSpec.describe`).
        passed: no condition failed (a skipped gate counts as passed).
        detail: the numbers behind the verdict; for a failed slice gate, every failing slice.
        skipped: nothing could be checked (e.g. no version in production yet).
        reason: why all or part of the gate was not checked, if so.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gate: str
    passed: bool
    detail: str
    skipped: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class _Outcome:
    status: Literal["pass", "fail", "skip"]
    text: str


@dataclass(frozen=True)
class _Reference:
    """A value to compare with, or why there is none."""

    value: float | None
    missing: str = ""


def check_gates(
    gates: list[GateSpec],
    *,
    metrics: dict[str, float],
    baseline: dict[str, float],
    slices: list[SliceResult],
    production: dict[str, float] | None,
    production_slices: list[SliceResult] | None = None,
    baseline_slices: list[SliceResult] | None = None,
    higher_is_better: Callable[[str], bool],
) -> list[GateResult]:
    """Check every gate against the candidate's metrics.

    Args:
        gates: the spec's gates (``spec.evaluation.gates``).
        metrics: the candidate's metrics on all evaluation rows.
        baseline: the dummy baseline's metrics on the same rows.
        slices: the candidate's slice metrics (every column a slice gate names).
        production: the production version's metrics on the same rows, or ``None`` when
            no version is in production (``max_regression`` conditions are then skipped).
        production_slices: the production version's slice metrics, for slice gates with
            ``max_regression``.
        baseline_slices: the baseline's slice metrics, for slice gates with
            ``beat_baseline``.
        higher_is_better: tells a metric's direction (``spec.higher_is_better``).

    Returns:
        One :class:`GateResult` per gate, in order.
    """
    results = []
    for gate in gates:
        hib = higher_is_better(gate.metric)
        if gate.slice is None:
            outcomes = _check_value(
                gate,
                metrics.get(gate.metric),
                hib=hib,
                baseline=_reference(baseline, gate.metric, "the baseline"),
                production=_production_reference(production, gate.metric),
            )
            results.append(_result(gate, outcomes, pass_detail=_join_passes(outcomes)))
        else:
            results.append(
                _check_slices(
                    gate,
                    slices,
                    hib=hib,
                    production=production,
                    production_slices=production_slices,
                    baseline_slices=baseline_slices,
                )
            )
    return results


def _reference(values: dict[str, float], metric: str, owner: str) -> _Reference:
    if metric not in values:
        return _Reference(None, f"{owner} has no {metric} to compare with")
    return _Reference(values[metric])


def _production_reference(production: dict[str, float] | None, metric: str) -> _Reference:
    if production is None:
        return _Reference(None, NO_PRODUCTION)
    return _reference(production, metric, "the production version")


def _check_slices(
    gate: GateSpec,
    slices: list[SliceResult],
    *,
    hib: bool,
    production: dict[str, float] | None,
    production_slices: list[SliceResult] | None,
    baseline_slices: list[SliceResult] | None,
) -> GateResult:
    column = gate.slice
    assert column is not None
    of_column = [s for s in slices if s.column == column]
    if not of_column:
        detail = f"no slice metrics for column {column!r}; add {column!r} to evaluation.slices"
        return _result(gate, [_Outcome("fail", detail)], pass_detail="")
    checked = [s for s in of_column if s.rows >= gate.min_rows]
    if not checked:
        largest = max(s.rows for s in of_column)
        reason = (
            f"no value of {column} has at least {gate.min_rows} evaluation rows "
            f"(largest has {largest})"
        )
        return _result(gate, [_Outcome("skip", reason)], pass_detail="")
    baseline_by_value = _by_value(baseline_slices, column)
    production_by_value = _by_value(production_slices, column)
    outcomes: list[_Outcome] = []
    for item in checked:
        where = f"slice {column}={item.value}: "
        if baseline_by_value is None:
            base = _Reference(None, "beat_baseline per slice needs the baseline's slice metrics")
        elif item.value not in baseline_by_value:
            base = _Reference(None, f"{where}the baseline has no metrics for this slice")
        else:
            base = _reference(baseline_by_value[item.value], gate.metric, "the baseline")
        if production is None:
            prod = _Reference(None, NO_PRODUCTION)
        elif production_by_value is None:
            prod = _Reference(None, "no slice metrics of the production version to compare with")
        elif item.value not in production_by_value:
            prod = _Reference(None, f"{where}the production version has no metrics here")
        else:
            prod = _reference(production_by_value[item.value], gate.metric, "production")
        found = _check_value(
            gate, item.metrics.get(gate.metric), hib=hib, baseline=base, production=prod
        )
        outcomes.extend(
            _Outcome(o.status, where + o.text if o.status == "fail" else o.text) for o in found
        )
    values = [(s.metrics.get(gate.metric, math.nan), s.value) for s in checked]
    worst_value, worst_name = min(values, key=lambda pair: -pair[0] if not hib else pair[0])
    pass_detail = (
        f"all {len(checked)} values of {column} with >= {gate.min_rows} rows pass; "
        f"worst {column}={worst_name}: {gate.metric} {format_value(worst_value)}"
    )
    return _result(gate, outcomes, pass_detail=pass_detail)


def _by_value(slices: list[SliceResult] | None, column: str) -> dict[str, dict[str, float]] | None:
    if slices is None:
        return None
    return {s.value: s.metrics for s in slices if s.column == column}


def _check_value(
    gate: GateSpec,
    value: float | None,
    *,
    hib: bool,
    baseline: _Reference,
    production: _Reference,
) -> list[_Outcome]:
    """Check each condition of ``gate`` on one metric value."""
    metric = gate.metric
    if value is None:
        return [_Outcome("fail", f"{metric} was not computed; add it to evaluation.metrics")]
    if math.isnan(value):
        return [_Outcome("fail", f"{metric} is nan: it could not be computed on these rows")]
    outcomes = []
    if gate.min is not None:
        shown, bound = format_pair(value, gate.min)
        ok = value >= gate.min
        outcomes.append(_verdict(ok, f"{metric} {shown} {'>=' if ok else '<'} {bound}"))
    if gate.max is not None:
        shown, bound = format_pair(value, gate.max)
        ok = value <= gate.max
        outcomes.append(_verdict(ok, f"{metric} {shown} {'<=' if ok else '>'} {bound}"))
    if gate.beat_baseline:
        outcomes.append(_beat_baseline(metric, value, baseline, hib=hib))
    if gate.max_regression is not None:
        outcomes.append(_max_regression(metric, value, production, gate.max_regression, hib=hib))
    return outcomes


def _beat_baseline(metric: str, value: float, baseline: _Reference, *, hib: bool) -> _Outcome:
    if baseline.value is None:
        return _Outcome("skip", baseline.missing)
    if math.isnan(baseline.value):
        return _Outcome("skip", f"the baseline's {metric} is nan; nothing to beat")
    shown, reference = format_pair(value, baseline.value)
    if is_better(metric, value, baseline.value, higher_is_better=hib):
        return _Outcome("pass", f"{metric} {shown} {'>' if hib else '<'} baseline {reference}")
    direction = "higher" if hib else "lower"
    text = f"{metric} {shown} is not better than baseline {reference} ({direction} is better)"
    return _Outcome("fail", text)


def _max_regression(
    metric: str, value: float, production: _Reference, share: float, *, hib: bool
) -> _Outcome:
    if production.value is None:
        return _Outcome("skip", production.missing)
    reference = production.value
    if math.isnan(reference):
        return _Outcome("skip", f"the production version's {metric} is nan; nothing to compare")
    worse_by = reference - value if hib else value - reference
    allowed = share * abs(reference)
    ok = worse_by <= allowed or math.isclose(worse_by, allowed, rel_tol=1e-12)
    shown, prod_shown = format_pair(value, reference)
    if reference != 0:
        change = f"{abs(worse_by) / abs(reference):.1%} {'worse' if worse_by > 0 else 'better'}"
    else:
        change = "worse" if worse_by > 0 else "no worse"
    limit = f"{share * 100:g}%"
    text = f"{metric} {shown} vs production {prod_shown}: {change} (limit {limit} worse)"
    return _verdict(ok, text)


def _verdict(ok: bool, text: str) -> _Outcome:
    return _Outcome("pass" if ok else "fail", text)


def _join_passes(outcomes: list[_Outcome]) -> str:
    return "; ".join(o.text for o in outcomes if o.status == "pass")


def _result(gate: GateSpec, outcomes: list[_Outcome], *, pass_detail: str) -> GateResult:
    failures = [o.text for o in outcomes if o.status == "fail"]
    passes = [o for o in outcomes if o.status == "pass"]
    skips = list(dict.fromkeys(o.text for o in outcomes if o.status == "skip"))
    if len(skips) > _MAX_LISTED_REASONS:
        more = len(skips) - _MAX_LISTED_REASONS
        skips = [*skips[:_MAX_LISTED_REASONS], f"and {more} more"]
    reason = "; ".join(skips) or None
    skipped = not failures and not passes
    if failures:
        detail = "; ".join(failures)
    elif skipped:
        detail = f"not checked: {reason}"
    else:
        detail = pass_detail
    return GateResult(
        gate=gate.describe(),
        passed=not failures,
        detail=detail,
        skipped=skipped,
        reason=reason,
    )
