"""Online serving: modelyard against what people use instead, runtime and server apart.

Seven servers, one at a time on a free 127.0.0.1 port, each sent the same bytes by one
load generator (wrk, Lua POST script):

- ``modelyard``: ``modelyard serve house-prices --runtime onnx`` over a fresh
  MODELYARD_HOME made by ``modelyard quickstart``, ``promote house-prices:1`` and
  ``export house-prices:1``; measured at ``/invocations`` (the MLflow body, used for
  every comparison) and at ``/v1/models/house-prices/predict`` (``{"rows": [...]}``,
  reported on its own line);
- ``modelyard-sklearn``: the same server with ``--runtime sklearn``: the scikit-learn
  pipeline, as if there were no export;
- ``mlflow-sklearn``: ``mlflow models serve`` on the same pipeline (mlflow.sklearn);
- ``mlflow-onnx``: ``mlflow models serve`` on the same ONNX export (mlflow.onnx);
- ``fastapi-sklearn``: benchmarks/peers/fastapi_sklearn.py, FastAPI + the pipeline;
- ``fastapi-onnx``: benchmarks/peers/fastapi_onnx.py, FastAPI + ONNX Runtime on the
  same graph with modelyard's session options;
- ``asgi-floor``: benchmarks/peers/asgi_floor.py, a raw ASGI app under uvicorn that
  reads the body and answers a constant: the cheapest endpoint of the stack.

Every server gets the same thread settings (:data:`THREAD_ENV`, one ONNX Runtime intra-op
thread, ``--model-threads 1``), no access log, one worker. With 2 or more cores, wrk is
pinned to the last core and the servers to the others (taskset). Each run starts every
server afresh, in turn; ``--runs`` runs (3) give medians and min-max.

Per server: a warm-up, then 1 connection for latency (p50, p99 from wrk's histogram), 16
connections for requests/s (and the server's CPU time per request, from /proc), the
100-row body on 4 connections for rows/s, and the peak RSS of the server's process tree.
The in-process reference is one call of modelyard's ONNX runtime on 1 row.

Run: ``.venv/bin/python benchmarks/serving.py`` (about 25 minutes; needs wrk:
``apt-get install -y wrk``). ``--quick``: 1 run of 2-second phases, a smoke test of the
harness; ``--servers a,b``: a subset. Results: a Markdown table on stdout and
``benchmarks/results/serving.json``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers.harness import (
    WRK_LUA,
    first_number,
    free_port,
    measure_route,
    running,
    served_runtime,
    wait_ready,
)
from serving_report import SERVERS, V1_ROUTE, render, summarize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PEERS = HERE / "peers"
MLFLOW_VENV = HERE / ".venv-mlflow"
BIN = Path(sys.executable).parent
MODEL = "house-prices"
REF = f"{MODEL}:1"
ROWS_BIG = 100
#: Native thread pools of every server (and of the in-process reference): one thread per
#: model call. ONNX Runtime ignores these; its sessions get 1 intra-op and 1 inter-op
#: thread (modelyard's default; set alike in fastapi_onnx.py and mlflow_model.py).
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
#: mlflow starts the uvicorn command line, which reads this; the other uvicorn servers
#: get --no-access-log, and modelyard serve logs no access by default.
QUIET_ENV = {"UVICORN_ACCESS_LOG": "false"}
MLFLOW_SERVERS = {"mlflow-sklearn": "sklearn", "mlflow-onnx": "onnx"}


@dataclass(frozen=True)
class Cpus:
    """Which cores the servers and wrk run on (pinned when there are 2 or more)."""

    server: list[int]
    wrk: list[int]

    @property
    def pinned(self) -> bool:
        return not set(self.server) & set(self.wrk)

    def prefix(self, cores: list[int]) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, cores))] if self.pinned else []

    def describe(self) -> str:
        if not self.pinned:
            return "not pinned (wrk and the servers share every core)"
        return f"servers on core(s) {self.server}, wrk on core(s) {self.wrk} (taskset)"


def plan_cpus() -> Cpus:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return Cpus(cores, cores)
    return Cpus(server=cores[:-1], wrk=cores[-1:])


# --- setup -------------------------------------------------------------------------------


def run_checked(cmd: list[str], *, env: dict[str, str], timeout: float, cwd: Path = ROOT) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout + out.stderr


def make_registry(home: Path, env: dict[str, str], reuse: Path | None = None) -> str:
    """`modelyard quickstart`, `promote house-prices:1`, `export` (ONNX) into ``home``;
    or, with ``reuse`` (the ``home`` of an earlier run, kept by ``--keep``), a copy of
    it: the same model, without training it again.

    Returns what the export said (the modelyard and ONNX peers need it).
    """
    modelyard = str(BIN / "modelyard")
    if reuse is not None:
        if not (reuse / "registry.db").exists():
            raise SystemExit(
                f"--reuse-home {reuse}: no registry.db there; give the home/ "
                "folder of a run kept with --keep"
            )
        shutil.copytree(reuse, home)
        return "reused"
    run_checked([modelyard, "quickstart"], env=env, timeout=1200)
    run_checked([modelyard, "promote", REF, "--reason", "serving benchmark"], env=env, timeout=120)
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
    order = version.lineage_record.features.feature_order
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


def make_mlflow_models(
    names: list[str], work: Path, env: dict[str, str], training_csv: Path
) -> dict[str, str]:
    """Save the MLflow models the chosen mlflow servers serve; returns setup errors."""
    errors: dict[str, str] = {}
    wanted = [name for name in names if name in MLFLOW_SERVERS]
    if not wanted:
        return errors
    try:
        python = ensure_mlflow_venv()
    except Exception as exc:  # noqa: BLE001 - report, go on with the others
        return dict.fromkeys(wanted, f"setup: {type(exc).__name__}: {exc}")
    script, training = str(PEERS / "mlflow_model.py"), str(training_csv)
    for name in wanted:
        try:
            run_checked(
                [str(python), script, MLFLOW_SERVERS[name], REF, str(work / name), training],
                env=env,
                timeout=600,
            )
        except Exception as exc:  # noqa: BLE001 - report, go on with the others
            errors[name] = f"setup: {type(exc).__name__}: {exc}"
    return errors


# --- in-process reference ----------------------------------------------------------------


def pipeline_prediction(records: list[dict[str, Any]]) -> float:
    """The pipeline's prediction for the first record: what every server must answer."""
    import pandas as pd

    import modelyard

    pipeline = modelyard.load_model(REF)
    return float(pipeline.predict(pd.DataFrame(records[:1]))[0])


