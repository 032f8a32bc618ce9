"""A real headless Chromium (Debian's, driven by Selenium and chromedriver) and a real
static file server on 127.0.0.1, for the web export's tests.

Set ``MODELYARD_SKIP_BROWSER=1`` to skip the tests that need them.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelyard.export.browser import CHROMIUM_FLAGS

CHROMIUM = os.environ.get("MODELYARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
_HINT = (
    "install Chromium and its driver (`apt-get install -y chromium chromium-driver`; "
    "scripts/test does), or set MODELYARD_SKIP_BROWSER=1 to skip the browser tests"
)


def require_browser() -> None:
    """Skip when asked to; fail with how to install when Chromium is missing."""
    if os.environ.get("MODELYARD_SKIP_BROWSER") == "1":
        pytest.skip("MODELYARD_SKIP_BROWSER=1")
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found; {_HINT}")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def static_server(root: Path) -> Iterator[str]:
    """Serve ``root`` on a free port of 127.0.0.1; yields the base URL (ending in /)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A Selenium driver of headless Chromium with a fresh profile and the CDP network
    log on (``driver.get_log("performance")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run_async(driver: Any, body: str, *args: Any) -> Any:
    """Run ``body`` (an async function body using ``args``) in the page; return its value
    or raise what it threw."""
    script = (
        "const done = arguments[arguments.length - 1];"
        f"(async (args) => {{ {body} }})(Array.from(arguments).slice(0, -1))"
        ".then((value) => done({value}), (error) => done({error: String(error && error.stack"
        " || error)}));"
    )
    answer = driver.execute_async_script(script, *args)
    if "error" in answer:
        raise AssertionError(f"the page threw: {answer['error']}")
    return answer.get("value")


def open_page(driver: Any, url: str) -> None:
    """Open an exported page and wait until it is ready (its form built)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 120).until(
        lambda d: d.execute_script("return document.body.dataset.ready") in ("true", "error")
    )
    state = driver.execute_script("return document.body.dataset.ready")
    status = driver.find_element("id", "status").text
    assert state == "true", f"the page did not load: {status}"
