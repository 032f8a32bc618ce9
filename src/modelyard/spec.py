"""The project spec: one ``modelyard.yaml`` validated by frozen pydantic models.

A bad spec stops with one :class:`~modelyard.errors.SpecError` whose lines name the
file, the line, the dotted key, what was found and what is expected::

    modelyard.yaml:14 split.test_sise: unknown key; did you mean 'test_size'?

Example:
    >>> spec = ProjectSpec.model_validate({
    ...     "name": "churn", "task": "binary", "target": "churned",
    ...     "data": {"source": {"path": "data.csv"}},
    ...     "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
    ... })
    >>> spec.evaluation.resolved_metrics("binary")[:2]
    ['roc_auc', 'accuracy']
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelyard.errors import SpecError

__all__ = [
    "BinTransform",
    "CLASSIFICATION_METRICS",
    "ColumnSpec",
    "CrossTransform",
    "CustomTransform",
    "DataSpec",
    "DatePartsTransform",
    "EncodeSpec",
    "EstimatorSpec",
    "EvaluationSpec",
    "FeaturesSpec",
    "GateSpec",
    "ImputeSpec",
    "LoadedSpec",
    "LogTransform",
    "ModelSpec",
    "NamedEstimatorSpec",
    "PowerTransform",
    "ProjectSpec",
    "REGRESSION_METRICS",
    "RatioTransform",
    "RetrainSpec",
    "RetrainThreshold",
    "SPEC_FILENAME",
    "SourceSpec",
    "SplitSpec",
    "Task",
    "Transform",
    "load_spec",
    "parse_spec",
    "spec_digest",
    "spec_to_dict",
]

SPEC_FILENAME = "modelyard.yaml"

Task = Literal["regression", "binary", "multiclass"]
Scalar = int | float | date | datetime | str

#: metric name -> True when higher is better.
REGRESSION_METRICS: dict[str, bool] = {
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
    "median_ae": False,
}
CLASSIFICATION_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "f1_macro": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "brier": False,
}
_BINARY_ONLY = {"f1", "precision", "recall", "brier"}
_DEFAULT_METRICS: dict[str, list[str]] = {
    "regression": ["rmse", "mae", "r2"],
    "binary": ["roc_auc", "accuracy", "f1", "log_loss"],
    "multiclass": ["accuracy", "f1_macro", "log_loss"],
}
#: Marks a model-level check's message that names its own key: "@evaluation.metrics.1: ...".
_AT = "@"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: A monitoring window: a time (``6h``) or a row count (``1000rows``).
_WINDOW_RE = re.compile(r"^\s*[1-9]\d*\s*([smhdw]|rows?)\s*$")
_IMPORT_PATH_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- data ---------------------------------------------------------------------------


class SourceSpec(_Frozen):
    """Where the rows come from: a CSV/Parquet file, or a SQL query on any SQLAlchemy URL."""

    path: str | None = None
    format: Literal["csv", "parquet"] | None = None
    url: str | None = None
    query: str | None = None
    table: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' (a CSV or Parquet file) or 'url' (SQL)")
        if self.url is not None and (self.query is None) == (self.table is None):
            raise ValueError("a SQL source needs exactly one of 'query' or 'table'")
        if self.path is not None and (self.query or self.table):
            raise ValueError("'query' and 'table' go with 'url', not with 'path'")
        return self

    @property
    def kind(self) -> Literal["csv", "parquet", "sql"]:
        """The reader this source needs."""
        if self.url is not None:
            return "sql"
        if self.format is not None:
            return self.format
        assert self.path is not None
        name = self.path.lower()
        return "parquet" if name.endswith((".parquet", ".pq")) else "csv"


class ColumnSpec(_Frozen):
    """What the spec knows about one input column.

    ``serving: false``: the column is not available when the model is used live (e.g. it
    is recorded after the outcome); ``reason`` says why, for the people reading the spec.
    """

    serving: bool = True
    reason: str = ""


class DataSpec(_Frozen):
    """The source, the id and timestamp columns, and an optional point in time to read as of.

    ``out_of_range`` says what a number outside its training range (widened by
    ``range_tolerance`` times the range's span on each side) does wherever the model
    takes input (serving, evaluation on new data): ``ignore``, ``warn`` (accepted,
    counted and logged) or ``refuse`` (an ``out_of_range`` problem, 422 at serving).
    ``drop_missing_target`` drops rows whose target is missing (counted in the lineage)
    instead of refusing them. ``columns`` describes single columns: ``serving: false``
    marks one that will not exist when the model is used live (known only after the
    outcome, or filled in later); training refuses a model that uses it as a feature.
    """

    source: SourceSpec
    id_columns: list[str] = Field(default_factory=list)
    timestamp_column: str | None = None
    as_of: Scalar | None = None
    out_of_range: Literal["ignore", "warn", "refuse"] = "warn"
    range_tolerance: float = Field(default=0.0, ge=0)
    drop_missing_target: bool = False
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)

    def not_at_serving(self) -> list[str]:
        """The columns marked ``serving: false``: absent when the model is used live."""
        return [name for name, column in self.columns.items() if not column.serving]

    @model_validator(mode="after")
    def _as_of_needs_timestamp(self) -> DataSpec:
        if self.as_of is not None and self.timestamp_column is None:
            raise ValueError("'as_of' needs 'timestamp_column' to know what time a row has")
        return self


class SplitSpec(_Frozen):
    """How rows are split into training and evaluation rows.

    - ``random``: a seeded shuffle, stratified on the target for classification;
    - ``time``: rows whose ``column`` (default: the timestamp column) is at or after
      ``test_from`` are evaluation rows; without ``test_from``, the latest ``test_size``;
    - ``group``: whole groups of ``column`` go to one side (no group leaks across).
    """

    method: Literal["random", "time", "group"] = "random"
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    column: str | None = None
    test_from: Scalar | None = None
    stratify: bool = True

    @model_validator(mode="after")
    def _check(self) -> SplitSpec:
        if self.method == "group" and self.column is None:
            raise ValueError("a 'group' split needs 'column', the column that names the groups")
        if self.test_from is not None and self.method != "time":
            raise ValueError("'test_from' goes with method 'time'")
        return self


# -- features -----------------------------------------------------------------------


class ImputeSpec(_Frozen):
    """How missing values are filled before encoding and scaling."""

    numeric: Literal["median", "mean", "most_frequent", "zero", "none"] = "median"
    categorical: Literal["most_frequent", "constant", "none"] = "constant"
    add_indicator: bool = False


class EncodeSpec(_Frozen):
    """Categorical encoding, with rare-category grouping and unknown handling.

    ``min_frequency`` groups categories seen less often than this (a share if below 1,
    a count otherwise) into one "infrequent" category. ``unknown`` says what happens to a
    category never seen in training: ``ignore`` encodes it as infrequent/unknown, ``error``
    makes validation and serving reject it.
    """

    method: Literal["onehot", "ordinal"] = "onehot"
    min_frequency: float | None = Field(default=None, gt=0)
    max_categories: int | None = Field(default=None, ge=2)
    unknown: Literal["ignore", "error"] = "ignore"


class _ColumnsTransform(_Frozen):
    columns: list[str] = Field(min_length=1)


class LogTransform(_ColumnsTransform):
    """``log(x + offset)`` on non-negative numeric columns."""

    kind: Literal["log"]
    offset: float = Field(default=1.0, ge=0)


class PowerTransform(_ColumnsTransform):
    """Yeo-Johnson or Box-Cox power transform to make columns more Gaussian."""

    kind: Literal["power"]
    method: Literal["yeo-johnson", "box-cox"] = "yeo-johnson"


class BinTransform(_ColumnsTransform):
    """Discretise numeric columns into ``bins`` bins."""

    kind: Literal["bin"]
    bins: int = Field(default=5, ge=2)
    strategy: Literal["uniform", "quantile", "kmeans"] = "quantile"
    encode: Literal["ordinal", "onehot"] = "ordinal"


DatePart = Literal["year", "month", "day", "dayofweek", "dayofyear", "quarter", "hour"]
_DEFAULT_DATE_PARTS: tuple[DatePart, ...] = ("year", "month", "dayofweek")


class DatePartsTransform(_ColumnsTransform):
    """Replace date/time columns by numeric parts named ``<column>_<part>``."""

    kind: Literal["date_parts"]
    parts: list[DatePart] = Field(default_factory=lambda: list(_DEFAULT_DATE_PARTS))


class RatioTransform(_Frozen):
    """A new numeric column ``name = numerator / denominator`` (missing where 0)."""

    kind: Literal["ratio"]
    numerator: str
    denominator: str
    name: str


class CrossTransform(_Frozen):
    """A new categorical column ``name`` crossing two or more columns' values."""

    kind: Literal["cross"]
    columns: list[str] = Field(min_length=2)
    name: str


class CustomTransform(_ColumnsTransform):
    """A user transformer class, by import path, applied to ``columns``.

    The module is imported from the project folder (or anything on ``sys.path``). Its
    source is hashed into the feature-definition hash, so changing it changes the version.
    """

    kind: Literal["custom"]
    transformer: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("transformer")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH_RE.match(value):
            raise ValueError(
                f"expected an import path like 'my_features.MyTransformer', got {value!r}"
            )
        return value


Transform = Annotated[
    LogTransform
    | PowerTransform
    | BinTransform
    | DatePartsTransform
    | RatioTransform
    | CrossTransform
    | CustomTransform,
    Field(discriminator="kind"),
]


class FeaturesSpec(_Frozen):
    """Which columns are features and how they are transformed.

    ``numeric`` and ``categorical`` are lists of columns, or ``auto`` to take every
    remaining column of that kind (not the target, an id, a drop, or used by a transform).
    """

    numeric: list[str] | Literal["auto"] = "auto"
    categorical: list[str] | Literal["auto"] = "auto"
    drop: list[str] = Field(default_factory=list)
    impute: ImputeSpec = Field(default_factory=ImputeSpec)
    scale: Literal["none", "standard", "robust", "minmax"] = "none"
    encode: EncodeSpec = Field(default_factory=EncodeSpec)
    transforms: list[Transform] = Field(default_factory=list)


# -- model --------------------------------------------------------------------------


class EstimatorSpec(_Frozen):
    """An estimator by import path, its hyperparameters, and for ensembles its members."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    estimators: list[NamedEstimatorSpec] = Field(default_factory=list)
    final_estimator: EstimatorSpec | None = None

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH_RE.match(value):
            raise ValueError(
                "expected an import path like 'sklearn.ensemble.HistGradientBoostingRegressor', "
                f"got {value!r}"
            )
        return value


class NamedEstimatorSpec(EstimatorSpec):
    """A member of an ensemble (stacking or voting)."""

    name: str


class ModelSpec(EstimatorSpec):
    """The estimator to fit; ``class_weight`` re-weights imbalanced classes."""

    class_weight: Literal["balanced"] | dict[str, float] | None = None


# -- evaluation ---------------------------------------------------------------------


class GateSpec(_Frozen):
    """A condition a trained model must meet to be promotable.

    - ``min`` / ``max``: absolute bounds on ``metric``;
    - ``beat_baseline``: ``metric`` must be better than the dummy baseline's;
    - ``max_regression``: ``metric`` may be at most this share worse than the version in
      production, on the same evaluation rows (0.05 = 5%);
    - ``slice``: check the gate on each value of that column with at least ``min_rows``
      evaluation rows, instead of on all rows.
    """

    metric: str
    min: float | None = None
    max: float | None = None
    beat_baseline: bool = False
    max_regression: float | None = Field(default=None, ge=0)
    slice: str | None = None
    min_rows: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _has_condition(self) -> GateSpec:
        if (
            self.min is None
            and self.max is None
            and not self.beat_baseline
            and (self.max_regression is None)
        ):
            raise ValueError("a gate needs one of 'min', 'max', 'beat_baseline', 'max_regression'")
        return self

    def describe(self) -> str:
        """A short human description, e.g. ``rmse <= 40000 per Neighborhood``."""
        parts = []
        if self.min is not None:
            parts.append(f"{self.metric} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.metric} <= {self.max:g}")
        if self.beat_baseline:
            parts.append(f"{self.metric} beats baseline")
        if self.max_regression is not None:
            parts.append(f"{self.metric} at most {self.max_regression:.0%} worse than production")
        text = " and ".join(parts)
        return f"{text} per {self.slice}" if self.slice else text


class EvaluationSpec(_Frozen):
    """Metrics, slices and gates; ``diff_tolerance`` is the differential test's threshold.

    ``leakage`` says what ``train`` does with features that look like target leaks:
    ``warn`` (report them), ``fail`` (also add a failing gate), ``off`` (no check).
    """

    metrics: list[str] | None = None
    primary_metric: str | None = None
    slices: list[str] = Field(default_factory=list)
    gates: list[GateSpec] = Field(default_factory=list)
    diff_tolerance: float = Field(default=1e-6, ge=0)
    top_changes: int = Field(default=10, ge=0)
    leakage: Literal["warn", "fail", "off"] = "warn"

    def resolved_metrics(self, task: Task) -> list[str]:
        """The metrics to compute for ``task`` (the defaults if none were given)."""
        return list(self.metrics) if self.metrics else list(_DEFAULT_METRICS[task])

    def resolved_primary(self, task: Task) -> str:
        """The metric that ranks versions: ``primary_metric`` or the first metric."""
        return self.primary_metric or self.resolved_metrics(task)[0]


# -- retraining ----------------------------------------------------------------------


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


# -- project ------------------------------------------------------------------------


class ProjectSpec(_Frozen):
    """The whole project: data, split, features, model, evaluation, seed.

    ``positive_class`` names the class of a binary target that f1, precision, recall,
    ROC AUC and brier are about (default: the second in sorted order).
    """

    name: str
    task: Task
    target: str
    positive_class: str | bool | int | float | None = None
    seed: int = 42
    description: str = ""
    data: DataSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    model: ModelSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "expected letters, digits, '.', '_' or '-' (starting with a letter or digit), "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProjectSpec:
        features = self.features
        if self.target in features.drop:
            raise ValueError(f"the target {self.target!r} is listed in features.drop")
        for group in (features.numeric, features.categorical):
            if isinstance(group, list) and self.target in group:
                raise ValueError(f"the target {self.target!r} cannot also be a feature")
        if (
            self.split.method == "time"
            and self.split.column is None
            and self.data.timestamp_column is None
        ):
            raise ValueError("a 'time' split needs split.column or data.timestamp_column")
        known = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        if self.task == "multiclass":
            known = {name: up for name, up in known.items() if name not in _BINARY_ONLY}
        metrics = self.evaluation.resolved_metrics(self.task)
        named = [
            (f"evaluation.metrics.{i}", m) for i, m in enumerate(self.evaluation.metrics or [])
        ]
        named += [
            (f"evaluation.gates.{i}.metric", g.metric) for i, g in enumerate(self.evaluation.gates)
        ]
        named += [
            (f"retrain.performance.{i}.metric", t.metric)
            for i, t in enumerate(self.retrain.performance)
        ]
        for key, metric in named:
            if metric not in known:
                binary = " (it is for binary tasks)" if metric in _BINARY_ONLY else ""
                raise ValueError(
                    f"{_AT}{key}: metric {metric!r} does not apply to task {self.task!r}"
                    f"{binary}; expected one of {', '.join(sorted(known))}"
                )
        primary = self.evaluation.primary_metric
        if primary is not None and primary not in metrics:
            raise ValueError(f"primary_metric {primary!r} is not among the metrics {metrics}")
        if self.model.class_weight is not None and self.task == "regression":
            raise ValueError("model.class_weight applies to classification tasks only")
        if self.positive_class is not None and self.task != "binary":
            raise ValueError("positive_class applies to binary tasks only; remove it")
        serving = set(self.data.not_at_serving())
        for kind, group in (
            ("numeric", self.features.numeric),
            ("categorical", self.features.categorical),
        ):
            used = sorted(serving & set(group)) if isinstance(group, list) else []
            if used:
                raise ValueError(
                    f"{_AT}features.{kind}: {', '.join(map(repr, used))} is marked "
                    "serving: false in data.columns (not available when the model is used), "
                    "so it cannot be a feature; remove it from the feature list"
                )
        return self

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of ``metric`` is better."""
        table = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        return table[metric]


EstimatorSpec.model_rebuild()
NamedEstimatorSpec.model_rebuild()
ModelSpec.model_rebuild()


# -- loading ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the file it came from; paths in it are relative to ``project_dir``."""

    spec: ProjectSpec
    path: Path
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, repr=False)

    @property
    def project_dir(self) -> Path:
        """The folder the spec file sits in."""
        return self.path.parent

    def where(self, key: str) -> str:
        """``file:line`` of a dotted ``key`` (its closest written parent if it has none).

        Example:
            >>> lines = {("model",): 9, ("model", "params"): 11}
            >>> loaded = LoadedSpec(spec=None, path=Path("p/modelyard.yaml"), lines=lines)
            >>> loaded.where("model.params.max_iter")
            'p/modelyard.yaml:11'
        """
        loc = tuple(int(part) if part.isdigit() else part for part in key.split("."))
        line = _closest_line(loc, self.lines)
        return f"{self.path}:{line}" if line else str(self.path)


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file, or the ``modelyard.yaml`` of a project folder.

    Raises:
        SpecError: the file is missing, is not YAML, or breaks the schema; every problem
            is listed with its line and dotted key.
    """
    target = Path(path)
    if target.is_dir():
        target = target / SPEC_FILENAME
    if not target.is_file():
        hint = "run `modelyard init DATA --target COLUMN` to create one"
        raise SpecError(f"{target}: no project spec here; {hint}")
    text = target.read_text(encoding="utf-8")
    spec, lines = _parse(text, source=str(target))
    return LoadedSpec(spec=spec, path=target.absolute(), lines=lines)


def parse_spec(text: str, *, source: str = SPEC_FILENAME) -> ProjectSpec:
    """Validate spec ``text``; ``source`` names it in error messages."""
    return _parse(text, source=source)[0]


def _parse(text: str, *, source: str) -> tuple[ProjectSpec, dict[tuple[str | int, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        found = type(raw).__name__ if raw is not None else "an empty file"
        raise SpecError(f"{source}: expected a mapping of keys (name, task, ...), found {found}")
    lines = _node_lines(node)
    try:
        return ProjectSpec.model_validate(raw), lines
    except ValidationError as exc:
        problems = [_describe_error(err, lines, source) for err in exc.errors()]
        head = f"{source}: invalid project spec ({len(problems)} problem"
        head += "s)" if len(problems) != 1 else ")"
        raise SpecError("\n".join([head, *problems]), details=problems) from None


def spec_to_dict(spec: ProjectSpec) -> dict[str, Any]:
    """The spec as plain JSON data, defaults filled in, for lineage and comparison."""
    return spec.model_dump(mode="json")


def spec_digest(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (sorted keys, no whitespace)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _node_lines(node: yaml.Node | None) -> dict[tuple[str | int, ...], int]:
    """Map each key path of the YAML document to the (1-based) line it starts on."""
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(current: yaml.Node, path: tuple[str | int, ...]) -> None:
        lines[path] = current.start_mark.line + 1
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = (*path, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
                lines[key] = key_node.start_mark.line + 1
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, (*path, index))

    if node is not None:
        walk(node, ())
    return lines


def _describe_error(err: Any, lines: dict[tuple[str | int, ...], int], source: str) -> str:
    # Discriminated unions add the tag ('log', 'bin', ...) to loc; it is no YAML key.
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and "[" in part))
    loc = tuple(p for p in loc if p not in _TRANSFORM_KINDS or not _follows_index(loc, p))
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = _closest_line(loc, lines)
    where = f"{source}:{line}" if line else source
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        parent = _model_fields_at(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), parent, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        known = f"; expected one of {', '.join(sorted(parent))}" if parent and not hint else ""
        return f"{where} {key}: unknown key{suggestion}{known}"
    if kind == "missing":
        return f"{where} {key}: required key is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    if message.startswith(_AT):  # a cross-field check that knows its key
        key, _, message = message.removeprefix(_AT).partition(": ")
        loc = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        line = _closest_line(loc, lines)
        where = f"{source}:{line}" if line else source
        return f"{where} {key}: {message}"
    if kind in ("value_error", "assertion_error") or isinstance(found, dict):
        return f"{where} {key}: {message}"
    return f"{where} {key}: found {found!r}; {message[0].lower()}{message[1:]}"


_TRANSFORM_KINDS = {"log", "power", "bin", "date_parts", "ratio", "cross", "custom"}


def _follows_index(loc: tuple[Any, ...], part: Any) -> bool:
    index = loc.index(part)
    return index > 0 and isinstance(loc[index - 1], int)


def _closest_line(loc: tuple[Any, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _model_fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names allowed at a key path, for 'did you mean' hints."""
    model: Any = ProjectSpec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
