"""Helpers of the streaming tests: models, streams and consumers to start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from modelyard.settings import Settings
from modelyard.streaming import StreamConfig, StreamConsumer
from modelyard.streaming.transport import Transport


def house_row(index: int) -> dict[str, Any]:
    """A valid ``houses`` row that varies with ``index``."""
    towns = ("alpha", "beta", "gamma", "delta")
    return {"size": 40.0 + (index * 7.3) % 200, "rooms": 1 + index % 6, "town": towns[index % 4]}


# -- streams ----------------------------------------------------------------------------


def push(client: redis.Redis, stream: str, messages: list[dict[str, Any] | bytes]) -> None:
    """Append each message (a JSON document, or raw bytes) as an entry's ``data`` field."""
    with client.pipeline(transaction=False) as pipe:
        for message in messages:
            data = message if isinstance(message, bytes) else orjson.dumps(message)
            pipe.xadd(stream, {"data": data})
        pipe.execute()


def read_all(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """Every document of a stream, in order."""
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class RunningConsumer:
    """A consumer on its own event loop in a thread."""

    consumer: StreamConsumer
    thread: threading.Thread
    result: dict[str, Any]

    def stop(self) -> Any:
        self.consumer.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the consumer did not stop"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["stats"]


def start_consumer(
    settings: Settings, broker: str, *, transport: Transport | None = None, **options: Any
) -> RunningConsumer:
    """Run a consumer in a thread (on ``transport``, default: the broker's); returns once
    it reads messages."""
    options.setdefault("in_stream", "in")
    options.setdefault("out_stream", "out")
    options.setdefault("runtime", "sklearn")  # the reference pipeline: exact comparisons
    options.setdefault("poll_seconds", 0)
    options.setdefault("consumer", "c1")
    config = StreamConfig(settings=settings, broker=broker, **options)
    consumer = StreamConsumer(config, transport=transport)
    result: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        task = asyncio.create_task(consumer.run())
        waiter = asyncio.create_task(consumer.wait_ready())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        ready.set()
        result["stats"] = await task

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the test by stop()
            result["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="stream-consumer", daemon=True)
    thread.start()
    assert ready.wait(timeout=120), "the consumer did not start"
    if "error" in result:
        raise result["error"]
    return RunningConsumer(consumer, thread, result)


def consumer_command(
    settings: Settings, broker: str, *args: str, consumer: str = "c1"
) -> list[str]:
    """The ``modelyard stream houses ...`` command line of a consumer subprocess."""
    return [
        sys.executable,
        "-m",
        "modelyard",
        "--home",
        str(settings.home),
        "stream",
        "houses",
        "--broker",
        broker,
        "--in",
        "in",
        "--out",
        "out",
        "--consumer",
        consumer,
        "--runtime",
        "sklearn",
        "--log-level",
        "warning",
        *args,
    ]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MODELYARD_REGISTRY_URL", None)
    env.pop("MODELYARD_EVENTS_URL", None)
    return env


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL ``process`` (if it still runs) and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[int, str]:
    """Send ``signum`` and wait for the exit; returns the exit code and stderr."""
    if process.poll() is None:
        process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stacks = dump_stacks(process.pid)
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(
            f"the consumer did not stop: {stderr[-3000:]}\nwhere it was:\n{stacks}"
        ) from None
    return process.returncode, stderr


def dump_stacks(pid: int) -> str:
    """Every thread's Python stack in process ``pid`` (py-spy, from the dev lock), so
    a hang says where it hangs."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "(py-spy is not installed)"
    found = subprocess.run(
        [str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
    )
    return (found.stdout + found.stderr)[-6000:]
