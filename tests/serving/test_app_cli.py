"""``modelyard serve`` as users run it: a real process, one or several workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from _e2e import require_e2e
from _processes import wait_process_ready

if TYPE_CHECKING:
    from conftest import Yard

Rows = list[dict[str, Any]]


def _serve(yard: Yard, *args: str, refused: bool = False) -> subprocess.Popen[str]:
    """Run ``modelyard serve``; ``refused``: it is expected to exit before it listens."""
    if not refused:
        require_e2e("`modelyard serve`")
    env = {**os.environ, "MODELYARD_HOME": str(yard.settings.home)}
    env.pop("MODELYARD_REGISTRY_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


_wait_ready = wait_process_ready


def _serve_sklearn(yard: Yard, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``modelyard serve ARGS`` on a free port with the sklearn runtime; and its URL."""
    port = _port()
    process = _serve(yard, *args, "--port", str(port), "--runtime", "sklearn")
    return process, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return output


def test_unknown_reference_fails_before_serving(yard: Yard) -> None:
    process = _serve(yard, "houses@nowhere", "--port", str(_port()), refused=True)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "no alias 'nowhere'" in output and "Traceback" not in output


def test_serving_without_the_serve_extra_says_what_to_install(yard: Yard) -> None:
    """As on a base install: uvicorn cannot be imported (its sys.modules entry is None)."""
    code = (
        "import sys; sys.modules['uvicorn'] = None; from modelyard.cli import main; "
        "sys.argv = ['modelyard', 'serve', 'houses']; main()"
    )
    env = {**os.environ, "MODELYARD_HOME": str(yard.settings.home)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "serving needs uvicorn, which is not installed" in output
    assert "pip install 'modelyard[serve]'" in output
    assert "Traceback" not in output and "serving houses" not in output


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.e2e
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_command_answers_and_shuts_down_cleanly(
    yard: Yard, house_rows: Rows, workers: int
) -> None:
    process, url = _serve_sklearn(
        yard, "houses", "churn:1", "--workers", str(workers), "--no-prediction-log"
    )
    try:
        _wait_ready(process, url)
        # each worker loads the models on its own: one may still answer 503 for a moment
        deadline = time.monotonic() + 60
        while True:
            response = httpx.post(f"{url}/v1/models/houses/predict", json={"rows": house_rows})
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        models = httpx.get(f"{url}/v1/models").json()["models"]
    finally:
        output = _stop(process)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == yard.reference("houses:1", house_rows).values.tolist()
    # (this worker may still be loading one of them: only the references are certain)
    assert [m["ref"] for m in models] == ["houses@production", "churn:1"]
    assert process.returncode == 0, output
    assert "serving houses:1 (houses@production)" in output


@pytest.mark.e2e
def test_serve_command_keys_all_but_health_and_checks_feedback_ids(
    yard: Yard, house_rows: Rows
) -> None:
    process, url = _serve_sklearn(yard, "houses", "--api-key", "cli-key-123", "--public", "metrics")
    key = {"X-API-Key": "cli-key-123"}
    try:
        _wait_ready(process, url)
        with httpx.Client(base_url=url, timeout=30) as client:
            bare = {p: client.get(p).status_code for p in ("/v1/models", "/openapi.json")}
            opened = {p: client.get(p).status_code for p in ("/healthz", "/metrics")}
            answer = client.post(
                "/v1/models/houses/predict", json={"rows": house_rows}, headers=key
            )
            rid = answer.json()["request_id"]
            items = [{"request_id": rid, "row": 2, "label": 1.0}]
            kept = client.post(
                "/v1/feedback", json={"model": "houses", "items": items}, headers=key
            )
            items = [{"request_id": "f" * 32, "row": 0, "label": 1.0}]
            made_up = client.post(
                "/v1/feedback", json={"model": "houses", "items": items}, headers=key
            )
    finally:
        output = _stop(process)
    assert bare == {"/v1/models": 401, "/openapi.json": 401}
    assert opened == {"/healthz": 200, "/metrics": 200}
    assert answer.status_code == 200 and answer.headers["x-request-id"] == rid
    assert kept.status_code == 200, kept.text
    assert made_up.status_code == 422 and "unknown_request_id" in made_up.text
    assert process.returncode == 0, output
