"""What one production call tells the monitor, as numbers: the per-call record behind every daily figure.

The signals are read from a redacted call (the redacted zone's document, or one redacted in memory
for a call without training consent) plus, for customer turns no bot log covers, what the champion
made of the turn (:class:`HeardTurn`, from ``monitoring.champion``). A record holds ids, times,
slice values, intents, entity TYPES and numbers: never text, so it may outlive the calls' text and
cover calls whose callers did not consent to training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.sentiment import progression

#: bumped when a record's meaning changes: older records are recomputed from their calls where those remain
SIGNALS_VERSION = 1


@dataclass(frozen=True)
class HeardTurn:
    """The champion's reading of one customer turn: its ASR confidence and the intent it understood."""

    intent: str | None
    confidence: float | None
    avg_logprob: float
    no_speech_prob: float
    words: int
    bundle: str
    dbfs: float | None = None  # level of the audio heard
    snr_db: float | None = None  # blind SNR estimate of the audio heard (monitoring.champion.snr_estimate)


@dataclass
class TurnSignal:
    """One customer turn: who understood it (the bot's log, or the champion) and how sure each part was."""

    index: int
    duration_s: float
    dbfs: float | None
    source: str  # "bot-log": the platform's own figures (drift only) | "champion": computed here (calibrated)
    intent: str | None = None
    confidence: float | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    words: int | None = None
    bundle: str | None = None
    snr_db: float | None = None
    latency_ms: float | None = None  # end of this turn to the start of the bot's answer (None: no bot answer)


@dataclass
class CallSignals:
    """The per-call monitoring record (``monitoring/calls/<call_id>.json``)."""

    call_id: str
    caller_ref: str
    started_at: str
    consent_training: bool
    channel: str | None
    voice: str | None
    duration_s: float
    outcome: str | None
    turns: list[TurnSignal] = field(default_factory=list)
    sentiment_start: float | None = None
    sentiment_end: float | None = None
    handoff_present: bool = False
    handoff_complete: bool = False
    handoff_repeated_types: list[str] = field(default_factory=list)
    snr_est_db: float | None = None
    made_from: str | None = None  # the digest of the call document the signals were read from
    version: int = SIGNALS_VERSION

    @property
    def day(self) -> str:
        return self.started_at[:10]

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.started_at)

    @property
    def escalated(self) -> bool:
        return self.outcome == "escalated"

    @property
    def contained(self) -> bool:
        return self.outcome == "contained"

    @property
    def first_intent(self) -> str | None:
        return next((t.intent for t in self.turns if t.intent), None)

    @property
    def bundle(self) -> str | None:
        return next((t.bundle for t in self.turns if t.bundle), None)

    @property
    def latencies_ms(self) -> list[float]:
        return [t.latency_ms for t in self.turns if t.latency_ms is not None]

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "call_ids": [self.call_id]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CallSignals:
        fields = {k: v for k, v in record.items() if k != "call_ids"}
        fields["turns"] = [TurnSignal(**t) for t in fields.get("turns", [])]
        return cls(**fields)


def _bot_answers(turns: list[dict[str, Any]], before_s: float) -> dict[int, dict[str, Any]]:
    """Customer turn index -> the bot turn that answered it (the next turn, when it is the bot's)."""
    answers: dict[int, dict[str, Any]] = {}
    for position, turn in enumerate(turns[:-1]):
        following = turns[position + 1]
        if turn["speaker"] == "customer" and following["speaker"] == "bot" and following["start_s"] < before_s:
            answers[turn["index"]] = following
    return answers


