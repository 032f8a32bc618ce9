"""Build estimators from the spec's ``model`` section, and describe them for lineage.

An estimator is named by import path (scikit-learn, LightGBM, XGBoost or any class
following scikit-learn's API); ensembles (stacking, voting) list their members and
final estimator, built recursively. Every estimator in the tree that takes a
``random_state`` gets the project seed unless the spec sets one, so training is
repeatable.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    clone,
    is_classifier,
    is_regressor,
)
from sklearn.utils import Tags, get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from modelyard.errors import SpecError
from modelyard.features.build import load_object
from modelyard.models.params import check_param_values
from modelyard.spec import EstimatorSpec

__all__ = ["LabelEncodedClassifier", "build_estimator", "class_path", "estimator_structure"]

#: LightGBM takes its native parameters through ``**kwargs``; these few are allowed on
#: top of its scikit-learn ones, and set by default for quiet, repeatable training.
_LIGHTGBM_NATIVE = frozenset(
    {"verbose", "verbosity", "deterministic", "force_col_wise", "force_row_wise"}
)
_MEMBER_PARAMS = ("estimators", "final_estimator")
_EXAMPLE = {
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
}


def build_estimator(model: EstimatorSpec, *, task: str, seed: int) -> BaseEstimator:
    """Build the unfitted estimator a spec's ``model`` section describes.

    Args:
        model: ``spec.model`` (or any :class:`~modelyard.spec.EstimatorSpec`).
        task: ``regression``, ``binary`` or ``multiclass``.
        seed: given as ``random_state`` to every estimator in the tree that takes one,
            unless the spec sets it.

    Returns:
        The estimator; LightGBM ones also get ``verbose=-1``, ``deterministic=True``
        and ``force_col_wise=True`` unless given, so training is quiet and repeatable.

    Raises:
        MissingExtraError: the estimator's library (LightGBM, XGBoost) is not installed.
        SpecError: the class cannot be imported, is not an estimator, does not fit the
            task, or a hyperparameter is unknown; the message names the spec key.

    Example:
        >>> spec = EstimatorSpec(estimator="sklearn.ensemble.RandomForestRegressor",
        ...                      params={"n_estimators": 10})
        >>> build_estimator(spec, task="regression", seed=7).get_params()["random_state"]
        7
    """
    return _build(model, task=task, seed=seed, key="model")


def _build(model: EstimatorSpec, *, task: str, seed: int, key: str) -> Any:
    found = load_object(model.estimator, key=f"{key}.estimator")
    if not (isinstance(found, type) and callable(getattr(found, "get_params", None))):
        raise SpecError(
            f"{key}.estimator: {model.estimator!r} is not a scikit-learn estimator class "
            f"(found {type(found).__name__} {found!r}); use e.g. {_EXAMPLE[task]!r}"
        )
    signature = inspect.signature(found)
    known = {
        name: parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    is_lightgbm = found.__module__.startswith("lightgbm")
    takes = set(known) | _inherited_params(found)
    allowed = takes | (_LIGHTGBM_NATIVE if is_lightgbm else set())
    for name in model.params:
        if name in _MEMBER_PARAMS:
            raise SpecError(
                f"{key}.params.{name}: give ensemble members as {key}.{name}, not as a "
                "hyperparameter"
            )
        if name.split("__")[0] not in allowed:
            hint = difflib.get_close_matches(name, sorted(allowed), n=1)
            fix = (
                f"did you mean {hint[0]!r}?"
                if hint
                else f"its hyperparameters are: {', '.join(sorted(allowed))}"
            )
            raise SpecError(
                f"{key}.params.{name}: {found.__name__} has no hyperparameter {name!r}; {fix}",
                details={"key": f"{key}.params.{name}"},
            )

    kwargs: dict[str, Any] = dict(model.params)
    kwargs.update(_members(model, found.__name__, known, task=task, seed=seed, key=key))
    if "random_state" in takes and "random_state" not in kwargs:
        kwargs["random_state"] = seed
    if is_lightgbm:
        kwargs.setdefault("verbose", -1)
        kwargs.setdefault("deterministic", True)
        if not kwargs.get("force_row_wise"):
            kwargs.setdefault("force_col_wise", True)
    try:
        estimator = found(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"{key}: {found.__name__} rejected its parameters: {exc}", details={"key": key}
        ) from exc
    check_param_values(found, estimator, model.params, key=key)

    if task == "regression" and not is_regressor(estimator):
        raise SpecError(
            f"{key}.estimator: {model.estimator!r} is not a regressor but the task is "
            f"regression; use a regressor such as {_EXAMPLE[task]!r}"
        )
    if task != "regression" and not is_classifier(estimator):
        raise SpecError(
            f"{key}.estimator: {model.estimator!r} is not a classifier but the task is "
            f"{task}; use a classifier such as {_EXAMPLE[task]!r}"
        )
    return estimator


def _inherited_params(cls: type) -> set[str]:
    """Hyperparameters a class takes through ``**kwargs`` (XGBoost's come from a base)."""
    try:
        return set(cls().get_params(deep=False))
    except Exception:  # ensembles need members to be created; their signature suffices
        return set()


def _members(
    model: EstimatorSpec,
    owner: str,
    known: dict[str, inspect.Parameter],
    *,
    task: str,
    seed: int,
    key: str,
) -> dict[str, Any]:
    """Build ``estimators`` and ``final_estimator`` of an ensemble."""
    built: dict[str, Any] = {}
    if model.estimators:
        if "estimators" not in known:
            raise SpecError(
                f"{key}.estimators: {owner} takes no member estimators; remove them or use "
                "an ensemble such as sklearn.ensemble.StackingRegressor"
            )
        names = [member.name for member in model.estimators]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SpecError(f"{key}.estimators: member names must differ; repeated: {duplicates}")
        built["estimators"] = [
            (member.name, _build(member, task=task, seed=seed, key=f"{key}.estimators.{i}"))
            for i, member in enumerate(model.estimators)
        ]
    elif "estimators" in known and known["estimators"].default is inspect.Parameter.empty:
        raise SpecError(
            f"{key}.estimators: {owner} needs member estimators; list them under "
            f"{key}.estimators, each with a name and an estimator"
        )
    if model.final_estimator is not None:
        if "final_estimator" not in known:
            raise SpecError(
                f"{key}.final_estimator: {owner} takes no final estimator; use "
                "sklearn.ensemble.StackingRegressor or StackingClassifier"
            )
        built["final_estimator"] = _build(
            model.final_estimator, task=task, seed=seed, key=f"{key}.final_estimator"
        )
    return built


def class_path(cls: type) -> str:
    """The shortest public import path of ``cls``.

    Example:
        >>> from sklearn.ensemble import HistGradientBoostingRegressor
        >>> class_path(HistGradientBoostingRegressor)
        'sklearn.ensemble.HistGradientBoostingRegressor'
    """
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module_name = ".".join(parts[:end])
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - the class's own module imports
            continue
        if getattr(module, cls.__qualname__, None) is cls:
            return f"{module_name}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def estimator_structure(est: Any) -> dict[str, object]:
    """A JSON-able tree of an estimator: class path, params, ensemble members.

    ``params`` are ``get_params(deep=False)``; values JSON cannot hold are given by
    ``repr``; nested estimators (pipeline steps, a bagging base) are nested trees.
    Ensembles' ``estimators`` become ``members`` (with their names) and
    ``final_estimator`` a nested tree.

    Example:
        >>> from sklearn.linear_model import Ridge
        >>> estimator_structure(Ridge(alpha=0.5))["params"]["alpha"]
        0.5
    """
    params = est.get_params(deep=False)
    structure: dict[str, object] = {"class": class_path(type(est))}
    members = params.get("estimators")
    if isinstance(members, list | tuple) and all(_is_named_member(m) for m in members):
        structure["members"] = [
            {"name": name, **estimator_structure(member)}
            if _is_estimator(member)
            else {"name": name, "value": _json_safe(member)}
            for name, member in members
        ]
        params = {name: value for name, value in params.items() if name != "estimators"}
    if "final_estimator" in params:
        structure["final_estimator"] = _json_safe(params.pop("final_estimator"))
    structure["params"] = {name: _json_safe(params[name]) for name in sorted(params)}
    return structure


def _is_estimator(value: Any) -> bool:
    return not isinstance(value, type) and callable(getattr(value, "get_params", None))


def _is_named_member(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if _is_estimator(value):
        return estimator_structure(value)
    if isinstance(value, type):
        return class_path(value)
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return repr(value)


class LabelEncodedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):  # type: ignore[misc]
    """Fit ``estimator`` on class labels encoded as 0..k-1 and decode its predictions.

    For classifiers such as XGBoost's that accept only labels 0..k-1: the target keeps
    its own labels (``"yes"``/``"no"``, ``1``/``3``) in ``classes_`` and ``predict``.

    Args:
        estimator: the classifier to wrap (cloned in ``fit``).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> X = np.array([[0.0], [1.0], [0.1], [0.9]])
        >>> model = LabelEncodedClassifier(estimator=LogisticRegression())
        >>> model.fit(X, np.array(["no", "yes", "no", "yes"])).predict(X).tolist()
        ['no', 'yes', 'no', 'yes']
    """

    def __init__(self, *, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **fit_params: Any) -> Any:
        """Encode ``y`` as 0..k-1 and fit a clone of ``estimator`` on it."""
        check_classification_targets(y)
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        if sample_weight is not None:
            fit_params["sample_weight"] = sample_weight
        self.estimator_ = clone(self.estimator).fit(X, codes, **fit_params)
        self.classes_ = classes
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """The predicted labels, in the target's own values."""
        check_is_fitted(self)
        codes = np.asarray(self.estimator_.predict(X)).astype(np.intp)
        return self.classes_[codes]  # type: ignore[no-any-return]

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict_proba(X))

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator).input_tags
        tags.input_tags.allow_nan = inner.allow_nan
        tags.input_tags.sparse = inner.sparse
        return tags
