"""What ``modelyard serve`` loses when killed under load, and what stalled clients cost it.

Two measurements against ``modelyard serve house-prices`` (its default limits and
prediction-log settings), each on a fresh copy of a MODELYARD_HOME made by
``modelyard quickstart``, ``promote house-prices:1`` and ``export house-prices:1``:

- **Crash bound.** Client threads send 10-row requests whose every categorical value is
  a fresh 256-character text (an unseen category: the widest rows any client may send
  under the default text limit, about 10 kB a row) and note when each answer arrived.
  After ``--load-seconds`` the server is killed with SIGKILL while they still send. The
  Parquet segments on disk are then read: every answered row that is not in them is
  lost, and its age is the time from its answer to the kill. The README's bound says
  no answer older than the flush interval (2 s) plus one segment's write is lost.
- **Stalled clients.** 200 uploads that stop after 60 kB of a declared 15 MiB and 2,000
  connections whose headers never end are held open for ``--hold-seconds``; the server's
  resident memory before and while they are held, and how long until it answers a
  prediction again once they are closed.

Run: ``.venv/bin/python benchmarks/hostile.py`` (``--runs 5``, ``--reuse-home DIR`` to
copy a prepared home instead of training the example again). Results: a summary on
stdout and ``benchmarks/results/hostile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import string
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
from peers.harness import free_port, rss_bytes, running, wait_ready

from serving import BIN, MODEL, REF, RESULTS, ROOT, THREAD_ENV, make_registry

ROWS_PER_REQUEST = 10
TEXT = 256  # the default text limit is never below 256 characters
CLIENTS = 4


def _records(home: Path, work: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON-safe rows of the example in the model's input order, and its text columns."""
    import pandas as pd

    from modelyard.api import example_project, open_registry
    from modelyard.settings import Settings

    with open_registry(Settings(home=home)) as registry:
        order = registry.get_version(REF).lineage_record.features.feature_order
    frame = pd.read_csv(example_project(work / "example") / "data" / "ames.csv.gz")[order]
    texts = [c for c in order if frame[c].dtype == object]
    rows: list[dict[str, Any]] = json.loads(frame.head(200).to_json(orient="records"))
    return rows, texts


def _widened(rows: list[dict[str, Any]], texts: list[str], rng: random.Random) -> list[Any]:
    letters = string.ascii_letters
    return [
        {**row, **{c: "".join(rng.choices(letters, k=TEXT)) for c in texts}}
        for row in rng.sample(rows, ROWS_PER_REQUEST)
    ]


def _serve(home: Path, port: int, log: Path) -> Any:
    env = {**os.environ, **THREAD_ENV, "MODELYARD_HOME": str(home)}
    env.pop("MODELYARD_REGISTRY_URL", None)
    command = [str(BIN / "modelyard"), "serve", MODEL, "--port", str(port)]
    return running(command, env=env, cwd=ROOT, log=log)


