"""Drift on a 1,000,000-row window: modelyard monitor against Evidently and NannyML.

Setup (not measured): the bundled Ames example is trained (reference: its training
rows, sales before 2010). Two windows of ``--rows`` rows are drawn from the training
rows with replacement (bootstrap):

- ``bootstrap``: as drawn. Nothing changed, so every column flagged is a false alarm;
- ``drift``: with injected changes: ``area`` scaled by 1.3, ``Lot.Area`` shifted by half
  its standard deviation, ``Overall.Qual`` raised by 1 in 40% of rows, a category never
  seen (``Newtown``) in 15% of the ``Neighborhood`` values, and 30% of ``Garage.Area``
  missing. Every other column is unchanged.

Each window is predicted with the trained pipeline (each distinct row once: a window
holds at most 8 variants of each training row) and written to a real prediction log as
a server would have logged it (requests of 10,000 rows, one segment each), and also to
a Parquet file with the reference rows beside it. A kept ``--workdir`` keeps the trained
example and each row count's windows, so later runs skip the setup (a 1,000,000-row
setup takes about a minute once trained; training takes a few).

Measured, each in a fresh process (3 runs by default; medians with min-max):

- modelyard: ``monitor(settings, "house-prices:1", window="<rows>rows")`` reading the
  log segment by segment (every univariate check and data quality; the multivariate and
  skew checks off, as the peers run neither);
- Evidently 0.7 ``DataDriftPreset`` and NannyML 0.13 ``UnivariateDriftCalculator``
  (``benchmarks/peers/monitoring_peer.py``) on the same rows read from Parquet, in
  ``benchmarks/.venv-monitoring`` (``requirements-monitoring.txt``; created on first use).

Each side's time includes reading its data, not importing the libraries; peak memory is
the process's peak resident set (imports included). Agreement: the columns each flags,
against the injected ones.

Run: ``.venv/bin/python benchmarks/monitoring.py`` (about 25 minutes on 2 cores once
the example is trained; the peers' venv takes a few more the first time); ``--rows
100000 --runs 1`` for a quick look; ``--tools modelyard`` runs modelyard alone (no
peers' venv). Results: ``benchmarks/results/monitoring.json`` and a Markdown table on
stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-monitoring"
PEER_SCRIPT = HERE / "peers" / "monitoring_peer.py"
RESULTS = HERE / "results" / "monitoring.json"
REF = "house-prices:1"
INJECTED = ["area", "Lot.Area", "Overall.Qual", "Neighborhood", "Garage.Area"]
_REQUEST_ROWS = 10_000
_START = datetime(2026, 1, 1, tzinfo=UTC)


def ensure_peer_venv() -> Path:
    """benchmarks/.venv-monitoring/bin/python, creating the venv on first use."""
    python = PEER_VENV / "bin" / "python"
    if (PEER_VENV / "bin" / "python").exists():
        return python
    print(f"creating {PEER_VENV} (once; a few minutes) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True, timeout=300)
    (PEER_VENV / ".gitignore").write_text("*\n")
    requirements = HERE / "requirements-monitoring.txt"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        check=True,
        timeout=1800,
    )
    return python


def inject(frame: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The drift case's changes (see the module docstring); other columns untouched.

    Returns the changed frame and, per row, which of the random changes it got (a
    number from 0 to 7: raised, renamed, emptied as bits).
    """
    out = frame.copy()
    out["area"] = out["area"] * 1.3
    out["Lot.Area"] = out["Lot.Area"] + 0.5 * frame["Lot.Area"].std()
    raised = rng.random(len(out)) < 0.4
    out.loc[raised, "Overall.Qual"] = out.loc[raised, "Overall.Qual"] + 1
    renamed = rng.random(len(out)) < 0.15
    out.loc[renamed, "Neighborhood"] = "Newtown"
    emptied = rng.random(len(out)) < 0.3
    out.loc[emptied, "Garage.Area"] = np.nan
    return out, raised * 1 + renamed * 2 + emptied * 4


