"""Every kind of gate, passing and failing, with the messages people read."""

from __future__ import annotations

import math

from modelyard.evaluation import GateResult, SliceResult, check_gates
from modelyard.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS, GateSpec


def lower_better(metric: str) -> bool:
    return bool(REGRESSION_METRICS[metric])


def higher_better(metric: str) -> bool:
    return bool(CLASSIFICATION_METRICS[metric])


def town(value: str, rows: int, rmse: float) -> SliceResult:
    return SliceResult(column="town", value=value, rows=rows, metrics={"rmse": rmse})


SLICES = [
    town("NAmes", 50, 51200.0),
    town("OldTown", 40, 30000.0),
    town("Edwards", 30, 45000.0),
    town("Tiny", 3, 99000.0),
]


def check(
    gate: GateSpec,
    *,
    metrics: dict[str, float] | None = None,
    baseline: dict[str, float] | None = None,
    slices: list[SliceResult] | None = None,
    production: dict[str, float] | None = None,
    production_slices: list[SliceResult] | None = None,
    baseline_slices: list[SliceResult] | None = None,
    regression: bool = True,
) -> GateResult:
    [result] = check_gates(
        [gate],
        metrics={"rmse": 23456.0} if metrics is None else metrics,
        baseline={"rmse": 52000.0} if baseline is None else baseline,
        slices=SLICES if slices is None else slices,
        production=production,
        production_slices=production_slices,
        baseline_slices=baseline_slices,
        higher_is_better=lower_better if regression else higher_better,
    )
    return result


def test_max_passes_and_fails() -> None:
    ok = check(GateSpec(metric="rmse", max=40000))
    assert (ok.gate, ok.passed, ok.skipped, ok.detail) == (
        "rmse <= 40000",
        True,
        False,
        "rmse 23,456 <= 40,000",
    )
    bad = check(GateSpec(metric="rmse", max=20000))
    assert not bad.passed
    assert bad.detail == "rmse 23,456 > 20,000"


def test_min_passes_and_fails() -> None:
    gate = GateSpec(metric="roc_auc", min=0.85)
    ok = check(gate, metrics={"roc_auc": 0.9}, regression=False)
    assert ok.passed and ok.detail == "roc_auc 0.9 >= 0.85"
    bad = check(gate, metrics={"roc_auc": 0.84996}, regression=False)
    assert not bad.passed
    assert bad.detail == "roc_auc 0.84996 < 0.85"  # never "0.85 < 0.85"


def test_bound_itself_passes() -> None:
    assert check(GateSpec(metric="rmse", max=23456)).passed


def test_beat_baseline_lower_is_better() -> None:
    gate = GateSpec(metric="rmse", beat_baseline=True)
    ok = check(gate)
    assert ok.passed and ok.detail == "rmse 23,456 < baseline 52,000"
    tie = check(gate, metrics={"rmse": 52000.0})
    assert not tie.passed
    assert tie.detail == "rmse 52,000 is not better than baseline 52,000 (lower is better)"


def test_beat_baseline_higher_is_better() -> None:
    gate = GateSpec(metric="roc_auc", beat_baseline=True)
    ok = check(gate, metrics={"roc_auc": 0.8}, baseline={"roc_auc": 0.5}, regression=False)
    assert ok.passed and ok.detail == "roc_auc 0.8 > baseline 0.5"
    bad = check(gate, metrics={"roc_auc": 0.45}, baseline={"roc_auc": 0.5}, regression=False)
    assert not bad.passed and "(higher is better)" in bad.detail


def test_max_regression_skipped_without_production() -> None:
    result = check(GateSpec(metric="rmse", max_regression=0.05))
    assert result.passed and result.skipped
    assert result.reason == "no version in production to compare with"


def test_max_regression_within_and_beyond_the_limit() -> None:
    gate = GateSpec(metric="rmse", max_regression=0.05)
    ok = check(gate, metrics={"rmse": 105.0}, production={"rmse": 100.0})
    assert ok.passed and not ok.skipped
    assert ok.detail == "rmse 105 vs production 100: 5.0% worse (limit 5% worse)"
    bad = check(gate, metrics={"rmse": 106.0}, production={"rmse": 100.0})
    assert not bad.passed
    assert bad.detail == "rmse 106 vs production 100: 6.0% worse (limit 5% worse)"
    better = check(gate, metrics={"rmse": 90.0}, production={"rmse": 100.0})
    assert better.passed and "10.0% better" in better.detail


