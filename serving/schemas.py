"""The request and response bodies of the API, with examples for its OpenAPI page (``/docs``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
