"""Edge prediction: the web export in headless Chromium against the REST round trip.

For the house-price model (the bundled example) and a binary classifier trained on the
same sales (``expensive``: above the median price), in a fresh MODELYARD_HOME:

- size of ``model.onnx`` and of the whole web folder, raw and gzip (level 9);
- page load to first prediction: a cold load (HTTP cache disabled through the DevTools
  protocol) of a page in the export folder that loads ``ort.wasm.min.js`` and
  ``modelyard.js`` and predicts one row; the time from navigation start to the
  prediction (``performance.now()``), median of 5 loads;
- in the browser, per call of ``window.modelyard.predict`` on 1 row (mean of 200
  back-to-back calls: Chromium's timer moves in 0.1 ms steps; the median of 200 calls
  timed one by one, in those steps, is in the JSON too) and on 1,000 rows (median of
  20), the contract's checks included;
- the REST round trip to ``modelyard serve`` on the same machine
  (``/v1/models/NAME/predict``, one kept-alive connection, the same rows as JSON),
  1 row (median of 200) and 1,000 rows (median of 20).

Chromium is Debian's (``/usr/bin/chromium`` with ``/usr/bin/chromedriver``, driven by
Selenium), headless; a static file server on 127.0.0.1 serves the folders.

Compression (``modelyard compress`` and ``modelyard distill``): each model is compressed
within 1% of its primary metric (RMSE, ROC AUC) on its evaluation rows; the house-price
model is also distilled into a decision tree of depth 8. The table gives, per method,
the ONNX graph's size raw and gzip, the per-row latency in ONNX Runtime (Python, one-row
calls, median of 200) and the metric. The smallest compressed version of each model is
exported for the web too (``*-small``) and measured in the browser like the others.

Run: ``.venv/bin/python benchmarks/edge.py`` (about 10 minutes). Results: Markdown tables
on stdout and ``benchmarks/results/edge.json``.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from peers.harness import free_port, running, wait_ready

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from modelyard import api  # noqa: E402
from modelyard.contract import InputContract  # noqa: E402
from modelyard.export.browser import CHROMIUM_FLAGS  # noqa: E402
from modelyard.export.web import json_records  # noqa: E402
from modelyard.registry.readers import evaluation_frame  # noqa: E402
from modelyard.settings import Settings  # noqa: E402
from modelyard.workflows.compress import CompressionRow  # noqa: E402

LOADS = 5
ONE_ROW_CALLS = 200
BATCH_CALLS = 20
BATCH = 1_000

_FIRST_PAGE = """<!doctype html>
<meta charset="utf-8">
<script src="ort.wasm.min.js"></script>
<script src="contract.js"></script>
<script src="modelyard.js"></script>
<script>
fetch("bench-row.json").then((r) => r.json())
  .then((rows) => window.modelyard.predict(rows))
  .then(() => { window.firstPrediction = performance.now(); },
        (error) => { window.firstPrediction = -1; window.benchError = String(error); });
