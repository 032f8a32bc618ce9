"""Batch scoring throughput: modelyard's batch worker against what a user would write.

Every contender scores the SAME rows (a resample of the Ames example's inputs, as one
CSV file) with the SAME registered house-price model and writes one prediction per row
to the same kind of database (a SQLite file), in one run:

- ``modelyard``: ``modelyard.batch.submit`` then the worker's ``run_job`` (the code a
  ``modelyard worker`` runs for each job; the queue's polling is left out): chunked
  read, every row checked against the input contract, the runtime online serving
  picks (ONNX Runtime, the version's parity holds), results committed with the job's
  progress in one transaction per chunk, every row written to the prediction log;
- ``pandas-sklearn``: a hand-written loop: ``pandas.read_csv(chunksize=...)``,
  ``pipeline.predict`` (the version's fitted scikit-learn pipeline), ``to_sql``;
- ``pandas-onnx``: the same loop on ONNX Runtime with the version's exported graph
  (one ``[N, 1]`` input per column, as exported), so modelyard's own overhead shows
  apart from the runtime's speed;
- ``ray``: Ray Data ``read_csv`` -> ``map_batches`` with the pipeline -> ``write_sql``
  into the same table, on a local Ray started on 127.0.0.1 (it runs from its own venv,
  ``benchmarks/.venv-ray``: see ``benchmarks/requirements-ray.txt``; skipped when
  that venv is missing).

Each run is a fresh process (its VmHWM gives its peak resident memory), with its
libraries' default threads, on a fresh copy of the registry home or a fresh database;
its time runs from before the model is loaded to the last commit. Medians of ``--runs``
runs, with their min and max.

Run: ``.venv/bin/python benchmarks/batch.py`` (1,000,000 and 5,000,000 rows, 3 runs;
``--rows 200000 --runs 1`` for a quick look). Results go to
``benchmarks/results/batch.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peers.harness import default_threads_env, peak_mib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
RAY_PYTHON = Path(__file__).parent / ".venv-ray" / "bin" / "python"
REF = "house-prices:1"
PEERS = ("modelyard", "pandas-sklearn", "pandas-onnx", "ray")


# -- setup -----------------------------------------------------------------------------


def prepare(work: Path, sizes: list[int]) -> None:
    """Train the example once, export its graph and inputs, write one CSV per size."""
    import numpy as np
    import pandas as pd

    from modelyard import api
    from modelyard.registry.readers import read_onnx_graph
    from modelyard.settings import Settings

    home = work / "home"
    if not (home / "registry.db").is_file():
        settings = Settings(home=home)
        project = api.example_project(work / "project")
        api.train(project, settings=settings)
        with api.open_registry(settings) as registry:
            graph = read_onnx_graph(registry, registry.get_version(REF))
        (work / "model.onnx").write_bytes(graph.model)
        (work / "inputs.json").write_text(json.dumps(graph.extra["inputs"]))
    source = pd.read_csv(ROOT / "examples" / "house-prices" / "data" / "ames.csv.gz")
    rows = source.drop(columns=["price"])
    for size in sizes:
        target = work / f"rows-{size}.csv"
        if target.is_file():
            continue
        picked = np.random.default_rng(size).integers(0, len(rows), size)
        partial = target.with_suffix(".partial")
        for start in range(0, size, 500_000):  # written in parts: bounded memory
            part = rows.iloc[picked[start : start + 500_000]]
            part.to_csv(partial, mode="a", header=start == 0, index=False)
        partial.replace(target)


# -- contenders (each runs in its own process) ------------------------------------------


def run_modelyard(work: Path, csv: Path, db: Path, chunk: int) -> int:
    from modelyard.batch import BatchSettings, status, submit
    from modelyard.batch.worker import run_job
    from modelyard.settings import Settings

    home = db.parent / "home"
    shutil.copytree(work / "home", home)
    settings = Settings(home=home)
    batch = BatchSettings(batch_chunk_rows=chunk)
    job = submit(csv, model=REF, settings=settings, batch=batch)
    assert run_job(settings, batch, job.id) == "done"
    done = status(job.id, settings=settings)
    assert done.rows_failed == 0 and done.runtime and done.runtime.startswith("ONNX"), done
    return done.rows_done


def run_pandas_sklearn(work: Path, csv: Path, db: Path, chunk: int) -> int:
    import pandas as pd

    from modelyard import api
    from modelyard.settings import Settings

    pipeline = api.load_model(REF, settings=Settings(home=work / "home"))
    written = 0
    with sqlite3.connect(db) as conn:
        for part in pd.read_csv(csv, chunksize=chunk):
            predicted = pipeline.predict(part)
            rows = range(written, written + len(part))
            frame = pd.DataFrame({"row": rows, "prediction": predicted})
            frame.to_sql("predictions", conn, if_exists="append", index=False)
            conn.commit()
            written += len(part)
    return written


def run_pandas_onnx(work: Path, csv: Path, db: Path, chunk: int) -> int:
    import numpy as np
    import onnxruntime as ort
    import pandas as pd

    missing = "\x00modelyard:missing"  # the graph's missing-category text
    inputs = json.loads((work / "inputs.json").read_text())
    session = ort.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
    written = 0
    with sqlite3.connect(db) as conn:
        for part in pd.read_csv(csv, chunksize=chunk):
            feeds = {}
            for item in inputs:
                values = part[item["column"]]
                if item["kind"] == "numeric":
                    array = values.to_numpy(dtype=item["dtype"])
                else:
                    array = values.astype(object).where(values.notna(), missing).astype(str)
                    array = array.to_numpy(dtype=object)
                feeds[item["onnx_name"]] = array.reshape(-1, 1)
            predicted = np.asarray(session.run(None, feeds)[0]).reshape(-1)
            rows = range(written, written + len(part))
            frame = pd.DataFrame({"row": rows, "prediction": predicted})
            frame.to_sql("predictions", conn, if_exists="append", index=False)
            conn.commit()
            written += len(part)
    return written


def run_ray(work: Path, csv: Path, db: Path, chunk: int) -> int:
    import pandas as pd
    import ray

    from modelyard import api
    from modelyard.settings import Settings

    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        pipeline = api.load_model(REF, settings=Settings(home=work / "home"))
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE predictions (row INTEGER, prediction REAL)")

        def predict(batch: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"row": batch["row"], "prediction": pipeline.predict(batch)})

        data = ray.data.read_csv(str(csv), include_paths=False)
        # Row numbers are not a Ray Data notion; the input's own order is kept by
        # numbering within the one file's blocks.
        data = data.add_column("row", lambda batch: range(len(batch)), batch_format="pandas")
        scored = data.map_batches(predict, batch_format="pandas", batch_size=chunk)
        scored.write_sql("INSERT INTO predictions VALUES (?, ?)", lambda: sqlite3.connect(db))
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
    finally:
        ray.shutdown()


CONTENDERS = {
    "modelyard": run_modelyard,
    "pandas-sklearn": run_pandas_sklearn,
    "pandas-onnx": run_pandas_onnx,
    "ray": run_ray,
}


def child(args: argparse.Namespace) -> None:
    """One measured run, in this process: prints its seconds and rows as JSON."""
    run = CONTENDERS[args.child]
    db = Path(args.db)
    started = time.perf_counter()
    rows = run(Path(args.work), Path(args.csv), db, args.chunk_rows)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mib": peak_mib()}))


# -- the harness -----------------------------------------------------------------------


def measure(name: str, work: Path, size: int, chunk: int) -> dict[str, float]:
    """One run of ``name`` on ``size`` rows in a fresh process: seconds, rows/s, peak MiB."""
    python = str(RAY_PYTHON) if name == "ray" else sys.executable
    scratch = Path(tempfile.mkdtemp(prefix=f"batch-{name}-", dir=work))
    command = [
        python,
        __file__,
        "--child",
        name,
        "--work",
        str(work),
        "--csv",
        str(work / f"rows-{size}.csv"),
        "--db",
        str(scratch / "predictions.db"),
        "--chunk-rows",
        str(chunk),
    ]
    # Every contender runs with its libraries' own thread defaults, as its code would run
    # on this machine: scikit-learn's OpenMP and ONNX Runtime's intra-op pool take every
    # core unless told otherwise (forcing one thread on the hand-written loops slowed
    # (a) markedly and left modelyard's three-thread pipeline the only contender
    # using both cores). Thread settings a user may have exported are dropped.
    env = default_threads_env()
    env["PYTHONPATH"] = str(ROOT / "src")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        process.wait()
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{name} on {size:,} rows failed:\n{err.read().decode()[-4000:]}")
        answer = json.loads(out.read().decode().strip().splitlines()[-1])
    shutil.rmtree(scratch, ignore_errors=True)
    assert answer["rows"] == size, f"{name} wrote {answer['rows']:,} rows of {size:,}"
    return {
        "seconds": answer["seconds"],
        "rows_per_second": size / answer["seconds"],
        "peak_mib": answer["peak_mib"],
    }


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in ("rows_per_second", "peak_mib", "seconds"):
        values = [run[key] for run in runs]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def report(results: dict[str, dict[str, Any]], sizes: list[int]) -> str:
    """The Markdown table of the results, with the ratios to modelyard."""
    lines = [
        "| rows | contender | rows/s (median, min-max) | peak memory MiB (median, min-max) "
        "| modelyard rows/s ÷ this |",
        "|---:|---|---:|---:|---:|",
    ]
    for size in sizes:
        ours = results[str(size)].get("modelyard")
        for name, found in results[str(size)].items():
            speed, memory = found["rows_per_second"], found["peak_mib"]
            ratio = (
                f"{ours['rows_per_second']['median'] / speed['median']:.2f}×"
                if ours and name != "modelyard"
                else ""
            )
            lines.append(
                f"| {size:,} | {name} | {speed['median']:,.0f} ({speed['min']:,.0f}–"
                f"{speed['max']:,.0f}) | {memory['median']:,.0f} ({memory['min']:,.0f}–"
                f"{memory['max']:,.0f}) | {ratio} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", default="1000000,5000000", help="comma-separated sizes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--work", default=None, help="folder kept between runs (inputs)")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sizes = [int(size) for size in args.rows.split(",")]
    peers = [peer for peer in args.peers.split(",") if peer]
    if "ray" in peers and not RAY_PYTHON.is_file():
        print(f"ray: {RAY_PYTHON} is missing (see benchmarks/requirements-ray.txt); skipped")
        peers.remove("ray")
    work = Path(args.work or Path(tempfile.gettempdir()) / "modelyard-batch-bench")
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, sizes)
    results: dict[str, dict[str, Any]] = {}
    for size in sizes:
        results[str(size)] = {}
        for name in peers:
            runs = []
            for attempt in range(args.runs):
                runs.append(measure(name, work, size, args.chunk_rows))
                print(
                    f"{size:,} rows, {name}, run {attempt + 1}: "
                    f"{runs[-1]['rows_per_second']:,.0f} rows/s, "
                    f"{runs[-1]['peak_mib']:,.0f} MiB",
                    flush=True,
                )
            results[str(size)][name] = _summary(runs)
    RESULTS.mkdir(exist_ok=True)
    meta = {"chunk_rows": args.chunk_rows, "runs": args.runs, "cpus": os.cpu_count()}
    (RESULTS / "batch.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(report(results, sizes))


if __name__ == "__main__":
    main()
