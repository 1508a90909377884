"""Every request counted, timed and logged by route and status, and an unexpected error answered with a bare 500.

A plain ASGI middleware rather than Starlette's ``@app.middleware("http")``: that one runs the app
in a task group behind memory streams, which costs a little on every request and hides the
client's disconnect from ``request.is_disconnected()``, which admission control needs to drop
the work of a client that has gone (serving/admission.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import ServingMetrics

access_log = logging.getLogger("voiceloop.serving.access")
log = logging.getLogger("voiceloop.serving")
INTERNAL_ERROR = json.dumps({"detail": "internal error; the request was not logged"}).encode()


class Measure:
    """``route_of(path)`` names the route a path belongs to (never an id or a query string)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, route_of: Callable[[str], str]) -> None:
        self.app, self.metrics, self.route_of = app, metrics, route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.route_of(scope["path"])
        started = time.perf_counter()
        status, recorded = 0, False

        def record() -> None:
            nonlocal recorded
            recorded = True
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route, str(status)).inc()
            access_log.info("%s %s %d", scope["method"], route, status)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()  # before the last bytes leave: a client that has its answer finds it counted and logged
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:  # its message or traceback could hold what the caller sent
            log.error("%s %s failed: %s", scope["method"], route, type(error).__name__)
            if not status:
                await sending({"type": "http.response.start", "status": 500,
                               "headers": [(b"content-type", b"application/json"),
                                           (b"content-length", str(len(INTERNAL_ERROR)).encode())]})
                await sending({"type": "http.response.body", "body": INTERNAL_ERROR})
        if not recorded:  # no complete answer (an error after it started)
            record()
