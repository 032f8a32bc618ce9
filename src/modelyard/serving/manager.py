"""Which version of each served model answers requests, and how it is swapped.

A :class:`ModelManager` keeps one :class:`ServedModel` slot per model name. Each slot
follows a reference (``house-prices@production``, ``churn:3``, ``churn:latest``) and
holds the :class:`LoadedModel` answering requests: the checksum-verified pipeline (or
ONNX graph) behind a :class:`~modelyard.types.Runtime`, its
:class:`~modelyard.contract.InputContract` and its
:class:`~modelyard.serving.batching.MicroBatcher`.

A version is loaded and warmed up (it predicts a few of its own evaluation rows) in a
worker thread, off the request path; only then does it replace the slot's current
version, in one assignment. A request holds on to the :class:`LoadedModel` it picked
(``acquire``/``release``), so it finishes on that version; the replaced version's
batcher is closed once its last request is done. A version that fails to load (an
artifact whose checksum does not match, say) is refused: the slot keeps serving what it
had, and the error is shown by :meth:`ModelManager.describe`.

Followed references are re-resolved every ``poll_seconds`` (blocking registry calls run
in a thread), and on demand by :meth:`ModelManager.reload`.

Process-wide tuning (garbage-collector freezing, the GIL switch interval) happens only
when the config asks for it, as ``modelyard serve`` does (:mod:`modelyard.serving.process`);
a retired version is released once its last request is done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import (
    IntegrityError,
    MissingExtraError,
    ModelNotFoundError,
    ModelyardError,
)
from modelyard.registry.refs import ModelRef
from modelyard.runtime.select import RuntimePreference, select_runtime
from modelyard.serving.config import ServeConfig, served_ref
from modelyard.serving.process import TUNING
from modelyard.types import Columns, Runtime

if TYPE_CHECKING:
    from modelyard.contract import InputContract
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry
    from modelyard.serving.batching import Activity, MicroBatcher
    from modelyard.serving.metrics import ServingMetrics

__all__ = [
    "LoadedModel",
    "ModelManager",
    "RuntimePreference",
    "ServedModel",
    "SwapResult",
]

logger = logging.getLogger(__name__)

_DRAIN_SECONDS = 60.0


@dataclass(eq=False)
class LoadedModel:
    """One version, loaded and warmed up, with what answering a request needs."""

    version: ModelVersion
    input_spec: InputContract
    runtime: Runtime
    runtime_reason: str
    batcher: MicroBatcher
    classes: list[Any] | None
    loaded_at: datetime
    load_seconds: float
    cache: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    _idle: asyncio.Event | None = None

    @property
    def name(self) -> str:
        """The model name."""
        return self.version.name

    @property
    def number(self) -> int:
        """The version number."""
        return self.version.version

    @property
    def task(self) -> str:
        """``regression``, ``binary`` or ``multiclass``."""
        return str(self.version.spec.get("task", "regression"))

    @property
    def runtime_name(self) -> str:
        """``onnx`` or ``sklearn``."""
        return str(self.runtime.name)

    @property
    def parity(self) -> Any:
        """The runtime's recorded parity with the reference pipeline, if it has one."""
        return getattr(self.runtime, "parity", None)

    def acquire(self) -> None:
        """Mark a request as using this version (call in the event loop, no await between
        reading the slot's current version and this)."""
        self.in_flight += 1

    def release(self) -> None:
        """Mark a request as done with this version."""
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def retire(self, timeout: float = _DRAIN_SECONDS) -> None:
        """Wait for the requests still using this version, then close its batcher."""
        if self.in_flight > 0:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                logger.warning(
                    "%s: %d requests still running after %.0f s; closing it anyway",
                    self.version.ref,
                    self.in_flight,
                    timeout,
                )
        await self.batcher.aclose()


@dataclass(eq=False)
class ServedModel:
    """A model name this server answers for: the reference it follows and what it serves."""

    ref: ModelRef
    current: LoadedModel | None = None
    error: str | None = None
    error_at: datetime | None = None
    failed_version: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        """The model name."""
        return self.ref.name

    @property
    def follows(self) -> bool:
        """Whether the reference can move (an alias or ``latest``), so it is polled."""
        return self.ref.version is None


