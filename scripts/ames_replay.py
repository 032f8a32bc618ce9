"""The Ames walk-through of monitoring: train on 2006-2007, replay 2008-2010 through a server.

1. The bundled Ames example is trained on its 2006-2007 sales only (random 80/20 split),
   with its ONNX export, and promoted.
2. ``modelyard serve`` starts on a free loopback port with the prediction log on; the
   2008, 2009 and 2010 sales are sent to it, 20 rows a request, each year in its own
   minute (the replay waits for the next minute before a new year), so ``--window 1m``
   cuts the log into one window per sale year.
3. The true prices are sent back through ``/v1/feedback``; the server is stopped
   (SIGTERM: it flushes the log).
4. ``modelyard monitor house-prices --window 1m --html`` writes the report, and headless
   Chromium takes a screenshot of it.

Run: ``.venv/bin/python scripts/ames_replay.py --out docs/monitoring`` (about 5 minutes).
Writes ``report.html``, ``report.json``, ``windows.json`` (which window is which
year) and ``ames-monitoring.png`` there, and prints
which window is which year. Reads only the data shipped in the package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

YEARS = (2008, 2009, 2010)
_ROWS_PER_REQUEST = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(workdir: Path) -> tuple[Path, pd.DataFrame]:
    """The example project restricted to 2006-2007, and the later sales to replay."""
    from modelyard.api import example_project

    project = example_project(workdir / "project")
    frame = pd.read_csv(project / "data" / "ames.csv.gz")
    early = frame[frame["Yr.Sold"] <= 2007]
    (project / "data" / "ames.csv.gz").unlink()
    early.to_csv(project / "data" / "ames-2006-2007.csv.gz", index=False)
    spec = yaml.safe_load((project / "modelyard.yaml").read_text())
    spec["data"]["source"]["path"] = "data/ames-2006-2007.csv.gz"
    spec["split"] = {"method": "random", "test_size": 0.2}
    spec["evaluation"]["gates"] = [{"metric": "rmse", "beat_baseline": True}]
    (project / "modelyard.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return project, frame[frame["Yr.Sold"] > 2007].reset_index(drop=True)


def wait_for(url: str, process: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.communicate()[1][-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def next_minute() -> None:
    now = time.time()
    time.sleep(60 - now % 60 + 0.5)


def replay(
    base: str, later: pd.DataFrame, features: list[str]
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """Send each year's sales (their model inputs) in its own minute; returns the labels
    and each year's window start."""
    inputs = later[features]
    years = later["Yr.Sold"]
    labels: list[dict[str, Any]] = []
    minutes: dict[int, str] = {}
    refused: dict[int, int] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for year in YEARS:
            next_minute()
            minutes[year] = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
            rows = inputs[years == year]
            prices = later.loc[rows.index, "price"]
            for number, start in enumerate(range(0, len(rows), _ROWS_PER_REQUEST)):
                part = rows.iloc[start : start + _ROWS_PER_REQUEST]
                records = [
                    {
                        k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in r.items()
                    }
                    for r in part.to_dict("records")
                ]
                request_id = f"{year}-{number}"
                kept = list(range(len(records)))
                answer = client.post(
                    "/v1/models/house-prices/predict",
                    json={"rows": records},
                    headers={"X-Request-ID": request_id},
                )
                if answer.status_code == 422:
                    # The contract refuses some rows (e.g. a missing value training never
                    # had): as a client would, send the others again, and count them.
                    bad = {item["loc"][2] for item in answer.json()["detail"]}
                    refused[year] = refused.get(year, 0) + len(bad)
                    kept = [i for i in kept if i not in bad]
                    request_id += "-again"
                    answer = client.post(
                        "/v1/models/house-prices/predict",
                        json={"rows": [records[i] for i in kept]},
                        headers={"X-Request-ID": request_id},
                    )
                if answer.status_code != 200:
                    raise RuntimeError(f"{request_id}: HTTP {answer.status_code} {answer.text}")
                part_prices = prices.iloc[start : start + _ROWS_PER_REQUEST].to_numpy()
                for row, position in enumerate(kept):
                    label = float(part_prices[position])
                    labels.append({"request_id": request_id, "row": row, "label": label})
            print(
                f"{year}: {len(rows)} sales replayed in the minute of {minutes[year]} "
                f"({refused.get(year, 0)} refused by the input contract)"
            )
        for start in range(0, len(labels), 500):
            answer = client.post(
                "/v1/feedback",
                json={"model": "house-prices", "items": labels[start : start + 500]},
            )
            answer.raise_for_status()
    print(f"{len(labels)} true prices sent to /v1/feedback")
    return labels, minutes


def screenshot(page: Path, image: Path, profile: Path) -> None:
    """A full-page PNG of ``page`` in headless Chromium (a fresh profile, no network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from modelyard.export.browser import CHROMIUM_FLAGS

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(page.resolve().as_uri())
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 40, 6000))
        driver.save_screenshot(str(image))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/monitoring"))
    args = parser.parse_args()
    from modelyard import api
    from modelyard.cli import run
    from modelyard.monitoring import monitor, parse_window
    from modelyard.settings import Settings

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ames-replay-") as temporary:
        workdir = Path(temporary)
        home = workdir / "home"
        settings = Settings(home=home)
        project, later = prepare(workdir)
        print("training on the 2006-2007 sales ...", flush=True)
        result = api.train(project, settings=settings)
        api.promote(
            result.ref, reason="Ames walk-through", allow_failed_gates=True, settings=settings
        )
        port = free_port()
        env = {**os.environ, "MODELYARD_HOME": str(home)}
        server = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", "house-prices", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/readyz", server)
            version = api.show(result.ref, settings=settings)
            features = list(version.lineage_record.features.feature_order)
            _, minutes = replay(base, later, features)
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=120)
        arguments = ["--home", str(home), "monitor", "house-prices", "--window", "1m"]
        code = run([*arguments, "--html", str(out / "report.html")])
        print(f"modelyard monitor exited {code}")
        report = monitor(settings, "house-prices", window=parse_window("1m"))
        (out / "report.json").write_text(report.model_dump_json(indent=2))
        years = {minute: year for year, minute in minutes.items()}
        (out / "windows.json").write_text(json.dumps(years, indent=2))
        screenshot(out / "report.html", out / "ames-monitoring.png", workdir / "chromium")
        print(f"report, windows and screenshot in {out}")


if __name__ == "__main__":
    main()
