"""The prediction log writer: what online serving calls after every prediction.

:meth:`PredictionLog.log` only appends the request to an in-memory buffer under a lock
and returns: it never waits on disk or database and never raises into the request (a
failure is logged and counted). A background thread turns the buffer into Parquet
segments (see :mod:`modelyard.predlog.store`) one per model, version and UTC day per
flush, and records them in the index. A flush starts as soon as the oldest waiting row
has waited ``flush_seconds``, or ``flush_rows`` rows or ``flush_bytes`` bytes wait,
whichever comes first.

Memory is bounded in rows and bytes: when ``max_buffer_rows`` rows or
``max_buffer_bytes`` bytes are held (waiting or being written), a new request's rows are
dropped, not queued, and counted in :attr:`PredictionLog.dropped_rows` (a warning is
logged once per flush), so a slow disk or database never makes the request path wait or
the process grow without bound. Texts longer than ``max_text_chars`` are stored cut to
that length followed by :data:`~modelyard.predlog.tables.TRUNCATED` (the prediction
itself used the whole text).

Crash bound: a segment appears whole or not at all (written under a temporary name,
synced, renamed), so a hard crash (SIGKILL, power loss) never leaves a corrupt file
visible. It loses only the rows not yet in a renamed segment. Because the flush deadline
counts from the oldest waiting row (not from the end of the previous flush) and a
segment holds at most about ``flush_bytes`` bytes, a row logged more than
``flush_seconds`` plus the time to write one such segment before the crash is on disk;
in rows the loss is at most about ``2 × flush_rows`` and never more than
``max_buffer_rows``. Rows dropped before the crash are already counted. A write cut
short leaves a hidden ``.tmp`` file; the next :meth:`PredictionLog.open` removes those
older than :data:`~modelyard.predlog.store.ORPHAN_AGE_SECONDS`. A crash between a
segment's rename and its index record leaves a file the index-based readers do not see
until :func:`modelyard.predlog.reader.repair_index` records it.

Shutdown: the flushing thread is a daemon thread and no ``atexit`` hook is installed. The
owner (the server, on graceful shutdown) must call :meth:`PredictionLog.close`, which
flushes what is buffered and stops the thread; rows still buffered when a process exits
without ``close`` are lost.

Feedback (:meth:`PredictionLog.record_feedback`) is written synchronously, one segment per
call, so when it returns the labels are on disk and indexed: send labels in batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from modelyard.errors import ModelyardError
from modelyard.predlog import store
from modelyard.predlog.feedback import FeedbackItem, check_feedback, write_feedback
from modelyard.predlog.tables import (
    LoggedRequest,
    build_prediction_table,
    problem_of,
    request_bytes,
)
from modelyard.registry import db
from modelyard.registry.refs import check_model_name
from modelyard.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from modelyard.types import Columns, RuntimeOutput

__all__ = ["FeedbackItem", "PredictionLog", "PredictionLogStats"]  # FeedbackItem: re-export

logger = logging.getLogger(__name__)

_GroupKey = tuple[str, int, date]
#: Slept after converting each text column of a flush, so the request path gets the
#: interpreter lock when it asks (see modelyard.predlog.tables._block_arrays); a flush of
#: a wide table takes longer by this times its text columns.
_CONVERT_PAUSE = 0.0005


@dataclass(frozen=True)
class PredictionLogStats:
    """Counters of a prediction log, for metrics (rows unless said otherwise)."""

    pending_rows: int
    written_rows: int
    written_segments: int
    dropped_rows: int
    failed_rows: int
    unindexed_segments: int


class PredictionLog:
    """Buffers predicted rows and writes them as Parquet segments in the background.

    Open it with :meth:`open`; call :meth:`close` on shutdown (it flushes). Safe to use
    from many threads. The arrays given to :meth:`log` are kept until the next flush
    and must not be changed by the caller afterwards.

    Example:
        >>> import tempfile
        >>> from datetime import UTC, datetime
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from modelyard.types import RuntimeOutput
        >>> settings = Settings(home=Path(tempfile.mkdtemp()))
        >>> with PredictionLog.open(settings) as predlog:
        ...     predlog.log(model="house-prices", version=1, request_id="r1",
        ...                 received_at=datetime.now(UTC), columns={"area": np.array([80.0])},
        ...                 rows=1, output=RuntimeOutput(values=np.array([250_000.0])),
        ...                 latency_ms=3.5, endpoint="predict")
        >>> from modelyard.predlog import read_predictions
        >>> read_predictions(settings, "house-prices")["prediction"].tolist()
        [250000.0]
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        max_buffer_rows: int = 200_000,
        flush_bytes: int = 8 << 20,
        max_buffer_bytes: int = 256 << 20,
        max_text_chars: int = 1024,
    ) -> None:
        for name, value in (
            ("flush_rows", flush_rows),
            ("flush_seconds", flush_seconds),
            ("max_buffer_rows", max_buffer_rows),
            ("flush_bytes", flush_bytes),
            ("max_buffer_bytes", max_buffer_bytes),
            ("max_text_chars", max_text_chars),
        ):
            _check_positive(name, value)
        self._home = store.home_of(settings)
        self._engine = engine
        self._flush_rows = flush_rows
        self._flush_seconds = float(flush_seconds)
        self._max_buffer_rows = max_buffer_rows
        self._flush_bytes = flush_bytes
        self._max_buffer_bytes = max_buffer_bytes
        self._max_text_chars = max_text_chars
        self._lock = threading.Lock()  # guards the buffer and the counters
        self._flush_lock = threading.Lock()  # one flush at a time
        self._close_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._buffer: list[LoggedRequest] = []
        self._flushing: list[LoggedRequest] = []  # taken by the flush in progress
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._oldest: float | None = None  # time.monotonic() of the oldest waiting row
        self._in_flight_rows = 0
        self._in_flight_bytes = 0
        self._written_rows = 0
        self._written_segments = 0
        self._dropped_rows = 0
        self._dropped_reported = 0
        self._failed_rows = 0
        self._unindexed: list[store.SegmentRecord] = []
        self._accepting = True
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="modelyard-predlog-flush", daemon=True
        )
        self._thread.start()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        max_buffer_rows: int = 200_000,
        flush_bytes: int = 8 << 20,
        max_buffer_bytes: int = 256 << 20,
        max_text_chars: int = 1024,
    ) -> PredictionLog:
        """Open the log under ``settings.home``, indexed in the registry database.

        Temporary files left by a write that a crash cut short are removed first.

        Args:
            settings: where the home folder and the metadata database are.
            flush_rows: write as soon as this many rows wait.
            flush_seconds: write a row at most this long after it was logged.
            max_buffer_rows: rows held in memory beyond which new rows are dropped.
            flush_bytes: write as soon as about this many bytes of rows wait.
            max_buffer_bytes: bytes held in memory beyond which new rows are dropped.
            max_text_chars: texts longer than this are stored cut, with a marker.

        Raises:
            RegistryError: the database cannot be reached, or has a newer schema.
            ModelyardError: a setting is out of range, or the database URL is malformed.
        """
        removed = store.remove_orphans(store.home_of(settings))
        if removed:
            logger.warning(
                "removed %d temporary prediction log files left by an interrupted write",
                removed,
            )
        engine = store.open_index(settings)
        try:
            return cls(
                settings,
                engine,
                flush_rows=flush_rows,
                flush_seconds=flush_seconds,
                max_buffer_rows=max_buffer_rows,
                flush_bytes=flush_bytes,
                max_buffer_bytes=max_buffer_bytes,
                max_text_chars=max_text_chars,
            )
        except BaseException:
            engine.dispose()
            raise

    # -- the request path ------------------------------------------------------------

    def log(
        self,
        *,
        model: str,
        version: int,
        request_id: str,
        received_at: datetime,
        columns: Columns,
        rows: int,
        output: RuntimeOutput,
        latency_ms: float,
        endpoint: str,
        row_numbers: np.ndarray | None = None,
        request_ids: np.ndarray | None = None,
    ) -> None:
        """Queue a request's predicted rows; returns at once and never raises.

        A naive ``received_at`` is taken to be UTC. The rows are dropped (and counted in
        :attr:`dropped_rows`) when the buffer is full or the log is closed.
        ``row_numbers`` (one integer per row) replaces the rows' positions in the
        request: a batch job logs each row's input row number. ``request_ids`` (one id
        per row) logs the rows of several requests in one call (a stream consumer's
        batch): each row is logged under its own request's id, and ``row_numbers``
        then gives each row's position in its request.
        """
        try:
            if rows <= 0:
                return
            request = LoggedRequest(
                model=model,
                version=version,
                request_id=request_id,
                received_at=store.as_utc(received_at),
                columns=columns,
                rows=rows,
                output=output,
                latency_ms=latency_ms,
                endpoint=endpoint,
                row_numbers=row_numbers,
                request_ids=request_ids,
            )
            size = request_bytes(request)
            with self._lock:
                held = self._buffered_rows + self._in_flight_rows
                held_bytes = self._buffered_bytes + self._in_flight_bytes
                if (
                    not self._accepting
                    or held + rows > self._max_buffer_rows
                    or held_bytes + size > self._max_buffer_bytes
                ):
                    self._dropped_rows += rows
                    return
                if self._oldest is None:
                    self._oldest = time.monotonic()
                self._buffer.append(request)
                self._buffered_rows += rows
                self._buffered_bytes += size
                full = (
                    self._buffered_rows >= self._flush_rows
                    or self._buffered_bytes >= self._flush_bytes
                )
            if full:
                self._wake.set()
        except Exception:
            logger.exception("could not log request %r of %s:%s", request_id, model, version)
            with self._lock:
                self._failed_rows += rows if isinstance(rows, int) and rows > 0 else 0

    # -- flushing --------------------------------------------------------------------

    def flush(self) -> None:
        """Write every row logged so far, then return; waits for a flush in progress.

        Never raises: rows that cannot be written are logged and counted in
        :meth:`stats` (``failed_rows``); segments written but not yet indexed are
        indexed again at the next flush.
        """
        with self._flush_lock:
            with self._lock:
                requests, self._buffer = self._buffer, []
                self._flushing = requests
                taken, self._buffered_rows = self._buffered_rows, 0
                taken_bytes, self._buffered_bytes = self._buffered_bytes, 0
                self._oldest = None
                self._in_flight_rows += taken
                self._in_flight_bytes += taken_bytes
                newly_dropped = self._dropped_rows - self._dropped_reported
                self._dropped_reported = self._dropped_rows
            if newly_dropped:
                logger.warning(
                    "prediction log dropped %d rows: more than max_buffer_rows=%d rows were "
                    "waiting to be written; raise it, or flush more often (flush_rows)",
                    newly_dropped,
                    self._max_buffer_rows,
                )
            try:
                self._write(requests)
                self._index_pending()
            except Exception:  # the writers catch their errors; this is a last resort
                logger.exception("prediction log flush failed")
            finally:
                with self._lock:
                    self._flushing = []
                    self._in_flight_rows -= taken
                    self._in_flight_bytes -= taken_bytes

    def _write(self, requests: list[LoggedRequest]) -> None:
        groups: dict[_GroupKey, list[LoggedRequest]] = {}
        for request in requests:
            key = (request.model, request.version, request.received_at.date())
            groups.setdefault(key, []).append(request)
        for key, group in groups.items():
            self._write_group(key, group)

    def _write_group(self, key: _GroupKey, requests: list[LoggedRequest]) -> None:
        model, version, day = key
        total = sum(request.rows for request in requests)
        try:
            check_model_name(model)
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise ModelyardError(f"version {version!r} is not a positive integer")
            good = []
            for request in requests:
                problem = problem_of(request)
                if problem is None:
                    good.append(request)
                    continue
                logger.warning(
                    "prediction log skips request %r of %s:%s: %s",
                    request.request_id,
                    model,
                    version,
                    problem,
                )
                self._count_failed(request.rows)
            if not good:
                return
            table = build_prediction_table(
                good, max_text_chars=self._max_text_chars, pause=_CONVERT_PAUSE
            )
            folder = store.segment_folder(self._home, "predictions", model, version, day)
            path, size = store.write_segment(table, folder)
        except Exception:
            logger.exception(
                "could not write %d logged rows of %s:%s; they are lost", total, model, version
            )
            self._count_failed(total)
            return
        record = store.SegmentRecord(
            kind="predictions",
            model=model,
            version=version,
            path=path.relative_to(self._home).as_posix(),
            rows=table.num_rows,
            min_received_at=min(request.received_at for request in good),
            max_received_at=max(request.received_at for request in good),
            created_at=db.utcnow(),
            bytes=size,
        )
        with self._lock:
            self._written_rows += table.num_rows
            self._written_segments += 1
            self._unindexed.append(record)

    def _index_pending(self) -> None:
        with self._lock:
            pending = list(self._unindexed)
        if not pending:
            return
        try:
            store.insert_segments(self._engine, pending)
        except Exception:
            logger.exception(
                "could not index %d prediction log segments (the files are written); "
                "retrying at the next flush",
                len(pending),
            )
            return
        with self._lock:
            del self._unindexed[: len(pending)]

    def _count_failed(self, rows: int) -> None:
        with self._lock:
            self._failed_rows += rows

    def _run(self) -> None:
        # The deadline counts from the oldest waiting row, so a row is written at most
        # flush_seconds after it was logged, however long the previous flush took (the
        # old loop waited flush_seconds after each flush ended, which let rows wait for
        # flush_seconds plus a whole write). With nothing waiting, it still wakes every
        # flush_seconds to retry segments not yet indexed.
        while True:
            with self._lock:
                oldest = self._oldest
            timeout = self._flush_seconds
            if oldest is not None:
                timeout = max(0.0, oldest + self._flush_seconds - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._lock:
                due = self._oldest is not None and (
                    time.monotonic() >= self._oldest + self._flush_seconds
                    or self._buffered_rows >= self._flush_rows
                    or self._buffered_bytes >= self._flush_bytes
                )
            if due or stopping or self._unindexed:
                self.flush()
            if stopping:
                return

    # -- feedback --------------------------------------------------------------------

    def record_feedback(
        self, model: str, items: Sequence[FeedbackItem], *, received_at: datetime | None = None
    ) -> int:
        """Store true labels of logged rows; returns how many were stored.

        Written at once as one segment and indexed before returning. When an item names
        the same (request_id, row) twice, the last one is kept; across calls, the latest
        received wins when read back. Labels are stored as text (``label``) and, when they
        are numbers or booleans, as ``label_float`` too.

        Args:
            model: the model the predictions were made by.
            items: the labels.
            received_at: when they arrived (default: now); a naive value is UTC.

        Raises:
            DataValidationError: an item has an empty request id, a negative row, or a
                label that is missing, NaN or not a scalar; nothing is stored then.
            ModelyardError: the model name is invalid, or the log is closed.
            RegistryError: the index could not be written.
        """
        if self._closed:
            raise ModelyardError("the prediction log is closed; open a new one to record feedback")
        return write_feedback(self._home, self._engine, model, items, received_at=received_at)

    def unknown_feedback(self, model: str, items: Sequence[FeedbackItem]) -> list[int]:
        """The positions of ``items`` whose (request_id, row) this log does not hold for
        ``model``: neither waiting in memory nor in an indexed segment.

        Raises:
            DataValidationError: an item is invalid (as :meth:`record_feedback` says).
            RegistryError: the index cannot be read.
        """
        from modelyard.predlog.ids import find_logged

        check_feedback(model, items)
        wanted = {(item.request_id, item.row) for item in items}
        rows_by_id: dict[str, set[int]] = {}
        for request_id, row in wanted:
            rows_by_id.setdefault(request_id, set()).add(row)
        with self._lock:
            held = [*self._buffer, *self._flushing]
        found: set[tuple[str, int]] = set()
        for request in held:  # one dict look-up per waiting request
            if request.model != model:
                continue
            if request.request_ids is not None:  # several requests' rows: pair by pair
                numbers = request.row_numbers
                rows = numbers.tolist() if numbers is not None else range(request.rows)
                pairs = zip(request.request_ids.tolist(), rows, strict=True)
                found.update(pair for pair in pairs if pair in wanted)
                continue
            asked = rows_by_id.get(request.request_id)
            if asked is None:
                continue
            numbers = request.row_numbers
            logged = set(numbers.tolist()) if numbers is not None else range(request.rows)
            found.update((request.request_id, row) for row in asked if row in logged)
        rest = wanted - found
        if rest:
            found |= find_logged(self._home, self._engine, model, rest)
        return [
            index for index, item in enumerate(items) if (item.request_id, item.row) not in found
        ]

    # -- state -----------------------------------------------------------------------

    @property
    def dropped_rows(self) -> int:
        """Rows dropped because the buffer was full (or the log closed)."""
        with self._lock:
            return self._dropped_rows

    def stats(self) -> PredictionLogStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return PredictionLogStats(
                pending_rows=self._buffered_rows + self._in_flight_rows,
                written_rows=self._written_rows,
                written_segments=self._written_segments,
                dropped_rows=self._dropped_rows,
                failed_rows=self._failed_rows,
                unindexed_segments=len(self._unindexed),
            )

    def close(self) -> None:
        """Flush what is buffered, stop the flushing thread, release the database.

        Idempotent. Rows logged after ``close`` are dropped and counted.
        """
        with self._close_lock:
            if self._closed:
                return
            with self._lock:
                self._accepting = False
            self._stopping.set()
            self._wake.set()
            self._thread.join()
            self.flush()  # anything logged between the thread's last flush and now
            with self._lock:
                left = len(self._unindexed)
            if left:
                logger.error(
                    "closing the prediction log with %d segments written but not indexed; "
                    "run modelyard.predlog.repair_index to index them",
                    left,
                )
            self._engine.dispose()
            self._closed = True

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ModelyardError(
            f"PredictionLog {name} must be a positive number, got {value!r}; "
            "check the prediction log settings"
        )
