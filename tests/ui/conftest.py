"""Fixtures of the web app's tests: the app under a real uvicorn, a real headless
Chromium (Debian's, through Selenium and chromedriver) with a download folder, a real
SMTP server (aiosmtpd), and the batch tests' trained yard and worker processes.

Set ``MODELYARD_SKIP_BROWSER=1`` to skip the browser tests; set
``MODELYARD_SCREENSHOT_DIR`` to keep the screenshots (the README's come from
``MODELYARD_SCREENSHOT_DIR=docs``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch.conftest import (  # noqa: F401 - fixtures shared with the batch tests
    BatchYard,
    Mailbox,
    batch_yard,
    free_port,
    mailbox,
    settings,
    start_worker,
)
from modelyard.batch import BatchSettings
from modelyard.settings import Settings
from modelyard.ui import UiSettings, create_ui_app

CHROMIUM = os.environ.get("MODELYARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
KEY = "ui-admin-key-for-tests"


@dataclass
class LiveUi:
    """The web app under uvicorn in a thread."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the ui server did not shut down"


def start_ui(
    home: Settings, batch: BatchSettings, ui: UiSettings, *, port: int | None = None
) -> LiveUi:
    """Serve ``create_ui_app`` on 127.0.0.1 (a free port unless given)."""
    import uvicorn

    from _e2e import require_e2e

    require_e2e("the modelyard ui server")
    port = port or free_port()
    app = create_ui_app(home, batch, ui)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"ui-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start the ui")
        time.sleep(0.01)
    return LiveUi(url=f"http://127.0.0.1:{port}", server=server, thread=thread)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(tmp_path: Path, downloads: Path) -> Iterator[Any]:
    """A Selenium driver of headless Chromium: fresh profile, downloads to ``downloads``,
    the page's console kept (``driver.get_log("browser")``)."""
    from _e2e import require_e2e

    if os.environ.get("MODELYARD_SKIP_BROWSER") == "1":
        pytest.skip("MODELYARD_SKIP_BROWSER=1")
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found; install them (`apt-get install -y chromium "
            "chromium-driver`) or set MODELYARD_SKIP_BROWSER=1"
        )
    require_e2e("a headless Chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from modelyard.export.browser import CHROMIUM_FLAGS

    profile = tmp_path / "profile"
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,1000")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """The page's console errors (and failed loads) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: Any, name: str, tmp_path: Path) -> Path:
    """Save a full-height screenshot of the page to ``MODELYARD_SCREENSHOT_DIR`` (or
    ``tmp_path``)."""
    folder = Path(os.environ.get("MODELYARD_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 800), 4000))
    target = folder / name
    assert driver.save_screenshot(str(target)), f"no screenshot of {driver.current_url}"
    driver.set_window_size(1280, 1000)
    return target
