"""The request and response bodies of the API, with examples for its OpenAPI page (``/docs``)."""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, Field, field_validator


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
