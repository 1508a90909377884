"""What each simulated call will say, by whom, over which channel: decided up front, from the seed alone.

Planning is cheap and separate from rendering, so a build is deterministic for a seed whatever
the number of worker processes, and the golden split can be sized to cover every intent before
any audio is made. The split decides the material: train calls use BANKING77 *train* utterances,
train voices and train FSDD takes; golden calls use *test* utterances, one held-out voice and a
held-out FSDD speaker, so the golden set measures generalisation and never what training saw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from core.corpus import (
    BANKING77_SPLIT,
    FSDD_SPEAKERS,
    FSDD_TAKES,
    GOLDEN_VOICE,
    TRAIN_VOICES,
    Split,
    Utterance,
    by_intent,
    intent_names,
    load_banking77,
    sample_dir,
)
from core.synthesis import Channel
from voiceloop.simulate.pii import PiiFactory, Said

BOT_VOICE = "en-us"
BOT_RATE_WPM = 165
BOT_PITCH = 50
AGENT_VOICE = "en-gb+f3"  # the human colleague a production call is escalated to
AGENT_RATE_WPM = 172
AGENT_PITCH = 58
Speaker = Literal["bot", "customer", "agent"]

GREETINGS = (
    "Thank you for calling Loop Bank. How can I help you today?",
    "Hello, you're through to the Loop Bank assistant. What can I do for you?",
    "Welcome to Loop Bank. Please tell me briefly why you're calling.",
)
SPAN_DAYS = 7  # started_at values spread over the week before the anchor


@dataclass(frozen=True)
class Segment:
    """A stretch of one turn's audio: TTS of ``text``, or FSDD recordings of ``digits``."""

    text: str
    digits: str = ""
    takes: tuple[int, ...] = ()  # the FSDD take used for each digit


@dataclass(frozen=True)
class PiiSpan:
    """Where a PII value sits in a turn's true transcript (character offsets)."""

    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class TurnPlan:
    speaker: Speaker
    transcript: str
    segments: tuple[Segment, ...]
    intent: str | None = None
    source: str | None = None  # the BANKING77 row the turn says, if any
    pii: tuple[PiiSpan, ...] = ()


@dataclass(frozen=True)
class CallPlan:
    call_id: str
    index: int
    split: Split | None  # None: a production call, which belongs to no split
    started_at: str
    caller_id: str
    consent: bool
    outcome: Literal["contained", "escalated"]
    voice: str
    rate_wpm: int
    pitch: int
    channel: Channel
    snr_db: float | None
    digit_speaker: str
    turns: tuple[TurnPlan, ...]
    gaps_s: tuple[float, ...]  # silence before each turn, then after the last one
    noise_seed: int
    slot_fraction: float  # where in its time slot the call starts (see _dated)


def call_id(split: Split, seed: int, index: int) -> str:
    """Unique across builds with different split or seed, so builds can share one store."""
    return f"call-{split}-s{seed}-{index:06d}"


def make_turn(
    speaker: Speaker,
    said: list[Said],
    rng: random.Random,
    takes: tuple[int, ...],
    intent: Utterance | None = None,
) -> TurnPlan:
    """One turn saying ``said``: its true transcript, PII spans, and the TTS / FSDD segments to render."""
    transcript = ""
    spans: list[PiiSpan] = []
    segments: list[Segment] = []
    tts: list[str] = []
    for part in said:
        glue = part.join if transcript else ""
        start = len(transcript) + len(glue)
        transcript += glue + part.text
        if part.entity:
            spans.append(PiiSpan(part.entity, start, len(transcript)))
        if part.digits:
            if tts:
                segments.append(Segment("".join(tts).strip()))
                tts = []
            segments.append(Segment(part.text, part.digits, tuple(rng.choice(takes) for _ in part.digits)))
        else:
            tts.append(glue + part.text)
    if tts and "".join(tts).strip(" ."):
        segments.append(Segment("".join(tts).strip()))
    return TurnPlan(
        speaker=speaker,
        transcript=transcript,
        segments=tuple(segments),
        intent=intent.intent if intent else None,
        source=intent.source if intent else None,
        pii=tuple(spans),
    )