@dataclass(frozen=True)
class SwapResult:
    """What a reload did to one served model.

    ``status`` is ``unchanged``, ``swapped`` (now serving ``to_version``) or ``failed``
    (still serving ``from_version``; ``error`` says why, ``not_found`` whether the
    reference named no version at all).
    """

    model: str
    ref: str
    status: Literal["unchanged", "swapped", "failed"]
    from_version: int | None
    to_version: int | None
    error: str | None = None
    not_found: bool = False


class ModelManager:
    """Loads, warms up, serves and hot-swaps the versions of the served models.

    Args:
        config: what to serve and how.
        metrics: where load failures, served versions and batch sizes are counted.
        registry: an open registry to use; default: opened from ``config.settings`` on
            :meth:`start` and closed on :meth:`aclose`.
    """

    def __init__(
        self,
        config: ServeConfig,
        *,
        metrics: ServingMetrics,
        registry: Registry | None = None,
        activity: Activity | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.activity = activity
        self._registry = registry
        self._owns_registry = registry is None
        self._slots: dict[str, ServedModel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._initial: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        self._process = config.process_settings()
        self._tuned = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the registry, then load every served model and poll, in the background."""
        if self._registry is None:
            from modelyard.registry.registry import Registry

            self._registry = await asyncio.to_thread(Registry.open, self.config.settings)
        if not self._tuned:
            TUNING.enter(self._process)
            self._tuned = True
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2),
            thread_name_prefix="modelyard-predict",
            initializer=_limit_native_threads,
            initargs=(self.config.model_threads,),
        )
        for ref in self.config.served_refs():
            self._slots[ref.name] = ServedModel(ref=ref)
        self._initial = asyncio.create_task(self._initial_load(), name="modelyard-initial-load")
        if self.config.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll_forever(), name="modelyard-poll")

    async def wait_loaded(self) -> None:
        """Wait until the first load of every served model has been tried."""
        if self._initial is not None:
            await asyncio.shield(self._initial)

    async def aclose(self) -> None:
        """Stop polling, let running requests finish, close every batcher and the registry."""
        self._closed = True
        for task in (self._poller, self._initial):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for slot in self._slots.values():
            async with slot.lock:
                if slot.current is not None:
                    await slot.current.retire()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
        if self._registry is not None and self._owns_registry:
            self._registry.close()
        if self._tuned:
            TUNING.leave(self._process)
            self._tuned = False

    # -- what is served -------------------------------------------------------------

    def get(self, name: str) -> ServedModel | None:
        """The slot of model ``name``, or None if this server does not serve it."""
        return self._slots.get(name)

    @property
    def names(self) -> list[str]:
        """The served model names, in the order given (the first answers ``/invocations``)."""
        return list(self._slots)

    def not_ready(self) -> list[str]:
        """The served models that have no loaded version yet."""
        return [name for name, slot in self._slots.items() if slot.current is None]

    def describe(self) -> list[dict[str, Any]]:
        """One entry per served model: reference, version, runtime, parity, readiness, error."""
        entries = []
        for slot in self._slots.values():
            loaded = slot.current
            entries.append(
                {
                    "name": slot.name,
                    "ref": str(slot.ref),
                    "version": loaded.number if loaded else None,
                    "task": loaded.task if loaded else None,
                    "runtime": loaded.runtime_name if loaded else None,
                    "runtime_reason": loaded.runtime_reason if loaded else None,
                    "parity": _jsonable(loaded.parity) if loaded else None,
                    "ready": loaded is not None,
                    "loaded_at": loaded.loaded_at.isoformat() if loaded else None,
                    "error": slot.error,
                    "error_at": slot.error_at.isoformat() if slot.error_at else None,
                }
            )
        return entries

    # -- loading and swapping -------------------------------------------------------

    async def reload(self) -> list[SwapResult]:
        """Re-resolve every served reference now; load and swap in what changed.

        Versions that failed to load before are tried again.
        """
        return list(
            await asyncio.gather(
                *(self._refresh(slot, retry_failed=True) for slot in list(self._slots.values()))
            )
        )

    async def load(self, name: str, ref_text: str) -> SwapResult:
        """Serve ``ref_text`` (e.g. ``house-prices:3``) for model ``name`` from now on.

        The slot follows the new reference only if its version loads; otherwise it keeps
        the reference and version it had. A model not served yet gets a new slot.

        Raises:
            ModelyardError: ``ref_text`` is not a reference to model ``name``.
        """
        ref = served_ref(ref_text)
        if ref.name != name:
            raise ModelyardError(
                f"reference {ref_text!r} names model {ref.name!r}, not {name!r}; "
                f"give e.g. {{'ref': '{name}:3'}}"
            )
        slot = self._slots.get(name)
        trial = ServedModel(ref=ref) if slot is None else slot
        result = await self._refresh(trial, retry_failed=True, ref=ref)
        if slot is None and result.status != "failed":
            self._slots[name] = trial
        return result

    async def _initial_load(self) -> None:
        results = await asyncio.gather(
            *(self._refresh(slot, retry_failed=True) for slot in list(self._slots.values())),
            return_exceptions=True,
        )
        for slot, result in zip(list(self._slots.values()), results, strict=False):
            if isinstance(result, Exception):
                logger.error("loading %s failed", slot.ref, exc_info=result)

    async def _poll_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.config.poll_seconds)
            for slot in list(self._slots.values()):
                if slot.follows or slot.current is None:
                    try:
                        await self._refresh(slot, retry_failed=False)
                    except Exception:  # keep polling whatever happens to one model
                        logger.exception("polling %s failed", slot.ref)

    async def _refresh(
        self, slot: ServedModel, *, retry_failed: bool, ref: ModelRef | None = None
    ) -> SwapResult:
        target = ref or slot.ref
        async with slot.lock:
            before = slot.current.number if slot.current else None
            registry = self._require_registry()
            try:
                version = await asyncio.to_thread(registry.get_version, target)
            except Exception as exc:  # the registry unreachable, say: keep what is served
                return self._failed(slot, target, before, None, exc, resolving=True)
            if slot.current is not None and version.version == before:
                if ref is not None:
                    slot.ref = ref
                slot.error = slot.error_at = slot.failed_version = None
                return SwapResult(slot.name, str(target), "unchanged", before, before)
            if not retry_failed and version.version == slot.failed_version:
                return SwapResult(slot.name, str(target), "failed", before, None, slot.error)
            try:
                loaded = await self.load_version(version)
            except Exception as exc:  # any failure to load must leave the old version serving
                return self._failed(slot, target, before, version.version, exc, resolving=False)
            old = slot.current
            slot.current = loaded
            if ref is not None:
                slot.ref = ref
            slot.error = slot.error_at = slot.failed_version = None
            self.metrics.set_served(loaded.name, loaded.number, loaded.runtime_name)
            TUNING.settle(self._process)
            if old is not None:
                self.metrics.set_retired(old.name, old.number, old.runtime_name)
                self._background(self._retire(old))
                del old  # the retiring task holds the last reference
            logger.info(
                "%s: now serving %s (was %s), loaded in %.2f s",
                target,
                version.ref,
                f"{slot.name}:{before}" if before else "nothing",
                loaded.load_seconds,
            )
            return SwapResult(slot.name, str(target), "swapped", before, loaded.number)

    async def _retire(self, old: LoadedModel) -> None:
        """Let ``old`` finish its requests, close it, then release what it held."""
        await old.retire()
        del old
        TUNING.released(self._process)

    def _failed(
        self,
        slot: ServedModel,
        target: ModelRef,
        before: int | None,
        version: int | None,
        exc: BaseException,
        *,
        resolving: bool,
    ) -> SwapResult:
        if resolving:
            message = f"cannot resolve {target}: {exc}"
        else:
            message = f"refused {slot.name}:{version} ({target}): {exc}"
        keeps = f"still serving {slot.name}:{before}" if before else "nothing served yet"
        message = f"{message}; {keeps}"
        public = redact(message)  # shown on /v1/models, /readyz and 503s: no paths
        changed = public != slot.error
        slot.error = public
        slot.error_at = datetime.now(UTC)
        if version is not None:
            slot.failed_version = version
        if changed:  # a polled alias that keeps failing is logged and counted once
            self.metrics.count_error(slot.name, "load")
            if isinstance(exc, ModelyardError) and not isinstance(exc, MissingExtraError):
                logger.error("%s", message)
            else:
                logger.error("%s", message, exc_info=exc)
        return SwapResult(
            slot.name,
            str(target),
            "failed",
            before,
            version,
            public,
            not_found=isinstance(exc, ModelNotFoundError),
        )

    async def load_version(
        self,
        version: ModelVersion,
        *,
        executor: concurrent.futures.Executor | None = None,
        inline: bool = True,
    ) -> LoadedModel:
        """Load, verify and warm up ``version`` outside any slot (routing arms use it).

        Args:
            executor: the threads its runtime calls run on (default: the manager's).
            inline: whether brief calls may run on the event loop's thread; a shadow
                arm says no, so a stalled candidate can never hold up the loop.
        """
        from modelyard.serving.batching import MicroBatcher

        started = time.perf_counter()
        input_spec, runtime, reason, warm_rows = await asyncio.to_thread(self._build, version)
        classes = None
        if warm_rows is not None:
            # on a runtime thread, so its native thread pools are set up as serving uses them
            output = await asyncio.get_running_loop().run_in_executor(
                self._executor, runtime.predict, *warm_rows
            )
            classes = list(output.classes) if output.classes is not None else None
        batcher = MicroBatcher(
            runtime,
            max_batch_rows=self.config.max_batch_rows,
            max_wait_ms=self.config.max_batch_wait_ms,
            enabled=self.config.batching,
            executor=executor or self._executor,
            on_batch=self.metrics.batch_observer(version.name),
            activity=self.activity if inline else None,
        )
        return LoadedModel(
            version=version,
            input_spec=input_spec,
            runtime=runtime,
            runtime_reason=reason,
            batcher=batcher,
            classes=classes,
            loaded_at=datetime.now(UTC),
            load_seconds=time.perf_counter() - started,
        )

    def _build(
        self, version: ModelVersion
    ) -> tuple[InputContract, Runtime, str, tuple[Columns, int] | None]:
        """Blocking: the input spec and runtime of ``version``, and rows to warm it up with."""
        from modelyard.contract import InputContract

        input_spec = InputContract.from_version(
            version,
            max_rows=self.config.max_rows_per_request,
            max_columns=self.config.max_columns_per_request,
            max_text_length=self.config.max_text_length,
        )
        registry = self._require_registry()
        # Every artifact of the version is checked, not just those the chosen runtime
        # reads: a version whose pipeline was altered is not served by its ONNX graph
        # either (the two must stay the pair that parity was measured on).
        problems = registry.verify_artifacts(version)
        if problems:
            raise IntegrityError(
                f"{version.ref} has artifacts that do not match the registry: "
                + "; ".join(problems)
            )
        with TUNING.loading():
            runtime, reason = select_runtime(registry, version, self.config.runtime)
            warm_rows = self._warm_up_rows(registry, version, input_spec)
        return input_spec, runtime, reason, warm_rows

    def _warm_up_rows(
        self, registry: Registry, version: ModelVersion, input_spec: InputContract
    ) -> tuple[Columns, int] | None:
        """A few of the version's evaluation rows, decoded as a client's request would be."""
        import orjson

        from modelyard.contract import decode_records
        from modelyard.errors import DataValidationError
        from modelyard.registry.readers import evaluation_frame

        rows = self.config.warmup_rows
        if rows == 0:
            return None
        feature_order = list(version.lineage_record.features.feature_order)
        frame = evaluation_frame(registry, version).head(rows)[feature_order]
        # JSON round trip: the rows reach the model exactly as a client's would.
        records = orjson.loads(frame.to_json(orient="records", date_format="iso"))
        try:
            return decode_records(records, input_spec)
        except DataValidationError as exc:
            logger.warning("%s: skipped warm-up, its own rows did not decode: %s", version.ref, exc)
            return None

    @property
    def registry(self) -> Registry:
        """The open registry (after :meth:`start`)."""
        return self._require_registry()

    def _require_registry(self) -> Registry:
        if self._registry is None:
            raise ModelyardError("the model manager is not started: call start() first")
        return self._registry

    def _background(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"():;,/]+/)+[^\s'\"():;,]*")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s;,)'\"]+", re.IGNORECASE)
_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


def redact(message: str) -> str:
    """``message`` without what a client must not see: file paths (of the artifact
    store, say), URLs (the registry's, with its credentials) and artifact digests. The
    whole message goes to the server log."""
    message = _URL.sub("<url>", message)
    message = _PATH.sub("<path>", message)
    return _DIGEST.sub("<digest>", message)


def _limit_native_threads(threads: int) -> None:
    """Cap the OpenMP/BLAS threads of the calling executor thread (OpenMP's limit is per
    thread, so each runtime thread sets its own when it starts)."""
    if threads <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it; without it, keep the defaults
        return
    threadpool_limits(limits=threads)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
