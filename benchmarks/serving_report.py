"""The table and the ratios of benchmarks/serving.py: medians and min-max over the runs.

Every run measures every server once (interleaved, so a busy spell of the machine hits
them alike); a ratio is computed within each run, then its median and range are given.
A ratio whose servers failed any request, or answered a wrong prediction, in any run is
INVALID: fast failures must not pass for speed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

V1_ROUTE = "/v1/models/house-prices/predict"
INVOCATIONS = "/invocations"

#: The servers, in the table's order, and what each runs.
SERVERS: dict[str, str] = {
    "modelyard": "`modelyard serve --runtime onnx`: the ONNX export on ONNX Runtime",
    "modelyard-sklearn": "`modelyard serve --runtime sklearn`: the scikit-learn pipeline",
    "mlflow-sklearn": "`mlflow models serve`, mlflow.sklearn flavour of the same pipeline",
    "mlflow-onnx": "`mlflow models serve`, mlflow.onnx flavour of the same ONNX export",
    "fastapi-sklearn": "FastAPI + `pipeline.predict(pd.DataFrame(records))`",
    "fastapi-onnx": "FastAPI + ONNX Runtime on the same graph, same session options",
    "asgi-floor": "raw ASGI app under uvicorn: reads the body, answers a constant",
}
ROWS = [
    ("modelyard", INVOCATIONS, "modelyard"),
    ("modelyard", V1_ROUTE, "modelyard (/v1 rows body)"),
    *((name, INVOCATIONS, name) for name in SERVERS if name != "modelyard"),
]
METRICS = ("p50_ms", "p99_ms", "rps_16", "cpu_us_per_request_16", "rows_per_s")


@dataclass(frozen=True)
class Ratio:
    """A comparison between two servers (or a server and a bound), with its goal if any."""

    title: str
    measures: str
    top: tuple[str, str]  # (server, metric)
    bottom: tuple[str, str]
    target: float | None = None
    at_most: bool = False  # the goal is value <= target (else >=)
    add_runtime_call: bool = False  # the bottom is (its value + one runtime call)


RATIOS = (
    Ratio(
        "modelyard / plain FastAPI + ONNX Runtime, req/s at 16 connections",
        "the serving layer alone: the same ONNX graph and threads; micro-batching and "
        "decoding against one session call per request",
        ("modelyard", "rps_16"),
        ("fastapi-onnx", "rps_16"),
        target=2.0,
    ),
    Ratio(
        "modelyard / mlflow on scikit-learn, req/s at 16 connections",
        "the whole product against the usual deployment: runtime and server together",
        ("modelyard", "rps_16"),
        ("mlflow-sklearn", "rps_16"),
        target=50.0,
    ),
    Ratio(
        "modelyard without the export / mlflow on scikit-learn, req/s at 16 connections",
        "the server alone on the same scikit-learn pipeline: batching and decoding",
        ("modelyard-sklearn", "rps_16"),
        ("mlflow-sklearn", "rps_16"),
        target=5.0,
    ),
    Ratio(
        "modelyard p50 / (ASGI floor p50 + one runtime call), 1 connection",
        "what a lone request costs beyond the cheapest HTTP answer and the model call",
        ("modelyard", "p50_ms"),
        ("asgi-floor", "p50_ms"),
        target=2.0,
        at_most=True,
        add_runtime_call=True,
    ),
    Ratio(
        "modelyard / plain FastAPI + scikit-learn, rows/s with 100-row bodies",
        "large bodies: columnar decoding and ONNX Runtime against a DataFrame per request",
        ("modelyard", "rows_per_s"),
        ("fastapi-sklearn", "rows_per_s"),
        target=5.0,
    ),
    Ratio(
        "mlflow on ONNX / mlflow on scikit-learn, req/s at 16 connections",
        "what the ONNX runtime alone buys inside mlflow's server",
        ("mlflow-onnx", "rps_16"),
        ("mlflow-sklearn", "rps_16"),
    ),
    Ratio(
        "plain FastAPI + ONNX Runtime / + scikit-learn, req/s at 16 connections",
        "what the ONNX runtime alone buys inside a plain FastAPI app",
        ("fastapi-onnx", "rps_16"),
        ("fastapi-sklearn", "rps_16"),
    ),
)


# --- numbers -------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, min and max of ``values`` (None when there are none)."""
    if not values:
        return None
    return {
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "n": len(values),
    }


def _route(run: dict[str, Any], route: str = INVOCATIONS) -> dict[str, Any] | None:
    found: dict[str, Any] | None = run.get("routes", {}).get(route)
    return found


def _per_run(servers: dict[str, Any], name: str, metric: str) -> list[float | None]:
    values = []
    for run in servers.get(name, {}).get("runs", []):
        found = _route(run)
        values.append(None if found is None or found[metric] is None else float(found[metric]))
    return values


def _clean(servers: dict[str, Any], name: str) -> bool:
    """Every run of ``name`` measured, without failed requests or wrong answers."""
    runs = servers.get(name, {}).get("runs", [])
    return bool(runs) and all(
        (found := _route(run)) is not None
        and not found["failed_requests"]
        and not found["check"].startswith("MISMATCH")
        for run in runs
    )