def runtime_call(body: Path, env: dict[str, str], cpus: Cpus) -> dict[str, Any]:
    """One call of modelyard's ONNX runtime on 1 row, timed in a fresh process on the
    servers' core(s) with their thread settings (benchmarks/peers/runtime_call.py)."""
    command = [*cpus.prefix(cpus.server), str(BIN / "python"), str(PEERS / "runtime_call.py")]
    output = run_checked([*command, str(body), REF], env=env, timeout=300)
    line = next(line for line in reversed(output.splitlines()) if line.startswith("{"))
    measured: dict[str, Any] = json.loads(line)
    return measured


# --- servers -----------------------------------------------------------------------------


def server_command(name: str, port: int, work: Path, mlflow_python: Path) -> list[str]:
    host = ["--host", "127.0.0.1", "--port", str(port)]
    uvicorn = [str(BIN / "python"), "-m", "uvicorn", "--app-dir", str(PEERS), "--workers", "1"]
    uvicorn += ["--no-access-log", *host]
    if name in ("modelyard", "modelyard-sklearn"):
        runtime = "onnx" if name == "modelyard" else "sklearn"
        serve = [str(BIN / "modelyard"), "serve", MODEL, "--runtime", runtime]
        return [*serve, "--model-threads", "1", *host]
    if name in ("fastapi-sklearn", "fastapi-onnx", "asgi-floor"):
        return [*uvicorn, f"{name.replace('-', '_')}:app"]
    mlflow = str(mlflow_python.parent / "mlflow")
    model = ["-m", str(work / name), "--env-manager", "local", "--workers", "1"]
    return [mlflow, "models", "serve", *model, *host]