</script>
"""

_TIMING = """
const done = arguments[arguments.length - 1];
const [one, batch, oneCalls, batchCalls] = arguments;
(async () => {
  const time = async (rows, calls) => {
    const spent = [];
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      await window.modelyard.predict(rows);
      spent.push(performance.now() - started);
    }
    spent.sort((a, b) => a - b);
    return spent[Math.floor(spent.length / 2)];
  };
  // Chromium's timer moves in 0.1 ms steps: one row is timed as the mean of a loop.
  const loop = async (rows, calls) => {
    const started = performance.now();
    for (let i = 0; i < calls; i++) await window.modelyard.predict(rows);
    return (performance.now() - started) / calls;
  };
  await window.modelyard.predict(one);
  return {
    one: await loop(one, oneCalls),
    oneMedian: await time(one, oneCalls),
    batch: await time(batch, batchCalls),
  };
})().then(done, (error) => done({error: String(error)}));
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _projects(work: Path, settings: Settings) -> dict[str, str]:
    """Train the house-price example and the ``expensive`` classifier on its sales."""
    import pandas as pd

    houses = api.example_project(work / "house-prices")
    refs = {"house-prices": api.train(houses, settings=settings).version.ref}
    spec = yaml.safe_load((houses / "modelyard.yaml").read_text())
    source = houses / spec["data"]["source"]["path"]
    frame = pd.read_csv(source)
    frame["expensive"] = (frame[spec["target"]] > frame[spec["target"]].median()).map(
        {True: "yes", False: "no"}
    )
    frame = frame.drop(columns=[spec["target"]])
    classifier = work / "expensive"
    (classifier / "data").mkdir(parents=True)
    frame.to_csv(classifier / "data" / "sales.csv", index=False)
    spec.update(name="expensive", task="binary", target="expensive", description="")
    spec["data"]["source"] = {"path": "data/sales.csv"}
    spec["model"] = {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15},
    }
    spec["evaluation"] = {}
    (classifier / "modelyard.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    refs["expensive"] = api.train(classifier, settings=settings).version.ref
    return refs


def _sizes(folder: Path) -> dict[str, int]:
    model = (folder / "model.onnx").read_bytes()
    everything = [path.read_bytes() for path in folder.iterdir() if path.is_file()]
    return {
        "model_raw": len(model),
        "model_gzip": len(gzip.compress(model, 9)),
        "folder_raw": sum(map(len, everything)),
        "folder_gzip": sum(len(gzip.compress(data, 9)) for data in everything),
    }


def _browser(site: Path, folders: list[str], rows: dict[str, list[Any]]) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    options = Options()
    options.binary_location = os.environ.get("MODELYARD_CHROMIUM", "/usr/bin/chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="edge-bench-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(600)
    results: dict[str, Any] = {}
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        for name in folders:
            (site / name / "first.html").write_text(_FIRST_PAGE)
            (site / name / "bench-row.json").write_text(json.dumps(rows[name][:1]))
            loads = []
            for _ in range(LOADS):
                driver.get(f"{base}{name}/first.html")
                WebDriverWait(driver, 120).until(
                    lambda d: d.execute_script("return window.firstPrediction") is not None
                )
                loaded = driver.execute_script("return window.firstPrediction")
                if loaded < 0:
                    raise RuntimeError(driver.execute_script("return window.benchError"))
                loads.append(loaded)
            timing = driver.execute_async_script(
                _TIMING, rows[name][:1], rows[name][:BATCH], ONE_ROW_CALLS, BATCH_CALLS
            )
            if "error" in timing:
                raise RuntimeError(timing["error"])
            results[name] = {
                "load_to_first_ms": statistics.median(loads),
                "one_row_ms": timing["one"],
                "one_row_median_ms": timing["oneMedian"],
                "batch_ms": timing["batch"],
                "agent": driver.execute_script("return navigator.userAgent"),
            }
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    return results


def _rest(home: Path, work: Path, refs: dict[str, str], rows: dict[str, list[Any]]) -> dict:
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "modelyard", "serve", *refs.values(), "--port", str(port)]
    results: dict[str, Any] = {}
    with running(command, env=env, cwd=work, log=work / "serve.log") as server:
        for name in refs:
            path = f"/v1/models/{name}/predict"
            one = json.dumps({"rows": rows[name][:1]}).encode()
            batch = json.dumps({"rows": rows[name][:BATCH]}).encode()
            wait_ready(server, f"http://127.0.0.1:{port}{path}", one)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

            def call(body: bytes, path: str = path, connection: Any = connection) -> float:
                started = time.perf_counter()
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status} from {path}")
                return (time.perf_counter() - started) * 1000

            call(one)
            results[name] = {
                "one_row_ms": statistics.median(call(one) for _ in range(ONE_ROW_CALLS)),
                "batch_ms": statistics.median(call(batch) for _ in range(BATCH_CALLS)),
            }
            connection.close()
    return results


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as scratch:
        work = Path(scratch)
        settings = Settings(home=work / "home")
        print("training the house-price model and the classifier ...", flush=True)
        refs = _projects(work, settings)
        print("compressing ...", flush=True)
        compression, small = _compress(refs, settings)
        site = work / "site"
        rows: dict[str, list[Any]] = {}
        sizes: dict[str, dict[str, int]] = {}
        parity: dict[str, Any] = {}
        exports = {**refs, **{f"{name}-small": ref for name, ref in small.items()}}
        for name, ref in exports.items():
            print(f"exporting {ref} for the web ...", flush=True)
            result = api.export_edge(ref, target="web", output=site / name, settings=settings)
            parity[name] = result.record()["parity"]
            sizes[name] = _sizes(site / name)
            with api.open_registry(settings) as registry:
                version = registry.get_version(ref)
                frame = evaluation_frame(registry, version)
                names = InputContract.from_version(version).names
            records = json_records(frame, names)
            rows[name] = (records * (BATCH // len(records) + 1))[:BATCH]
        print("measuring in Chromium ...", flush=True)
        browser = _browser(site, list(exports), rows)
        print("measuring the REST round trip ...", flush=True)
        rest = _rest(settings.home, work, refs, rows)
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "sizes": sizes,
        "browser": browser,
        "rest": rest,
        "parity": parity,
        "compression": compression,
        "exports": exports,
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "edge.json").write_text(json.dumps(report, indent=1))
    print()
    print(
        "| model | model.onnx raw / gzip | folder raw / gzip | load to first prediction | "
        "browser 1 row | REST 1 row | browser 1,000 rows | REST 1,000 rows |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in exports:
        size, page = sizes[name], browser[name]
        server = rest.get(name, {"one_row_ms": float("nan"), "batch_ms": float("nan")})
        print(
            f"| {name} | {size['model_raw'] / 1e3:,.0f} / {size['model_gzip'] / 1e3:,.0f} kB "
            f"| {size['folder_raw'] / 1e6:.1f} / {size['folder_gzip'] / 1e6:.1f} MB "
            f"| {page['load_to_first_ms']:.0f} ms | {page['one_row_ms']:.2f} ms "
            f"| {server['one_row_ms']:.2f} ms | {page['batch_ms']:.1f} ms "
            f"| {server['batch_ms']:.1f} ms |"
        )

    _print_compression(compression)


def _compress(refs: dict[str, str], settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """Compress each model within 1%; distill the house-price model into a depth-8 tree.

    Returns the tables (JSON) and, per model, the ref of its registered compressed version.
    """
    tables: dict[str, Any] = {}
    small: dict[str, str] = {}
    for name, ref in refs.items():
        report = api.compress(ref, max_metric_loss=0.01, settings=settings)
        tables[name] = report.record()
        if report.registered:
            small[name] = report.registered
    distilled = api.distill(
        refs["house-prices"],
        student="sklearn.tree.DecisionTreeRegressor",
        params={"max_depth": 8},
        settings=settings,
    )
    tables["house-prices"]["rows"].append(
        {**asdict(distilled.row), "fidelity": distilled.fidelity, "ref": distilled.version.ref}
    )
    return tables, small


def _print_compression(tables: dict[str, Any]) -> None:
    for name, table in tables.items():
        print()
        print(f"{name}: within {table['max_loss']:.0%} of {table['metric']}")
        print()
        print("| method | kept | model.onnx gzip / raw | ms per row (ORT) | metric | loss |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for item in table["rows"]:
            row = CompressionRow(**{k: item[k] for k in CompressionRow.__dataclass_fields__})
            if row.size_raw is None:
                print(f"| {row.method} | {row.note} | | | | |")
                continue
            print(
                f"| {row.method} | {row.description} "
                f"| {(row.size_gzip or 0) / 1e3:,.1f} / {row.size_raw / 1e3:,.1f} kB "
                f"| {row.latency_ms or 0:.3f} | {row.metric or 0:,.4g} | {row.loss or 0:+.2%} |"
            )


if __name__ == "__main__":
    main()
