"""Connection and body limits: what keeps one client from holding the whole server.

uvicorn bounds how much of a body it buffers per connection (it stops reading at 64 KiB
until the app asks for more), but it has no deadline for a request's headers or body
and no cap on open connections, so slow or stalled clients can pile up without end
(slow headers, "slowloris"; uploads that stop half-way). Two pieces close that:

- :class:`GuardedHttpToolsProtocol`, uvicorn's own httptools protocol with a deadline
  for each request's headers (``header_timeout``, from its first byte, or from the
  connection's start) and a cap on open connections (``max_connections``; a connection
  past it is closed at once, before anything is read). ``modelyard serve`` runs uvicorn
  with it (uvicorn's ``http=`` setting takes a protocol class).
- :class:`BodyLimits`, an ASGI middleware: a request's body must arrive within
  ``body_timeout`` seconds of its headers (408 otherwise), and the bodies being read
  across all requests hold at most ``max_inflight_body_bytes`` (503 with
  ``Retry-After`` for a request past it; a declared ``Content-Length`` is counted up
  front, so a large upload is refused before any of it is read). Either answer closes
  the connection.

The settings are per process (``modelyard serve`` sets them), so an app embedded in
another server keeps that server's behaviour unless it adds the middleware itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from modelyard.errors import LimitExceeded

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimits", "ConnectionLimits", "GuardedHttpToolsProtocol", "InflightBytes"]

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines and caps that keep slow or stalled clients from exhausting the server.

    Attributes:
        header_timeout: seconds a request's headers may take to arrive, counted from
            its first byte (or from the connection's start, for the first request).
        body_timeout: seconds a request's body may take to arrive after its headers.
        max_connections: open connections; one more is closed at once.
        max_inflight_body_bytes: bytes of request bodies being read at once, across all
            requests; a request past it is answered 503 with ``Retry-After``.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1024
    max_inflight_body_bytes: int = 256 * _MIB

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "max_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.max_inflight_body_bytes < 1024:
            raise ValueError(
                f"max_inflight_body_bytes must be at least 1024, got {self.max_inflight_body_bytes}"
            )


def _httptools_protocol() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return HttpToolsProtocol


class GuardedHttpToolsProtocol(_httptools_protocol()):  # type: ignore[misc]
    """uvicorn's httptools protocol with a header deadline and a connection cap.

    ``limits`` is set once per process (:meth:`configure`) before the server starts.
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    closed_slow: ClassVar[int] = 0  # connections closed for slow headers, for metrics
    refused: ClassVar[int] = 0  # connections closed at once for the connection cap

    @classmethod
    def configure(cls, limits: ConnectionLimits) -> None:
        """Use ``limits`` for the connections this process accepts from now on."""
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            type(self).refused += 1
            transport.abort()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        type(self).closed_slow += 1
        if self.cycle is None or self.cycle.response_complete:
            # Between requests or before the first: nothing was answered on it yet.
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: 42\r\n\r\n"
                b"the request headers took too long to come\n"
            )
        self.transport.close()


class InflightBytes:
    """The bytes of request bodies being read now, across every request of an app.

    One counter may be shared by several :class:`BodyLimits` in front of one app (the
    serving app's prediction routes take a chain of their own: see
    :mod:`modelyard.serving.hot`), so the cap holds across all of them. It is touched
    only on the event loop's thread, so it needs no lock.
    """

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


class BodyLimits:
    """ASGI middleware: a deadline for each request's body and a cap on bodies in flight.

    A body that is late, or that would take the bytes being read past the cap, ends the
    request with :class:`~modelyard.errors.LimitExceeded` (rendered by the app's error
    handler in the protocol's error shape) and ``Connection: close`` (and
    ``Retry-After: 1`` for the cap). ``inflight`` is the counter the cap applies to (a
    new one unless shared).
    """

    def __init__(
        self, app: ASGIApp, *, limits: ConnectionLimits, inflight: InflightBytes | None = None
    ) -> None:
        self.app = app
        self.limits = limits
        self.inflight = inflight if inflight is not None else InflightBytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        declared = _content_length(scope)
        held = received = 0  # bytes counted against the cap; bytes arrived
        refused: list[bytes] = []  # the extra headers of a refusal, once one is raised

        def hold(total: int) -> None:
            nonlocal held
            grow = total - held
            if grow <= 0:
                return
            if self.inflight.bytes + grow > self.limits.max_inflight_body_bytes:
                refused.append(b"1")
                raise LimitExceeded(_BUSY, status=503)
            held += grow
            self.inflight.bytes += grow

        async def guarded_receive() -> Message:
            nonlocal received
            hold(declared)  # a declared length is counted before any of it is read
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps every
                # receive in a new task, a cost each request paid for nothing.
                async with asyncio.timeout(remaining):
                    message = await receive()
            except TimeoutError:
                refused.append(b"")
                raise LimitExceeded(
                    f"the request body did not arrive within {self.limits.body_timeout:g} s; "
                    "send it at once, or split it into smaller requests",
                    status=408,
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                hold(max(declared, received))
            return message

        async def closing_send(message: Message) -> None:
            if refused and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
                headers.append((b"connection", b"close"))
                if refused[0]:
                    headers.append((b"retry-after", refused[0]))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, guarded_receive, closing_send)
        finally:
            self.inflight.bytes -= held


_BUSY = (
    "the server is reading as many request bodies as it holds at once; "
    "retry in a moment, or send smaller requests"
)


def _content_length(scope: Scope) -> int:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
