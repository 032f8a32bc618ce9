"""Where a job's chunks are scored: in the worker itself, or on a Dask cluster.

The worker that holds a job's lease always reads its input, commits each chunk and
writes the prediction log (:mod:`modelyard.batch.worker`); a backend only turns chunks
into :class:`~modelyard.batch.scoring.ChunkScore`, in input order:

- :class:`LocalBackend` scores each chunk on the worker's thread (the next chunk read
  and checked meanwhile on a helper thread);
- :class:`DaskBackend` sends chunks to a Dask cluster (``modelyard worker --backend
  dask [--address tcp://scheduler:8786]``; without an address, a local cluster bound to
  127.0.0.1). Each Dask worker builds its own :class:`~modelyard.batch.scoring.ChunkScorer`
  (the same contract, prediction engine and runtime choice, artifacts verified against
  their checksums) once per version and thread, and scores chunks with it. At most
  ``window`` chunks are out at a time, so memory stays bounded; results come back in
  input order, so commits and their compare-and-set cursor are unchanged.

Dask workers read the version's artifacts from the registry as any modelyard process
does: they need the same ``MODELYARD_HOME`` (a shared folder, e.g. NFS, for the
artifacts) and the same registry database (``MODELYARD_REGISTRY_URL``). The settings
of the submitting worker travel with each task.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modelyard._optional import require
from modelyard.batch.config import BatchSettings
from modelyard.batch.inputs import Chunk
from modelyard.batch.scoring import CheckedChunk, ChunkScore, ChunkScorer
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.batch.jobs import Job

__all__ = ["Backend", "DaskBackend", "LocalBackend", "open_backend"]


class Backend(Protocol):
    """Scores a job's chunks, yielding each chunk with its score in input order."""

    def score(
        self, chunks: Iterator[Chunk], scorer: ChunkScorer, job: Job, settings: Settings
    ) -> Generator[tuple[Chunk, ChunkScore]]:
        """Score ``chunks`` (``scorer`` is the worker's own, for local scoring)."""
        ...


class LocalBackend:
    """Scores the chunks of a job in a pipeline of three threads: a helper reads chunk
    ``n + 2`` and checks it against the contract, a second one predicts chunk ``n + 1``,
    while the caller commits and logs chunk ``n``.

    Why: ONNX Runtime (and scikit-learn's compiled predict) release the GIL, and so do
    most of the reading and checking (Arrow kernels), so on a machine with two cores the
    model call runs on one while the rest of the work (the commit's rows, the prediction
    log, the next chunk's checks) runs on the other, instead of after it. At most three
    chunks are held (one read, one predicted, one committed), so memory stays bounded
    whatever the file's size. A chunk's error (a file that turns unreadable, a
    chunk-wide contract problem, a failed model call) is raised when the caller asks for
    that chunk, after the chunks before it were committed, as when they are taken in
    turn; a job that stops waits for the read and the prediction in flight.

    Args:
        read_ahead: False reads, checks and scores each chunk in turn on the caller's
            thread.
    """

    def __init__(self, *, read_ahead: bool = True) -> None:
        self.read_ahead = read_ahead

    def score(
        self, chunks: Iterator[Chunk], scorer: ChunkScorer, job: Job, settings: Settings
    ) -> Generator[tuple[Chunk, ChunkScore]]:
        if not self.read_ahead:
            for chunk in chunks:
                yield chunk, scorer.score(chunk, request_id=job.id)
            return

        def read() -> CheckedChunk | None:
            chunk = next(chunks, None)
            return None if chunk is None else scorer.checked(chunk)

        def predict(checked: CheckedChunk) -> ChunkScore:
            return scorer.predict(checked, request_id=job.id)

        # The reader's one thread alone advances ``chunks``, the predictor's alone calls
        # ``scorer.predict`` (one chunk at a time: the scorer keeps the engine's log call
        # of the chunk it predicts); leaving the ``with`` block waits for both.
        tag = job.id[:8]
        with (
            ThreadPoolExecutor(1, thread_name_prefix=f"modelyard-read-{tag}") as reader,
            ThreadPoolExecutor(1, thread_name_prefix=f"modelyard-predict-{tag}") as predictor,
        ):
            checked = reader.submit(read).result()
            if checked is None:
                return
            reading = reader.submit(read)
            scoring = predictor.submit(predict, checked)
            while True:
                scored = scoring.result()
                try:
                    later = reading.result()
                except Exception:  # the next chunk's error, once this one is committed
                    yield checked.chunk, scored
                    raise
                if later is not None:  # predicted while ``checked`` is committed
                    reading = reader.submit(read)
                    scoring = predictor.submit(predict, later)
                yield checked.chunk, scored
                if later is None:
                    return
                checked = later


