"""The e2e guard (tests/_e2e.py) fails a test that starts a server without the marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

CONFTEST = """
import pytest

pytest_plugins = ["_e2e"]


@pytest.fixture
def start_server():
    return "a fixture named like a server fixture"
"""

TESTS = """
import socket
import threading

import pytest
import uvicorn

from _e2e import require_e2e


def _listen():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()


def test_unmarked_listens():
    _listen()


@pytest.mark.e2e
def test_marked_listens():
    _listen()


def test_unmarked_listens_in_a_thread():
    failed = []

    def serve():
        try:
            _listen()
        except RuntimeError as error:  # a server thread's error never reaches the test
            failed.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join()
    assert failed


def test_unmarked_starts_a_server_process():
    require_e2e("a server process")


def test_unmarked_starts_uvicorn():
    async def app(scope, receive, send):
        pass

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="critical")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    thread.join(30)
    assert not server.started  # refused before it listened


def test_uses_a_server_fixture(start_server):
    assert start_server
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeini("[pytest]\nmarkers =\n    e2e: starts servers\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_servers=TESTS)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), path])))
    return pytester


def test_a_test_that_starts_a_server_unmarked_fails_naming_it(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_unmarked_listens starts a server (a socket listening on 127.0.0.1:*) "
            "but is not marked e2e*",
            "*test_unmarked_listens_in_a_thread starts a server*not marked e2e*",
            "*test_unmarked_starts_a_server_process starts a server process*not marked e2e*",
            "*test_unmarked_starts_uvicorn starts a uvicorn server but is not marked e2e*",
        ]
    )


def test_the_quick_loop_deselects_every_test_of_a_server_fixture(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not e2e", "-v")
    result.assert_outcomes(failed=4, deselected=2)
    assert "test_uses_a_server_fixture" not in result.stdout.str()
