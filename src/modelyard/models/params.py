"""Check hyperparameter values when the spec is loaded, before any data is read.

scikit-learn estimators declare constraints on their parameters and check them at the
start of ``fit``; no public function checks them without fitting. Fitting on zero rows
is the public route: the constraints are checked first (the ``_fit_context`` of every
scikit-learn estimator), and the empty data is refused only afterwards. So an
``InvalidParameterError`` from that call is a bad hyperparameter, with scikit-learn's
own message (the allowed values included), and any other error is the empty data.

LightGBM and XGBoost check values only when training starts, deep in native code; their
``__init__`` signatures carry type annotations (``n_estimators: int``,
``learning_rate: Optional[float]``), which are checked here with pydantic in strict mode
(an int is accepted for a float, a string is not accepted for a number).
"""

from __future__ import annotations

import logging
import re
import typing
import warnings
from typing import Any

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError
from sklearn.base import clone

from modelyard.errors import SpecError

__all__ = ["check_param_values"]

logger = logging.getLogger(__name__)

_SKLEARN_PARAM_RE = re.compile(r"The '(?P<name>[\w]+)' parameter of")
_TYPED_LIBRARIES = ("lightgbm", "xgboost")
_ADAPTER_CONFIG = ConfigDict(strict=True, arbitrary_types_allowed=True)


def check_param_values(cls: type, estimator: Any, params: dict[str, Any], *, key: str) -> None:
    """Refuse hyperparameter values the estimator's library would refuse at fit time.

    Args:
        cls: the estimator class.
        estimator: an unfitted instance built with ``params``.
        params: the hyperparameters the spec gives (only these are checked by type).
        key: the spec key of the estimator (``model``, ``model.estimators.0``).

    Raises:
        SpecError: a value breaks a constraint; the message names the key, the allowed
            values and what was found, and ``details["key"]`` is the dotted key.

    Example:
        >>> from sklearn.ensemble import HistGradientBoostingRegressor as Model
        >>> check_param_values(Model, Model(max_iter=0), {"max_iter": 0}, key="model")
        Traceback (most recent call last):
        ...
        modelyard.errors.SpecError: model.params.max_iter: The 'max_iter' parameter of ...
    """
    library = cls.__module__.split(".")[0]
    if library == "sklearn":
        _check_sklearn(estimator, key)
    elif library in _TYPED_LIBRARIES:
        _check_annotations(cls, params, key)


def _check_sklearn(estimator: Any, key: str) -> None:
    empty_x = np.empty((0, 1))
    empty_y = np.empty(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clone(estimator).fit(empty_x, empty_y)
    except Exception as exc:  # every other error is about the empty rows: the params passed
        # InvalidParameterError lives in a private scikit-learn module; match it by name.
        if type(exc).__name__ != "InvalidParameterError":
            logger.debug("%s: parameters accepted (%s)", key, type(exc).__name__)
            return
        message = str(exc)
        found = _SKLEARN_PARAM_RE.search(message)
        where = f"{key}.params.{found['name']}" if found else f"{key}.params"
        raise SpecError(
            f"{where}: {message} Fix the value in the spec.", details={"key": where}
        ) from None


def _check_annotations(cls: type, params: dict[str, Any], key: str) -> None:
    hints = _init_hints(cls)
    for name, value in params.items():
        hint = hints.get(name)
        if hint is None or hint is Any:
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(hint, config=_ADAPTER_CONFIG)
        except Exception:  # an annotation pydantic cannot model: nothing to check by type
            continue
        try:
            adapter.validate_python(value)
        except ValidationError:
            where = f"{key}.params.{name}"
            raise SpecError(
                f"{where}: {cls.__name__} expects {_describe(hint)} for {name!r}, "
                f"got {value!r}; fix the value in the spec",
                details={"key": where},
            ) from None


def _init_hints(cls: type) -> dict[str, Any]:
    """``__init__`` annotations of ``cls`` and its bases (XGBoost's sit on a base)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints.update(typing.get_type_hints(init))
        except Exception:  # unresolvable annotations: that class adds no checks
            continue
    hints.pop("return", None)
    return hints


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if not args:
        return getattr(hint, "__name__", str(hint))
    names = [getattr(a, "__name__", str(a)) for a in args]
    optional = " (or null)" if type(None) in typing.get_args(hint) else ""
    return " or ".join(names) + optional