def _logged(turns: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Customer turn index -> the bot log about it (``bot.turn``, else the customer turn before that bot turn)."""
    logs: dict[int, dict[str, Any]] = {}
    last_customer: int | None = None
    for turn in turns:
        if turn["speaker"] == "customer":
            last_customer = turn["index"]
        elif turn["speaker"] == "bot" and turn.get("bot"):
            about = turn["bot"].get("turn", last_customer)
            if about is not None:
                logs[about] = turn["bot"]
    return logs


def repeated_to_agent(turns: list[dict[str, Any]], handoff_at_s: float, counted: set[str]) -> list[str]:
    """Entity types the caller gave the bot and then again to the agent (only those in ``counted``)."""
    before: set[str] = set()
    after: set[str] = set()
    for turn in turns:
        if turn["speaker"] != "customer":
            continue
        types = set(turn.get("pii_types") or ()) & counted
        (before if turn["start_s"] < handoff_at_s else after).update(types)
    return sorted(before & after)


def call_signals(call: dict[str, Any], heard: dict[int, HeardTurn], repeat_types: set[str]) -> CallSignals:
    """The signals of one redacted call; ``heard``: the champion's reading of turns no bot log covers."""
    turns = sorted(call["turns"], key=lambda t: t["start_s"])
    packet = call.get("handoff")
    handoff_at = float(packet["at_s"]) if packet else float("inf")
    if not packet and call.get("outcome") == "escalated":  # no packet: the agent's first turn marks the handoff
        handoff_at = min((t["start_s"] for t in turns if t["speaker"] == "agent"), default=float("inf"))
    answers = _bot_answers(turns, handoff_at)
    logs = _logged(turns)
    signals: list[TurnSignal] = []
    for turn in turns:
        if turn["speaker"] != "customer" or turn["start_s"] >= handoff_at:
            continue
        index = turn["index"]
        answer = answers.get(index)
        signal = TurnSignal(index=index, duration_s=round(turn["end_s"] - turn["start_s"], 3),
                            dbfs=turn.get("speech_dbfs"), source="champion",
                            latency_ms=round((answer["start_s"] - turn["end_s"]) * 1000, 1) if answer else None)
        log = logs.get(index)
        if log is not None:
            asr = log.get("asr") or {}
            signal.source = "bot-log"
            signal.intent, signal.confidence = log.get("intent"), log.get("confidence")
            signal.bundle = log.get("bundle")
            signal.avg_logprob, signal.no_speech_prob = asr.get("avg_logprob"), asr.get("no_speech_prob")
        elif index in heard:
            h = heard[index]
            signal.intent, signal.confidence, signal.bundle = h.intent, h.confidence, h.bundle
            signal.avg_logprob, signal.no_speech_prob, signal.words = h.avg_logprob, h.no_speech_prob, h.words
            signal.dbfs, signal.snr_db = h.dbfs if h.dbfs is not None else signal.dbfs, h.snr_db
        else:
            signal.source = "none"  # neither a log nor a champion reading (no audio): latency and sentiment only
        signals.append(signal)
    customer_texts = [t.get("text") or "" for t in turns if t["speaker"] == "customer"]  # the agent's part too
    mood = progression(customer_texts)
    meta = call.get("meta") or {}
    return CallSignals(
        call_id=call["call_id"],
        caller_ref=call["caller_ref"],
        started_at=call["started_at"],
        consent_training=bool(call.get("consent_training", True)),
        channel=meta.get("channel"),
        voice=meta.get("voice"),
        duration_s=float((call.get("audio") or {}).get("duration_s") or 0.0),
        outcome=call.get("outcome"),
        turns=signals,
        sentiment_start=mood.start if mood else None,
        sentiment_end=mood.end if mood else None,
        handoff_present=packet is not None,
        handoff_complete=bool(packet and packet.get("transcript_sent") and packet.get("intent") is not None
                              and packet.get("sentiment") is not None),
        handoff_repeated_types=repeated_to_agent(turns, handoff_at, repeat_types) if handoff_at < float("inf") else [],
        snr_est_db=_median([t.snr_db for t in signals]),
        made_from=call.get("raw_digest"),
    )


def _median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return present[len(present) // 2] if present else None