def check_answer(name: str, got: float | None, expected: float) -> str:
    if name == "asgi-floor":
        return "n/a (constant)"
    if got is not None and math.isclose(got, expected, rel_tol=1e-3):
        return "ok"
    return f"MISMATCH: got {got}, expected {expected:.2f}"


def bench_server(
    name: str,
    *,
    work: Path,
    env: dict[str, str],
    bodies: dict[str, dict[str, Path]],
    lua: Path,
    seconds: float,
    expected: float,
    cpus: Cpus,
) -> dict[str, Any]:
    """Start one server, measure each of its routes, stop it; errors land in the result."""
    port = free_port()
    routes = [("/invocations", bodies["mlflow"])]
    if name == "modelyard":
        routes.append((V1_ROUTE, bodies["v1"]))
    mlflow_python = MLFLOW_VENV / "bin" / "python"
    cmd = [*cpus.prefix(cpus.server), *server_command(name, port, work, mlflow_python)]
    result: dict[str, Any] = {"command": " ".join(cmd), "routes": {}}
    if name in MLFLOW_SERVERS:  # as if the venv were activated: mlflow runs `uvicorn`
        venv_bin = str(mlflow_python.parent)
        env = {**env, "PATH": f"{venv_bin}:{env.get('PATH', '')}", "VIRTUAL_ENV": str(MLFLOW_VENV)}
    if name == "mlflow-onnx":  # a workaround of an mlflow bug: see its docstring
        site = str(PEERS / "mlflow_onnx_site")
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))}
    with running(cmd, env=env, cwd=work, log=work / f"{name}.log") as server:
        try:
            for route, route_bodies in routes:
                url = f"http://127.0.0.1:{port}{route}"
                ready_s, answer = wait_ready(server, url, route_bodies["one"].read_bytes())
                check = check_answer(name, first_number(json.loads(answer)), expected)
                print(f"    {name} {route}: ready in {ready_s:.1f} s, answer {check}", flush=True)
                if name.startswith("modelyard") and "runtime" not in result:
                    result["runtime"] = served_runtime(f"http://127.0.0.1:{port}/v1/models")
                measured = measure_route(
                    url,
                    route_bodies,
                    lua,
                    server=server.proc.pid,
                    seconds=seconds,
                    rows_big=ROWS_BIG,
                    wrk_prefix=cpus.prefix(cpus.wrk),
                    wrk_threads=min(2, len(cpus.wrk)),
                )
                result["routes"][route] = {"ready_s": ready_s, "check": check, **measured}
        except Exception as exc:  # noqa: BLE001 - report the failure, go on with the others
            result["error"] = f"{type(exc).__name__}: {exc}"
            print(f"    {name} FAILED: {result['error']}", flush=True)
        finally:
            result["peak_rss_mb"] = server.peak_rss / 2**20
            result["peak_rss_largest_process_mb"] = server.peak_rss_largest / 2**20
            result["processes"] = server.tree_size
    return result


