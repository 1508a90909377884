"""The serving runtime: the champion bundle behind an HTTP API (``voiceloop serve``; docs/serving.md).

Example (``voiceloop serve`` prints where the API key is)::

    curl -s -H "X-API-Key: $KEY" --data-binary @turn.wav http://127.0.0.1:8080/v1/transcribe
    {"bundle": "3", "text": "my card is <CREDIT_CARD>", "words": [{"word": "my", "start": 0.0, ...}, ...], ...}
    curl -s -H "X-API-Key: $KEY" -H "Content-Type: application/json" -d '{"text": "I lost my card"}' \\
         http://127.0.0.1:8080/v1/understand
    {"bundle": "3", "intent": "lost_or_stolen_card", "confidence": 0.93}
    curl -s -H "X-API-Key: $KEY" --data-binary @turn.wav http://127.0.0.1:8080/v1/process
    {"bundle": "3", "transcript": "my card number is <CREDIT_CARD>", "pii_types": ["CREDIT_CARD"], ...}

Audio goes in the request body as a file (WAV, FLAC, OGG, MP3: anything PyAV decodes). Every
``/v1`` route needs the ``X-API-Key`` header, checked before the body is read (serving/guard.py);
``/healthz`` and ``/metrics`` do not (probes and scrapers), and hold no call content. A key has a
name and a role: transcripts come back redacted unless the role holds ``transcription``, and
requests are audited per key in batches (serving/request_audit.py). Nothing a caller says is
logged: not the audio, not the text, not the intent, and no error path echoes or logs a body.

Each request is answered by the bundle that was the champion when it arrived
(serving/follower.py), so a promotion or rollback never drops or mixes a request. In shadow mode
the challenger answers the same input after the response is sent (serving/shadow.py).

The app is composed here; the routes live in routers, one per concern (``serving/routes/``), the
bodies in ``serving/schemas.py`` and what they serve with in ``serving/state.py``. A live call's
turns are kept, redacted, for the handoff packet an agent gets when the bot escalates
(``/v1/calls``: serving/routes/calls.py, serving/sessions.py).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.admission import Shed, shed_response
from serving.api_keys import HEADER, ApiKey
from serving.guard import TEXT_BODY_BYTES, Guard
from serving.measure import Measure
from serving.routes import calls, inference, operations
from serving.runtime import SessionRuntime
from serving.sessions import SessionStore
from serving.state import Runtime

ROUTES = ("/v1/transcribe", "/v1/understand", "/v1/process", "/healthz", "/metrics")


def create_app(runtime: Runtime) -> FastAPI:
    """The API over ``runtime``: every request's latency and status counted per route in ``/metrics``.

    Call sessions are ``runtime.sessions`` (what :func:`serving.runtime.build_runtime` builds), else a
    store with the default caps."""
    app = FastAPI(title="voiceloop serving runtime", version="1",
                  description="The champion bundle of the voiceloop registry: ASR, intent and PII redaction. "
                              f"Send the API key in the `{HEADER}` header.")
    app.state.runtime = runtime
    metrics = runtime.metrics
    app.state.sessions = runtime.sessions if isinstance(runtime, SessionRuntime) else SessionStore(metrics=metrics)

    def cap(path: str) -> int:
        return TEXT_BODY_BYTES if path == "/v1/understand" else runtime.max_upload_bytes

    def seen(key: ApiKey, path: str) -> None:
        if runtime.requests is not None:
            endpoint = (calls.route_of(path) or path).removeprefix("/v1/")  # calls/{call_id}/handoff: no call id
            raw = endpoint == "transcribe" or endpoint.startswith("calls/")
            purpose = "transcription" if raw and runtime.raw_for(key) else "evaluation"
            runtime.requests.record(key.name, key.role, purpose, endpoint)

    # added first, so it runs inside `Measure`: its refusals are counted too
    app.add_middleware(Guard, keys=lambda: runtime.keys, cap=cap, seen=seen)
    app.add_middleware(Measure, metrics=metrics, route_of=lambda path: calls.route_of(path) or (
        path if path in ROUTES else "other"))
    app.add_exception_handler(Shed, shed_response)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        """422 naming what is wrong and where, never echoing the input back."""
        return JSONResponse({"detail": [_without_input(e) for e in error.errors()]}, status_code=422)

    app.include_router(inference.router)
    app.include_router(operations.router)
    app.include_router(calls.router)
    return app


def _without_input(error: Any) -> dict[str, Any]:
    return {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type", "")}


def server_config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    """How uvicorn runs the app: its own access log is off (it prints query strings, where a key may be
    sent by mistake); ``Measure`` (serving/measure.py) logs method, route and status instead, through
    uvicorn's console handler."""
    logging_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    logging_config["loggers"]["voiceloop.serving"] = {"handlers": ["default"], "level": "INFO"}
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False, log_config=logging_config)
    # off for good: a later logging setup (Prefect's configures "uvicorn") would give it handlers again
    logging.getLogger("uvicorn.access").disabled = True
    return config
