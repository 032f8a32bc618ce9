"""modelyard's skl2onnx converters apply to modelyard's conversions only: a user's own
pipeline converts after a modelyard export exactly as in a fresh process, and the
HistGradientBoosting fix applies only to the library versions that need it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from modelyard.export._models import BOOL_FLAGS_LAST_AFFECTED, bool_flags_bug
from modelyard.settings import Settings

#: A user's pipeline of steps modelyard converts its own way (imputer, one-hot encoder,
#: bins, HistGradientBoosting), converted with skl2onnx directly; prints what came out.
_USER_CONVERSION = """
import hashlib, json, sys
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

def user_conversion():
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=(200, 2)).astype(np.float32)
    numbers[::7, 0] = np.nan
    codes = rng.integers(0, 4, size=(200, 1))
    target = numbers[:, 1] * 3 + codes[:, 0]
    pipeline = Pipeline([
        ("features", ColumnTransformer([
            ("numbers", Pipeline([("impute", SimpleImputer()),
                                  ("bins", KBinsDiscretizer(n_bins=3, encode="ordinal"))]), [0, 1]),
            ("codes", OneHotEncoder(handle_unknown="ignore"), [2]),
        ])),
        ("model", HistGradientBoostingRegressor(max_iter=5)),
    ])
    X = np.column_stack([numbers, codes]).astype(np.float32)
    pipeline.fit(X, target)
    try:
        graph = convert_sklearn(pipeline, initial_types=[("X", FloatTensorType([None, 3]))])
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "ops": [node.op_type for node in graph.graph.node],
        "sha256": hashlib.sha256(graph.SerializeToString()).hexdigest(),
    }
"""

_AFTER_EXPORT = """
from modelyard.export.onnx import export_pipeline
from modelyard.registry import Registry
from modelyard.registry.readers import evaluation_frame, load_version_pipeline
from modelyard.settings import Settings

with Registry.open(Settings(home=sys.argv[1])) as registry:
    version = registry.get_version("churn:1")  # HistGradientBoosting and one-hot encoding
    rows = evaluation_frame(registry, version)
    export = export_pipeline(load_version_pipeline(registry, version), rows, task="binary")
    assert export.parity.ok
print(json.dumps(user_conversion()))
"""

_INSIDE_MODELYARD = """
from modelyard.export._convert import modelyard_converters
with modelyard_converters():
    print(json.dumps(user_conversion()))
"""


def _run(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _USER_CONVERSION + code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_a_user_pipeline_converts_after_a_modelyard_export_as_in_a_fresh_process(
    yard: Settings,
) -> None:
    fresh = _run("print(json.dumps(user_conversion()))")
    after_export = _run(_AFTER_EXPORT, str(yard.home))
    inside = _run(_INSIDE_MODELYARD)
    assert after_export == fresh
    # the check can fail: with modelyard's converters the same pipeline converts otherwise
    assert inside != fresh


def test_the_registries_are_restored_after_each_conversion() -> None:
    from skl2onnx import _parse, _supported_operators
    from skl2onnx.common import _registration

    from modelyard.export._convert import modelyard_converters

    tables = [
        _supported_operators.sklearn_operator_name_map,
        _registration._converter_pool,
        _registration._shape_calculator_pool,
        _parse.sklearn_parsers_map,
    ]
    before = [dict(table) for table in tables]
    with modelyard_converters():
        assert [dict(table) for table in tables] != before
    assert [dict(table) for table in tables] == before


def test_the_bool_flags_fix_applies_only_to_affected_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib import metadata

    real = metadata.version

    def installed(versions: dict[str, str]) -> Any:
        return lambda name: versions.get(name) or real(name)

    cases = [
        ({"skl2onnx": BOOL_FLAGS_LAST_AFFECTED, "protobuf": "5.29.0"}, True),
        ({"skl2onnx": "1.17.0", "protobuf": "7.36.2"}, True),
        ({"skl2onnx": "1.17.0", "protobuf": "4.25.3"}, False),
        ({"skl2onnx": "99.0", "protobuf": "7.36.2"}, False),
    ]
    for versions, affected in cases:
        monkeypatch.setattr(metadata, "version", installed(versions))
        bool_flags_bug.cache_clear()
        assert bool_flags_bug() is affected, versions
    monkeypatch.undo()
    bool_flags_bug.cache_clear()
