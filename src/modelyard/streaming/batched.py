"""The stream consumer's batch path: a batch of messages predicted as a few requests.

Predicting each message of a batch through the engine on its own (decode, micro-batcher,
log) costs Python work per message that dwarfs the model call of a one-row message.
When every message of a batch goes to the one version the consumer holds for it (no
routing policy on the model), :func:`predict_batched` predicts them in chunks instead:

1. the rows of the messages in the ``row`` and ``rows`` shapes are decoded together with
   ONE call of the contract's JSON front (:func:`~modelyard.contract.decode_records`),
   up to the batcher's ``max_batch_rows`` (and the contract's ``max_rows``) rows per
   chunk; a message with more rows than that is a chunk of its own. The contract's
   rules are row by row, so a row decodes the same alone or with others;
2. when a chunk has problems, the messages owning the rows they name are decoded alone,
   which gives their dead letters the very reasons the one-message path gives, and the
   rest of the chunk is decoded together again. A problem of the whole chunk (a row
   with too many keys), or more problems than the contract lists, has each message of
   the chunk decoded alone;
3. the other messages (``columns`` and ``data``; no rows, or more than the contract
   takes) are decoded alone, as before;
4. each decoded chunk is one call of
   :meth:`~modelyard.engine.PredictionEngine.predict_decoded`: one model call (the
   micro-batcher may merge chunks further), the output split back per message, each
   message logged under its own id (endpoint ``stream``);
5. a chunk whose model call fails is predicted again message by message on the
   one-message path, so only a message the runtime cannot take fails, as the
   micro-batcher does for the requests it merged.

Each message gets what the one-message path gives it: the same output, or the same
exception (a dead letter with the same reasons).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from itertools import accumulate, chain
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard.contract import RequestValidationError, decode_records

if TYPE_CHECKING:
    from modelyard.engine import Prediction, PredictionEngine
    from modelyard.serving.manager import LoadedModel
    from modelyard.streaming.messages import Request
    from modelyard.types import Columns

__all__ = ["OneMessage", "predict_batched"]

#: The one-message path: predict ``(request, offload)`` on its own.
OneMessage = Callable[["Request", bool], Awaitable["Prediction"]]

_T = TypeVar("_T")


async def predict_batched(
    engine: PredictionEngine,
    loaded: LoadedModel,
    requests: Sequence[tuple[Request, bool]],
    *,
    received_at: datetime,
    started: float,
    one: OneMessage,
) -> list[Prediction | BaseException]:
    """Predict each ``(request, offload)`` on ``loaded``, a chunk of them at a time.

    Returns one prediction or exception per request, in order, as
    ``asyncio.gather(..., return_exceptions=True)`` over ``one`` would.
    """
    batch = _Batch(engine, loaded, requests, received_at, started)
    await batch.decode()
    return await batch.predict(one)


class _Batch:
    """The state of one batch: what each request decoded to, or failed with."""

    def __init__(
        self,
        engine: PredictionEngine,
        loaded: LoadedModel,
        requests: Sequence[tuple[Request, bool]],
        received_at: datetime,
        started: float,
    ) -> None:
        self.engine = engine
        self.loaded = loaded
        self.requests = requests
        self.received_at = received_at
        self.started = started
        self.contract = loaded.input_spec
        self.answers: list[Prediction | BaseException | None] = [None] * len(requests)
        self.rows: list[int] = [0] * len(requests)
        #: decoded chunks: their columns and the requests whose rows they hold, in order
        self.units: list[tuple[Columns, list[int]]] = []

    async def decode(self) -> None:
        """Decode every request, chunk by chunk; a failure is kept as its answer."""
        limit = max(1, min(self.loaded.batcher.max_batch_rows, self.contract.max_rows))
        records: list[list[Any] | None] = []
        chunks: list[list[int]] = []
        chunk: list[int] = []
        held = 0
        for index, (request, _) in enumerate(self.requests):
            found = _records(request, self.contract.max_rows)
            records.append(found)
            if found is None:
                await self._decode_alone(index)
                continue
            if chunk and held + len(found) > limit:
                chunks.append(chunk)
                chunk, held = [], 0
            chunk.append(index)
            held += len(found)
            self.rows[index] = len(found)
        if chunk:
            chunks.append(chunk)
        for members in chunks:
            await self._decode_together(members, records)

    async def predict(self, one: OneMessage) -> list[Prediction | BaseException]:
        """One model call per decoded chunk; a failed call, message by message."""
        calls = [
            self.engine.predict_decoded(
                self.loaded,
                columns,
                [(self.requests[index][0].id, self.rows[index]) for index in members],
                received_at=self.received_at,
                started=self.started,
                endpoint="stream",
            )
            for columns, members in self.units
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        failed: list[int] = []
        for (_, members), result in zip(self.units, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):  # cancellation, interpreter exit
                    raise result
                failed += members
                continue
            for index, answer in zip(members, result, strict=True):
                self.answers[index] = answer
        if failed:
            again = await asyncio.gather(
                *(one(*self.requests[index]) for index in failed), return_exceptions=True
            )
            for index, retried in zip(failed, again, strict=True):
                self.answers[index] = retried
        answers = [answer for answer in self.answers if answer is not None]
        assert len(answers) == len(self.answers), "a request got no answer"
        return answers

    async def _decode_together(self, members: list[int], records: list[list[Any] | None]) -> None:
        rows = list(chain.from_iterable(records[index] or () for index in members))
        offload = any(self.requests[index][1] for index in members)
        try:
            columns, _ = await _call(offload, decode_records, rows, self.contract)
        except RequestValidationError as error:
            counts = [self.rows[index] for index in members]
            bad = _owners(error, counts)
            if bad is None:  # a problem of the whole chunk: each message says its own
                for index in members:
                    await self._decode_alone(index)
                return
            for position in sorted(bad):
                await self._decode_alone(members[position])
            rest = [index for position, index in enumerate(members) if position not in bad]
            if rest:  # each round sets at least one message apart: it ends
                await self._decode_together(rest, records)
            return
        self.units.append((columns, members))

    async def _decode_alone(self, index: int) -> None:
        """Decode one request as the one-message path does (its errors included)."""
        request, offload = self.requests[index]
        try:
            columns, rows = await _call(offload, request.decode, self.contract)
        except Exception as error:  # as gather(return_exceptions=True) keeps it
            self.answers[index] = error
            return
        self.rows[index] = rows
        self.units.append((columns, [index]))


async def _call(offload: bool, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)``, on a worker thread with ``offload`` (a large message)."""
    if offload:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def _records(request: Request, max_rows: int) -> list[Any] | None:
    """The rows of a message as records to decode with others, or None when it is
    decoded alone: the ``columns`` shape, or rows the contract refuses as a whole."""
    payload = request.payload
    if request.single:
        return [payload["row"]]
    rows = payload.get("rows")
    if isinstance(rows, dict):  # one object is one row, as decode_records reads it
        return [rows]
    if isinstance(rows, list) and 0 < len(rows) <= max_rows:
        return rows
    return None


def _owners(error: RequestValidationError, counts: list[int]) -> set[int] | None:
    """The positions of the messages whose rows ``error`` names (their rows one message
    after the other, ``counts`` each), or None when it names a problem of no row or
    leaves problems unlisted."""
    problems = error.problems
    if error.total > len(problems) or any(problem.row is None for problem in problems):
        return None
    ends = list(accumulate(counts))
    return {bisect_right(ends, problem.row) for problem in problems if problem.row is not None}
