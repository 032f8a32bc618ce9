"""The prediction path as one object: decode, validate, predict, log.

A :class:`PredictionEngine` takes a request's already-parsed body (or a DataFrame,
through the input contract's pandas front) and a served version, and returns the
predictions with the request id, having handed them to the prediction log. The REST
protocols call it for every prediction; a batch or streaming path calls it the same way
with its own decoder, so every path accepts exactly what the contract accepts and logs
what it predicted.

The engine holds no model itself: it is given the version to use per call
(:class:`ServedVersion`, what :class:`~modelyard.serving.manager.LoadedModel` is), so a
hot swap between two calls never splits one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelyard.contract import InputContract, Problems, RequestValidationError, decode_frame
from modelyard.types import ColumnBlocks, Columns, RuntimeOutput

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Decoder",
    "OffLoop",
    "Prediction",
    "PredictionEngine",
    "PredictionSink",
    "ServedVersion",
    "on_thread",
    "refuse_non_finite",
    "rows_of",
]

logger = logging.getLogger(__name__)

#: Turns a version's contract into its decoded columns and row count, or raises.
Decoder = Callable[[InputContract], tuple[Columns, int]]
#: Runs a large request's decoder away from the event loop: ``await off_loop(decode, contract)``.
OffLoop = Callable[[Decoder, InputContract], Awaitable[tuple[Columns, int]]]
_OFFLOAD_ROWS = 1_000  # frames with more rows are checked on a worker thread
_WARN_EVERY = 60.0  # seconds between log lines about out-of-range values, per model


class _Batcher(Protocol):
    async def predict(self, columns: Columns, rows: int) -> RuntimeOutput: ...


class ServedVersion(Protocol):
    """What the engine needs of a loaded version."""

    @property
    def name(self) -> str: ...

    @property
    def number(self) -> int: ...

    @property
    def input_spec(self) -> InputContract: ...

    @property
    def batcher(self) -> _Batcher: ...


class PredictionSink(Protocol):
    """Where predictions are logged (:class:`~modelyard.predlog.writer.PredictionLog`)."""

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
    ) -> None: ...


@dataclass(frozen=True)
class Prediction:
    """One request's answer: its id, rows, decoded inputs and the runtime's output.

    ``out_of_range`` counts the numbers accepted outside their training range (under
    ``data.out_of_range: warn``).
    """

    request_id: str
    rows: int
    columns: Columns
    output: RuntimeOutput
    out_of_range: int = 0


async def on_thread(decode: Decoder, contract: InputContract) -> tuple[Columns, int]:
    """Run ``decode`` on a worker thread (:attr:`PredictionEngine.off_loop`'s default)."""
    return await asyncio.to_thread(decode, contract)


class PredictionEngine:
    """Decode → validate → predict → log, for any served version.

    Args:
        predlog: the prediction log (None: predictions are not logged).
        on_out_of_range: called with ``(model, count)`` when a request's numbers fall
            outside their training range and the contract only warns.

    Attributes:
        off_loop: how a decoder runs with ``offload``: on a worker thread
            (:func:`on_thread`) unless its owner gives another way; the server gives its
            decode process (:mod:`modelyard.serving.decodepool`).
    """

    def __init__(
        self,
        predlog: PredictionSink | None = None,
        *,
        on_out_of_range: Callable[[str, int], None] | None = None,
    ) -> None:
        self.predlog = predlog
        self.on_out_of_range = on_out_of_range
        self._warned: dict[str, float] = {}
        self.off_loop: OffLoop = on_thread

    async def predict(
        self,
        version: ServedVersion,
        decode: Decoder,
        *,
        request_id: str,
        received_at: datetime,
        started: float,
        endpoint: str,
        offload: bool = False,
    ) -> Prediction:
        """Predict one request on ``version``; ``decode`` checks and decodes its body
        (with ``offload``, for a large body, by :attr:`off_loop`: the event loop keeps
        serving meanwhile).

        Raises:
            RequestValidationError: (or whatever ``decode`` raises) the input does not
                fit the contract, or the model's output for it is not finite; nothing is
                logged then.
        """
        contract = version.input_spec
        if offload:
            columns, rows = await self.off_loop(decode, contract)
        else:
            columns, rows = decode(contract)
        outside = 0
        if contract.ranges == "warn" and isinstance(columns, ColumnBlocks):
            outside = contract.count_out_of_range(columns)
            if outside:
                self._warn(version, outside, request_id)
        output = await version.batcher.predict(columns, rows)
        refuse_non_finite(output, version.name)
        self.log(
            version,
            request_id=request_id,
            received_at=received_at,
            columns=columns,
            rows=rows,
            output=output,
            latency_ms=(time.perf_counter() - started) * 1000,
            endpoint=endpoint,
        )
        return Prediction(request_id, rows, columns, output, outside)

    async def predict_decoded(
        self,
        version: ServedVersion,
        columns: Columns,
        parts: Sequence[tuple[str, int]],
        *,
        received_at: datetime,
        started: float,
        endpoint: str,
    ) -> list[Prediction | RequestValidationError]:
        """Predict the already decoded rows of several requests in one model call.

        ``columns`` holds the rows of ``parts`` (``(request_id, rows)``) one request
        after the other, as the contract decoded them. Each request gets what
        :meth:`predict` would give it: its rows' output, or, when the model's output
        for one of its rows is not finite, the :class:`RequestValidationError`
        :meth:`predict` would raise, in place. Numbers outside their training range are
        counted per request, as :meth:`predict` counts them. The rows predicted go to
        the prediction log in one call, each under its own request's id and position.

        Raises:
            Exception: whatever the runtime raised for the call: the caller decides
                whether to predict the requests one by one instead.
        """
        contract = version.input_spec
        rows = sum(count for _, count in parts)
        outside = 0
        if contract.ranges == "warn" and isinstance(columns, ColumnBlocks):
            outside = contract.count_out_of_range(columns)
        output = await version.batcher.predict(columns, rows)
        latency_ms = (time.perf_counter() - started) * 1000
        try:  # the whole output at once: a per-request check costs more than the call
            refuse_non_finite(output, version.name)
            refused = False
        except RequestValidationError:
            refused = True
        answers: list[Prediction | RequestValidationError] = []
        kept = np.ones(rows, dtype=bool) if refused else None
        start = 0
        for request_id, count in parts:
            piece = slice(start, start + count)
            start += count
            mine = rows_of(columns, piece) if len(parts) > 1 else columns
            proba = output.proba
            answer = RuntimeOutput(
                output.values[piece], None if proba is None else proba[piece], output.classes
            )
            counted = contract.count_out_of_range(mine) if outside else 0
            if counted:
                self._warn(version, counted, request_id)
            if kept is not None:
                try:
                    refuse_non_finite(answer, version.name)
                except RequestValidationError as problem:  # what predict() raises for it
                    answers.append(problem)
                    kept[piece] = False
                    continue
            answers.append(Prediction(request_id, count, mine, answer, counted))
        self._log_parts(version, parts, columns, output, kept, received_at, latency_ms, endpoint)
        return answers

    def _log_parts(
        self,
        version: ServedVersion,
        parts: Sequence[tuple[str, int]],
        columns: Columns,
        output: RuntimeOutput,
        kept: np.ndarray | None,
        received_at: datetime,
        latency_ms: float,
        endpoint: str,
    ) -> None:
        """Log the rows of ``parts`` (those ``kept``: all when None) in one call."""
        if self.predlog is None:
            return
        ids = np.empty(len(parts), dtype=object)
        ids[:] = [request_id for request_id, _ in parts]
        counts = np.fromiter((count for _, count in parts), dtype=np.int64, count=len(parts))
        starts = np.cumsum(counts) - counts
        rows = int(counts.sum())
        numbers = np.arange(rows) - np.repeat(starts, counts)  # the position in its request
        request_ids = np.repeat(ids, counts)
        if kept is not None:  # a request refused: its rows are not logged, as predict() does
            if not kept.any():
                return
            where = np.flatnonzero(kept)
            columns = rows_of(columns, where)
            proba = output.proba
            output = RuntimeOutput(
                output.values[where], None if proba is None else proba[where], output.classes
            )
            numbers, request_ids, rows = numbers[where], request_ids[where], len(where)
        self.log(
            version,
            request_id=parts[0][0],
            received_at=received_at,
            columns=columns,
            rows=rows,
            output=output,
            latency_ms=latency_ms,
            endpoint=endpoint,
            row_numbers=numbers,
            request_ids=request_ids,
        )

    async def predict_frame(
        self,
        version: ServedVersion,
        frame: pd.DataFrame,
        *,
        request_id: str,
        received_at: datetime,
        endpoint: str,
    ) -> Prediction:
        """Predict the rows of a DataFrame, checked by the contract's pandas front."""
        return await self.predict(
            version,
            lambda contract: decode_frame(frame, contract),
            request_id=request_id,
            received_at=received_at,
            started=time.perf_counter(),
            endpoint=endpoint,
            offload=len(frame) > _OFFLOAD_ROWS,
        )

    def log(self, version: ServedVersion, **prediction: Any) -> None:
        """Hand a prediction to the prediction log, if there is one; never raises."""
        if self.predlog is None:
            return
        try:
            self.predlog.log(model=version.name, version=version.number, **prediction)
        except Exception:  # the log must never fail a prediction
            logger.exception("could not log request %s", prediction.get("request_id"))

    def _warn(self, version: ServedVersion, count: int, request_id: str) -> None:
        if self.on_out_of_range is not None:
            self.on_out_of_range(version.name, count)
        now = time.monotonic()
        if now - self._warned.get(version.name, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[version.name] = now
            logger.warning(
                "%s:%s: request %s has %d numbers outside their training range (accepted: "
                "data.out_of_range is warn; counted in modelyard_out_of_range_values_total)",
                version.name,
                version.number,
                request_id,
                count,
            )


def rows_of(columns: Columns, rows: slice | np.ndarray) -> Columns:
    """Some rows of decoded columns: a slice (as views, nothing copied) or positions."""
    if isinstance(columns, ColumnBlocks):
        return columns.take(rows)
    return {name: np.asarray(values)[rows] for name, values in columns.items()}


def refuse_non_finite(output: RuntimeOutput, model: str) -> None:
    """Refuse the rows a runtime answered with a number that is not finite.

    Valid inputs far outside what the model was trained on can still overflow inside
    it (a derived feature the contract does not know, a linear model's sum); what the
    runtime then does differs (scikit-learn refuses, ONNX Runtime answers), and JSON
    has no infinity. One rule for every runtime: such a row is a 422 naming it.

    Raises:
        RequestValidationError: a ``non_finite_output`` problem per such row.
    """
    values = output.values
    bad = ~np.isfinite(values) if values.dtype.kind == "f" else None
    if output.proba is not None and output.proba.size:
        unusable = ~np.isfinite(output.proba).all(axis=1)
        bad = unusable if bad is None else bad | unusable
    if bad is None or not bad.any():
        return
    problems = Problems()
    for row in np.flatnonzero(bad).tolist():
        problems.add(
            row,
            None,
            "non_finite_output",
            "the model's prediction is not a finite number: a value is beyond what the "
            f"model can take; compare the row's numbers with the training ranges on "
            f"GET /v1/models/{model}",
        )
    problems.check()
