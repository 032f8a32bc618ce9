"""Run an exported web folder's ``window.modelyard.predict`` in a real headless Chromium.

The folder is copied to a scratch folder with one more page, ``verify.html``, and
``rows.json``; a static file server on 127.0.0.1 serves it; Chromium opens the page,
which predicts the rows with the folder's own ``modelyard.js`` and posts the result
back to the same server. No driver library is needed: Chromium's command line and
Python's HTTP server do it all.

Chromium is ``MODELYARD_CHROMIUM`` if set, else ``chromium`` (Debian's package) or
``chromium-browser`` or ``google-chrome`` on the PATH.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modelyard.export._common import ExportError

__all__ = ["CHROMIUM_FLAGS", "BrowserError", "find_chromium", "predict_in_browser"]

logger = logging.getLogger(__name__)

#: Headless, sandbox-less (containers run as root), and quiet: no update checks, no
#: sync, no first-run pages, so the only traffic is the page's own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
_NAMES = ("chromium", "chromium-browser", "google-chrome")

_VERIFY_PAGE = """<!doctype html>
<meta charset="utf-8">
<script src="ort.wasm.min.js"></script>
<script src="contract.js"></script>
<script src="modelyard.js"></script>
<script>
(async () => {
  let body;
  try {
    const rows = await (await fetch("rows.json")).json();
    const started = performance.now();
    const out = await window.modelyard.predict(rows);
    body = {ok: true, ...out, milliseconds: performance.now() - started,
            agent: navigator.userAgent};
  } catch (error) {
    body = {ok: false, error: String(error && error.message || error),
            problems: error && error.problems || null};
  }
  await fetch("__result", {method: "POST", body: JSON.stringify(body)});
})();
</script>
"""


class BrowserError(ExportError):
    """Chromium is missing, or did not run the page to the end."""


def find_chromium() -> str | None:
    """The Chromium executable to use, or None when there is none."""
    chosen = os.environ.get("MODELYARD_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Handler(SimpleHTTPRequestHandler):
    """Serves the folder; a POST to ``/__result`` hands its body to the waiting export."""

    def __init__(self, *args: Any, sink: dict[str, Any], done: threading.Event, **kw: Any):
        self._sink, self._done = sink, done
        super().__init__(*args, **kw)

    def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
        if self.path != "/__result":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length", "0"))
        self._sink["body"] = self.rfile.read(length)
        self.send_response(204)
        self.end_headers()
        self._done.set()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        logger.debug("browser check: " + format, *args)


def predict_in_browser(
    folder: Path, rows: list[dict[str, Any]], *, timeout: float = 120.0
) -> dict[str, Any]:
    """``window.modelyard.predict(rows)`` of the web export in ``folder``, in Chromium.

    Returns:
        The page's answer: ``ok``, then ``predictions`` (and ``probabilities`` and
        ``classes`` for a classifier) and ``milliseconds``, or ``error`` and ``problems``.

    Raises:
        BrowserError: no Chromium, or it gave no answer within ``timeout`` seconds.
    """
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError(
            "no Chromium to check the web export in; install it (Debian: apt-get install "
            "chromium) or name it in MODELYARD_CHROMIUM"
        )
    with tempfile.TemporaryDirectory(prefix="modelyard-browser-") as scratch:
        site = Path(scratch) / "site"
        shutil.copytree(folder, site)
        (site / "verify.html").write_text(_VERIFY_PAGE)
        (site / "rows.json").write_text(json.dumps(rows, allow_nan=False))
        sink: dict[str, Any] = {}
        done = threading.Event()
        handler = partial(_Handler, directory=str(site), sink=sink, done=done)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/verify.html"
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={scratch}/profile", url]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            answered = done.wait(timeout)
        finally:
            _stop(process)
            server.shutdown()
            server.server_close()
        if not answered:
            log = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
            raise BrowserError(
                f"Chromium ({chromium}) gave no answer within {timeout:g} s; its log ends:\n{log}"
            )
        if process.stderr:
            process.stderr.close()
    answer: dict[str, Any] = json.loads(sink["body"])
    return answer


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the Chromium this module started: its own process group, by its id."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        pass
