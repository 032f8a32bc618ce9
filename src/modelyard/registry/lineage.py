"""Lineage: what a model version was built from, so it can be rebuilt and compared.

A version's lineage records the data snapshot digest and source, the feature-definition
hash and feature order, the spec (hyperparameters, seeds), the code version of the
project folder (git commit and dirty flag), the environment (Python, OS, every installed
package), and a fingerprint of the predictions on the evaluation rows.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "capture_environment",
    "capture_git",
    "compare_environments",
    "predictions_fingerprint",
]


def capture_environment() -> dict[str, Any]:
    """Python, OS and every installed distribution with its version."""
    packages: dict[str, str] = {}
    # distributions() walks sys.path in order: the first one found is the one imported.
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(_canonical(name), dist.version)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "packages": dict(sorted(packages.items())),
    }


def capture_git(folder: Path) -> dict[str, Any]:
    """The git commit of ``folder`` and whether its work tree has uncommitted changes.

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout or without git.
    """
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        status = _git(folder, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status)}


def compare_environments(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human lines for each difference in Python, OS or package versions."""
    lines: list[str] = []
    for key in ("python", "implementation", "os", "machine"):
        if recorded.get(key) != current.get(key):
            lines.append(f"{key}: recorded {recorded.get(key)}, now {current.get(key)}")
    old: dict[str, str] = recorded.get("packages", {})
    new: dict[str, str] = current.get("packages", {})
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            was = old.get(name, "not installed")
            now = new.get(name, "not installed")
            lines.append(f"package {name}: recorded {was}, now {now}")
    return lines


def predictions_fingerprint(values: np.ndarray, proba: np.ndarray | None = None) -> str:
    """sha256 of the predictions' exact bytes (float64 little-endian, or UTF-8 labels).

    Exact bytes, not rounded values: two builds that agree to the last bit are the
    same model; anything else is reported with its size by ``reproduce``.
    """
    digest = hashlib.sha256()
    digest.update(_array_bytes(values))
    if proba is not None:
        digest.update(b"|proba|")
        digest.update(np.ascontiguousarray(proba, dtype="<f8").tobytes())
    return digest.hexdigest()


def _array_bytes(values: np.ndarray) -> bytes:
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array, dtype="<f8").tobytes()
    return "\x1f".join(str(v) for v in array.tolist()).encode("utf-8")


def _git(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(folder), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.stdout.strip()


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
