"""Guard rails: the public API, import weight, and modules that import on their own."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import modelyard


def test_public_api_is_pinned() -> None:
    assert modelyard.__all__ == sorted(modelyard.__all__)
    assert modelyard.__all__ == [
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
    for name in modelyard.__all__:
        assert getattr(modelyard, name) is not None


def test_version_and_short_reprs() -> None:
    from importlib.metadata import version

    from modelyard.workflows.train import TrainResult

    assert modelyard.__version__ == version("modelyard")
    assert "TrainResult" in (modelyard.train.__doc__ or "") + str(modelyard.TrainResult)
    assert modelyard.TrainResult is TrainResult


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "heavy", ["pandas", "sklearn", "fastapi", "onnxruntime", "sqlalchemy", "matplotlib"]
)
def test_import_modelyard_is_light(heavy: str) -> None:
    assert heavy not in _modules_after("import modelyard")


def test_help_loads_neither_pandas_nor_sklearn() -> None:
    code = (
        "import sys\nsys.argv=['modelyard','--help']\nfrom modelyard.cli import run\n"
        "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()): run(['--help'])"
    )
    loaded = _modules_after(code)
    assert "pandas" not in loaded and "sklearn" not in loaded


def test_ui_and_the_command_line_load_no_web_server_until_asked() -> None:
    loaded = _modules_after("import modelyard.ui, modelyard.cli")
    assert "fastapi" not in loaded and "uvicorn" not in loaded


def test_the_decode_process_loads_no_web_framework() -> None:
    """What the server's decode process imports (its job runner and the body functions
    it runs) leaves FastAPI and the routes out, which keeps it light."""
    loaded = _modules_after(
        "import modelyard.serving.decodepool, modelyard.serving.protocols._bodies, "
        "modelyard.serving.protocols._requests"
    )
    assert "fastapi" not in loaded and "uvicorn" not in loaded
    assert "modelyard.serving.protocols.own" not in loaded


def _all_modules() -> list[str]:
    names = ["modelyard"]
    for info in pkgutil.walk_packages(modelyard.__path__, "modelyard."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def test_every_module_imports_on_its_own() -> None:
    # Each module is imported with every modelyard module forgotten first, so an import
    # cycle or a missing import that another module's import would hide shows up; third
    # party libraries stay loaded to keep this fast.
    names = _all_modules()
    probe = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        "failures = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'modelyard']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failures.append(f'{name}: {exc!r}')\n"
        "print('\\n'.join(failures))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "", run.stdout


def _modelyard_imports(package: str) -> dict[str, set[str]]:
    """The modelyard packages each module of ``package`` imports (any import statement,
    also inside functions and ``TYPE_CHECKING`` blocks)."""
    import ast
    from pathlib import Path

    root = Path(modelyard.__file__).parent
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "modelyard" and len(parts) > 1:
                    names.add(parts[1])
        found[path.name] = names
    return found


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        # The input contract is the lowest layer every prediction path shares.
        ("contract", {"contract", "types", "errors", "spec"}),
        # The engine runs the contract and a runtime; serving calls it, never the reverse.
        ("engine", {"engine", "contract", "types", "errors"}),
    ],
)
def test_lower_layers_import_only_what_is_below_them(package: str, allowed: set[str]) -> None:
    for module, names in _modelyard_imports(package).items():
        assert names <= allowed, f"{package}/{module} imports {sorted(names - allowed)}"
