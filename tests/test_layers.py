"""The import direction of modelyard's layers, and no import cycle between its modules.

Every module's imports are read with :mod:`ast` (module-level, function-level and
``TYPE_CHECKING`` imports alike: a lazy import is still a dependency), and each import
between two top-level units of the package (``modelyard.<unit>``) must point down this
table. A unit may import the units of lower rows, never one of its own row (they are
peers) or above::

    rank  units                                   what they are
    0     errors, _lazy                            the exception tree, lazy exports
    1     types, spec, settings, _optional,        neutral column and runtime types,
          _progress                                the spec, settings, small helpers
    2     contract                                 the input contract: one validator,
                                                   one category-text rule (training and
                                                   every prediction path use it)
    3     data, features, evaluation,              the pure layers (only ground below)
          experiments
    4     models                                   estimators, the fitted pipeline,
                                                   SklearnRuntime
    5     registry                                 versions, artifacts, their readers
    6     export                                   ONNX export and OnnxRuntime
    7     runtime                                  which runtime serves a version, why
    8     predlog                                  the prediction log
    9     engine                                   decode, validate, predict, log
    10    serving, workflows,                      the REST server; train, evaluate,
          monitoring, batch                        reproduce; drift, quality, labels;
                                                   batch jobs
    11    streaming, continual                     stream consumers (they run a
                                                   serving ModelManager); retraining
                                                   (uses monitoring and workflows)
    12    api                                      the public verbs
    13    ui                                       the web app (``modelyard ui``)
    14    cli                                      the command line
    15    modelyard (the package), __main__        re-exports of api; ``python -m``

A new top-level module or package fails :func:`test_every_unit_has_a_layer` until it
is given a row here (and in the README's layer diagram).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import modelyard

LAYERS: list[set[str]] = [
    {"errors", "_lazy"},
    {"types", "spec", "settings", "_optional", "_progress"},
    {"contract"},
    {"data", "features", "evaluation", "experiments"},
    {"models"},
    {"registry"},
    {"export"},
    {"runtime"},
    {"predlog"},
    {"engine"},
    {"serving", "workflows", "monitoring", "batch"},
    {"streaming", "continual"},
    {"api"},
    {"ui"},
    {"cli"},
    {"modelyard", "__main__"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
ROOT = Path(modelyard.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if "migrations" in parts:  # Alembic scripts, run by the registry, import nothing of ours
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The modelyard modules ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                full = f"{base}.{alias.name}"
                targets.add(full if full in MODULES else base)
    return {target for target in targets if target in MODULES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_unit_has_a_layer() -> None:
    units = {_unit(name) for name in MODULES}
    unplaced = sorted(units - set(RANK))
    assert not unplaced, f"give {unplaced} a row in LAYERS (tests/test_layers.py)"


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        here = _unit(module)
        for target in targets:
            there = _unit(target)
            if there != here and RANK[there] >= RANK[here]:
                wrong.append(
                    f"{module} (layer {RANK[here]}) imports {target} (layer {RANK[there]})"
                )
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    # The cycle this test was written against: training -> export -> training.
    graph = {
        "modelyard.workflows.train": {"modelyard.export.onnx"},
        "modelyard.export.onnx": {"modelyard.export._runtime"},
        "modelyard.export._runtime": {"modelyard.workflows.train"},
        "modelyard.errors": set(),
    }
    assert _cycles(graph) == [
        ["modelyard.export._runtime", "modelyard.export.onnx", "modelyard.workflows.train"]
    ]


@pytest.mark.parametrize(
    "pair", [("serving", "predlog"), ("serving", "export"), ("predlog", "export")]
)
def test_serving_predlog_and_export_do_not_import_each_other_both_ways(
    pair: tuple[str, str],
) -> None:
    units: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        units[_unit(module)] |= {_unit(target) for target in targets}
    first, second = pair
    assert not (second in units[first] and first in units[second])
