"""Streaming prediction: ``modelyard stream`` against hand-written redis-py consumers.

One redis-server (no persistence, 127.0.0.1), one model (``house-prices:1`` from
``modelyard quickstart``, promoted and exported to ONNX), the same messages
(``{"id": N, "row": {...}}``, rows of the bundled Ames data cycled), three consumers,
one at a time, each on fresh streams:

- ``modelyard``: ``modelyard stream house-prices`` with its defaults (ONNX Runtime when
  the export holds parity, batches of up to 256 messages, the prediction log on);
- ``redis-batch``: benchmarks/peers/redis_consumer.py ``--mode batch``: XREADGROUP of up
  to 256 messages, one ``pipeline.predict`` on their DataFrame, pipelined XADD + XACK;
- ``redis-per-message``: the same ``--mode per-message``: ``pipeline.predict`` on a
  one-row DataFrame per message, one XADD and one XACK each.

Per consumer and run:

- **saturation**: ``--rows`` messages enqueued beforehand, then the consumer started;
  rows/s = rows / (last output written - first output written);
- **steady**: messages enqueued at half of that run's saturation rate for
  ``--steady-seconds``, in 10 ms ticks; latency = the output's Redis entry time minus the
  input's (both stamped by redis-server, in milliseconds), p50 and p99 over every
  message;
- the consumer's peak RSS (process tree, from /proc) in each phase; ``--memory-rows``
  adds a modelyard saturation run on 3× the rows, whose peak RSS should equal the 1×
  run's (memory bounded, not growing with the backlog).

``--runs`` (3) runs give medians and min-max. The per-message consumer is measured on
``--per-message-rows`` (its rate is a rate: a shorter backlog gives the same figure in
less time).

Run: ``.venv/bin/python benchmarks/streaming.py`` (1,000,000 rows: hours on a small
machine), or e.g. ``--rows 50000 --per-message-rows 5000`` for minutes. Results: a
Markdown table on stdout and ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from peers.harness import Server, default_threads_env, free_port

from serving import REF, make_bodies, make_registry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
CONSUMERS = ("modelyard", "redis-batch", "redis-per-message")


OUT_MAXLEN = 100_000_000


def consumer_command(name: str, home: Path, url: str) -> list[str]:
    if name == "modelyard":
        return [
            str(BIN / "modelyard"), "--home", str(home), "stream", "house-prices",
            "--broker", url, "--in", "in", "--out", "out", "--group", "bench",
            "--log-level", "warning",
            # every output is read back to time it: the out stream must keep them all
            # (the default trims it to about 1,000,000 entries)
            "--out-maxlen", str(OUT_MAXLEN),
        ]  # fmt: skip
    mode = name.removeprefix("redis-")
    return [
        sys.executable, str(HERE / "peers" / "redis_consumer.py"), "--home", str(home),
        "--ref", REF, "--redis", url, "--mode", mode,
    ]  # fmt: skip


def launch(name: str, home: Path, url: str, log: Path) -> Server:
    """The consumer ``name``, running (its own process group, RSS sampled)."""
    # Every consumer keeps its libraries' default threads, as its code would run on the
    # machine (modelyard's own default is one ONNX Runtime thread; scikit-learn's OpenMP
    # takes every core): thread variables a user exported are dropped.
    env = default_threads_env()
    return Server(consumer_command(name, home, url), env=env, cwd=ROOT, log=log)


def enqueue(client: redis.Redis, records: list[dict[str, Any]], start: int, count: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        for index in range(start, start + count):
            row = records[index % len(records)]
            pipe.xadd("in", {"data": json.dumps({"id": index, "row": row})})
        pipe.execute()


def entry_ms(entry: bytes) -> int:
    return int(entry.split(b"-", 1)[0])


def entry_times(client: redis.Redis, stream: str) -> dict[int, int]:
    """Each message's id → the time (ms) of its first entry in ``stream``."""
    found: dict[int, int] = {}
    last = "-"
    while True:
        chunk = client.xrange(stream, min=last, count=10_000)
        if last != "-":
            chunk = chunk[1:]
        if not chunk:
            return found
        for entry, fields in chunk:
            found.setdefault(int(json.loads(fields[b"data"])["id"]), entry_ms(entry))
        last = chunk[-1][0]


def wait_outputs(client: redis.Redis, server: Server, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while client.xlen("out") < total:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the consumer exited:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.xlen('out')}/{total} outputs after {timeout:.0f} s")
        time.sleep(0.05)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def saturation(
    name: str, client: redis.Redis, home: Path, url: str, records: list[Any], rows: int, work: Path
) -> dict[str, Any]:
    client.flushdb()
    for start in range(0, rows, 10_000):
        enqueue(client, records, start, min(10_000, rows - start))
    server = launch(name, home, url, work / f"{name}-saturation.log")
    try:
        wait_outputs(client, server, rows, timeout=max(600.0, rows / 20))
    finally:
        server.stop()
    written = sorted(entry_times(client, "out").values())
    seconds = max(0.001, (written[-1] - written[0]) / 1000)
    return {"rows": rows, "rows_per_s": rows / seconds, "peak_rss_mb": server.peak_rss / 2**20}


