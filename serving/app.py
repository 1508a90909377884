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
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from serving.api_keys import HEADER, key_accepted
from serving.audio import SAMPLE_RATE, decode_16k, word_json
from serving.bundle import NoIntentModel, ServedBundle
from serving.bundle import process as process_audio
from serving.metrics import ServingMetrics

if TYPE_CHECKING:
    from governance.redaction.redactor import Redactor
    from serving.follower import BundleFollower
    from serving.shadow import ShadowRecorder

log = logging.getLogger("voiceloop.serving")
ROUTES = ("/v1/transcribe", "/v1/understand", "/v1/process", "/healthz", "/metrics")
AUDIO_BODY = {"requestBody": {"required": True, "description": "the audio file itself (WAV, FLAC, OGG, MP3, ...)",
                              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}}


@dataclass
class Runtime:
    """What the app serves with; built by :func:`serving.runtime.build_runtime`."""

    champion: BundleFollower[ServedBundle]
    redactor: Redactor
    keys: frozenset[str]
    metrics: ServingMetrics
    max_audio_s: float = 60.0
    max_upload_bytes: int = 20 * 1024 * 1024
    challenger: BundleFollower[ServedBundle] | None = None  # shadow mode
    shadow: ShadowRecorder | None = None


class WordOut(BaseModel):
    word: str
    start: float = Field(description="seconds from the start of the audio")
    end: float


class TranscribeOut(BaseModel):
    bundle: str | None = Field(description="the bundle version that answered (null: no champion yet, base ASR)")
    text: str
    words: list[WordOut]
    duration_s: float


class UnderstandIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000, examples=["I still have not received my new card"])


class UnderstandOut(BaseModel):
    bundle: str | None
    intent: str = Field(examples=["card_arrival"])
    confidence: float = Field(ge=0, le=1, description="the intent model's probability for that intent")


class ProcessOut(BaseModel):
    bundle: str | None
    transcript: str = Field(description="what the ASR heard, PII replaced by <TYPE> placeholders")
    pii_types: list[str] = Field(description="the kinds of PII that were replaced")
    intent: str
    confidence: float
    duration_s: float


class Health(BaseModel):
    status: str
    champion: str | None
    asr_model: str
    intent_model: bool
    loaded_at: float
    last_reload_error: str | None
    shadow_challenger: str | None


