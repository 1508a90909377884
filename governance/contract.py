"""The call store contract: what one ``<call_id>.json`` must hold.

A call store is a directory (or any fsspec URL) with one JSON document per call and the
call's audio, referenced by a path relative to the JSON and inside the store. Parsing is
strict, and every failure says what is wrong and how to fix it, so ingest can quarantine
the call with that reason and go on with the batch.

Two parts are optional and checked on their own: a bot turn's ``bot`` log (what the bot runtime
understood of the customer turn it answered) and an escalated call's ``handoff`` packet (what the
agent desktop was given). A bad value there costs only that field: it is taken out of the call
with a reason (:class:`FieldProblem`), which ingest quarantines, and the call goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    bot: BotLog | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Turn:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class AsrConfidence(BaseModel):
    """The recogniser's confidence in what it heard (Whisper's, as :class:`core.asr.Heard` holds it)."""

    model_config = ConfigDict(extra="allow")
    avg_logprob: float = Field(le=0, allow_inf_nan=False)
    no_speech_prob: float = Field(ge=0, le=1)


class BotLog(BaseModel):
    """A bot turn's log from the bot runtime: what it understood of the customer turn it answered.

    ``turn``: that customer turn's index (default: the last customer turn before this bot turn).
    Platform confidences are not calibrated by voiceloop, so the monitor uses them for drift only.
    """

    model_config = ConfigDict(extra="allow")
    turn: int | None = Field(default=None, ge=0)
    intent: str | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    bundle: str | None = None
    asr: AsrConfidence | None = None


class HandoffPacket(BaseModel):
    """What an agent desktop receives when the bot escalates (the serving runtime's ``/handoff`` answers this).

    ``at_s``: when the agent took over, seconds from the call's start; ``transcript``: the
    transcript sent (None: none was sent); ``verified``: the entity types the bot verified.
    """

    model_config = ConfigDict(extra="allow")
    at_s: float = Field(ge=0, allow_inf_nan=False)
    transcript: str | None = None
    intent: str | None = None
    intent_confidence: float | None = Field(default=None, ge=0, le=1)
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    verified: list[str] = []

    @property
    def complete(self) -> bool:
        """Whether the agent got what they need without asking: transcript, intent and sentiment."""
        sent = bool(self.transcript and self.transcript.strip())
        return sent and self.intent is not None and self.sentiment is not None


@dataclass(frozen=True)
class FieldProblem:
    """An optional field taken out of a call because its value breaks the contract (the reason holds no value)."""

    field: str  # "turns.3.bot" or "handoff"
    reason: str
    value: Any


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
    handoff: HandoffPacket | None = None
    #: optional fields taken out because their values broke the contract (see module docstring)
    problems: list[FieldProblem] = Field(default=[], exclude=True)

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
        for index, turn in enumerate(self.turns):
            if turn.bot is not None and turn.speaker != "bot":
                raise ValueError(f"turn {index} carries a bot log but is a {turn.speaker} turn")
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


_SET_ASIDE = "the field was set aside (see README, 'The call store contract'), the call kept"


def _optional(document: dict[str, Any], source: str) -> list[FieldProblem]:
    """Take bad optional fields (bot logs, the handoff packet) out of ``document``, each with its reason."""
    problems: list[FieldProblem] = []
    checks: list[tuple[str, dict[str, Any], str, type[BaseModel]]] = [("handoff", document, "handoff", HandoffPacket)]
    turns = document.get("turns")
    if isinstance(turns, list):
        checks += [(f"turns.{i}.bot", turn, "bot", BotLog) for i, turn in enumerate(turns)
                   if isinstance(turn, dict) and turn.get("bot") is not None]
    for where, holder, key, model in checks:
        if holder.get(key) is None:
            continue
        try:
            model.model_validate(holder[key])
        except ValidationError as error:
            first = error.errors()[0]
            inner = ".".join(str(p) for p in first["loc"])
            reason = f"{source}: {where}{'.' + inner if inner else ''}: {first['msg']}; {_SET_ASIDE}"
            problems.append(FieldProblem(where, reason, holder.pop(key)))
    return problems


def parse_call(document: Any, source: str) -> CallRecord:
    """Validate one decoded JSON document; ``source`` names the file in the error.

    Bad optional fields are removed from ``document`` (it is changed in place) and listed in the
    record's ``problems``; anything else wrong raises :class:`ContractError`.
    """
    if not isinstance(document, dict):
        raise ContractError(f"{source}: expected a JSON object, got {type(document).__name__}")
    problems = _optional(document, source)
    try:
        record = CallRecord.model_validate(document)
    except ValidationError as error:
        raise ContractError(f"{source}: {_describe(error)} (see README, 'The call store contract')") from None
    record.problems = problems
    if record.handoff is not None and record.outcome != "escalated":
        record.problems.append(FieldProblem(
            "handoff", f"{source}: handoff: a packet on a call whose outcome is not 'escalated'; {_SET_ASIDE}",
            document.pop("handoff")))
        record.handoff = None
    max_end = max(t.end_s for t in record.turns)
    if max_end > 24 * 3600:
        raise ContractError(
            f"{source}: turn times end at {max_end:.0f} s, past 24 h; times are seconds from the call's start"
        )
    return record
