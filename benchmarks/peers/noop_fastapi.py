"""The HTTP floor: a FastAPI endpoint that ignores the body and returns a constant.

Nothing here parses or predicts, so its latency is what uvicorn + FastAPI routing cost
on this machine; the benchmark's latency goal is measured against it. It runs without
the access log, the leanest setting, so the floor is as low as it can be.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

_BODY = b'{"predictions":[0.0]}'
app = FastAPI()


@app.post("/invocations")
async def invocations() -> Response:
    """Return a constant prediction without reading the request."""
    return Response(content=_BODY, media_type="application/json")
