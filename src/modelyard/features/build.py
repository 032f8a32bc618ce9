"""Turn the spec's ``features`` section into a scikit-learn preprocessor.

Three steps, each a pure function:

1. :func:`plan_features` resolves the spec against the training frame: which raw
   columns are inputs, of which kind, and which go through the default branches.
   Every column the spec names is checked here, with errors that name the spec key.
2. :func:`build_preprocessor` builds the unfitted transformer: :class:`FrameCoercer`,
   then the derived columns (ratio, cross), then one ``ColumnTransformer`` whose
   branches are scikit-learn built-ins wherever possible (imputers, scalers, encoders,
   ``PowerTransformer``, ``KBinsDiscretizer``), plus user transformers for ``custom``.
3. :func:`feature_definition_hash` versions the definition: the features spec, the plan
   and the source of every user transformer module.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
    RobustScaler,
    StandardScaler,
)

from modelyard.errors import MissingExtraError, SpecError
from modelyard.features.transformers import (
    ColumnKind,
    Cross,
    DateParts,
    FrameCoercer,
    Log1pTransformer,
    Ratio,
)
from modelyard.spec import FeaturesSpec, ProjectSpec, spec_digest

__all__ = [
    "FeaturePlan",
    "build_preprocessor",
    "feature_definition_hash",
    "load_object",
    "plan_features",
    "project_on_path",
]

logger = logging.getLogger(__name__)

#: Top-level modules that come with an optional extra of modelyard.
_EXTRAS = {"lightgbm": "lightgbm", "xgboost": "xgboost"}
_MISSING_CATEGORY = "__missing__"
_NUMERIC_USES = ("log", "power", "bin")
_CONSUMING_KINDS = ("log", "power", "bin", "date_parts", "custom")


@dataclass(frozen=True)
class FeaturePlan:
    """The spec's features resolved against the training data.

    Attributes:
        numeric: raw input columns read as numbers (float64).
        categorical: raw input columns read as categories (``str``).
        datetime: raw input columns read as dates/times (used by ``date_parts``).
        input_columns: every raw column the pipeline consumes, in feature order
            (``numeric + categorical + datetime``); recorded in lineage.
        plain_numeric: columns of the default numeric branch (impute, scale), derived
            ratio columns last.
        plain_categorical: columns of the default categorical branch (impute, encode),
            derived cross columns last.
    """

    numeric: list[str]
    categorical: list[str]
    datetime: list[str]
    input_columns: list[str]
    plain_numeric: list[str]
    plain_categorical: list[str]

    def to_dict(self) -> dict[str, list[str]]:
        """The plan as plain JSON data."""
        return asdict(self)


def _data_kind(series: pd.Series[Any]) -> ColumnKind:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "categorical"


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Planner:
    """Collects column claims and problems while a plan is resolved."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.columns = [str(column) for column in df.columns]
        self.kinds: dict[str, ColumnKind] = {}
        self.claimed_by: dict[str, str] = {}
        self.problems: list[str] = []

    def exists(self, key: str, column: str) -> bool:
        if column in self.df.columns:
            return True
        hint = _did_you_mean(column, self.columns)
        self.problems.append(f"{key}: column {column!r} is not in the data{hint}")
        return False

    def claim(self, key: str, column: str, kind: ColumnKind) -> None:
        known = self.kinds.get(column)
        if known is None:
            self.kinds[column], self.claimed_by[column] = kind, key
        elif known != kind:
            self.problems.append(
                f"{key}: column {column!r} is used as {kind} here but as {known} by "
                f"{self.claimed_by[column]}; give each column one kind"
            )

    def check_numeric(self, key: str, column: str) -> None:
        series = self.df[column]
        if _data_kind(series) == "numeric" or pd.api.types.is_bool_dtype(series.dtype):
            return
        converted = pd.to_numeric(series, errors="coerce")
        bad = series[converted.isna() & series.notna()]
        if len(bad):
            self.problems.append(
                f"{key}: column {column!r} must be numeric but holds values such as "
                f"{bad.iloc[0]!r}; list it under features.categorical instead"
            )

    def check_datetime(self, key: str, column: str) -> None:
        series = self.df[column]
        if _data_kind(series) == "datetime":
            return
        sample = series.dropna().head(1000)
        parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed")
        bad = sample[parsed.isna()]
        if len(bad):
            self.problems.append(
                f"{key}: column {column!r} must hold dates or times but holds values such "
                f"as {bad.iloc[0]!r}; use ISO 8601 text such as '2010-06-30'"
            )