def _lock_redactor(redactor: Redactor) -> Callable[[str], Any]:
    """Presidio's analyzer is shared process-wide; one request redacts at a time (a few ms each)."""
    lock = threading.Lock()

    def redact(text: str) -> Any:
        with lock:
            return redactor.redact(text)

    return redact


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="voiceloop serving runtime", version="1",
                  description="The champion bundle of the voiceloop registry: ASR, intent and PII redaction. "
                              f"Send the API key in the `{HEADER}` header.")
    metrics = runtime.metrics
    redact = _lock_redactor(runtime.redactor)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        route = request.url.path if request.url.path in ROUTES else "other"
        started = time.perf_counter()
        response = await call_next(request)
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        metrics.requests.labels(route, str(response.status_code)).inc()
        return response

    def api_key(key: str | None = Header(None, alias=HEADER, description="an API key of this server")) -> None:
        if not key_accepted(key, runtime.keys):
            raise HTTPException(401, f"missing or unknown API key: send it in the {HEADER} header",
                                headers={"WWW-Authenticate": HEADER})

    async def audio_of(request: Request) -> np.ndarray:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > runtime.max_upload_bytes:
            raise HTTPException(413, f"upload of {int(declared)} bytes is over serving.max_upload_mb")
        body = await request.body()
        if not body:
            raise HTTPException(400, "empty upload: send the audio file itself as the request body")
        if len(body) > runtime.max_upload_bytes:
            raise HTTPException(413, f"upload of {len(body)} bytes is over serving.max_upload_mb")
        try:
            audio = await run_in_threadpool(decode_16k, io.BytesIO(body))
        except ValueError as error:
            status = 422 if "no audio samples" in str(error) else 415
            raise HTTPException(status, f"{error}: send a WAV, FLAC, OGG or MP3 file as the request body") from None
        seconds = audio.size / SAMPLE_RATE
        if seconds > runtime.max_audio_s:
            raise HTTPException(413, f"audio lasts {seconds:.1f} s, over serving.max_audio_s={runtime.max_audio_s:g}; "
                                     "send one utterance at a time")
        return audio

    def transcribe(bundle: ServedBundle, audio: np.ndarray) -> dict[str, Any]:
        text, words = bundle.transcribe(audio)
        duration = audio.size / SAMPLE_RATE
        return {"bundle": bundle.version, "text": text, "words": [word_json(w, duration) for w in words],
                "duration_s": round(duration, 3)}

    def understand(bundle: ServedBundle, text: str) -> dict[str, Any]:
        intent, confidence = bundle.understand(text)
        return {"bundle": bundle.version, "intent": intent, "confidence": round(confidence, 4)}

    def process(bundle: ServedBundle, audio: np.ndarray) -> dict[str, Any]:
        return process_audio(bundle, redact, audio)  # its "text" is for shadow comparisons: ProcessOut drops it

    def answer(endpoint: str, work: Callable[[ServedBundle, Any], dict[str, Any]], given: Any,
               background: BackgroundTasks) -> dict[str, Any]:
        bundle = runtime.champion.current  # this request's bundle, whatever happens to the alias meanwhile
        try:
            result = work(bundle, given)
        except NoIntentModel as error:
            raise HTTPException(503, str(error)) from None
        challenger = runtime.challenger.current if runtime.challenger else None
        if runtime.shadow and challenger is not None and challenger.version not in (None, bundle.version):
            background.add_task(shadow, endpoint, work, given, result, challenger)
        return result

    def shadow(endpoint: str, work: Callable[[ServedBundle, Any], dict[str, Any]], given: Any,
               champion_result: dict[str, Any], challenger: ServedBundle) -> None:
        assert runtime.shadow is not None
        try:
            started = time.perf_counter()
            result = work(challenger, given)
            runtime.shadow.record(endpoint, champion_result, result, time.perf_counter() - started)
        except Exception as error:  # the caller has its answer; a failing challenger is only reported
            log.warning("shadow run on %s failed: %s", endpoint, type(error).__name__)

    @app.post("/v1/transcribe", response_model=TranscribeOut, dependencies=[Depends(api_key)],
              openapi_extra=AUDIO_BODY, summary="audio -> text and word timings")
    async def transcribe_route(request: Request, background: BackgroundTasks) -> dict[str, Any]:
        audio = await audio_of(request)
        return await run_in_threadpool(answer, "transcribe", transcribe, audio, background)

    @app.post("/v1/understand", response_model=UnderstandOut, dependencies=[Depends(api_key)],
              summary="text -> intent and confidence")
    async def understand_route(body: UnderstandIn, background: BackgroundTasks) -> dict[str, Any]:
        return await run_in_threadpool(answer, "understand", understand, body.text, background)

    @app.post("/v1/process", response_model=ProcessOut, dependencies=[Depends(api_key)], openapi_extra=AUDIO_BODY,
              summary="audio -> transcript -> redacted transcript -> intent")
    async def process_route(request: Request, background: BackgroundTasks) -> dict[str, Any]:
        audio = await audio_of(request)
        return await run_in_threadpool(answer, "process", process, audio, background)

    @app.get("/healthz", response_model=Health, summary="which bundle is serving; no API key needed")
    def healthz() -> Health:
        bundle = runtime.champion.current
        challenger = runtime.challenger.current if runtime.challenger else None
        return Health(status="ok", champion=bundle.version, asr_model=bundle.asr_model,
                      intent_model=bundle.intent is not None, loaded_at=bundle.loaded_at,
                      last_reload_error=runtime.champion.last_error,
                      shadow_challenger=challenger.version if challenger and runtime.shadow else None)

    @app.get("/metrics", summary="Prometheus metrics; no API key needed")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    return app
