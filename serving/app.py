"""The serving runtime: the champion bundle behind an HTTP API (``voiceloop serve``; docs/serving.md).

Example (``voiceloop serve`` prints where the API key is)::

    curl -s -H "X-API-Key: $KEY" --data-binary @turn.wav http://127.0.0.1:8080/v1/transcribe
    {"bundle": "3", "text": "I lost my card.", "words": [{"word": "I", "start": 0.0, "end": 0.18}, ...], ...}
    curl -s -H "X-API-Key: $KEY" -H "Content-Type: application/json" -d '{"text": "I lost my card"}' \\
         http://127.0.0.1:8080/v1/understand
    {"bundle": "3", "intent": "lost_or_stolen_card", "confidence": 0.93}
    curl -s -H "X-API-Key: $KEY" --data-binary @turn.wav http://127.0.0.1:8080/v1/process
    {"bundle": "3", "transcript": "my card number is <CREDIT_CARD>", "pii_types": ["CREDIT_CARD"], ...}

Audio goes in the request body as a file (WAV, FLAC, OGG, MP3: anything PyAV decodes). Every
``/v1`` route needs the ``X-API-Key`` header; ``/healthz`` and ``/metrics`` do not (probes and
scrapers), and hold no call content. Nothing a caller says is logged: not the audio, not the
text, not the intent.

Each request is answered by the bundle that was the champion when it arrived
(serving/follower.py), so a promotion or rollback never drops or mixes a request. In shadow mode
the challenger answers the same input after the response is sent (serving/shadow.py).

The app is composed here; the routes live in routers, one per concern (``serving/routes/``), the
bodies in ``serving/schemas.py`` and what they serve with in ``serving/state.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from serving.api_keys import HEADER
from serving.routes import inference, operations
from serving.state import Runtime

ROUTES = ("/v1/transcribe", "/v1/understand", "/v1/process", "/healthz", "/metrics")


def create_app(runtime: Runtime) -> FastAPI:
    """The API over ``runtime``: every request's latency and status counted per route in ``/metrics``."""
    app = FastAPI(title="voiceloop serving runtime", version="1",
                  description="The champion bundle of the voiceloop registry: ASR, intent and PII redaction. "
                              f"Send the API key in the `{HEADER}` header.")
    app.state.runtime = runtime
    metrics = runtime.metrics

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        route = request.url.path if request.url.path in ROUTES else "other"
        started = time.perf_counter()
        response = await call_next(request)
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        metrics.requests.labels(route, str(response.status_code)).inc()
        return response

    app.include_router(inference.router)
    app.include_router(operations.router)
    return app
