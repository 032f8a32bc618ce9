"""The HTTP floor: a raw ASGI app that reads the body and returns a constant.

The cheapest endpoint the serving stack (uvicorn with uvloop and httptools) can answer
a POST with: no framework, no routing, no parsing, no model. It still reads the whole
request body, as every server must. Its latency is what the stack itself costs on this
machine; the benchmark's latency goal is measured against it. Like every server in the
benchmark it runs without the access log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY = b'{"predictions":[0.0]}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))]


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Answer every HTTP request with a constant prediction; accept lifespan events."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # read the body: the floor receives what the other servers receive
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
