"""What a running server changes in its process, and that shutting down undoes it."""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from modelyard.serving.manager import SWITCH_INTERVAL

if TYPE_CHECKING:
    from conftest import StartServer, Yard


def test_serving_tunes_the_process_and_undoes_it_on_shutdown(
    start_server: StartServer, yard: Yard
) -> None:
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL
    assert gc.get_freeze_count() == 0
    live = start_server(yard.settings, models=["houses"])
    # the loaded model's objects are out of the collector's way; threads hand over fast
    assert gc.get_freeze_count() > 10_000
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    with live.client() as client:
        assert client.get("/readyz").status_code == 200
    live.stop()
    assert gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == pytest.approx(before)


def test_loads_run_one_at_a_time_at_the_default_switch_interval() -> None:
    from modelyard.serving.manager import _ProcessTuning

    default = sys.getswitchinterval()
    tuning = _ProcessTuning()
    tuning.enter()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
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
    time.sleep(0.05)
    assert order == ["first in"]  # the second load waits for the first
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    tuning.leave()
    assert sys.getswitchinterval() == pytest.approx(default)
