"""The request and response bodies of the API, with examples for its OpenAPI page (``/docs``)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from governance.contract import HandoffPacket


class WordOut(BaseModel):
    word: str
    start: float = Field(description="seconds from the start of the audio")
    end: float


class TranscribeOut(BaseModel):
    bundle: str | None = Field(description="the bundle version that answered (null: no champion yet, base ASR)")
    text: str = Field(description="what was said; PII replaced by <TYPE> unless the key's role may have raw text")
    words: list[WordOut] = Field(description="the words with times; a redacted value is one <TYPE> word")
    duration_s: float
    speech: bool = Field(description="false: the audio holds no speech (text and words are empty)")
    redacted: bool = Field(description="whether PII was replaced (the key's role lacks the transcription purpose)")


def _printable(text: str) -> str:
    """``text`` without whitespace and control or format characters: what is left to understand."""
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] != "C")


class UnderstandIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000, examples=["I still have not received my new card"])

    @field_validator("text")
    @classmethod
    def _understandable(cls, text: str) -> str:  # (pydantic refuses lone surrogates itself: string_unicode)
        if not _printable(text):
            raise ValueError("no text: only whitespace or control characters; send what the caller said")
        return text


class UnderstandOut(BaseModel):
    bundle: str | None
    intent: str = Field(examples=["card_arrival"])
    confidence: float = Field(ge=0, le=1, description="the intent model's probability for that intent")


class ProcessOut(BaseModel):
    bundle: str | None
    transcript: str = Field(description="what the ASR heard, PII replaced by <TYPE> placeholders")
    pii_types: list[str] = Field(description="the kinds of PII that were replaced")
    intent: str | None = Field(description="null when the audio holds no speech")
    confidence: float | None
    duration_s: float
    speech: bool = Field(description="false: the audio holds no speech, so there is no intent")


class Health(BaseModel):
    status: str = Field(description='"ok", or "degraded" while following an alias fails (the old bundle serves)')
    champion: str | None
    asr_model: str
    intent_model: bool
    loaded_at: float
    last_reload_error: str | None = Field(description="why following the champion alias fails now (null: it works)")
    challenger_error: str | None = Field(description="the same for the challenger alias in shadow mode")
    shadow_challenger: str | None


EntityType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]  # a <TYPE> name: CREDIT_CARD
VERIFIED = "entity types the bot verified in this turn (e.g. DATE_OF_BIRTH); the packet flags them"


class TurnIn(UnderstandIn):
    """A customer turn as text, capped as ``/v1/understand``'s (an audio turn is the audio file itself)."""

    verified: list[EntityType] = Field(default=[], max_length=32, description=VERIFIED)


class TurnOut(BaseModel):
    call_id: str
    turn: int | None = Field(description="the turn's index in the call (null: no speech, nothing kept)")
    text: str = Field(description="what the caller said, PII replaced by <TYPE> (all the session keeps)")
    pii_types: list[str] = Field(description="the kinds of PII found in the turn")
    intent: str | None = Field(description="read from the redacted text; null without speech or intent model")
    confidence: float | None = Field(ge=0, le=1)
    sentiment: float | None = Field(ge=-1, le=1, description="the caller's sentiment in this turn (compound)")
    speech: bool = Field(description="false: the audio holds no speech; the turn was not kept")
    bundle: str | None


class HandoffEntity(BaseModel):
    type: str = Field(examples=["CREDIT_CARD"])
    verified: bool = Field(description="whether the bot verified this type in some turn")
    masked: str | None = Field(description="the last 4 digits for the types policy allows (serving.sessions."
                                           "masked_types), else null; never the value", examples=["•••• 1234"])


class HandoffTurn(BaseModel):
    index: int
    speaker: Literal["customer"]
    text: str = Field(description="redacted")
    intent: str | None
    confidence: float | None
    sentiment: float
    at_s: float = Field(description="when the turn arrived, seconds from the session's first turn")
    source: Literal["audio", "text"]


class SentimentProgressionOut(BaseModel):
    """The caller's sentiment at the opening and the close of the call so far (core.sentiment.progression)."""

    start: float
    end: float
    change: float = Field(description="end - start: negative, the caller got more upset")
    turns: int


class HandoffOut(HandoffPacket):
    """The handoff packet (governance.contract.HandoffPacket) and what an agent desktop shows with it."""

    call_id: str
    sentiment_trend: list[float] = Field(description="each turn's sentiment, first turn first")
    sentiment_progression: SentimentProgressionOut | None = Field(description="opening vs closing sentiment")
    entities: list[HandoffEntity] = Field(description="each entity type the caller gave, first given first")
    turns: list[HandoffTurn]
    bundle: str | None = Field(description="the bundle version that understood the latest turn")