def setup(workdir: Path, rows: int) -> dict[str, Any]:
    """Train the example (once per ``workdir``), draw the two windows of ``rows`` rows,
    log them and write their Parquet files (once per ``workdir`` and row count)."""
    trained = _train(workdir)
    kinds = json.loads((workdir / "columns.json").read_text())
    training = pd.read_parquet(workdir / "reference.parquet")
    folder = workdir / f"rows-{rows}"
    cases = {}
    for case in ("bootstrap", "drift"):
        home = folder / case
        parquet = folder / f"{case}.parquet"
        cases[case] = {"home": str(home), "parquet": str(parquet)}
        if (folder / f"{case}.done").exists():
            continue
        shutil.rmtree(home, ignore_errors=True)
        home.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(trained, home)
        started = time.perf_counter()
        window, predictions = _window(trained, training, case, rows)
        print(f"logging the {case} window ({rows:,} rows) ...", flush=True)
        _log(home, window, predictions, kinds)
        window.to_parquet(parquet, index=False)
        (folder / f"{case}.done").write_text("")
        print(f"{case} window ready in {time.perf_counter() - started:.0f} s", flush=True)
    return {"kinds": kinds, "cases": cases, "training_rows": len(training)}


def _train(workdir: Path) -> Path:
    """``workdir/trained``: the trained example, its training rows (``reference.parquet``)
    and their kinds (``columns.json``); trained on the first call only."""
    trained = workdir / "trained"
    if (workdir / "trained.done").exists():
        return trained
    from modelyard import api
    from modelyard.monitoring.io import open_reference
    from modelyard.registry.registry import Registry
    from modelyard.settings import Settings

    shutil.rmtree(trained, ignore_errors=True)
    shutil.rmtree(workdir / "example", ignore_errors=True)
    settings = Settings(home=trained)
    project = api.example_project(workdir / "example")
    print("training the Ames example ...", flush=True)
    api.train(project, settings=settings, onnx=False)
    with Registry.open(settings) as registry:
        version = registry.get_version(REF)
        reference = open_reference(registry, version, sample_rows=10**9, actor="benchmark")
    assert reference.sample is not None
    kinds = {name: feature.kind for name, feature in reference.profile.features.items()}
    reference.sample.to_parquet(workdir / "reference.parquet", index=False)
    (workdir / "columns.json").write_text(json.dumps(kinds))
    (workdir / "trained.done").write_text("")
    return trained


