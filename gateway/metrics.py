"""Request metrics of the gateway (definitions in infra/metrics.py; served by ``GET /metrics``)."""

from __future__ import annotations

import time

from infra.metrics import HTTP_REQUEST_SECONDS, RESPOND_SECONDS, respond_outcome, status_class

__all__ = ["MetricsMiddleware"]

RESPOND_ROUTE = ("POST", "/api/digital-twin/respond")


class MetricsMiddleware:
    """Pure ASGI (streamed uploads pass untouched): time every HTTP request.

    Labelled by the route *template* (``/api/interviews/session/{id}``), never the raw path, so
    scanners requesting random URLs add one ``unmatched`` series, not one per URL. The respond route
    also feeds the respond histogram. Add it last, so it is the outermost middleware and times the
    others (authentication, audit) too.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status_box = {"status": 500}  # an exception that escapes every handler becomes a 500

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            status = status_box["status"]
            # The router stores the matched route in the (shared) scope.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUEST_SECONDS.labels(method, route, status_class(status)).observe(elapsed)
            if (method, route) == RESPOND_ROUTE:
                RESPOND_SECONDS.labels(respond_outcome(status)).observe(elapsed)
