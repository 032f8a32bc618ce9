"""What serving changes in its process: nothing for an embedding app unless asked; under
``modelyard serve`` the collector is frozen and the switch interval short, and swapping
versions many times under load does not grow the server's memory."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from _processes import wait_process_ready
from modelyard.serving.process import SERVE_DEFAULTS, ProcessSettings, ProcessTuning, _ast_race

if TYPE_CHECKING:
    from conftest import StartServer, Yard

pytestmark = pytest.mark.e2e

SERVE_INTERVAL = SERVE_DEFAULTS.switch_interval


def _process_state() -> tuple[bool, int, float]:
    return gc.isenabled(), gc.get_freeze_count(), sys.getswitchinterval()


def test_an_embedded_app_leaves_the_process_as_it_found_it(
    start_server: StartServer, yard: Yard
) -> None:
    before = _process_state()
    live = start_server(yard.settings, models=["houses"])
    with live.client() as client:
        assert client.get("/readyz").status_code == 200
        assert client.post(
            "/v1/models/houses/predict", json={"rows": [{"size": 80, "rooms": 2, "town": "beta"}]}
        ).is_success
        assert _process_state() == before  # while it serves
    live.stop()
    assert _process_state() == before


def test_an_app_that_asks_tunes_the_process_and_undoes_it_on_shutdown(
    start_server: StartServer, yard: Yard
) -> None:
    before = _process_state()
    assert before[1] == 0 and SERVE_INTERVAL is not None and before[2] > SERVE_INTERVAL
    live = start_server(
        yard.settings, models=["houses"], gc_freeze=True, switch_interval_ms=SERVE_INTERVAL * 1000
    )
    # the loaded model's objects are out of the collector's way; threads hand over fast
    assert gc.get_freeze_count() > 10_000
    assert sys.getswitchinterval() == pytest.approx(SERVE_INTERVAL)
    live.stop()
    assert _process_state() == before


def test_loads_run_at_the_default_switch_interval_and_one_at_a_time_where_needed() -> None:
    default = sys.getswitchinterval()
    tuning = ProcessTuning()
    settings = ProcessSettings(switch_interval=0.0002)
    tuning.enter(settings)
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with tuning.loading():
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        with tuning.loading():
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(10)
    assert sys.getswitchinterval() == pytest.approx(default)  # a load is running
    threads[1].start()
    if _ast_race():
        threads[1].join(0.05)
        assert order == ["first in"]  # the second load waits for the first
    else:
        threads[1].join(10)
        assert order == ["first in", "second in"]  # no lock where CPython is fixed
    release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(order) == ["first in", "first out", "second in"]
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    tuning.leave(settings)
    assert sys.getswitchinterval() == pytest.approx(default)


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ((3, 11, 7), True),
        ((3, 11, 8), False),
        ((3, 12, 1), True),
        ((3, 12, 2), False),
        ((3, 13, 0), False),
        ((3, 10, 14), False),
    ],
)
def test_the_load_lock_applies_only_to_cpython_versions_with_the_ast_race(
    version: tuple[int, int, int], affected: bool
) -> None:
    assert _ast_race(version) is affected


# -- memory of a serving process across swaps -------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_fifty_swaps_under_load_return_memory_to_one_loaded_version(
    fresh_yard: Yard, tmp_path: Path
) -> None:
    # A forest: a version holds tens of MB (pipeline and ONNX graph), so a retired version
    # that is kept shows in the process's memory after a few swaps.
    from _projects import regression_project
    from modelyard import api

    folder = fresh_yard.settings.home.parent / "houses"
    refs = []
    for seed in (1, 2):
        model = {
            "estimator": "sklearn.ensemble.RandomForestRegressor",
            "params": {"n_estimators": 60, "random_state": seed},
        }
        regression_project(folder, rows=2000, model=model)
        refs.append(api.train(folder, settings=fresh_yard.settings).ref)
    first, second = refs
    port, admin = _free_port(), "admin-key-123"
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODELYARD_HOME": str(fresh_yard.settings.home)}
    env.pop("MODELYARD_REGISTRY_URL", None)
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        # the prediction log's own buffers are not what this measures
        [sys.executable, "-m", "modelyard", "serve", first, "--port", str(port),
         "--admin-key", admin, "--poll-seconds", "0", "--no-prediction-log",
         "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]
    row = {"rows": [{"size": 80.0, "rooms": 2, "town": "beta"}]}

    def load() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                reply = client.post("/v1/models/houses/predict", json=row)
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text}")
                answered[0] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        wait_process_ready(server, url, timeout=120)
        for thread in threads:
            thread.start()
        while answered[0] < 500:  # the first version, warm, under load
            time.sleep(0.05)
        after_first_load = _rss_kib(server.pid)
        with httpx.Client(base_url=url, timeout=120, headers={"X-API-Key": admin}) as admin_client:
            for swap in range(50):
                ref = second if swap % 2 == 0 else first
                reply = admin_client.post("/v1/admin/models/houses/load", json={"ref": ref})
                assert reply.status_code == 200, reply.text
                assert reply.json()["changes"][0]["status"] == "swapped", reply.text
        stop.set()
        for thread in threads:
            thread.join(60)
        # retired versions are released once their last request is done: give it a while
        bound = after_first_load * 1.10
        settle = time.monotonic() + 30
        after_swaps = _rss_kib(server.pid)
        while after_swaps > bound and time.monotonic() < settle:
            time.sleep(0.5)
            after_swaps = _rss_kib(server.pid)
    finally:
        stop.set()
        server.terminate()
        server.wait(60)
        log.close()
    assert not failures, failures[:5]
    assert after_swaps <= bound, (
        f"RSS {after_swaps / 1024:.0f} MiB after 50 swaps, {after_first_load / 1024:.0f} MiB "
        "after the first load"
    )
