"""The house-price example the repository shows is the one the package ships."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from _projects import AMES_CSV, EXAMPLE_DIR


def _files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_packaged_example_equals_the_repository_example() -> None:
    # `modelyard example` copies the packaged copy; the README and the tests use the
    # repository's: an edit to one alone would make them disagree.
    packaged = Path(str(resources.files("modelyard") / "examples" / EXAMPLE_DIR.name))
    assert _files(packaged) == _files(EXAMPLE_DIR)
    assert AMES_CSV.is_file()