def plan_features(spec: ProjectSpec, df: pd.DataFrame) -> FeaturePlan:
    """Resolve the spec's features against the training frame ``df``.

    ``auto`` lists take every column of that kind (numbers -> numeric; text, bool and
    category -> categorical) that is not the target, an id column, the timestamp column,
    in ``features.drop``, entirely empty, or replaced by a transform (``log``, ``power``, ``bin``,
    ``date_parts``, ``custom``). Inputs of ``ratio`` and ``cross`` stay features: those
    transforms add a column. Date/time columns are used only through ``date_parts``.

    Args:
        spec: the project spec.
        df: the training frame (at least the columns the spec names).

    Returns:
        The resolved plan.

    Raises:
        SpecError: a named column is not in the data, is named twice in conflicting
            roles, or has the wrong kind of values; every problem names its spec key.
    """
    features = spec.features
    planner = _Planner(df)
    for index, column in enumerate(features.drop):
        planner.exists(f"features.drop.{index}", column)
    explicit: dict[str, list[str]] = {}
    groups: tuple[ColumnKind, ...] = ("numeric", "categorical")
    for group in groups:
        listed = getattr(features, group)
        if listed == "auto":
            continue
        explicit[group] = [c for c in listed if planner.exists(f"features.{group}", c)]
        for column in explicit[group]:
            planner.claim(f"features.{group}", column, group)
            if column in features.drop:
                planner.problems.append(
                    f"features.{group}: column {column!r} is also in features.drop; "
                    "remove it from one of them"
                )
            if group == "numeric":
                planner.check_numeric("features.numeric", column)

    consumed, derived = _plan_transforms(features, planner)
    excluded = {spec.target, *spec.data.id_columns, *features.drop, *consumed}
    excluded |= set(spec.data.not_at_serving())  # absent when the model is used
    if spec.data.timestamp_column is not None:
        excluded.add(spec.data.timestamp_column)
    plain: dict[str, list[str]] = {}
    for group in ("numeric", "categorical"):
        if group in explicit:
            chosen = explicit[group]
        else:
            other = explicit.get("categorical" if group == "numeric" else "numeric", [])
            chosen = [
                column
                for column in planner.columns
                if column not in excluded
                and column not in other
                and _data_kind(df[column]) == group
                and planner.kinds.get(column, group) == group
                and bool(df[column].notna().any())  # an all-empty column tells nothing
            ]
            for column in chosen:
                planner.claim(f"features.{group} (auto)", column, group)
                if group == "categorical":
                    _warn_if_id_like(df[column], column)
        plain[group] = [column for column in chosen if column not in consumed]
        plain[group] += derived[group]

    if not planner.problems and not (plain["numeric"] or plain["categorical"] or consumed):
        planner.problems.append(
            "features: no feature columns are left after excluding the target, ids, the "
            "timestamp and features.drop; list columns under features.numeric or "
            "features.categorical"
        )
    if planner.problems:
        _raise(planner.problems)

    by_kind = {
        kind: [column for column in planner.columns if planner.kinds.get(column) == kind]
        for kind in ("numeric", "categorical", "datetime")
    }
    return FeaturePlan(
        numeric=by_kind["numeric"],
        categorical=by_kind["categorical"],
        datetime=by_kind["datetime"],
        input_columns=[*by_kind["numeric"], *by_kind["categorical"], *by_kind["datetime"]],
        plain_numeric=plain["numeric"],
        plain_categorical=plain["categorical"],
    )


