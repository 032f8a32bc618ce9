"""Process-wide settings of a server: the garbage collector, the GIL switch interval,
and one model load at a time where CPython needs it.

These change the whole process, so they belong to the process that serves, not to a
library object: ``modelyard serve`` turns them on (its defaults are in
:data:`SERVE_DEFAULTS`), while an app built with
:func:`~modelyard.serving.app.create_app` inside someone else's process leaves them off
unless its :class:`~modelyard.serving.config.ServeConfig` asks (``gc_freeze``,
``switch_interval_ms``).

- **GC freezing** (``gc_freeze``). A loaded model brings hundreds of thousands of
  long-lived objects (pandas, scikit-learn, ONNX Runtime, the pipeline). Left in the
  collector's oldest generation, each full collection walks all of them and stops every
  thread for 50-150 ms: that was most of the server's p99 latency. After each load the
  heap is collected and frozen (:func:`gc.freeze`), so collections only walk what
  requests allocated since. Frozen objects are never collected, so once a swapped-out
  version is retired the heap is unfrozen, collected and frozen again
  (:meth:`ProcessTuning.released`): the retired version's reference cycles are freed
  then, not at shutdown.
- **Switch interval** (``switch_interval_ms``). Python's 5 ms default let the prediction
  log's flushing thread hold up the event loop for 5 ms at each hand-over, which showed
  in the one-connection p99 of benchmarks/serving.py (the README's Performance section).
  While a model loads, the interval is Python's default again (see below).
- **One load at a time**, on CPython versions with python/cpython#106905: loading a model
  parses NumPy array headers with :mod:`ast`, and the AST builder of CPython 3.11.0-3.11.7
  and 3.12.0-3.12.1 kept its recursion count per interpreter, not per thread, so two
  threads parsing at once could fail with "AST constructor recursion depth mismatch";
  frequent thread switches made that likelier. Fixed in 3.11.8 and 3.12.2: delete
  :func:`_ast_race` once modelyard requires Python >= 3.12.2.

Every setting is counted: several apps in one process (tests do this) enter and leave
in any order, and the last to leave puts back what the first found.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["SERVE_DEFAULTS", "ProcessSettings", "ProcessTuning", "TUNING"]


@dataclass(frozen=True)
class ProcessSettings:
    """What a server changes in its process.

    Attributes:
        gc_freeze: freeze the live heap out of garbage collection after each load.
        switch_interval: the GIL switch interval in seconds while serving; None leaves
            Python's.
    """

    gc_freeze: bool = False
    switch_interval: float | None = None

    @property
    def changes_anything(self) -> bool:
        """Whether these settings change the process at all."""
        return self.gc_freeze or self.switch_interval is not None


#: What ``modelyard serve`` sets unless told otherwise (``--no-gc-freeze``,
#: ``--switch-interval-ms 0``, or the ``MODELYARD_SERVE_*`` variables).
SERVE_DEFAULTS = ProcessSettings(gc_freeze=True, switch_interval=0.0002)


def _ast_race(version: tuple[int, int, int] | None = None) -> bool:
    """Whether this CPython has python/cpython#106905 (concurrent AST building fails)."""
    major, minor, micro = version or sys.version_info[:3]
    return (major, minor) == (3, 11) and micro < 8 or (major, minor) == (3, 12) and micro < 2


class ProcessTuning:
    """The process-wide settings of the servers running in this process (see the module
    docstring); one instance per process, :data:`TUNING`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._intervals: list[float] = []  # one per server that asked, in entry order
        self._freezers = 0
        self._loads = 0
        self._original_interval = sys.getswitchinterval()

    def enter(self, settings: ProcessSettings) -> None:
        """A server with ``settings`` starts."""
        with self._lock:
            if not self._intervals and not self._freezers:
                self._original_interval = sys.getswitchinterval()
            if settings.switch_interval is not None:
                self._intervals.append(settings.switch_interval)
            if settings.gc_freeze:
                self._freezers += 1
            self._apply()

    def leave(self, settings: ProcessSettings) -> None:
        """A server with ``settings`` stops; the last one puts the process back."""
        with self._lock:
            if settings.switch_interval is not None:
                self._intervals.remove(settings.switch_interval)
            if settings.gc_freeze:
                self._freezers -= 1
                if self._freezers == 0:
                    gc.unfreeze()  # what settle() froze is the collector's again
            self._apply()

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        """Hold while loading a model: one load at a time where CPython needs it, and
        Python's own switch interval meanwhile."""
        guard = self._load_lock if _ast_race() else contextlib.nullcontext()
        with guard:
            with self._lock:
                self._loads += 1
                self._apply()
            try:
                yield
            finally:
                with self._lock:
                    self._loads -= 1
                    self._apply()

    def settle(self, settings: ProcessSettings) -> None:
        """After a load: collect, then freeze the live heap (if ``settings`` freeze)."""
        if settings.gc_freeze:
            with self._lock:
                gc.collect()
                gc.freeze()

    def released(self, settings: ProcessSettings) -> None:
        """After a retired version's last request: free its reference cycles.

        Frozen objects are never collected, and a retired version was frozen while it
        served; so the heap is unfrozen, collected (the version goes) and frozen again.
        Unfrozen heaps need nothing: the collector finds the cycles on its own.
        """
        if settings.gc_freeze:
            with self._lock:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            _return_freed_memory()

    def _apply(self) -> None:
        if self._intervals and self._loads == 0:
            sys.setswitchinterval(min(self._original_interval, *self._intervals))
        else:
            sys.setswitchinterval(self._original_interval)


TUNING = ProcessTuning()


def _return_freed_memory() -> None:
    """Give memory freed by a retired version back to the system, where the C library
    can (glibc's ``malloc_trim``).

    glibc keeps freed memory in its arenas (one per thread that allocated), so a process
    that loads a version in a worker thread and frees the previous one grows by a version
    per swap until the arenas happen to be reused; trimming returns the free pages now.
    Elsewhere (musl, macOS) this does nothing.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
