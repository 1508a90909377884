"""``/v1/transcribe``, ``/v1/understand``, ``/v1/process``: the champion bundle's answers, behind an API key.

Each request is answered by the bundle that was the champion when it arrived; in shadow mode the
challenger answers the same input after the response is sent, and only the comparison is kept.
The model work (decoding included) holds a slot of the process's admission control, or the request
is shed with 503 (serving/admission.py); a shadow run takes a slot too, only one that is free with no
request waiting, and is left out otherwise.
``/v1/transcribe`` returns what was said with PII replaced, text and words alike, unless the key's
role holds the ``transcription`` purpose (docs/serving.md, "API keys").
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from core.audio import SAMPLE_RATE, AudioTooLong, decode_16k, word_json
from serving.schemas import ProcessOut, TranscribeOut, UnderstandIn, UnderstandOut
from serving.state import KeyDep, Runtime, RuntimeDep, api_key
from training.bundle import NoIntentModel, ServedBundle
from training.bundle import process as process_audio

log = logging.getLogger("voiceloop.serving")
AUDIO_BODY = {"requestBody": {"required": True, "description": "the audio file itself (WAV, FLAC, OGG, MP3, ...)",
                              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}}
Work = Callable[[Runtime, ServedBundle, Any], dict[str, Any]]

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Depends(api_key)])


@asynccontextmanager
async def model_slot(request: Request, runtime: Runtime, work: str) -> AsyncIterator[None]:
    """A slot of admission control for the request's model work ``work``, or 503 (serving/admission.py).

    The body is read first: asking whether the client has left reads the connection, which must not
    find the body still there to take."""
    await request.body()
    async with runtime.admission.admitted(work, request.is_disconnected):
        yield


async def audio_of(request: Request, runtime: RuntimeDep) -> np.ndarray:
    """The uploaded audio at 16 kHz, or the 4xx that says what is wrong with the upload.

    The body is at most ``serving.max_upload_mb`` (serving/guard.py); its duration is checked from the
    file's header and while decoding, so a small file holding hours of audio is refused at once.
    """
    body = await request.body()
    if not body:
        raise HTTPException(400, "empty upload: send the audio file itself as the request body")
    try:
        return await run_in_threadpool(decode_16k, io.BytesIO(body), runtime.max_audio_s)
    except AudioTooLong as error:
        raise HTTPException(413, f"{error} (serving.max_audio_s); send one utterance at a time") from None
    except ValueError as error:
        status = 422 if "no audio samples" in str(error) else 415
        raise HTTPException(status, f"{error}: send a WAV, FLAC, OGG or MP3 file as the request body") from None


@dataclass(frozen=True)
class Heard:
    """A /v1/transcribe request's audio, and whether its key may have the raw transcript."""

    audio: np.ndarray
    raw: bool


def transcribe(runtime: Runtime, bundle: ServedBundle, heard: Heard) -> dict[str, Any]:
    text, words = bundle.transcribe(heard.audio)
    duration = heard.audio.size / SAMPLE_RATE
    timed = [word_json(w, duration) for w in words]
    if not heard.raw and text.strip():
        from serving.redacted_words import redacted_words

        redaction = runtime.redact(text)
        text, timed = redaction.redacted, redacted_words(text, words, redaction.entities, duration)
    return {"bundle": bundle.version, "text": text, "words": timed, "duration_s": round(duration, 3),
            "speech": bool(text.strip()), "redacted": not heard.raw}


def understand(_runtime: Runtime, bundle: ServedBundle, text: str) -> dict[str, Any]:
    intent, confidence = bundle.understand(text)
    return {"bundle": bundle.version, "intent": intent, "confidence": round(confidence, 4)}


def process(runtime: Runtime, bundle: ServedBundle, audio: np.ndarray) -> dict[str, Any]:
    return process_audio(bundle, runtime.redact, audio)  # its "text" is for shadow comparisons: ProcessOut drops it


def answer(runtime: Runtime, endpoint: str, work: Work, given: Any, background: BackgroundTasks) -> dict[str, Any]:
    """``work`` done by this request's champion; the challenger runs it after the response in shadow mode."""
    bundle = runtime.champion.current  # this request's bundle, whatever happens to the alias meanwhile
    try:
        result = work(runtime, bundle, given)
    except NoIntentModel as error:
        raise HTTPException(503, str(error)) from None
    challenger = runtime.challenger.current if runtime.challenger else None
    if runtime.shadow and challenger is not None and challenger.version not in (None, bundle.version):
        if runtime.admission.queued:  # requests wait for the model: the comparison is optional work
            runtime.metrics.shadow_skipped.inc()
        else:
            background.add_task(shadow, runtime, endpoint, work, given, result, challenger)
    return result


async def shadow(runtime: Runtime, endpoint: str, work: Work, given: Any, champion_result: dict[str, Any],
                 challenger: ServedBundle) -> None:
    """The challenger's run, in a model slot that is free now or not at all (a request that arrived since
    the answer comes first)."""
    async with runtime.admission.spare(f"shadow-{endpoint}") as held:
        if not held:
            runtime.metrics.shadow_skipped.inc()
            return
        await run_in_threadpool(compare, runtime, endpoint, work, given, champion_result, challenger)


def compare(runtime: Runtime, endpoint: str, work: Work, given: Any, champion_result: dict[str, Any],
            challenger: ServedBundle) -> None:
    assert runtime.shadow is not None
    try:
        started = time.perf_counter()
        result = work(runtime, challenger, given)
        runtime.shadow.record(endpoint, champion_result, result, time.perf_counter() - started)
    except Exception as error:  # the caller has its answer; a failing challenger is only reported
        log.warning("shadow run on %s failed: %s", endpoint, type(error).__name__)


@router.post("/transcribe", response_model=TranscribeOut, openapi_extra=AUDIO_BODY,
             summary="audio -> text and word timings, PII replaced unless the key's role may have raw transcripts")
async def transcribe_route(request: Request, background: BackgroundTasks, runtime: RuntimeDep,
                           key: KeyDep) -> dict[str, Any]:
    async with model_slot(request, runtime, "transcribe"):
        heard = Heard(await audio_of(request, runtime), runtime.raw_for(key))
        return await run_in_threadpool(answer, runtime, "transcribe", transcribe, heard, background)


@router.post("/understand", response_model=UnderstandOut, summary="text -> intent and confidence")
async def understand_route(request: Request, body: UnderstandIn, background: BackgroundTasks,
                           runtime: RuntimeDep) -> dict[str, Any]:
    async with model_slot(request, runtime, "understand"):
        return await run_in_threadpool(answer, runtime, "understand", understand, body.text, background)


@router.post("/process", response_model=ProcessOut, openapi_extra=AUDIO_BODY,
             summary="audio -> transcript -> redacted transcript -> intent")
async def process_route(request: Request, background: BackgroundTasks, runtime: RuntimeDep) -> dict[str, Any]:
    async with model_slot(request, runtime, "process"):
        audio = await audio_of(request, runtime)
        return await run_in_threadpool(answer, runtime, "process", process, audio, background)