def steady(
    name: str,
    client: redis.Redis,
    home: Path,
    url: str,
    records: list[Any],
    rate: float,
    seconds: float,
    work: Path,
) -> dict[str, Any]:
    client.flushdb()
    server = launch(name, home, url, work / f"{name}-steady.log")
    try:
        enqueue(client, records, 10**9, 1)  # warm-up: the consumer is up and has predicted
        wait_outputs(client, server, 1, timeout=300)
        sent, tick, started = 0, 0.01, time.monotonic()
        while time.monotonic() - started < seconds:
            due = int(rate * (time.monotonic() - started)) - sent
            if due > 0:
                enqueue(client, records, sent, due)
                sent += due
            time.sleep(tick)
        wait_outputs(client, server, sent + 1, timeout=max(120.0, sent / max(rate, 1)))
    finally:
        server.stop()
    born, written = entry_times(client, "in"), entry_times(client, "out")
    latency = [written[i] - born[i] for i in range(sent)]
    return {
        "rate": rate,
        "rows": sent,
        "p50_ms": percentile(latency, 0.50),
        "p99_ms": percentile(latency, 0.99),
        "peak_rss_mb": server.peak_rss / 2**20,
    }


def median_spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in CONSUMERS:
        mine = [run[name] for run in runs if name in run]
        if not mine:
            continue
        summary[name] = {
            "rows_per_s": median_spread([m["saturation"]["rows_per_s"] for m in mine]),
            "p50_ms": median_spread([m["steady"]["p50_ms"] for m in mine]),
            "p99_ms": median_spread([m["steady"]["p99_ms"] for m in mine]),
            "peak_rss_mb": median_spread([m["saturation"]["peak_rss_mb"] for m in mine]),
        }
    return summary


def render(summary: dict[str, Any], extra: dict[str, Any]) -> str:
    def cell(figure: dict[str, float], digits: int = 0) -> str:
        fmt = f"{{:,.{digits}f}}"
        return (
            f"{fmt.format(figure['median'])} ({fmt.format(figure['min'])}-"
            f"{fmt.format(figure['max'])})"
        )

    mine = summary.get("modelyard")
    lines = [
        "| consumer | rows/s at saturation | p50 ms at half | p99 ms at half | peak RSS MB | "
        "modelyard's rows/s ÷ this |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, figures in summary.items():
        ratio = (
            f"{mine['rows_per_s']['median'] / figures['rows_per_s']['median']:.1f}×"
            if mine
            else "-"
        )
        lines.append(
            f"| {name} | {cell(figures['rows_per_s'])} | {cell(figures['p50_ms'], 1)} | "
            f"{cell(figures['p99_ms'], 1)} | {cell(figures['peak_rss_mb'])} | {ratio} |"
        )
    if extra:
        lines.append("")
        lines.append(f"memory: {json.dumps(extra)}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-message-rows", type=int, default=50_000)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--consumers", default=",".join(CONSUMERS))
    parser.add_argument(
        "--home", type=Path, help="reuse a home where house-prices:1 is promoted and exported"
    )
    parser.add_argument(
        "--memory-rows", action="store_true", help="also a modelyard run on 3x the rows"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install -y redis-server")
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-stream-"))
    home = args.home or work / "home"
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    os.environ["MODELYARD_HOME"] = str(home)
    if args.home is None:
        print(f"== registry in {home}: quickstart, promote, export", flush=True)
        print(make_registry(home, env), flush=True)
    _, records = make_bodies(work)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_server = Server(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        env=dict(os.environ),
        cwd=work,
        log=work / "redis.log",
    )
    runs: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    try:
        time.sleep(0.5)
        client = redis.Redis.from_url(url)
        for run in range(args.runs):
            found: dict[str, Any] = {}
            for name in args.consumers.split(","):
                rows = args.per_message_rows if name == "redis-per-message" else args.rows
                print(f"== run {run + 1}/{args.runs}: {name}, {rows:,} rows", flush=True)
                sat = saturation(name, client, home, url, records, rows, work)
                calm = steady(
                    name, client, home, url, records, sat["rows_per_s"] / 2,
                    args.steady_seconds, work,
                )  # fmt: skip
                found[name] = {"saturation": sat, "steady": calm}
                print(f"   {json.dumps(found[name])}", flush=True)
            runs.append(found)
        if args.memory_rows:
            for rows in (args.rows, 3 * args.rows):
                sat = saturation("modelyard", client, home, url, records, rows, work)
                extra[f"modelyard_peak_rss_mb_at_{rows}_rows"] = round(sat["peak_rss_mb"], 1)
        client.close()
    finally:
        redis_server.stop()
    summary = summarize(runs)
    RESULTS.mkdir(exist_ok=True)
    result = {
        "args": {key: str(value) for key, value in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
        "summary": summary,
        "memory": extra,
    }
    (RESULTS / "streaming.json").write_text(json.dumps(result, indent=2))
    print(render(summary, extra))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
