"""modelyard: reproducible training, registry and serving for tabular supervised models.

The verbs of the command line are functions here::

    import modelyard
    result = modelyard.train("examples/house-prices")
    modelyard.promote(result.ref, reason="first model")
    modelyard.reproduce(result.ref).matches

Imports are lazy: ``import modelyard`` loads neither pandas nor scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.api import (
        InitResult,
        diff,
        evaluate,
        init,
        list_models,
        load_model,
        open_registry,
        promote,
        quickstart,
        reproduce,
        rollback,
        show,
        train,
    )
    from modelyard.errors import (
        DataError,
        DataValidationError,
        GateFailed,
        IntegrityError,
        MissingExtraError,
        ModelNotFoundError,
        ModelyardError,
        PromotionRefused,
        RegistryError,
        ReproductionMismatch,
        SpecError,
    )
    from modelyard.settings import Settings
    from modelyard.spec import ProjectSpec, load_spec
    from modelyard.workflows.train import TrainResult

__all__ = [
    "DataError",
    "DataValidationError",
    "GateFailed",
    "InitResult",
    "IntegrityError",
    "MissingExtraError",
    "ModelNotFoundError",
    "ModelyardError",
    "ProjectSpec",
    "PromotionRefused",
    "RegistryError",
    "ReproductionMismatch",
    "Settings",
    "SpecError",
    "TrainResult",
    "diff",
    "evaluate",
    "init",
    "list_models",
    "load_model",
    "load_spec",
    "open_registry",
    "promote",
    "quickstart",
    "reproduce",
    "rollback",
    "show",
    "train",
]

_HOMES = {
    "modelyard.errors": [
        n
        for n in __all__
        if n[0].isupper() and n not in ("InitResult", "ProjectSpec", "Settings", "TrainResult")
    ],
    "modelyard.workflows.train": ["TrainResult"],
    "modelyard.settings": ["Settings"],
    "modelyard.spec": ["ProjectSpec", "load_spec"],
}
_ELSEWHERE = {name: module for module, names in _HOMES.items() for name in names}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelyard")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__ = _version()

__getattr__, __dir__ = lazy_exports(
    __name__, {name: _ELSEWHERE.get(name, "modelyard.api") for name in __all__}
)