def _warn_if_id_like(series: pd.Series[Any], column: str) -> None:
    distinct = series.nunique()
    if distinct > max(100, len(series) // 2):
        logger.warning(
            "categorical column %r has %d distinct values in %d rows; if it is an id or free "
            "text, list it under data.id_columns or features.drop",
            column,
            distinct,
            len(series),
        )


def _plan_transforms(
    features: FeaturesSpec, planner: _Planner
) -> tuple[set[str], dict[str, list[str]]]:
    """Check transform columns; return (consumed columns, derived names by kind)."""
    consumed: set[str] = set()
    derived: dict[str, list[str]] = {"numeric": [], "categorical": []}
    typed_later: list[tuple[str, str, str]] = []
    for index, transform in enumerate(features.transforms):
        key = f"features.transforms.{index}"
        if transform.kind == "ratio":
            named = [
                (f"{key}.numerator", transform.numerator),
                (f"{key}.denominator", transform.denominator),
            ]
        else:
            named = [(f"{key}.columns", column) for column in transform.columns]
        for column_key, column in named:
            if not planner.exists(column_key, column):
                continue
            if transform.kind in _CONSUMING_KINDS:
                consumed.add(column)
            if transform.kind in (*_NUMERIC_USES, "ratio"):
                planner.claim(column_key, column, "numeric")
                planner.check_numeric(column_key, column)
            elif transform.kind == "date_parts":
                planner.claim(column_key, column, "datetime")
                planner.check_datetime(column_key, column)
            else:
                typed_later.append((column_key, column, transform.kind))
            if transform.kind == "power" and transform.method == "box-cox":
                lowest = pd.to_numeric(planner.df[column], errors="coerce").min()
                if lowest <= 0:
                    planner.problems.append(
                        f"{key}.method: box-cox needs values > 0 but column {column!r} has "
                        f"{lowest!r}; use method 'yeo-johnson'"
                    )
        if transform.kind in ("ratio", "cross"):
            if transform.name in planner.df.columns or any(
                transform.name in names for names in derived.values()
            ):
                planner.problems.append(
                    f"{key}.name: {transform.name!r} is already a column; choose another name"
                )
            derived["numeric" if transform.kind == "ratio" else "categorical"].append(
                transform.name
            )
    # cross and custom inputs keep the kind given elsewhere, else the data's own kind.
    for column_key, column, kind in typed_later:
        if column not in planner.kinds:
            data_kind = _data_kind(planner.df[column])
            if kind == "cross" and data_kind == "datetime":
                data_kind = "categorical"
            planner.claim(column_key, column, data_kind)
    return consumed, derived


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:
        raise SpecError(problems[0], details=problems)
    head = f"the features do not fit the data ({len(problems)} problems)"
    raise SpecError("\n".join([head, *problems]), details=problems)


# -- importing user objects -----------------------------------------------------------


@contextlib.contextmanager
def project_on_path(project_dir: Path | None) -> Iterator[None]:
    """Put ``project_dir`` first on ``sys.path`` for the duration of the block.

    Used to import user feature code from the project folder; also needed to load a
    pipeline that contains a user transformer.
    """
    if project_dir is None:
        yield
        return
    entry = str(Path(project_dir).resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    # Import finders cache folder listings; a module written a moment ago must be found.
    importlib.invalidate_caches()
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def load_object(path: str, *, key: str, project_dir: Path | None = None) -> Any:
    """Import ``module.attribute`` by its dotted ``path``.

    Args:
        path: e.g. ``"sklearn.ensemble.HistGradientBoostingRegressor"``.
        key: the spec key that gave the path, named in errors.
        project_dir: a folder to import from first (the project folder).

    Raises:
        MissingExtraError: the module needs an optional extra that is not installed.
        SpecError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attribute = path.rpartition(".")
    where = f" (looked in {project_dir} and on sys.path)" if project_dir is not None else ""
    try:
        with project_on_path(project_dir):
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        top = missing.split(".")[0]
        if top in _EXTRAS:
            raise MissingExtraError(
                f"{key}: cannot import {path!r} because {top} is not installed; is {top} "
                f"installed? run: pip install 'modelyard[{_EXTRAS[top]}]'"
            ) from exc
        raise SpecError(
            f"{key}: cannot import {path!r}: no module named {missing!r}{where}"
        ) from exc
    except Exception as exc:  # user modules can fail in any way while importing
        raise SpecError(
            f"{key}: importing {module_name!r} failed with {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        public = [name for name in dir(module) if not name.startswith("_")]
        hint = _did_you_mean(attribute, public)
        raise SpecError(f"{key}: module {module_name!r} has no {attribute!r}{hint}") from None


def _module_source(module_name: str, *, key: str, project_dir: Path | None) -> str:
    """The source text of a module, read from its file without executing it."""
    try:
        with project_on_path(project_dir):
            found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise SpecError(f"{key}: cannot find module {module_name!r}: {exc}") from exc
    if found is None:
        raise SpecError(f"{key}: cannot find module {module_name!r}")
    if found.origin and found.has_location and found.origin.endswith(".py"):
        # Read the file itself: linecache and sys.modules may hold an older version.
        return Path(found.origin).read_text(encoding="utf-8")
    try:
        return inspect.getsource(importlib.import_module(module_name))
    except (OSError, TypeError) as exc:
        raise SpecError(
            f"{key}: cannot read the source of module {module_name!r} to version the "
            "features; keep custom transformers in a .py file of the project folder"
        ) from exc


# -- building -----------------------------------------------------------------------


def _numeric_imputer(strategy: str, add_indicator: bool) -> SimpleImputer | None:
    if strategy == "none":
        return None
    if strategy == "zero":
        return SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=add_indicator)
    return SimpleImputer(strategy=strategy, add_indicator=add_indicator)


def _scaler(method: str) -> Any:
    scalers = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}
    return scalers[method]() if method in scalers else None


def _chain(*steps: tuple[str, Any]) -> Any:
    kept = [(name, step) for name, step in steps if step is not None]
    return Pipeline(kept) if kept else "passthrough"


def _encoder(features: FeaturesSpec) -> OneHotEncoder | OrdinalEncoder:
    encode = features.encode
    rare = {"min_frequency": encode.min_frequency, "max_categories": encode.max_categories}
    if encode.min_frequency is not None and encode.min_frequency >= 1:
        rare["min_frequency"] = int(encode.min_frequency)  # a count, not a share
    if encode.method == "ordinal":
        if encode.unknown == "error":
            return OrdinalEncoder(handle_unknown="error", encoded_missing_value=-1, **rare)
        return OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            encoded_missing_value=-1,
            **rare,
        )
    unknown = "error" if encode.unknown == "error" else "infrequent_if_exist"
    return OneHotEncoder(handle_unknown=unknown, sparse_output=False, **rare)


def _custom_transformer(index: int, transform: Any, project_dir: Path | None) -> Any:
    key = f"features.transforms.{index}.transformer"
    found = load_object(transform.transformer, key=key, project_dir=project_dir)
    if not (
        isinstance(found, type)
        and callable(getattr(found, "fit", None))
        and callable(getattr(found, "transform", None))
        and callable(getattr(found, "get_params", None))
    ):
        raise SpecError(
            f"{key}: {transform.transformer!r} is not a transformer class; expected a class "
            "deriving from sklearn.base.TransformerMixin and BaseEstimator (fit, transform, "
            f"get_params), found {type(found).__name__} {found!r}"
        )
    try:
        return found(**transform.params)
    except TypeError as exc:
        raise SpecError(
            f"features.transforms.{index}.params: {transform.transformer} rejected the "
            f"parameters {sorted(transform.params)}: {exc}"
        ) from exc


def build_preprocessor(
    spec: ProjectSpec, plan: FeaturePlan, *, project_dir: Path | None = None
) -> Pipeline:
    """Build the unfitted feature transformer for ``plan``.

    Args:
        spec: the project spec.
        plan: the result of :func:`plan_features`.
        project_dir: the project folder, searched first for custom transformer modules.

    Returns:
        ``Pipeline([("coerce", FrameCoercer), ("ratio_N"/"cross_N", ...),
        ("columns", ColumnTransformer)])``; the ColumnTransformer outputs a dense array.

    Raises:
        SpecError: a custom transformer cannot be imported, is no transformer, or
            rejects its params.
        MissingExtraError: a custom transformer needs an extra that is not installed.
    """
    features = spec.features
    impute, scale = features.impute, features.scale
    steps: list[tuple[str, Any]] = [
        (
            "coerce",
            FrameCoercer(
                numeric=list(plan.numeric),
                categorical=list(plan.categorical),
                datetime=list(plan.datetime),
            ),
        )
    ]
    branches: list[tuple[str, Any, list[str]]] = []
    if plan.plain_numeric:
        numeric = _chain(
            ("impute", _numeric_imputer(impute.numeric, impute.add_indicator)),
            ("scale", _scaler(scale)),
        )
        branches.append(("numeric", numeric, list(plan.plain_numeric)))
    if plan.plain_categorical:
        imputer = None
        if impute.categorical == "constant":
            imputer = SimpleImputer(strategy="constant", fill_value=_MISSING_CATEGORY)
        elif impute.categorical == "most_frequent":
            imputer = SimpleImputer(strategy="most_frequent")
        categorical = _chain(("impute", imputer), ("encode", _encoder(features)))
        branches.append(("categorical", categorical, list(plan.plain_categorical)))

    for index, transform in enumerate(features.transforms):
        name = f"{transform.kind}_{index}"
        imputer = _numeric_imputer(impute.numeric, add_indicator=False)
        if transform.kind == "ratio":
            ratio = Ratio(
                numerator=transform.numerator,
                denominator=transform.denominator,
                name=transform.name,
            )
            steps.append((name, ratio))
        elif transform.kind == "cross":
            steps.append((name, Cross(columns=list(transform.columns), name=transform.name)))
        elif transform.kind == "log":
            log = Log1pTransformer(offset=transform.offset)
            branch = _chain(("impute", imputer), ("log", log), ("scale", _scaler(scale)))
            branches.append((name, branch, list(transform.columns)))
        elif transform.kind == "power":
            power = PowerTransformer(method=transform.method)
            branches.append(
                (name, _chain(("impute", imputer), ("power", power)), transform.columns)
            )
        elif transform.kind == "bin":
            bins = KBinsDiscretizer(
                n_bins=transform.bins,
                encode="onehot-dense" if transform.encode == "onehot" else "ordinal",
                strategy=transform.strategy,
                random_state=spec.seed,
            )
            branches.append((name, _chain(("impute", imputer), ("bin", bins)), transform.columns))
        elif transform.kind == "date_parts":
            parts = DateParts(parts=list(transform.parts))
            branch = _chain(("parts", parts), ("impute", imputer), ("scale", _scaler(scale)))
            branches.append((name, branch, list(transform.columns)))
        else:
            custom = _custom_transformer(index, transform, project_dir)
            branches.append((name, custom, list(transform.columns)))

    columns = ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)
    steps.append(("columns", columns))
    return Pipeline(steps)


def feature_definition_hash(
    spec: ProjectSpec, plan: FeaturePlan, *, project_dir: Path | None = None
) -> str:
    """sha256 of the feature definition: ``spec.features``, the plan, user source code.

    The source of every custom transformer's module is read from its file, so editing
    user feature code changes the hash even when the spec does not change.

    Raises:
        SpecError: a custom transformer's module cannot be found or read.
    """
    sources: dict[str, str] = {}
    for index, transform in enumerate(spec.features.transforms):
        if transform.kind == "custom":
            module_name = transform.transformer.rpartition(".")[0]
            key = f"features.transforms.{index}.transformer"
            sources[module_name] = _module_source(module_name, key=key, project_dir=project_dir)
    payload = {
        "features": spec.features.model_dump(mode="json"),
        "plan": plan.to_dict(),
        "custom_sources": sources,
    }
    return spec_digest(payload)
