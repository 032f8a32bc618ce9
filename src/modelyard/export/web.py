"""The web export: a static folder that predicts in the browser, offline, with no backend.

``modelyard export REF --target web --output DIR`` writes:

- ``index.html``, ``page.js``, ``page.css``: a form built from the input contract (one
  field per input by kind, known categories as choices, required inputs marked), a CSV
  drop zone, and a predictions table;
- ``modelyard.js``: ``window.modelyard.predict(rows)`` for pages that embed the model;
  it checks rows with ``contract.js``, the contract's own rules (the server's messages,
  word for word), and runs the graph with ONNX Runtime Web;
- ``model.onnx``: the version's ONNX graph (the ``onnx`` export) made readable by ONNX
  Runtime Web (:func:`~modelyard.export._edge_graph.edge_model`: a lower IR version, and
  a missing category's text without a NUL);
- ``contract.json``: the input contract (:mod:`modelyard.contract.serial`) and what
  feeding the graph needs (inputs, classes, the missing-category text);
- ``ort.wasm.min.js``, ``ort-wasm-simd-threaded.mjs``, ``ort-wasm-simd-threaded.wasm``
  and ``ONNXRUNTIME-LICENSE.txt``: ONNX Runtime Web (MIT), from the npm package pinned in
  ``web/package-lock.json``, installed into the package by ``scripts/web-runtime``; the
  page never fetches anything from outside its folder.

Serve the folder with any static file server (browsers do not run WebAssembly from
``file://`` pages): ``python -m http.server -d DIR``.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.contract.model import InputContract
from modelyard.contract.serial import contract_to_dict
from modelyard.export._common import ExportError
from modelyard.export._edge_graph import EDGE_MISSING_CATEGORY
from modelyard.export._records import OnnxInput

__all__ = [
    "CONTRACT_PARTS",
    "PAGE_FILES",
    "RUNTIME_FILES",
    "build_web_folder",
    "contract_script",
    "json_records",
    "runtime_folder",
    "web_document",
]

#: The page's own files, from ``modelyard/export/web_assets``.
PAGE_FILES = ("index.html", "page.js", "page.css", "modelyard.js")
#: The parts of ``contract.js``, in ``web_assets/contract``, joined in this order: they
#: share one function scope (begin opens it, end exports ``window.modelyardContract``).
CONTRACT_PARTS = ("begin.js", "python.js", "rules.js", "csv.js", "end.js")
#: ONNX Runtime Web's files the page loads (single-threaded WebAssembly CPU backend).
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
_LICENSE = "ONNXRUNTIME-LICENSE.txt"
_RUNTIME_HINT = (
    "install them with scripts/web-runtime (npm ci of web/package.json, then a copy into "
    "src/modelyard/export/web_assets/ort/)"
)


def _assets() -> Path:
    return Path(str(resources.files("modelyard.export") / "web_assets"))


def runtime_folder() -> Path:
    """Where ONNX Runtime Web's files are, checked complete.

    Raises:
        ExportError: a file is missing; the message says how to install them.
    """
    folder = _assets() / "ort"
    missing = [name for name in (*RUNTIME_FILES, "VERSION") if not (folder / name).is_file()]
    if missing:
        raise ExportError(
            f"ONNX Runtime Web's files {', '.join(missing)} are not in {folder}; {_RUNTIME_HINT}"
        )
    return folder


def runtime_version() -> str:
    """The installed ONNX Runtime Web version (from its package.json at install time)."""
    return (runtime_folder() / "VERSION").read_text().strip()


def web_document(
    *,
    ref: str,
    task: str,
    contract: InputContract,
    inputs: list[OnnxInput],
    classes: list[Any] | None,
    precision: str,
    decision_threshold: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``contract.json``: the contract, and what feeding the edge graph (see
    :func:`~modelyard.export._edge_graph.edge_model`) and reading it needs."""
    return {
        "format": 1,
        "contract": contract_to_dict(contract),
        "model": {
            "ref": ref,
            "task": task,
            "classes": classes,
            "inputs": [
                {"column": i.column, "onnx_name": i.onnx_name, "kind": i.kind, "dtype": i.dtype}
                for i in inputs
            ],
            "missing_category": EDGE_MISSING_CATEGORY,
            "precision": precision,
            # {"value", "positive"}: labels by threshold instead of highest probability
            "decision_threshold": decision_threshold,
        },
    }


def contract_script() -> str:
    """``contract.js``: its parts joined (one file for pages to load, one request)."""
    parts = _assets() / "contract"
    return "\n".join((parts / name).read_text(encoding="utf-8") for name in CONTRACT_PARTS)


def build_web_folder(folder: Path, model: bytes, document: dict[str, Any]) -> dict[str, str]:
    """Write the web export into ``folder`` (created); returns each file's sha256.

    Raises:
        ExportError: ONNX Runtime Web's files are not installed.
    """
    runtime = runtime_folder()
    folder.mkdir(parents=True, exist_ok=True)
    assets = _assets()
    for name in PAGE_FILES:
        shutil.copyfile(assets / name, folder / name)
    (folder / "contract.js").write_text(contract_script(), encoding="utf-8")
    for name in RUNTIME_FILES:
        shutil.copyfile(runtime / name, folder / name)
    shutil.copyfile(assets / _LICENSE, folder / _LICENSE)
    (folder / "model.onnx").write_bytes(model)
    (folder / "contract.json").write_text(json.dumps(document, indent=1, allow_nan=False))
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def json_records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Rows as a client sends them in JSON: numbers, text, ISO dates, null for missing.

    Floats keep every digit (Python's ``repr`` round-trips, as JavaScript's parser
    does), so the browser sees the very values the pipeline does.
    """
    records: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    for name in columns:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            values: list[Any] = [None if pd.isna(v) else v.isoformat() for v in series]
        else:
            values = [_plain(value) for value in series.astype(object).tolist()]
        for record, value in zip(records, values, strict=True):
            record[name] = value
    return records


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