def test_max_regression_for_higher_is_better_uses_absolute_production_value() -> None:
    gate = GateSpec(metric="roc_auc", max_regression=0.1)
    ok = check(gate, metrics={"roc_auc": 0.72}, production={"roc_auc": 0.8}, regression=False)
    assert ok.passed  # 0.08 worse, 0.08 allowed
    bad = check(gate, metrics={"roc_auc": 0.7}, production={"roc_auc": 0.8}, regression=False)
    assert not bad.passed and "12.5% worse" in bad.detail


def test_nan_metric_fails_with_a_clear_detail() -> None:
    result = check(GateSpec(metric="rmse", max=40000), metrics={"rmse": math.nan})
    assert not result.passed
    assert result.detail == "rmse is nan: it could not be computed on these rows"


def test_metric_not_computed_fails_and_says_how_to_fix() -> None:
    result = check(GateSpec(metric="mae", max=1.0))
    assert not result.passed
    assert result.detail == "mae was not computed; add it to evaluation.metrics"


def test_combined_gate_partly_skipped_reports_the_reason() -> None:
    result = check(GateSpec(metric="rmse", max=40000, max_regression=0.05))
    assert result.passed and not result.skipped
    assert result.detail == "rmse 23,456 <= 40,000"
    assert result.reason == "no version in production to compare with"


def test_slice_gate_lists_every_failing_slice_and_ignores_small_ones() -> None:
    result = check(GateSpec(metric="rmse", max=40000, slice="town", min_rows=20))
    assert result.gate == "rmse <= 40000 per town"
    assert not result.passed
    assert result.detail == (
        "slice town=NAmes: rmse 51,200 > 40,000; slice town=Edwards: rmse 45,000 > 40,000"
    )
    assert "Tiny" not in result.detail


def test_slice_gate_passes_and_names_the_worst_slice() -> None:
    result = check(GateSpec(metric="rmse", max=60000, slice="town", min_rows=20))
    assert result.passed
    assert result.detail == (
        "all 3 values of town with >= 20 rows pass; worst town=NAmes: rmse 51,200"
    )


def test_slice_gate_with_no_large_enough_slice_is_skipped() -> None:
    result = check(GateSpec(metric="rmse", max=1, slice="town", min_rows=100))
    assert result.passed and result.skipped
    assert result.reason == "no value of town has at least 100 evaluation rows (largest has 50)"


def test_slice_gate_on_a_column_without_slices_fails() -> None:
    result = check(GateSpec(metric="rmse", max=1, slice="zone"))
    assert not result.passed
    assert result.detail == "no slice metrics for column 'zone'; add 'zone' to evaluation.slices"


def test_slice_gate_nan_slice_fails() -> None:
    slices = [town("A", 30, math.nan), town("B", 30, 1.0)]
    result = check(GateSpec(metric="rmse", max=10, slice="town"), slices=slices)
    assert not result.passed
    assert result.detail == "slice town=A: rmse is nan: it could not be computed on these rows"


def test_slice_beat_baseline_skipped_without_baseline_slices() -> None:
    result = check(GateSpec(metric="rmse", beat_baseline=True, slice="town"))
    assert result.passed and result.skipped
    assert result.reason == "beat_baseline per slice needs the baseline's slice metrics"


def test_slice_beat_baseline_with_baseline_slices() -> None:
    baseline_slices = [
        town("NAmes", 50, 60000.0),
        town("OldTown", 40, 25000.0),
        town("Edwards", 30, 50000.0),
    ]
    result = check(
        GateSpec(metric="rmse", beat_baseline=True, slice="town"), baseline_slices=baseline_slices
    )
    assert not result.passed
    assert result.detail == (
        "slice town=OldTown: rmse 30,000 is not better than baseline 25,000 (lower is better)"
    )


def test_slice_max_regression_against_production_slices() -> None:
    gate = GateSpec(metric="rmse", max_regression=0.1, slice="town")
    production_slices = [town("NAmes", 50, 50000.0), town("OldTown", 40, 20000.0)]
    result = check(gate, production={"rmse": 20000.0}, production_slices=production_slices)
    assert not result.passed
    assert result.detail == (
        "slice town=OldTown: rmse 30,000 vs production 20,000: 50.0% worse (limit 10% worse)"
    )
    # Edwards is new in this evaluation: nothing to compare with, said so
    assert result.reason == "slice town=Edwards: the production version has no metrics here"
    skipped = check(gate)
    assert skipped.skipped and skipped.reason == "no version in production to compare with"


def test_one_result_per_gate_in_order() -> None:
    gates = [GateSpec(metric="rmse", max=1), GateSpec(metric="rmse", max=10**6)]
    results = check_gates(
        gates,
        metrics={"rmse": 5.0},
        baseline={},
        slices=[],
        production=None,
        higher_is_better=lower_better,
    )
    assert [r.passed for r in results] == [False, True]
    assert GateResult.model_validate(results[0].model_dump(mode="json")) == results[0]
