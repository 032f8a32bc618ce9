"""Which runtime serves a version, and why: ONNX Runtime or the scikit-learn pipeline.

:func:`select_runtime` is the one place that decides; serving, the benchmarks and the
coming batch and streaming paths ask it. Both runtimes are reachable from here.
Names are imported on first use, so importing this package loads neither
scikit-learn nor ONNX Runtime.

Example:
    >>> from modelyard.runtime import select_runtime    # doctest: +SKIP
    >>> choice = select_runtime(registry, version)      # doctest: +SKIP
    >>> choice.runtime.name, choice.reason              # doctest: +SKIP
    ('onnx', 'ONNX Runtime: its export matches the pipeline on 1314 rows (...)')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.export._runtime import OnnxRuntime
    from modelyard.models.runtime import SklearnRuntime
    from modelyard.runtime.select import RuntimeChoice, RuntimePreference, select_runtime

__all__ = ["OnnxRuntime", "RuntimeChoice", "RuntimePreference", "SklearnRuntime", "select_runtime"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "OnnxRuntime": "modelyard.export._runtime",
        "RuntimeChoice": "modelyard.runtime.select",
        "RuntimePreference": "modelyard.runtime.select",
        "SklearnRuntime": "modelyard.models.runtime",
        "select_runtime": "modelyard.runtime.select",
    },
)
