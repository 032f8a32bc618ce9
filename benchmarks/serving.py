"""Online serving: modelyard against a hand-written FastAPI app, a no-op floor and MLflow.

One run, one load generator (wrk, Lua POST script), the same request bodies for every
server, servers started one at a time on a free 127.0.0.1 port:

- ``modelyard``: ``modelyard serve house-prices`` over a fresh MODELYARD_HOME made by
  ``modelyard quickstart``, ``modelyard promote house-prices:1`` and ``modelyard export
  house-prices:1`` (ONNX; ``--no-export`` serves the scikit-learn pipeline); measured at
  ``/invocations`` (the MLflow body, used for the goals) and at
  ``/v1/models/house-prices/predict`` (``{"rows": [...]}``, reported separately);
- ``plain``: benchmarks/peers/plain_fastapi.py, the same fitted pipeline behind FastAPI,
  ``pipeline.predict(pd.DataFrame(records))`` per request (uvicorn, 1 worker);
- ``noop``: benchmarks/peers/noop_fastapi.py, a constant response: the HTTP floor;
- ``mlflow``: ``mlflow models serve --env-manager local --workers 1`` on the same pipeline
  saved with ``mlflow.sklearn.save_model``, from benchmarks/.venv-mlflow (made on first
  run from requirements.lock + benchmarks/requirements-mlflow.txt, a few minutes).

Every server gets MLflow's ``{"dataframe_records": [...]}`` body at ``/invocations``: 1 row
of the Ames data, or 100 rows; only the model's input columns, NaN as null. Per server:
a warm-up, then 1 connection / 1 thread for latency (p50, p99 from wrk's histogram),
16 connections / 2 threads for requests/s, the 100-row body on 4 connections / 1 thread
for rows/s, and the peak RSS of the server's process tree (sampled from /proc). The
in-process reference is one call of modelyard's runtime on 1 row (timeit median). The
load generator and the server share the machine's cores.

Run: ``.venv/bin/python benchmarks/serving.py`` (about 5 minutes; needs wrk:
``apt-get install -y wrk``). ``--quick``: 2-second phases; ``--servers noop,plain``: a
subset. Results: a Markdown table on stdout and ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from peers.harness import (
    WRK_LUA,
    first_number,
    free_port,
    measure_route,
    median_call_us,
    running,
    served_runtime,
    wait_ready,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PEERS = HERE / "peers"
MLFLOW_VENV = HERE / ".venv-mlflow"
BIN = Path(sys.executable).parent
MODEL = "house-prices"
REF = f"{MODEL}:1"
SERVERS = ("modelyard", "plain", "noop", "mlflow")
V1_ROUTE = f"/v1/models/{MODEL}/predict"
ROWS_BIG = 100


# --- setup -------------------------------------------------------------------------------


def run_checked(cmd: list[str], *, env: dict[str, str], timeout: float, cwd: Path = ROOT) -> None:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")


def make_registry(home: Path, env: dict[str, str], *, export: bool) -> str:
    """`modelyard quickstart`, `promote house-prices:1`, `export` (ONNX) into ``home``.

    Returns what became of the ONNX export: serving falls back to the scikit-learn
    pipeline when there is none, so the export's fate is part of the result.
    """
    modelyard = str(BIN / "modelyard")
    run_checked([modelyard, "quickstart"], env=env, timeout=600)
    run_checked([modelyard, "promote", REF, "--reason", "serving benchmark"], env=env, timeout=120)
    if not export:
        return "skipped (--no-export)"
    out = subprocess.run(
        [modelyard, "export", REF], env=env, capture_output=True, text=True, timeout=600
    )
    tail = " ".join((out.stdout + out.stderr).split())[-300:]
    return f"ok: {tail}" if out.returncode == 0 else f"failed ({out.returncode}): {tail}"


def make_bodies(work: Path) -> tuple[dict[str, dict[str, Path]], list[dict[str, Any]]]:
    """Request bodies (files) per protocol and size, and the 100 JSON-safe records."""
    import pandas as pd

    import modelyard
    from modelyard.api import example_project

    version = modelyard.show(REF)
    order = version.lineage["features"]["feature_order"]
    project = example_project(work / "example")
    frame = pd.read_csv(project / "data" / "ames.csv.gz")
    # to_json turns NaN into null and keeps integers as integers
    records: list[dict[str, Any]] = json.loads(
        frame[order].head(ROWS_BIG).to_json(orient="records")
    )
    bodies: dict[str, dict[str, Path]] = {"mlflow": {}, "v1": {}}
    for size, rows in (("one", records[:1]), ("big", records)):
        for protocol, payload in (("mlflow", {"dataframe_records": rows}), ("v1", {"rows": rows})):
            path = work / f"body-{protocol}-{size}.json"
            path.write_text(json.dumps(payload, separators=(",", ":")))
            bodies[protocol][size] = path
    return bodies, records


def ensure_mlflow_venv() -> Path:
    """benchmarks/.venv-mlflow/bin/python, creating the venv on first use."""
    python = MLFLOW_VENV / "bin" / "python"
    if (MLFLOW_VENV / "bin" / "mlflow").exists():
        return python
    print(f"creating {MLFLOW_VENV} (once; a few minutes) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    env = dict(os.environ)
    run_checked([base, "-m", "venv", str(MLFLOW_VENV)], env=env, timeout=300)
    (MLFLOW_VENV / ".gitignore").write_text("*\n")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    run_checked([*pip, "-r", "requirements.lock", "-e", "."], env=env, timeout=1800)
    run_checked([*pip, "-r", str(HERE / "requirements-mlflow.txt")], env=env, timeout=1800)
    return python


# --- in-process reference ----------------------------------------------------------------


def runtime_reference(records: list[dict[str, Any]]) -> dict[str, Any]:
    """In-process timings: modelyard's runtime on 1 decoded row, and the pandas path.

    The runtime is the one ``modelyard serve`` picks (``select_runtime(..., "auto")``), fed
    columns decoded by the server's own decoder; ``pipeline.predict(pd.DataFrame(records))``
    is what the hand-written app does per request.
    """
    import numpy as np
    import pandas as pd

    import modelyard
    from modelyard.api import open_registry
    from modelyard.contract import InputContract, decode_records
    from modelyard.runtime import select_runtime

    with open_registry() as registry:
        version = registry.get_version(REF)
        try:
            picked: Any = select_runtime(registry, version, "auto")  # what the server does
            note = "as `modelyard serve` picks it"
        except Exception as exc:  # noqa: BLE001 - still time the reference pipeline
            picked = select_runtime(registry, version, "sklearn")
            note = f"runtime 'auto' failed ({type(exc).__name__}: {exc}); sklearn runtime"
    runtime = picked[0] if isinstance(picked, tuple) else picked  # (runtime, reason) too
    columns, rows = decode_records(records[:1], InputContract.from_version(version, max_rows=10))
    pipeline = modelyard.load_model(REF)

    def frame_1() -> pd.DataFrame:
        return pd.DataFrame(records[:1])

    return {
        "runtime": runtime.name,
        "note": note,
        "runtime_call_us": median_call_us(lambda: runtime.predict(columns, rows)),
        "runtime_prediction": float(np.ravel(runtime.predict(columns, rows).values)[0]),
        "pipeline_prediction": float(pipeline.predict(frame_1())[0]),
        "pandas_predict_1row_us": median_call_us(lambda: pipeline.predict(frame_1())),
    }


# --- servers -----------------------------------------------------------------------------


def server_command(name: str, port: int, work: Path, mlflow_python: Path | None) -> list[str]:
    host = ["--host", "127.0.0.1", "--port", str(port)]
    uvicorn = [str(BIN / "python"), "-m", "uvicorn", "--app-dir", str(PEERS), "--workers", "1"]
    if name == "modelyard":
        return [str(BIN / "modelyard"), "serve", MODEL, *host]
    if name == "plain":
        return [*uvicorn, *host, "plain_fastapi:app"]
    if name == "noop":
        return [*uvicorn, *host, "--no-access-log", "noop_fastapi:app"]
    assert mlflow_python is not None
    mlflow = str(mlflow_python.parent / "mlflow")
    model = str(work / "mlflow-model")
    return [
        mlflow,
        "models",
        "serve",
        "-m",
        model,
        "--env-manager",
        "local",
        "--workers",
        "1",
        *host,
    ]


def bench_server(
    name: str,
    *,
    work: Path,
    env: dict[str, str],
    bodies: dict[str, dict[str, Path]],
    lua: Path,
    seconds: float,
    expected: float,
    mlflow_python: Path | None,
) -> dict[str, Any]:
    """Start one server, measure each of its routes, stop it; errors land in the result."""
    port = free_port()
    routes = [("/invocations", bodies["mlflow"])]
    if name == "modelyard":
        routes.append((V1_ROUTE, bodies["v1"]))
    cmd = server_command(name, port, work, mlflow_python)
    result: dict[str, Any] = {"command": " ".join(cmd), "routes": {}}
    if mlflow_python is not None and name == "mlflow":  # as if the venv were activated:
        venv_bin = str(mlflow_python.parent)  # mlflow runs `uvicorn` from PATH
        env = {**env, "PATH": f"{venv_bin}:{env.get('PATH', '')}", "VIRTUAL_ENV": str(MLFLOW_VENV)}
    with running(cmd, env=env, cwd=work, log=work / f"{name}.log") as server:
        try:
            for route, route_bodies in routes:
                url = f"http://127.0.0.1:{port}{route}"
                ready_s, answer = wait_ready(server, url, route_bodies["one"].read_bytes())
                got = first_number(json.loads(answer))
                check = (
                    "n/a (constant)"
                    if name == "noop"
                    else (
                        "ok"
                        if got is not None and math.isclose(got, expected, rel_tol=1e-3)
                        else f"MISMATCH: got {got}, expected {expected:.2f}"
                    )
                )
                print(
                    f"  {name} {route}: ready after {ready_s:.1f} s, prediction {check}", flush=True
                )
                if name == "modelyard" and "runtime" not in result:
                    result["runtime"] = served_runtime(f"http://127.0.0.1:{port}/v1/models")
                measured = measure_route(
                    url,
                    route_bodies,
                    lua,
                    server=server.proc.pid,
                    seconds=seconds,
                    rows_big=ROWS_BIG,
                )
                result["routes"][route] = {"ready_s": ready_s, "check": check, **measured}
        except Exception as exc:  # noqa: BLE001 - report the failure, go on with the others
            result["error"] = f"{type(exc).__name__}: {exc}"
            print(f"  {name} FAILED: {result['error']}", flush=True)
        finally:
            result["peak_rss_mb"] = server.peak_rss / 2**20
            result["peak_rss_largest_process_mb"] = server.peak_rss_largest / 2**20
            result["processes"] = server.tree_size
    return result


# --- report ------------------------------------------------------------------------------

ROWS = (
    ("modelyard", "/invocations", "modelyard serve (/invocations)"),
    ("modelyard", V1_ROUTE, f"modelyard serve ({V1_ROUTE}, rows body)"),
    ("plain", "/invocations", "plain FastAPI + pipeline.predict"),
    ("noop", "/invocations", "no-op FastAPI (HTTP floor)"),
    ("mlflow", "/invocations", "mlflow models serve"),
)


def route_of(
    servers: dict[str, Any], name: str, route: str = "/invocations"
) -> dict[str, Any] | None:
    found: dict[str, Any] | None = servers.get(name, {}).get("routes", {}).get(route)
    return found


def goals(servers: dict[str, Any], runtime_us: float) -> list[dict[str, Any]]:
    """The three goals of the serving issue, reported (never asserted).

    A goal whose servers answered any request with an error or a wrong prediction is
    reported INVALID: fast failures must not pass for speed.
    """
    mine, mlflow = route_of(servers, "modelyard"), route_of(servers, "mlflow")
    noop, plain = route_of(servers, "noop"), route_of(servers, "plain")
    out: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, target: float, *involved: Any) -> None:
        if value is None or any(route is None for route in involved):
            status = "n/a"
        elif any(r["failed_requests"] or r["check"].startswith("MISMATCH") for r in involved):
            status = "INVALID"
        else:
            status = "PASS" if (value >= target if ">=" in goal else value <= target) else "MISS"
        out.append({"goal": goal, "value": value, "target": target, "status": status})

    ratio = mine["rps_16"] / mlflow["rps_16"] if mine and mlflow and mlflow["rps_16"] else None
    add("16-conn req/s: modelyard / mlflow >= 50x", ratio, 50.0, mine, mlflow)
    bound = 2 * (noop["p50_ms"] + runtime_us / 1e3) if noop else math.nan
    p50 = mine["p50_ms"] if mine else None
    add("1-conn p50 (ms) <= 2 x (noop p50 + one runtime call)", p50, bound, mine, noop)
    rows = mine["rows_per_s"] / plain["rows_per_s"] if mine and plain else None
    add("100-row rows/s: modelyard / plain FastAPI >= 5x", rows, 5.0, mine, plain)
    return out


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def render(report: dict[str, Any]) -> str:
    servers, ref = report["servers"], report["reference"]
    lines = [
        "| server | p50 ms (1 conn) | p99 ms (1 conn) | req/s (16 conn) "
        "| server CPU µs/req (16 conn) | rows/s (100-row body, 4 conn) | peak RSS MB "
        "| failed requests | answer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, route, label in ROWS:
        if name not in servers:
            continue
        found = route_of(servers, name, route)
        if found is None:
            if route == "/invocations" or "error" not in servers[name]:
                error = str(servers[name].get("error", "not measured")).splitlines()[0]
                lines.append(f"| {label} | failed: {error[:80]} | | | | | | | |")
            continue
        lines.append(
            f"| {label} | {fmt(found['p50_ms'])} | {fmt(found['p99_ms'])} "
            f"| {fmt(found['rps_16'], 0)} | {fmt(found['cpu_us_per_request_16'], 0)} "
            f"| {fmt(found['rows_per_s'], 0)} "
            f"| {fmt(servers[name]['peak_rss_mb'], 0)} | {found['failed_requests']} "
            f"| {found['check']} |"
        )
    trees = [
        f"{name} {info['processes']} processes (largest {info['peak_rss_largest_process_mb']:.0f})"
        for name, info in servers.items()
        if info.get("processes", 1) > 1
    ]
    if trees:
        lines += ["", f"Peak RSS covers each server's process tree: {'; '.join(trees)} MB."]
    if "runtime" in servers.get("modelyard", {}):
        lines += ["", f"modelyard served with: {servers['modelyard']['runtime']}."]
    lines += [
        "",
        f"In-process reference: one {ref['runtime']} runtime call on 1 row = "
        f"{ref['runtime_call_us']:,.0f} µs (median, timeit; {ref['note']}); "
        f"pipeline.predict(pd.DataFrame(1 record)) = {ref['pandas_predict_1row_us']:,.0f} µs.",
        "",
        "| goal | value | target | status |",
        "| --- | ---: | ---: | --- |",
    ]
    for goal in report["goals"]:
        lines.append(
            f"| {goal['goal']} | {fmt(goal['value'])} | {fmt(goal['target'])} | {goal['status']} |"
        )
    machine = report["machine"]
    lines += [
        "",
        f"Machine: {machine['cpus']} cores shared by wrk and the server; load average "
        f"{machine['loadavg_start'][0]:.2f} at start, {machine['loadavg_end'][0]:.2f} at end. "
        f"Phases of {report['settings']['seconds']:g} s; wrk {report['versions']['wrk']}.",
    ]
    return "\n".join(lines)


def versions(mlflow_python: Path | None) -> dict[str, str]:
    from importlib.metadata import version

    found = {name: version(name) for name in ("modelyard", "scikit-learn", "fastapi", "uvicorn")}
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    found["wrk"] = (wrk.stdout or wrk.stderr).split()[1] if (wrk.stdout or wrk.stderr) else "?"
    if mlflow_python is not None:
        code = "from importlib.metadata import version; print(version('mlflow'))"
        out = subprocess.run(
            [str(mlflow_python), "-c", code], capture_output=True, text=True, timeout=60
        )
        found["mlflow"] = out.stdout.strip() or "?"
    found["python"] = platform.python_version()
    return found


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--quick", action="store_true", help="2-second phases (smoke test)")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    parser.add_argument(
        "--omp-threads",
        type=int,
        default=None,
        help="set OMP_NUM_THREADS for every server and the in-process reference "
        "(default: unset, each library's own default)",
    )
    parser.add_argument(
        "--no-export",
        dest="export",
        action="store_false",
        help="skip `modelyard export` (ONNX), so modelyard serves the scikit-learn pipeline",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--output", type=Path, default=RESULTS / "serving.json")
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(args.servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {unknown}; choose from {list(SERVERS)}")
    if args.quick:
        args.seconds = 2.0
    if not 1 <= args.seconds <= 60:
        parser.error("--seconds must be between 1 and 60")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGTERM, terminate)
    if args.omp_threads is not None:  # before anything in this process loads OpenMP
        os.environ["OMP_NUM_THREADS"] = str(args.omp_threads)
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="modelyard-serving-"))
    try:
        home = work / "home"
        os.environ["MODELYARD_HOME"] = str(home)  # for modelyard in this process too
        env = dict(os.environ)
        print(f"work dir {work}; quickstart + promote ...", flush=True)
        onnx_export = make_registry(home, env, export=args.export)
        print(f"  modelyard export: {onnx_export}", flush=True)
        bodies, records = make_bodies(work)
        lua = work / "post.lua"
        lua.write_text(WRK_LUA)
        print("timing the in-process runtime ...", flush=True)
        reference = runtime_reference(records)
        if not math.isclose(
            reference["runtime_prediction"], reference["pipeline_prediction"], rel_tol=1e-3
        ):
            print(f"  warning: runtime and pipeline disagree: {reference}", flush=True)
        mlflow_python: Path | None = None
        servers: dict[str, Any] = {}
        loadavg_start = os.getloadavg()
        for name in args.servers:
            print(f"{name} ...", flush=True)
            if name == "mlflow":
                try:
                    mlflow_python = ensure_mlflow_venv()
                    run_checked(
                        [
                            str(mlflow_python),
                            str(PEERS / "mlflow_model.py"),
                            REF,
                            str(work / "mlflow-model"),
                        ],
                        env=env,
                        timeout=300,
                    )
                except Exception as exc:  # noqa: BLE001 - report, go on with the others
                    servers[name] = {"error": f"setup: {type(exc).__name__}: {exc}"}
                    print(f"  mlflow FAILED: {servers[name]['error']}", flush=True)
                    continue
            loadavg = os.getloadavg()
            servers[name] = bench_server(
                name,
                work=work,
                env=env,
                bodies=bodies,
                lua=lua,
                seconds=args.seconds,
                expected=reference["pipeline_prediction"],
                mlflow_python=mlflow_python,
            )
            servers[name]["loadavg_before"] = loadavg
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_seconds": time.time() - started,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_start": loadavg_start,
                "loadavg_end": os.getloadavg(),
            },
            "versions": versions(mlflow_python),
            "settings": {
                "seconds": args.seconds,
                "rows_big": ROWS_BIG,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
                "phases": "warm-up 16c/2t; 1c/1t latency; 16c/2t req/s; 100-row 4c/1t rows/s",
            },
            "onnx_export": onnx_export,
            "reference": reference,
            "servers": servers,
        }
        report["goals"] = goals(servers, reference["runtime_call_us"])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print()
        print(render(report))
        print(f"\nwrote {args.output} ({report['wall_seconds']:.0f} s)")
        return 1 if any("error" in s for s in servers.values()) else 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
