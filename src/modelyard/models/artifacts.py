"""Serialise fitted pipelines with skops, never pickle.

skops stores objects as data plus the names of their types and refuses, at load time,
any type it was not told to trust. :func:`dump_pipeline` returns the types a pipeline
needs beyond skops' defaults; the registry records them next to the artifact, and
:func:`load_pipeline` trusts exactly those, so bytes that smuggle in another type are
refused instead of executed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from modelyard.errors import IntegrityError, MissingExtraError, SpecError
from modelyard.features.build import project_on_path

__all__ = ["dump_pipeline", "load_pipeline"]

logger = logging.getLogger(__name__)

_EXTRAS = {"lightgbm": "lightgbm", "xgboost": "xgboost"}


def dump_pipeline(pipeline: Pipeline) -> tuple[bytes, list[str]]:
    """Serialise a fitted pipeline.

    Returns:
        The skops bytes, and the sorted names of the types in them that skops does not
        trust by default (our transformers, LightGBM, user transformers...); record
        these to pass as ``trusted`` to :func:`load_pipeline`.
    """
    import skops.io

    data: bytes = skops.io.dumps(pipeline)
    return data, sorted(skops.io.get_untrusted_types(data=data))


def load_pipeline(data: bytes, *, trusted: list[str], project_dir: Path | None = None) -> Pipeline:
    """Load a pipeline from skops bytes, trusting only the types in ``trusted``.

    Args:
        data: bytes from :func:`dump_pipeline`.
        trusted: the type names recorded when the pipeline was dumped.
        project_dir: a folder to import user transformer modules from.

    Raises:
        IntegrityError: the bytes are no skops file, need a type outside ``trusted``,
            or do not hold a pipeline.
        MissingExtraError: the pipeline needs LightGBM or XGBoost, not installed here.
        SpecError: the pipeline needs a user module that cannot be imported.
    """
    import skops.io

    try:
        needed = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # zipfile, JSON and key errors all mean "not a skops file"
        raise IntegrityError(
            f"the artifact is not a readable skops file ({type(exc).__name__}: {exc}); "
            "it may be truncated or corrupted"
        ) from exc
    unexpected = sorted(set(needed) - set(trusted))
    if unexpected:
        raise IntegrityError(
            f"the artifact needs {len(unexpected)} type(s) that were not recorded as "
            f"trusted: {', '.join(unexpected)}; refusing to load it. If these bytes are "
            "genuine, re-register the model so its trusted types are recorded",
            details=unexpected,
        )
    try:
        with project_on_path(project_dir):
            loaded: Any = skops.io.loads(data, trusted=list(trusted))
    except ImportError as exc:
        module = getattr(exc, "name", None) or ""
        top = module.split(".")[0]
        if top in _EXTRAS:
            raise MissingExtraError(
                f"the pipeline needs {top}, which is not installed; run: pip install "
                f"'modelyard[{_EXTRAS[top]}]'"
            ) from exc
        raise SpecError(
            f"the pipeline needs module {module!r}, which cannot be imported ({exc}); "
            "load it from the project folder that holds its custom transformers"
        ) from exc
    if not isinstance(loaded, Pipeline):
        raise IntegrityError(
            f"the artifact holds a {type(loaded).__name__}, not a scikit-learn Pipeline"
        )
    return loaded
