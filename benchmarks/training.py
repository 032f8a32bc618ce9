"""Cost of modelyard's training pipeline against a bare scikit-learn fit.

Both sides fit the SAME scikit-learn pipeline (built from the example's spec) on the
SAME rows, in one run:

- bare: read the data, split by sale year, ``pipeline.fit``, predict the evaluation
  rows, compute RMSE: what a script without modelyard does;
- modelyard: ``modelyard.train``: the same, plus the content digest and Parquet
  snapshot, schema, baseline, slices, gates, lineage (environment, git), the skops
  artifact, and registration in a fresh SQLite registry.

Cases: the bundled Ames example (2,930 rows) and a 1,000,000-row resample of it.
Also measured: ``modelyard --help`` wall time in a fresh process.

Run: ``.venv/bin/python benchmarks/training.py`` (about 10 minutes on 2 cores);
``--quick`` skips the 1M-row case. Results go to ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import modelyard
from modelyard.api import example_project
from modelyard.features.build import plan_features
from modelyard.models.fit import build_pipeline
from modelyard.settings import Settings
from modelyard.spec import load_spec

RESULTS = Path(__file__).parent / "results"


def bare_fit(project: Path) -> float:
    """Seconds for read + split + fit + predict + RMSE with scikit-learn alone."""
    loaded = load_spec(project)
    spec = loaded.spec
    source = project / str(spec.data.source.path)
    started = time.perf_counter()
    frame = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    test = frame["Yr.Sold"] >= 2010
    train_rows, eval_rows = frame[~test], frame[test]
    pipeline = build_pipeline(spec, plan_features(spec, frame), project_dir=project)
    pipeline.fit(train_rows, train_rows[spec.target])
    predicted = pipeline.predict(eval_rows)
    rmse = float(np.sqrt(np.mean((predicted - eval_rows[spec.target].to_numpy()) ** 2)))
    assert rmse > 0
    return time.perf_counter() - started


def modelyard_train(project: Path, home: Path) -> float:
    """Seconds for ``modelyard.train`` end to end, registry included."""
    started = time.perf_counter()
    modelyard.train(project, settings=Settings(home=home))
    return time.perf_counter() - started


def measure(project: Path, repeats: int, workdir: Path) -> dict[str, object]:
    bare, full = [], []
    for index in range(repeats):  # interleaved, so drift in machine load hits both sides
        bare.append(bare_fit(project))
        full.append(modelyard_train(project, workdir / f"home-{index}"))
    bare_median, full_median = statistics.median(bare), statistics.median(full)
    return {
        "repeats": repeats,
        "bare_seconds": bare,
        "modelyard_seconds": full,
        "bare_median": bare_median,
        "modelyard_median": full_median,
        "overhead_seconds": full_median - bare_median,
        "ratio": full_median / bare_median,
    }


def resampled_project(example: Path, rows: int, workdir: Path) -> Path:
    project = workdir / f"ames-{rows}"
    shutil.copytree(example, project)
    frame = pd.read_csv(example / "data" / "ames.csv.gz")
    rng = np.random.default_rng(0)
    big = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    big["Order"] = np.arange(1, rows + 1)
    big.to_parquet(project / "data" / "ames.parquet", index=False)
    spec_file = project / "modelyard.yaml"
    spec_file.write_text(spec_file.read_text().replace("data/ames.csv.gz", "data/ames.parquet"))
    return project


def help_latency(repeats: int = 7) -> dict[str, object]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "modelyard", "--help"], capture_output=True, check=True
        )
        times.append(time.perf_counter() - started)
    return {"repeats": repeats, "seconds": times, "median": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1M-row case")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="repeats on the example")
    parser.add_argument(
        "--resample-repeats", type=int, default=1, help="repeats on the 1M-row resample"
    )
    args = parser.parse_args()

    results: dict[str, object] = {"help": help_latency()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        example = example_project(workdir / "example")
        print(f"example ({args.repeats} repeats)...", flush=True)
        results["example"] = measure(example, args.repeats, workdir)
        if not args.quick:
            print(f"{args.rows:,}-row resample ({args.resample_repeats} repeats)...", flush=True)
            big = resampled_project(example, args.rows, workdir)
            results["resample"] = measure(big, args.resample_repeats, workdir)
            results["resample"]["rows"] = args.rows  # type: ignore[index]

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(results, indent=2))
    print()
    print("| case | bare scikit-learn (median s) | modelyard train (median s) | overhead | ratio |")
    print("|---|---|---|---|---|")
    for case in ("example", "resample"):
        if case not in results:
            continue
        r = results[case]
        assert isinstance(r, dict)
        print(
            f"| {case} | {r['bare_median']:.2f} | {r['modelyard_median']:.2f} | "
            f"{r['overhead_seconds']:+.2f} s | {r['ratio']:.3f} |"
        )
    help_result = results["help"]
    assert isinstance(help_result, dict)
    print(f"\n`modelyard --help`: median {help_result['median'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