@dataclass(frozen=True)
class _Version:
    """What a Dask worker needs to build the job's scorer (sent with each task)."""

    settings: Settings
    model: str
    version: int
    chunk_rows: int
    runtime: str


_scorers: dict[tuple[_Version, int], ChunkScorer] = {}
_scorers_lock = threading.Lock()


def _scorer(spec: _Version) -> ChunkScorer:
    """This thread's scorer of ``spec`` (a scorer holds the engine's log call of its
    last chunk, so threads do not share one)."""
    from modelyard.registry.registry import Registry

    key = (spec, threading.get_ident())
    with _scorers_lock:
        found = _scorers.get(key)
    if found is not None:
        return found
    with Registry.open(spec.settings) as registry:
        version = registry.get_version(f"{spec.model}:{spec.version}")
        scorer = ChunkScorer(registry, version, chunk_rows=spec.chunk_rows, runtime=spec.runtime)
    with _scorers_lock:
        return _scorers.setdefault(key, scorer)


def score_chunk(spec: _Version, chunk: Chunk, request_id: str) -> ChunkScore:
    """Score one chunk on a Dask worker (the task :class:`DaskBackend` submits)."""
    return _scorer(spec).score(chunk, request_id=request_id)


class DaskBackend:
    """Scores chunks on a Dask cluster through ``client``, ``window`` chunks at a time.

    Args:
        client: a ``distributed.Client``.
        runtime: the runtime setting (``auto``, ``onnx``, ``sklearn``) the workers use.
        window: chunks sent ahead of the one being committed (default: two per Dask
            worker thread).
    """

    def __init__(self, client: Any, *, runtime: str = "auto", window: int | None = None) -> None:
        self.client = client
        self.runtime = runtime
        threads = sum(client.nthreads().values()) or 1
        self.window = window or 2 * threads

    def score(
        self, chunks: Iterator[Chunk], scorer: ChunkScorer, job: Job, settings: Settings
    ) -> Generator[tuple[Chunk, ChunkScore]]:
        spec = _Version(settings, job.model, job.version, job.chunk_rows, self.runtime)
        out: deque[tuple[Chunk, Any]] = deque()
        try:
            for chunk in chunks:
                task = self.client.submit(score_chunk, spec, chunk, job.id, pure=False)
                out.append((chunk, task))
                if len(out) >= self.window:
                    done, future = out.popleft()
                    yield done, future.result()
            while out:
                done, future = out.popleft()
                yield done, future.result()
        finally:  # cancelled, lease lost or failed: drop the chunks still out
            if out:
                self.client.cancel([future for _, future in out])


@contextmanager
def open_backend(batch: BatchSettings) -> Iterator[Backend]:
    """The backend ``batch`` names, open for the life of a worker.

    ``dask`` connects to ``MODELYARD_BATCH_DASK_ADDRESS``, or starts a local cluster of
    ``MODELYARD_BATCH_DASK_WORKERS`` processes bound to 127.0.0.1 (stopped at exit).

    Raises:
        MissingExtraError: ``distributed`` is not installed (``modelyard[dask]``).
    """
    if batch.batch_backend == "local":
        yield LocalBackend()
        return
    distributed = require("distributed", "dask")
    cluster = None
    if batch.batch_dask_address:
        client = distributed.Client(batch.batch_dask_address, set_as_default=False)
    else:
        cluster = distributed.LocalCluster(
            host="127.0.0.1",
            n_workers=batch.batch_dask_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = distributed.Client(cluster, set_as_default=False)
    try:
        yield DaskBackend(client, runtime=batch.batch_runtime)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
