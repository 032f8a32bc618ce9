"""Process and load-generator machinery of benchmarks/serving.py.

Servers run in their own process group (stopped with SIGTERM, then SIGKILL, the group
only); their memory and CPU time are read from /proc for the whole process tree. Load
comes from wrk with a Lua script that POSTs a JSON body file and prints wrk's summary as
one JSON line (latency percentiles in microseconds). Every wait and run is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
import timeit
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

# Thread caps a user may have exported; the batch and streaming benchmarks drop them so
# every contender runs with its libraries' own defaults (serving.py sets its own caps).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_threads_env() -> dict[str, str]:
    """This process's environment without the thread caps of :data:`THREAD_VARS`."""
    return {key: value for key, value in os.environ.items() if key not in THREAD_VARS}


READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0

# wrk: POST the file named by $BENCH_BODY; `done` prints one JSON line with the summary
# and latency percentiles in microseconds (finer than wrk's own --latency print-out).
WRK_LUA = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,' ..
    '"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _proc_sum(pids: list[int], read: Any) -> float:
    total = 0.0
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            total += read(pid)
    return total


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes ``pids``."""
    page = os.sysconf("SC_PAGE_SIZE")
    statm = lambda pid: int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page  # noqa: E731
    return int(_proc_sum(pids, statm))


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by ``root`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    return _proc_sum(tree_pids(root), cpu)


class Server:
    """A server process in its own process group, with a /proc RSS sampler."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.cmd, self.log = cmd, log
        self.peak_rss = 0  # the whole tree
        self.peak_rss_largest = 0  # its largest process
        self.tree_size = 0  # most processes seen in the tree at once
        self._stop = threading.Event()
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        # RSS every 0.1 s; the process tree (a full /proc scan) only every 1 s
        for tick in range(10**7):
            if self._stop.wait(0.1) or self.proc.poll() is not None:
                return
            if tick % 10 == 0:
                pids = tree_pids(self.proc.pid)
            each = [rss_bytes([pid]) for pid in pids]
            self.peak_rss = max(self.peak_rss, sum(each))
            self.peak_rss_largest = max(self.peak_rss_largest, *each)
            self.tree_size = max(self.tree_size, sum(1 for rss in each if rss))

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if still there after STOP_TIMEOUT_S."""
        self._stop.set()
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)  # the group this Popen created, nothing else
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with suppress(ProcessLookupError):  # children that outlived a leader on SIGTERM
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._sampler.join(timeout=2)
        self._log_file.close()

    def log_tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextmanager
def running(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Iterator[Server]:
    server = Server(cmd, env=env, cwd=cwd, log=log)
    try:
        yield server
    finally:
        server.stop()


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def wait_ready(server: Server, url: str, body: bytes) -> tuple[float, bytes]:
    """Seconds until ``url`` answers ``body`` with 200, and that answer; bounded in time."""
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < READY_TIMEOUT_S:
        if server.proc.poll() is not None:
            raise RuntimeError(f"exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            status, answer = post(url, body, timeout=10)
            if status == 200:
                return time.monotonic() - started, answer
            last = f"HTTP {status}: {answer[:300]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.25)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s ({last}):\n{server.log_tail()}")


def run_wrk(
    url: str,
    body: Path,
    lua: Path,
    *,
    server: int,
    threads: int,
    conns: int,
    seconds: float,
    prefix: list[str] | None = None,
) -> dict[str, Any]:
    """One wrk run: requests/s, errors, latency percentiles (µs), server CPU per request.

    ``prefix`` goes before ``wrk`` (``taskset -c N`` pins it to its own core).
    """
    cmd = [*(prefix or []), "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s"]
    cmd += ["--timeout", "10s"]
    cmd += ["--latency", "-s", str(lua), url]
    env = {**os.environ, "BENCH_BODY": str(body)}
    cpu_before = tree_cpu_seconds(server)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    cpu = tree_cpu_seconds(server) - cpu_before
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    result: dict[str, Any] = json.loads(line[len("BENCH ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["failed"] = sum(result["errors"].values())
    result["server_cpu_s"] = cpu
    result["server_cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    result.update(threads=threads, connections=conns, seconds=seconds)
    return result


def measure_route(
    url: str,
    bodies: dict[str, Path],
    lua: Path,
    *,
    server: int,
    seconds: float,
    rows_big: int,
    wrk_prefix: list[str] | None = None,
    wrk_threads: int = 2,
) -> dict[str, Any]:
    """Warm-up, then the three load phases on one route of the server ``server`` (pid).

    ``bodies["one"]`` holds 1 row, ``bodies["big"]`` ``rows_big`` rows. ``wrk_threads``
    is the 16-connection phase's wrk threads (1 when wrk has a single core).
    """
    one, big = bodies["one"], bodies["big"]

    def wrk(body: Path, threads: int, conns: int, phase_s: float) -> dict[str, Any]:
        return run_wrk(
            url,
            body,
            lua,
            server=server,
            threads=threads,
            conns=conns,
            seconds=phase_s,
            prefix=wrk_prefix,
        )

    wrk(one, wrk_threads, 16, min(3.0, seconds))  # warm-up
    c1 = wrk(one, 1, 1, seconds)
    c16 = wrk(one, wrk_threads, 16, seconds)
    wrk(big, 1, 4, min(2.0, seconds))  # warm-up
    rows = wrk(big, 1, 4, seconds)
    return {
        # no request answered within the phase: no latency (wrk would report 0)
        "p50_ms": c1["latency_us"]["p50"] / 1e3 if c1["requests"] else None,
        "p99_ms": c1["latency_us"]["p99"] / 1e3 if c1["requests"] else None,
        "rps_16": c16["rps"],
        "cpu_us_per_request_16": c16["server_cpu_us_per_request"],
        "rows_per_s": rows["rps"] * rows_big,
        "failed_requests": c1["failed"] + c16["failed"] + rows["failed"],
        "wrk": {"c1": c1, "c16": c16, "rows100_c4": rows},
    }


def median_call_us(func: Any, budget_s: float = 5.0) -> float:
    """Median seconds per call of ``func`` over many timed batches, in microseconds."""
    timer = timeit.Timer(func)
    number, took = timer.autorange()  # calls per batch so that a batch takes >= 0.2 s
    per_batch = took / number
    number = max(1, min(number, int(0.05 / per_batch) or 1))  # ~50 ms batches
    repeat = max(5, min(200, int(budget_s / (number * per_batch))))
    times = timer.repeat(repeat=repeat, number=number)
    return float(statistics.median(t / number for t in times)) * 1e6


def served_runtime(url: str) -> str:
    """The runtime modelyard says it serves with (GET /v1/models), or why it is unknown."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            models = json.loads(response.read())["models"]
        return "; ".join(f"{m['runtime']} ({m.get('runtime_reason', '')})" for m in models)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        return f"unknown ({type(exc).__name__}: {exc})"


def first_number(payload: Any) -> float | None:
    """The first number in a JSON answer (the prediction for row 0), whatever its shape."""
    if isinstance(payload, bool):
        return None
    if isinstance(payload, int | float):
        return float(payload)
    items = payload.values() if isinstance(payload, dict) else payload
    if isinstance(payload, dict) and "predictions" in payload:
        items = [payload["predictions"]]
    if isinstance(items, list) or isinstance(payload, dict):
        for item in items:
            found = first_number(item)
            if found is not None:
                return found
    return None


def peak_mib() -> float:
    """This process's peak resident set in MiB (VmHWM). Unlike ``ru_maxrss``, it starts
    afresh at exec: Linux carries the forked copy's high-water mark into ``ru_maxrss``,
    so a child started by a large harness would report the harness's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
