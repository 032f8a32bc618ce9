"""Imported at start-up by the ``mlflow-onnx`` server only (it alone has this on PYTHONPATH).

Works around a bug of mlflow's ONNX flavour under pandas 3: ``_OnnxModelWrapper.predict``
(mlflow 3.17.2, ``mlflow/onnx/__init__.py``) feeds ``data[column].values`` to ONNX
Runtime. Under pandas 3 a text column's ``.values`` is a pandas ExtensionArray, which
ONNX Runtime refuses ("Input must be a list of dictionaries or a single numpy array"),
so no graph with a text input can be served. With pandas' string inference off, text
columns are NumPy object arrays again, as under pandas 2, and the graph runs.

No upstream issue was found for it (mlflow 3.17.2). Applies only to pandas 3 with the
mlflow release pinned in benchmarks/requirements-mlflow.txt; delete it once mlflow's ONNX
flavour converts columns with ``to_numpy()`` (the pandas option itself goes in pandas 4).
"""

from __future__ import annotations

import warnings
from importlib.metadata import version

AFFECTED_MLFLOW = "3.17.2"

if version("mlflow") == AFFECTED_MLFLOW and version("pandas").split(".")[0] == "3":
    import pandas as pd

    with warnings.catch_warnings():  # deprecated in pandas 3, on purpose here
        warnings.simplefilter("ignore")
        pd.set_option("future.infer_string", False)
