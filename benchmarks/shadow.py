"""What a shadow costs the primary: 1-connection p50 latency and 16-connection req/s.

One registry (``modelyard quickstart``, ``promote house-prices:1``, ``export``, as
benchmarks/serving.py makes it), then per run two fresh ``modelyard serve house-prices
--runtime onnx`` servers in turn: one without a routing policy (``off``), one whose
policy shadows every request with ``house-prices:1`` (``on``; the same version, so the
candidate costs what the primary costs). Each gets the same bytes from wrk on
``/v1/models/house-prices/predict`` (1 row): a warm-up, 1 connection for latency (p50),
16 connections for requests/s. ``--runs`` runs (3) give medians and min-max; the order
of ``off`` and ``on`` alternates between runs.

The shadow's own counters (compared, skipped at its in-flight cap) are read from the
server's ``/v1/experiments`` after each phase: at 16 connections the cap (``--in-flight``,
default the policy's 64) decides how many copies are scored at all; copies wait up to
``--batch-ms`` (the policy's default, 20) and are scored together.

Run: ``.venv/bin/python benchmarks/shadow.py`` (about 5 minutes with the default 10-s
phases; needs wrk). ``--quick``: 1 run of 2-s phases. Results: a Markdown table on
stdout and ``benchmarks/results/shadow.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from peers.harness import WRK_LUA, free_port, run_wrk, running, wait_ready

from serving import (
    BIN,
    MODEL,
    QUIET_ENV,
    REF,
    THREAD_ENV,
    V1_ROUTE,
    make_bodies,
    make_registry,
    plan_cpus,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def set_policy(
    env: dict[str, str],
    *,
    enabled: bool,
    in_flight: int,
    sample: float,
    idle: bool,
    batch_ms: float,
) -> None:
    modelyard = str(BIN / "modelyard")
    if enabled:
        shadow = {
            "ref": REF,
            "max_in_flight": in_flight,
            "sample": sample,
            "idle": idle,
            "batch_ms": batch_ms,
        }
        policy = {"shadow": shadow}
        cmd = [modelyard, "experiments", "set", MODEL, "--policy", json.dumps(policy)]
        cmd += ["--reason", "shadow benchmark"]
    else:
        cmd = [modelyard, "experiments", "clear", MODEL, "--reason", "shadow benchmark"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)


def shadow_counts(port: int) -> dict[str, Any] | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/experiments", timeout=10) as reply:
        entries = json.loads(reply.read())["experiments"]
    if not entries:
        return None
    shadow = dict(entries[0].get("shadow") or {})
    shadow.pop("differential", None)
    return shadow


def bench(
    mode: str, *, env: dict[str, str], work: Path, body: Path, lua: Path, seconds: float, cpus: Any
) -> dict[str, Any]:
    port = free_port()
    serve = [str(BIN / "modelyard"), "serve", MODEL, "--runtime", "onnx", "--model-threads", "1"]
    cmd = [*cpus.prefix(cpus.server), *serve, "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}{V1_ROUTE}"
    with running(cmd, env=env, cwd=work, log=work / f"serve-{mode}.log") as server:
        wait_ready(server, url, body.read_bytes())
        if mode == "on":  # the router reads policies once the model is loaded
            deadline = time.monotonic() + 60
            while shadow_counts(port) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no shadow route after 60 s:\n{server.log_tail()}")
                time.sleep(0.2)

        def wrk(threads: int, conns: int, phase_s: float) -> dict[str, Any]:
            return run_wrk(
                url,
                body,
                lua,
                server=server.proc.pid,
                threads=threads,
                conns=conns,
                seconds=phase_s,
                prefix=cpus.prefix(cpus.wrk),
            )

        wrk(1, 16, min(3.0, seconds))  # warm-up
        c1 = wrk(1, 1, seconds)
        after_c1 = shadow_counts(port) if mode == "on" else None
        c16 = wrk(1, 16, seconds)
        after_c16 = shadow_counts(port) if mode == "on" else None
    return {
        "p50_ms": c1["latency_us"]["p50"] / 1e3,
        "p99_ms": c1["latency_us"]["p99"] / 1e3,
        "rps_16": c16["rps"],
        "failed": c1["failed"] + c16["failed"],
        "shadow_after_c1": after_c1,
        "shadow_after_c16": after_c16,
        "wrk": {"c1": c1, "c16": c16},
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    p50_ratio = [r["on"]["p50_ms"] / r["off"]["p50_ms"] for r in runs]
    rps_ratio = [r["on"]["rps_16"] / r["off"]["rps_16"] for r in runs]
    return {
        "p50_ms_off": _spread([r["off"]["p50_ms"] for r in runs]),
        "p50_ms_on": _spread([r["on"]["p50_ms"] for r in runs]),
        "p50_overhead": _spread([x - 1 for x in p50_ratio]),
        "rps_16_off": _spread([r["off"]["rps_16"] for r in runs]),
        "rps_16_on": _spread([r["on"]["rps_16"] for r in runs]),
        "rps_16_cost": _spread([1 - x for x in rps_ratio]),
    }


def render(summary: dict[str, Any], runs: list[dict[str, dict[str, Any]]]) -> str:
    def cell(key: str, scale: float = 1.0, fmt: str = "{:.3g}") -> str:
        s = summary[key]
        return (
            f"{fmt.format(s['median'] * scale)} "
            f"({fmt.format(s['min'] * scale)}-{fmt.format(s['max'] * scale)})"
        )

    last = runs[-1]["on"]
    c1, c16 = last["shadow_after_c1"] or {}, last["shadow_after_c16"] or {}
    return "\n".join(
        [
            "| | without shadow | with shadow | cost |",
            "| --- | ---: | ---: | ---: |",
            f"| 1-conn p50 (ms) | {cell('p50_ms_off')} | {cell('p50_ms_on')} "
            f"| {cell('p50_overhead', 100, '{:.1f}')} % |",
            f"| 16-conn req/s | {cell('rps_16_off', 1, '{:.0f}')} "
            f"| {cell('rps_16_on', 1, '{:.0f}')} | {cell('rps_16_cost', 100, '{:.1f}')} % |",
            "",
            f"shadow copies in the last run: after the 1-conn phase {c1.get('compared')} compared,"
            f" {c1.get('skipped')} skipped; after 16-conn {c16.get('compared')} compared, "
            f"{c16.get('skipped')} skipped (in-flight cap), {c16.get('failed')} failed",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1 run of 2-second phases")
    parser.add_argument(
        "--in-flight", type=int, default=64, help="the shadow's max_in_flight (the default)"
    )
    parser.add_argument(
        "--batch-ms",
        type=float,
        default=20.0,
        help="the shadow's batch_ms (the default); 0 scores each copy at once",
    )
    parser.add_argument("--sample", type=float, default=1.0, help="share of requests copied")
    parser.add_argument("--idle", action="store_true", help="shadow threads under SCHED_IDLE")
    parser.add_argument("--output", type=Path, default=RESULTS / "shadow.json")
    parser.add_argument(
        "--reuse-home",
        type=Path,
        help="copy this registry (the home/ of a kept serving run) instead of training",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    os.environ.update(THREAD_ENV)
    cpus = plan_cpus()
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="modelyard-shadow-"))
    try:
        os.environ["MODELYARD_HOME"] = str(work / "home")
        env = {**os.environ, **QUIET_ENV}
        print(f"work dir {work}; quickstart + promote + export ...", flush=True)
        print(
            f"  modelyard export: {make_registry(work / 'home', env, args.reuse_home)}", flush=True
        )
        bodies, _ = make_bodies(work)
        lua = work / "post.lua"
        lua.write_text(WRK_LUA)
        runs: list[dict[str, dict[str, Any]]] = []
        for run in range(args.runs):
            order = ("off", "on") if run % 2 == 0 else ("on", "off")
            measured: dict[str, dict[str, Any]] = {}
            for mode in order:
                print(f"run {run + 1} of {args.runs}: shadow {mode} ...", flush=True)
                set_policy(
                    env,
                    enabled=mode == "on",
                    in_flight=args.in_flight,
                    batch_ms=args.batch_ms,
                    sample=args.sample,
                    idle=args.idle,
                )
                measured[mode] = bench(
                    mode,
                    env=env,
                    work=work,
                    body=bodies["v1"]["one"],
                    lua=lua,
                    seconds=args.seconds,
                    cpus=cpus,
                )
            runs.append(measured)
        summary = summarize(runs)
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_seconds": time.time() - started,
            "machine": {"cpus": os.cpu_count(), "pinning": cpus.describe()},
            "settings": {
                "runs": args.runs,
                "seconds": args.seconds,
                "shadow": {
                    "ref": REF,
                    "max_in_flight": args.in_flight,
                    "batch_ms": args.batch_ms,
                    "sample": args.sample,
                    "idle": args.idle,
                },
            },
            "runs": runs,
            "summary": summary,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print()
        print(render(summary, runs))
        print(f"\nwrote {args.output} ({report['wall_seconds']:.0f} s)")
        return 1 if any(r[m]["failed"] for r in runs for m in r) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
