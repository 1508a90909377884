"""A production stream to monitor, planned from the seed alone: days of calls, callers who call back, drifts.

Each day has ``calls_per_day`` base calls (ids ``call-prod-s<seed>-d<day>-<n>``) at times within
opening hours (08:00-20:00 UTC). A call whose caller was not served brings a callback from the
same caller about the same intent (probability 0.6, 0.8 in an outage; the same day up to two
days later); a served one rarely does (0.05, within a week). Callbacks are extra calls
(``<first call id>-r1``, ``-r2``) and stop at the stream's last day.

Every call draws its numbers from its own :class:`Draws` (seed, call id), and drifts transform
its :class:`Setting` before the dialogue is composed (``drift``), so a drift leaves the calls it
does not touch exactly as in the base stream, and scenarios re-render only what differs. The
ground truth of every call (:func:`truth`) comes from the plan alone, before any audio.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from core.corpus import (
    FSDD_SPEAKERS,
    FSDD_TAKES,
    TRAIN_VOICES,
    Utterance,
    by_intent,
    intent_names,
    load_banking77,
    sample_dir,
)
from voiceloop.simulate.dialogue import Caller, Dialogue, compose
from voiceloop.simulate.draws import Draws
from voiceloop.simulate.drift import DriftSpec, Setting, apply_drifts, hot_intents
from voiceloop.simulate.pii import PiiFactory
from voiceloop.simulate.plan import CallPlan

BUNDLE = "bot-2026.11"  # the bot bundle every bot log names (constant: this stream changes no bundle)
OPENING_HOURS = (8, 20)  # UTC
TELEPHONE_RATE = 0.6
CONSENT_RATE = 0.9
CALLBACK_RATE = {"unresolved": 0.6, "outage": 0.8, "resolved": 0.05}
MAX_CALLBACKS = 2  # a chain of calls about one ask: the first call and at most two callbacks
TAKES = FSDD_TAKES["golden"]  # FSDD's test takes, read by the train speakers: production numbers, never trained on


@dataclass(frozen=True)
class ProductionCall:
    """One planned production call: what is rendered (``plan``) and what really happened (the rest)."""

    plan: CallPlan
    day: int
    intent: str  # what the caller really asked about
    setting: Setting
    drifts: tuple[str, ...]  # the drifts that touched it
    dialogue: Dialogue
    callback: str | None  # the call it led to
    callback_of: str | None  # the call it repeats


@dataclass(frozen=True)
class Stream:
    seed: int
    start: date
    days: int
    calls_per_day: int
    drifts: tuple[DriftSpec, ...]
    bundle: str
    hot_intents: tuple[str, ...]
    calls: tuple[ProductionCall, ...]  # in order of started_at

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day - 1)


class _Planner:
    """The stream-wide material: the intent mix, the test utterances, one Faker reseeded per caller."""

    def __init__(self, seed: int, days: int, start: date, specs: Sequence[DriftSpec], folder: Path) -> None:
        self.seed, self.days, self.start, self.specs = seed, days, start, tuple(specs)
        self.intents = intent_names(folder)
        self.utterances = by_intent(load_banking77("test", folder))
        ranked = list(self.intents)  # a Zipf-like mix: a few intents common, most rare
        random.Random(f"voiceloop-production:{seed}:mix").shuffle(ranked)
        self.ranked = tuple(ranked)
        self.cumulative = list(itertools.accumulate(1 / (rank + 3) ** 0.8 for rank in range(len(ranked))))
        self.hot = hot_intents(seed, self.ranked)
        self.pii = PiiFactory(seed)
        self.calls: list[ProductionCall] = []

    def base_call(self, day: int, index: int) -> None:
        call_id = f"call-prod-s{self.seed}-d{day:03d}-{index:04d}"
        draws = Draws(self.seed, call_id)
        telephone = draws.chance("telephone", TELEPHONE_RATE)
        caller = Caller(
            caller_id=f"caller-{draws.hex('caller')}",
            voice=draws.pick("voice", TRAIN_VOICES),
            rate_wpm=150 + int(draws.uniform("rate") * 36),
            pitch=35 + int(draws.uniform("pitch") * 31),
            telephone=telephone,
            snr_db=round(draws.between("snr", 5.0, 20.0), 1) if telephone else None,
            digit_speaker=draws.pick("digit-speaker", FSDD_SPEAKERS["train"]),
            identity_seed=draws.integer("identity"),
            consent=draws.chance("consent", CONSENT_RATE),
        )
        intent = self.ranked[bisect.bisect(self.cumulative, draws.uniform("intent") * self.cumulative[-1])]
        opens, closes = OPENING_HOURS
        at = self._day_start(day) + timedelta(hours=opens + draws.uniform("time") * (closes - opens))
        self.add(call_id, day, at.replace(microsecond=0), caller, intent, self.specs)

    def add(
        self, call_id: str, day: int, at: datetime, caller: Caller, intent: str, specs: Sequence[DriftSpec],
        previous: str | None = None, depth: int = 0,
    ) -> None:  # fmt: skip
        """Plan ``call_id`` (``depth``: how many calls about this ask came before it) and its callback, if any."""
        draws = Draws(self.seed, call_id)
        base = Setting("telephone8k" if caller.telephone else "clean16k", caller.snr_db, caller.voice, intent)
        setting, applied = apply_drifts(base, specs, draws, day, self.hot)
        group = self.utterances[setting.intent]
        ask: Utterance = group[min(int(draws.uniform("utterance") * len(group)), len(group) - 1)]
        dialogue = compose(setting, caller, ask, draws, self.intents, self.pii, TAKES)
        later = self._callback_at(draws, dialogue, setting, day, at) if depth < MAX_CALLBACKS else None
        root = call_id.rsplit("-r", 1)[0] if depth else call_id
        callback = f"{root}-r{depth + 1}" if later else None
        plan = CallPlan(
            call_id=call_id,
            index=0,  # set once the stream is in time order
            split=None,
            started_at=at.isoformat(),
            caller_id=caller.caller_id,
            consent=caller.consent,
            outcome=dialogue.outcome,
            voice=setting.voice,
            rate_wpm=caller.rate_wpm,
            pitch=caller.pitch,
            channel=setting.channel,
            snr_db=setting.snr_db,
            digit_speaker=caller.digit_speaker,
            turns=dialogue.turns,
            gaps_s=dialogue.gaps_s,
            noise_seed=draws.integer("noise"),
            slot_fraction=0.0,
        )
        self.calls.append(ProductionCall(plan, day, setting.intent, setting, applied, dialogue, callback, previous))
        if later and callback:
            # a callback asks about what its first call asked: the intent mix shifts through new asks only
            kept = [spec for spec in self.specs if spec.name != "intent-shift"]
            self.add(callback, later[0], later[1], caller, setting.intent, kept, call_id, depth + 1)

    def _callback_at(
        self, draws: Draws, dialogue: Dialogue, setting: Setting, day: int, at: datetime
    ) -> tuple[int, datetime] | None:
        """When the caller calls back (day, time), if they do within the stream."""
        reason = "resolved" if dialogue.resolved else "outage" if setting.outage else "unresolved"
        if not draws.chance("callback", CALLBACK_RATE[reason]):
            return None
        wait = draws.uniform("callback-day")
        opens, closes = OPENING_HOURS
        # served: some day in the next week; not served: the same day (0.4), the next (0.4) or the one after
        later = day + (1 + int(wait * 7) if dialogue.resolved else 0 if wait < 0.4 else 1 if wait < 0.8 else 2)
        earliest = self._day_start(later) + timedelta(hours=opens)
        if later == day:
            earliest = at + timedelta(minutes=15)
            if earliest.hour >= closes:
                later, earliest = day + 1, self._day_start(day + 1) + timedelta(hours=opens)
        if later > self.days:
            return None
        span = (self._day_start(later) + timedelta(hours=closes) - earliest).total_seconds()
        return later, (earliest + timedelta(seconds=draws.uniform("callback-time") * span)).replace(microsecond=0)

    def _day_start(self, day: int) -> datetime:
        return datetime.combine(self.start + timedelta(days=day - 1), time(0), tzinfo=UTC)


def plan_stream(
    days: int,
    calls_per_day: int,
    start: date,
    *,
    seed: int = 0,
    drifts: Sequence[DriftSpec] = (),
    bundle: str = BUNDLE,
    sample_dir_path: Path | None = None,
) -> Stream:
    """Plan every call of the stream (no audio): the same arguments always give the same stream."""
    if days < 1 or calls_per_day < 1:
        raise ValueError(f"a stream needs at least one day and one call a day (got {days} days, {calls_per_day})")
    planner = _Planner(seed, days, start, drifts, sample_dir(sample_dir_path))
    for day in range(1, days + 1):
        for index in range(calls_per_day):
            planner.base_call(day, index)
    ordered = sorted(planner.calls, key=lambda c: (c.plan.started_at, c.plan.call_id))
    calls = tuple(replace(c, plan=replace(c.plan, index=i)) for i, c in enumerate(ordered))
    return Stream(seed, start, days, calls_per_day, tuple(drifts), bundle, planner.hot, calls)


def truth(call: ProductionCall, stream: Stream) -> dict[str, Any]:
    """What really happened in ``call``: the document voiceloop never reads, to measure the monitor with."""
    plan, dialogue = call.plan, call.dialogue
    bot = {b.turn: b for b in dialogue.bot}
    turns: list[dict[str, Any]] = []
    for index, turn in enumerate(plan.turns):
        entry: dict[str, Any] = {"turn": index, "speaker": turn.speaker, "transcript": turn.transcript}
        if turn.speaker == "customer":
            entry["intent"] = turn.intent
            entry["pii"] = [{"entity": s.entity, "start": s.start, "end": s.end} for s in turn.pii]
        if index in bot:
            b = bot[index]
            entry |= {"answers": b.answers, "latency_ms": b.latency_ms, "understood": b.understood,
                      "logged_intent": b.intent, "confidence": b.confidence}  # fmt: skip
        turns.append(entry)
    handoff = dialogue.handoff
    return {
        "call_id": plan.call_id,
        "day": call.day,
        "date": stream.date_of(call.day).isoformat(),
        "started_at": plan.started_at,
        "caller_id": plan.caller_id,
        "consent": plan.consent,
        "channel": plan.channel,
        "snr_db": plan.snr_db,
        "voice": plan.voice,
        "intent": call.intent,
        "drifts": list(call.drifts),
        "outage": call.setting.outage,
        "slow": call.setting.slow,
        "understood": dialogue.understood,
        "outcome": plan.outcome,
        "resolved": dialogue.resolved,
        "escalated": plan.outcome == "escalated",
        "gave_up": dialogue.gave_up,
        "handoff": None if handoff is None else {
            "agent_turn": handoff.agent_turn, "complete": handoff.complete, "missing": list(handoff.missing),
            "verified": list(handoff.verified)},
        "repeated_to_agent": list(dialogue.repeated),
        "callback": call.callback,
        "callback_of": call.callback_of,
        "turns": turns,
    }  # fmt: skip


def stream_truth(stream: Stream, arguments: dict[str, Any]) -> dict[str, Any]:
    """``truth/stream.json``: how the stream was made and which calls fell on which day."""
    return {
        "arguments": arguments,
        "seed": stream.seed,
        "start": stream.start.isoformat(),
        "days": stream.days,
        "calls_per_day": stream.calls_per_day,
        "drifts": [str(spec) for spec in stream.drifts],
        "bundle": stream.bundle,
        "hot_intents": list(stream.hot_intents),
        "calls": len(stream.calls),
        "by_day": [
            {"day": day, "date": stream.date_of(day).isoformat(),
             "calls": [c.plan.call_id for c in stream.calls if c.day == day]}
            for day in range(1, stream.days + 1)
        ],
    }  # fmt: skip