def crash_run(prepared: Path, work: Path, seconds: float, seed: int) -> dict[str, Any]:
    """One SIGKILL under wide-row load: rows answered, rows lost, the oldest loss's age."""
    home = work / f"home-{seed}"
    shutil.copytree(prepared, home, ignore=shutil.ignore_patterns("predictions"))
    rows, texts = _records(home, work)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    answered: list[tuple[float, str, int]] = []  # (monotonic time, request id, rows)
    stop = threading.Event()

    def client(number: int) -> None:
        rng = random.Random(seed * 100 + number)
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                try:
                    reply = http.post(
                        f"/v1/models/{MODEL}/predict", json={"rows": _widened(rows, texts, rng)}
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if reply.status_code != 200:
                    raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
                answered.append((time.monotonic(), reply.headers["x-request-id"], 10))

    with _serve(home, port, work / f"serve-{seed}.log") as server:
        body = json.dumps({"rows": _widened(rows, texts, random.Random(seed))}).encode()
        wait_ready(server, f"{url}/v1/models/{MODEL}/predict", body)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        killed_at = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join()
    stored: set[str] = set()
    segments = list((home / "predictions").glob("**/*.parquet"))
    for segment in segments:
        table = pq.read_table(segment, columns=["request_id"], partitioning=None)
        stored.update(table["request_id"].to_pylist())
    lost = [(at, rows) for at, rid, rows in answered if rid not in stored]
    temporary = [p.name for p in (home / "predictions").rglob("*.tmp")]
    shutil.rmtree(home)
    return {
        "answered_rows": sum(r for _, _, r in answered),
        "rows_per_s": sum(r for _, _, r in answered) / seconds,
        "segments": len(segments),
        "lost_rows": sum(r for _, r in lost),
        "oldest_lost_s": max((killed_at - at for at, _ in lost), default=0.0),
        "temporary_files_left": len(temporary),
    }


def _hold(port: int, count: int, request: bytes) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            sock.sendall(request)
        except OSError:  # closed at once: past the connection cap
            sock.close()
            continue
        held.append(sock)
    return held


def _open(sock: socket.socket) -> bool:
    """Whether the server still holds ``sock`` open, waiting: no answer, no end of stream."""
    sock.setblocking(False)  # with a timeout set, recv would wait for data first
    try:
        sock.recv(1, socket.MSG_PEEK)
        return False  # an answer (a refusal) or the end of the stream
    except BlockingIOError:
        return True
    except OSError:  # reset
        return False


def stall_run(prepared: Path, work: Path, hold: float) -> dict[str, Any]:
    """Resident memory with 200 stalled uploads and 2,000 slow-header connections held."""
    home = work / "home-stall"
    shutil.copytree(prepared, home, ignore=shutil.ignore_patterns("predictions"))
    rows, texts = _records(home, work)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict"
    body = json.dumps({"rows": rows[:1]}).encode()
    upload = (
        (
            f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 15728640\r\n\r\n"
        ).encode()
        + b'{"rows": ['
        + b" " * 60_000
    )
    header = f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\n".encode()
    with _serve(home, port, work / "serve-stall.log") as server:
        wait_ready(server, url, body)
        time.sleep(1.0)
        before = rss_bytes([server.proc.pid])
        held = _hold(port, 200, upload) + _hold(port, 2000, header)
        deadline = time.monotonic() + hold
        during = before
        while time.monotonic() < deadline:
            during = max(during, rss_bytes([server.proc.pid]))
            time.sleep(0.1)
        still_open = sum(_open(sock) for sock in held)
        for sock in held:
            sock.close()
        closed = time.monotonic()
        wait_ready(server, url, body)
        recovered = time.monotonic() - closed
    shutil.rmtree(home)
    return {
        "sent": len(held),
        "open_at_the_end": still_open,
        "rss_before_mib": before / 2**20,
        "rss_held_mib": during / 2**20,
        "growth_mib": (during - before) / 2**20,
        "answers_again_after_s": recovered,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="SIGKILL runs (5)")
    parser.add_argument("--load-seconds", type=float, default=8.0, help="load before a kill")
    parser.add_argument("--hold-seconds", type=float, default=5.0, help="stalled clients held")
    parser.add_argument("--reuse-home", type=Path, help="copy this prepared home")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelyard-hostile-") as scratch:
        work = Path(scratch)
        prepared = work / "home"
        os.environ["MODELYARD_HOME"] = str(prepared)
        print(make_registry(prepared, {**os.environ, **THREAD_ENV}, args.reuse_home))
        crashes = [crash_run(prepared, work, args.load_seconds, seed) for seed in range(args.runs)]
        for run in crashes:
            print(json.dumps(run))
        stall = stall_run(prepared, work, args.hold_seconds)
        print(json.dumps(stall))
    oldest = [run["oldest_lost_s"] for run in crashes]
    print(
        f"SIGKILL under wide-row load, {args.runs} runs: oldest lost answer "
        f"{max(oldest):.2f} s before the kill (median {statistics.median(oldest):.2f} s); "
        f"rows lost at most {max(run['lost_rows'] for run in crashes)} of "
        f"{min(run['answered_rows'] for run in crashes)}+ answered; "
        f"stalled clients: +{stall['growth_mib']:.0f} MiB with {stall['sent']} sent "
        f"({stall['open_at_the_end']} still open after {args.hold_seconds:.0f} s), "
        f"answering again {stall['answers_again_after_s']:.1f} s after they closed"
    )
    RESULTS.mkdir(exist_ok=True)
    results = {"python": sys.version.split()[0], "crash": crashes, "stall": stall}
    (RESULTS / "hostile.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
