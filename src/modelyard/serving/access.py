"""Which endpoints need an API key, decided in one place.

With API keys configured, every endpoint needs one except:

- the health probes (``/healthz``, ``/readyz``, ``/v2/health/live``,
  ``/v2/health/ready``, ``/ping``, ``/health``), which orchestrators call without
  credentials and which reveal no model detail;
- the admin endpoints (``/v1/admin/...``), which need the admin key instead;
- what ``ServeConfig.public_endpoints`` leaves open: ``metrics`` (``/metrics``, for a
  Prometheus scraper without credentials) and ``docs`` (``/openapi.json``, ``/docs``,
  ``/redoc``).

Model metadata (``/v1/models``, the V2 metadata with every training category), the
server version and unknown paths are keyed too. :class:`KeyGate` checks the key before
any route or body work; without API keys it is not installed at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.serving.protocols import ServingError, ServingState

__all__ = ["HEALTH_PATHS", "PUBLIC_CHOICES", "KeyGate", "open_paths"]

#: Health probes: open whatever the keys.
HEALTH_PATHS = frozenset(
    {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/ping", "/health"}
)
#: What ``public_endpoints`` may leave open when keys are set, and the paths of each.
PUBLIC_CHOICES: dict[str, tuple[str, ...]] = {
    "metrics": ("/metrics",),
    "docs": ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"),
}
_ADMIN_PREFIX = "/v1/admin/"


def open_paths(public: Iterable[str]) -> frozenset[str]:
    """The paths that need no API key: the health probes and the ``public`` choices."""
    paths = set(HEALTH_PATHS)
    for choice in public:
        paths.update(PUBLIC_CHOICES[choice])
    return frozenset(paths)


def needs_key(path: str, opened: frozenset[str]) -> bool:
    """Whether a request to ``path`` needs an API key (when keys are configured)."""
    return path not in opened and not path.startswith(_ADMIN_PREFIX)


class KeyGate:
    """An ASGI middleware refusing keyed paths without a valid API key (401).

    ``render`` answers the refusal in the error shape of the request's protocol.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: ServingState,
        opened: frozenset[str],
        render: Callable[[Request, ServingError], Response],
    ) -> None:
        self.app = app
        self.state = state
        self.opened = opened
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_key(scope["path"], self.opened):
            request = Request(scope)
            try:
                self.state.check_predict_key(request)
            except ServingError as exc:
                await self.render(request, exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
