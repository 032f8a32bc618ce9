"""The ``e2e`` marker's guard (a pytest plugin): every test that starts a server is ``e2e``.

The quick loop (``-m "not slow and not e2e"``) must start no server, and a new test must
not be able to slip one in. Two layers make sure of it:

- At collection, a test that uses a server fixture (:data:`SERVER_FIXTURES`, directly or
  through other fixtures) is marked ``e2e``, so ``-m "not e2e"`` deselects it.
- At run time, whatever starts a server calls :func:`require_e2e`: the PostgreSQL and
  uvicorn fixtures and the tests that spawn ``modelyard serve`` explicitly; every
  in-process uvicorn server (its ``Server.startup``, wrapped here: uvicorn listens
  through uvloop, which bypasses Python's socket) and every other socket of this process
  that starts listening (``socket.listen``, wrapped here) on their own. In a test not
  marked ``e2e`` that test fails, naming what it started.

Registered by ``tests/conftest.py`` (``pytest_plugins``); ``tests/test_e2e_guard.py``
checks that it fails what it must.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Generator
from typing import Any

import pytest

#: Fixtures that start a server; a test using one is marked ``e2e`` at collection.
SERVER_FIXTURES = frozenset(
    {
        "postgres_url",
        "start_server",
        "module_server",
        "module_servers",
        "keyed_module_server",
        "simulation",
    }
)

_HINT = (
    "mark it @pytest.mark.e2e (or use a fixture of tests/_e2e.py SERVER_FIXTURES): "
    'the quick loop, -m "not slow and not e2e", starts no server'
)

_lock = threading.Lock()
_current: pytest.Item | None = None  # the test being set up, run or torn down
_violations: list[str] = []  # found during the current phase, possibly by another thread
_original_listen: Any = None
_original_startup: Any = None


class ServerOutsideE2E(RuntimeError):
    """A test not marked ``e2e`` started a server."""


def require_e2e(what: str) -> None:
    """Fail the current test unless it is marked ``e2e``; call before starting ``what``.

    Raises:
        ServerOutsideE2E: the current test is not marked ``e2e`` (the test is failed
            even when this is raised in a server's own thread).
    """
    with _lock:
        item = _current
    if item is None or item.get_closest_marker("e2e") is not None:
        return
    message = f"{item.nodeid} starts {what} but is not marked e2e; {_HINT}"
    with _lock:
        _violations.append(message)
    raise ServerOutsideE2E(message)


def _guarded_listen(self: socket.socket, *args: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        try:
            where = "{}:{}".format(*self.getsockname()[:2])
        except OSError:
            where = "an address"
        require_e2e(f"a server (a socket listening on {where})")
    _original_listen(self, *args)


async def _guarded_startup(self: Any, *args: Any, **kwargs: Any) -> None:
    require_e2e("a uvicorn server")
    await _original_startup(self, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    global _original_listen, _original_startup
    if _original_listen is None:
        _original_listen = socket.socket.listen
        socket.socket.listen = _guarded_listen  # type: ignore[method-assign]
    try:
        import uvicorn
    except ImportError:  # a base install: no in-process servers either
        return
    if _original_startup is None:
        _original_startup = uvicorn.Server.startup
        uvicorn.Server.startup = _guarded_startup  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    global _original_listen, _original_startup
    if _original_listen is not None:
        socket.socket.listen = _original_listen  # type: ignore[method-assign]
        _original_listen = None
    if _original_startup is not None:
        import uvicorn

        uvicorn.Server.startup = _original_startup  # type: ignore[method-assign]
        _original_startup = None


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    global _current
    with _lock:
        _current = item
    try:
        return (yield)
    finally:
        with _lock:
            _current = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, object]:
    report = yield
    with _lock:
        found, _violations[:] = list(_violations), []
    if found:
        report.outcome = "failed"
        report.longrepr = "\n".join(found)
    return report
