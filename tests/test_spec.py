"""The project spec: validation and the messages a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import SpecError
from modelyard.spec import GateSpec, ProjectSpec, load_spec, parse_spec, spec_digest, spec_to_dict

BASE = """\
name: houses
task: regression
target: price
data:
  source: {path: data.csv}
model:
  estimator: sklearn.ensemble.HistGradientBoostingRegressor
"""


def test_minimal_spec_fills_defaults() -> None:
    spec = parse_spec(BASE)
    assert spec.seed == 42
    assert spec.split.method == "random" and spec.split.test_size == 0.2
    assert spec.evaluation.resolved_metrics("regression") == ["rmse", "mae", "r2"]
    assert spec.evaluation.resolved_primary("regression") == "rmse"
    assert spec.data.source.kind == "csv"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE + "split:\n  method: random\n  test_sise: 0.3\n",
            r"modelyard\.yaml:10 split\.test_sise: unknown key; did you mean 'test_size'\?",
        ),
        (
            BASE.replace("task: regression", "task: regresion"),
            r"modelyard\.yaml:2 task: found 'regresion'; input should be 'regression', 'binary'",
        ),
        (BASE.replace("target: price\n", ""), r"target: required key is missing"),
        (
            BASE + "features:\n  transforms:\n    - {kind: bogus, columns: [a]}\n",
            r"modelyard\.yaml:10 features\.transforms\.0: .*'log', 'power'",
        ),
        (
            BASE + "features:\n  transforms:\n    - {kind: log, columns: []}\n",
            r"features\.transforms\.0\.columns: found \[\]",
        ),
        (
            BASE + "evaluation:\n  gates:\n    - {metric: rmse}\n",
            r"evaluation\.gates\.0: a gate needs one of 'min', 'max'",
        ),
        (
            BASE + "evaluation:\n  metrics: [rmse, roc_auc]\n",
            r"metric 'roc_auc' does not apply to task 'regression'",
        ),
        (
            BASE.replace("path: data.csv", "path: data.csv, url: 'sqlite://'"),
            r"give exactly one of 'path'",
        ),
        (BASE + "split: {method: group}\n", r"a 'group' split needs 'column'"),
        (
            BASE + "split: {method: time}\n",
            r"a 'time' split needs split\.column or data\.timestamp_column",
        ),
        (BASE + "split: {test_size: 1.5}\n", r"split\.test_size: found 1\.5"),
        (BASE.replace("name: houses", "name: 'bad name!'"), r"name: .*letters, digits"),
        (
            BASE.replace("sklearn.ensemble.HistGradientBoostingRegressor", "not a path"),
            r"model\.estimator: .*import path",
        ),
        (
            BASE + "model:\n  estimator: a.B\n  class_weight: balanced\n",
            r"class_weight applies to classification",
        ),
        (
            BASE.replace("task: regression", "task: multiclass").replace(
                "target: price", "target: kind"
            )
            + "evaluation: {metrics: [f1]}\n",
            # the line of the metric, not the top of the file; only metrics that apply
            r"modelyard\.yaml:8 evaluation\.metrics\.0: metric 'f1' .*for binary tasks\); "
            r"expected one of accuracy, balanced_accuracy, f1_macro, log_loss, roc_auc$",
        ),
        (
            BASE.replace("task: regression", "task: multiclass").replace(
                "target: price", "target: kind"
            )
            + "evaluation:\n  metrics: [accuracy]\n  gates:\n    - {metric: recall, min: 0.5}\n",
            r"modelyard\.yaml:11 evaluation\.gates\.0\.metric: metric 'recall' .*for binary "
            r"tasks\); expected one of accuracy, balanced_accuracy, f1_macro, log_loss, roc_auc$",
        ),
        (
            BASE + "data_source: x\n",
            r"data_source: unknown key; expected one of data, description, evaluation",
        ),
        (
            BASE + "evaluation:\n  primary_metric: mae\n  metrics: [rmse]\n",
            r"primary_metric 'mae' is not among",
        ),
        (BASE + "features: {drop: [price]}\n", r"the target 'price' is listed in features\.drop"),
    ],
    ids=lambda value: value[:30] if isinstance(value, str) else None,
)
def test_bad_specs_name_line_key_and_fix(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_every_problem_is_listed_at_once() -> None:
    text = BASE.replace("task: regression", "task: nope") + "seeed: 1\nsplit: {methd: random}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    message = str(caught.value)
    assert "(3 problems)" in message
    assert "task:" in message and "seeed" in message and "split.methd" in message
    assert len(caught.value.details) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [broken\n", r"modelyard\.yaml:2: not valid YAML"),
        ("", r"expected a mapping of keys .*found an empty file"),
        ("- a\n- b\n", r"found list"),
    ],
)
def test_not_a_mapping_or_not_yaml(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_load_spec_from_folder_or_file(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yaml").write_text(BASE)
    assert load_spec(tmp_path).spec.name == "houses"
    loaded = load_spec(tmp_path / "modelyard.yaml")
    assert loaded.project_dir == tmp_path.absolute()
    with pytest.raises(SpecError, match=r"no project spec here; run `modelyard init"):
        load_spec(tmp_path / "elsewhere")
    (tmp_path / "modelyard.yaml").write_text(BASE + "seeed: 3\n")
    with pytest.raises(SpecError, match=r"modelyard\.yaml:8 seeed"):
        load_spec(tmp_path)


def test_spec_is_frozen_and_digest_is_stable() -> None:
    spec = parse_spec(BASE)
    with pytest.raises(Exception, match="frozen"):
        spec.seed = 3  # type: ignore[misc]
    same = parse_spec(BASE.replace("seed", "seed"))
    assert spec_digest(spec_to_dict(spec)) == spec_digest(spec_to_dict(same))
    other = parse_spec(BASE + "seed: 7\n")
    assert spec_digest(spec_to_dict(spec)) != spec_digest(spec_to_dict(other))


def test_gate_descriptions() -> None:
    gate = GateSpec(metric="rmse", max=40000, slice="town", min_rows=5)
    assert gate.describe() == "rmse <= 40000 per town"
    assert GateSpec(metric="r2", min=0.8, beat_baseline=True).describe() == (
        "r2 >= 0.8 and r2 beats baseline"
    )
    assert "5% worse than production" in GateSpec(metric="mae", max_regression=0.05).describe()


def test_sources_and_ensembles_parse() -> None:
    spec = ProjectSpec.model_validate(
        {
            "name": "x",
            "task": "binary",
            "target": "y",
            "data": {
                "source": {"url": "sqlite:///db.sqlite", "query": "select * from t"},
                "id_columns": ["id"],
                "timestamp_column": "ts",
                "as_of": "2024-01-01",
            },
            "model": {
                "estimator": "sklearn.ensemble.StackingClassifier",
                "estimators": [
                    {"name": "a", "estimator": "sklearn.linear_model.LogisticRegression"}
                ],
                "final_estimator": {"estimator": "sklearn.linear_model.LogisticRegression"},
                "class_weight": "balanced",
            },
        }
    )
    assert spec.data.source.kind == "sql"
    assert spec.model.estimators[0].name == "a"
    assert spec.higher_is_better("roc_auc") and not spec.higher_is_better("log_loss")
    with pytest.raises(Exception, match="'as_of' needs 'timestamp_column'"):
        ProjectSpec.model_validate(
            {**spec_to_dict(spec), "data": {"source": {"path": "a.parquet"}, "as_of": 3}}
        )
