"""Concurrent registrations from separate processes never share a version number.

Every worker process opens the registry on a *fresh* database at the same moment (so
the first-open migration races too), then registers versions of one model. Spawning
eight Python processes takes several seconds on a small machine, so those tests are
marked slow; a threaded variant runs in the fast loop.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import RegistryError
from modelyard.registry import ArtifactInput, LocalArtifactStore, Registry, db

WORKERS = 8
VERSIONS_EACH = 3


def _register_many(url: str, artifact_root: str, barrier: Any, results: Any) -> None:
    """Worker: open the registry, register VERSIONS_EACH versions, report their numbers."""
    try:
        barrier.wait(timeout=120)
        store = LocalArtifactStore(Path(artifact_root))
        with Registry.open(url=url, store=store) as registry:
            numbers = [
                registry.register_version(
                    "race",
                    artifacts={"model": ArtifactInput(f"{os.getpid()}-{i}".encode())},
                    spec={"worker": os.getpid()},
                    lineage={},
                    metrics={"i": i},
                    report={},
                    gates_passed=True,
                    actor=f"worker-{os.getpid()}",
                ).version
                for i in range(VERSIONS_EACH)
            ]
        results.put(("ok", numbers))
    except BaseException as exc:  # report every failure to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _race(url: str, artifact_root: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    workers = [
        context.Process(target=_register_many, args=(url, str(artifact_root), barrier, results))
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=180) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    errors = [detail for status, detail in outcomes if status == "error"]
    assert errors == []
    numbers = sorted(n for _, got in outcomes for n in got)
    total = WORKERS * VERSIONS_EACH
    assert numbers == list(range(1, total + 1))

    with Registry.open(url=url, store=LocalArtifactStore(artifact_root)) as registry:
        versions = registry.list_versions("race")
        assert [v.version for v in versions] == list(range(1, total + 1))
        assert registry.list_models()[0].latest_version == total
        registrations = registry.audit_log("race", limit=1000)
        assert sorted(e.to_version or 0 for e in registrations) == list(range(1, total + 1))
        for version in versions:  # each version kept its own artifact
            data = registry.read_artifact(version, "model").decode()
            assert data.startswith(f"{version.spec['worker']}-")


@pytest.mark.slow
def test_concurrent_registrations_on_sqlite(tmp_path: Path) -> None:
    _race(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")


@pytest.mark.e2e
@pytest.mark.slow
def test_concurrent_registrations_on_postgres(fresh_postgres_url: str, tmp_path: Path) -> None:
    _race(fresh_postgres_url, tmp_path / "artifacts")


def test_concurrent_registrations_from_threads_share_one_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry.open(url=url, store=LocalArtifactStore(tmp_path / "artifacts")) as registry:

        def register(i: int) -> int:
            return registry.register_version(
                "race",
                artifacts={"model": ArtifactInput(str(i).encode())},
                spec={},
                lineage={},
                metrics={},
                report={},
                gates_passed=True,
                actor=f"thread-{i}",
            ).version

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            numbers = sorted(pool.map(register, range(WORKERS * VERSIONS_EACH)))
        assert numbers == list(range(1, WORKERS * VERSIONS_EACH + 1))


def test_readers_are_not_blocked_and_writers_wait_for_a_held_write_lock(tmp_path: Path) -> None:
    database = tmp_path / "registry.db"
    url = f"sqlite:///{database}"
    store = LocalArtifactStore(tmp_path / "artifacts")
    with Registry.open(url=url, store=store) as registry:
        first = registry.register_version(
            "locked",
            artifacts={},
            spec={},
            lineage={},
            metrics={},
            report={},
            gates_passed=True,
            actor="ana",
        )
        other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert registry.get_version("locked") == first  # WAL: reads go on
            release = threading.Timer(0.5, other.execute, args=("COMMIT",))
            release.start()
            started = time.monotonic()
            second = registry.register_version(
                "locked",
                artifacts={},
                spec={},
                lineage={},
                metrics={},
                report={},
                gates_passed=True,
                actor="bob",
            )
            assert time.monotonic() - started >= 0.4  # it waited for the lock, then wrote
            assert second.version == 2
            release.join()
        finally:
            other.close()


def test_a_write_that_stays_locked_out_fails_cleanly_and_leaves_no_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short waits so that giving up takes a second, not the default half-minute.
    monkeypatch.setattr(db, "BUSY_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(db, "WRITE_RETRY_SECONDS", 0.5)
    database = tmp_path / "registry.db"
    with Registry.open(
        url=f"sqlite:///{database}", store=LocalArtifactStore(tmp_path / "artifacts")
    ) as registry:

        def register() -> int:
            return registry.register_version(
                "locked",
                artifacts={"model": ArtifactInput(b"m")},
                spec={},
                lineage={},
                metrics={},
                report={},
                gates_passed=True,
                actor="ana",
            ).version

        assert register() == 1
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(
                RegistryError,
                match=r"stayed busy for \d+ s .*database is "
                r"locked.*long transaction",
            ):
                register()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert [v.version for v in registry.list_versions("locked")] == [1]
        assert register() == 2