# --- main --------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("modelyard", "scikit-learn", "onnxruntime", "fastapi", "starlette", "uvicorn")
    found = {name: version(name) for name in names}
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    found["wrk"] = (wrk.stdout or wrk.stderr).split()[1] if (wrk.stdout or wrk.stderr) else "?"
    python = MLFLOW_VENV / "bin" / "python"
    if python.exists():
        code = "from importlib.metadata import version; print(version('mlflow'))"
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
        found["mlflow"] = out.stdout.strip() or "?"
    found["python"] = platform.python_version()
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--runs", type=int, default=3, help="runs of every server (medians)")
    parser.add_argument(
        "--quick", action="store_true", help="1 run of 2-second phases (a smoke test)"
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument(
        "--reuse-home",
        type=Path,
        help="copy this registry (the home/ of a run kept with --keep) instead of training",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "serving.json")
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(args.servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {unknown}; choose from {list(SERVERS)}")
    if args.quick:
        args.seconds, args.runs = 2.0, 1
    if not 1 <= args.seconds <= 60:
        parser.error("--seconds must be between 1 and 60")
    if not 1 <= args.runs <= 10:
        parser.error("--runs must be between 1 and 10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGTERM, terminate)
    os.environ.update(THREAD_ENV)  # before anything in this process loads OpenMP
    cpus = plan_cpus()
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="modelyard-serving-"))
    try:
        home = work / "home"
        os.environ["MODELYARD_HOME"] = str(home)  # for modelyard in this process too
        env = {**os.environ, **QUIET_ENV}
        print(f"work dir {work}; quickstart + promote + export ...", flush=True)
        onnx_export = make_registry(home, env, args.reuse_home)
        print(f"  modelyard export: {onnx_export}", flush=True)
        bodies, records = make_bodies(work)
        lua = work / "post.lua"
        lua.write_text(WRK_LUA)
        training_csv = work / "example" / "data" / "ames.csv.gz"  # written by make_bodies
        setup_errors = make_mlflow_models(args.servers, work, env, training_csv)
        expected = pipeline_prediction(records)
        reference: dict[str, Any] = {"pipeline_prediction": expected, "runs": []}
        servers: dict[str, dict[str, Any]] = {name: {"runs": []} for name in args.servers}
        loadavg_start = os.getloadavg()
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            print("  timing one runtime call in a fresh process ...", flush=True)
            call = runtime_call(bodies["mlflow"]["one"], env, cpus)
            if not math.isclose(call["runtime_prediction"], expected, rel_tol=1e-3):
                print(f"  warning: runtime and pipeline disagree: {call}", flush=True)
            reference["runs"].append(call)
            for name in args.servers:
                if name in setup_errors:
                    servers[name]["error"] = setup_errors[name]
                    continue
                print(f"  {name} ...", flush=True)
                loadavg = os.getloadavg()
                measured = bench_server(
                    name,
                    work=work,
                    env=env,
                    bodies=bodies,
                    lua=lua,
                    seconds=args.seconds,
                    expected=expected,
                    cpus=cpus,
                )
                measured["loadavg_before"] = loadavg
                servers[name]["runs"].append(measured)
        report: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_seconds": time.time() - started,
            "machine": {
                "cpus": os.cpu_count(),
                "pinning": cpus.describe(),
                "platform": platform.platform(),
                "loadavg_start": loadavg_start,
                "loadavg_end": os.getloadavg(),
            },
            "versions": versions(),
            "settings": {
                "runs": args.runs,
                "seconds": args.seconds,
                "rows_big": ROWS_BIG,
                "thread_env": THREAD_ENV,
                "onnxruntime_threads": "1 intra-op, 1 inter-op, sequential, no spinning",
                "phases": "warm-up 16c; 1c/1t latency; 16c req/s; 100-row 4c/1t rows/s",
            },
            "onnx_export": onnx_export,
            "reference": reference,
            "servers": servers,
        }
        report["summary"] = summarize(
            servers, [call["runtime_call_us"] for call in reference["runs"]]
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print()
        print(render(report))
        print(f"\nwrote {args.output} ({report['wall_seconds']:.0f} s)")
        failed = any(
            "error" in server or any("error" in run for run in server["runs"])
            for server in servers.values()
        )
        return 1 if failed else 0
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
