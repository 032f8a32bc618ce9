"""Alert rules firing to a real local webhook receiver, the audit trail, the HTML report,
and the Prometheus exporter scraped over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from _yard import free_port
from modelyard.cli import run


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: keeps each POSTed JSON body; /fail answers 500."""

    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        status = 500 if self.path == "/fail" else 200
        if status == 200:
            type(self).bodies.append(body)
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    from _e2e import require_e2e

    require_e2e("a webhook receiver")
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def home(logged: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(logged, copy)
    return copy


def _rules(path: Path, alerts: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"alerts": alerts}))
    return path


@pytest.mark.e2e
def test_rules_fire_to_webhooks_and_are_audited(
    home: Path,
    tmp_path: Path,
    receiver: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, bodies = receiver
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    rules = _rules(
        tmp_path / "rules.yaml",
        [
            {"name": "inputs", "check": "feature_drift", "webhooks": [url + "/hook", dead]},
            {"name": "two-inputs", "check": "feature_drift", "threshold": 5},
            {"name": "skew", "check": "skew", "webhooks": [url + "/fail"]},
            {"name": "prediction", "check": "prediction_drift", "webhooks": [url + "/hook"]},
        ],
    )
    args = ["--home", str(home), "monitor", "houses:1", "--no-multivariate", "--json"]
    assert run([*args, "--rules", str(rules)]) == 1
    report = json.loads(capsys.readouterr().out)
    fired = {(a["rule"], a["window_start"][:10]) for a in report["alerts"]}
    # Day 2 moved "size" (and so the predictions); day 1 did not; nothing skews; one
    # drifting input is not five.
    assert fired == {("inputs", "2025-03-02"), ("prediction", "2025-03-02")}

    # One POST to the live hook with both rules' alerts; the dead one is recorded.
    (body,) = bodies
    assert body["source"] == "modelyard monitor"
    assert sorted(a["rule"] for a in body["alerts"]) == ["inputs", "prediction"]
    assert "size" in next(a["message"] for a in body["alerts"] if a["rule"] == "inputs")
    inputs = next(a for a in report["alerts"] if a["rule"] == "inputs")
    outcome = {d["url"]: d for d in inputs["deliveries"]}
    assert outcome[url + "/hook"]["status"] == 200
    assert outcome[dead]["status"] is None and "Connection refused" in outcome[dead]["error"]

    trail_file = home / "monitoring" / "alerts.jsonl"
    trail = [json.loads(line) for line in trail_file.read_text().splitlines()]
    assert [(t["rule"], t["version"]) for t in trail] == [
        ("inputs", "houses:1"),
        ("prediction", "houses:1"),
    ]
    assert trail[0]["deliveries"] == inputs["deliveries"] and trail[0]["actor"]

    # Quiet data fires nothing: exit 0, nothing sent, nothing appended.
    assert run([*args, "--rules", str(rules), "--until", "2025-03-02"]) == 0
    assert json.loads(capsys.readouterr().out)["alerts"] == []
    assert (
        len(bodies) == 1
        and len((home / "monitoring" / "alerts.jsonl").read_text().splitlines()) == 2
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("alerts: []", "alerts: List should have at least 1 item"),
        ("alerts:\n  - {name: a, check: metric}", "a metric rule needs `metric` and `threshold`"),
        ("alerts:\n  - {name: a, check: drift}", "alerts.0.check"),
        ("alerts:\n  - {name: a, check: skew, webhooks: [ftp://x]}", "is not an http(s) URL"),
        ("alerts: [", "not a readable YAML file"),
    ],
)
def test_bad_rules_files_exit_2(
    logged: Path, tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(content)
    assert run(["--home", str(logged), "monitor", "houses:1", "--rules", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and str(path) in stderr and "Traceback" not in stderr


def test_html_report_is_self_contained_and_puts_drift_first(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    args = ["--home", str(home), "monitor", "houses:1", "--no-multivariate", "--html", str(page)]
    assert run(args) == 1
    assert f"HTML report written to {page}" in capsys.readouterr().out
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")
    assert text.count("<svg") >= 3  # the heat map and a chart per column at least
    features = text.split("Inputs and predictions, drifting first")[1]
    # The drifting columns come first, and are tagged so.
    first = features.split('class="feature"')[1]
    assert ">size <" in first.replace("</h4>", "<") or "size" in first.split("</h4>")[0]
    assert "tag drift" in first
    assert "Training-serving skew" in text and "drift found" in text


@pytest.mark.e2e
def test_prometheus_exporter_serves_the_latest_window(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    command = [
        sys.executable,
        "-m",
        "modelyard",
        "monitor",
        "houses:1",
        "--no-multivariate",
        "--serve-metrics",
        str(port),
        "--every",
        "1h",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        text = ""
        deadline = time.monotonic() + 120
        with httpx.Client() as client:
            while "modelyard_monitor_window_rows" not in text:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "no gauges within 120 s"
                with contextlib.suppress(httpx.TransportError):  # not listening yet
                    text = client.get(f"http://127.0.0.1:{port}/metrics").text
                time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "serving monitoring gauges" in out
    from prometheus_client.parser import text_string_to_metric_families

    gauges = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def gauge(name: str, **labels: str) -> float:
        key = tuple(sorted({"model": "houses", "version": "1", **labels}.items()))
        return gauges["modelyard_monitor_" + name, key]

    # The newest window is day 2, where "size" moved.
    assert gauge("feature_drift", feature="size") == 1.0
    assert gauge("feature_drift", feature="rooms") == 0.0
    assert gauge("window_rows") == 300.0 and gauge("drifting_features") >= 1.0
    assert gauge("skew_rows", state="mismatched") == 0.0
    assert gauge("skew_rows", state="replayed") == 300.0
    assert gauge("drift_effect", column="size", effect="psi") > 0.2
    assert gauges["modelyard_monitor_run_failures", ()] == 0.0
