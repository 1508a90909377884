"""``/v1/calls/{call_id}``: a call's turns kept, redacted, so the agent gets the call so far when the bot escalates.

The bot platform posts each customer turn (``POST .../turns``: the audio file as the body, as for
``/v1/process``, or JSON ``{"text": ...}``), reads the handoff packet when it escalates (``GET
.../handoff``) and ends the session when the call ends (``DELETE``). Turns are redacted before
they are kept (serving/sessions.py); a turn's model work holds a slot of admission control, as
``/v1/process``'s does (serving/admission.py). Every route needs a key whose role holds the
``transcription`` purpose (voice-bot, admin: what the caller says goes in); other keys get 403.
Requests are audited per key by route, never by call id or content (serving/app.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from governance.contract import SAFE_ID
from serving.api_keys import ApiKey
from serving.guard import TEXT_BODY_BYTES
from serving.routes.inference import AUDIO_BODY, audio_of, model_slot
from serving.runtime import RAW_PURPOSE
from serving.schemas import VERIFIED, EntityType, HandoffOut, TurnIn, TurnOut
from serving.sessions import SessionError, SessionStore, Source, customer_turn
from serving.state import KeyDep, RuntimeDep
from training.bundle import ServedBundle

_AUDIO_CONTENT: dict[str, Any] = cast(dict[str, Any], AUDIO_BODY["requestBody"])["content"]
TURN_BODY = {"requestBody": {"required": True, "description": "the audio file itself, or JSON {\"text\": ...}",
                             "content": {"application/json": {"schema": TurnIn.model_json_schema()},
                                         **_AUDIO_CONTENT}}}
_TEMPLATE = re.compile(r"^/v1/calls/[^/]+(/turns|/handoff)?$")

CallId = Annotated[str, Path(pattern=SAFE_ID.pattern, description="the call's id: letters, digits, '_', '-', '.' "
                                                                  "(128 at most, no leading dot)")]
Verified = Annotated[list[EntityType] | None, Query(max_length=32, description=VERIFIED)]


def route_of(path: str) -> str | None:
    """The route a ``/v1/calls`` path is an instance of (``/v1/calls/{call_id}/turns``): metrics and the
    audit name routes, never call ids."""
    match = _TEMPLATE.match(path)
    return "/v1/calls/{call_id}" + (match.group(1) or "") if match else None


def call_access(key: KeyDep, runtime: RuntimeDep) -> ApiKey:
    """The key, if its role may hand call content to a session (the ``transcription`` purpose), else 403."""
    if not runtime.raw_for(key):
        raise HTTPException(403, f"call sessions need an API key whose role holds the {RAW_PURPOSE} purpose "
                                 f"(e.g. voice-bot); this key's role is {key.role!r}")
    return key


def sessions_of(request: Request) -> SessionStore:
    """The app's call sessions (``app.state.sessions``)."""
    sessions: SessionStore = request.app.state.sessions
    return sessions


SessionsDep = Annotated[SessionStore, Depends(sessions_of)]
router = APIRouter(prefix="/v1/calls", tags=["calls"], dependencies=[Depends(call_access)])


@contextmanager
def _served() -> Iterator[None]:
    """A session refusal (unknown call, too many turns) as its HTTP status."""
    try:
        yield
    except SessionError as error:
        raise HTTPException(error.status, str(error)) from None


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def _said(request: Request, runtime: RuntimeDep, bundle: ServedBundle) -> tuple[str, Source, list[str]]:
    """What the caller said (in clear, for redaction only), where it came from, and the types the JSON says
    were verified."""
    if not _is_json(request):
        audio = await audio_of(request, runtime)
        return await run_in_threadpool(bundle.hear, audio), "audio", []
    body = await request.body()
    if len(body) > TEXT_BODY_BYTES:
        raise HTTPException(413, f"a text turn is at most {TEXT_BODY_BYTES} bytes of JSON")
    try:
        turn = TurnIn.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]) from None
    return turn.text, "text", list(turn.verified)


@router.post("/{call_id}/turns", response_model=TurnOut, openapi_extra=TURN_BODY,
             summary="one customer turn (audio or text) -> redacted, understood and kept in the call's session")
async def post_turn(call_id: CallId, request: Request, runtime: RuntimeDep, sessions: SessionsDep,
                    verified: Verified = None) -> dict[str, Any]:
    arrived, bundle = sessions.now(), runtime.champion.current
    with _served():
        sessions.check_room(call_id)
    async with model_slot(request, runtime, "turn"):
        text, source, also_verified = await _said(request, runtime, bundle)
        if not text.strip():  # audio without speech: nothing to keep
            return {"call_id": call_id, "turn": None, "text": "", "pii_types": [], "intent": None,
                    "confidence": None, "sentiment": None, "speech": False, "bundle": bundle.version}
        turn = await run_in_threadpool(customer_turn, text, runtime.redact, bundle, sessions.masked_types, source,
                                       [*(verified or []), *also_verified])
    with _served():
        index = sessions.add(call_id, turn, arrived)
    runtime.metrics.session_turns.labels(source).inc()
    return {"call_id": call_id, "turn": index, "text": turn.text, "pii_types": sorted({e.type for e in turn.entities}),
            "intent": turn.intent, "confidence": turn.confidence, "sentiment": turn.sentiment, "speech": True,
            "bundle": turn.bundle}


@router.get("/{call_id}/handoff", response_model=HandoffOut,
            summary="the handoff packet: the call so far, redacted, for the agent the bot escalates to")
async def handoff(call_id: CallId, sessions: SessionsDep) -> dict[str, Any]:
    with _served():
        return sessions.packet(call_id)


@router.delete("/{call_id}", status_code=204, response_class=Response,
               summary="end the call's session (the bot platform calls it when the call ends)")
async def end_call(call_id: CallId, sessions: SessionsDep) -> Response:
    with _served():
        sessions.end(call_id)
    return Response(status_code=204)
