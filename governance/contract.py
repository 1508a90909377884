"""The call store contract: what one ``<call_id>.json`` must hold.

A call store is a directory (or any fsspec URL) with one JSON document per call and the
call's audio, referenced by a path relative to the JSON and inside the store. Parsing is
strict, and every failure says what is wrong and how to fix it, so ingest can quarantine
the call with that reason and go on with the batch.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ContractError(ValueError):
    """A call document breaks the contract; the message is safe to log (no transcript text)."""


class Consent(BaseModel):
    model_config = ConfigDict(extra="allow")
    # JSON true or false only: pydantic's lax bool would read "yes", "1" or 1 as consent
    training: StrictBool


class Turn(BaseModel):
    model_config = ConfigDict(extra="allow")
    speaker: Literal["customer", "bot", "agent"]
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str

    @model_validator(mode="after")
    def _ordered(self) -> Turn:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class TurnLabel(BaseModel):
    model_config = ConfigDict(extra="allow")
    turn: int = Field(ge=0, description="index into turns; must be a customer turn")
    transcript: str | None = None
    intent: str | None = None


class CallRecord(BaseModel):
    """One production call, as the call store delivers it."""

    model_config = ConfigDict(extra="allow")
    call_id: str
    started_at: datetime
    caller_id: str
    consent: Consent
    audio: str
    turns: list[Turn] = Field(min_length=1)
    labels: list[TurnLabel] = []
    outcome: Literal["contained", "escalated"] | None = None

    @field_validator("call_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not SAFE_ID.match(value):
            raise ValueError("call_id may hold only letters, digits, '_', '-', '.' (max 128, no leading dot)")
        return value

    @field_validator("started_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("started_at needs a timezone (ISO 8601 with offset or Z)")
        return value

    @field_validator("audio")
    @classmethod
    def _inside_store(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "~")) or "://" in value or ".." in parts or not value.strip():
            raise ValueError("audio must be a path relative to the call JSON, inside the store")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CallRecord:
        for label in self.labels:
            if label.turn >= len(self.turns):
                raise ValueError(f"labels refer to turn {label.turn}, but the call has {len(self.turns)} turns")
            if self.turns[label.turn].speaker != "customer":
                raise ValueError(f"labels refer to turn {label.turn}, which is not a customer turn")
        return self

    def label_for(self, turn_index: int) -> TurnLabel | None:
        return next((lab for lab in self.labels if lab.turn == turn_index), None)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    # pydantic echoes the bad input in some messages; keep only the rule, never call content.
    return f"{where}: {first['msg']}"


def parse_call(document: Any, source: str) -> CallRecord:
    """Validate one decoded JSON document; ``source`` names the file in the error."""
    if not isinstance(document, dict):
        raise ContractError(f"{source}: expected a JSON object, got {type(document).__name__}")
    try:
        record = CallRecord.model_validate(document)
    except ValidationError as error:
        raise ContractError(f"{source}: {_describe(error)} (see README, 'The call store contract')") from None
    max_end = max(t.end_s for t in record.turns)
    if max_end > 24 * 3600:
        raise ContractError(
            f"{source}: turn times end at {max_end:.0f} s, past 24 h; times are seconds from the call's start"
        )
    return record
