"""The server's decode process: large request bodies parsed, checked and decoded outside
the serving process, so its interpreter lock is never held for them.

A JSON parser (orjson), pydantic and the input contract's decoding hold the interpreter
lock while they run, so even on a worker thread they stop the event loop: a body of a
million distinct object keys held ``/healthz`` for half a second. Every endpoint that
takes a JSON body hands one larger than :data:`~modelyard.serving.protocols.OFFLOAD_BYTES`
to one child process:

- the prediction endpoints (``/v1`` predict and ``/rank``, ``/invocations``, V2
  ``infer``) as a :class:`BodyDecoder` (a module-level function, the body's bytes and a
  few small arguments), which the engine runs through :meth:`DecodePool.decode`
  (:attr:`~modelyard.engine.PredictionEngine.off_loop`): the child parses the body,
  checks it against the version's contract and sends back the decoded blocks;
- feedback, rewards, clicks and admin loads through :meth:`DecodePool.run`: the child
  runs the endpoint's own check (:mod:`modelyard.serving.protocols._requests`: parse,
  pydantic validation, item limits) and sends back the checked body as plain values.

Either way an error is the very one the server would have raised itself for a small
body, and the serving process only copies bytes to a pipe and the result back.

- **One child**, started with ``spawn`` (a fresh interpreter: none of the server's
  threads, heap or sockets are copied) on the first large body, or as the server starts
  under ``modelyard serve`` (:meth:`DecodePool.start`); stopped with the app. Like any
  spawned child it runs the server's main script first (as ``__mp_main__``), so a
  script that builds the app and runs its server must do that under
  ``if __name__ == "__main__":``. It imports the body functions' modules, never FastAPI
  or the routes.
- **One body at a time**, queued in the server rather than in the child, so a child that
  dies (killed, out of memory) fails only the body it was handling: that request gets
  503 with ``Retry-After`` and the fault is logged with its traceback; the next large
  body starts a new child.
- **The contract** is pickled once per version in the server (its fields only; what it
  caches is worked out again in the child) and sent to a child once: the child keeps the
  last few by a token, and asks again for one it no longer holds (a new child, or one
  it let go).
- **What is unpickled:** the results are this server's own child's output, read from a
  pipe only the two processes hold, so unpickling them unpickles our own bytes. The
  client's body is never unpickled: the child only parses it as JSON or CSV text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard.engine import on_thread
from modelyard.errors import ServiceUnavailable
from modelyard.types import ColumnBlocks, Columns

if TYPE_CHECKING:
    from modelyard.contract import InputContract
    from modelyard.engine import Decoder

__all__ = ["BodyDecoder", "DecodePool", "Decoded"]

logger = logging.getLogger(__name__)

#: What a body decoding function returns: the columns, the row count, and whatever else
#: the protocol read from the body (V2: the outputs asked for, the request's id).
Decoded = tuple[Columns, int, Any]
#: Contracts kept on each side (one per served version; a swap adds one).
_KEEP = 8
_Result = TypeVar("_Result")


class BodyDecoder:
    """A request body's whole decoding as one picklable call:
    ``run(body, contract, *args)`` returns :data:`Decoded`.

    ``run`` must be a module-level function (it is pickled by name) and ``args`` small
    picklable values. Called with a contract, a ``BodyDecoder`` decodes in this process
    (it is a :data:`~modelyard.engine.Decoder`); :meth:`DecodePool.decode` runs it in
    the decode process. ``extra`` holds the third item of the last result.
    """

    __slots__ = ("args", "body", "extra", "run")

    def __init__(self, run: Callable[..., Decoded], body: bytes, *args: Any) -> None:
        self.run = run
        self.body = body
        self.args = args
        self.extra: Any = None

    def __call__(self, contract: InputContract) -> tuple[Columns, int]:
        columns, rows, self.extra = self.run(self.body, contract, *self.args)
        return columns, rows


class DecodePool:
    """The decode process of one app (see the module docstring).

    Built without starting anything; the child starts on the first :meth:`decode` of a
    :class:`BodyDecoder` or :meth:`run`, or at :meth:`start`. :meth:`aclose` stops it.

    Args:
        warm: modules the child imports as it starts (the body functions'), so the first
            large body does not wait for them.
    """

    def __init__(self, warm: Sequence[str] = ()) -> None:
        self._warm = tuple(warm)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._contracts: dict[int, tuple[InputContract, int, bytes]] = {}
        #: The contracts' tokens the child was sent (it may have let some go since).
        self._sent: dict[int, None] = {}
        self._tokens = itertools.count(1)
        self._closed = False
        #: The child's process id, once it has answered (None before).
        self.pid: int | None = None
        #: Bodies the decode process has handled, answered or refused (not those it
        #: died on).
        self.handled = 0

    def start(self) -> None:
        """Start the child now instead of on the first large body (returns at once)."""
        future = self._running().submit(_warm, self._warm)
        future.add_done_callback(self._started)

    async def decode(self, decode: Decoder, contract: InputContract) -> tuple[Columns, int]:
        """Run ``decode`` with ``contract``: a :class:`BodyDecoder` in the decode process,
        any other decoder on a worker thread (the engine's ``off_loop``).

        Raises:
            ServiceUnavailable: the child ended while decoding this body (503).
            Exception: whatever the decoding raises (a ServingError for the client).
        """
        if not isinstance(decode, BodyDecoder):
            return await on_thread(decode, contract)
        token, packed = self._packed(contract)
        job = (decode.run, decode.body, decode.args, token)
        try:
            blocks, rows, decode.extra = await self._call(
                _decode, *job, None if token in self._sent else packed
            )
        except _ContractWanted:  # a new child, or one that let it go
            blocks, rows, decode.extra = await self._call(_decode, *job, packed)
        self._sent[token] = None
        while len(self._sent) > _KEEP:
            del self._sent[next(iter(self._sent))]
        if isinstance(blocks, tuple):  # the version's own layout, as every decoder gives
            return ColumnBlocks(contract.layout, blocks, rows), rows
        return blocks, rows

    async def run(self, function: Callable[..., _Result], *args: Any) -> _Result:
        """``function(*args)``, run in the decode process (a large body's check).

        ``function`` must be module-level in a module the child imports without the app
        (it is pickled by name), and its arguments and result picklable: plain values,
        quick to send, are best.

        Raises:
            ServiceUnavailable: the child ended while running it (503).
            Exception: whatever ``function`` raises (a ServingError for the client).
        """
        result: _Result = await self._call(_run, function, args)
        return result

    async def _call(self, job: Callable[..., tuple[int, Any]], *args: Any) -> Any:
        """``job(*args)`` in the child, one at a time; the child's pid is noted from its
        answer (``job`` returns it first), the rest returned."""

        def submit(executor: ProcessPoolExecutor) -> Future[tuple[int, Any]]:
            return executor.submit(job, *args)

        async with self._lock:  # one body at a time: a child's death fails only its own
            executor = self._running()
            try:
                future = submit(executor)
            except BrokenProcessPool:  # the child ended while idle: a new one takes it
                self._discard(executor)
                executor = self._running()
                future = submit(executor)
            try:
                pid, result = await asyncio.wrap_future(future)
            except BrokenProcessPool as exc:
                self._discard(executor)
                raise ServiceUnavailable(
                    "the server's decode process ended while it handled this request's "
                    "body; a new one is starting: send the request again"
                ) from exc
            except _ContractWanted:
                raise
            except Exception:  # refused: the client's error, or a fault in the child
                self.handled += 1
                raise
        self.handled += 1
        self.pid = pid
        return result

    async def aclose(self) -> None:
        """Stop the child (waiting for the body it decodes, if any); no new work after."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        self.pid = None

    def _running(self) -> ProcessPoolExecutor:
        if self._closed:
            raise ServiceUnavailable("the server is stopping; send the request to another")
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_started,
            )
        return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Forget a broken executor (its child is gone); the next body starts another."""
        if self._executor is executor:
            self._executor = None
            self.pid = None
            self._sent.clear()
        executor.shutdown(wait=False, cancel_futures=True)

    def _started(self, future: Future[int]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.pid = future.result()
        else:  # the next large body starts another child
            logger.error("the decode process did not start", exc_info=error)

    def _packed(self, contract: InputContract) -> tuple[int, bytes]:
        """A token for ``contract`` and its pickle, made once per contract."""
        found = self._contracts.get(id(contract))
        if found is not None and found[0] is contract:
            return found[1], found[2]
        # The fields only: what the contract caches (a decoding plan of lambdas) is
        # not picklable, and the child works it out again.
        packed = pickle.dumps(dataclasses.replace(contract), protocol=pickle.HIGHEST_PROTOCOL)
        token = next(self._tokens)
        self._contracts[id(contract)] = (contract, token, packed)  # holds it: ids stay unique
        while len(self._contracts) > _KEEP:
            del self._contracts[next(iter(self._contracts))]
        return token, packed


# -- in the child ---------------------------------------------------------------------

_CONTRACTS: dict[int, InputContract] = {}


def _child_started() -> None:
    """The child's initializer: signals meant for the server are not its own. A Ctrl-C
    or a SIGTERM sent to the whole process group would end it mid-body; the server
    stops it when it stops (and if the server dies, the child's pipe closes and it ends)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _warm(modules: tuple[str, ...]) -> int:
    for name in modules:
        importlib.import_module(name)
    return os.getpid()


class _ContractWanted(Exception):
    """The child does not hold the contract a body came for: send it along."""


def _run(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[int, Any]:
    """Run one job in the child: ``(pid, its result)``."""
    return os.getpid(), function(*args)


def _decode(
    run: Callable[..., Decoded],
    body: bytes,
    args: tuple[Any, ...],
    token: int,
    packed: bytes | None,
) -> tuple[int, tuple[Any, int, Any]]:
    """Decode one body in the child: ``(pid, (blocks or columns, rows, extra))``.

    Raises:
        _ContractWanted: ``packed`` is None and the contract is not held here.
    """
    contract = _CONTRACTS.get(token)
    if contract is None:
        if packed is None:
            raise _ContractWanted(token)
        contract = pickle.loads(packed)  # the server's own pickle of its contract
        _CONTRACTS[token] = contract
        while len(_CONTRACTS) > _KEEP:
            del _CONTRACTS[next(iter(_CONTRACTS))]
    columns, rows, extra = run(body, contract, *args)
    # Blocks travel without their layout: the server puts its own contract's back, which
    # is what requests merged into one model call are matched by.
    found = columns.blocks if isinstance(columns, ColumnBlocks) else dict(columns)
    return os.getpid(), (found, rows, extra)
