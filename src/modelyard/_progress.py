"""Progress reporting for long work, kept out of the core.

The core announces named steps; the CLI shows them as a Rich progress bar, the Python
API shows nothing unless given a reporter.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

__all__ = ["NullProgress", "Progress"]


class Progress(Protocol):
    """Receives the steps of a long operation."""

    def start(self, total: int) -> None:
        """Announce how many steps follow."""

    def step(self, description: str) -> AbstractContextManager[object]:
        """A context that spans one step."""


class NullProgress:
    """Reports nothing."""

    def start(self, total: int) -> None:
        return None

    def step(self, description: str) -> AbstractContextManager[object]:
        return nullcontext()