def ratio(servers: dict[str, Any], item: Ratio, runtime_us: list[float]) -> dict[str, Any]:
    """One comparison: per-run ratios, their median and range, and the goal's status.

    ``runtime_us`` is each run's one runtime call (added to the bottom where the item
    says so): each run's ratio uses its own run's reference.
    """
    tops = _per_run(servers, *item.top)
    bottoms = _per_run(servers, *item.bottom)
    extras = [us / 1e3 if item.add_runtime_call else 0.0 for us in runtime_us]
    per_run = [
        top / (bottom + extra)
        for top, bottom, extra in zip(tops, bottoms, extras, strict=False)
        if top is not None and bottom is not None and bottom + extra > 0
    ]
    found = spread(per_run)
    if found is None:
        status = "n/a"
    elif not (_clean(servers, item.top[0]) and _clean(servers, item.bottom[0])):
        status = "INVALID"
    elif item.target is None:
        status = ""
    else:
        met = found["median"] <= item.target if item.at_most else found["median"] >= item.target
        status = "PASS" if met else "MISS"
    goal = "" if item.target is None else f"{'<=' if item.at_most else '>='} {item.target:g}x"
    return {
        "title": item.title,
        "measures": item.measures,
        "per_run": per_run,
        "spread": found,
        "goal": goal,
        "status": status,
    }


def summarize(servers: dict[str, Any], runtime_us: list[float]) -> dict[str, Any]:
    """Per server and route: the spread of every metric; then every ratio."""
    table: dict[str, Any] = {}
    for name, route, _ in ROWS:
        runs = servers.get(name, {}).get("runs", [])
        measured = [found for run in runs if (found := _route(run, route)) is not None]
        if not measured:
            continue
        table.setdefault(name, {})[route] = {
            **{
                metric: spread([float(m[metric]) for m in measured if m[metric] is not None])
                for metric in METRICS
            },
            "failed_requests": sum(int(m["failed_requests"]) for m in measured),
            "checks": sorted({m["check"] for m in measured}),
            "peak_rss_mb": spread([float(run["peak_rss_mb"]) for run in runs]),
        }
    return {"table": table, "ratios": [ratio(servers, item, runtime_us) for item in RATIOS]}


# --- rendering -------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def cell(found: dict[str, float] | None, digits: int = 2) -> str:
    """``median (min-max)``, or the value alone for one run."""
    if found is None:
        return "-"
    if found["n"] == 1:
        return fmt(found["median"], digits)
    low, high = fmt(found["min"], digits), fmt(found["max"], digits)
    return f"{fmt(found['median'], digits)} ({low}–{high})"


def _error_of(server: dict[str, Any]) -> str | None:
    if "error" in server:
        return str(server["error"])
    errors = [run["error"] for run in server.get("runs", []) if "error" in run]
    return str(errors[0]) if errors else None


def render(report: dict[str, Any]) -> str:
    servers, summary, ref = report["servers"], report["summary"], report["reference"]
    calls = ", ".join(f"{call['runtime_call_us']:,.0f}" for call in ref["runs"]) or "-"
    settings, machine = report["settings"], report["machine"]
    runs = settings["runs"]
    how = "median (min–max) of " + f"{runs} runs" if runs > 1 else "1 run"
    lines = [
        f"Per server, {how}:",
        "",
        "| server | what it runs | p50 ms (1 conn) | p99 ms (1 conn) | req/s (16 conn) "
        "| server CPU µs/req (16 conn) | rows/s (100-row body, 4 conn) | peak RSS MB "
        "| failed requests | answer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, route, label in ROWS:
        if name not in servers:
            continue
        what = SERVERS[name] if route == INVOCATIONS else "the same server, modelyard's own route"
        found = summary["table"].get(name, {}).get(route)
        error = _error_of(servers[name])
        if found is None:
            if route == INVOCATIONS:
                reason = (error or "not measured").splitlines()[0][:100]
                lines.append(f"| {label} | {what} | failed: {reason} | | | | | | | |")
            continue
        note = "; failed in a run" if error else ""
        lines.append(
            f"| {label} | {what} | {cell(found['p50_ms'])} | {cell(found['p99_ms'])} "
            f"| {cell(found['rps_16'], 0)} | {cell(found['cpu_us_per_request_16'], 0)} "
            f"| {cell(found['rows_per_s'], 0)} | {cell(found['peak_rss_mb'], 0)} "
            f"| {found['failed_requests']} | {', '.join(found['checks'])}{note} |"
        )
    lines += [
        "",
        "| comparison | what it measures | ratio | goal | status |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for item in summary["ratios"]:
        value = cell(item["spread"]) + ("x" if item["spread"] else "")
        lines.append(
            f"| {item['title']} | {item['measures']} | {value} | {item['goal']} "
            f"| {item['status']} |"
        )
    served = [
        f"{name}: {run['runtime']}"
        for name in ("modelyard", "modelyard-sklearn")
        for run in servers.get(name, {}).get("runs", [])[:1]
        if "runtime" in run
    ]
    lines += [
        "",
        f"Served with: {'; '.join(served) or 'unknown'}.",
        "One call of modelyard's runtime on 1 row, timed in a fresh process on the servers' "
        f"core before each run: {calls} µs (median of timeit batches per run; "
        f"{ref['runs'][0]['runtime'] if ref['runs'] else '-'}"
        f"{', ' + ref['runs'][0]['note'] if ref['runs'] and ref['runs'][0]['note'] else ''}).",
        f"Threads: {', '.join(f'{k}={v}' for k, v in settings['thread_env'].items())} for "
        f"every server; ONNX Runtime {settings['onnxruntime_threads']}; one worker each, "
        "no access log.",
        f"Machine: {machine['cpus']} cores, {machine['pinning']}; load average "
        f"{machine['loadavg_start'][0]:.2f} at start, {machine['loadavg_end'][0]:.2f} at end. "
        f"Phases of {settings['seconds']:g} s; wrk {report['versions']['wrk']}.",
    ]
    return "\n".join(lines)
