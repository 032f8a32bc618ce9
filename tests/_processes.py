"""Helpers of tests that run modelyard in a process of its own."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx


def wait_process_ready(process: subprocess.Popen[Any], url: str, timeout: float = 90) -> None:
    """Wait until the server ``process`` answers 200 on ``/readyz`` (fail if it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the server exited {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not become ready")