class _Utterances:
    """Hands out utterances: first a shuffled per-intent quota (coverage), then an endless shuffled stream."""

    def __init__(
        self, pool: tuple[Utterance, ...], intents: tuple[str, ...], per_intent: int, rng: random.Random
    ) -> None:
        self.rng = rng
        self.pool = list(pool)
        self.stream: list[Utterance] = []
        self.quota: list[Utterance] = []
        groups = by_intent(pool)
        for intent in intents if per_intent > 0 else ():
            rows = list(groups.get(intent, []))
            if not rows:
                raise ValueError(f"intent {intent!r} has no utterances in this split")
            picked: list[Utterance] = []
            while len(picked) < per_intent:  # more than the split holds: go round again
                rng.shuffle(rows)
                picked.extend(rows[: per_intent - len(picked)])
            self.quota.extend(picked)
        rng.shuffle(self.quota)

    def take(self, k: int) -> list[Utterance]:
        if self.quota:
            taken, self.quota = self.quota[:k], self.quota[k:]
            return taken
        out = []
        for _ in range(k):
            if not self.stream:
                self.stream = list(self.pool)
                self.rng.shuffle(self.stream)
            out.append(self.stream.pop())
        return out


def plan_calls(
    n: int,
    *,
    split: Split = "train",
    seed: int = 0,
    per_intent: int = 0,
    consent_rate: float = 0.9,
    telephone_rate: float = 0.5,
    sample_dir_path: Path | None = None,
    now: datetime | None = None,
) -> list[CallPlan]:
    """Plan ``n`` calls; with ``per_intent`` > 0, more until every intent has that many labelled turns."""
    if split not in ("train", "golden"):
        raise ValueError(f"split must be 'train' or 'golden', not {split!r}")
    folder = sample_dir(sample_dir_path)
    rng = random.Random(f"voiceloop-simulate:{split}:{seed}")
    pii = PiiFactory(rng.getrandbits(32))
    utterances = _Utterances(
        load_banking77(BANKING77_SPLIT[split], folder), intent_names(folder), per_intent, rng
    )
    takes = FSDD_TAKES[split]
    golden = split == "golden"
    callers: list[str] = []
    plans: list[CallPlan] = []
    while len(plans) < n or utterances.quota:
        index = len(plans)
        crng = random.Random(rng.getrandbits(64))
        n_intents = 2 if crng.random() < (0.85 if golden else 0.4) else 1
        asks = utterances.take(n_intents)
        turns = [make_turn("bot", [Said(crng.choice(GREETINGS))], crng, takes)]
        for i, ask in enumerate(asks):
            said = [Said(ask.said)]
            if i == len(asks) - 1 and crng.random() < 0.2:  # the ask and PII in one breath
                said += pii.sentence(crng, items=1, recorded_digits=True)
            turns.append(make_turn("customer", said, crng, takes, intent=ask))
        if crng.random() < (0.35 if golden else 0.6):
            said = pii.sentence(crng, items=1 if crng.random() < 0.7 else 2, recorded_digits=True)
            turns.insert(crng.randint(2, len(turns)), make_turn("customer", said, crng, takes))
        if callers and crng.random() < 0.15:
            caller = crng.choice(callers)  # a returning caller
        else:
            caller = f"caller-{crng.getrandbits(64):016x}"
            callers.append(caller)
        telephone = crng.random() < telephone_rate
        plans.append(
            CallPlan(
                call_id=call_id(split, seed, index),
                index=index,
                split=split,
                started_at="",  # set by _dated once the number of calls is known
                caller_id=caller,
                consent=crng.random() < consent_rate,
                outcome="escalated" if crng.random() < 0.2 else "contained",
                voice=GOLDEN_VOICE if golden else crng.choice(TRAIN_VOICES),
                rate_wpm=crng.randint(150, 185),
                pitch=crng.randint(35, 65),
                channel="telephone8k" if telephone else "clean16k",
                snr_db=round(crng.uniform(5.0, 20.0), 1) if telephone else None,
                digit_speaker=crng.choice(FSDD_SPEAKERS[split]),
                turns=tuple(turns),
                gaps_s=tuple(round(crng.uniform(0.35, 0.9), 3) for _ in range(len(turns) + 1)),
                noise_seed=crng.getrandbits(32),
                slot_fraction=crng.uniform(0.05, 0.95),
            )
        )
    return _dated(plans, now)


def _dated(plans: list[CallPlan], now: datetime | None) -> list[CallPlan]:
    """Spread start times over the days before ``now``, increasing with the call index."""
    anchor = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    first = anchor - timedelta(days=SPAN_DAYS)
    slot = timedelta(days=SPAN_DAYS) / max(len(plans), 1)
    return [
        replace(p, started_at=(first + slot * (p.index + p.slot_fraction)).replace(microsecond=0).isoformat())
        for p in plans
    ]