def _window(
    trained: Path, training: pd.DataFrame, case: str, rows: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """A case's window and the pipeline's prediction of each of its rows.

    The window's rows are training rows, some changed by :func:`inject` in one of 8
    ways, so a window of a million rows holds at most 8 x 2,589 distinct rows. The
    pipeline is deterministic: each distinct row is predicted once and its prediction
    given to each of its copies (what predicting every row gives, checked on a sample),
    which makes the setup minutes faster than predicting a million rows.
    """
    from modelyard import api
    from modelyard.settings import Settings

    rng = np.random.default_rng(7 if case == "bootstrap" else 8)
    drawn = rng.integers(0, len(training), rows)
    window = training.iloc[drawn].reset_index(drop=True)
    variant = np.zeros(rows, np.int64)
    if case == "drift":
        window, variant = inject(window, rng)
    key = drawn * 8 + variant
    _, first, copies = np.unique(key, return_index=True, return_inverse=True)
    pipeline = api.load_model(REF, settings=Settings(home=trained))
    print(f"predicting {first.size:,} distinct rows of the {case} window ...", flush=True)
    predictions = np.asarray(pipeline.predict(window.iloc[first]), np.float64)[copies]
    checked = np.random.default_rng(0).choice(rows, min(rows, 500), replace=False)
    direct = np.asarray(pipeline.predict(window.iloc[checked]), np.float64)
    assert np.allclose(direct, predictions[checked], rtol=1e-9, atol=0.0), "not deterministic"
    return window, predictions


def _log(home: Path, window: pd.DataFrame, predictions: np.ndarray, kinds: dict[str, str]) -> None:
    """Log ``window`` as a server would have: requests of 10,000 rows, one second apart,
    each written as its own segment through the prediction log."""
    from modelyard.predlog import PredictionLog
    from modelyard.settings import Settings
    from modelyard.types import RuntimeOutput

    columns = {}
    for name, kind in kinds.items():
        values = window[name]
        if kind == "categorical":
            columns[name] = values.astype(object).where(values.notna(), None).to_numpy()
        else:
            columns[name] = values.to_numpy(np.float64, na_value=np.nan)
    with PredictionLog.open(Settings(home=home), flush_seconds=3600) as predlog:
        for number, start in enumerate(range(0, len(window), _REQUEST_ROWS)):
            stop = min(start + _REQUEST_ROWS, len(window))
            predlog.log(
                model="house-prices",
                version=1,
                request_id=f"r{number}",
                received_at=_START + timedelta(seconds=number),
                columns={name: values[start:stop] for name, values in columns.items()},
                rows=stop - start,
                output=RuntimeOutput(values=predictions[start:stop]),
                latency_ms=1.0,
                endpoint="predict",
            )
            predlog.flush()  # one segment per request, as a busy server writes them
        stats = predlog.stats()
    assert stats.written_rows == len(window), stats
    assert not stats.dropped_rows and not stats.failed_rows and not stats.unindexed_segments


def run_modelyard(home: str, rows: int) -> dict[str, Any]:
    """One measured modelyard run (in this fresh process; imports not timed)."""
    import modelyard.monitoring.summary  # noqa: F401 - imported before the clock starts
    from modelyard.monitoring.drift import MonitorConfig
    from modelyard.monitoring.monitor import monitor
    from modelyard.monitoring.windows import parse_window
    from modelyard.settings import Settings

    started = time.perf_counter()
    report = monitor(
        Settings(home=Path(home)),
        REF,
        window=parse_window(f"{rows}rows"),
        config=MonitorConfig(multivariate_rows=0, skew_rows=0),
    )
    seconds = time.perf_counter() - started
    windows = report.versions[0].windows
    assert len(windows) == 1 and windows[0].rows == rows, [w.rows for w in windows]
    flagged = sorted(c.column for c in windows[0].features if c.drift)
    return {"seconds": seconds, "peak_mb": peak_mb(), "flagged": flagged}


def peak_mb() -> float:
    """This process's peak resident set (VmHWM): unlike ru_maxrss, it starts afresh at
    exec, so a child does not inherit its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(tool: str, case: str, setup_data: dict[str, Any], workdir: Path, rows: int) -> Any:
    info = setup_data["cases"][case]
    if tool == "modelyard":
        command = [sys.executable, __file__, "--run-one", info["home"], "--rows", str(rows)]
    else:
        python = ensure_peer_venv()
        command = [
            str(python),
            str(PEER_SCRIPT),
            tool,
            str(workdir / "reference.parquet"),
            info["parquet"],
            str(workdir / "columns.json"),
        ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0]["error"]}
    seconds = [r["seconds"] for r in good]
    peaks = [r["peak_mb"] for r in good]
    return {
        "runs": len(good),
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "peak_mb_median": statistics.median(peaks),
        "peak_mb_min": min(peaks),
        "peak_mb_max": max(peaks),
        "flagged": good[0]["flagged"],
        "flagged_stable": all(r["flagged"] == good[0]["flagged"] for r in good),
    }


def table(results: dict[str, Any], kinds: dict[str, str]) -> str:
    lines = [
        "| tool | case | time (median, min-max) | × modelyard | peak memory | injected found "
        "| other columns flagged |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in ("drift", "bootstrap"):
        base = results[case].get("modelyard", {}).get("seconds_median")
        for tool, found in results[case].items():
            if "error" in found:
                lines.append(f"| {tool} | {case} | failed: {found['error']} | | | | |")
                continue
            flagged = set(found["flagged"])
            injected = len(flagged & set(INJECTED)) if case == "drift" else 0
            others = len(flagged - set(INJECTED)) if case == "drift" else len(flagged)
            ratio = f"{found['seconds_median'] / base:.1f}×" if base else "-"
            lines.append(
                f"| {tool} | {case} | {found['seconds_median']:.1f} s "
                f"({found['seconds_min']:.1f}-{found['seconds_max']:.1f}) | {ratio} | "
                f"{found['peak_mb_median']:,.0f} MB | "
                f"{f'{injected}/{len(INJECTED)}' if case == 'drift' else '-'} | "
                f"{others} of {len(kinds) - (len(INJECTED) if case == 'drift' else 0)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="modelyard,evidently,nannyml")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data here")
    parser.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_modelyard(args.run_one, args.rows)))
        return
    tools = args.tools.split(",")
    if set(tools) - {"modelyard"}:
        ensure_peer_venv()  # before the setup: a failing install fails fast
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="monitoring-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = setup(workdir, args.rows)  # a kept --workdir skips what it already holds
    print(f"setup done in {time.perf_counter() - started:.0f} s", flush=True)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for repeat in range(args.runs):
        for case in ("drift", "bootstrap"):
            for tool in tools:  # interleaved, so a busy spell hits every tool alike
                found = measure(tool, case, data, workdir, args.rows)
                runs.setdefault(case, {}).setdefault(tool, []).append(found)
                print(f"run {repeat + 1} {case} {tool}: {json.dumps(found)}", flush=True)
    results = {
        case: {t: summarise(r) for t, r in by_tool.items()} for case, by_tool in runs.items()
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "runs": args.runs,
                "columns": len(data["kinds"]),
                "training_rows": data["training_rows"],
                "injected": INJECTED,
                "results": results,
                "raw": runs,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    print(table(results, data["kinds"]))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
